"""chipsim: property tests (hypothesis) of invariants the physics gives."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2_calib.chipsim import Chip

NOISELESS = Chip(0, "noiseless")
CHIPS = {name: Chip(3, name, noise_seed=0) for name in ("default", "harsh", "ideal", "hxtorch-mock")}


def _arrays(seed, batch, wmax):
    rng = np.random.default_rng(seed)
    x1 = rng.integers(0, 16, (batch, 128))
    x2 = rng.integers(0, 16, (batch, 128))
    w = rng.integers(-wmax, wmax + 1, (128, 256))
    return x1, x2, w


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 80), wmax=st.integers(0, 12),
       num_sends=st.integers(1, 3))
def test_noiseless_chip_is_linear(seed, batch, wmax, num_sends):
    """round() of a linear map: additive up to one LSB of rounding, exact away from .5 ties."""
    x1, x2, w = _arrays(seed, batch, wmax)
    NOISELESS.set_weights(w, 0)
    y1, y2, y12 = (NOISELESS.run(x, 0, num_sends=num_sends).astype(int) for x in (x1, x2, x1 + x2))
    exact = 0.002 * num_sends * ((x1 + x2) @ w).astype(np.float64)
    unclipped = np.abs(exact) < 126
    assert np.all(np.abs(y1 + y2 - y12)[unclipped] <= 1)
    away_from_ties = np.abs(exact - np.floor(exact) - 0.5) > 1e-6
    sel = unclipped & away_from_ties
    assert np.array_equal(y12[sel], np.rint(exact[sel]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 300), preset=st.sampled_from(sorted(CHIPS)),
       num_sends=st.integers(1, 8), scale=st.sampled_from([1, 8, 63]))
def test_results_respect_the_clipping_bounds(seed, batch, preset, num_sends, scale):
    rng = np.random.default_rng(seed)
    chip = CHIPS[preset]
    h = int(rng.integers(0, 2))
    chip.set_weights(rng.integers(-scale, scale + 1, (128, 256)), h)
    y = chip.run(rng.integers(0, 32, (batch, 128)), h, num_sends=num_sends).astype(int)
    assert y.min() >= -128 and y.max() <= 127
    if preset != "hxtorch-mock":  # the raw 8-bit ADC range around the baseline read
        base = np.clip(np.rint(chip.truth.baseline()[h * 256:(h + 1) * 256]), 0, 255)
        assert np.all(y >= -base) and np.all(y <= 255 - base)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), row=st.integers(0, 127), step=st.integers(1, 10))
def test_noiseless_output_is_monotone_in_each_input(seed, row, step):
    rng = np.random.default_rng(seed)
    w = rng.integers(-20, 21, (128, 256))
    NOISELESS.set_weights(w, 1)
    x = rng.integers(0, 32 - step, (4, 128))
    more = x.copy()
    more[:, row] += step
    d = NOISELESS.run(more, 1).astype(int) - NOISELESS.run(x, 1)
    assert np.all(d[:, w[row] > 0] >= 0) and np.all(d[:, w[row] < 0] <= 0)
