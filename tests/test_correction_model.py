"""One correction model (calib.model) for the engine, verify and the benchmarks; one check; one error class."""
from pathlib import Path

import numpy as np
import pytest

from bss2_calib import calib, infer
from bss2_calib.calib.model import CorrectionModel, Faults
from bss2_calib.chipsim import COLS, ROWS, Chip
from bss2_calib.infer import CorrectionOptions, Corrections, Engine

V2 = Path(__file__).parent / "data" / "artifacts" / "v2-noiseless-chip0"


def test_one_error_class_and_one_check():
    assert infer.IncompatibleArtifact is calib.IncompatibleArtifact
    assert infer.CorrectionTableError is calib.errors.CorrectionTableError
    art = calib.load(V2)
    corr = Corrections.from_artifact(art)
    for chip, run in ((Chip(1, "noiseless"), {}), (Chip(0, "default"), {}), (Chip(0, "noiseless"), {"num_sends": 250}),
                      (Chip(0, "noiseless"), {"wait_between_events": 9})):
        with pytest.raises(calib.IncompatibleArtifact) as a:
            art.check(chip, **run)
        # the engine refuses with the same class, the same field and the same explanation
        with pytest.raises(calib.IncompatibleArtifact) as b:
            Engine(chip, art, **run)
        assert a.value.field == b.value.field and str(b.value).startswith(str(a.value))
        assert corr.mismatches(chip, **run)[0] == (a.value.field, str(a.value))


def test_engine_output_is_the_model_prediction_column_by_column():
    """On a noiseless chip the engine returns what the model predicts for the codes it programs.

    The chip rounds to int8 (0.5 LSB, divided by the column's headroom scale once corrected);
    the noiseless calibration's tables are quantization-limited to about 0.6 % of the summed
    magnitude of the contributions (signed weights cancel, their table errors do not).
    """
    art = calib.load(V2)
    chip = Chip(0, "noiseless")
    engine = Engine(chip, art, num_sends=2)
    model = CorrectionModel.from_artifact(art)
    corr = engine.corrections[0]
    rng = np.random.default_rng(3)
    w = rng.integers(-63, 64, (ROWS, COLS))
    x = np.where(rng.random((64, ROWS)) < 0.15, rng.integers(1, 32, (64, ROWS)), 0)
    y = engine.matmul(x, w)
    codes = chip.get_weights(0)
    _, scale, _, _ = corr.predistort(w, 0, np.arange(ROWS), np.arange(COLS))
    xp = corr.lut_rows(0, np.arange(ROWS))[np.arange(ROWS), x]
    pred = (model.predict(xp, codes, 0, 2) - model.offset[:COLS]) / (scale * model.send_factor(2))
    inside = np.abs(pred) < 100
    err = np.where(inside, np.abs(y - pred), 0.0)
    magnitude = 0.002 * 2 * (x @ np.abs(w))
    assert np.all(err <= 0.5 / scale + 0.006 * magnitude + 0.05)
    assert np.all(np.abs(np.where(inside, y - pred, 0).mean(axis=0)) < 0.25)  # no column is biased
    # and the engine's output is the target product (the inversion is right)
    target = 0.002 * 2 * (x @ w)
    assert np.sqrt(np.mean((y - target)[inside] ** 2)) < 0.6


def test_weak_neurons_keep_their_fitted_gain_in_model_and_engine():
    """A neuron whose fit succeeded but whose gain is below half the target is corrected with that gain."""
    ident = Corrections.identity()
    gain = ident.gain_exc.copy()
    gain[7] = 0.4
    ok = np.ones(512, bool)
    ok[7] = False  # the artifact marks a weak neuron failed
    weak = Corrections(pulse_steps=ident.pulse_steps, gain_exc=gain, gain_inh=ident.gain_inh,
                       offset_lsb=np.full(512, 3.0), synapse_exc=ident.synapse_exc, synapse_inh=ident.synapse_inh,
                       neuron_ok=ok)
    assert weak.neuron_weak[7] and weak.neuron_fitted[7] and weak.summary()["weak_neurons"] == 1
    assert weak.effective_gain[0, 0, 0, 7] == pytest.approx(0.4)
    assert weak.offset[7] == 3.0
    w = np.zeros((ROWS, COLS), int)
    w[:, 7] = 10
    x = np.full((1, ROWS), 31)
    pred = CorrectionModel.from_artifact(weak).predict(x, w, 0, 1)
    assert pred[0, 7] == pytest.approx(3.0 + 0.002 * 0.4 * 31 * 10 * ROWS)
    # a neuron whose fit produced nothing falls back to nominal, a dead one carries nothing
    gain[8] = np.nan
    nominal = Corrections(pulse_steps=ident.pulse_steps, gain_exc=gain, gain_inh=ident.gain_inh,
                          offset_lsb=ident.offset_lsb, synapse_exc=ident.synapse_exc, synapse_inh=ident.synapse_inh,
                          neuron_ok=ok & (np.arange(512) != 8),
                          faults=Faults(neuron_dead=np.arange(512) == 9))
    assert nominal.gain_exc_used[8] == 1.0 and nominal.gain_exc_used[9] == 0.0
    assert nominal.summary()["neurons_not_calibrated"] == 1


def test_the_inference_package_loads_no_fitting_code():
    import subprocess
    import sys

    code = ("import sys; import bss2_calib.infer, bss2_calib.calib; "
            "assert 'scipy' not in sys.modules, 'scipy imported'; "
            "assert 'bss2_calib.calib.pipeline' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_routing_costs_come_from_the_artifact():
    """The cost of a column or driver corrected with nominal values is the artifact's measured spread."""
    from bss2_calib.infer.routing import Hemisphere

    art = calib.load(V2)
    corr = Corrections.from_artifact(art)
    spread = corr.neuron_gain_spread()
    gains = np.concatenate([corr.gain_exc, corr.gain_inh])
    assert spread == pytest.approx(np.sqrt(np.mean((gains - 1) ** 2)))
    assert spread < 0.01  # a noiseless chip's calibrated gains are within the rounding of 1
    hs = Hemisphere(corr, 0)
    assert hs.uncal_neuron_cost == pytest.approx(spread)
    assert hs.uncal_driver_cost == pytest.approx(corr.driver_gain_spread())
    ident = Corrections.identity()
    assert Hemisphere(ident, 0).uncal_neuron_cost == 0.0
    assert CorrectionOptions().min_scale == 0.5
