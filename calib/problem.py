"""One calibration problem = one knob over many instances.

A :class:`KnobProblem` knows how to *configure* its knob (all instances in one
reconfiguration) and how to *measure* the observable that the knob moves; it
holds the chip and the probe settings, nothing about how to search. A search
algorithm (:mod:`calib.algorithms`) is handed the problem explicitly and keeps
no state between runs. :func:`solve` runs one algorithm on one problem and
returns a :class:`KnobResult`: every instance gets a success flag, a residual
and the number of measurements spent; failures are listed by index.
"""
import abc
import logging
import time
from dataclasses import dataclass

import numpy as np

from bss2_calib.chipsim import KNOBS

from .errors import CalibValueError

log = logging.getLogger("bss2.calib")


@dataclass(frozen=True)
class Measurement:
    """The observable of every instance at the present knob codes.

    Attributes
    ----------
    values : ndarray of float, shape (n_instances,)
        Observable per instance, in the problem's unit; NaN where nothing
        usable was measured (e.g. a dead element).
    std : ndarray of float, shape (n_instances,)
        Standard error of each value.
    valid : ndarray of bool, shape (n_instances,)
        False where the value is clipped or otherwise unusable for modelling.
    """

    values: np.ndarray
    std: np.ndarray
    valid: np.ndarray

    @classmethod
    def of(cls, values, std, valid=None):
        values = np.asarray(values, dtype=np.float64)
        std = np.broadcast_to(np.asarray(std, dtype=np.float64), values.shape).copy()
        ok = np.isfinite(values)
        valid = ok if valid is None else (np.asarray(valid, dtype=bool) & ok)
        return cls(values, std, valid)


class Meter:
    """Wall time, simulated hardware time and chip counters spent since creation."""

    def __init__(self, chip):
        self.chip = chip
        self.t0 = time.perf_counter()
        self.hw0 = chip.hw_time_s
        self.c0 = dict(chip.counters)

    def read(self):
        c = self.chip.counters
        return {
            "wall_time_s": time.perf_counter() - self.t0,
            "hw_time_s": self.chip.hw_time_s - self.hw0,
            "vectors": c["vectors"] - self.c0["vectors"],
            "cadc_reads": c["cadc_reads"] - self.c0["cadc_reads"],
            "reconfigurations": c["reconfigurations"] - self.c0["reconfigurations"],
            "weight_writes": c["weight_writes"] - self.c0["weight_writes"],
        }


class KnobProblem(abc.ABC):
    """One knob over many instances; subclasses define the observable.

    Subclasses set the class attributes and implement :meth:`measure`.

    Attributes
    ----------
    name : str
        Step name (e.g. ``"v_reset"``).
    knob : str
        The chip knob (see ``chipsim.KNOBS``).
    quantity, unit : str
        What :meth:`measure` returns and in which unit.
    increasing : bool
        Whether the observable grows with the code.
    nominal_slope : float
        Typical |d observable / d code| at the default code (for the linear
        prediction algorithm and the first secant step).
    characterisation_codes : tuple of int
        Codes at which the model-based algorithm characterises the global
        code -> response curve.
    """

    name = ""
    knob = ""
    quantity = ""
    unit = ""
    increasing = True
    nominal_slope = 1.0
    characterisation_codes = ()

    def __init__(self, chip, instances=None, *, target=None, tolerance=None):
        spec = KNOBS[self.knob]
        self.chip = chip
        self.lo, self.hi = spec.lo, spec.hi
        if instances is None:
            instances = np.arange(spec.size)
        self.instances = np.asarray(instances, dtype=np.int64)
        if self.instances.ndim != 1 or self.instances.size == 0:
            raise CalibValueError(f"{self.name}: instances must be a non-empty 1-d index")
        if self.instances.min() < 0 or self.instances.max() >= spec.size:
            raise CalibValueError(f"{self.name}: instance index outside 0..{spec.size - 1}")
        self._target = None if target is None else np.broadcast_to(
            np.asarray(target, dtype=np.float64), self.instances.shape).copy()
        if tolerance is not None:
            self.tolerance = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), self.instances.shape).copy()

    @property
    def n_instances(self):
        return int(self.instances.size)

    # -------------------------------------------------------------- knob
    def codes(self):
        """Present codes of the problem's instances, int64 (n_instances,)."""
        return self.chip.get_knob(self.knob)[self.instances]

    def configure(self, codes):
        """Write ``codes`` (n_instances,) into the knob: one reconfiguration."""
        codes = np.clip(np.asarray(codes, dtype=np.int64), self.lo, self.hi)
        self.chip.set_knob(self.knob, np.broadcast_to(codes, self.instances.shape), index=self.instances)

    # ------------------------------------------------------------ target
    def resolve_target(self, before):
        """Target per instance, shape (n_instances,); may use the first measurement.

        The default is the target given at construction; problems with a
        relative target (equalise at the median or mean) override this.
        """
        if self._target is None:
            raise CalibValueError(f"{self.name}: no target given")
        return self._target

    # ----------------------------------------------------------- measure
    @abc.abstractmethod
    def measure(self):
        """Measure the observable of every instance at the present codes.

        Returns
        -------
        Measurement
        """

    def _result(self, values, std, valid=None):
        """Measurement of the problem's instances from per-knob-instance arrays (full knob size)."""
        pick = self.instances
        std = np.broadcast_to(np.asarray(std, dtype=np.float64), np.shape(values))
        return Measurement.of(np.asarray(values)[pick], std[pick], None if valid is None else np.asarray(valid)[pick])

    def is_range_limited(self, codes, values, std, target):
        """Per instance: the code sits at a range limit and the target lies beyond it.

        Beyond means: on the far side of the limit by more than the tolerance
        plus 3 standard errors (the margin of :meth:`is_success`).
        """
        codes = np.asarray(codes)
        margin = self.tolerance + 3 * np.where(np.isfinite(std), std, 0.0)
        sign = 1.0 if self.increasing else -1.0
        with np.errstate(invalid="ignore"):
            short = sign * (target - values) > margin  # the target needs a code above the range
            over = sign * (values - target) > margin  # the target needs a code below the range
        return np.isfinite(values) & (((codes >= self.hi) & short) | ((codes <= self.lo) & over))

    def is_success(self, codes, values, std, target):
        """Success per instance: measured, and within tolerance (plus 3 standard errors) of the target."""
        std = np.where(np.isfinite(std), std, 0.0)
        return np.isfinite(values) & (np.abs(values - target) <= self.tolerance + 3 * std)


@dataclass(frozen=True)
class KnobResult:
    """Outcome of one knob step.

    Attributes
    ----------
    name, knob, algorithm, quantity, unit : str
    instances : ndarray of int, shape (n,)
        Knob indices that were calibrated.
    codes : ndarray of int, shape (n,)
        Final codes (written to the chip).
    target, value, residual : ndarray of float, shape (n,)
        Target, final measured observable and their difference.
    before : ndarray of float, shape (n,)
        The observable at the starting codes.
    success : ndarray of bool, shape (n,)
        Measured, within tolerance of the target, and not range-limited.
    limited : ndarray of bool, shape (n,)
        The final code sits at the knob's range limit and the target lies
        beyond it (the knob cannot reach it); always ``success == False``.
    measurements : ndarray of int, shape (n,)
        Measurements spent per instance (each covers every instance at once).
    rounds : int
        Configure + measure cycles (knob reconfigurations) of the search.
    cost : dict
        ``wall_time_s``, ``hw_time_s``, ``vectors``, ``cadc_reads``,
        ``reconfigurations``, ``weight_writes`` spent.
    """

    name: str
    knob: str
    algorithm: str
    quantity: str
    unit: str
    instances: np.ndarray
    codes: np.ndarray
    target: np.ndarray
    value: np.ndarray
    residual: np.ndarray
    before: np.ndarray
    success: np.ndarray
    limited: np.ndarray
    measurements: np.ndarray
    rounds: int
    cost: dict

    @property
    def failed(self):
        """Knob indices of the instances that failed, sorted list of int."""
        return [int(i) for i in self.instances[~self.success]]

    @property
    def range_limited(self):
        """Knob indices of the instances whose target lies beyond the knob's range, sorted list of int."""
        return [int(i) for i in self.instances[self.limited]]

    def spread(self, which="after"):
        """Standard deviation across instances of the deviation from the target (``before``/``after``).

        Every instance with a measured value counts, failed and range-limited
        ones included (an instance without a value, e.g. a dead neuron, cannot).
        """
        v = (self.before if which == "before" else self.value) - self.target
        v = v[np.isfinite(v)]
        return float(np.std(v)) if v.size else float("nan")

    def record(self):
        """A JSON-ready summary for the manifest."""
        return {
            "name": self.name, "kind": "knob", "knob": self.knob, "algorithm": self.algorithm,
            "quantity": self.quantity, "unit": self.unit, "n_instances": int(self.instances.size),
            "n_failed": int((~self.success).sum()), "failed": self.failed, "range_limited": self.range_limited,
            "n_measured": int(np.isfinite(self.value).sum()),
            "spread_before": _finite(self.spread("before")), "spread_after": _finite(self.spread("after")),
            "residual_rms": _finite(_rms(self.residual)), "rounds": int(self.rounds),
            "measurements": int(self.measurements.max()) if self.measurements.size else 0,
            **{k: (float(v) if isinstance(v, float) else int(v)) for k, v in self.cost.items()},
        }


def _rms(a):
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.sqrt(np.mean(a * a))) if a.size else float("nan")


def _finite(v):
    return None if v is None or not np.isfinite(v) else float(v)


def solve(problem, algorithm):
    """Run ``algorithm`` on ``problem`` and leave the chip at the final codes.

    Parameters
    ----------
    problem : KnobProblem
    algorithm : object with ``search(problem, target, start, before)``
        See :mod:`calib.algorithms`.

    Returns
    -------
    KnobResult
    """
    meter = Meter(problem.chip)
    start = problem.codes()
    before = problem.measure()
    target = problem.resolve_target(before)
    out = algorithm.search(problem, target, start, before)
    residual = out.values - target
    limited = problem.is_range_limited(out.codes, out.values, out.std, target)
    success = problem.is_success(out.codes, out.values, out.std, target) & ~limited
    res = KnobResult(
        name=problem.name, knob=problem.knob,
        algorithm=algorithm.describe() + (f" [{out.note}]" if out.note else ""), quantity=problem.quantity,
        unit=problem.unit, instances=problem.instances.copy(), codes=out.codes.copy(), target=target.copy(),
        value=out.values.copy(), residual=residual, before=before.values.copy(), success=success,
        limited=limited, measurements=out.measurements + 1, rounds=out.rounds, cost=meter.read())
    if res.failed:
        log.info("%s: %d of %d instances failed: %s", problem.name, len(res.failed), problem.n_instances,
                    res.failed[:20])
    if res.range_limited:
        log.info("%s: %d instances cannot reach the target within the knob's range %d..%d: %s", problem.name,
                    len(res.range_limited), problem.lo, problem.hi, res.range_limited[:20])
    return res


@dataclass(frozen=True)
class TableStep:
    """Outcome of one correction-table stage (tier 2).

    Attributes
    ----------
    name, algorithm, quantity, unit : str
    n_instances : int
    failed : list of int
        Indices (in the stage's own instance numbering, see ``instance``) that
        failed, sorted.
    instance : str
        What an index means (``neuron``, ``driver``, ``synapse``, ...).
    spread_before : float
        Spread of the quantity across instances (what the table corrects).
    spread_after : float
        What is left: the typical uncertainty or model residual.
    cost : dict
        As in :class:`KnobResult`.
    quality : dict
        Stage-specific figures (JSON-ready).
    """

    name: str
    algorithm: str
    quantity: str
    unit: str
    n_instances: int
    failed: list
    instance: str
    spread_before: float
    spread_after: float
    cost: dict
    quality: dict

    def record(self):
        """A JSON-ready summary for the manifest."""
        return {
            "name": self.name, "kind": "table", "algorithm": self.algorithm, "quantity": self.quantity,
            "unit": self.unit, "instance": self.instance, "n_instances": int(self.n_instances),
            "n_failed": len(self.failed), "failed": [int(i) for i in self.failed],
            "spread_before": _finite(self.spread_before), "spread_after": _finite(self.spread_after),
            "measurements": int(self.cost.get("vectors", 0)),
            **{k: (float(v) if isinstance(v, float) else int(v)) for k, v in self.cost.items()},
            "quality": self.quality,
        }
