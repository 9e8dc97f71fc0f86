"""The batched VMM kernel: int activations in, int8 results out.

Per hemisphere and run conditions a :class:`Plan` caches the synapse
array's product in fixed point (:func:`fixed_point`: int16 pulses per
driver and activation, int16 effective weights, on power-of-two grids,
so that every sum is an exact int32) and a row of column offsets (scaled,
plus a constant ``base``). Every run computes ``y = float32(P @ W) * step +
offsets`` in float32 (``step`` per column), then the mean's soft saturation,
the noise and the read-out. The exact integer product makes the results the same on every
machine, whatever the order of the additions.

Two implementations compute the same numbers bit for bit
(``tests/test_chipsim_noise.py`` compares them on several presets):

compiled (:mod:`chipsim._jit`, numba; what runs)
    One loop per noise block of :data:`NOISE_ROWS` vectors: it gathers the
    pulses, counts the events and checks the activations' range (in one pass
    over the caller's rows), multiplies with integer dot-product instructions
    (``vpdpwssd`` where the CPU has AVX512-VNNI) and reads out, 16 columns a
    step, with the block's noise; the block's buffers stay in the CPU's
    cache. With the ``fast`` noise the scaled mean is a 16-bit fixed-point
    number and rounding, noise and the int8 are integer operations; values
    outside the window where neither soft saturation nor clipping can act
    are recomputed with the full model in float64 (well under 0.1 % of them
    with full-range random weights). Large calls share their blocks with
    helper threads (:class:`_Helpers`, ``BSS2_CHIPSIM_THREADS``); a call
    never waits for a helper.
reference (:func:`reference`; ``BSS2_CHIPSIM_JIT=0``, and noise stds the
16-bit kernel cannot represent)
    Plain single-threaded numpy: the integer product as an exact float64
    product, the full model in float64 for every value (with ``gaussian``
    noise the noisy sum and its rounding in float32, the normals' precision,
    as in the compiled path).

The noise is drawn in block order, seeded per block of :data:`NOISE_ROWS`
vectors from the chip's stream (:mod:`chipsim.noise`), so results never
depend on the implementation, the threading or the batch layout.
"""
import atexit
import os
import queue
import threading
import time

import numpy as np

from .geometry import ACT_MAX, COLS, ROWS
from .noise import (BINOMIAL_BYTES, DITHER_LEVELS, FIXED_POINT, NOISE_ROWS, SEED_WORDS,
                    FastParams, binomial_counts, dither_bytes, gauss_normals, jit, sfc64_words, words_for)
from .physics import soft_saturate
from .errors import ChipValueError
from .validation import activation_range_error

BIAS = 256  #: LSB added in the fixed-point kernel (a multiple of 256: the int8 is the low byte)
_ROW_BASE = np.arange(ROWS, dtype=np.intp) * 32
_NO_WINDOW = 1 << 20  #: a window start beyond every 16-bit value: the column is always recomputed
_U16_MAX = (1 << 16) - 1
ACT_BITS = ACT_MAX.bit_length()  #: activations are 5-bit


class Plan:
    """Kernel inputs of one hemisphere under one set of run conditions (read-only).

    ``float32(P @ W) * yscale`` plus ``off`` yields ``y = scale * (mean +
    base)`` per column (``yscale = float32(scale * step)``,
    :func:`fixed_point`; ``table`` holds ``P`` as int32, ``wp`` the rows of
    ``W`` in int16 pairs, ``w_fixed`` ``W`` in float64 for the reference):
    for the fast method ``scale = 128`` and ``base = shift + BIAS``
    (``shift`` from :meth:`chipsim.noise.FastParams.shift`), so that
    ``result = ((floor(y) + t) >> 7) - BIAS`` with the fixed-point noise
    ``t``; for the gaussian method ``scale = 1`` and ``base = 0``.
    """

    __slots__ = ("table", "wp", "w_fixed", "step", "yscale", "off", "method", "scale", "base", "shift", "fast", "std",
                 "round_down", "sat", "lo", "hi", "draws", "seed_words", "vmm", "args")


def make_plan(pulse_table, w_eff, offset, bounds, sat, noise_std, method, floor_rounding, codes=None):
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
    codes : ndarray of shape (128, 256), optional
        The weight codes ``w_eff`` was made from (see :func:`fixed_point`).
    """
    p = Plan()
    table, w_fixed, p.step = fixed_point(pulse_table, w_eff, codes)
    p.table = table.astype(np.int32).ravel()  # the compiled look-up gathers 32-bit values
    p.w_fixed = w_fixed.astype(np.float64)  # the reference multiplies in float64 (exact)
    p.wp = np.ascontiguousarray(w_fixed.reshape(ROWS // 2, 2, COLS).transpose(0, 2, 1)).view(np.int32).reshape(
        ROWS // 2, COLS)
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
    p.yscale = (p.scale * p.step).astype(np.float32)
    p.off = ((np.asarray(offset, dtype=np.float64) + p.base) * p.scale).astype(np.float32) * np.ones(COLS, np.float32)
    sat4 = np.zeros((4, COLS)) if p.sat is None else p.sat
    has_sat = p.sat is not None
    p.vmm, p.args = None, None  # the compiled loop's name and its read-out arguments
    if method == "gaussian":
        p.vmm, p.args = "vmm_gauss", (p.std, p.round_down, sat4, has_sat, p.lo.astype(np.float32),
                                      p.hi.astype(np.float32))
    elif f.integer:
        win_lo, win_hi = _column_windows(p, f)
        # y is clipped into 0..65535 - t_max for the conversion to 16 bits: y < 0 gives a result below
        # -128 and y > 65535 - t_max one above 127 whatever the noise; such values lie outside the window
        pre_hi = np.float32(_U16_MAX - f.t_max)
        p.vmm, p.args = "vmm_fast", (f.A.astype(np.uint16), f.k.astype(np.uint16), pre_hi, win_lo, win_hi,
                                             p.scale, p.base, p.shift, sat4, has_sat, p.lo, p.hi)
    return p


INT16_MAX = (1 << 15) - 1
SUM_MAX = (1 << 31) - 1  #: the product's sums are int32


def fixed_point(pulse_table, w_eff, codes=None):
    """The synapse array's product in fixed point: int16 pulses and weights, every sum an exact int32.

    ``pulse_table ~ P * 2**-a`` and, per column, ``w_eff ~ W * step_c * 2**a``
    (round to nearest), so that ``pulses @ w_eff ~ (P @ W) * step``. The
    grids keep ``|P|, |W| <= 32767`` and every column's largest possible sum
    ``sum_r max|P[r]| |W[r, c]|`` below ``2**31``. ``step`` is a power of two
    (one for all columns), of the pairs allowed the one with the smallest
    bound on the rounding error of a column's sum: with the presets'
    magnitudes 12 to 13 bits each, within about 5e-5 of the largest possible
    sum (0.01 LSB at one send; ``tests/test_chipsim_kernel.py``), far below
    the noise. A column whose effective weights are one gain times the
    weight ``codes`` (no synapse mismatch: ``ideal``, ``noiseless``) holds
    the codes themselves, exactly, with the gain in its ``step``.

    Parameters
    ----------
    pulse_table : array-like of shape (128, 32)
    w_eff : array-like of shape (128, 256)
    codes : array-like of int, shape (128, 256), optional

    Returns
    -------
    P : ndarray of int16, shape (128, 32)
    W : ndarray of int16, shape (128, 256)
    step : ndarray of float64, shape (256,)
    """
    t = np.asarray(pulse_table, dtype=np.float64)
    w = np.asarray(w_eff, dtype=np.float64)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(w))):
        raise ValueError("fixed_point: pulses and weights must be finite")
    t_row, w_abs = np.abs(t).max(axis=1), np.abs(w)
    w_max, t_sum, w_sum = w_abs.max(initial=0.0), t_row.sum(), w_abs.sum(axis=0).max(initial=0.0)
    best = None
    a_max = 40
    while np.rint(np.ldexp(t_row, a_max)).max(initial=0) > INT16_MAX:
        a_max -= 1
    for a in range(a_max, a_max - 40, -1):  # from the finest pulse grid down; ties keep the finer one
        p_row = np.rint(np.ldexp(t_row, a))  # each row's largest |P|
        b = _weight_exponent(w, w_abs, w_max, p_row)
        # the bound on a column's rounding error: every pulse off by half a step of W, every weight by half of P's
        err = float(t_sum * 2.0 ** -(b + 1) + w_sum * 2.0 ** -(a + 1))
        if best is None or err < best[0]:
            best = (err, a, b)
    _, a, b = best
    P, W = np.rint(np.ldexp(t, a)), np.rint(np.ldexp(w, b))
    step = np.full(w.shape[1], 2.0 ** -(a + b))
    if codes is not None:
        _exact_columns(np.asarray(codes, dtype=np.float64), w, np.abs(P).max(axis=1), a, W, step)
    return P.astype(np.int16), W.astype(np.int16), step


def _weight_exponent(w, w_abs, w_max, p_row):
    """The finest ``b`` with ``|rint(w 2**b)| <= 32767`` and every column's ``sum_r p_row |W|`` below ``2**31``."""
    reach = float((p_row @ w_abs).max(initial=0.0))  # largest possible |sum| per unit of W
    limit = min(INT16_MAX / w_max if w_max > 0 else np.inf, SUM_MAX / reach if reach > 0 else np.inf)
    if not np.isfinite(limit):
        return 0  # no weights (or no pulses): any grid is exact
    b = int(np.floor(np.log2(limit)))
    while True:
        if np.rint(w_max * 2.0 ** b) <= INT16_MAX:
            scale = 2.0 ** b
            if reach * scale + 0.5 * p_row.sum() <= SUM_MAX:  # rounding adds at most half a unit a row
                return b
            if (p_row @ np.abs(np.rint(w * scale))).max() <= SUM_MAX:
                return b
        b -= 1


def _exact_columns(codes, w, p_row, a, W, step):
    """Where ``w[:, c] = g codes[:, c]`` (one gain ``g``): ``W[:, c] = codes * 2**j``, ``step[c] = g 2**-(a+j)``."""
    nz = codes != 0
    g = np.where(nz, w / np.where(nz, codes, 1.0), 0.0)
    gain = g[np.argmax(nz, axis=0), np.arange(w.shape[1])]  # the first non-zero code's
    on_lattice = nz.any(axis=0) & np.all(np.abs(w - gain * codes) <= 1e-12 * np.abs(gain) * 64, axis=0)
    cols = np.flatnonzero(on_lattice)
    held = np.abs(codes[:, cols])
    with np.errstate(divide="ignore"):  # no pulses: only the int16 bound counts
        j = np.floor(np.log2(np.minimum(INT16_MAX / held.max(axis=0), SUM_MAX / (p_row @ held))))
    cols, j = cols[j >= 0], j[j >= 0]
    W[:, cols] = codes[:, cols] * 2.0 ** j
    step[cols] = gain[cols] * 2.0 ** -(a + j)


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
    J = jit() if all(p.vmm is not None for p in plans) else None
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
    n_blocks = -(-batch // NOISE_ROWS)
    n_threads = threads()  # a bad setting fails before any noise is drawn
    seeds = [_seeds(stream, p, n_blocks) for p in plans]  # in stream order
    step("seeds")
    helpers = _HELPERS.take(min(n_threads, n_runs * n_blocks) - 1, n_threads - 1) \
        if n_runs * batch >= MIN_SHARED_ROWS else []
    try:
        rows = batch if helpers else 0
        shares = [(np.empty((rows, COLS), dtype=np.int8), np.empty(rows, dtype=np.int64),
                   np.zeros(n_blocks, dtype=np.int64), np.zeros(n_blocks, dtype=np.int64), np.zeros(1, dtype=np.int64))
                  for _ in plans]

        def run(helper):  # what every thread does: blocks of the first run, then of the next
            seen = 0
            for k, p in enumerate(plans):
                seen |= int(getattr(J, p.vmm)(x[k], p.table, p.wp, p.yscale, p.off, seeds[k], out[k], events[k],
                                              shares[k], helper, *p.args))
            return seen

        for inbox in helpers:
            inbox.put(lambda: run(True))
        seen = run(False)
    finally:
        _HELPERS.give_back(helpers)
    step("vmm")
    if seen >> ACT_BITS:  # a value above 31, or a negative one: as if the call had not been made
        stream.unread(sum(s.size for s in seeds))
        raise activation_range_error(x)


def threads():
    """Threads a compiled run may use: ``BSS2_CHIPSIM_THREADS``, else the CPUs this process may run on (at most 8).

    The environment variable is read at every call; the CPUs once per process.
    """
    text = os.environ.get("BSS2_CHIPSIM_THREADS", "").strip()
    if text:
        try:
            n = int(text)
        except ValueError:
            raise ChipValueError(f"BSS2_CHIPSIM_THREADS must be a whole number, not {text!r}") from None
        if n < 1:
            raise ChipValueError(f"BSS2_CHIPSIM_THREADS must be at least 1, not {n}")
        return n
    global _CPUS
    if _CPUS is None or _CPUS[0] != os.getpid():
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        _CPUS = (os.getpid(), max(1, min(8, cpus)))
    return _CPUS[1]


_CPUS = None  #: (pid, usable CPUs)


MIN_SHARED_ROWS = 1024  #: a call of fewer vectors (all runs) stays in the calling thread (a hand-over costs 20-50 us)


class _Helpers:
    """Helper threads that share the noise blocks of a compiled run with the calling thread.

    A helper takes whole blocks and writes them into buffers of its own;
    the calling thread copies the blocks a helper has finished when it runs
    out of blocks, and computes any block a helper has not finished itself
    (:func:`chipsim._jit.vmm_fast`). So a call never waits for a helper: one
    that the OS does not run for a while (another program's busy thread on
    its core, say) only leaves more blocks to the caller. Each call keeps
    its helpers off the caller's CPU (their affinity), so that they never
    take time from the caller; the OS would otherwise put a waking helper
    beside the caller when the other cores are busy. The noise of a block
    comes from its own seed, so results do not depend on who computed what.
    Helpers start on first use, and anew in a forked child (threads do not
    survive a fork); a helper still busy with an earlier call is not handed
    a new one.
    """

    def __init__(self):
        self._pid, self._lock, self._idle, self._threads = None, None, [], []

    def take(self, n, limit):
        """Up to ``n`` idle helpers (their inboxes), started as needed (at most ``limit`` in all)."""
        if n <= 0:
            return []
        if self._pid != os.getpid():
            self._pid, self._lock, self._idle, self._threads = os.getpid(), threading.Lock(), [], []
            atexit.register(self._stop)
        with self._lock:
            while len(self._idle) < n and len(self._threads) < limit:
                inbox, started = queue.SimpleQueue(), queue.SimpleQueue()
                thread = threading.Thread(target=self._serve, args=(inbox, started), daemon=True,
                                          name=f"bss2-chipsim-{len(self._threads) + 1}")
                thread.start()
                self._threads.append((thread, inbox))
                self._idle.append((inbox, started.get()))
            taken, self._idle = self._idle[:n], self._idle[n:]
        _off_this_cpu([tid for _, tid in taken])
        return [inbox for inbox, _ in taken]

    def give_back(self, inboxes):
        """Return helpers to the idle list once they are done with what they were handed."""
        for inbox in inboxes:
            inbox.put(None)  # the helper puts itself back when it reaches this

    def wait(self, timeout):
        """Wait until every helper is idle (at most ``timeout`` seconds); True if they are."""
        end = time.monotonic() + timeout
        while self._pid == os.getpid() and len(self._idle) < len(self._threads):
            if time.monotonic() > end:
                return False
            time.sleep(0.001)
        return True

    def _stop(self):
        """At exit: end the helpers before the interpreter goes (a daemon thread in compiled code then could crash)."""
        if self._pid != os.getpid():
            return
        for _, inbox in self._threads:
            inbox.put(_STOP)
        for thread, _ in self._threads:
            thread.join(timeout=5)

    def _serve(self, inbox, started):
        pid, tid = os.getpid(), threading.get_native_id()
        started.put(tid)
        while True:
            job = inbox.get()
            if job is _STOP:
                return
            if job is None:
                if self._pid == pid:
                    with self._lock:
                        self._idle.append((inbox, tid))
                continue
            try:
                job()
            except Exception:  # the caller computes the blocks itself and meets the same error
                pass


def _current_cpu():
    """The CPU this thread runs on (glibc's ``sched_getcpu``), or None where that is not available."""
    global _GETCPU
    if _GETCPU is None:
        try:
            import ctypes

            _GETCPU = ctypes.CDLL(None, use_errno=True).sched_getcpu
        except (OSError, AttributeError):
            _GETCPU = False
    if _GETCPU is False:
        return None
    cpu = _GETCPU()
    return cpu if cpu >= 0 else None


_GETCPU = None


def _off_this_cpu(tids):
    """Let the threads ``tids`` run on every CPU of this process but the caller's (where the OS allows it)."""
    if not tids or not hasattr(os, "sched_setaffinity"):
        return
    cpu = _current_cpu()
    allowed = os.sched_getaffinity(0) - {cpu}
    if cpu is None or not allowed:
        return
    for tid in tids:
        try:
            os.sched_setaffinity(tid, allowed)
        except OSError:  # a sandbox may refuse it: the helper then runs where the OS puts it
            pass


_STOP = object()
_HELPERS = _Helpers()


def wait_for_helpers(timeout=1.0):
    """Wait until the helper threads have finished what earlier calls handed them; True if they have.

    A call returns without waiting for its helpers (:class:`_Helpers`), so one
    may still be finishing a block it took. Call this before
    ``tracemalloc.stop()``: CPython 3.11 can crash when tracemalloc stops
    while another thread allocates (``benchmarks/vmm_throughput.py`` does).
    """
    return _HELPERS.wait(timeout)


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
        y = p.table[xk | _ROW_BASE].astype(np.float64) @ p.w_fixed  # integers below 2**31: exact in float64
        y = y.astype(np.float32) * p.yscale  # as the compiled path: float32, then the offsets
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
