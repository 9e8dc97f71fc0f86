"""chipsim: trial-to-trial noise (independence, seeding, exact dithering) and the kernel's paths."""
import json

import numpy as np
import pytest

from bss2_calib.chipsim import Chip, kernel, noise
from bss2_calib.chipsim.noise import BINOMIAL_BYTES, FastParams


@pytest.fixture
def linear_fast(tmp_path):
    """The exact linear transfer (no mismatch, saturation or ADC range) with the fast 1.8 LSB noise."""
    path = tmp_path / "linear-fast.json"
    path.write_text(json.dumps({"name": "linear-fast", "base": "noiseless",
                                "noise": {"result_std_lsb": 1.8, "method": "fast"}}))
    return str(path)


def residuals(chip, x, h=0):
    return chip.run(x, h).astype(float) - chip.truth.expected(x, h)


def corr(a, b):
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


# ----------------------------------------------------------- independence
@pytest.mark.parametrize("preset, batch", [("ideal", 20), ("ideal", 700), ("hxtorch-mock", 700)])
def test_noise_of_two_calls_is_independent(rng, preset, batch):
    chip = Chip(0, preset, noise_seed=1)
    chip.set_weights(rng.integers(-30, 31, (128, 256)), 0)
    x = rng.integers(0, 32, (batch, 128))
    r1, r2 = residuals(chip, x), residuals(chip, x)
    assert not np.array_equal(r1, r2)
    assert abs(corr(r1, r2)) < 4 / np.sqrt(r1.size)
    r3 = residuals(chip, x)
    assert abs(corr(r1, r3)) < 4 / np.sqrt(r1.size) and abs(corr(r2, r3)) < 4 / np.sqrt(r1.size)


def test_noise_within_a_call_is_independent(rng):
    chip = Chip(0, "ideal", noise_seed=2)
    w = rng.integers(-30, 31, (128, 256))
    for h in (0, 1):
        chip.set_weights(w, h)
    x = rng.integers(0, 32, (1300, 128))
    y = chip.run(np.stack([x, x]), "both").astype(float)
    r = y - chip.truth.expected(x, 0)[None]
    n = r[0].size
    assert abs(corr(r[0], r[1])) < 4 / np.sqrt(n)  # the two hemispheres
    assert abs(corr(r[0][:, 1:], r[0][:, :-1])) < 4 / np.sqrt(n)  # neighbouring columns
    assert abs(corr(r[0][1:], r[0][:-1])) < 4 / np.sqrt(n)  # consecutive vectors
    assert abs(corr(r[0][256:512], r[0][:256])) < 4 / np.sqrt(n / 5)  # noise blocks of 256 vectors
    assert abs(r.mean()) < 4 * 1.82 / np.sqrt(r.size)


# ------------------------------------------------------------------ seeds
def _sequence(chip, xs, w):
    chip.set_weights(w, 0)
    chip.set_weights(-w, 1)
    return [chip.run(xs[0], 0), chip.run(xs[1], "both"), chip.run(xs[2], 1, num_sends=2), chip.read_baseline(n=3)]


@pytest.mark.parametrize("preset", ["default", "hxtorch-mock"])
def test_noise_seed_reproduces_every_call(rng, preset):
    xs = rng.integers(0, 32, (10, 128)), rng.integers(0, 32, (2, 600, 128)), rng.integers(0, 32, (300, 128))
    w = rng.integers(-63, 64, (128, 256))
    a = _sequence(Chip(4, preset, noise_seed=99), xs, w)
    b = _sequence(Chip(4, preset, noise_seed=99), xs, w)
    c = _sequence(Chip(4, preset, noise_seed=100), xs, w)
    d = _sequence(Chip(4, preset), xs, w)
    for u, v, o, n in zip(a, b, c, d):
        np.testing.assert_array_equal(u, v)
        assert not np.array_equal(u, o) and not np.array_equal(u, n)


@pytest.mark.parametrize("batch", [40, 64, 65, 700, 1500])
def test_both_equals_hemisphere_0_then_1(rng, batch):
    w0, w1 = rng.integers(-63, 64, (2, 128, 256))
    x = rng.integers(0, 32, (2, batch, 128))
    a, b = Chip(2, "default", noise_seed=5), Chip(2, "default", noise_seed=5)
    for c in (a, b):
        c.set_weights(w0, 0)
        c.set_weights(w1, 1)
    both = a.run(x, "both", num_sends=3)
    np.testing.assert_array_equal(both[0], b.run(x[0], 0, num_sends=3))
    np.testing.assert_array_equal(both[1], b.run(x[1], 1, num_sends=3))
    np.testing.assert_array_equal(a.run(x[0], 0), b.run(x[0], 0))  # and the streams stay in step


@pytest.mark.parametrize("preset", ["default", "harsh", "linear"])
def test_the_16_bit_windows_change_nothing(rng, monkeypatch, linear_fast, preset):
    """The compiled 16-bit read-out with the values outside its windows recomputed one by one gives what
    recomputing every value gives."""
    preset = linear_fast if preset == "linear" else preset
    x = rng.integers(0, 32, (2, 600, 128))
    w = rng.integers(-63, 64, (128, 256))

    def run(chip):
        chip.set_weights(w, 0)
        chip.set_weights(-w, 1)
        return chip.run(x, "both"), chip.run(x[0, :50], 0), chip.run(x[1, :300], 1)

    ref = run(Chip(3, preset, noise_seed=7))
    chip = Chip(3, preset, noise_seed=7)
    plan = chip._plan  # every value outside the 16-bit window
    monkeypatch.setattr(chip, "_plan", lambda *a: _no_window(plan(*a)))
    for u, v in zip(ref, run(chip)):
        np.testing.assert_array_equal(u, v)


def _no_window(plan):
    assert plan.vmm == "vmm_fast"
    no = np.full(256, kernel._NO_WINDOW, dtype=np.int32)
    plan.args = plan.args[:3] + (no, np.zeros(256, np.int32)) + plan.args[5:]
    return plan


# -------------------------------------------------------- the compiled path
def test_the_compiled_path_is_what_runs(rng, monkeypatch):
    """numba is a dependency; without this, the comparisons below would compare numpy with itself."""
    monkeypatch.delenv("BSS2_CHIPSIM_JIT", raising=False)
    assert noise.jit() is not None
    calls = []
    compiled = kernel._run_compiled
    monkeypatch.setattr(kernel, "_run_compiled", lambda *a: calls.append(a[1].shape) or compiled(*a))
    for preset in ("default", "hxtorch-mock"):
        chip = Chip(0, preset, noise_seed=1)
        chip.run(rng.integers(0, 32, (2, 300, 128)), "both")
        chip.run(rng.integers(0, 32, (3, 128)), 0)
    assert calls == [(2, 300, 128), (1, 3, 128)] * 2


def test_with_an_unusable_numba_the_reference_runs(rng, monkeypatch, caplog):
    def fail():
        raise RuntimeError("cannot cache function")

    monkeypatch.delenv("BSS2_CHIPSIM_JIT", raising=False)
    monkeypatch.setattr(noise, "_JIT", None)
    monkeypatch.setattr(noise, "_load_jit", fail)
    x = rng.integers(0, 32, (300, 128))
    chip = Chip(0, "default", noise_seed=3)
    assert chip.run(x, 0).shape == (300, 256) and noise.jit() is None
    assert "compiled kernel unavailable" in caplog.text


@pytest.fixture
def wide_noise(tmp_path):
    """The default chip with 5 LSB of noise: a dither 4 LSB wide (k = 2), noisy neurons at 20 LSB."""
    path = tmp_path / "wide-noise.json"
    path.write_text(json.dumps({"name": "wide-noise", "base": "harsh", "noise": {"result_std_lsb": 5.0}}))
    return str(path)


@pytest.fixture
def gauss_harsh(tmp_path):
    """The harsh chip (saturation, clipping, noisy neurons) with the exact Gaussian noise."""
    path = tmp_path / "gauss-harsh.json"
    path.write_text(json.dumps({"name": "gauss-harsh", "base": "harsh", "noise": {"method": "gaussian"}}))
    return str(path)


@pytest.fixture
def gauss_floor(tmp_path):
    """hxtorch-mock (Gaussian noise, no soft saturation) rounding down: the Gaussian one-pass read-out's floor."""
    path = tmp_path / "gauss-floor.json"
    path.write_text(json.dumps({"name": "gauss-floor", "base": "hxtorch-mock", "rounding": "floor"}))
    return str(path)


@pytest.mark.parametrize("preset, sends, batch", [
    ("default", 1, 1300), ("default", 8, 513), ("harsh", 3, 777), ("noiseless", 1, 600), ("ideal", 2, 256),
    ("wide", 1, 300), ("hxtorch-mock", 1, 700), ("gauss-harsh", 8, 300), ("gauss-floor", 2, 300), ("default", 1, 3)])
def test_compiled_and_reference_paths_agree_bit_for_bit(rng, monkeypatch, wide_noise, gauss_harsh, gauss_floor, preset,
                                                        sends, batch):
    """Same seed, same numbers: partial blocks, saturation and clipping (recomputed in float64),
    per-column noise (noisy neurons), dead drivers, other integer dtypes, counters and hardware time; the
    Gaussian read-out with and without soft saturation, rounding to nearest and down."""
    preset = {"wide": wide_noise, "gauss-harsh": gauss_harsh, "gauss-floor": gauss_floor}.get(preset, preset)
    x = rng.integers(0, 32, (2, batch, 128))
    x[:, ::7, 5] = 0
    w = rng.integers(-63, 64, (128, 256))

    def session(jit):
        monkeypatch.setenv("BSS2_CHIPSIM_JIT", jit)
        chip = Chip(3, preset, noise_seed=7)
        chip.set_weights(w, 0)
        chip.set_weights(-w, 1)
        return [chip.run(x, "both", num_sends=sends), chip.run(x[1], 1, wait_between_events=9),
                chip.run(x[0, :200].astype(np.uint8), 0), chip.run(np.asfortranarray(x[1, :170]), 0),
                chip.counters["events"], chip.hw_time_s]

    compiled, plain = session("1"), session("0")
    for u, v in zip(compiled, plain):
        np.testing.assert_array_equal(u, v)
    assert compiled[0].std() > 10  # not a constant
    if sends == 8:  # the recomputation ran: results at the rails and in the soft saturation
        assert (compiled[0] == 127).any() and (compiled[0] < -100).any()


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint16, np.uint64, np.int8])
@pytest.mark.parametrize("compiled", ["1", "0"])
def test_activations_of_any_integer_dtype_are_checked_where_they_are_read(rng, monkeypatch, dtype, compiled):
    """Integer activations go to the kernel as they are: the compiled gather checks their range in its own pass
    (the numpy reference with one max): the same results as uint8 input, the same one-line errors, the caller's
    array untouched, and a refused call draws no noise."""
    monkeypatch.setenv("BSS2_CHIPSIM_JIT", compiled)
    x8 = rng.integers(0, 32, (2, 300, 128)).astype(np.uint8)
    x = x8.astype(dtype)
    w = rng.integers(-63, 64, (128, 256))
    kept = x.copy()

    def chip():
        c = Chip(1, "default", noise_seed=4)
        c.set_weights(w, 0)
        c.set_weights(-w, 1)
        return c

    a, b = chip(), chip()
    np.testing.assert_array_equal(a.run(x, "both"), b.run(x8, "both"))
    np.testing.assert_array_equal(a.run(x[0], 1), b.run(x8[0], 1))
    np.testing.assert_array_equal(x, kept)
    for bad in ([-3] if np.issubdtype(dtype, np.signedinteger) else []) + ([32, 100] if dtype == np.int8 else [32, 300]):
        y = x.copy()
        y[1, 299, 127] = bad
        with pytest.raises(ValueError, match=f"^activations value {bad} outside 0..31 \\(5-bit inputs\\)$"):
            a.run(y, "both")
        with pytest.raises(ValueError, match=f"activations value {bad} outside"):
            a.run(y[1], 0)
    np.testing.assert_array_equal(a.run(x8, "both"), b.run(x8, "both"))  # the refused calls drew nothing
    assert a.counters == b.counters and a.hw_time_s == b.hw_time_s


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.int32, np.int16, np.uint8, np.int8])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("kind", ["int32 table, int16 pulses", "float32"])
def test_compiled_gather_is_the_table_look_up(rng, dtype, layout, kind):
    """The vector gather (contiguous rows) and the scalar loop (strided rows) both give table[32 r + (x & 31)],
    the events and the OR of every value, also for values outside 0..31 (the caller refuses those); the kernel's
    int32 table is stored as int16 pulses."""
    from bss2_calib.chipsim import _jit

    if kind == "float32":
        table = rng.standard_normal(128 * 32).astype(np.float32)
    else:
        table = rng.integers(-32768, 32768, 128 * 32).astype(np.int32)
    info = np.iinfo(dtype)
    x = rng.integers(max(info.min, -200), min(info.max, 300), (37, 256 if layout == "strided" else 128)).astype(dtype)
    x[:, :40] = rng.integers(0, 32, (37, 40))  # some rows in range, with zeros
    x[5] = 0
    if layout == "strided":
        x = x[:, ::2]
    pulses = np.full((37, 128), np.nan, np.float32) if kind == "float32" else np.full((37, 128), 7, np.int16)
    events = np.full(37, -1, np.int64)
    seen = _jit.gather(x, table, pulses, events)
    idx = (np.arange(128) << 5) | (x.astype(np.int64) & 31)
    np.testing.assert_array_equal(pulses, table[idx].astype(pulses.dtype))
    np.testing.assert_array_equal(events, np.count_nonzero(x, axis=1))
    assert seen == np.bitwise_or.reduce(x, axis=None)


def test_compiled_sfc64_is_numpys(rng):
    from bss2_calib.chipsim import _jit

    seed = np.random.PCG64(int(rng.integers(1 << 62))).random_raw(noise.SEED_WORDS)
    n = noise.SFC64_LANES * 37
    out = np.empty(n, dtype=np.uint64)
    _jit.sfc64_fill(seed, out)
    np.testing.assert_array_equal(out, noise.sfc64_words(seed, n))
    lane3 = np.random.SFC64(0)  # lane 3 by hand: state (s9, s10, s11, 1), 12 outputs discarded
    lane3.state = {"bit_generator": "SFC64", "state": {"state": np.array([*seed[9:12], 1], dtype=np.uint64)},
                   "has_uint32": 0, "uinteger": 0}
    np.testing.assert_array_equal(out[3::noise.SFC64_LANES], lane3.random_raw(12 + 37)[12:])
    with pytest.raises(ValueError, match="seed words"):
        _jit.sfc64_fill(seed[:-1], out)
    with pytest.raises(ValueError, match="seed words"):
        _jit.sfc64_fill(seed, out[:-1])


def test_compiled_loops_refuse_mismatched_buffers(rng):
    """numba does not check bounds: the loops check their shapes instead of writing past a buffer."""
    from bss2_calib.chipsim import _jit

    chip = Chip(0, "default", noise_seed=1)
    p = chip._plan(0, 1, 5)
    x = rng.integers(0, 32, (10, 128))
    with pytest.raises(ValueError, match="shapes"):
        _jit.gather(x, p.table, np.empty((9, 128), np.int16), np.empty(10, np.int64))
    pb, _, yb = _jit._block_buffers(256)
    with pytest.raises(ValueError, match="shapes"):  # rows beyond the buffers (258 rows hold 256 + 2)
        _jit.product(pb, p.wp, yb, p.yscale, 259)
    with pytest.raises(ValueError, match="shapes"):
        _jit.product(pb, p.wp[:, :128], yb, p.yscale, 6)
    with pytest.raises(ValueError, match="shapes"):
        _jit.product(pb[:, :32], p.wp, yb, p.yscale, 6)
    share = (np.empty((0, 256), np.int8), np.empty(0, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64),
             np.zeros(1, np.int64))
    out = np.empty((300, 256), np.int8)
    with pytest.raises(ValueError, match="shapes"):  # two blocks, one flag
        _jit.vmm_fast(rng.integers(0, 32, (300, 128)), p.table, p.wp, p.yscale, p.off, np.zeros((2, 48), np.uint64),
                      out, np.empty(300, np.int64), share, False, *p.args)
    y = np.zeros((300, 256), np.float32)
    seeds = np.zeros((1, noise.SEED_WORDS), np.uint64)  # one seed for two blocks
    with pytest.raises(ValueError, match="shapes"):
        _jit.readout_fast(y, p.off, seeds, np.empty((300, 256), np.int8), 0, 2, *p.args)
    with pytest.raises(ValueError, match="shapes"):  # a block beyond the rows
        _jit.readout_fast(y, p.off, seeds[:0], np.empty((300, 256), np.int8), 0, 3, *p.args)
    with pytest.raises(ValueError, match="shapes"):
        _jit.readout_fast(y, p.off, seeds[:0], np.empty((299, 256), np.int8), 0, 1, *p.args)


# -------------------------------------------------------------- exact mean
def test_dithering_keeps_sub_lsb_means_exact(linear_fast):
    """The mean result follows sub-LSB changes of the noise-free value (no integer lattice)."""
    chip = Chip(0, linear_fast, noise_seed=8)
    w = np.zeros((128, 256), int)
    w[0] = np.minimum(np.arange(256) // 2 - 63, 63)  # noise-free means -3.15 .. +3.15 in steps of 0.05
    x = np.zeros((8000, 128), int)
    x[:, 0] = 25
    true = 0.002 * 25 * w[0]
    y = chip.vmm(x, w).astype(float)
    se = y.std(axis=0) / np.sqrt(len(y))
    err = y.mean(axis=0) - true
    assert np.all(np.abs(err) < 4.5 * se + 1 / 256)
    assert abs(err.mean()) < 4 * se.mean() / np.sqrt(256)
    frac = true - np.floor(true)
    slope = np.polyfit(frac, y.mean(axis=0) - np.floor(true), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.03)


def test_fast_noise_distribution(linear_fast):
    chip = Chip(0, linear_fast, noise_seed=9)
    w = np.zeros((128, 256), int)
    w[0] = np.arange(256) % 100 - 50
    x = np.zeros((3000, 128), int)
    x[:, 0] = 13
    r = chip.vmm(x, w).astype(float) - 0.002 * 13 * w[0]
    s = FastParams(np.array([1.8])).std()[0]
    assert s == pytest.approx(1.8, rel=0.001)
    assert r.std() == pytest.approx(np.sqrt(s ** 2 + 1 / 12), rel=0.01)
    z = r / r.std()
    kurt = np.mean(z ** 4) - 3
    assert -0.2 < kurt < 0.0  # the dithered binomial: about -0.1 (a normal: 0)
    bound = FastParams(np.array([1.8])).bound()
    assert np.abs(r).max() <= np.ceil(bound + 0.5)
    assert np.mean(np.abs(z) > 2) == pytest.approx(0.0455, abs=0.006)


@pytest.mark.parametrize("s", [0.6, 1.0, 1.27, 1.8, 2.0, 4.0, 7.2, 20.0])
def test_fast_noise_parameters_match_the_std(s):
    f = FastParams(np.array([s, s]))
    assert f.integer == (s < 10) and f.uniform and f.draws  # a noise range of 128 LSB or more: float path
    assert f.std()[0] == pytest.approx(s, rel=0.007)
    assert f.w[0] % 2 == 0 and f.a[0] <= f.w[0]  # an even dither width, wide enough to leave no gaps
    assert f.bound() == pytest.approx(4 * BINOMIAL_BYTES * f.a[0] + f.w[0] / 2)


def test_fast_noise_parameters_edge_cases():
    f = FastParams(np.array([0.0, 0.3, 1.8]))
    assert not f.integer and not f.uniform and f.draws
    assert f.std() == pytest.approx([0.0, 0.3, 1.8], rel=0.007, abs=1e-12)
    assert f.a[1] == 0 and f.w[1] == pytest.approx(0.3 * np.sqrt(12), rel=1e-4)
    assert not FastParams(np.zeros(3)).draws
    with pytest.raises(ValueError):
        FastParams(np.array([-1.0]))


def test_small_noise_takes_the_float_path_with_the_right_mean(tmp_path, rng):
    path = tmp_path / "whisper.json"
    path.write_text(json.dumps({"base": "ideal", "noise": {"result_std_lsb": 0.3}}))
    chip = Chip(0, str(path), noise_seed=10)
    chip.set_weights(rng.integers(-20, 21, (128, 256)), 0)
    x = np.repeat(rng.integers(0, 32, (4, 128)), 1000, axis=0)
    for xb in (x[:40], x):  # short and long paths
        r = chip.run(xb, 0).astype(float) - chip.truth.expected(xb, 0)
        assert abs(r.mean()) < 0.02 and 0.25 < r.std() < 0.45


def test_gaussian_method_on_the_physical_model(tmp_path, rng):
    path = tmp_path / "gauss.json"
    path.write_text(json.dumps({"base": "ideal", "noise": {"method": "gaussian"}}))
    chip = Chip(1, str(path), noise_seed=11)
    chip.set_weights(rng.integers(-63, 64, (128, 256)), 0)
    x = np.repeat(rng.integers(0, 32, (6, 128)), 300, axis=0)
    r = (chip.run(x, 0).astype(float) - chip.truth.expected(x, 0)).reshape(6, 300, 256)
    assert abs(r.mean()) < 0.02
    assert r.std(axis=1).mean() == pytest.approx(np.sqrt(1.8 ** 2 + 1 / 12), rel=0.03)
    z = r / r.std()
    assert np.mean(z ** 4) - 3 == pytest.approx(0.0, abs=0.1)


def _compiled_normals(seeds):
    from bss2_calib.chipsim import _jit

    n = 256 * 256
    words, e = np.empty(n // 2, np.uint64), np.empty((len(seeds), n), np.float32)
    for b, seed in enumerate(seeds):  # the steps of _jit.readout_gauss
        _jit.sfc64_fill(seed, words)
        _jit.normals(words.view(np.uint32), e[b])
    return e.ravel()


def test_gaussian_normals_are_standard_normal():
    """4 M normals of the compiled Box-Muller draw: moments, tails, a KS test against N(0, 1) and no dependence
    within a pair or between neighbours, with tolerances of about 4 standard errors; the numpy reference draws
    the same numbers."""
    from scipy import stats

    seeds = noise.NoiseStream(21).seeds(64, noise.SEED_WORDS)
    e = _compiled_normals(seeds)
    n = e.size
    np.testing.assert_array_equal(e[:256 * 256], noise.gauss_normals(seeds[0], 256 * 256))
    e = e.astype(np.float64)
    assert abs(e.mean()) < 4 / np.sqrt(n)
    assert e.var() == pytest.approx(1.0, abs=4 * np.sqrt(2 / n))
    assert abs(stats.skew(e)) < 4 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(e)) < 4 * np.sqrt(24 / n)
    for t in (1.0, 2.0, 3.0, 4.0, 4.5):
        p = 2 * stats.norm.sf(t)
        assert np.mean(np.abs(e) > t) == pytest.approx(p, abs=4 * np.sqrt(p / n) + 1 / n)
    assert 4.5 < np.abs(e).max() <= 5.78  # the tail is drawn up to the radius of the smallest u1
    assert stats.kstest(e[: 1 << 20], "norm").pvalue > 1e-3
    pairs = e.reshape(-1, 2, noise.GAUSS_HALF)  # r cos t and r sin t share r and t
    cos, sin = pairs[:, 0].ravel(), pairs[:, 1].ravel()
    assert stats.kstest(sin[: 1 << 20], "norm").pvalue > 1e-3
    for u, v in ((cos, sin), (cos ** 2, sin ** 2), (e[1:], e[:-1])):
        assert abs(corr(u, v)) < 4 / np.sqrt(u.size)


def test_box_muller_polynomials_match_the_exact_transform():
    """The float32 logarithm, sine and cosine polynomials: every normal within 2e-6 of sqrt(-2 ln u1) cos/sin(2 pi u2)
    computed in float64 from the same words (a wrong coefficient or quadrant moves some by far more)."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32)
    a[:4], b[:4] = [0, 0xFFFFFFFF, 1 << 31, 12345], [0, 0xFFFFFFFF, 1 << 31, 0x3FFFFFFF]  # the ends and quadrants
    cos, sin = noise.box_muller(a, b)
    u1 = ((a >> 9).astype(np.float64) + 0.5) * 2.0 ** -23
    u2 = (b >> 8).astype(np.float64) * 2.0 ** -24
    r = np.sqrt(-2 * np.log(u1))
    np.testing.assert_allclose(cos, r * np.cos(2 * np.pi * u2), rtol=0, atol=2e-6)
    np.testing.assert_allclose(sin, r * np.sin(2 * np.pi * u2), rtol=0, atol=2e-6)


def test_reads_use_the_fast_noise_too(rng):
    chip = Chip(0, "ideal", noise_seed=12)
    a = chip.read_baseline(n=2000).astype(float)
    assert a.std(axis=0).mean() == pytest.approx(np.sqrt(1.8 ** 2 / 2 + 1 / 12), rel=0.03)
    assert abs(a.mean() - chip.truth.baseline().mean()) < 0.01


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("jit", ["1", "0"])
def test_a_forked_child_can_run_large_batches(rng, monkeypatch, jit):
    import multiprocessing as mp

    monkeypatch.setenv("BSS2_CHIPSIM_JIT", jit)
    chip = Chip(0, "default", noise_seed=1)
    x = rng.integers(0, 32, (2, 1100, 128))
    chip.run(x, "both")  # the compiled path's helper threads exist now (they do not survive the fork)
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        shape = pool.apply_async(_run_in_child, (x,)).get(timeout=60)
    assert shape == (2, 1100, 256)


def _run_in_child(x):
    return Chip(0, "default", noise_seed=2).run(x, "both").shape


def test_big_endian_activations_run_like_native_ones(rng, monkeypatch):
    """A byte-swapped integer array is read by its values (the compiled loops read native order)."""
    x = rng.integers(0, 32, (2, 300, 128))
    w = rng.integers(-63, 64, (128, 256))
    for compiled in ("1", "0"):
        monkeypatch.setenv("BSS2_CHIPSIM_JIT", compiled)
        out = []
        for arr in (x, x.astype(">i4"), x.astype(">u2")):
            chip = Chip(1, "default", noise_seed=4)
            chip.set_weights(w, 0)
            chip.set_weights(-w, 1)
            out.append(chip.run(arr, "both"))
        for o in out[1:]:
            np.testing.assert_array_equal(o, out[0])
        bad = x.astype(">i4")
        bad[0, 0, 0] = 40
        with pytest.raises(ValueError, match="activations value 40 outside 0..31"):
            Chip(1, "default").run(bad, "both")
