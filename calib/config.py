"""What to reach and how to reach it: :class:`Target` and :class:`Options`.

Both are small frozen dataclasses validated once, in ``__post_init__``: a value
outside the physical range raises :class:`~calib.errors.CalibValueError`; a value
outside the recommended range emits a :class:`CalibWarning`. ``to_dict`` /
``from_dict`` are the bridge to the artifact's manifest.
"""
import dataclasses
import math
import warnings
from dataclasses import dataclass, field

from . import stages as _registry
from .errors import CalibValueError

#: Tier 1: knob calibration, in dependency order (names of :data:`calib.stages.KNOB_STAGES`).
KNOB_STAGES = tuple(s.name for s in _registry.KNOB_STAGES)
#: Tier 2: digital correction tables, in dependency order (names of :data:`calib.stages.TABLE_STAGES`).
TABLE_STAGES = tuple(s.name for s in _registry.TABLE_STAGES)
STAGES = KNOB_STAGES + TABLE_STAGES
STAGE_ALIASES = {"all": STAGES, "knobs": KNOB_STAGES, "tables": TABLE_STAGES}
#: Table stages that need others in the same run.
STAGE_REQUIRES = {s.name: s.requires for s in _registry.TABLE_STAGES if s.requires}
ALGORITHMS = ("model", "binary", "noisy_binary", "linear")


class CalibWarning(UserWarning):
    """A target or option is legal but outside the recommended range."""


def _number(owner, name, value, lo, hi, *, integer=False, rec=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise CalibValueError(f"{owner}.{name} must be {kind}, got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise CalibValueError(f"{owner}.{name} = {value!r} is outside the physical range {lo}..{hi}")
    if rec is not None and not rec[0] <= value <= rec[1]:
        warnings.warn(f"{owner}.{name} = {value!r} is outside the recommended range {rec[0]}..{rec[1]}",
                      CalibWarning, stacklevel=4)


def _pair(owner, name, value, lo, hi):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise CalibValueError(f"{owner}.{name} must be a pair (low, high), got {value!r}")
    for v in value:
        _number(owner, name, v, lo, hi)
    if not value[0] < value[1]:
        raise CalibValueError(f"{owner}.{name} must have low < high, got {value!r}")
    return (float(value[0]), float(value[1]))


class _Serial:
    """to_dict / from_dict for (nested) frozen dataclasses."""

    def to_dict(self):
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, _Serial) else (list(v) if isinstance(v, tuple) else v)
        return out

    @classmethod
    def from_dict(cls, data):
        """Rebuild from :meth:`to_dict` output; unknown keys are refused."""
        if not isinstance(data, dict):
            raise CalibValueError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise CalibValueError(f"{cls.__name__}: unknown field {sorted(unknown)[0]!r}")
        kwargs = {}
        for k, v in data.items():
            sub = _NESTED.get((cls.__name__, k))
            if sub is not None:
                v = sub.from_dict(v)
            elif isinstance(v, list):
                v = tuple(v)
            kwargs[k] = v
        return cls(**kwargs)


@dataclass(frozen=True)
class Target(_Serial):
    """What the calibration aims for.

    Parameters
    ----------
    gain_lsb_per_unit : float, default=0.002
        Chip gain: output LSB per unit of sum(x*w) per send, (0, 0.02];
        recommended 0.0012..0.0026 (published chips).
    baseline_read : float, default=120.0
        Raw CADC read of the reset membrane, 20..235 LSB; recommended 100..140
        (negative outputs saturate earlier than positive ones, as on silicon).
    cadc_read_range : pair of float, default=(20.0, 220.0)
        Reads that the CADC reference range maps onto, 0..255 LSB.
    cadc_reference_v : pair of float, default=(0.35, 0.85)
        Reference voltage range, 0..1.2 V (the reference DAC's span).
    synin_gain : {"median", "absolute"}, default="median"
        Target of the per-neuron input gains: the median amplitude of the
        neurons (common target), or ``gain_lsb_per_unit`` itself.
    driver_low_activation : int, default=2
        Activation (1..15) whose proportional share the driver trim equalises.
    """

    gain_lsb_per_unit: float = 0.002
    baseline_read: float = 120.0
    cadc_read_range: tuple = (20.0, 220.0)
    cadc_reference_v: tuple = (0.35, 0.85)
    synin_gain: str = "median"
    driver_low_activation: int = 2

    def __post_init__(self):
        _number("Target", "gain_lsb_per_unit", self.gain_lsb_per_unit, 1e-6, 0.02, rec=(0.0012, 0.0026))
        _number("Target", "baseline_read", self.baseline_read, 20, 235, rec=(100, 140))
        object.__setattr__(self, "cadc_read_range", _pair("Target", "cadc_read_range", self.cadc_read_range, 0, 255))
        object.__setattr__(self, "cadc_reference_v",
                           _pair("Target", "cadc_reference_v", self.cadc_reference_v, 0.0, 1.2))
        if self.synin_gain not in ("median", "absolute"):
            raise CalibValueError(f"Target.synin_gain must be 'median' or 'absolute', got {self.synin_gain!r}")
        _number("Target", "driver_low_activation", self.driver_low_activation, 1, 15, integer=True)

    @property
    def cadc_read_mid_v(self):
        """Reference voltage that should read ``baseline_read``, V (linear in the range)."""
        (r0, r1), (v0, v1) = self.cadc_read_range, self.cadc_reference_v
        return v0 + (self.baseline_read - r0) * (v1 - v0) / (r1 - r0)


@dataclass(frozen=True)
class KnobOptions(_Serial):
    """How tier 1 (knob calibration) measures and searches.

    Parameters
    ----------
    algorithm : {"model", "binary", "noisy_binary", "linear"}, default="model"
        Search algorithm for every knob step (the leak step always sets 0 and
        verifies).
    reads : int, default=16
        Raw CADC reads averaged per measurement (1..1024).
    repeats : int, default=16
        Input vectors averaged per probe pattern (1..1024).
    refinements : int, default=2
        Refinement rounds of the model-based and linear algorithms (0..8).
    """

    algorithm: str = "model"
    reads: int = 16
    repeats: int = 16
    refinements: int = 2

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise CalibValueError(f"KnobOptions.algorithm must be one of {', '.join(ALGORITHMS)}, "
                                  f"got {self.algorithm!r}")
        _number("KnobOptions", "reads", self.reads, 1, 1024, integer=True, rec=(4, 256))
        _number("KnobOptions", "repeats", self.repeats, 1, 1024, integer=True, rec=(4, 256))
        _number("KnobOptions", "refinements", self.refinements, 0, 8, integer=True)


@dataclass(frozen=True)
class TableOptions(_Serial):
    """How tier 2 (correction tables) probes and fits.

    Parameters
    ----------
    offset_vectors : int, default=512
        Zero-input vectors per hemisphere for offsets and noise (16..65536).
    synapse_repeats : int, default=3
        One-hot vectors per driver, sign and num_sends value (1..64).
    synapse_num_sends : pair of int, default=(10, 16)
        Range of num_sends used for the one-hot synapse probes (every value
        in the range is used; they dither the int8 rounding).
    transfer_num_sends : int, default=16
        num_sends of the driver transfer probes (1..64).
    weight_repeats : int, default=16
        Vectors per weight probe (1..256).
    neuron_fit_vectors : int, default=1024
        Random dense probe vectors per hemisphere for the neuron fit (64..16384).
    neuron_fit_num_sends : int, default=2
    linear_range_lsb : float, default=72.0
        Results further than this from the offset count as saturated and are
        excluded from every fit (10..120 LSB).
    loss : {"soft_l1", "huber", "cauchy", "linear"}, default="soft_l1"
        scipy.optimize.least_squares loss of the neuron fit.
    """

    offset_vectors: int = 512
    synapse_repeats: int = 3
    synapse_num_sends: tuple = (10, 16)
    transfer_num_sends: int = 16
    weight_repeats: int = 16
    neuron_fit_vectors: int = 1024
    neuron_fit_num_sends: int = 2
    linear_range_lsb: float = 72.0
    loss: str = "soft_l1"

    def __post_init__(self):
        _number("TableOptions", "offset_vectors", self.offset_vectors, 16, 65536, integer=True, rec=(128, 8192))
        _number("TableOptions", "synapse_repeats", self.synapse_repeats, 1, 64, integer=True)
        ns = self.synapse_num_sends
        if (not isinstance(ns, (tuple, list)) or len(ns) != 2 or not all(isinstance(v, int) for v in ns)
                or not 1 <= ns[0] <= ns[1] <= 64):
            raise CalibValueError(f"TableOptions.synapse_num_sends must be a pair 1 <= low <= high <= 64, got {ns!r}")
        object.__setattr__(self, "synapse_num_sends", (int(ns[0]), int(ns[1])))
        _number("TableOptions", "transfer_num_sends", self.transfer_num_sends, 1, 64, integer=True)
        _number("TableOptions", "weight_repeats", self.weight_repeats, 1, 256, integer=True)
        _number("TableOptions", "neuron_fit_vectors", self.neuron_fit_vectors, 64, 16384, integer=True)
        _number("TableOptions", "neuron_fit_num_sends", self.neuron_fit_num_sends, 1, 16, integer=True)
        _number("TableOptions", "linear_range_lsb", self.linear_range_lsb, 10, 120, rec=(40, 80))
        if self.loss not in ("soft_l1", "huber", "cauchy", "linear"):
            raise CalibValueError(f"TableOptions.loss must be soft_l1, huber, cauchy or linear, got {self.loss!r}")


@dataclass(frozen=True)
class ConditionOptions(_Serial):
    """The operating conditions the artifact is made (and verified) for.

    Parameters
    ----------
    wait_between_events : int, default=5
        Event spacing in clock cycles (1..255) of every probe; the artifact is
        valid for this spacing only.
    num_sends_ref : int, default=8
        num_sends the gain tables refer to (1..255).
    num_sends_max : int, default=64
        Largest num_sends the linearity stage probes (2..255).
    send_linearity_tolerance : float, default=0.005
        Largest relative deviation of the gain per send from its value at
        ``num_sends_ref`` inside the verified num_sends range (0.0005..0.1).
    temperature_tolerance_k : float, default=5.0
        The artifact is valid within this many kelvin of the calibration
        temperature (0.1..50).
    """

    wait_between_events: int = 5
    num_sends_ref: int = 8
    num_sends_max: int = 64
    send_linearity_tolerance: float = 0.005
    temperature_tolerance_k: float = 5.0

    def __post_init__(self):
        _number("ConditionOptions", "wait_between_events", self.wait_between_events, 1, 255, integer=True)
        _number("ConditionOptions", "num_sends_ref", self.num_sends_ref, 1, 255, integer=True)
        _number("ConditionOptions", "num_sends_max", self.num_sends_max, 2, 255, integer=True)
        _number("ConditionOptions", "send_linearity_tolerance", self.send_linearity_tolerance, 0.0005, 0.1)
        _number("ConditionOptions", "temperature_tolerance_k", self.temperature_tolerance_k, 0.1, 50)


def resolve_stages(stages):
    """Expand aliases and order ``stages`` canonically.

    Parameters
    ----------
    stages : str or iterable of str
        Stage names (see :data:`STAGES`) or aliases ``all``, ``knobs``,
        ``tables``; a string may hold comma-separated names.

    Returns
    -------
    tuple of str
        In dependency order, without duplicates.
    """
    if isinstance(stages, str):
        stages = [s for s in stages.split(",")]
    chosen = set()
    for s in stages:
        if not isinstance(s, str):
            raise CalibValueError(f"stage names must be strings, got {s!r}")
        s = s.strip()
        if s in STAGE_ALIASES:
            chosen.update(STAGE_ALIASES[s])
        elif s in STAGES:
            chosen.add(s)
        else:
            raise CalibValueError(f"unknown stage {s!r}; stages: {', '.join(STAGES)} "
                                  f"(or {', '.join(STAGE_ALIASES)})")
    if not chosen:
        raise CalibValueError("no stage selected")
    for s in chosen:
        for req in STAGE_REQUIRES.get(s, ()):
            if req not in chosen:
                raise CalibValueError(f"stage {s!r} needs stage {req!r} in the same run")
    return tuple(s for s in STAGES if s in chosen)


@dataclass(frozen=True)
class Options(_Serial):
    """How to calibrate.

    Parameters
    ----------
    stages : tuple of str, default=all stages
        What to run (names of :data:`STAGES` or aliases); ordered canonically.
    knobs : KnobOptions, default=KnobOptions()
    tables : TableOptions, default=TableOptions()
    conditions : ConditionOptions, default=ConditionOptions()
    seed : int, default=0
        Seed of the calibration's own random choices (probe patterns,
        dithering); >= 0. Trial-to-trial noise belongs to the chip.
    """

    stages: tuple = STAGES
    knobs: KnobOptions = field(default_factory=KnobOptions)
    tables: TableOptions = field(default_factory=TableOptions)
    conditions: ConditionOptions = field(default_factory=ConditionOptions)
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "stages", resolve_stages(self.stages))
        for name, cls in (("knobs", KnobOptions), ("tables", TableOptions), ("conditions", ConditionOptions)):
            if not isinstance(getattr(self, name), cls):
                raise CalibValueError(f"Options.{name} must be a {cls.__name__}")
        _number("Options", "seed", self.seed, 0, 2**63 - 1, integer=True)


_NESTED = {("Options", "knobs"): KnobOptions, ("Options", "tables"): TableOptions,
           ("Options", "conditions"): ConditionOptions}
