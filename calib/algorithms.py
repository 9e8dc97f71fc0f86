"""Search algorithms: stateless objects handed a :class:`~calib.problem.KnobProblem`.

Each algorithm has ``search(problem, target, start, before) -> SearchOutcome``
and ``describe() -> str``. They search all instances of the problem at once
(every configure/measure round covers every instance) and leave the chip at the
returned codes. Randomness (the noisy binary search's dither) comes from a
Generator seeded per call, so the same inputs give the same search.

=====================  ====================================================
algorithm              rounds for a 10-bit knob
=====================  ====================================================
:class:`BinarySearch`  ~11 (bisection, then re-measure the best code)
:class:`NoisyBinarySearch`  ~12 (bisection with a shrinking random dither)
:class:`ModelBased`    ~5-6 (global curve at 3 codes, per-instance affine
                       map, invert, 1-2 refinements)
:class:`LinearPrediction`  ~2-4 (known slope from one probe, then secant)
:class:`FixedCode`     1 (set a code and verify)
=====================  ====================================================
"""
import logging
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from .errors import CalibValueError

log = logging.getLogger("bss2.calib")


@dataclass(frozen=True)
class SearchOutcome:
    """What a search leaves behind (the chip is at ``codes``).

    Attributes
    ----------
    codes : ndarray of int, shape (n,)
    values, std : ndarray of float, shape (n,)
        Observable measured at ``codes`` (the last round).
    measurements : ndarray of int, shape (n,)
        Measurements spent per instance.
    rounds : int
    """

    codes: np.ndarray
    values: np.ndarray
    std: np.ndarray
    measurements: np.ndarray
    rounds: int
    note: str = ""


class _Best:
    """Per instance, the visited code closest to the target."""

    def __init__(self, codes, values, target):
        self.target = target
        self.codes = np.asarray(codes, dtype=np.int64).copy()
        self.err = np.abs(np.asarray(values, dtype=np.float64) - target)
        self.err[~np.isfinite(self.err)] = np.inf

    def update(self, codes, values):
        err = np.abs(values - self.target)
        err[~np.isfinite(err)] = np.inf
        better = err < self.err
        self.codes[better] = codes[better]
        self.err[better] = err[better]


class _Runner:
    """Configure/measure with round counting."""

    def __init__(self, problem):
        self.p = problem
        self.rounds = 0
        self.last_codes = None
        self.last = None

    def __call__(self, codes):
        codes = np.clip(np.asarray(codes, dtype=np.int64), self.p.lo, self.p.hi)
        self.p.configure(codes)
        self.last = self.p.measure()
        self.last_codes = codes
        self.rounds += 1
        return self.last

    def finish_converged(self, best, target):
        """Keep the last codes where the last measurement is within tolerance, else the best visited."""
        last = self.last
        ok = np.isfinite(last.values) & (np.abs(last.values - target) <= self.p.tolerance)
        return self.finish(np.where(ok, self.last_codes, best.codes))

    def finish(self, codes, note=""):
        codes = np.clip(np.asarray(codes, dtype=np.int64), self.p.lo, self.p.hi)
        if self.last_codes is None or not np.array_equal(codes, self.last_codes):
            self(codes)
        m = self.last
        n = self.p.n_instances
        return SearchOutcome(codes.copy(), m.values.copy(), m.std.copy(), np.full(n, self.rounds), self.rounds, note)


def _direction(problem):
    return 1.0 if problem.increasing else -1.0


def _round_step(codes, step, lo, hi):
    """codes + step, rounded and clipped; NaN steps keep the code."""
    step = np.where(np.isfinite(step), step, 0.0)
    return np.clip(np.rint(codes + step), lo, hi).astype(np.int64)


def _refine(run, best, target, pred, refinements, model_slope, *, secant_range, prev=(None, None)):
    """Measure at ``pred``, then up to ``refinements`` Newton/secant steps on the instances off target.

    ``model_slope(codes)`` is the slope a step uses; where the previous
    measurement gives a secant within ``secant_range`` times that slope, the
    secant is used instead. Stops early when every instance is within
    tolerance or no code changes; leaves the chip at the best result.
    """
    p = run.p
    prev_c, prev_v = prev
    for r in range(refinements + 1):
        m = run(pred)
        best.update(pred, m.values)
        err = m.values - target
        todo = np.isfinite(err) & (np.abs(err) > p.tolerance)
        if r == refinements or not todo.any():
            break
        slope = model_slope(pred)
        if prev_c is not None:  # a per-instance secant where it is sane
            dc = pred - prev_c
            with np.errstate(divide="ignore", invalid="ignore"):
                sec = (m.values - prev_v) / dc
                ratio = sec / slope
            sane = (dc != 0) & np.isfinite(sec) & (ratio > secant_range[0]) & (ratio < secant_range[1])
            slope = np.where(sane, sec, slope)
        new = np.where(todo, _round_step(pred, -err / slope, p.lo, p.hi), pred)
        if np.array_equal(new, pred):
            break
        prev_c, prev_v, pred = pred, m.values, new
    return run.finish_converged(best, target)


@dataclass(frozen=True)
class BinarySearch:
    """Plain bisection over the knob's whole range, then the best code re-measured.

    Parameters
    ----------
    max_rounds : int, default=16
        Safety limit of bisection rounds (a 10-bit knob needs 10).
    """

    max_rounds: int = 16

    def describe(self):
        return "binary"

    def search(self, problem, target, start, before):
        return self._bisect(problem, target, start, before, lambda lo, hi: (lo + hi) // 2)

    def _bisect(self, problem, target, start, before, test_code):
        run = _Runner(problem)
        n = problem.n_instances
        lo = np.full(n, problem.lo, dtype=np.int64)
        hi = np.full(n, problem.hi, dtype=np.int64)
        best = _Best(start, before.values, target)
        sign = _direction(problem)
        while (lo < hi).any() and run.rounds < self.max_rounds:
            active = lo < hi
            test = np.where(active, test_code(lo, hi), lo)
            m = run(test)
            best.update(test, m.values)
            below = sign * (m.values - target) < 0
            lo = np.where(active & below, test + 1, lo)
            hi = np.where(active & ~below, test, hi)
        # an interval that closed on a range limit was never measured there: the target lies at or beyond
        # the limit, so the limit is the answer (and the final measurement tells which)
        at_limit = (lo == hi) & ((lo == problem.lo) | (lo == problem.hi))
        return run.finish(np.where(at_limit, lo, best.codes))


@dataclass(frozen=True)
class NoisyBinarySearch(BinarySearch):
    """Bisection whose test codes carry a random dither that shrinks with the interval.

    The dither decorrelates successive decisions from code-dependent
    systematic errors (crosstalk, DNL) of the knob, as the reference
    library's noisy binary search does.

    Parameters
    ----------
    seed : int, default=0
        Seed of the dither Generator (a fresh Generator per search).
    dither : float, default=0.125
        Dither amplitude as a fraction of the present interval (0..0.5).
    max_rounds : int, default=20
    """

    seed: int = 0
    dither: float = 0.125
    max_rounds: int = 20

    def __post_init__(self):
        if not 0 <= self.dither <= 0.5:
            raise CalibValueError(f"NoisyBinarySearch.dither must be in 0..0.5, got {self.dither}")

    def describe(self):
        return f"noisy_binary(dither={self.dither:g})"

    def search(self, problem, target, start, before):
        rng = np.random.default_rng(self.seed)

        def test_code(lo, hi):
            mid = (lo + hi) // 2
            d = np.floor((hi - lo) * self.dither)
            jitter = np.rint(rng.uniform(-1, 1, size=lo.shape) * d).astype(np.int64)
            return np.clip(mid + jitter, lo, np.maximum(hi - 1, lo))

        return self._bisect(problem, target, start, before, test_code)


@dataclass(frozen=True)
class ModelBased:
    """Characterise a global code -> response curve, shift it per instance, invert, refine.

    1. measure every instance at the problem's characterisation codes
       (or ``codes``); the median response per code gives the global curve, a
       monotone PCHIP interpolant (scipy). When all instances start at one
       code, the first measurement replaces the nearest characterisation code;
    2. per instance, a least-squares affine map of the global curve onto its
       own (valid) points; one valid point shifts the curve only;
    3. invert the mapped curve at the target -> predicted code;
    4. up to ``refinements`` Newton steps with the mapped curve's local slope.

    Parameters
    ----------
    refinements : int, default=2
    codes : tuple of int or None, default=None
        Characterisation codes; None uses the problem's.
    """

    refinements: int = 2
    codes: tuple = None

    def describe(self):
        return f"model(refinements={self.refinements})"

    def search(self, problem, target, start, before):
        run = _Runner(problem)
        codes_k = np.asarray(self.codes if self.codes is not None else problem.characterisation_codes, dtype=np.int64)
        if codes_k.size < 2 or np.any(np.diff(codes_k) <= 0):
            raise CalibValueError(f"{problem.name}: characterisation codes must be >= 2 increasing codes")
        n = problem.n_instances
        start = np.asarray(start, dtype=np.int64)
        reuse = bool(np.all(start == start[0])) and problem.lo <= start[0] <= problem.hi
        if reuse:  # every instance starts at one code: the first measurement is a characterisation point
            drop = int(np.argmin(np.abs(codes_k - start[0])))
            codes_k = np.unique(np.concatenate([np.delete(codes_k, drop), start[:1]]))
        resp = np.empty((codes_k.size, n))
        valid = np.empty((codes_k.size, n), dtype=bool)
        best = _Best(start, before.values, target)
        for k, c in enumerate(codes_k):
            if reuse and c == start[0]:
                resp[k], valid[k] = before.values, before.valid
                continue
            m = run(np.full(n, c))
            resp[k], valid[k] = m.values, m.valid
            best.update(np.full(n, c), m.values)
        g = np.array([np.median(resp[k][valid[k]]) if valid[k].any() else np.nan for k in range(codes_k.size)])
        keep = np.isfinite(g)
        sign = _direction(problem)
        tol = float(np.median(problem.tolerance))
        if keep.sum() >= 2 and abs(g[keep][-1] - g[keep][0]) < tol:
            # the knob does not move the observable (e.g. an idealised chip): keep the start codes
            return run.finish(start, note="flat response, start codes kept")
        if keep.sum() < 2 or np.any(sign * np.diff(g[keep]) <= 0):
            log.warning("%s: global code->response curve not monotone (%s at codes %s); falling back to bisection",
                        problem.name, np.round(g, 4).tolist(), codes_k.tolist())
            out = BinarySearch().search(problem, target, start, before)
            return SearchOutcome(out.codes, out.values, out.std, out.measurements + run.rounds,
                                 out.rounds + run.rounds, "curve not monotone, fell back to bisection")
        curve = PchipInterpolator(codes_k[keep], g[keep], extrapolate=False)
        grid = np.arange(problem.lo, problem.hi + 1)
        gv = curve(grid)
        # extend linearly beyond the characterised range with the end slopes
        c0, c1 = codes_k[keep][0], codes_k[keep][-1]
        s0, s1 = curve(c0, 1), curve(c1, 1)
        gv = np.where(grid < c0, g[keep][0] + s0 * (grid - c0), gv)
        gv = np.where(grid > c1, g[keep][-1] + s1 * (grid - c1), gv)
        dg = np.gradient(gv)
        a, b = self._affine(resp, valid, g)
        want = (target - b) / a
        pred = self._invert(grid, gv * sign, want * sign)
        pred = np.where(np.isfinite(want), pred, start)

        def model_slope(codes):  # the mapped curve's local slope, the nominal one where it is not usable
            slope = a * dg[codes - problem.lo]
            return np.where(sign * slope > 0, slope, sign * problem.nominal_slope)

        return _refine(run, best, target, pred, self.refinements, model_slope, secant_range=(0.25, 4))

    @staticmethod
    def _affine(resp, valid, g):
        """Per instance (a, b) with resp ~ a g + b over its valid points."""
        n = resp.shape[1]
        a, b = np.ones(n), np.zeros(n)
        gk = np.broadcast_to(g[:, None], resp.shape)
        w = valid & np.isfinite(gk) & np.isfinite(resp)
        cnt = w.sum(axis=0)
        gm = np.where(w, gk, 0).sum(0) / np.maximum(cnt, 1)
        rm = np.where(w, resp, 0).sum(0) / np.maximum(cnt, 1)
        dg, dr = np.where(w, gk - gm, 0), np.where(w, resp - rm, 0)
        sxx, sxy = (dg * dg).sum(0), (dg * dr).sum(0)
        two = (cnt >= 2) & (sxx > 0)
        a[two] = sxy[two] / sxx[two]
        bad = two & ~(a > 0.2) | (a > 5)  # a degenerate map: fall back to a shift
        a[bad] = 1.0
        b = rm - a * gm
        b[cnt == 0] = np.nan
        return a, b

    @staticmethod
    def _invert(grid, gv_increasing, want_increasing):
        """Code of every instance where the increasing grid curve reaches ``want``."""
        ok = np.isfinite(gv_increasing)
        gvi, gr = gv_increasing[ok], grid[ok]
        gvi = np.maximum.accumulate(gvi)
        w = np.where(np.isfinite(want_increasing), want_increasing, gvi[0])
        return np.rint(np.interp(w, gvi, gr)).astype(np.int64)


@dataclass(frozen=True)
class LinearPrediction:
    """One probe at the start codes, a step with the known slope, then secant refinements.

    Exact in one step for knobs with a known linear effect (the digital CADC
    channel offset); a reasonable first guess elsewhere.

    Parameters
    ----------
    refinements : int, default=2
    slope : float or None, default=None
        |d observable / d code|; None uses the problem's ``nominal_slope``.
    """

    refinements: int = 2
    slope: float = None

    def describe(self):
        return f"linear(refinements={self.refinements})"

    def search(self, problem, target, start, before):
        run = _Runner(problem)
        sign = _direction(problem)
        nominal = sign * (self.slope if self.slope is not None else problem.nominal_slope)
        best = _Best(start, before.values, target)
        start = np.asarray(start, dtype=np.int64)
        pred = _round_step(start, -(before.values - target) / nominal, problem.lo, problem.hi)
        return _refine(run, best, target, pred, self.refinements, lambda codes: np.full(codes.shape, nominal),
                       secant_range=(0.2, 5), prev=(start, before.values))


@dataclass(frozen=True)
class FixedCode:
    """Set one code on every instance and verify by one measurement.

    Parameters
    ----------
    code : int
        The code to set, inside the knob's range.
    """

    code: int = 0

    def describe(self):
        return f"fixed({self.code})"

    def search(self, problem, target, start, before):
        if not problem.lo <= self.code <= problem.hi:
            raise CalibValueError(f"{problem.name}: code {self.code} outside {problem.lo}..{problem.hi}")
        run = _Runner(problem)
        run(np.full(problem.n_instances, self.code))
        return run.finish(run.last_codes)


def make_algorithm(name, *, refinements=2, seed=0):
    """The algorithm object called ``name`` (``model``, ``binary``, ``noisy_binary``, ``linear``)."""
    if name == "model":
        return ModelBased(refinements=refinements)
    if name == "binary":
        return BinarySearch()
    if name == "noisy_binary":
        return NoisyBinarySearch(seed=seed)
    if name == "linear":
        return LinearPrediction(refinements=max(refinements, 2))
    raise CalibValueError(f"unknown algorithm {name!r}")
