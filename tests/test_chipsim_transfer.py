"""chipsim: the published transfer behaviour (hardware.md, chip-model.md), faults and drift."""
import numpy as np
import pytest

from bss2_calib.chipsim import Chip


def spread_weights(rng, wmax=63):
    """Signed weights spread over all rows (earlier rows are slightly weaker through the leak)."""
    return rng.integers(-wmax, wmax + 1, (128, 256))


def fitted_gain(chip, x, w, h=0, num_sends=1):
    """Least-squares slope of the mean result on sum(x * w) per send, all columns pooled."""
    s = (x @ w).astype(float)
    y = chip.vmm(x, w, hemisphere=h, num_sends=num_sends).astype(float)
    keep = np.abs(0.002 * num_sends * s) < 60  # well inside the linear range
    s, y = s[keep] * num_sends, y[keep]
    return np.sum(s * y) / np.sum(s * s)


# ------------------------------------------------------------------- gain
def test_gain_per_unit_of_sum_xw_per_send_ideal(rng):
    chip = Chip(0, "ideal", noise_seed=1)
    x = rng.integers(0, 32, (3000, 128))
    g = fitted_gain(chip, x, spread_weights(rng))
    assert 0.0018 <= g <= 0.0024
    g1 = fitted_gain(chip, x, spread_weights(rng), h=1)
    assert g1 == pytest.approx(g, rel=0.01)  # the ideal hemispheres are alike


def test_num_sends_scales_the_gain(rng):
    chip = Chip(0, "ideal", noise_seed=2)
    x = rng.integers(0, 32, (3000, 128))
    w = spread_weights(rng, 20)
    g1, g2, g4 = (fitted_gain(chip, x, w, num_sends=n) for n in (1, 2, 4))
    # per send, later sends decay less than the first (leak): 2 sends give 1.95x, 4 sends 3.7x
    assert g2 / g1 == pytest.approx(1.0, abs=0.04) and g4 / g1 == pytest.approx(1.0, abs=0.1)
    s = (x @ w).astype(float)
    y1 = chip.vmm(x, w).astype(float)
    y2 = chip.vmm(x, w, num_sends=2).astype(float)
    inside = np.abs(0.004 * s) < 60
    ratio = np.sum(y2[inside] * s[inside]) / np.sum(y1[inside] * s[inside])
    assert 1.85 <= ratio <= 2.05


# ------------------------------------------------------------------ noise
@pytest.mark.parametrize("preset", ["ideal", "default"])
def test_noise_std_is_1_6_to_2_lsb(rng, preset):
    chip = Chip(5, preset, noise_seed=3)
    chip.set_weights(spread_weights(rng, 20), 0)
    x = np.repeat(rng.integers(0, 32, (8, 128)), 250, axis=0)
    y = chip.run(x, 0).astype(float).reshape(8, 250, 256)
    std = y.std(axis=1, ddof=1).mean()
    assert 1.6 <= std <= 2.0
    assert std == pytest.approx(np.sqrt(1.8 ** 2 + 1 / 12), rel=0.03)  # a rounded 1.8 LSB noise


def test_zero_input_gives_zero_mean_output_ideal(rng):
    chip = Chip(0, "ideal", noise_seed=4)
    chip.set_weights(spread_weights(rng), 1)
    y = chip.run(np.zeros((400, 128), int), 1).astype(float)
    assert abs(y.mean()) < 4 * 1.82 / np.sqrt(y.size)
    assert np.all(np.abs(y.mean(axis=0)) < 5 * 1.82 / np.sqrt(400))


# ----------------------------------------------------- range and saturation
def ramp(chip, h, reps=60):
    """Means of inputs whose linear result ramps in steps of about 4 LSB to +-120 (columns 0..127 up,
    128..255 down), with the linear (unsaturated) expectation from the truth."""
    w = np.zeros((128, 256), int)
    w[:, :128] = 16
    w[:, 128:] = -16
    chip.set_weights(w, h)
    x = np.repeat(np.arange(32)[:, None] * np.ones(128, int), reps, axis=0)
    lin = chip.truth.expected(x[::reps], h, saturate=False)
    y = chip.run(x, h).astype(float).reshape(32, reps, 256).mean(axis=1)
    return lin, y


def test_linear_range_is_at_least_plus_minus_80_ideal():
    lin, mean = ramp(Chip(2, "ideal", noise_seed=5), 0)
    inside = np.abs(lin) <= 80
    assert inside.sum() > 5000 and lin.max() > 110 and lin.min() < -110
    tol = 0.02 * np.abs(lin) + 4.5 * 1.82 / np.sqrt(60)
    assert np.all(np.abs(mean - lin)[inside] <= tol[inside])
    beyond = lin < -95
    assert np.all(mean[beyond] > lin[beyond] + 5)  # and it does saturate beyond


def test_linear_range_of_the_default_chip():
    """Uncalibrated, +-80 LSB stays linear in most columns; some neurons saturate earlier."""
    lin, mean = ramp(Chip(2, "default", noise_seed=6), 1)
    inside = np.abs(lin) <= 80
    tol = 0.03 * np.abs(lin) + 4.5 * 1.82 / np.sqrt(60)
    ok_columns = np.all((np.abs(mean - lin) <= tol) | ~inside, axis=0)
    assert ok_columns.mean() > 0.9
    inside70 = np.abs(lin) <= 70
    assert np.all((np.abs(mean - lin) <= 0.05 * np.abs(lin) + 4.5 * 1.82 / np.sqrt(60))[inside70])


@pytest.mark.parametrize("preset", ["ideal", "default"])
def test_positive_clip_at_127_negative_saturation_near_minus_100_to_115(preset):
    chip = Chip(3, preset, noise_seed=7)
    w = np.zeros((128, 256), int)
    w[:, :128] = 63
    w[:, 128:] = -63
    chip.set_weights(w, 0)
    y = chip.run(np.full((200, 128), 31), 0)
    assert y.max() == 127
    # the int8 clip, or the raw ADC's 255 where the baseline reads above 128
    top = np.minimum(127, 255 - np.rint(chip.truth.baseline()[:128]))
    assert np.all(y[:, :128].max(axis=0) == top) and np.mean(y[:, :128] == top) > 0.95
    assert np.mean(top == 127) > 0.7
    neg = y[:, 128:].astype(float).mean(axis=0)
    assert -115 <= np.median(neg) <= -100
    assert np.all((neg > -124) & (neg < -95))
    assert y.min() >= -128


def test_results_stay_within_the_raw_adc_range_around_the_baseline(rng):
    chip = Chip(9, "harsh", noise_seed=8)
    base = np.rint(chip.truth.baseline())
    x = rng.integers(0, 32, (2, 600, 128))
    for h in (0, 1):
        chip.set_weights(np.sign(rng.standard_normal((128, 256))).astype(int) * 63, h)
    y = chip.run(x, "both").astype(int)
    for h in (0, 1):
        b = np.clip(base[h * 256:(h + 1) * 256], 0, 255)
        assert np.all(y[h] >= np.maximum(-b, -128)) and np.all(y[h] <= np.minimum(255 - b, 127))


# ------------------------------------------------------------ hxtorch-mock
def test_hxtorch_mock_matches_the_published_formula(rng):
    """floor(0.002 * num_sends * x.W + N(0, 2^2)), clipped to int8: compared in mean and spread."""
    chip = Chip(0, "hxtorch-mock", noise_seed=9)
    w = spread_weights(rng)
    x = rng.integers(0, 32, (40, 128))
    reps = 500
    xr = np.repeat(x, reps, axis=0)
    for n in (1, 3):
        ours = chip.vmm(xr, w, num_sends=n).astype(float).reshape(40, reps, 256)
        mean_lin = 0.002 * n * (x @ w).astype(np.float64)
        theirs = np.clip(np.floor(mean_lin[:, None, :] + rng.normal(0, 2.0, (40, reps, 256))), -128, 127)
        m_ours, m_theirs = ours.mean(axis=1), theirs.mean(axis=1)
        s_ours, s_theirs = ours.std(axis=1), theirs.std(axis=1)
        se = np.sqrt(2 * 2.03 ** 2 / reps)
        assert np.all(np.abs(m_ours - m_theirs) < 5.5 * se)
        assert abs(np.mean(m_ours - m_theirs)) < 5 * se / np.sqrt(m_ours.size)
        unclipped = np.abs(mean_lin) < 110
        assert np.mean(s_ours[unclipped]) == pytest.approx(np.mean(s_theirs[unclipped]), rel=0.01)
        assert np.mean(s_ours[unclipped]) == pytest.approx(np.sqrt(4 + 1 / 12), rel=0.02)


def test_hxtorch_mock_has_no_fixed_pattern_noise(rng):
    chip = Chip(11, "hxtorch-mock", noise_seed=1)
    gains = chip.truth.synapse_gain(0)
    assert np.allclose(gains, 0.002)


# ----------------------------------------------------- uncalibrated spread
@pytest.mark.parametrize("chip_id", [0, 7])
def test_uncalibrated_default_chip_has_column_gain_and_offset_spread(chip_id):
    """Measured through the observable interface only (truth locked)."""
    chip = Chip(chip_id, "default", noise_seed=10, truth_access=False)
    x0, x1 = np.zeros((300, 128), int), np.full((300, 128), 10)
    gains, offsets = [], []
    for sign in (1, -1):
        for h in (0, 1):
            chip.set_weights(np.full((128, 256), 10 * sign), h)
            y0 = chip.run(x0, h).astype(float).mean(axis=0)
            y1 = chip.run(x1, h).astype(float).mean(axis=0)
            gains.append(sign * (y1 - y0) / (128 * 10 * 10))
            offsets.append(y0)
    gains = np.concatenate(gains)
    spread = gains.std() / gains.mean()
    assert 0.10 <= spread <= 0.20
    assert 2.0 <= np.concatenate(offsets).std() <= 8.0


# ------------------------------------------------------------- noiseless
@pytest.mark.parametrize("num_sends", [1, 2, 4])
def test_noiseless_is_the_exact_quantized_product(rng, num_sends):
    chip = Chip(0, "noiseless")
    w = spread_weights(rng, 20)
    x = rng.integers(0, 32, (500, 128))
    exact = 0.002 * num_sends * (x @ w).astype(np.float64)
    y = chip.vmm(x, w, num_sends=num_sends).astype(float)
    tie = np.abs(exact - np.floor(exact) - 0.5) < 1e-6  # float32 may resolve exact .5 ties either way
    expected = np.clip(np.rint(exact), -128, 127)
    assert np.array_equal(y[~tie], expected[~tie])
    assert np.all(np.abs(y - np.clip(exact, -128, 127))[tie] <= 0.5 + 1e-9)
    assert np.array_equal(chip.vmm(x, w, num_sends=num_sends), y)  # no noise at all


# ---------------------------------------------------------------- faults
def test_harsh_faults_at_roughly_the_configured_fractions():
    stuck0 = stuckmax = dead = noisy = dead_drv = 0
    chips = 12
    for cid in range(chips):
        f = Chip(cid, "harsh").truth.faults()
        stuck0 += f["stuck_zero"].mean() / chips
        stuckmax += f["stuck_max"].mean() / chips
        dead += f["dead_neuron"].sum()
        noisy += f["noisy_neuron"].sum()
        dead_drv += f["dead_driver"].sum()
    assert stuck0 == pytest.approx(0.005, rel=0.1) and stuckmax == pytest.approx(0.002, rel=0.15)
    for count, frac, n in ((dead, 0.01, 512), (noisy, 0.01, 512), (dead_drv, 0.01, 256)):
        expected = frac * n * chips
        assert abs(count - expected) < 4 * np.sqrt(expected)
    assert not Chip(3, "default").truth.faults()["stuck_zero"].any()


def test_dead_neuron_column_gives_about_zero(rng):
    chip = Chip(1, "harsh", noise_seed=11)
    dead = np.flatnonzero(chip.truth.faults()["dead_neuron"])
    assert dead.size
    n = dead[0]
    h, j = divmod(int(n), 256)
    chip.set_weights(np.full((128, 256), 40), h)
    y = chip.run(np.full((200, 128), 20), h).astype(float)
    assert abs(y[:, j].mean()) < 1.0 and y[:, j].std() < 3
    live = np.setdiff1d(np.arange(256), dead[dead // 256 == h] % 256)
    assert np.all(y[:, live].mean(axis=0) > 50)


def test_stuck_max_synapse_conducts_at_weight_zero():
    chip = Chip(2, "harsh", noise_seed=12)
    f = chip.truth.faults()
    ok = f["stuck_max"][:, 0] & ~f["dead_driver"].reshape(2, 128, 1) & ~f["dead_neuron"].reshape(2, 1, 256)
    h, i, j = (int(v[0]) for v in np.nonzero(ok))
    chip.set_weights(np.zeros((128, 256), int), h)
    x = np.zeros((400, 128), int)
    x[:, i] = 31
    y = chip.run(x, h).astype(float).mean(axis=0)
    offset = chip.truth.neuron_offset(h)
    expect = chip.truth.expected(x[:1], h)[0]
    assert expect[j] - offset[j] > 2.0  # an excitatory synapse at full current
    assert y[j] == pytest.approx(expect[j], abs=0.5)
    stuck_row = f["stuck_max"][h, 0, i] | f["stuck_max"][h, 1, i]
    others = np.flatnonzero(~stuck_row)
    assert np.all(np.abs(y[others] - offset[others]) < 0.6)


def test_noisy_neurons_are_several_times_noisier():
    chip = Chip(1, "harsh", noise_seed=13)
    noisy = np.flatnonzero(chip.truth.faults()["noisy_neuron"][:256])
    assert noisy.size
    y = chip.run(np.zeros((500, 128), int), 0).astype(float)
    std = y.std(axis=0)
    quiet = np.setdiff1d(np.arange(256), noisy)
    assert np.all(std[noisy] > 3 * np.median(std[quiet]))
    assert np.median(std[quiet]) == pytest.approx(1.82, rel=0.05)


# ----------------------------------------------------------------- drift
def test_drift_changes_gains_and_offsets_deterministically():
    a, b, other = Chip(3, "default"), Chip(3, "default"), Chip(4, "default")
    g0, o0 = a.truth.synapse_gain(0), a.truth.neuron_offset(0)
    for c in (a, b, other):
        c.advance(hours=24)
    assert not np.allclose(a.truth.synapse_gain(0), g0) and not np.allclose(a.truth.neuron_offset(0), o0)
    np.testing.assert_array_equal(a.truth.synapse_gain(0), b.truth.synapse_gain(0))
    np.testing.assert_array_equal(a.truth.neuron_offset(1), b.truth.neuron_offset(1))
    d_a = a.truth.neuron_offset(0) - o0
    d_other = other.truth.neuron_offset(0) - Chip(4, "default").truth.neuron_offset(0)
    assert not np.allclose(d_a, d_other)
    assert a.age_h == 24
    # temperature moves the transfer too, and back again
    g = a.truth.synapse_gain(0)
    a.advance(temperature_c=45)
    assert a.temperature_c == 45 and not np.allclose(a.truth.synapse_gain(0), g)
    a.advance(temperature_c=25)
    np.testing.assert_allclose(a.truth.synapse_gain(0), g)
    with pytest.raises(ValueError, match="hours"):
        a.advance(hours=-1)
    with pytest.raises(ValueError, match="temperature_c"):
        a.advance(temperature_c=200)


def test_drift_is_visible_through_the_observable_interface():
    chip = Chip(6, "default", noise_seed=14, truth_access=False)
    x = np.zeros((400, 128), int)
    before = chip.run(x, 0).astype(float).mean(axis=0)
    chip.advance(hours=500)
    after = chip.run(x, 0).astype(float).mean(axis=0)
    assert np.std(after - before) > 0.5  # offsets walked by about 0.1 LSB / sqrt(h)


def test_ideal_does_not_drift():
    chip = Chip(6, "ideal")
    o = chip.truth.neuron_offset(0)
    chip.advance(hours=100)
    np.testing.assert_array_equal(chip.truth.neuron_offset(0), o)
