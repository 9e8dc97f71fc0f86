"""Trial-to-trial noise: the stream, and the two noise methods.

Every result is ``round(mean + e)`` (``floor`` under the ``floor`` rounding of
``hxtorch-mock``), then clipped, with ``e`` a fresh, independent draw of
standard deviation ``s`` (the column's noise std, 1.8 LSB by default). The
preset's ``noise.method`` chooses the distribution of ``e``:

``"gaussian"``
    exact to float32 precision: ``e = s * N(0, 1)``, standard normals by the
    Box-Muller transform in float32 (:func:`gauss_normals`): 32 fresh bits per
    sample, a pair of words giving two normals ``r cos t`` and ``r sin t``
    with ``r = sqrt(-2 ln u1)`` (``u1`` from 23 bits, strictly inside (0, 1):
    ``|e| <= 5.77``, which a normal exceeds with probability 8e-9) and
    ``t = 2 pi u2`` (24 bits). The logarithm, sine and cosine are polynomials
    of this module (errors below 1e-7), evaluated with the same float32
    operations by numpy and by the compiled kernel: the same bits on any
    machine, and no table look-ups, rejections or spare draws.
``"fast"`` (the default)
    a *dithered binomial*: ``e = a (B - 8) + w (U - 1/2)`` with
    ``B ~ Binomial(16, 1/2)`` (the bit count of 16 fresh random bits) and ``U``
    uniform on the 256 points ``(j + 1/2) / 256`` (8 more fresh bits), all
    independent. The dither width ``w`` is the smallest even number of LSB
    (2, 4, ...) that is at least ``a``; ``a``, a multiple of 1/128 LSB, is set
    so that ``4 a^2 + w^2 (1 - 256^-2) / 12 = s^2`` to within 0.7 % in ``s``
    (0.1 % at 1.8 LSB: ``w = 2``, ``a = 109/128``, std 1.7983). So ``e`` has a
    continuous, piecewise-constant density (17 overlapping boxes 2 LSB wide),
    mean 0, the configured std, excess kurtosis -0.11 (a normal: 0) and
    bounded tails: ``|e| <= 8 a + w / 2`` (7.8 LSB = 4.35 sigma at 1.8 LSB; a
    normal exceeds that with probability 1.4e-5). Because the dither is a
    whole number of LSB wide, the mean result equals the noise-free value
    itself (before clipping) to within 1/256 LSB for *every* value, not just
    on average: sub-LSB averaging works as with a continuous normal, and the
    result variance is about ``s^2 + 1/12`` like that of a rounded normal. For
    ``0 < s < 0.58`` LSB no even width fits; then ``a = 0`` and
    ``w = s sqrt(12)`` (a plain uniform narrower than 2 LSB; its mean is exact
    only on average over the mean's sub-LSB position). ``s = 0`` gives no noise
    and draws nothing.

The stream is one PCG64 generator seeded by ``noise_seed``, read strictly in
order. Each ``fast`` sample takes 24 fresh bits, laid out per block of 256
vectors (:func:`binomial_counts`), each ``gaussian`` sample 32; the bits of one
block come from :data:`SFC64_LANES` interleaved SFC64 generators seeded by
:data:`SEED_WORDS` fresh words of the PCG64 stream (:func:`sfc64_words`), so
that blocks can be filled by a compiled loop, in any order or thread, with the
same bits. Results therefore do not depend on how the simulator splits its
work, and ``run(x2, "both")`` equals ``run(x2[0], 0)`` followed by
``run(x2[1], 1)``. Nothing is ever reused: every block of every call is
seeded afresh, so the noise of any two calls is independent.
"""
import logging
import math
import os

import numpy as np

BINOMIAL_BYTES = 2  #: random bytes counted per sample (B ~ Binomial(8 * BINOMIAL_BYTES, 1/2))
DITHER_LEVELS = 256  #: points of the uniform dither (one random byte)
BYTES_PER_SAMPLE = BINOMIAL_BYTES + 1  #: fresh random bytes per fast sample
FIXED_POINT = 128  #: fixed-point steps per LSB in the integer kernel (one dither byte spans 2 LSB)
UNIT_WIDTH = DITHER_LEVELS // FIXED_POINT  #: dither width in LSB per unit of k
_B_MEAN = 4.0 * BINOMIAL_BYTES
_B_VAR = 2.0 * BINOMIAL_BYTES
_U_VAR = (1.0 - DITHER_LEVELS ** -2) / 12.0  #: variance of U (unit width)
METHODS = ("fast", "gaussian")
NOISE_ROWS = 256  #: vectors per noise block: fixes the layout of the noise bits in the stream
SFC64_LANES = 16  #: interleaved SFC64 generators per noise block
SEED_WORDS = 3 * SFC64_LANES  #: PCG64 words that seed one noise block
WARM_UP = 12  #: SFC64 outputs discarded after seeding (as numpy does after its own seeding)


GAUSS_GROUP = 32  #: samples per Box-Muller group: words 0-15 give the radii, words 16-31 the angles
GAUSS_HALF = GAUSS_GROUP // 2
#: ``ln(1 + f) = f Q(f)`` on ``sqrt(1/2) - 1 <= f < sqrt(2) - 1``: Q's coefficients (a least-squares fit
#: of degree 9, rounded to float32; error of the float32 evaluation below 4e-8), lowest order first
LN1P_COEF = np.array([1.0, -0.49999988, 0.33333325, -0.25001585, 0.20002072, -0.16609126, 0.14180079,
                      -0.13240843, 0.1291417, -0.07638592], dtype=np.float32)
#: ``sin(y) = y S(y^2)``, ``cos(y) = C(y^2)`` on ``|y| <= pi / 4``: Taylor coefficients in float32 (errors
#: of the float32 evaluation below 1e-7), lowest order first
SIN_COEF = np.array([1.0, -1 / 6, 1 / 120, -1 / 5040, 1 / 362880], dtype=np.float32)
COS_COEF = np.array([1.0, -1 / 2, 1 / 24, -1 / 720, 1 / 40320], dtype=np.float32)
LN2 = np.float32(math.log(2.0))
SQRT2 = np.float32(math.sqrt(2.0))
TWO_PI = np.float32(2.0 * math.pi)


def jit():
    """The compiled loops (:mod:`chipsim._jit`), or None with ``BSS2_CHIPSIM_JIT=0`` or an unusable numba.

    ``BSS2_CHIPSIM_JIT=0`` runs the plain numpy reference instead (the same
    numbers, several times slower): for tests and debugging.
    """
    if os.environ.get("BSS2_CHIPSIM_JIT", "1") == "0":
        return None
    global _JIT
    if _JIT is None:
        try:
            if not __name__.startswith("bss2_calib."):
                # numba keys its cache on the source file: compiled under another module name, the
                # cache would name modules that the installed package cannot import
                raise RuntimeError(f"chipsim imported as {__name__!r}, not from the bss2_calib package")
            mod = _load_jit()
        except RuntimeError as e:  # numba unusable (e.g. no writable cache directory: NUMBA_CACHE_DIR names one)
            logging.getLogger("chipsim").warning("compiled kernel unavailable (%s); using the numpy reference "
                                                 "(same results, slower)", e)
            mod = False
        _JIT = mod
    return _JIT or None


_JIT = None


def _load_jit():
    from . import _jit

    return _jit


def words_for(samples):
    """64-bit words a ``fast`` draw of ``samples`` samples takes (``samples`` a multiple of 128: whole words per lane)."""
    return samples * BYTES_PER_SAMPLE // 8


class FastParams:
    """Per-column parameters of the ``fast`` method for given noise stds.

    Parameters
    ----------
    std : array-like of float, shape (n_columns,)
        Target standard deviation ``s`` of ``e`` per column, LSB, >= 0.

    Attributes
    ----------
    a, w : ndarray of float64, shape (n_columns,)
        Binomial step and dither width, LSB.
    A, k : ndarray of int64, shape (n_columns,)
        ``128 a`` and ``w / 2``, so that the fixed-point noise is ``A B + k j``.
    integer : bool
        Whether the 16-bit fixed-point kernel can be used (every ``w`` even,
        noise range below 128 LSB).
    uniform : bool
        All columns share one ``(a, w)``.
    draws : bool
        Whether any column is noisy (else nothing is drawn).
    t_max : int
        Largest fixed-point noise ``A B + k j`` over all columns.
    """

    def __init__(self, std):
        std = np.asarray(std, dtype=np.float64)
        if std.ndim != 1 or np.any(~np.isfinite(std)) or np.any(std < 0):
            raise ValueError("noise std must be a 1-d array of finite values >= 0")
        a = np.zeros_like(std)
        w = np.zeros_like(std)
        integer = True
        for s in np.unique(std):
            sel = std == s
            if s == 0:
                continue
            k = 1
            while True:
                wk = UNIT_WIDTH * k
                rest = s * s - wk * wk * _U_VAR
                if rest < 0:
                    k = None
                    break
                ak = np.rint(FIXED_POINT * np.sqrt(rest / _B_VAR)) / FIXED_POINT
                if ak <= wk:
                    break
                k += 1
            if k is None:  # s < 0.58 LSB: a plain uniform dither narrower than 2 LSB
                a[sel], w[sel] = 0.0, s / np.sqrt(_U_VAR)
                integer = False
            else:
                a[sel], w[sel] = ak, UNIT_WIDTH * k
        self.a, self.w = a, w
        self.A = np.rint(a * FIXED_POINT).astype(np.int64)
        self.k = np.rint(w / UNIT_WIDTH).astype(np.int64)
        n_bits = 8 * BINOMIAL_BYTES
        self.t_max = int(np.max(n_bits * self.A + (DITHER_LEVELS - 1) * self.k)) if std.size else 0
        self.integer = bool(integer and self.t_max < 1 << 14)
        self.uniform = bool(std.size == 0 or (np.all(a == a[0]) and np.all(w == w[0])))
        self.draws = bool(np.any(std > 0))

    def std(self):
        """Exact standard deviation of ``e`` per column, LSB."""
        return np.sqrt(_B_VAR * self.a ** 2 + self.w ** 2 * _U_VAR)

    def shift(self, floor_rounding=False):
        """Constant ``c`` per column with ``result = floor(mean + c + a B + w j / 256)``."""
        return (0.0 if floor_rounding else 0.5) - _B_MEAN * self.a + self.w / (2 * DITHER_LEVELS) - self.w / 2.0

    def bound(self):
        """Largest ``|e|`` over all columns, LSB."""
        return float(np.max(_B_MEAN * self.a + self.w / 2.0)) if self.a.size else 0.0


def binomial_counts(raw, out=None):
    """``B`` (uint8, shape (n_blocks, n)): the bit count of ``BINOMIAL_BYTES`` bytes per sample.

    ``raw`` holds the fresh bytes of ``n_blocks`` blocks of ``n`` samples each,
    shape (n_blocks, BYTES_PER_SAMPLE, n): per block first the binomial bytes
    of all samples, byte by byte, then their dither bytes.
    """
    out = np.bitwise_count(raw[:, 0], out=out)
    for i in range(1, BINOMIAL_BYTES):
        out += np.bitwise_count(raw[:, i])
    return out


def dither_bytes(raw):
    """``j`` (uint8, shape (n_blocks, n)): the dither byte of every sample."""
    return raw[:, BINOMIAL_BYTES]


def float_increment(raw, params, cols):
    """``a B + w j / 256`` in LSB (float32, shape (samples // cols, cols))."""
    b = binomial_counts(raw).reshape(-1, cols)
    j = np.ascontiguousarray(dither_bytes(raw)).reshape(-1, cols)
    if params.uniform:
        z = np.multiply(b, np.float32(params.a[0]), dtype=np.float32)
        z += np.multiply(j, np.float32(params.w[0] / DITHER_LEVELS), dtype=np.float32)
    else:
        z = np.multiply(b, params.a.astype(np.float32), dtype=np.float32)
        z += np.multiply(j, (params.w / DITHER_LEVELS).astype(np.float32), dtype=np.float32)
    return z


def sfc64_words(seed, n, bit_generator=None):
    """``n`` words (a multiple of :data:`SFC64_LANES`) of one noise block seeded by ``seed``.

    Generator ``j`` of :data:`SFC64_LANES` starts at the SFC64 state
    ``(seed[3 j], seed[3 j + 1], seed[3 j + 2], 1)``, discards :data:`WARM_UP`
    outputs and gives words ``j, j + SFC64_LANES, ...``. The numpy version of
    :func:`chipsim._jit.sfc64_fill`.
    """
    bg = bit_generator if bit_generator is not None else np.random.SFC64(0)
    out = np.empty((n // SFC64_LANES, SFC64_LANES), dtype=np.uint64)
    for j in range(SFC64_LANES):
        state = np.array([seed[3 * j], seed[3 * j + 1], seed[3 * j + 2], 1], dtype=np.uint64)
        bg.state = {"bit_generator": "SFC64", "state": {"state": state}, "has_uint32": 0, "uinteger": 0}
        bg.random_raw(WARM_UP)
        out[:, j] = bg.random_raw(n // SFC64_LANES)
    return out.reshape(-1)


def _horner(x, coef):
    """``sum(coef[k] x^k)`` in float32, highest order first, one rounding per operation."""
    acc = np.full_like(x, coef[-1])
    for c in coef[-2::-1]:
        acc = acc * x + c
    return acc


def box_muller(a, b):
    """Two standard normals (float32) from each pair of 32-bit words ``a``, ``b`` (uint32 arrays of one shape).

    ``u1 = ((a >> 9) + 1/2) 2^-23`` (exact in float32, strictly inside (0, 1)),
    ``ln u1 = E ln 2 + ln(1 + f)`` with ``u1 = 2^E (1 + f)`` and
    ``sqrt(1/2) <= 1 + f < sqrt(2)``, ``r = sqrt(-2 ln u1)``; the angle
    ``2 pi u2`` with ``u2 = (b >> 8) 2^-24``, reduced by its quadrant
    ``q = rint(4 u2)`` to ``y = 2 pi (u2 - q / 4)`` (``|y| <= pi / 4``).
    Returns ``(r cos, r sin)``. Every step is one float32 operation in a
    fixed order: :func:`chipsim._jit._emit_normals` does the same ones.
    """
    u1 = ((a >> np.uint32(9)).astype(np.float32) + np.float32(0.5)) * np.float32(2.0 ** -23)
    bits = u1.view(np.uint32)
    expo = (bits >> np.uint32(23)).astype(np.int32) - 127
    mant = ((bits & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)).view(np.float32)
    big = mant > SQRT2
    mant = np.where(big, mant * np.float32(0.5), mant)
    expo = expo + big
    f = mant - np.float32(1.0)
    ln = expo.astype(np.float32) * LN2 + f * _horner(f, LN1P_COEF)
    r = np.sqrt(np.float32(-2.0) * ln)
    u2 = (b >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    q = np.rint(u2 * np.float32(4.0))
    y = (u2 - q * np.float32(0.25)) * TWO_PI
    y2 = y * y
    sin, cos = y * _horner(y2, SIN_COEF), _horner(y2, COS_COEF)
    quadrant = q.astype(np.int32) & 3
    swap = (quadrant & 1).astype(bool)
    c, s = np.where(swap, sin, cos), np.where(swap, cos, sin)
    c = np.where((quadrant == 1) | (quadrant == 2), -c, c)
    s = np.where(quadrant >= 2, -s, s)
    return r * c, r * s


def gauss_normals(seed, n, bit_generator=None):
    """``n`` standard normals (float32, ``n`` a multiple of :data:`GAUSS_GROUP`) of one ``gaussian`` noise block.

    Sample ``s`` takes the 32-bit half ``s`` of the block's words
    (:func:`sfc64_words` of ``seed``, low half first). Per group of
    :data:`GAUSS_GROUP` samples, words ``k`` and ``k + 16`` (``k < 16``) give
    the normals of samples ``k`` (``r cos``) and ``k + 16`` (``r sin``)
    (:func:`box_muller`). The plain version of :func:`chipsim._jit.readout_gauss`'s draw.
    """
    words = sfc64_words(seed, n // 2, bit_generator).view(np.uint32).reshape(-1, 2, GAUSS_HALF)
    e = np.empty((words.shape[0], 2, GAUSS_HALF), dtype=np.float32)
    e[:, 0], e[:, 1] = box_muller(words[:, 0], words[:, 1])
    return e.reshape(-1)


class NoiseStream:
    """The chip's one trial-to-trial random stream (PCG64, seeded by ``noise_seed``).

    ``np.random.default_rng(noise_seed)`` and this stream start identically.
    The ``fast`` method reads :data:`SEED_WORDS` words per noise block from it
    (:meth:`seeds`) and expands them with SFC64 (:meth:`raw_blocks`).
    """

    def __init__(self, seed=None):
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self._bg = self.rng.bit_generator
        self._sfc = np.random.SFC64(0)

    def seeds(self, n_blocks, words=SEED_WORDS):
        """The next ``n_blocks`` block seeds, uint64 of shape (n_blocks, words)."""
        return self._bg.random_raw(n_blocks * words).reshape(n_blocks, words)

    def unread(self, words):
        """Step the stream back by ``words`` words (a call that failed draws nothing)."""
        if words:
            self._bg.advance(-int(words))  # PCG64 steps modulo 2**128: back as well as forward

    def raw_blocks(self, n_blocks, samples):
        """Fresh bytes for ``n_blocks`` blocks of ``samples`` fast samples (a multiple of 128).

        Returns uint8 of shape (n_blocks, BYTES_PER_SAMPLE, samples): per block
        the words :func:`sfc64_words` expands from the block's seed.
        """
        seeds = self.seeds(n_blocks)
        n = words_for(samples)
        words = np.empty((n_blocks, n), dtype=np.uint64)
        jit_mod = jit()
        for b in range(n_blocks):
            if jit_mod is not None:
                jit_mod.sfc64_fill(seeds[b], words[b])
            else:
                words[b] = sfc64_words(seeds[b], n, self._sfc)
        return words.view(np.uint8).reshape(n_blocks, BYTES_PER_SAMPLE, samples)

    def noisy_round(self, y, std, method, floor_rounding=False):
        """``round(y + e)`` (or floor) with fresh noise of std ``std`` per last-axis column, float32.

        A general (not the fastest) path, used for CADC reads. ``y`` has shape
        (..., n_columns) with ``size`` a multiple of 128 for the fast method.
        """
        y = np.array(y, dtype=np.float32)
        cols = y.shape[-1]
        std = np.broadcast_to(np.asarray(std, dtype=np.float64), (cols,))
        if method == "gaussian":
            if np.any(std > 0):
                z = self.rng.standard_normal(y.shape, dtype=np.float32)
                z *= std.astype(np.float32)
                y += z
            if floor_rounding:
                return np.floor(y, out=y)
            return np.rint(y, out=y)
        params = FastParams(std)
        flat = y.reshape(-1, cols)
        flat += params.shift(floor_rounding).astype(np.float32)
        if params.draws:
            flat += float_increment(self.raw_blocks(1, y.size), params, cols)
        return np.floor(y, out=y)
