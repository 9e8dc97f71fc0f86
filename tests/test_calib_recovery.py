"""The simulator is the oracle: calibration recovers injected mismatch within noise-derived tolerances.

Only these tests (and the benchmark) look at ``chip.truth``; the calibration never does.
"""
import copy

import numpy as np
import pytest

from bss2_calib.chipsim import COLS, ROWS
from bss2_calib.calib.model import CorrectionModel

NOISE = 1.8  # LSB per result (preset default)


@pytest.fixture(scope="module")
def calibrated(calibrated_default):
    return calibrated_default  # (chip, result), calibrated once per session: read only


def test_full_calibration_succeeds_within_budget(calibrated):
    chip, res = calibrated
    assert res.ok and not res.failed_stages
    totals = res.manifest["totals"]
    # the budget in simulated hardware time (the chip's clock), never the host's wall time
    assert 0.5 < totals["hw_time_s"] <= 10.0
    assert totals["vectors"] <= 60_000
    assert res.conditions["num_sends_min"] <= 8 <= res.conditions["num_sends_max"]
    assert 0 < res.conditions["send_decay_per_send"] < 1e-3
    # knob steps: almost every instance succeeds on a default chip
    for s in res.steps:
        assert s["n_failed"] <= max(3, 0.02 * s["n_instances"]), s


def test_knobs_equalise_the_chip(calibrated):
    chip, _ = calibrated
    st = chip.truth.state()
    # baseline reads at the target within the knob resolution (0.4 LSB) and noise
    assert np.abs(chip.truth.baseline() - 120).max() < 1.5
    # the leak is off: only the residual leak is left
    assert st["leak"].max() < 5e-4
    # driver comparator offsets trimmed from 0.8 steps rms to the trim resolution (0.08 steps)
    assert np.sqrt(np.mean(st["driver_offset"] ** 2)) < 0.1


def test_offsets_recovered_within_their_noise(calibrated):
    chip, res = calibrated
    model = CorrectionModel.from_artifact(res)
    truth = np.concatenate([chip.truth.neuron_offset(h, num_sends=8) for h in (0, 1)])
    err = model.offset - truth
    sem = NOISE / np.sqrt(res.manifest["options"]["tables"]["offset_vectors"])
    assert np.sqrt(np.mean(err ** 2)) < 1.5 * sem + 0.02  # ~0.08 LSB noise-limited
    assert np.sqrt(np.mean(err ** 2)) < 0.3


def test_gains_recovered(calibrated):
    chip, res = calibrated
    model = CorrectionModel.from_artifact(res)
    gt = model.gain_target
    T31 = model.T[:, 31].reshape(2, ROWS)
    pt = np.stack([chip.truth.pulse_table(h)[:, 31] for h in (0, 1)])
    sg = np.stack([chip.truth.synapse_gain(h, num_sends=8) for h in (0, 1)])
    for k, (g, s) in enumerate(((model.gain_exc, model.s_exc), (model.gain_inh, model.s_inh))):
        fit = gt * T31[:, :, None] * g.reshape(2, 1, COLS) * s
        true = pt[:, :, None] * sg[:, k]
        rel = fit / true - 1
        # per synapse: noise of the one-hot slope, 1.8 LSB on ~55 LSB with 21 points -> ~0.75 %
        per_synapse = NOISE / (3.9 * 13) / np.sqrt(21)
        assert np.sqrt(np.mean(rel ** 2)) < 1.5 * per_synapse
        assert np.sqrt(np.mean(rel ** 2)) < 0.02
        col = fit.mean(axis=1) / true.mean(axis=1) - 1
        assert np.sqrt(np.mean(col ** 2)) < 0.005
        assert abs(np.mean(col)) < 0.002


def test_driver_transfer_recovered(calibrated):
    chip, res = calibrated
    model = CorrectionModel.from_artifact(res)
    for h in (0, 1):
        pt = chip.truth.pulse_table(h)
        T = model.T[h * ROWS:(h + 1) * ROWS]
        c = np.median(pt[:, 31]) / 31
        err = T - pt / c
        assert np.abs(err).max() < 0.5
        assert np.sqrt(np.mean(err ** 2)) < 0.1
        assert np.all(np.diff(T, axis=1) >= 0) and np.all(T[:, 0] == 0)


def test_correction_model_predicts_the_chip(calibrated):
    chip, res = calibrated
    chip = copy.deepcopy(chip)  # programmed below: the shared chip stays as calibrated
    model = CorrectionModel.from_artifact(res)
    rng = np.random.default_rng(5)
    w = rng.integers(-63, 64, size=(ROWS, COLS))
    x = np.where(rng.random((256, ROWS)) < 0.25, rng.integers(1, 32, size=(256, ROWS)), 0)
    for h in (0, 1):
        chip.set_weights(w, h)
        pred = model.predict(x, w, h, num_sends=2)
        exact = chip.truth.expected(x, h, num_sends=2, saturate=False)
        lin = np.abs(exact - model.offset[h * COLS:(h + 1) * COLS]) < 70
        err = (pred - exact)[lin]
        assert np.sqrt(np.mean(err ** 2)) < 0.35  # the model's own error, far below the 1.8 LSB noise


def test_noiseless_chip_yields_identity_tables(calibrated_noiseless):
    _, res = calibrated_noiseless
    assert res.ok
    t = res.tables
    # no mismatch and no noise: only the int8 rounding limits the identity (0.5 LSB on ~55 LSB probes)
    nc = t["neuron_correction"]
    np.testing.assert_allclose(nc["gain_exc"], 1, atol=0.006)
    np.testing.assert_allclose(nc["gain_inh"], 1, atol=0.006)
    np.testing.assert_allclose(nc["offset_lsb"], 0, atol=1e-3)
    np.testing.assert_array_equal(nc["noise_lsb"], 0)
    np.testing.assert_allclose(t["synapse_gain"]["gain_exc"], 1, atol=1e-9)
    np.testing.assert_allclose(t["synapse_gain"]["gain_inh"], 1, atol=1e-9)
    ps = t["driver_transfer"]["pulse_steps"].to_numpy().reshape(256, 32)
    np.testing.assert_allclose(ps, np.tile(np.arange(32.0), (256, 1)), atol=0.3)
    np.testing.assert_allclose(t["weight_transfer"]["effective_weight"], np.arange(64.0), atol=0.4)
    for name in ("neuron_correction", "synapse_gain", "driver_transfer", "weight_transfer"):
        assert t[name]["success"].all(), name
    assert not t["synapse_gain"][["stuck_zero_exc", "stuck_max_exc", "stuck_zero_inh", "stuck_max_inh"]].any().any()


def test_faults_are_detected_and_masked(calibrated_harsh):
    chip, res = calibrated_harsh
    assert res.ok
    f = chip.truth.faults()
    nc, dt, sg = res.tables["neuron_correction"], res.tables["driver_transfer"], res.tables["synapse_gain"]
    assert np.array_equal(nc["dead"].to_numpy(), f["dead_neuron"])
    assert np.array_equal(nc["noisy"].to_numpy(), f["noisy_neuron"])
    assert np.array_equal(dt["dead"].to_numpy().reshape(256, 32)[:, 0], f["dead_driver"])
    bad_neuron = (f["dead_neuron"] | f["noisy_neuron"])
    assert not nc["success"].to_numpy()[bad_neuron].any()
    usable = ~(f["dead_driver"].reshape(2, ROWS, 1) | f["dead_neuron"].reshape(2, 1, COLS))
    for k, sign in enumerate(("exc", "inh")):
        for kind in ("stuck_zero", "stuck_max"):
            found = sg[f"{kind}_{sign}"].to_numpy().reshape(2, ROWS, COLS)
            true = f[kind][:, k] & usable
            recall = (found & true).sum() / max(true.sum(), 1)
            false_alarms = (found & ~f[kind][:, k]).sum()
            assert recall >= 0.9, (kind, sign, recall)
            assert false_alarms <= 0.002 * found.size, (kind, sign, false_alarms)
    flagged = sg[["stuck_zero_exc", "stuck_max_exc", "stuck_zero_inh", "stuck_max_inh"]].any(axis=1).to_numpy()
    assert not sg["success"].to_numpy()[flagged].any()
