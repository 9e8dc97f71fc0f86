"""Property tests: invariants the physics and the formats give."""
import functools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bss2_calib.chipsim import COLS, ROWS, Chip
from bss2_calib import calib
from bss2_calib.calib.fits.monotone import isotonic
from bss2_calib.calib.model import CorrectionModel
from bss2_calib.calib.schema import TABLES, check_frame

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(-1e3, 1e3)),
       arrays(np.float64, 40, elements=st.floats(0.01, 100)))
def test_isotonic_is_monotone_idempotent_and_mean_preserving(y, w):
    w = w[:len(y)]
    f = isotonic(y, w)
    assert np.all(np.diff(f) >= -1e-9)
    np.testing.assert_allclose(isotonic(f, w), f, atol=1e-9)
    np.testing.assert_allclose((f * w).sum(), (y * w).sum(), rtol=1e-9, atol=1e-6)
    if np.all(np.diff(y) >= 0):
        np.testing.assert_allclose(f, y)


@FAST
@given(st.integers(0, 2**31), st.integers(1, 16), st.sampled_from([1, 5, 255]))
def test_identity_tables_are_a_no_op(seed, n, wait):
    """With identity tables the correction model is the ideal product gain * n * x.w."""
    res = _identity_result(wait)
    model = CorrectionModel.from_artifact(res)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 32, size=(8, ROWS))
    w = rng.integers(-63, 64, size=(ROWS, COLS))
    for h in (0, 1):
        np.testing.assert_allclose(model.predict(x, w, h, n, send_decay=False), 0.002 * n * (x @ w),
                                   rtol=1e-12, atol=1e-9)


@functools.lru_cache(maxsize=4)
def _identity_result(wait):
    frames = {}
    for name, spec in TABLES.items():
        if spec.levels is None:
            continue
        idx = spec.make_index()
        cols = {}
        for c, dt in spec.columns.items():
            if dt == "bool":
                cols[c] = np.full(len(idx), c in ("success",))
            elif dt == "int64":
                cols[c] = np.zeros(len(idx), dtype=np.int64)
            else:
                cols[c] = np.zeros(len(idx))
        df = pd.DataFrame(cols, index=idx)
        if name == "neuron_correction":
            df["gain_exc"] = df["gain_inh"] = 1.0
        elif name == "synapse_gain":
            df["gain_exc"] = df["gain_inh"] = 1.0
        elif name == "driver_transfer":
            df["pulse_steps"] = np.tile(np.arange(32.0), 256)
        elif name == "weight_transfer":
            df["effective_weight"] = np.arange(64.0)
        check_frame(name, df)
        frames[name] = df
    manifest = {"chip_id": 0, "preset": {"name": "x", "sha256": "0" * 64}, "target": {"gain_lsb_per_unit": 0.002},
                "conditions": {"num_sends_ref": 8, "send_decay_per_send": 0.0, "wait_between_events": wait,
                               "num_sends_min": 1, "num_sends_max": 255, "temperature_c": 25.0,
                               "temperature_tolerance_k": 5.0}, "steps": []}
    return calib.CalibrationResult(manifest, frames)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vals=arrays(np.float64, 512, elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
       flags=arrays(np.bool_, 512))
def test_any_table_content_round_trips_exactly(vals, flags):
    base = calib.load(Path(__file__).parent / "data" / "bad" / "artifacts" / "good")
    frames = {k: base.tables[k] for k in base.tables}
    nc = _identity_result(5).tables["neuron_correction"]
    nc["offset_lsb"] = vals
    nc["success"] = flags
    frames["neuron_correction"] = nc
    res = calib.CalibrationResult(base.manifest, frames)
    with tempfile.TemporaryDirectory() as tmp:
        back = calib.load(res.save(Path(tmp) / "a").path)
        pd.testing.assert_frame_equal(back.tables["neuron_correction"], nc, check_exact=True)


def test_linearity_without_mismatch(calibrated_noiseless):
    """On a noiseless chip, the calibrated correction model reproduces the exact quantized product."""
    _, res = calibrated_noiseless
    model = CorrectionModel.from_artifact(res)
    rng = np.random.default_rng(0)
    chip = Chip(res.chip_id, "noiseless")
    res.apply_to(chip)
    for n in (1, 2, 4):
        w = rng.integers(-63, 64, size=(ROWS, COLS))
        x = np.where(rng.random((64, ROWS)) < 0.2, rng.integers(1, 32, size=(64, ROWS)), 0)
        y = chip.vmm(x, w, num_sends=n).astype(np.float64)
        pred = model.predict(x, w, 0, n, send_decay=False)
        inside = np.abs(pred) < 120
        # int8 rounding (0.5 LSB) plus the tables' own quantization-limited error (< 0.6 %)
        assert np.abs(y - pred)[inside].max() <= 0.5 + 0.006 * np.abs(pred[inside]).max() + 0.1
        assert np.all(y >= -128) and np.all(y <= 127)
