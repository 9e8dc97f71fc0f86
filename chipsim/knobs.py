"""The chip's configuration knobs: names, granularity, legal ranges and defaults.

All analog knobs are 10-bit CapMem cells (legal codes 0..1022). The digital
CADC channel offset is signed. A new chip starts at the default codes, which
are nominal (uncalibrated) settings.
"""
from dataclasses import dataclass

import numpy as np

from .errors import ChipValueError
from .geometry import N_DRIVERS, N_NEURONS, N_QUADRANTS


@dataclass(frozen=True)
class KnobSpec:
    """Description of one knob.

    Attributes
    ----------
    name : str
        Knob name in the chip's own terms.
    granularity : {"quadrant", "driver", "neuron"}
        What one value configures.
    size : int
        Number of instances (4, 256 or 512).
    lo, hi : int
        Legal range, inclusive.
    default : int
        Code of a fresh, uncalibrated chip.
    doc : str
        What the knob does physically.
    """

    name: str
    granularity: str
    size: int
    lo: int
    hi: int
    default: int
    doc: str

    def validate(self, values, index=None):
        """Return ``values`` as an int64 array after range and type checks.

        Parameters
        ----------
        values : int or array-like of int
            New codes; broadcast to the selected instances.
        index : None, int, slice or array-like of int, default=None
            Which instances to set; None means all.

        Returns
        -------
        ndarray of int64
            The validated codes, broadcast to the selected instances.
        """
        arr = np.asarray(values)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise ChipValueError(f"knob {self.name}: values must be integers, got dtype {arr.dtype}")
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)):
                raise ChipValueError(f"knob {self.name}: values must be finite integers (got NaN or inf)")
            if not np.all(arr == np.round(arr)):
                raise ChipValueError(f"knob {self.name}: values must be integers, got non-integer floats")
        if arr.dtype.kind == "b":
            raise ChipValueError(f"knob {self.name}: values must be integers, got booleans")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < self.lo or arr.max() > self.hi):
            bad = arr[(arr < self.lo) | (arr > self.hi)].ravel()[0]
            raise ChipValueError(
                f"knob {self.name}: value {bad} outside the legal range {self.lo}..{self.hi}"
            )
        target = np.empty(self.size, dtype=np.int64)
        try:
            sel = target[index] if index is not None else target
        except (IndexError, TypeError) as err:
            raise ChipValueError(f"knob {self.name}: bad index {index!r} for {self.size} instances") from err
        try:
            return np.broadcast_to(arr, np.shape(sel)).copy()
        except ValueError as err:
            raise ChipValueError(
                f"knob {self.name}: {arr.shape} values do not fit {np.shape(sel)} selected instances"
            ) from err


_CAPMEM = (0, 1022)

KNOBS = {
    k.name: k
    for k in [
        KnobSpec("syn_i_bias_dac", "quadrant", N_QUADRANTS, *_CAPMEM, 500,
                 "synapse DAC bias: the current unit of every synapse of the quadrant's columns"),
        KnobSpec("stp_i_ramp", "quadrant", N_QUADRANTS, *_CAPMEM, 600,
                 "driver ramp: pulse length per activation step of the quadrant's drivers"),
        KnobSpec("cadc_v_ramp_offset", "quadrant", N_QUADRANTS, *_CAPMEM, 400,
                 "CADC ramp start voltage of the quadrant's channels"),
        KnobSpec("cadc_i_ramp_slope", "quadrant", N_QUADRANTS, *_CAPMEM, 400,
                 "CADC ramp slope (LSB per volt) of the quadrant's channels"),
        KnobSpec("hagen_dac_offset", "driver", N_DRIVERS, 0, 63, 32,
                 "6-bit trim of the driver's comparator offset (activation steps)"),
        KnobSpec("v_reset", "neuron", N_NEURONS, *_CAPMEM, 500,
                 "reset (and baseline) potential of the membrane"),
        KnobSpec("i_bias_synin_exc_gm", "neuron", N_NEURONS, *_CAPMEM, 500,
                 "excitatory synaptic input OTA bias: gain of excitatory charge"),
        KnobSpec("i_bias_synin_inh_gm", "neuron", N_NEURONS, *_CAPMEM, 500,
                 "inhibitory synaptic input OTA bias: gain of inhibitory charge"),
        KnobSpec("i_bias_leak", "neuron", N_NEURONS, *_CAPMEM, 300,
                 "leak conductance bias; 0 switches the leak off (a small residual remains)"),
        KnobSpec("cadc_channel_offset", "neuron", N_NEURONS, -128, 127, 0,
                 "digital offset added to the CADC channel's raw read"),
    ]
}

RUN_LIMITS = {"num_sends": (1, 255), "wait_between_events": (1, 255)}


def default_knobs():
    """Return a fresh dict of default codes, one int64 array per knob."""
    return {k.name: np.full(k.size, k.default, dtype=np.int64) for k in KNOBS.values()}


def knob_spec(name):
    """Return the :class:`KnobSpec` called ``name`` or raise a clear error."""
    try:
        return KNOBS[name]
    except KeyError:
        raise ChipValueError(f"unknown knob {name!r}; known knobs: {', '.join(KNOBS)}") from None
