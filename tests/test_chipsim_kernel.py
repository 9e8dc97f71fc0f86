"""chipsim: the kernel's fixed-point product, its instruction paths and the helper threads."""
import numpy as np
import pytest
from numba import njit

from bss2_calib.chipsim import Chip, kernel
from bss2_calib.chipsim.errors import ChipValueError
from bss2_calib.chipsim.noise import NOISE_ROWS, jit


def _weights(rng, kind):
    if kind == "random":
        return rng.integers(-63, 64, (128, 256))
    if kind == "full":
        return np.full((128, 256), 63)
    return rng.integers(-63, 64, (128, 256)) * (rng.random((128, 256)) < 0.05)  # sparse


# ------------------------------------------------------------- fixed point
@pytest.mark.parametrize("preset", ["default", "harsh", "hxtorch-mock"])
@pytest.mark.parametrize("kind", ["random", "full", "sparse"])
@pytest.mark.parametrize("sends", [1, 8])
def test_the_fixed_point_product_is_within_hundredths_of_an_lsb(rng, preset, kind, sends):
    """int16 pulses and weights with exact int32 sums, against the float64 product of the same pulses and
    effective weights. The grids fill int32 with the column's largest possible sum R (so the step is about
    R / 2 ** 31, and each of the 128 terms rounds by a few steps): the error stays below 6e-5 R (max) and
    4e-5 R (rms); at one send that is below 0.03 LSB, 1/25 of the smallest noise std of the presets (0.85 LSB)."""
    chip = Chip(3, preset, noise_seed=1)
    chip.set_weights(_weights(rng, kind), 0)
    t = chip._state()
    table, w_eff = t.pulse_table(0, 5), t.effective_weights(0, chip._weights[0], sends, 5)
    P, W, step = kernel.fixed_point(table, w_eff)
    assert P.dtype == W.dtype == np.int16 and np.all(step == step[0])
    assert (np.abs(P.astype(np.int64)).max(axis=1) @ np.abs(W.astype(np.int64))).max() < 2 ** 31
    reach = (np.abs(table).max(axis=1) @ np.abs(w_eff)).max()
    x = rng.integers(0, 32, (3000, 128))
    rows = np.arange(128)
    exact = table[rows, x] @ w_eff
    fixed = (P[rows, x].astype(np.float64) @ W.astype(np.float64)) * step
    d = fixed - exact
    assert np.abs(d).max() < 6e-5 * reach
    assert np.sqrt(np.mean(d ** 2)) < 4e-5 * reach
    if sends == 1:
        assert np.abs(d).max() < 0.03
    assert np.abs(exact).max() > 5  # a product worth the name
    assert reach / step[0] > 2 ** 29  # the grids use the range: a grid twice as coarse would fill a quarter of it


def test_fixed_point_edge_cases():
    """Zero weights, one huge pulse, tiny weights: exact zeros, bounds kept, no overflow; bad numbers refused."""
    table = np.abs(np.random.default_rng(1).standard_normal((128, 32))) * 10
    P, W, step = kernel.fixed_point(table, np.zeros((128, 256)))
    assert not W.any() and np.abs(P).max() > 16000
    table[5, 31] = 1e4  # one driver far off: its pulses set the grid, the others keep theirs to 2 ** -a
    w = np.full((128, 256), 1e-6)
    P, W, step = kernel.fixed_point(table, w)
    assert np.abs(P).max() <= 32767 and np.abs(W).max() <= 32767
    assert (np.abs(P.astype(np.int64)).max(axis=1) @ np.abs(W.astype(np.int64))).max() < 2 ** 31
    x = np.full((1, 128), 31)
    got = (P[np.arange(128), x].astype(float) @ W.astype(float)) * step
    np.testing.assert_allclose(got, table[np.arange(128), x] @ w, rtol=1e-3)
    with pytest.raises(ValueError, match="finite"):
        kernel.fixed_point(np.full((128, 32), np.nan), w)


def test_columns_without_mismatch_hold_the_weight_codes_exactly(rng):
    """One gain times the codes: the codes themselves (times a power of two), the gain in the column's step, so
    the product is the float64 one to rounding (noiseless: 0.002 x @ w); with synapse mismatch, the grid."""
    chip = Chip(0, "noiseless")
    codes = rng.integers(-63, 64, (128, 256))
    codes[:, 3] = 0  # a column of zeros: nothing to hold
    chip.set_weights(codes, 0)
    t = chip._state()
    table, w_eff = t.pulse_table(0, 5), t.effective_weights(0, codes, 2, 5)
    P, W, step = kernel.fixed_point(table, w_eff, codes)
    octaves = np.log2(step[np.arange(256) != 3] / step[0])
    assert np.array_equal(octaves, np.round(octaves))  # one gain: the steps differ by the columns' powers of two
    cols = np.arange(256) != 3
    ratio = W[:, cols] / np.where(codes[:, cols] == 0, 1, codes[:, cols])
    assert np.all((ratio == ratio.max(axis=0)) | (codes[:, cols] == 0))  # codes times one power of two
    x = rng.integers(0, 32, (500, 128))
    rows = np.arange(128)
    exact = table[rows, x] @ w_eff
    got = (P[rows, x].astype(np.float64) @ W.astype(np.float64)) * step
    assert np.abs(got - exact).max() <= 1e-12 * np.abs(exact).max()
    harsh = Chip(0, "harsh")
    harsh.set_weights(codes, 0)
    th = harsh._state()
    w_h = th.effective_weights(0, codes, 1, 5)
    _, _, step_h = kernel.fixed_point(th.pulse_table(0, 5), w_h, codes)
    lattice = step_h != np.median(step_h)
    assert lattice.sum() < 5 and not w_h[:, lattice].any()  # mismatch: only dead columns (gain 0) are exact


# --------------------------------------------------------- the product
def _host_features():
    from numba.core.registry import cpu_target

    from bss2_calib.chipsim import _jit

    return _jit._features(cpu_target.target_context)


@pytest.mark.parametrize("path", ["avx512bw", "avx2", "generic"])
def test_each_instruction_path_of_the_product_is_exact(rng, path):
    """vpmaddwd/vpdpwssd on AVX-512, AVX2's on halves, plain multiplies elsewhere: the exact integer product,
    with sums up to the edge of int32 and the power-of-two scale applied after one rounding to float32."""
    from bss2_calib.chipsim import _jit

    if path != "generic" and path not in _host_features():
        pytest.skip(f"this CPU has no {path}")
    tile = _jit._tile_intrinsic(frozenset() if path == "generic" else frozenset([path]))

    @njit
    def product(pb, wp, yb, scale, n):
        for i0 in range(0, n, _jit.TILE_ROWS):
            for c0 in range(0, 256, _jit.TILE_COLS):
                tile(pb, wp, yb, scale, i0, c0)

    P = rng.integers(0, 4096, (60, 128)).astype(np.int16)
    W = rng.integers(-4095, 4096, (128, 256)).astype(np.int16)
    P[0], W[:, 0], W[:, 1] = 4095, 4095, -4095  # sums of 2.15e9: just inside int32
    wp = np.ascontiguousarray(W.reshape(64, 2, 256).transpose(0, 2, 1)).view(np.int32).reshape(64, 256)
    yb = np.full((60, 256), np.nan, np.float32)
    scale = (np.float32(2.0 ** -20) * rng.uniform(0.5, 1, 256)).astype(np.float32)
    product(np.ascontiguousarray(P).view(np.int32), wp, yb, scale, 60)
    exact = P.astype(np.float64) @ W.astype(np.float64)
    assert abs(exact[0, 0]) > 2.1e9
    np.testing.assert_array_equal(yb, exact.astype(np.float32) * scale)


# ------------------------------------------------------- helper threads
@pytest.mark.parametrize("preset", ["default", "hxtorch-mock"])
def test_results_do_not_depend_on_the_threads(rng, monkeypatch, preset):
    """1, 2 or 3 threads share a large call's blocks: the same numbers (and the reference's)."""
    x = rng.integers(0, 32, (2, 1300, 128))
    w = rng.integers(-63, 64, (128, 256))
    got = {}
    for threads, jit_on in (("1", "1"), ("2", "1"), ("3", "1"), ("1", "0")):
        monkeypatch.setenv("BSS2_CHIPSIM_THREADS", threads)
        monkeypatch.setenv("BSS2_CHIPSIM_JIT", jit_on)
        chip = Chip(2, preset, noise_seed=5)
        chip.set_weights(w, 0)
        chip.set_weights(-w, 1)
        got[threads, jit_on] = [chip.run(x, "both") for _ in range(3)] + [chip.counters["events"]]
    ref = got["1", "0"]
    for key, runs in got.items():
        for u, v in zip(runs, ref):
            np.testing.assert_array_equal(u, v, err_msg=str(key))


def test_a_refused_large_call_draws_no_noise(rng, monkeypatch):
    """With helpers at work, a value out of range still raises after the blocks and leaves the stream as it was."""
    monkeypatch.setenv("BSS2_CHIPSIM_THREADS", "2")
    x = rng.integers(0, 32, (2, 1300, 128))
    bad = x.copy()
    bad[0, 3, 7] = 32
    a, b = Chip(2, "default", noise_seed=5), Chip(2, "default", noise_seed=5)
    with pytest.raises(ValueError, match="^activations value 32 outside 0..31"):
        a.run(bad, "both")
    np.testing.assert_array_equal(a.run(x, "both"), b.run(x, "both"))


@pytest.mark.parametrize("value, message", [("two", "a whole number, not 'two'"), ("0", "at least 1, not 0")])
def test_a_bad_thread_count_is_one_clear_error(rng, monkeypatch, value, message):
    x = rng.integers(0, 32, (2, 1100, 128))
    a, b = Chip(0, "default", noise_seed=2), Chip(0, "default", noise_seed=2)
    monkeypatch.setenv("BSS2_CHIPSIM_THREADS", value)
    for batch in (x, x[0, :3]):  # small calls read it too
        with pytest.raises(ChipValueError, match=f"^BSS2_CHIPSIM_THREADS must be {message}$"):
            a.run(batch, "both" if batch.ndim == 3 else 0)
    monkeypatch.delenv("BSS2_CHIPSIM_THREADS")
    np.testing.assert_array_equal(a.run(x, "both"), b.run(x, "both"))  # the refused calls drew no noise


def test_the_caller_copies_finished_blocks_and_computes_unfinished_ones(rng):
    """The sharing protocol without threads: a helper has taken blocks 0 and 1 and published block 1 only.
    The caller copies block 1 from the helper's buffers (marked here with values no run gives), computes
    blocks 0 and 2 itself and returns without waiting."""
    J = jit()
    chip = Chip(1, "default", noise_seed=3)
    chip.set_weights(rng.integers(-63, 64, (128, 256)), 0)
    p = chip._plan(0, 1, 5)
    m = 2 * NOISE_ROWS + 88
    x = rng.integers(0, 32, (m, 128))
    seeds = chip._stream.seeds(3, p.seed_words)

    def share(rows):
        return (np.zeros((rows, 256), np.int8), np.zeros(rows, np.int64), np.zeros(3, np.int64),
                np.zeros(3, np.int64), np.zeros(1, np.int64))

    alone, ev_alone = np.empty((m, 256), np.int8), np.empty(m, np.int64)
    seen = J.vmm_fast(x, p.table, p.wp, p.yscale, p.off, seeds, alone, ev_alone, share(0), False, *p.args)
    assert seen == np.bitwise_or.reduce(x, axis=None)
    out_h, events_h, seen_h, done, counter = sh = share(m)
    counter[0] = 2  # blocks 0 and 1 taken by a helper
    out_h[NOISE_ROWS:2 * NOISE_ROWS] = 77
    events_h[NOISE_ROWS:2 * NOISE_ROWS] = 999
    seen_h[1] = 1 << 40
    done[1] = 1
    out, ev = np.empty((m, 256), np.int8), np.empty(m, np.int64)
    seen = J.vmm_fast(x, p.table, p.wp, p.yscale, p.off, seeds, out, ev, sh, False, *p.args)
    b1 = slice(NOISE_ROWS, 2 * NOISE_ROWS)
    assert (out[b1] == 77).all() and (ev[b1] == 999).all() and seen >> 40 == 1
    for rows in (slice(0, NOISE_ROWS), slice(2 * NOISE_ROWS, m)):
        np.testing.assert_array_equal(out[rows], alone[rows])
        np.testing.assert_array_equal(ev[rows], ev_alone[rows])
    # a helper's own call writes into its buffers only, and marks what it finished
    out_h, events_h, seen_h, done, counter = sh = share(m)
    untouched = np.full((m, 256), 5, np.int8)
    J.vmm_fast(x, p.table, p.wp, p.yscale, p.off, seeds, untouched, ev, sh, True, *p.args)
    assert (untouched == 5).all() and done.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(out_h, alone)
    np.testing.assert_array_equal(events_h, ev_alone)


def test_helpers_go_idle_and_a_process_exits_cleanly_after_large_calls(rng, monkeypatch):
    """After a shared call the helpers finish what they took (wait_for_helpers), and a process that ends right
    after large calls stops its helpers at exit instead of leaving them in compiled code (exit status 0)."""
    import subprocess
    import sys

    monkeypatch.setenv("BSS2_CHIPSIM_THREADS", "2")
    Chip(0, "default", noise_seed=1).run(rng.integers(0, 32, (2, 1500, 128)), "both")
    assert kernel.wait_for_helpers(timeout=5)
    code = ("import numpy as np; from bss2_calib.chipsim import Chip; c = Chip(0, 'default', noise_seed=1); "
            "x = np.random.default_rng(0).integers(0, 32, (2, 2000, 128)); [c.run(x, 'both') for _ in range(3)]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "BSS2_CHIPSIM_THREADS": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
