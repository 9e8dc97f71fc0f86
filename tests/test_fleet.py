"""Fleet calibration on Dask: runner, placement, faults, summary, report, verify, CLI."""
import copy
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bss2_calib import calib
from bss2_calib.calib import fleet
from bss2_calib.calib.fleet.report import outliers
from bss2_calib.cli.main import main

V2 = Path(__file__).parent / "data" / "artifacts" / "v2-noiseless-chip0"
CHEAP = calib.Options(stages="cadc,leak,reset")  # a few hundred ms of a worker's time per chip


def _fake_store(root, chips, residual_of=None):
    """A store of the shipped artifact relabelled for ``chips`` (no calibration spent)."""
    art = calib.load(V2)
    store = calib.ArtifactStore(root)
    for c in chips:
        m = copy.deepcopy(art.manifest)
        m["chip_id"] = c
        m["quality"]["neuron_fit.heldout_residual_rms_lsb"] = (residual_of or {}).get(c, 0.5 + 0.01 * c)
        store.save(calib.CalibrationResult(m, {k: art.tables[k] for k in art.tables}))
    return store


def _load_all(store):
    """Every artifact folder in the store loads with its checksums (nothing half-written)."""
    paths = [Path(r["path"]) for r in store.list()]
    for p in paths:
        calib.load(p)
    return paths


# ----------------------------------------------------------------- no cluster
def test_parse_chips():
    assert fleet.parse_chips("0-3,7,2") == [0, 1, 2, 3, 7]
    for bad in ("3-1", "a", "-2", "0-200000"):
        with pytest.raises(calib.CalibValueError):
            fleet.parse_chips(bad)


def test_outliers_use_a_robust_spread():
    v = np.array([1.0, 1.1, 0.9, 1.05, 0.95, 3.0, np.nan])
    assert outliers(v).tolist() == [False] * 5 + [True, False]
    assert not outliers([2.0, 2.0, 2.0, 2.0]).any()
    assert outliers([0, 0, 0, 1]).tolist() == [False, False, False, True]  # zero spread: any difference stands out


def test_summary_and_report_from_the_store(tmp_path):
    store = _fake_store(tmp_path / "store", [0, 1, 2, 5], residual_of={5: 4.0})
    df = fleet.summary(store)
    assert df["chip"].tolist() == [0, 1, 2, 5]
    assert list(df.columns[:4]) == ["chip", "preset", "artifact", "created_utc"]
    assert (df["preset"] == "noiseless").all() and df["ok"].all() and (df["verify"] == "-").all()
    ref = calib.load(V2)
    assert (df["dead_neurons"] == int(ref.tables["neuron_correction"]["dead"].sum())).all()
    assert df.loc[df["chip"] == 5, "residual_rms_lsb"].item() == 4.0
    assert "v_reset.spread_after" in df.columns
    # the CLI: report, then summary as JSON, CSV and Parquet
    runner = CliRunner()
    r = runner.invoke(main, ["fleet", "report", "--store", str(store.root), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    page = tmp_path / "report" / "index.html"
    text = page.read_text()
    assert "Fleet report: 4 chips" in text
    assert (page.parent / "quality.png").is_file() and (page.parent / "spreads.png").is_file()
    outlier_rows = [line for line in text.splitlines() if "class='out'><td>5</td><td>residual_rms_lsb" in line]
    assert len(outlier_rows) == 1
    r = runner.invoke(main, ["fleet", "report", "--store", str(store.root), "--out", str(tmp_path / "report")])
    assert r.exit_code != 0 and "already exists" in r.output
    r = runner.invoke(main, ["fleet", "summary", "--store", str(store.root), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["chip"] for row in rows] == [0, 1, 2, 5]
    r = runner.invoke(main, ["fleet", "summary", "--store", str(store.root), "--csv"])
    assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith("chip,preset,artifact")
    back = pd.read_parquet(store.root / "_fleet" / "summary.parquet")
    assert back["chip"].tolist() == [0, 1, 2, 5]


def test_fleet_cli_bad_input_is_one_line(tmp_path, monkeypatch):
    runner = CliRunner()
    r = runner.invoke(main, ["fleet", "run", "--chips", "5-2", "--store", str(tmp_path)])
    assert r.exit_code == 2 and "bad range" in r.output
    r = runner.invoke(main, ["fleet", "run", "--chips", "0", "--workers", "2", "--scheduler", "tcp://x:1",
                             "--store", str(tmp_path)])
    assert r.exit_code != 0 and "mutually exclusive" in r.output
    r = runner.invoke(main, ["fleet", "summary", "--store", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "no calibrated chips" in r.output
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if Dask were not installed
    r = runner.invoke(main, ["fleet", "run", "--chips", "0", "--store", str(tmp_path)])
    assert r.exit_code == 1 and "pip install 'bss2-calib[fleet]'" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "chip=0").exists()


# ------------------------------------------------------------ a real cluster
def test_fleet_run_places_chips_and_reports_failures(tmp_path):
    """Two worker processes; chip 0 pinned to worker 0, chip 1 to worker 1; chip 2's link dies for good."""
    store = calib.ArtifactStore(tmp_path / "store")
    seen = []
    with fleet.Fleet(workers=2, placement={0: [0], 1: [1, 2]}) as f:
        addr = {w["name"]: a for a, w in f.client.scheduler_info()["workers"].items()}
        out = fleet.run(f, [0, 1, 2], store, preset="noiseless", options=CHEAP,
                        backend=fleet.Backend(transient_rate=0.02, dead_chips=(2,), dead_after=5),
                        progress=lambda s: seen.append(s.line()))
    by = {o.chip_id: o for o in out}
    assert by[0].status == by[1].status == "ok"
    assert by[0].record["worker"] == addr[0] and by[1].record["worker"] == addr[1]
    assert by[2].status == "failed" and by[2].attempts == 2  # bounded: not retried forever
    assert len(by[2].reasons) == 2 and all("link down" in r for r in by[2].reasons)
    assert store.chips() == [0, 1] and len(_load_all(store)) == 2
    assert seen and seen[-1].startswith("fleet: 2/3 done, 1 failed, 0 running")


@pytest.mark.slow
def test_a_worker_killed_mid_calibration_is_retried(tmp_path):
    """A real SIGKILL of the worker process calibrating chip 0; the nanny restarts it, the task runs again."""
    store = calib.ArtifactStore(tmp_path / "store")
    killed = {}
    with fleet.Fleet(workers=2, placement={0: [0], 1: [1, 2]}) as f:
        pids = f.worker_pids()
        name_of = {a: w["name"] for a, w in f.client.scheduler_info()["workers"].items()}

        def progress(state):
            if killed or time.monotonic() - state.started < 0.5:  # let the calibration get going
                return
            for a, keys in f.client.processing().items():
                if any(str(k).startswith("calibrate-0-") for k in keys):
                    os.kill(pids[a], signal.SIGKILL)
                    killed["worker"] = name_of[a]

        out = fleet.run(f, [0, 1, 2], store, preset="noiseless", options=calib.Options(), progress=progress,
                        tick_s=0.1)
        again = f.client.scheduler_info()["workers"]
    assert killed["worker"] == 0
    by = {o.chip_id: o for o in out}
    assert by[0].status == "retried" and by[0].attempts == 2 and "worker died" in by[0].reasons[0]
    assert by[0].record["worker"] in {a for a, w in again.items() if w["name"] == 0}  # placement survives restart
    assert by[1].status == by[2].status == "ok"
    assert store.chips() == [0, 1, 2] and len(_load_all(store)) == 3
    for c in (0, 1, 2):
        store.cleanup(c)
        assert not [p for p in store.chip_dir(c).iterdir() if ".tmp-" in p.name]


@pytest.mark.slow
def test_fleet_cli_run_verify_recalibrate(tmp_path):
    root = str(tmp_path / "store")
    runner = CliRunner()
    r = runner.invoke(main, ["fleet", "run", "--chips", "0-2", "--preset", "noiseless", "--store", root,
                             "--workers", "2", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["ok"] == 3 and res["failed"] == 0
    assert "fleet: 3/3 done, 0 failed" in r.stderr
    r = runner.invoke(main, ["fleet", "verify", "--store", root, "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("valid") == 3
    # a noiseless chip does not drift: use a drifting population for the nightly job
    r = runner.invoke(main, ["fleet", "run", "--chips", "4-5", "--preset", "default", "--store", root,
                             "--workers", "2", "--link-errors", "0.01"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["fleet", "verify", "--chips", "4-5", "--store", root, "--workers", "2",
                             "--hours", "2000", "--recalibrate-stale", "--json"])
    rows = json.loads(r.stdout)["chips"]
    assert r.exit_code == 0, r.output
    assert {row["state"] for row in rows} == {"recalibrated"}
    df = fleet.summary(root)
    assert df.set_index("chip").loc[[4, 5], "verify"].tolist() == ["recalibrated"] * 2
    assert df.set_index("chip").loc[[0, 1, 2], "verify"].tolist() == ["valid"] * 3


# ------------------------------------------------------------ inference across the fleet
def test_engine_from_store_partitions_a_model_across_chips(tmp_path):
    from bss2_calib.chipsim import Chip
    from bss2_calib.infer import Engine

    store = _fake_store(tmp_path / "store", [0, 1, 2])  # noiseless chips: exact, deterministic results
    engine = Engine.from_store(store, [0, 2], seed=0)
    assert [c.chip_id for c in engine.chips] == [0, 2] and engine.calibrated
    x = np.random.default_rng(0).integers(0, 32, size=(3, 600))
    w = np.random.default_rng(1).integers(-10, 11, size=(600, 300))  # 5 x 2 tiles over 4 hemispheres
    y = engine.matmul(x, w)
    single = Engine(Chip(0, "noiseless", noise_seed=0), store.load_latest(0)).matmul(x, w)
    np.testing.assert_allclose(y, single, atol=1.0)  # two calibrated noiseless chips agree within rounding
    assert engine.stats["tile_runs"] >= 10
    with pytest.raises(calib.ArtifactError, match="no calibration of chip 7"):
        Engine.from_store(store, [0, 7])
    with pytest.raises(ValueError, match="distinct"):
        Engine.from_store(store, [1, 1])


def test_infer_cli_runs_across_chips(tmp_path):
    store = _fake_store(tmp_path / "store", [0, 1, 2, 3])
    r = CliRunner().invoke(main, ["infer", "--chips", "0-3", "--store", str(store.root), "--limit", "40",
                                  "--batch-size", "20", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["chips"] == [0, 1, 2, 3] and out["calibrated"] and out["images"] == 40
    assert out["accuracy"] > 0.8  # the shipped model on calibrated noiseless chips
    r = CliRunner().invoke(main, ["infer", "--chips", "0-1", "--uncalibrated", "--store", str(store.root)])
    assert r.exit_code == 2 and "exactly one of" in r.output
