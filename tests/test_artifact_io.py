"""Artifacts: exact round trips, atomic writes, and refusal of corrupt, foreign or unknown ones."""
import hashlib
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from bss2_calib.chipsim import Chip
from bss2_calib import calib
from bss2_calib.calib import (ArtifactCorrupt, ArtifactExists, ArtifactVersionError, IncompatibleArtifact, Options)
from bss2_calib.calib.artifact import manifest_digest, write_artifact


@pytest.fixture(scope="module")
def full(calibrated_default):
    return calibrated_default  # (chip, result), shared by the session: read only


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    res = calib.calibrate(Chip(0, "default", noise_seed=1), options=Options(stages=("reset",)))
    return res.save(tmp_path_factory.mktemp("a") / "small").path


def _copy(src, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _rewrite_manifest(path, edit, reseal=True):
    """Edit the manifest; ``reseal`` recomputes its seal (a crafted manifest that reaches the field checks)."""
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
    if reseal and "manifest_sha256" in m:
        m["manifest_sha256"] = manifest_digest(m)
    (path / "manifest.json").write_text(json.dumps(m))


def _snapshot(root):
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ----------------------------------------------------------------- round trip
def test_save_load_apply_is_exact(full, tmp_path):
    chip, res = full
    saved = res.save(tmp_path / "art")
    back = calib.load(saved.path)
    assert sorted(back.tables) == sorted(res.tables)
    for name in res.tables:
        pd.testing.assert_frame_equal(res.tables[name], back.tables[name], check_exact=True)
    strip = {"tables", "files", "manifest_sha256"}
    assert {k: v for k, v in back.manifest.items() if k not in strip} == \
        json.loads(json.dumps({k: v for k, v in res.manifest.items() if k not in strip}))
    fresh = Chip(res.chip_id, "default")
    back.apply_to(fresh)
    for k, v in chip.knob_values().items():
        np.testing.assert_array_equal(fresh.get_knob(k), v, err_msg=k)
    # save -> load -> save again gives byte-identical tables
    again = back.save(tmp_path / "again")
    for f in os.listdir(saved.path):
        if f.endswith(".parquet"):
            assert (saved.path / f).read_bytes() == (again.path / f).read_bytes(), f


def test_save_and_apply_do_not_modify_the_result(full, tmp_path):
    _, res = full
    before = {k: v.copy() for k, v in res.tables.items()}
    manifest = res.manifest
    res.save(tmp_path / "x")
    res.apply_to(Chip(res.chip_id, "default"))
    t = res.tables["neuron_correction"]
    t.loc[0, "gain_exc"] = 99.0  # a copy: the result keeps its own table
    for k in before:
        pd.testing.assert_frame_equal(res.tables[k], before[k])
    assert res.manifest == manifest and res.path is None


def test_tables_are_tidy_with_named_indices(full):
    _, res = full
    t = res.tables
    assert t["synapse_gain"].index.names == ["hemisphere", "row", "column"] and len(t["synapse_gain"]) == 65536
    assert t["driver_transfer"].index.names == ["driver", "activation"] and len(t["driver_transfer"]) == 8192
    assert t["neuron_correction"].index.name == "neuron" and "success" in t["neuron_correction"]
    assert t["weight_transfer"].index.name == "weight" and len(t["weight_transfer"]) == 64
    assert t["knob_steps"].index.names == ["step", "instance"]
    m = res.manifest
    for key in ("schema_version", "kind", "package_version", "chip_id", "preset", "conditions", "target", "options",
                "steps", "quality", "totals"):
        assert key in m, key
    assert set(m["conditions"]) >= {"wait_between_events", "num_sends_min", "num_sends_max", "temperature_c",
                                    "temperature_tolerance_k"}


def test_never_overwrites(small_dir, tmp_path):
    res = calib.load(small_dir)
    dest = tmp_path / "dest"
    res.save(dest)
    snap = _snapshot(dest)
    with pytest.raises(ArtifactExists, match="never overwritten"):
        res.save(dest)
    assert _snapshot(dest) == snap
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactExists):
        res.save(tmp_path / "empty")


def test_a_failed_write_leaves_nothing_behind(small_dir, tmp_path, monkeypatch):
    res = calib.load(small_dir)
    import bss2_calib.calib.artifact as art

    calls = []
    orig = art.table_bytes

    def boom(df):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")
        return orig(df)

    monkeypatch.setattr(art, "table_bytes", boom)
    with pytest.raises(KeyboardInterrupt):
        res.save(tmp_path / "half")
    assert not (tmp_path / "half").exists()
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------- refusals
def _expect(path, exc, match):
    with pytest.raises(exc, match=match) as info:
        calib.load(path)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300
    return msg


def test_corrupt_byte_is_caught_by_the_checksum(small_dir, tmp_path):
    p = _copy(small_dir, tmp_path)
    f = p / "knobs_neuron.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    _expect(p, ArtifactCorrupt, "checksum mismatch in knobs_neuron.parquet")


def test_truncated_file(small_dir, tmp_path):
    p = _copy(small_dir, tmp_path)
    f = p / "knobs_quadrant.parquet"
    f.write_bytes(f.read_bytes()[:-10])
    _expect(p, ArtifactCorrupt, "truncated or modified")


def test_missing_file_and_missing_manifest(small_dir, tmp_path):
    p = _copy(small_dir, tmp_path)
    (p / "knobs_driver.parquet").unlink()
    _expect(p, ArtifactCorrupt, "missing")
    q = _copy(small_dir, tmp_path, "q")
    (q / "manifest.json").unlink()
    _expect(q, ArtifactCorrupt, "manifest is missing")
    _expect(tmp_path / "nothing-here", ArtifactCorrupt, "no artifact")


def test_truncated_manifest(small_dir, tmp_path):
    p = _copy(small_dir, tmp_path)
    m = p / "manifest.json"
    m.write_bytes(m.read_bytes()[:100])
    _expect(p, ArtifactCorrupt, "not valid JSON")


@pytest.mark.parametrize("version", [0, 3, 999, "1", None, 1.0, True])
def test_wrong_schema_version(small_dir, tmp_path, version):
    p = _copy(small_dir, tmp_path)
    _rewrite_manifest(p, lambda m: m.__setitem__("schema_version", version))
    _expect(p, ArtifactVersionError, "schema")


# -------------------------------------------------------- the manifest's seal
@pytest.mark.parametrize("field, edit", [
    ("chip_id", lambda m: m.__setitem__("chip_id", 1)),
    ("conditions", lambda m: m["conditions"].__setitem__("temperature_tolerance_k", 50.0)),
    ("conditions", lambda m: m["conditions"].__setitem__("num_sends_max", 64)),
    ("target", lambda m: m["target"].__setitem__("gain_lsb_per_unit", 0.004)),
    ("quality", lambda m: m["quality"].__setitem__("v_reset_residual_rms", 0.0)),
    ("preset", lambda m: m["preset"].__setitem__("name", "ideal")),
    ("failed_stages", lambda m: m.__setitem__("failed_stages", ["reset"])),
    ("new field", lambda m: m.__setitem__("note", "trust me")),
])
def test_a_tampered_manifest_is_refused(small_dir, tmp_path, field, edit):
    p = _copy(small_dir, tmp_path)
    _rewrite_manifest(p, edit, reseal=False)
    store_before = _snapshot(p)
    _expect(p, ArtifactCorrupt, r"checksum mismatch in manifest\.json \(corrupt or tampered\)")
    assert _snapshot(p) == store_before  # loading leaves everything as it was


def test_the_seal_ignores_formatting_but_not_values(small_dir, tmp_path):
    p = _copy(small_dir, tmp_path)
    m = json.loads((p / "manifest.json").read_text())
    (p / "manifest.json").write_text(json.dumps(dict(reversed(list(m.items()))), indent=7))  # same values
    assert calib.load(p).chip_id == m["chip_id"]
    q = _copy(small_dir, tmp_path, "q")
    _rewrite_manifest(q, lambda m: m.pop("manifest_sha256"), reseal=False)
    _expect(q, ArtifactCorrupt, "manifest_sha256 is missing or malformed")
    r = _copy(small_dir, tmp_path, "r")
    _rewrite_manifest(r, lambda m: m.__setitem__("manifest_sha256", "0" * 64), reseal=False)
    _expect(r, ArtifactCorrupt, "checksum mismatch in manifest.json")
    # relabelling a sealed artifact as version 1 (which had no seal) does not drop the protection
    v = _copy(small_dir, tmp_path, "v")
    _rewrite_manifest(v, lambda m: m.__setitem__("schema_version", 1), reseal=False)
    _expect(v, ArtifactCorrupt, "relabelled")


def test_a_tampered_artifact_in_a_store_is_refused_and_the_store_unchanged(small_dir, tmp_path):
    store = calib.ArtifactStore(tmp_path / "store")
    saved = store.save(calib.load(small_dir))
    _rewrite_manifest(saved.path, lambda m: m.__setitem__("chip_id", 7), reseal=False)
    before = _snapshot(store.root)
    with pytest.raises(ArtifactCorrupt, match="checksum mismatch in manifest.json"):
        calib.load(store.resolve("chip-0"))
    with pytest.raises(ArtifactCorrupt, match="checksum mismatch in manifest.json"):
        calib.load(saved.path)
    assert _snapshot(store.root) == before


def test_version_1_artifacts_load_unsealed_and_save_as_version_2(tmp_path):
    from pathlib import Path

    v1 = Path(__file__).resolve().parent / "data" / "artifacts" / "v1-noiseless-chip0"
    res = calib.load(v1)
    assert res.manifest["schema_version"] == 1 and res.manifest_sealed is False
    assert "manifest_sha256" not in res.manifest and "weak" not in res.tables["neuron_correction"]
    assert res.summary()["manifest_sealed"] is False
    again = res.save(tmp_path / "v2")
    assert again.manifest["schema_version"] == calib.SCHEMA_VERSION == 2 and again.manifest_sealed is True
    for name in res.tables:
        pd.testing.assert_frame_equal(res.tables[name], again.tables[name], check_exact=True)
    # a version-1 manifest has no seal: an edit goes unnoticed (documented), a v2-only column does not
    p = _copy(v1, tmp_path, "v1copy")
    _rewrite_manifest(p, lambda m: m.__setitem__("created_utc", "2030-01-01T00:00:00Z"), reseal=False)
    assert calib.load(p).manifest["created_utc"] == "2030-01-01T00:00:00Z"


def test_wrong_kind(small_dir, tmp_path):
    p = _copy(small_dir, tmp_path)
    _rewrite_manifest(p, lambda m: m.__setitem__("kind", "something-else"))
    _expect(p, ArtifactVersionError, "not a calibration artifact")


@pytest.mark.parametrize("name", ["../outside.parquet", "/etc/passwd.parquet", "sub/dir.parquet", "..parquet",
                                  "manifest.json", ".hidden.parquet"])
def test_manifest_naming_files_outside_is_refused(small_dir, tmp_path, name):
    p = _copy(small_dir, tmp_path)

    def edit(m):
        m["files"][name] = m["files"].pop("knobs_driver.parquet")

    _rewrite_manifest(p, edit)
    _expect(p, ArtifactCorrupt, "outside the artifact directory|malformed")


def test_symlinked_table_is_refused(small_dir, tmp_path):
    p = _copy(small_dir, tmp_path)
    target = tmp_path / "elsewhere.parquet"
    shutil.move(p / "knobs_driver.parquet", target)
    os.symlink(target, p / "knobs_driver.parquet")
    _expect(p, ArtifactCorrupt, "symbolic link")


def test_absurd_sizes_are_refused(small_dir, tmp_path, monkeypatch):
    p = _copy(small_dir, tmp_path)
    _rewrite_manifest(p, lambda m: m["files"]["knobs_driver.parquet"].__setitem__("bytes", 10 ** 12))
    _expect(p, ArtifactCorrupt, "malformed")
    import bss2_calib.calib.artifact as art
    monkeypatch.setattr(art, "MAX_MANIFEST_BYTES", 100)
    _expect(small_dir, ArtifactCorrupt, "more than the limit")


def test_a_consistent_but_wrong_table_is_refused(small_dir, tmp_path):
    """Even with a matching checksum, a table must have its schema."""
    p = _copy(small_dir, tmp_path)
    res = calib.load(small_dir)
    bad = res.tables["knobs_driver"].iloc[:100]
    from bss2_calib.calib.artifact import table_bytes

    data = table_bytes(bad)
    (p / "knobs_driver.parquet").write_bytes(data)
    _rewrite_manifest(p, lambda m: m["files"]["knobs_driver.parquet"].update(
        sha256=hashlib.sha256(data).hexdigest(), bytes=len(data)))
    _expect(p, ArtifactCorrupt, "rows, expected 256")


# -------------------------------------------------------------- compatibility
def test_apply_refuses_foreign_chips_and_conditions(small_dir):
    res = calib.load(small_dir)
    with pytest.raises(IncompatibleArtifact, match="chip_id differs") as info:
        res.apply_to(Chip(1, "default"))
    assert info.value.field == "chip_id"
    with pytest.raises(IncompatibleArtifact, match="preset.sha256 differs"):
        res.apply_to(Chip(0, "harsh"))
    hot = Chip(0, "default")
    hot.advance(temperature_c=40.0)
    with pytest.raises(IncompatibleArtifact, match="temperature_c differs") as info:
        res.apply_to(hot)
    assert info.value.field == "conditions.temperature_c"
    with pytest.raises(IncompatibleArtifact, match="wait_between_events differs"):
        res.apply_to(Chip(0, "default"), wait_between_events=3)
    with pytest.raises(IncompatibleArtifact, match="num_sends differs"):
        res.check(num_sends=200)
    untouched = Chip(1, "default")
    with pytest.raises(IncompatibleArtifact):
        res.apply_to(untouched)
    assert untouched.counters["reconfigurations"] == 0  # refused before writing anything


def test_write_artifact_checks_tables(tmp_path):
    with pytest.raises(ArtifactCorrupt, match="unknown table"):
        write_artifact(tmp_path / "x", {}, {"bogus": pd.DataFrame()})
    assert not (tmp_path / "x").exists() and os.listdir(tmp_path) == []


def test_importing_the_artifact_side_loads_no_fitting_code():
    import subprocess
    import sys

    code = ("import sys; from bss2_calib import calib; r = calib.load; s = calib.ArtifactStore; "
            "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith(('bss2_calib.calib.fits', 'bss2_calib.calib.steps', "
            "'bss2_calib.calib.pipeline', 'bss2_calib.calib.algorithms'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
