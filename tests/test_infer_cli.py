"""``bss2-calib infer`` through click's CliRunner."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from cli.cmd_infer import MODELS_DIR
from cli.main import main


def _have_mnist():
    from infer.data import MnistNotFoundError, mnist_idx_dir

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
