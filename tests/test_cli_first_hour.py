"""What a newcomer meets on the command line: JSON everywhere, -q/-v anywhere, notes, chip-N per preset."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bss2_calib import calib
from bss2_calib.calib.explain import TOLERATED_FRACTION, failure_notes
from bss2_calib.cli import common
from bss2_calib.cli.main import main

CLI_DIR = Path(common.__file__).parent
README = Path(__file__).resolve().parents[1] / "README.md"


def _invoke(args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with chip 2 calibrated twice: noiseless (knobs and offsets), then ideal (the reset knob only)."""
    root = tmp_path_factory.mktemp("store")
    first = _invoke(["run", "--chip", 2, "--preset", "noiseless", "--stages", "knobs,offsets", "--store", root])
    assert first.exit_code == 0, first.stderr
    second = _invoke(["run", "--chip", 2, "--preset", "ideal", "--stages", "reset", "--store", root, "-q"])
    assert second.exit_code == 0, second.stderr
    return root, first, second


def test_subcommands_are_added_explicitly_and_share_their_options():
    assert set(main.commands) == {"chip", "run", "list", "show", "verify", "characterize", "report", "infer",
                                  "profile", "fleet"}
    for path in CLI_DIR.glob("cmd_*.py"):
        text = path.read_text(encoding="utf-8")
        assert "from .main" not in text and "import main" not in text, path.name  # no circular import
        assert '"--store"' not in text and '"--json"' not in text and '"--quiet"' not in text, path.name
    for name, cmd in main.commands.items():
        leaves = cmd.commands.values() if hasattr(cmd, "commands") else [cmd]
        for leaf in leaves:
            opts = {o for p in leaf.params for o in p.opts}
            assert {"-q", "-v", "--json"} <= opts, name


def test_run_says_where_the_store_is_and_explains_its_columns(store):
    root, first, second = store
    lines = first.stdout.splitlines()
    assert f"store:    {root} (chip-2 names this artifact for preset noiseless;" in first.stdout
    assert lines[-2].startswith("artifact: " + str(root / "chip=2"))
    legend = " ".join(first.stdout[first.stdout.index("legend:"):].split())
    assert "Nr = configure-and-measure rounds" in legend and "Nv = probe vectors" in legend
    assert re.search(r"^offsets .* 512v ", first.stdout, re.M) and re.search(r"^v_reset .* \d+r ", first.stdout, re.M)
    assert second.stderr == ""  # -q after the subcommand: no progress, no notes


def test_quiet_before_the_subcommand_too(tmp_path):
    res = _invoke(["-q", "run", "--chip", 1, "--preset", "noiseless", "--stages", "reset", "--out", tmp_path / "a"])
    assert res.exit_code == 0 and res.stderr == "" and "artifact:" in res.stdout


def test_failures_are_one_note_per_stage_with_the_indices_under_verbose(tmp_path):
    # the driver trim alone (no leak and reset before it) leaves drivers beyond the knob's range on chip 0
    plain = _invoke(["run", "--stages", "drivers", "--out", tmp_path / "a"])
    assert plain.exit_code == 0, plain.stderr
    notes = [line for line in plain.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and re.match(r"note: drivers: \d+ of 256 drivers missed the hagen_dac_offset target", notes[0])
    assert "instances failed" not in plain.stderr and "WARNING" not in plain.stderr
    assert "failed instances: -v lists them" in plain.stdout
    failed = calib.load(tmp_path / "a").manifest["steps"][0]["failed"]
    verbose = _invoke(["run", "--stages", "drivers", "--out", tmp_path / "b", "-v"])
    assert verbose.exit_code == 0
    assert f"hagen_dac_offset: {len(failed)} of 256 instances failed" in verbose.stderr
    assert "  hagen_dac_offset: " + ", ".join(map(str, failed[:3])) in verbose.stdout


def _steps(knob_failed, table_failed, n=256):
    return {"steps": [
        {"name": "hagen_dac_offset", "stage": "drivers", "kind": "knob", "knob": "hagen_dac_offset",
         "n_instances": n, "n_failed": len(knob_failed), "failed": knob_failed, "range_limited": knob_failed[:1]},
        {"name": "transfer", "stage": "transfer", "kind": "table", "instance": "driver", "n_instances": n,
         "n_failed": len(table_failed), "failed": table_failed}]}


def test_failure_notes_say_whether_it_is_within_tolerance_and_what_happens():
    assert failure_notes(_steps([], [])) == []
    knob, table = failure_notes(_steps([3, 7, 9], [9]))
    assert knob.startswith("drivers: 3 of 256 drivers missed the hagen_dac_offset target (1 at the knob's range limit)")
    assert "within tolerance" in knob and "driver_transfer) fits 2 of these 3, 1 are faults it flags" in knob
    assert table.startswith("transfer: 1 of 256 drivers flagged") and "success=False in driver_transfer" in table
    many = list(range(int(TOLERATED_FRACTION * 256) + 1))  # one more than tolerated
    assert "ABOVE the 5 %" in failure_notes(_steps(many, []))[0]
    assert "within tolerance" in failure_notes(_steps(many[:-1], []))[0]


def test_json_errors_are_json_on_stdout_with_the_same_exit_code(store):
    root, _, _ = store
    cases = [(["show", "chip-9", "--store", root, "--json"], 1, "no calibration of chip 9"),
             (["show", "chip-2", "--store", root, "--table", "nope", "--json"], 1, "--table takes one of"),
             (["run", "--chip", "-1", "--json"], 2, "'--chip'"),
             (["show", "--json", "--no-such-option", "chip-2"], 2, "--no-such-option"),
             (["list", "--store", root, "--json", "-q", "--chip", "x"], 2, "'--chip'")]
    for args, code, text in cases:
        res = _invoke(args)
        assert res.exit_code == code, (args, res.output)
        doc = json.loads(res.stdout)
        assert text in doc["error"] and doc["exit_code"] == code, args
        assert "Traceback" not in res.output
    plain = _invoke(["show", "chip-9", "--store", root])
    assert plain.exit_code == 1 and plain.stdout == "" and "no calibration of chip 9" in plain.stderr


def test_show_table_json_is_records(store):
    root, _, _ = store
    res = _invoke(["show", "chip-2/latest", "--store", root, "--table", "knobs_neuron", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["table"] == "knobs_neuron" and doc["index"] == ["neuron"] and len(doc["records"]) == 512
    assert [r["neuron"] for r in doc["records"][:3]] == [0, 1, 2]
    assert set(doc["records"][0]) == {"neuron", *doc["columns"]}
    csv = _invoke(["show", "chip-2", "--store", root, "--table", "knobs_neuron"])
    assert csv.stdout.splitlines()[0] == ",".join(["neuron", *doc["columns"]])


def test_chip_n_resolves_among_the_artifacts_of_the_preset_in_use(store):
    root, first, second = store
    st = calib.ArtifactStore(root)
    noiseless = calib.load(st.resolve("chip-2", preset="noiseless"))
    ideal = calib.load(st.resolve("chip-2"))  # the latest of any preset
    assert noiseless.preset["name"] == "noiseless" and ideal.preset["name"] == "ideal"
    assert st.resolve("chip-2", preset="ideal") == st.latest(2)
    res = _invoke(["verify", "chip-2", "--store", root, "--preset", "noiseless", "--json"])
    assert json.loads(res.stdout)["artifact"] == str(noiseless.path), res.output
    # the default preset has no calibration of chip 2: the message names the presets there are, as flags
    res = _invoke(["infer", "--chip", 2, "--artifact", "chip-2", "--store", root, "--json"])
    assert res.exit_code == 1
    err = json.loads(res.stdout)["error"]
    assert "no calibration of chip 2 with preset 'default'" in err
    assert "'ideal' (--preset ideal), 'noiseless' (--preset noiseless)" in err


def test_a_mismatch_names_the_flag(store):
    root, _, _ = store
    res = _invoke(["infer", "--chip", 3, "--preset", "noiseless", "--artifact",
                   calib.ArtifactStore(root).resolve("chip-2", preset="noiseless"), "--json"])
    assert res.exit_code == 1
    err = json.loads(res.stdout)["error"]
    assert "--allow-mismatch overrides" in err and "allow_mismatch=True" not in err


def test_report_writes_next_to_the_artifact_without_out(tmp_path):
    art = tmp_path / "art"
    assert _invoke(["run", "--chip", 1, "--preset", "noiseless", "--stages", "reset", "--out", art, "-q"]).exit_code == 0
    res = _invoke(["report", art, "--format", "html", "--json", "-q"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["out"] == str(tmp_path / "art-report") and doc["files"] == [str(tmp_path / "art-report/report.html")]
    assert (tmp_path / "art-report" / "report.html").stat().st_size > 0 and res.stderr == ""


def _readme_python():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.slow
def test_the_readme_example_runs_twice_in_a_row(tmp_path):
    env = {"BSS2_CALIB_STORE": str(tmp_path / "store"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code = _readme_python() + "\nd = y - 0.002 * 2 * (x @ w)\nprint(saved.path, float(d.mean()), float(np.sqrt((d * d).mean())))\n"
    paths = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                             check=False)
        assert out.returncode == 0, out.stderr
        path, bias, rms = out.stdout.split()
        paths.append(path)
        # 300 rows are 3 tiles of 128, each read with ~1.8 LSB of noise: sqrt(3) * 1.8 = 3.1 LSB rms, no bias
        assert abs(float(bias)) < 0.5 and float(rms) < 4.0
    assert paths[0] != paths[1] and all(Path(p).parent == tmp_path / "store" / "chip=3" for p in paths)
