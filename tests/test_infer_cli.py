"""``bss2-calib infer`` through click's CliRunner."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bss2_calib.cli.cmd_infer import MODELS_DIR
from bss2_calib.cli.main import main


def _have_mnist():
    from bss2_calib.infer.data import MnistNotFoundError, mnist_idx_dir

    try:
        mnist_idx_dir()
    except MnistNotFoundError:
        return False
    return True


needs_data = pytest.mark.skipif(not _have_mnist() or not (MODELS_DIR / "mnist_int.npz").is_file(),
                                reason="needs the MNIST files and data/models/mnist_int.npz")


@needs_data
def test_infer_uncalibrated_json():
    res = CliRunner().invoke(main, ["infer", "--uncalibrated", "--limit", "60", "--batch-size", "25", "--json",
                                    "--weights", str(MODELS_DIR / "mnist_int.npz")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["images"] == 60 and 0.5 < out["accuracy"] <= 1 and not out["calibrated"]
    assert out["hw_time_per_image_us"] > 500 and out["images_per_s"] > 0
    assert out["engine"]["calls"] == 3 * 3  # one engine call per layer and batch


@needs_data
def test_infer_text_output_on_the_mock_preset():
    res = CliRunner().invoke(main, ["infer", "--uncalibrated", "--preset", "hxtorch-mock", "--limit", "20"])
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and "us per image" in res.output


@pytest.mark.parametrize("args, code, message", [
    (["infer", "--limit", "5"], 2, "exactly one of --artifact"),
    (["infer", "--uncalibrated", "--artifact", "x", "--limit", "5"], 2, "exactly one of --artifact"),
    (["infer", "--uncalibrated", "--limit", "0"], 2, "--limit"),
    (["infer", "--uncalibrated", "--model", "cifar"], 2, "cifar"),
    (["infer", "--uncalibrated", "--preset", "nosuch", "--limit", "5"], 1, "unknown preset"),
])
def test_bad_arguments_give_one_line_errors(args, code, message, tmp_path):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == code
    assert message in res.output
    assert "Traceback" not in res.output


def test_a_bad_weights_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, nothing=np.zeros(3))
    res = CliRunner().invoke(main, ["infer", "--uncalibrated", "--weights", str(bad), "--limit", "5"])
    assert res.exit_code == 1
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1


# ------------------------------------------------------------------ bad input
CORPUS = Path(__file__).resolve().parent / "data" / "bad" / "artifacts"
_GOOD_META = {"format": "bss2-calib/mnist-integer-model", "schema_version": 1, "input_gain": 31, "input_shift": 8,
              "num_sends": [1, 1, 1], "relu_shifts": [2, 2], "weight_scales": [1.0, 1.0, 1.0]}


def _int_arrays(dtype=np.int8, fill=0):
    return {"conv": np.full((20, 1, 10, 10), fill, dtype), "fc1": np.zeros((500, 128), dtype),
            "fc2": np.zeros((128, 10), dtype)}


def _write_model(path, kind):
    meta = dict(_GOOD_META)
    arrays = _int_arrays()
    if kind == "text":
        path.write_text("these are not weights")
        return
    if kind == "empty":
        path.write_bytes(b"")
        return
    if kind == "missing arrays":
        np.savez(path, nothing=np.zeros(3))
        return
    if kind == "NaN weights":
        arrays = _int_arrays(np.float32, np.nan)
    elif kind == "NaN weight scale":
        meta["weight_scales"] = [float("nan"), 1.0, 1.0]
    elif kind == "NaN num_sends":
        meta["num_sends"] = [float("nan"), 1, 1]
    elif kind == "inf input gain":
        meta["input_gain"] = float("inf")
    elif kind == "num_sends beyond the chip":
        meta["num_sends"] = [1, 1, 1000]
    elif kind == "weights out of range":
        arrays["fc2"][0, 0] = 100
    elif kind == "wrong format":
        meta["format"] = "bss2-calib/mnist-float-weights"
    elif kind == "metadata not JSON":
        np.savez(path, **arrays, metadata=np.array("{not json"))
        return
    elif kind == "metadata pickled":
        np.savez(path, **arrays, metadata=np.array([{"a": 1}], dtype=object))
        return
    np.savez(path, **arrays, metadata=np.array(json.dumps(meta)))


def _one_line_error(res, code=1, message=None):
    assert res.exit_code == code, (res.exit_code, res.output)
    assert isinstance(res.exception, SystemExit), repr(res.exception)  # no traceback
    assert "Traceback" not in res.output
    if code == 1:
        assert res.stderr.startswith("Error: ") and res.stderr.count("\n") == 1, res.stderr
    if message is not None:
        assert message in res.output


@pytest.mark.parametrize("kind, message", [
    ("text", "not an .npz archive"),
    ("empty", "not an .npz archive"),
    ("missing arrays", "missing arrays"),
    ("NaN weights", "must be int8"),
    ("NaN weight scale", "weight_scales must be finite"),
    ("NaN num_sends", "num_sends must be an integer"),
    ("inf input gain", "input_gain must be an integer"),
    ("num_sends beyond the chip", "num_sends must be in 1..255"),
    ("weights out of range", "weights must be in -63..63"),
    ("wrong format", "not a bss2-calib/mnist-integer-model file"),
    ("metadata not JSON", "unreadable model file"),
    ("metadata pickled", "unreadable model file"),
])
def test_bad_weights_files_are_one_line_errors(kind, message, tmp_path):
    path = tmp_path / "model.npz"
    _write_model(path, kind)
    res = CliRunner().invoke(main, ["infer", "--uncalibrated", "--weights", str(path), "--limit", "5"])
    _one_line_error(res, 1, message)
    assert str(path.name) in res.stderr  # the message names the file


def test_missing_weights_file_and_directory(tmp_path):
    res = CliRunner().invoke(main, ["infer", "--uncalibrated", "--weights", str(tmp_path / "no.npz")])
    _one_line_error(res, 1, "no such file")
    res = CliRunner().invoke(main, ["infer", "--uncalibrated", "--weights", str(tmp_path)])
    _one_line_error(res, 2, "is a directory")


@pytest.mark.parametrize("case, extra, message", [
    ("corrupt_byte", [], "checksum mismatch"),
    ("truncated_table", [], "truncated or modified"),
    ("missing_manifest", [], "manifest is missing"),
    ("not_json", [], "not valid JSON"),
    ("path_outside", [], "outside the artifact directory"),
    ("schema_version_99", [], "schema version 99 is not supported"),
    ("wrong_kind", [], "not a calibration artifact"),
    ("wrong_table_shape", [], "expected 256"),
    ("good", ["--chip", "3"], "field chip_id"),
    ("good", ["--preset", "harsh"], "field preset.sha256"),
])
def test_corrupt_or_foreign_artifacts_are_one_line_errors(case, extra, message, tmp_path):

    art = tmp_path / case
    shutil.copytree(CORPUS / case, art)
    res = CliRunner().invoke(main, ["infer", "--artifact", str(art), "--limit", "5", *extra])
    _one_line_error(res, 1, message)


def test_missing_artifacts_are_one_line_errors(tmp_path):
    res = CliRunner().invoke(main, ["infer", "--artifact", str(tmp_path / "nothing"), "--limit", "5"])
    _one_line_error(res, 1, "no artifact at")
    res = CliRunner().invoke(main, ["infer", "--artifact", "chip-9", "--store", str(tmp_path), "--limit", "5"])
    _one_line_error(res, 1, "no calibration of chip 9")


@pytest.mark.parametrize("args, code, message", [
    (["--limit", "-1"], 2, "--limit"),
    (["--limit", "abc"], 2, "--limit"),
    (["--limit", "2.5"], 2, "--limit"),
    (["--batch-size", "0"], 2, "--batch-size"),
    (["--spare-rows", "some"], 2, "--spare-rows"),
    (["--spare-columns", "-3"], 2, "--spare-columns"),
    (["--spare-rows", "500"], 1, "--spare-rows must be an integer in 0..120"),
])
def test_bad_run_options(args, code, message):
    res = CliRunner().invoke(main, ["infer", "--uncalibrated", *args])
    _one_line_error(res, code, message)


@needs_data
def test_a_limit_beyond_the_test_set_is_said(monkeypatch):
    from bss2_calib import infer
    import bss2_calib.infer.data  # noqa: F401  (the submodule, patched below)

    real = infer.data.load_mnist
    monkeypatch.setattr(infer.data, "load_mnist", lambda split, limit=None: tuple(a[:30] for a in real(split, 30)))
    res = CliRunner().invoke(main, ["infer", "--uncalibrated", "--limit", "100", "--json",
                                    "--weights", str(MODELS_DIR / "mnist_int.npz")])
    assert res.exit_code == 0, res.output
    assert "exceeds the 30 test images" in res.stderr
    assert json.loads(res.stdout)["images"] == 30


@needs_data
def test_infer_reports_the_faults_it_routed_around(harsh_store):
    store = harsh_store  # harsh chip 0, calibrated once per session
    base = ["infer", "--chip", "0", "--preset", "harsh", "--artifact", "chip-0", "--store", str(store.root),
            "--limit", "100"]
    outs = {}
    for flags in (("--remap", "--no-spill"), ("--no-remap", "--no-spill"), ("--remap",)):
        res = CliRunner().invoke(main, [*base, *flags, "--json"])
        assert res.exit_code == 0, res.output
        outs[flags] = json.loads(res.stdout)
    on, off = outs["--remap", "--no-spill"]["faults"], outs["--no-remap", "--no-spill"]["faults"]
    assert on["remap"] and not off["remap"]
    assert off["total"]["stuck_zero"]["met"] > 0 and off["lost"] > 10 * max(on["lost"], 1)
    assert [layer["name"] for layer in on["layers"]] == ["matrix 100x20", "matrix 500x128", "matrix 128x10"]
    # spill tiles (the default) run again what routing could not save (the 128-row layer has no free row)
    spill = outs["--remap",]
    assert on["lost"] > 0 and spill["faults"]["lost"] == 0 and spill["engine"]["spill_runs"] > 0
    # (not necessarily the same elements: spill tiles take slots, so later tiles land on other hemispheres)
    assert sum(c["spilled"] for c in spill["faults"]["total"].values()) > 0
    res = CliRunner().invoke(main, [*base, "--spare-rows", "auto", "--spare-columns", "auto", "--no-spill"])
    assert res.exit_code == 0, res.output
    assert "faults          0 elements lost, 0 spilled (0 spill runs; remap on, spill off;" in res.stdout
