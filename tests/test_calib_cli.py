"""``bss2-calib run / list / show / verify`` through click's CliRunner."""
import io
import json

import pandas as pd
import pytest
from click.testing import CliRunner

import calib
from calib import FitDidNotConverge
from calib.config import STAGES
from cli.main import main


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with one full calibration of chip 0, made by `bss2-calib run` without arguments."""
    root = tmp_path_factory.mktemp("store")
    res = CliRunner().invoke(main, ["run"], env={"BSS2_CALIB_STORE": str(root)})
    assert res.exit_code == 0, res.stderr
    return root, res


def test_run_without_arguments_calibrates_chip_0_into_the_default_store(store):
    root, res = store
    latest = calib.ArtifactStore(root).latest(0)
    assert latest is not None and latest.parent == root / "chip-0"
    assert f"artifact: {latest}" in res.stdout
    for stage in STAGES:  # progress per stage on stderr
        assert f"] {stage} ..." in res.stderr
    for step in ("cadc_ramp_offset", "v_reset", "synin_inh_gm", "synapses", "neuron_fit", "total"):
        assert step in res.stdout
    loaded = calib.load(latest)
    assert loaded.chip_id == 0 and loaded.preset["name"] == "default" and loaded.ok


def test_run_json_to_an_explicit_directory(tmp_path):
    out = tmp_path / "art"
    res = CliRunner().invoke(main, ["run", "--chip", "3", "--preset", "ideal", "--stages", "knobs,offsets",
                                    "--out", str(out), "--json", "--seed", "4"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["artifact"] == str(out) and doc["chip_id"] == 3 and doc["preset"] == "ideal" and doc["ok"]
    names = [s["name"] for s in doc["steps"]]
    assert names[0] == "cadc_ramp_offset" and names[-1] == "offsets"
    for s in doc["steps"]:
        assert {"spread_before", "spread_after", "n_failed", "failed", "measurements", "wall_time_s",
                "hw_time_s"} <= set(s)
    assert doc["totals"]["hw_time_s"] > 0 and doc["totals"]["knob_rounds"] > 0
    assert (out / "manifest.json").is_file()
    assert calib.load(out).tables["knobs_neuron"].shape == (512, 6)
    # --out never overwrites
    again = CliRunner().invoke(main, ["run", "--chip", "3", "--preset", "ideal", "--stages", "reset",
                                      "--out", str(out)])
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_list_and_show(store):
    root, _ = store
    r = CliRunner().invoke(main, ["list", "--store", str(root)])
    assert r.exit_code == 0 and r.stdout.startswith("* chip-0/")
    r = CliRunner().invoke(main, ["list", "--store", str(root), "--json"])
    rows = json.loads(r.stdout)["artifacts"]
    assert len(rows) == 1 and rows[0]["latest"] and rows[0]["ok"]
    r = CliRunner().invoke(main, ["show", "chip-0", "--store", str(root)])
    assert r.exit_code == 0 and "synapse_gain (65536 rows)" in r.stdout
    r = CliRunner().invoke(main, ["show", "chip-0", "--store", str(root), "--table", "neuron_correction"])
    assert r.exit_code == 0
    df = pd.read_csv(io.StringIO(r.stdout), index_col="neuron")
    assert len(df) == 512 and {"gain_exc", "gain_inh", "offset_lsb", "success"} <= set(df.columns)
    r = CliRunner().invoke(main, ["show", "chip-0", "--store", str(root), "--json"])
    assert json.loads(r.stdout)["chip_id"] == 0


def test_verify_fresh_and_drifted(store):
    root, _ = store
    r = CliRunner().invoke(main, ["verify", "chip-0", "--store", str(root)])
    assert r.exit_code == 0 and r.stdout.startswith("valid:"), r.stdout + r.stderr
    r = CliRunner().invoke(main, ["verify", "chip-0", "--store", str(root), "--hours", "500", "--json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert not doc["valid"] and doc["gain_deviation_rms"] > doc["gain_threshold"]
    r = CliRunner().invoke(main, ["verify", "chip-0", "--store", str(root), "--temperature", "45"])
    assert r.exit_code == 1 and "temperature" in r.stdout


def test_a_failed_stage_gives_a_nonzero_exit_and_is_listed(tmp_path, monkeypatch):
    import calib.pipeline as pl

    def broken(session):
        raise FitDidNotConverge("offsets: simulated failure")

    monkeypatch.setitem(pl.RUNNERS, "offsets", broken)
    r = CliRunner().invoke(main, ["run", "--stages", "reset,offsets,synapses", "--store", str(tmp_path), "--json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["failed_stages"] == ["offsets"] and not doc["ok"]
    kinds = {s["name"]: s["kind"] for s in doc["steps"]}
    assert kinds["offsets"] == "failed" and kinds["synapses"] == "skipped"
    store = calib.ArtifactStore(tmp_path)
    assert store.latest(0) is None  # a failed calibration is stored but never becomes 'latest'
    assert len(store.history(0)) == 1 and not store.history(0)[0]["ok"]
    r = CliRunner().invoke(main, ["run", "--stages", "reset,offsets", "--store", str(tmp_path)])
    assert r.exit_code == 1 and "FAILED stages: offsets" in r.stdout
