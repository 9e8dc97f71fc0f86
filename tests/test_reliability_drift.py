"""Drift: ``calib.verify`` flags a stale artifact before MNIST accuracy falls by more than 0.5 points.

A subset of the test set (the first 2000 images) and a short sweep; the full sweeps are in
``benchmarks/reliability.py`` and docs/benchmarks.md ("Reliability: faults and drift").
"""
import warnings

import numpy as np
import pytest

from bss2_calib import calib
from bss2_calib.chipsim import Chip
from bss2_calib.infer import ArtifactMismatchWarning, Engine
from bss2_calib.infer.apps.mnist import APP as MNIST


N_IMAGES = 2000
DROP = 0.005


@pytest.fixture(scope="module")
def setup(calibrated_default):
    from bss2_calib.cli.cmd_infer import MODELS_DIR
    from bss2_calib.infer.data import MnistNotFoundError, load_mnist

    try:
        images, labels = load_mnist("test", limit=N_IMAGES)
    except MnistNotFoundError:
        pytest.skip("needs the MNIST files")
    models = {name: MNIST.load_model(MODELS_DIR / f"{name}.npz") for name in ("mnist_hil", "mnist_int")}
    art = calibrated_default[1]  # chip 0, noise seed 0: calibrated once per session
    assert art.chip_id == 0
    return art, images, labels, models


def _accuracy(chip, art, images, labels, model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ArtifactMismatchWarning)
        engine = Engine(chip, art, allow_mismatch=True)
    return MNIST.evaluate(model, images, labels, engine, batch_size=N_IMAGES).accuracy


def _sweep(setup, chips):
    art, images, labels, models = setup
    points = []
    for chip in chips:
        rep = calib.verify(art, chip)
        points.append((rep, {m: _accuracy(chip, art, images, labels, model) for m, model in models.items()}))
    return points


def _ageing(hours):
    """Chip 0 aged by each of ``hours`` along one drift path, with common random numbers.

    Each point is a fresh chip with the same noise seed advanced in one step: its drift is the same
    random direction scaled by sqrt(hours), and verify and the evaluation draw the same noise bits at
    every age, so accuracy differences between ages are the drift's, not the trial-to-trial noise's
    (one draw on 2000 images moves accuracy by about 0.3 points, close to the 0.5-point threshold).
    """
    for h in hours:
        chip = Chip(0, "default", noise_seed=7)
        chip.advance(hours=h)
        yield chip


def test_verify_flags_ageing_before_accuracy_drops(setup):
    points = _sweep(setup, _ageing((0, 8, 32, 2048)))
    verdicts = [rep.valid for rep, _ in points]
    assert verdicts[:2] == [True, True]  # the fresh and the slightly aged chip pass: no false alarm
    first_flag = verdicts.index(False)
    ref = points[0][1]
    for m in ref:
        drops = [i for i, (_, acc) in enumerate(points) if acc[m] < ref[m] - DROP]
        assert drops, f"{m}: the sweep must reach a drop of 0.5 points, or the test proves nothing"
        assert first_flag < drops[0], (m, first_flag, drops, [acc[m] for _, acc in points])
        # and where verify first flags, the accuracy is still within 0.5 points
        assert points[first_flag][1][m] >= ref[m] - DROP
    rep = points[first_flag][0]
    assert rep.gain_deviation_rms > rep.gain_threshold or rep.offset_deviation_rms_lsb > rep.offset_threshold_lsb
    assert rep.vectors < 1000  # a small fraction of a calibration's ~40 k vectors


def test_verify_flags_a_temperature_step_before_accuracy_drops(setup):
    def chips():
        for t in (25.0, 28.0, 31.0):
            chip = Chip(0, "default", noise_seed=7)
            chip.advance(temperature_c=t)
            yield chip

    points = _sweep(setup, chips())
    assert [rep.valid for rep, _ in points] == [True, True, False]
    assert "temperature" in points[2][0].reason  # refused by the artifact's conditions (25 +- 5 degC)
    ref = points[0][1]
    for m in ref:
        assert all(acc[m] >= ref[m] - DROP for _, acc in points)  # nothing lost yet when it is flagged
    assert np.isfinite(points[1][0].gain_deviation_rms) and points[1][0].gain_deviation_rms > 0.003
