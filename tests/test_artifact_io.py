"""Artifacts: exact round trips, atomic writes, and refusal of corrupt, foreign or unknown ones."""
import hashlib
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from chipsim import Chip
import calib
from calib import (ArtifactCorrupt, ArtifactExists, ArtifactVersionError, IncompatibleArtifact, Options)
from calib.artifact import write_artifact


@pytest.fixture(scope="module")
def full():
    chip = Chip(4, "default", noise_seed=8)
    return chip, calib.calibrate(chip)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    res = calib.calibrate(Chip(0, "default", noise_seed=1), options=Options(stages=("reset",)))
    return res.save(tmp_path_factory.mktemp("a") / "small").path


def _copy(src, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _rewrite_manifest(path, edit):
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
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
    strip = {"tables", "files"}
    assert {k: v for k, v in back.manifest.items() if k not in strip} == \
        json.loads(json.dumps({k: v for k, v in res.manifest.items() if k not in strip}))
    fresh = Chip(4, "default")
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
    res.apply_to(Chip(4, "default"))
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
    import calib.artifact as art

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


@pytest.mark.parametrize("version", [0, 2, 999, "1", None, 1.0])
def test_wrong_schema_version(small_dir, tmp_path, version):
    p = _copy(small_dir, tmp_path)
    _rewrite_manifest(p, lambda m: m.__setitem__("schema_version", version))
    _expect(p, ArtifactVersionError, "schema")


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
    import calib.artifact as art
    monkeypatch.setattr(art, "MAX_MANIFEST_BYTES", 100)
    _expect(small_dir, ArtifactCorrupt, "more than the limit")


def test_a_consistent_but_wrong_table_is_refused(small_dir, tmp_path):
    """Even with a matching checksum, a table must have its schema."""
    p = _copy(small_dir, tmp_path)
    res = calib.load(small_dir)
    bad = res.tables["knobs_driver"].iloc[:100]
    from calib.artifact import table_bytes

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

    code = ("import sys, calib; r = calib.load; s = calib.ArtifactStore; "
            "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith(('calib.fits', 'calib.steps', "
            "'calib.pipeline', 'calib.algorithms'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
