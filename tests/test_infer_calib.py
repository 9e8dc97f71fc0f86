"""The engine with artifacts made by calib (integration with the calibration package)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from bss2_calib import calib
from bss2_calib.chipsim import Chip
from bss2_calib.infer import Corrections, Engine, IncompatibleArtifact



CHIP = 0  # the session's shared default calibration (tests/conftest.py)


@pytest.fixture(scope="module")
def store(default_store):
    assert default_store.latest(CHIP) is not None
    return default_store  # read only


def _column_spread(engine, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 32, (400, 128)) * (rng.random((400, 128)) < 0.5)
    w = rng.integers(-40, 41, (128, 256))
    w = w // 4  # num_sends 8: outputs stay in the linear range
    y = engine.matmul(x, w, num_sends=8)
    ideal = 0.002 * 8 * (x @ w).astype(np.float64)
    xm, ym = ideal - ideal.mean(0), y - y.mean(0)
    slope = (xm * ym).sum(0) / (xm * xm).sum(0)
    return np.std(slope) / np.mean(slope), np.mean(slope)


def test_a_calib_artifact_makes_the_chip_behave_like_an_ideal_one(store):
    art = calib.load(store.latest(CHIP))
    engine = Engine(Chip(CHIP, "default", noise_seed=1, truth_access=False), art)
    spread, slope = _column_spread(engine)
    ideal_spread, _ = _column_spread(Engine(Chip(CHIP, "ideal", noise_seed=1)))
    raw_spread, _ = _column_spread(Engine(Chip(CHIP, "default", noise_seed=1)))
    assert raw_spread > 0.05
    assert spread < 1.5 * ideal_spread + 0.005
    assert abs(slope - 1) < 0.03  # LSB at the artifact's target gain
    m = engine.measure(num_sends=8)
    assert m.gain == pytest.approx(0.002, rel=0.02) and 1.5 < m.noise_std < 2.2


def test_calib_artifacts_are_checked_like_any_other(store):
    art = calib.load(store.latest(CHIP))
    with pytest.raises(IncompatibleArtifact) as err:
        Engine(Chip(5, "default"), art)
    assert err.value.field == "chip_id"
    assert Corrections.from_artifact(art).conditions["num_sends_ref"] >= 1


def test_cli_with_a_stored_artifact(store):
    from bss2_calib.cli.main import main
    from bss2_calib.infer.data import MnistNotFoundError, mnist_idx_dir

    try:
        mnist_idx_dir()
    except MnistNotFoundError:
        pytest.skip("needs the MNIST files")
    res = CliRunner().invoke(main, ["infer", "--chip", str(CHIP), "--artifact", f"chip-{CHIP}", "--store",
                                    str(store.root), "--limit", "200", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["calibrated"] and out["accuracy"] > 0.95
    res = CliRunner().invoke(main, ["infer", "--chip", "3", "--artifact", f"chip-{CHIP}", "--store",
                                    str(store.root), "--limit", "20"])
    assert res.exit_code == 1 and "chip_id" in res.output and res.output.count("\n") == 1


@pytest.mark.slow
def test_shipped_models_on_a_calibrated_chip_meet_the_targets(calibrated_default):
    """The headline of docs/benchmarks.md, on the full test set (numpy path, no torch)."""
    from bss2_calib.cli.cmd_infer import MODELS_DIR
    from bss2_calib.infer.apps.mnist import APP as MNIST
    from bss2_calib.infer.data import MnistNotFoundError, load_mnist

    try:
        images, labels = load_mnist("test")
    except MnistNotFoundError:
        pytest.skip("needs the MNIST files")
    art = calibrated_default[1]  # chip 0, noise seed 0: calibrated once per session
    float_acc = MNIST.evaluate_float(MNIST.load_float(MODELS_DIR / "mnist_float.npz"), images, labels).accuracy
    acc = {}
    for name in ("mnist_int", "mnist_hil"):
        model = MNIST.load_model(MODELS_DIR / f"{name}.npz")
        # the mean over noise draws: one draw varies by +-0.06 points (docs/benchmarks.md)
        acc[name] = np.mean([MNIST.evaluate(model, images, labels, Engine(Chip(0, "default", noise_seed=s), art),
                                            batch_size=2000).accuracy for s in range(3)])
    assert acc["mnist_int"] >= float_acc - 0.01
    assert acc["mnist_hil"] >= max(0.98, float_acc - 0.003)
