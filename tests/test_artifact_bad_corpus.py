"""Every case of tests/data/bad/ through the CLI: exit code, one-line message, store unchanged."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bss2_calib import calib
from bss2_calib.cli.main import main

DATA = Path(__file__).resolve().parent / "data"
BAD = DATA / "bad"
CASES = json.loads((BAD / "cases.json").read_text())["cases"]


def _snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input_case(case, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(BAD / "artifacts" / "good", store / "chip-0" / "20260101T000000Z-default-0000aaaa")
    subst = {"{store}": str(store), "{presets}": str(BAD / "presets"), "{weights}": str(BAD / "weights")}
    if "artifact" in case:
        dest = store / "chip-0" / f"case-{case['artifact']}"
        shutil.copytree(BAD / "artifacts" / case["artifact"], dest)
        subst["{artifact}"] = str(dest)
    args = []
    for a in case["args"]:
        for k, v in subst.items():
            a = a.replace(k, v)
        args.append(a)
    before = _snapshot(store)
    res = CliRunner().invoke(main, args, env={"BSS2_CALIB_STORE": str(store)})
    assert res.exit_code == case["exit"], (res.exit_code, res.stdout, res.stderr)
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), repr(res.exception)
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.stderr
    assert case["message"] in errors[0], errors[0]
    assert "Traceback" not in res.stderr + res.stdout
    if args[0] != "run" or case["exit"] == 2:
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        if case["exit"] == 1:
            assert lines == errors, res.stderr  # nothing but the one line
    assert _snapshot(store) == before


def test_the_corpus_is_complete():
    used = {c.get("artifact") for c in CASES}
    present = {p.name for p in (BAD / "artifacts").iterdir()}
    assert present <= used, present - used
    args = " ".join(a for c in CASES for a in c["args"])
    for kind in ("presets", "weights"):
        files = {p.name for p in (BAD / kind).iterdir()}
        assert all(f"{{{kind}}}/{f}" in args for f in files), files


def test_every_released_schema_version_still_loads():
    versions = set()
    for d in sorted((DATA / "artifacts").iterdir()):
        res = calib.load(d)
        assert res.manifest["schema_version"] in (1, 2)
        assert res.manifest_sealed is (res.manifest["schema_version"] >= 2)
        assert set(res.tables) >= {"knobs_quadrant", "knobs_driver", "knobs_neuron", "neuron_correction",
                                   "driver_transfer", "synapse_gain"}
        assert res.tables["neuron_correction"]["success"].all()
        versions.add(res.manifest["schema_version"])
    assert versions == {1, calib.SCHEMA_VERSION}  # keep one artifact of every released version
