"""Compiled (numba) loops of the VMM kernel: the numpy path's numbers in fewer passes over memory.

Imported lazily by :mod:`chipsim.kernel` (``import numba`` costs about 0.15 s
and the first call of each loop compiles it, or loads it from numba's cache).
Every function here computes exactly what the numpy path of
:mod:`chipsim.kernel` computes with the same bits, element by element:
``tests/test_chipsim_noise.py`` runs both and compares the results bit for bit.

- :func:`sfc64_fill`: the random words of one noise block (16 interleaved
  SFC64 generators seeded by 48 words of the chip's noise stream, see
  :mod:`chipsim.noise`);
- :func:`narrow`: the range check of the activations and their copy to
  uint8, in one pass;
- :func:`gather`: the pulses of a block of activation vectors, and their
  event counts;
- :func:`post_fast`: offsets, the 16-bit fixed-point read-out with its noise,
  and the exact recomputation of the few values outside the 16-bit window (soft
  saturation, clipping), in one pass per row of results.

numba does not check bounds: every loop checks the shapes of its buffers first.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .geometry import COLS, ROWS
from .noise import SFC64_LANES as LANES
from .noise import WARM_UP

_ONE = np.uint64(1)
_SHIFT_11 = np.uint64(11)
_SHIFT_3 = np.uint64(3)
_ROT_L = np.uint64(24)
_ROT_R = np.uint64(40)
_GROUP = 32  #: columns whose window flags form one 32-bit mask (the flagged ones are recomputed one by one)


@intrinsic
def _popcount(typingctx, val):
    """Set bits of an integer (LLVM's ctpop: vectorizes to a table look-up or a popcount instruction)."""
    if not isinstance(val, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return val(val), codegen


@intrinsic
def _trailing_zeros(typingctx, val):
    """Index of the lowest set bit of a non-zero integer (LLVM's cttz)."""
    if not isinstance(val, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return val(val), codegen


@njit(nogil=True, cache=True)
def sfc64_fill(seed, out):
    """Fill ``out`` (uint64, a multiple of :data:`LANES` words) from :data:`LANES` interleaved SFC64 generators.

    Generator ``j`` starts at state ``(seed[3 j], seed[3 j + 1], seed[3 j + 2], 1)``,
    discards :data:`WARM_UP` outputs and writes words ``j, j + LANES, ...``:
    numpy's ``np.random.SFC64`` set to the same states gives the same words
    (:func:`chipsim.noise.sfc64_words`). Independent generators side by side
    let the compiler run them in vector registers.
    """
    if seed.size < 3 * LANES or out.size % LANES:
        raise ValueError("sfc64_fill: needs 3 * LANES seed words and a multiple of LANES output words")
    a = seed[0:3 * LANES:3].copy()
    b = seed[1:3 * LANES:3].copy()
    c = seed[2:3 * LANES:3].copy()
    w = _ONE
    for i in range(WARM_UP):
        for j in range(LANES):
            tmp = a[j] + b[j] + w
            a[j] = b[j] ^ (b[j] >> _SHIFT_11)
            b[j] = c[j] + (c[j] << _SHIFT_3)
            c[j] = ((c[j] << _ROT_L) | (c[j] >> _ROT_R)) + tmp
        w += _ONE
    for i in range(out.size // LANES):
        for j in range(LANES):
            tmp = a[j] + b[j] + w
            a[j] = b[j] ^ (b[j] >> _SHIFT_11)
            b[j] = c[j] + (c[j] << _SHIFT_3)
            c[j] = ((c[j] << _ROT_L) | (c[j] >> _ROT_R)) + tmp
            out[i * LANES + j] = tmp
        w += _ONE


@njit(nogil=True, cache=True)
def narrow(x, out):
    """``out[i] = x[i]`` as uint8 for unsigned integers ``x`` (1-d); returns ``max(x)``.

    The activations' range check and their conversion to one byte in one
    pass (the caller passes signed input viewed as unsigned, so negative
    values count as huge). ``out`` is only meaningful when the maximum is
    below 256.
    """
    if out.size != x.size:
        raise ValueError("narrow: shapes do not match")
    top = x.dtype.type(0) if x.size == 0 else x[0]
    for i in range(x.size):
        v = x[i]
        top = max(top, v)
        out[i] = np.uint8(v & 0xFF)
    return top


@njit(nogil=True, cache=True)
def gather(x, table, pulses, events):
    """``pulses[i, r] = table[32 r + x[i, r]]`` and ``events[i]`` = non-zero activations of row ``i``.

    ``x`` holds validated activations 0..31 (any integer dtype), ``table`` is
    the flat (128 * 32,) float32 pulse table.
    """
    m = x.shape[0]
    if (x.shape[1] != ROWS or pulses.shape[0] < m or pulses.shape[1] != ROWS or events.size < m
            or table.size != 32 * ROWS):
        raise ValueError("gather: shapes do not match")
    for i in range(m):
        for r in range(ROWS):
            pulses[i, r] = table[(r << 5) | x[i, r]]
    for i in range(m):
        e = 0
        for r in range(ROWS):
            e += np.int64(x[i, r] != 0)
        events[i] = e


@njit(nogil=True, cache=True)
def post_fast(y, off, raw, out, A, K, pre_hi, win_lo, win_span, scale, base, shift, sat, has_sat, lo, hi):
    """Read-out of one noise block (``m`` rows) with the ``fast`` noise in 16-bit fixed point.

    Row by row: the fixed-point noise ``t = A B + K j``; ``v = floor(y + off)``
    (clipped into 0..pre_hi first) and ``result = ((v + t) >> 7) - BIAS`` as the
    low byte; then the results whose ``v`` lies outside its column's window (where
    that is exact) again with the full model in float64 (soft saturation of the
    mean, rounding, clipping), as ``chipsim.kernel._recompute``; a 32-bit mask per
    group of 32 columns finds them.

    Parameters
    ----------
    y : float32 (m, 256)
        The matrix product (scaled, without the offsets row).
    off : float32 (256,)
        The offsets row of the plan (scaled offsets + base).
    raw : uint8 (3, m * 256), or (3, 0) for no noise
        The block's fresh bytes: binomial bytes 0 and 1, then the dither byte.
    out : int8 (m, 256)
    A, K : int32 (256,)
        Fixed-point noise ``A B + K j`` per column.
    pre_hi : float32
        Highest value converted to 16 bits.
    win_lo, win_span : int32 (256,)
        The window of ``v`` per column, ``win_lo[c] <= v <= win_lo[c] + win_span[c]``
        (a start beyond 65535: every value of the column is recomputed).
    scale : float
    base, shift : float64 (256,)
    sat : float64 (4, 256)
        ``knee_hi, sat_hi, knee_lo, sat_lo`` (used if ``has_sat``).
    lo, hi : float64 (256,)
        Result bounds per column.
    """
    m = y.shape[0]
    noisy = raw.shape[1] > 0
    if (y.shape[1] != COLS or out.shape[0] != m or out.shape[1] != COLS or off.size != COLS
            or (noisy and (raw.shape[0] < 3 or raw.shape[1] < m * COLS))):
        raise ValueError("post_fast: shapes do not match")
    if win_lo.size != COLS or win_span.size != COLS:
        raise ValueError("post_fast: shapes do not match")
    t = np.zeros(COLS, dtype=np.int32)
    zero = np.float32(0.0)
    for i in range(m):
        s0 = i * COLS
        if noisy:
            for c in range(COLS):
                b = np.int32(_popcount(raw[0, s0 + c])) + np.int32(_popcount(raw[1, s0 + c]))
                t[c] = A[c] * b + K[c] * np.int32(raw[2, s0 + c])
        for g in range(0, COLS, _GROUP):
            bad = np.uint32(0)  # bit j: column g + j lies outside its window
            for c in range(g, g + _GROUP):
                f = y[i, c] + off[c]
                f = f if f > zero else zero
                f = f if f < pre_hi else pre_hi
                vi = np.int32(f)  # f >= 0: truncation is floor
                outside = np.uint32(np.uint32(vi - win_lo[c]) > np.uint32(win_span[c]))  # below wraps around
                bad |= outside << np.uint32(c - g)
                out[i, c] = np.int8(((vi + t[c]) >> 7) & 0xFF)  # BIAS is a multiple of 256
            while bad:  # the full model for the values outside the window, lowest bit first
                c = g + np.int64(_trailing_zeros(bad))
                bad &= bad - np.uint32(1)
                mean = np.float64(y[i, c] + off[c]) / scale - base[c]
                if has_sat:
                    e = max(mean - sat[0, c], 0.0)
                    mean -= e - e / (1 + e / sat[1, c])
                    e = max(sat[2, c] - mean, 0.0)
                    mean += e - e / (1 + e / sat[3, c])
                z = mean + shift[c]
                if noisy:
                    z += t[c] / 128.0
                z = min(max(np.floor(z), lo[c]), hi[c])
                out[i, c] = np.int8(z)
