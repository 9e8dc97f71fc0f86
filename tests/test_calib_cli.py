"""``bss2-calib run / list / show / verify`` through click's CliRunner."""
import io
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from bss2_calib import calib
from bss2_calib.calib import FitDidNotConverge
from bss2_calib.calib.config import STAGES
from bss2_calib.cli.main import main


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
    assert latest is not None and latest.parent == root / "chip=0"
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
    import bss2_calib.calib.pipeline as pl

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


def test_run_report_is_written_next_to_the_artifact(tmp_path):
    out = tmp_path / "art"
    res = CliRunner().invoke(main, ["run", "--chip", "2", "--preset", "noiseless", "--stages", "reset", "--out",
                                    str(out), "--report", "--report-format", "html", "--json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)  # one JSON object: the summary with the report's files
    rep = tmp_path / "art-report"
    assert doc["report"]["dir"] == str(rep) and doc["report"]["files"] == [str(rep / "report.html")]
    assert "knob_before_after" in doc["report"]["figures"]
    html = (rep / "report.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == len(doc["report"]["figures"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art", "art-report"]
    assert sorted(p.name for p in rep.iterdir()) == ["report.html"]  # only the asked-for format
    assert "report: drawing knob_before_after" in res.stderr
    assert calib.load(out).ok  # the artifact itself is untouched and still verifies
    # the human-readable form names the report after the artifact
    res = CliRunner().invoke(main, ["run", "--chip", "2", "--preset", "noiseless", "--stages", "reset", "--out",
                                    str(tmp_path / "b"), "--report", "--report-format", "png"])
    assert res.exit_code == 0, res.stderr
    assert f"report: {tmp_path / 'b-report'} (" in res.stdout
    assert sorted(p.suffix for p in (tmp_path / "b-report").iterdir()) == [".png"] * len(
        list((tmp_path / "b-report").iterdir())) and (tmp_path / "b-report" / "knob_before_after.png").is_file()


def test_run_refuses_an_existing_out_before_calibrating(tmp_path):
    (tmp_path / "taken").mkdir()
    res = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "taken")])
    assert res.exit_code == 1 and "already exists" in res.stderr
    assert "] cadc ..." not in res.stderr  # nothing was measured


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_stage_progress_is_a_bar_on_a_terminal_and_lines_otherwise():
    from bss2_calib.cli.common import StageProgress

    events = [("cadc", 0, "start"), ("cadc", 0, "done"), ("leak", 1, "start"), ("leak", 1, "failed"),
              ("reset", 2, "skipped")]
    term = _Terminal()
    with StageProgress("calibrating", file=term) as p:
        for stage, i, ev in events:
            p(stage, i, 3, ev)
    text = term.getvalue()
    assert "\r" in text and "calibrating" in text and "3/3" in text and "[###" in text
    assert "0/3  cadc" in text and "1/3  leak" in text  # the bar names the stage now running
    assert text.rstrip().splitlines()[-2:] == ["[2/3] leak FAILED", "[3/3] reset SKIPPED"]
    plain = io.StringIO()
    with StageProgress("calibrating", file=plain) as p:
        for stage, i, ev in events:
            p(stage, i, 3, ev)
    assert plain.getvalue().splitlines() == ["[1/3] cadc ...", "[2/3] leak ...", "[2/3] leak FAILED",
                                             "[3/3] reset SKIPPED"]


def test_the_summary_table_shows_every_quantity_whole_within_150_characters():
    from pathlib import Path

    from bss2_calib.cli.cmd_run import summary_lines

    kept = Path(__file__).resolve().parent / "data" / "artifacts"
    for d in sorted(kept.iterdir()):
        summary = calib.load(d).summary()
        lines = summary_lines(summary)
        table = [line for line in lines if not line.startswith(("chip ", "note:"))]
        assert max(len(line) for line in table) <= 150
        for s in summary["steps"]:
            row = next(line for line in lines if line.startswith(s["name"] + " "))
            assert f" {s['quantity']} " in row and f" {s['unit']} " in row, row
