"""The batched VMM kernel: int activations in, int8 results out.

Per hemisphere and run conditions a :class:`Plan` caches the pulse table and
the effective weights in float32, and a row of column offsets (scaled, plus
a constant ``base``). Every run computes ``y = pulses @ w + offsets`` in
float32 (one BLAS product per hemisphere over the whole batch, then one
addition), then the mean's soft saturation, the noise and the read-out.

Two implementations compute the same numbers bit for bit
(``tests/test_chipsim_noise.py`` compares them on several presets):

compiled (:mod:`chipsim._jit`, numba; what runs)
    One loop gathers the pulses, counts the events and checks the activations'
    range (in the same pass over the caller's array), BLAS multiplies with
    its own threads, then the read-out loops take the noise blocks: per
    block its random words and, row by row, 16 columns a step, the noise and
    the rounding. With the ``fast`` noise the scaled product is a 16-bit
    fixed-point number and rounding, noise and the int8 are integer
    operations; values outside the window where neither soft saturation nor
    clipping can act are recomputed with the full model in float64 (well
    under 0.1 % of them with full-range random weights). The hot loops are
    explicit vector code (:mod:`chipsim._jit`). Everything but the product
    runs in the calling thread: right after a product, OpenBLAS's idle
    threads spin on the other cores for about 0.1 s, and a second thread of
    ours only shares a core with them (measured: two of our threads right
    after a product ran no faster than one; see ``docs/benchmarks.md``).
reference (:func:`reference`; ``BSS2_CHIPSIM_JIT=0``, and noise stds the
16-bit kernel cannot represent)
    Plain single-threaded numpy: the full model in float64 for every value
    (with ``gaussian`` noise the noisy sum and its rounding in float32, the
    normals' precision, as in the compiled path).

The noise is drawn in block order, seeded per block of :data:`NOISE_ROWS`
vectors from the chip's stream (:mod:`chipsim.noise`), so results never
depend on the implementation, the threading or the batch layout.
"""
import time

import numpy as np

from .geometry import ACT_MAX, COLS, ROWS
from .noise import (BINOMIAL_BYTES, DITHER_LEVELS, FIXED_POINT, NOISE_ROWS, SEED_WORDS,
                    FastParams, binomial_counts, dither_bytes, gauss_normals, jit, sfc64_words, words_for)
from .physics import soft_saturate
from .validation import activation_range_error

BIAS = 256  #: LSB added in the fixed-point kernel (a multiple of 256: the int8 is the low byte)
_ROW_BASE = np.arange(ROWS, dtype=np.intp) * 32
_NO_WINDOW = 1 << 20  #: a window start beyond every 16-bit value: the column is always recomputed
_U16_MAX = (1 << 16) - 1
ACT_BITS = ACT_MAX.bit_length()  #: activations are 5-bit


class Plan:
    """Kernel inputs of one hemisphere under one set of run conditions (read-only).

    The matrix product plus ``off`` yields ``y = scale * (mean + base)`` per
    column: for the fast method ``scale = 128`` and ``base = shift + BIAS``
    (``shift`` from :meth:`chipsim.noise.FastParams.shift`), so that
    ``result = ((floor(y) + t) >> 7) - BIAS`` with the fixed-point noise
    ``t``; for the gaussian method ``scale = 1`` and ``base = 0``.
    """

    __slots__ = ("table", "w_rows", "off", "method", "scale", "base", "shift", "fast", "std", "round_down", "sat",
                 "lo", "hi", "draws", "seed_words", "readout", "args")


def make_plan(pulse_table, w_eff, offset, bounds, sat, noise_std, method, floor_rounding):
    """Build a :class:`Plan`.

    Parameters
    ----------
    pulse_table : ndarray of shape (128, 32)
        Pulse of every driver for every activation (0 at activation 0).
    w_eff : ndarray of shape (128, 256)
        Mean result per pulse step.
    offset : ndarray of shape (256,)
        Mean result at zero input, LSB.
    bounds : tuple of ndarray of shape (256,)
        Lowest and highest result per column (within -128..127).
    sat : tuple of four ndarray of shape (256,), or None
        ``knee_hi, sat_hi, knee_lo, sat_lo`` of the soft saturation of the mean, LSB.
    noise_std : ndarray of shape (256,)
        Noise std per column, LSB.
    method : {"fast", "gaussian"}
    floor_rounding : bool
        Round down instead of to nearest.
    """
    p = Plan()
    p.table = np.ascontiguousarray(pulse_table, dtype=np.float32).ravel()
    p.method = method
    p.lo, p.hi = (np.asarray(b, dtype=np.float64) * np.ones(COLS) for b in bounds)
    p.sat = None if sat is None else np.array(sat, dtype=np.float64).reshape(4, COLS)
    std = np.asarray(noise_std, dtype=np.float64) * np.ones(COLS)
    p.round_down = bool(floor_rounding)
    p.draws = bool(np.any(std > 0))
    if method == "fast":
        f = p.fast = FastParams(std)
        p.scale = float(FIXED_POINT)
        p.shift = f.shift(floor_rounding) * np.ones(COLS)
        p.base = p.shift + BIAS
        p.seed_words = SEED_WORDS
        p.std = None
    else:
        p.fast = None
        p.scale = 1.0
        p.shift = p.base = np.zeros(COLS)
        p.seed_words = SEED_WORDS
        p.std = std.astype(np.float32)  # with noise the Gaussian read-out works in float32, as its normals
    w_aug = np.empty((ROWS + 1, COLS), dtype=np.float64)
    w_aug[:ROWS] = w_eff
    w_aug[ROWS] = np.asarray(offset, dtype=np.float64) + p.base
    w_aug = (w_aug * p.scale).astype(np.float32)
    p.w_rows, p.off = w_aug[:ROWS], w_aug[ROWS]
    sat4 = np.zeros((4, COLS)) if p.sat is None else p.sat
    has_sat = p.sat is not None
    p.readout, p.args = None, None  # the compiled read-out's name and its arguments after (..., b0, b1)
    if method == "gaussian":
        p.readout, p.args = "readout_gauss", (p.std, p.round_down, sat4, has_sat, p.lo.astype(np.float32),
                                              p.hi.astype(np.float32))
    elif f.integer:
        win_lo, win_hi = _column_windows(p, f)
        # y is clipped into 0..65535 - t_max for the conversion to 16 bits: y < 0 gives a result below
        # -128 and y > 65535 - t_max one above 127 whatever the noise; such values lie outside the window
        pre_hi = np.float32(_U16_MAX - f.t_max)
        p.readout, p.args = "readout_fast", (f.A.astype(np.uint16), f.k.astype(np.uint16), pre_hi, win_lo, win_hi,
                                             p.scale, p.base, p.shift, sat4, has_sat, p.lo, p.hi)
    return p


def _column_windows(p, f):
    """Per-column windows of ``floor(y)`` for the 16-bit read-out: first and last value, int32 (256,) each.

    The window of a column is where neither clipping (``floor(y) >= 128 (lo +
    BIAS)`` and ``floor(y) + t_max < 128 (hi + BIAS + 1)``, with the column's
    own noise range ``t_max``) nor soft saturation (``y`` within the knees)
    acts. Inside it the 16-bit read-out and the full model give the same
    result, so the window changes the speed only.
    """
    sc = p.scale
    t_max = 8 * BINOMIAL_BYTES * f.A + (DITHER_LEVELS - 1) * f.k
    w_lo = sc * (p.lo + BIAS)
    w_hi = sc * (p.hi + BIAS + 1) - t_max - 1.0
    if p.sat is not None:
        knee_hi, _, knee_lo, _ = p.sat
        w_lo = np.maximum(w_lo, sc * (knee_lo + p.base))
        w_hi = np.minimum(w_hi, sc * (knee_hi + p.base))
    w_lo, w_hi = np.ceil(w_lo), np.floor(w_hi) - 1
    empty = w_hi < w_lo
    start = np.where(empty, _NO_WINDOW, w_lo).astype(np.int32)
    last = np.where(empty, _NO_WINDOW, w_hi).astype(np.int32)
    return start, last


def run(x, plans, stream, profile=None):
    """Check the activations and run them through the plans.

    Parameters
    ----------
    x : ndarray of int, shape (n_runs, batch, 128)
        Activations, any integer dtype, not yet range-checked: values outside
        0..31 raise :class:`~chipsim.errors.ChipValueError` before any noise is
        drawn (the compiled path checks them in its first pass over ``x``).
    plans : sequence of Plan, length n_runs
        One plan per run; the runs draw noise in this order.
    stream : NoiseStream
    profile : dict or None, default=None
        If a dict, the compiled path adds the wall time of each of its steps
        to it, in seconds (``benchmarks/vmm_throughput.py --profile``).

    Returns
    -------
    out : ndarray of int8, shape (n_runs, batch, 256)
    events : ndarray of int64, shape (n_runs, batch)
        Non-zero activations of every vector.
    """
    n_runs, batch = x.shape[:2]
    out = np.empty((n_runs, batch, COLS), dtype=np.int8)
    events = np.empty((n_runs, batch), dtype=np.int64)
    if batch == 0:
        return out, events
    J = jit() if all(p.readout is not None for p in plans) else None
    if J is None:
        if _unsigned(x).max() > ACT_MAX:  # negative values are huge as unsigned
            raise activation_range_error(x)
        reference(x, plans, stream, out, events)
    else:
        _run_compiled(J, x, plans, stream, out, events, _Steps(profile))
    return out, events


class _Steps:
    """Adds the time since the previous mark to ``profile[step]`` (nothing without a profile)."""

    def __init__(self, profile):
        self.profile = profile
        self.t = time.perf_counter() if profile is not None else 0.0

    def __call__(self, step):
        if self.profile is not None:
            t, self.t = self.t, time.perf_counter()
            self.profile[step] = self.profile.get(step, 0.0) + self.t - t


def _seeds(stream, p, n_blocks):
    return stream.seeds(n_blocks if p.draws else 0, p.seed_words)


def _unsigned(x):
    return x.view(np.dtype(f"u{x.dtype.itemsize}")) if x.dtype.kind == "i" else x


def _run_compiled(J, x, plans, stream, out, events, step):
    n_runs, batch = x.shape[:2]
    pulses = np.empty((n_runs, batch, ROWS), dtype=np.float32)
    seen = 0
    for k, p in enumerate(plans):
        seen |= int(J.gather(x[k], p.table, pulses[k], events[k]))
    if seen >> ACT_BITS:  # a value above 31, or a negative one
        raise activation_range_error(x)
    step("gather")
    y = np.empty((n_runs, batch, COLS), dtype=np.float32)
    for k, p in enumerate(plans):
        np.matmul(pulses[k], p.w_rows, out=y[k])
    step("product")
    n_blocks = -(-batch // NOISE_ROWS)
    seeds = [_seeds(stream, p, n_blocks) for p in plans]  # in stream order
    step("seeds")
    for k, p in enumerate(plans):
        getattr(J, p.readout)(y[k], p.off, seeds[k], out[k], 0, n_blocks, *p.args)
    step("readout")


# ------------------------------------------------------------ the reference
def reference(x, plans, stream, out, events):
    """The plain numpy implementation of :func:`run` (single-threaded; float64 but the Gaussian noise's sum).

    Writes ``out`` and ``events`` as :func:`run` returns them; the compiled
    path computes the same numbers bit for bit.
    """
    batch = x.shape[1]
    for k, p in enumerate(plans):
        xk = x[k].astype(np.intp)
        events[k] = np.count_nonzero(xk, axis=1)
        y = p.table[xk | _ROW_BASE] @ p.w_rows  # float32, as the compiled path
        y += p.off
        mean = y.astype(np.float64)
        if p.method == "fast":
            mean = mean / p.scale - p.base
        if p.sat is not None:
            mean = soft_saturate(mean, *p.sat)
        n_blocks = -(-batch // NOISE_ROWS)
        seeds = _seeds(stream, p, n_blocks)
        if p.method == "fast":
            z = mean + p.shift
            for b, seed in enumerate(seeds):
                rows = slice(b * NOISE_ROWS, (b + 1) * NOISE_ROWS)
                z[rows] += _fast_increment(seed, p.fast, z[rows].size)
            z = np.floor(z)
        else:  # with noise in float32 (the normals' precision), the mean rounded to float32 first
            z = mean.astype(np.float32) if len(seeds) else mean
            for b, seed in enumerate(seeds):
                rows = slice(b * NOISE_ROWS, (b + 1) * NOISE_ROWS)
                z[rows] += p.std * gauss_normals(seed, z[rows].size).reshape(-1, COLS)
            z = np.floor(z) if p.round_down else np.rint(z)
        out[k] = np.clip(z, p.lo, p.hi)


def _fast_increment(seed, f, n):
    """The ``fast`` noise ``a B + w j / 256`` (LSB, float64, shape (n // 256, 256)) of one block."""
    raw = sfc64_words(seed, words_for(n)).view(np.uint8).reshape(1, -1, n)
    b = binomial_counts(raw)[0].reshape(-1, COLS).astype(np.int64)
    j = dither_bytes(raw)[0].reshape(-1, COLS).astype(np.int64)
    if f.integer:  # exactly the 16-bit kernel's fixed-point noise
        return (f.A * b + f.k * j) / float(FIXED_POINT)
    return f.a * b + (f.w / DITHER_LEVELS) * j
