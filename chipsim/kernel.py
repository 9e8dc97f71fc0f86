"""The batched VMM kernel: int activations in, int8 results out.

Per hemisphere and run conditions a :class:`Plan` caches everything in
float32: the pulse table, the effective weights, and a row of column offsets
(scaled, plus a constant ``base``). Every path computes, per block of vectors,
``y = pulses @ w + offsets`` in float32 (one BLAS product, then one addition),
then the noise and the read-out; the paths differ only in how they get there,
and give the same numbers bit for bit.

With the ``fast`` noise method (:mod:`chipsim.noise`) the product comes out
scaled to 1/128 LSB and shifted so that every result is a 16-bit fixed-point
number: rounding, the dither and the int8 read-out are integer operations.
Values outside the window where neither soft saturation nor clipping can act
are recomputed with the full model in float64 (the compiled path has one window
per column, well under 0.1 % of the values with full-range random weights; the
numpy path the intersection of those windows for all columns, 0.1 % on the
default chip and about 5 % on a ``harsh`` one). Inside a window both
computations are exact, so the choice of window never changes a result.

The paths:

compiled (default for runs of more than :data:`SMALL_BATCH` vectors with the ``fast`` method)
    :mod:`chipsim._jit` (numba): per chunk of :data:`JIT_ROWS` vectors, one
    loop gathers the pulses and counts the events, BLAS multiplies (with the
    threads numpy's BLAS is configured for), and one loop per noise block
    expands the block's seed into its random bits and another does the
    offsets, noise, read-out and exact recomputation in one pass. The
    calling thread does the loops, BLAS's own threads share the product: on
    a 2-core machine both cores work during the product, and nothing competes
    with BLAS's idle threads (which spin for a while after every
    multi-threaded call).
numpy (without numba, ``BSS2_CHIPSIM_JIT=0``, or a noise std below 0.58 LSB)
    The same steps as whole-array numpy operations. With two or more blocks
    the event counts and matrix products run in a worker thread (BLAS held at
    one thread), up to ``SLOTS - 1`` blocks ahead, while the calling thread
    adds the noise; ``BSS2_CHIPSIM_THREADS=1`` keeps everything in the
    calling thread.
short (at most :data:`SMALL_BATCH` vectors)
    float32 numpy with as few calls as possible.
gaussian (the ``gaussian`` noise method)
    float32 numpy throughout.

The noise is drawn in block order, seeded per block of :data:`NOISE_ROWS`
vectors, so results never depend on the path, threading or block size.
"""
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .geometry import COLS, ROWS
from .noise import (BINOMIAL_BYTES, BYTES_PER_SAMPLE, DITHER_LEVELS, FIXED_POINT, FastParams, float_increment,
                    fixed_increment, jit, words_for)

NOISE_ROWS = 256  #: vectors per noise block: fixes the layout of the noise bits in the stream
COMPUTE_ROWS = 512  #: most vectors processed as one block
SMALL_BATCH = 64  #: runs of at most this many vectors take the short path
SLOTS = 4  #: blocks in flight: one being read out, up to three gathered with their products queued
PARALLEL_MIN_ROWS = 512  #: runs with fewer vectors (over all hemispheres) stay in the calling thread
BIAS = 256  #: LSB added in the fixed-point kernel (a multiple of 256: the int8 is the low byte)
_ROW_BASE = (np.arange(ROWS, dtype=np.intp) * 32)
_BYTE_SUM = np.uint64(0x0101010101010101)
_U16_MAX = (1 << 16) - 1


class Plan:
    """Kernel inputs of one hemisphere under one set of run conditions (read-only).

    The matrix product yields ``y = scale * (mean + base)`` per column: for the
    fast method ``scale = 128`` and ``base = c + BIAS``, so that
    ``result = ((floor(y) + t) >> 7) - BIAS`` with the fixed-point noise ``t``
    (see :class:`chipsim.noise.FastParams`); for the gaussian method
    ``scale = 1`` and ``base = 0`` (and ``shift`` tells whether to round down).
    """

    __slots__ = ("table", "w_aug", "method", "scale", "base", "shift", "fast", "integer", "gauss_std",
                 "gauss_uniform", "lo", "hi", "lo_s", "hi_s", "bounds_uniform", "sat", "sat_scaled",
                 "sat_hi_thr", "sat_lo_thr", "sat_z", "pre_hi", "win_lo", "win_span", "event_rows", "w_rows",
                 "off", "jit_args")


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
    table = np.ascontiguousarray(pulse_table, dtype=np.float32)
    p.table = table.ravel()
    # events are counted from the pulses (non-zero pulse <=> non-zero activation) except on
    # drivers that give a zero pulse for some activation (dead ones): those count from x
    p.event_rows = np.flatnonzero(np.any(table[:, 1:] == 0, axis=1)).astype(np.intp)
    p.method = method
    lo, hi = (np.asarray(b, dtype=np.float64) for b in bounds)
    p.lo, p.hi = lo.astype(np.float32), hi.astype(np.float32)
    p.bounds_uniform = bool(np.all(lo == lo[0]) and np.all(hi == hi[0]))
    p.lo_s, p.hi_s = np.float32(lo[0]), np.float32(hi[0])
    std = np.asarray(noise_std, dtype=np.float64)
    if method == "fast":
        f = p.fast = FastParams(std)
        p.scale = float(FIXED_POINT)
        p.shift = f.shift(floor_rounding)
        base = p.shift + BIAS
        p.integer = f.integer
        p.gauss_std = None
    else:
        p.fast = None
        p.scale = 1.0
        base = np.zeros(COLS)
        p.shift = bool(floor_rounding)  # gaussian: round down instead of to nearest
        p.gauss_std = std.astype(np.float32)
        p.gauss_uniform = bool(np.all(std == std[0]))
        p.integer = False
    base = np.asarray(base, dtype=np.float64) * np.ones(COLS)
    p.base = base
    sc = p.scale
    if sat is not None:
        p.sat = tuple(np.asarray(v, dtype=np.float64) for v in sat)
        knee_hi, sat_hi, knee_lo, sat_lo = p.sat
        kh, kl = sc * (knee_hi + base), sc * (knee_lo + base)
        p.sat_scaled = tuple(v.astype(np.float32) for v in (kh, sc * sat_hi, kl, sc * sat_lo))
        p.sat_hi_thr, p.sat_lo_thr = float(kh.min()), float(kl.max())
        if method == "fast":  # float32 copies for the short path, thresholds in units of mean + shift
            p.sat_z = tuple(v.astype(np.float32) for v in p.sat) + (
                p.sat_hi_thr / sc - BIAS, p.sat_lo_thr / sc - BIAS, p.shift.astype(np.float32))
    else:
        p.sat = p.sat_scaled = None
        p.sat_hi_thr, p.sat_lo_thr = np.inf, -np.inf
    if p.integer:
        # y is clipped into 0..65535 - t_max for the conversion to uint16: y < 0 gives a result
        # below -128 and y > 65535 - t_max one above 127 whatever the noise (t_max < 2**14);
        # such values are outside the window below and get recomputed.
        p.pre_hi = np.float32(_U16_MAX - f.t_max)
        # the numpy path's one window: where every column's window holds
        col_lo, col_span = _column_windows(p, lo, hi, f)
        w_lo, w_hi = int(col_lo.max()), int((col_lo + col_span).min())
        if w_hi >= w_lo:
            p.win_lo, p.win_span = np.uint16(w_lo), np.uint16(w_hi - w_lo)
        else:
            p.win_lo, p.win_span = np.uint16(0), None  # recompute everything
    w_aug = np.empty((ROWS + 1, COLS), dtype=np.float64)
    w_aug[:ROWS] = w_eff
    w_aug[ROWS] = np.asarray(offset, dtype=np.float64) + base
    p.w_aug = (w_aug * sc).astype(np.float32)
    p.w_rows = p.w_aug[:ROWS]
    p.off = p.w_aug[ROWS]
    p.jit_args = None
    if p.integer:  # arguments of the compiled read-out (chipsim._jit.post_fast) after y, off, raw, out
        sat4 = np.zeros((4, COLS)) if p.sat is None else np.array(p.sat, dtype=np.float64)
        p.jit_args = (f.A.astype(np.int32), f.k.astype(np.int32), np.float32(p.pre_hi), col_lo, col_span,
                      float(p.scale), p.base, p.shift, sat4, p.sat is not None, p.lo.astype(np.float64),
                      p.hi.astype(np.float64))
    return p


_NO_WINDOW = 1 << 20  #: a window start beyond every 16-bit value: the column is always recomputed


def _column_windows(p, lo, hi, f):
    """Per-column windows of ``floor(y)``: start and span, int32 (256,) each.

    The window of a column is where neither clipping (``floor(y) >= 128 (lo +
    BIAS)`` and ``floor(y) + t_max < 128 (hi + BIAS + 1)``, with the column's
    own noise range ``t_max``) nor soft saturation (``y`` within the knees)
    acts. The compiled read-out uses them column by column, so a noisy column
    or one with a narrow ADC range does not narrow the others; the numpy path
    uses their intersection. Inside any window the 16-bit path and the
    float64 recomputation give the same result, so the choice of window
    changes the speed only (the tests compare the two paths bit for bit).
    """
    sc = p.scale
    t_max = 8 * BINOMIAL_BYTES * f.A + (DITHER_LEVELS - 1) * f.k
    w_lo = sc * (lo + BIAS)
    w_hi = sc * (hi + BIAS + 1) - t_max - 1.0
    if p.sat is not None:
        knee_hi, _, knee_lo, _ = p.sat
        w_lo = np.maximum(w_lo, sc * (knee_lo + p.base))
        w_hi = np.minimum(w_hi, sc * (knee_hi + p.base))
    w_lo, w_hi = np.ceil(w_lo), np.floor(w_hi) - 1
    empty = w_hi < w_lo
    start = np.where(empty, _NO_WINDOW, w_lo).astype(np.int32)
    span = np.where(empty, 0, w_hi - w_lo).astype(np.int32)
    return start, span


# ------------------------------------------------------------------ threading
class _Blas:
    """Holds the BLAS used by numpy at one thread while runs are in flight (if threadpoolctl is there)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = None
        self._libs = None

    def _controllers(self):
        if self._libs is None:
            try:
                from threadpoolctl import ThreadpoolController

                self._libs = list(ThreadpoolController().select(user_api="blas").lib_controllers)
            except Exception:  # threadpoolctl missing or unable to inspect: leave the BLAS alone
                self._libs = []
        return self._libs

    @property
    def available(self):
        return bool(self._controllers())

    def __enter__(self):
        libs = self._controllers()
        with self._lock:
            if self._depth == 0 and libs:
                self._saved = [lib.get_num_threads() for lib in libs]
                for lib in libs:
                    lib.set_num_threads(1)
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._saved is not None:
                for lib, n in zip(self._libs, self._saved):
                    lib.set_num_threads(n)
                self._saved = None


_BLAS = _Blas()
_NO_BLAS = contextlib.nullcontext()
_POOL = None
_POOL_LOCK = threading.Lock()
_LOCAL = threading.local()


def _threads():
    env = os.environ.get("BSS2_CHIPSIM_THREADS")
    if env is not None:
        try:
            return max(1, int(env))
        except ValueError:
            return 1
    return min(2, os.cpu_count() or 1)


def _pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chipsim")
        return _POOL


def _after_fork_in_child():
    """A forked child has none of the parent's threads: start afresh (never wait on a dead worker)."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()
    _BLAS.__init__()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Slot:
    """Buffers of one block in flight: gather index, pulses, non-zero flags, product."""

    def __init__(self, rows):
        self.idx = np.empty((rows, ROWS), dtype=np.intp)
        self.pulses = np.empty((rows, ROWS), dtype=np.float32)
        self.nz = np.empty((rows, ROWS), dtype=bool)
        self.y = np.empty((rows, COLS), dtype=np.float32)


class _Workspace:
    """Per-thread buffers, reused by every call (about 7 kB per row of COMPUTE_ROWS).

    :data:`SLOTS` block slots (one block's noise is added while the
    products of the next ones are computed or queued) and the buffers of the
    noise and read-out.
    """

    def __init__(self, rows):
        self.rows = rows
        self.slots = tuple(_Slot(rows) for _ in range(SLOTS))
        self.v = np.empty((rows, COLS), dtype=np.uint16)
        self.d16 = np.empty(rows * COLS, dtype=np.uint16)  # window test, then the noise
        self.flag = np.empty(rows * COLS, dtype=bool)  # flags, then the bit counts
        self.b8 = self.flag.view(np.uint8)


def _workspace():
    cache = getattr(_LOCAL, "cache", None)
    if cache is None:
        cache = _LOCAL.cache = {}
    ws = cache.get(COMPUTE_ROWS)
    if ws is None:
        ws = cache[COMPUTE_ROWS] = _Workspace(COMPUTE_ROWS)
    return ws


# ------------------------------------------------------------------- kernel
def _count_rows(b):
    """True values per row of a C-contiguous bool array of shape (m, 128), int64."""
    v = np.einsum("ij->i", b.view(np.uint64))  # 16 words per row, every byte 0 or 1
    return ((v * _BYTE_SUM) >> np.uint64(56)).astype(np.int64)  # sum of the 8 byte lanes


def _events(pulses, x, p, nz):
    """Non-zero activations per row, counted from the pulses (in cache) where that is exact."""
    np.not_equal(pulses, 0, out=nz)
    ev = _count_rows(nz)
    if p.event_rows.size:
        r = p.event_rows
        ev += np.count_nonzero(x[:, r], axis=1) - np.count_nonzero(nz[:, r], axis=1)
    return ev


def _saturate(y, p, ymax, ymin):
    """Soft saturation of the elements of ``y`` (scaled mean + base) beyond their column's knee, in place."""
    flat = y.reshape(-1)
    knee_hi, sat_hi, knee_lo, sat_lo = p.sat_scaled
    if ymax > p.sat_hi_thr:
        idx = np.flatnonzero(flat > p.sat_hi_thr)
        col = idx & (COLS - 1)
        v = flat[idx]
        d = np.maximum(v - knee_hi[col], 0)
        flat[idx] = v - (d - d / (1 + d / sat_hi[col]))
    if ymin < p.sat_lo_thr:
        idx = np.flatnonzero(flat < p.sat_lo_thr)
        col = idx & (COLS - 1)
        v = flat[idx]
        d = np.maximum(knee_lo[col] - v, 0)
        flat[idx] = v + (d - d / (1 + d / sat_lo[col]))


def _clip_store(z, out, p):
    if p.bounds_uniform:
        np.clip(z, p.lo_s, p.hi_s, out=z)
    else:
        np.maximum(z, p.lo, out=z)
        np.minimum(z, p.hi, out=z)
    np.copyto(out, z, casting="unsafe")


def _recompute(out_flat, pos, y, t, p):
    """The full model, element by element (fast method).

    ``pos`` are flat positions in ``out_flat``, ``y`` their scaled products
    (mean + base), ``t`` their fixed-point noise (None: noiseless).
    """
    col = pos & (COLS - 1)
    mean = y.astype(np.float64) / p.scale - p.base[col]
    if p.sat is not None:
        knee_hi, sat_hi, knee_lo, sat_lo = p.sat
        d = np.maximum(mean - knee_hi[col], 0)
        mean -= d - d / (1 + d / sat_hi[col])
        d = np.maximum(knee_lo[col] - mean, 0)
        mean += d - d / (1 + d / sat_lo[col])
    z = mean + p.shift[col]
    if t is not None:
        z += t / FIXED_POINT
    out_flat[pos] = np.clip(np.floor(z), p.lo[col], p.hi[col]).astype(np.int8)


def _post_fast(y, out, p, raw, ws, fix, offset):
    """Noise, rounding and clipping of one block ``y`` (m, 256, scaled) into ``out`` (m, 256) int8.

    Values outside the window of the 16-bit path are appended to ``fix`` (flat
    position ``offset + i``, product, noise) to be recomputed in one go.
    """
    m = y.shape[0]
    n = m * COLS
    f = p.fast
    if p.integer:
        ymax, ymin = float(y.max()), float(y.min())
        src = y
        if ymin < 0 or ymax > p.pre_hi:  # outside uint16: such values are recomputed
            src = np.clip(y, np.float32(0), p.pre_hi)
        v = ws.v[:m]
        np.copyto(v, src, casting="unsafe")  # truncation == floor: src >= 0
        if p.win_span is None:
            idx = np.arange(n)
        elif ymin >= p.win_lo and ymax < int(p.win_lo) + int(p.win_span):
            idx = None
        else:
            d = ws.d16[:n].reshape(m, COLS)
            np.subtract(v, p.win_lo, out=d)  # wraps around below the window
            idx = np.flatnonzero(np.greater(d, p.win_span, out=ws.flag[:n].reshape(m, COLS)))
            if not idx.size:
                idx = None
        t = None
        if raw is not None:
            t = fixed_increment(raw, f, COLS, ws.b8, ws.d16)
            v += t
        # result + BIAS = v >> 7; BIAS is a multiple of 256, so the int8 is its low byte
        np.right_shift(v, 7, out=v)
        np.copyto(out, v, casting="unsafe")
        if idx is not None:
            fix.append((offset + idx, y.reshape(-1)[idx], None if t is None else t.reshape(-1)[idx]))
        return
    _exact(y, raw, out, p)  # non-integer noise parameters (std below 0.58 LSB)


def _exact(y, raw, out, p):
    """The full model on a whole block in float32 (fast method): small blocks, non-integer noise.

    Computes ``floor(y / 128 - BIAS + a B + w j / 256)``, with the soft
    saturation applied to the mean first, then clips: the same numbers as the
    16-bit path.
    """
    m = y.shape[0]
    z = y * np.float32(1.0 / FIXED_POINT)
    z -= np.float32(BIAS)  # mean + shift
    if p.sat is not None:
        zmax, zmin = float(z.max()), float(z.min())
        if zmax > p.sat_z[4] or zmin < p.sat_z[5]:
            knee_hi, sat_hi, knee_lo, sat_lo, _, _, shift = p.sat_z
            z -= shift
            d = np.maximum(z - knee_hi, 0)
            z -= d - d / (1 + d / sat_hi)
            d = np.maximum(knee_lo - z, 0)
            z += d - d / (1 + d / sat_lo)
            z += shift
    if raw is not None:
        f = p.fast
        if f.integer:
            t = fixed_increment(raw, f, COLS, np.empty(m * COLS, np.uint8), np.empty(m * COLS, np.uint16))
            z += np.multiply(t, np.float32(1.0 / FIXED_POINT), dtype=np.float32)
        else:
            z += float_increment(raw, f, COLS)
    np.floor(z, out=z)
    _clip_store(z, out, p)


def _post_gauss(y, out, p, stream):
    z = y
    if p.sat is not None:
        ymax, ymin = float(y.max()), float(y.min())
        if ymax > p.sat_hi_thr or ymin < p.sat_lo_thr:
            _saturate(y, p, ymax, ymin)
    if p.gauss_uniform:
        s = float(p.gauss_std[0])
        if s > 0:
            e = stream.rng.standard_normal(z.shape, dtype=np.float32)
            if s != 1.0:
                e *= np.float32(s)
            z += e
    else:
        e = stream.rng.standard_normal(z.shape, dtype=np.float32)
        e *= p.gauss_std
        z += e
    if p.shift:
        np.floor(z, out=z)
    else:
        np.rint(z, out=z)
    _clip_store(z, out, p)


def _gather(slot, x, task, plans):
    """Pulses of one block, into ``slot``."""
    k, r0, r1, _ = task
    m = r1 - r0
    idx = slot.idx[:m]
    np.bitwise_or(x[k, r0:r1], _ROW_BASE, out=idx)
    np.take(plans[k].table, idx, out=slot.pulses[:m], mode="wrap")


def _product(slot, x, task, plans, events):
    """The block's event counts and its matrix product (the offsets included), into ``slot.y``."""
    k, r0, r1, _ = task
    p = plans[k]
    m = r1 - r0
    pulses = slot.pulses[:m]
    events[k, r0:r1] = _events(pulses, x[k, r0:r1], p, slot.nz[:m])
    y = np.matmul(pulses, p.w_rows, out=slot.y[:m])
    y += p.off


def _post(slot, out, task, plans, stream, ws, fixes):
    """Noise, rounding and clipping of one block's product (in ``slot``) into ``out``."""
    k, r0, r1, n_blocks = task
    p = plans[k]
    m = r1 - r0
    y = slot.y[:m]
    if p.method == "fast":
        raw = stream.raw_blocks(n_blocks, m * COLS // n_blocks) if p.fast.draws else None
        _post_fast(y, out[k, r0:r1], p, raw, ws, fixes[k], r0 * COLS)
    else:
        _post_gauss(y, out[k, r0:r1], p, stream)


def _run_small(x, plans, stream, out, events):
    """Few vectors: the fewest numpy calls, everything in float32."""
    batch = x.shape[1]
    with _BLAS if batch >= 8 else _NO_BLAS:  # OpenBLAS runs smaller products in one thread anyway
        for k, p in enumerate(plans):
            xk = x[k]
            events[k] = np.count_nonzero(xk, axis=1)
            pulses = np.take(p.table, np.bitwise_or(xk, _ROW_BASE), mode="wrap")
            y = np.matmul(pulses, p.w_rows)
            y += p.off
            if p.method == "fast":
                raw = stream.raw_blocks(1, batch * COLS) if p.fast.draws else None
                _exact(y, raw, out[k], p)
            else:
                _post_gauss(y, out[k], p, stream)


# ------------------------------------------------------------ compiled path
JIT_ROWS = 512  #: vectors gathered, multiplied and read out together by the compiled path
assert JIT_ROWS % NOISE_ROWS == 0


class _JitBuffers:
    def __init__(self):
        self.pulses = np.empty((JIT_ROWS, ROWS), dtype=np.float32)
        self.y = np.empty((JIT_ROWS, COLS), dtype=np.float32)
        self.words = np.empty(words_for(NOISE_ROWS * COLS), dtype=np.uint64)


def _jit_buffers():
    buf = getattr(_LOCAL, "jit", None)
    if buf is None:
        buf = _LOCAL.jit = _JitBuffers()
    return buf


_NO_RAW = np.zeros((BYTES_PER_SAMPLE, 0), dtype=np.uint8)


def _jit_chunk(J, buf, chunk, x, plans, out, events, seeds):
    """Gather, multiply and read out one chunk (rows ``r0:r1`` of run ``k``) with the compiled loops."""
    k, r0, r1, blocks = chunk
    p = plans[k]
    m = r1 - r0
    pulses, y = buf.pulses[:m], buf.y[:m]
    J.gather(x[k, r0:r1], p.table, pulses, events[k, r0:r1])
    np.matmul(pulses, p.w_rows, out=y)
    for b0, b1, s in blocks:
        if s < 0:
            raw = _NO_RAW
        else:
            n = words_for((b1 - b0) * COLS)
            J.sfc64_fill(seeds[s], buf.words[:n])
            raw = buf.words[:n].view(np.uint8).reshape(BYTES_PER_SAMPLE, -1)
        J.post_fast(y[b0 - r0:b1 - r0], p.off, raw, out[k, b0:b1], *p.jit_args)


def _run_jit(J, x, plans, stream, out, events):
    """The compiled path: chunks of :data:`JIT_ROWS` vectors, noise seeded per noise block up front."""
    n_runs, batch = x.shape[:2]
    chunks, n_seeds = [], 0
    for k, p in enumerate(plans):
        for r0 in range(0, batch, JIT_ROWS):
            r1 = min(r0 + JIT_ROWS, batch)
            blocks = []
            for b0 in range(r0, r1, NOISE_ROWS):
                blocks.append((b0, min(b0 + NOISE_ROWS, r1), n_seeds if p.fast.draws else -1))
                n_seeds += bool(p.fast.draws)
            chunks.append((k, r0, r1, blocks))
    seeds = stream.seeds(n_seeds)
    buf = _jit_buffers()
    for c in chunks:
        _jit_chunk(J, buf, c, x, plans, out, events, seeds)


def run(x, plans, stream):
    """Run validated activations through the plans.

    Parameters
    ----------
    x : ndarray of int, shape (n_runs, batch, 128)
        Activations 0..31 (already checked), any integer dtype but uint64.
    plans : sequence of Plan, length n_runs
        One plan per run; the runs draw noise in this order.
    stream : NoiseStream

    Returns
    -------
    out : ndarray of int8, shape (n_runs, batch, 256)
    events : ndarray of int64, shape (n_runs, batch)
        Non-zero activations of every vector.

    Notes
    -----
    The path is chosen as the module docstring says: the compiled one for
    ``fast`` plans whose noise fits the 16-bit kernel (and numba present),
    else numpy. In the numpy path with two or more blocks the matrix
    products run in a worker thread (BLAS at one thread, the GIL released
    for the whole call), up to ``SLOTS - 1`` blocks ahead, while the calling
    thread adds the noise to block ``i`` and gathers the next ones.
    """
    n_runs, batch = x.shape[:2]
    out = np.empty((n_runs, batch, COLS), dtype=np.int8)
    events = np.empty((n_runs, batch), dtype=np.int64)
    if batch == 0:
        return out, events
    if batch <= SMALL_BATCH:
        _run_small(x, plans, stream, out, events)
        return out, events
    J = jit() if all(p.jit_args is not None for p in plans) else None
    if J is not None:
        _run_jit(J, x, plans, stream, out, events)
        return out, events
    tasks = []  # blocks in stream order: (run, first row, end row, noise blocks)
    full = batch - batch % NOISE_ROWS
    step = max(NOISE_ROWS, COMPUTE_ROWS - COMPUTE_ROWS % NOISE_ROWS)
    for k in range(n_runs):
        for r0 in range(0, full, step):
            r1 = min(r0 + step, full)
            tasks.append((k, r0, r1, (r1 - r0) // NOISE_ROWS))
        if full < batch:  # a last, partial noise block
            tasks.append((k, full, batch, 1))
    ws = _workspace()
    n = len(tasks)
    fixes = [[] for _ in plans]
    with _BLAS:
        if n < 2 or n_runs * batch < PARALLEL_MIN_ROWS or _threads() < 2 or not _BLAS.available:
            slot = ws.slots[0]
            for task in tasks:
                _gather(slot, x, task, plans)
                _product(slot, x, task, plans, events)
                _post(slot, out, task, plans, stream, ws, fixes)
        else:
            pool = _pool()
            slots = ws.slots
            futs = [None] * n
            ahead = len(slots) - 1
            try:
                for i in range(min(ahead, n)):
                    _gather(slots[i], x, tasks[i], plans)
                    futs[i] = pool.submit(_product, slots[i], x, tasks[i], plans, events)
                for i in range(n):
                    futs[i].result()
                    j = i + ahead
                    if j < n:  # the slot of block i - 1 is free
                        _gather(slots[j % len(slots)], x, tasks[j], plans)
                        futs[j] = pool.submit(_product, slots[j % len(slots)], x, tasks[j], plans, events)
                    _post(slots[i % len(slots)], out, tasks[i], plans, stream, ws, fixes)
            finally:  # never leave a product writing into the buffers
                wait([f for f in futs if f is not None])
    for k, fix in enumerate(fixes):
        if fix:
            pos, yv, tv = (np.concatenate(a) if a[0] is not None else None for a in zip(*fix))
            _recompute(out[k].reshape(-1), pos, yv, tv, plans[k])
    return out, events
