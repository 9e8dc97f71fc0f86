"""The observable interface of a chip, as a :class:`typing.Protocol`.

This is everything that calibration (:mod:`calib`), verification and the
inference engine (:mod:`infer`) may use; the simulator's :class:`~chipsim.Chip`
implements it, and so can a backend for real hardware that shares no code with
the simulator (:class:`~chipsim.flaky.FlakyChip` is such an object: a wrapper,
not a subclass). The hidden truth (``Chip.truth``) is *not* part of it.

Errors a backend raises
-----------------------
:class:`~chipsim.errors.TransientLinkError` for a failure that a repeat of the
same operation may cure (calibration retries it, a bounded number of times,
with backoff); :class:`~chipsim.errors.PermanentLinkError` (or any other
exception) ends the chip's calibration. :class:`~chipsim.errors.ChipValueError`
for arguments out of range, as the simulator does.

Examples
--------
>>> from bss2_calib.chipsim import Chip
>>> isinstance(Chip(0, "noiseless"), ObservableChip)
True
>>> isinstance(object(), ObservableChip)
False
"""
from typing import Protocol, runtime_checkable

#: names every implementation offers (the attributes and methods of :class:`ObservableChip`)
OBSERVABLE = ("chip_id", "preset", "temperature_c", "hw_time_s", "counters", "get_knob", "knob_values", "set_knob",
              "set_knobs", "get_weights", "set_weights", "run", "read_baseline", "read_cadc_reference")


@runtime_checkable
class ObservableChip(Protocol):
    """What real BrainScaleS-2 hardware exposes in VMM mode (see docs/chipsim.md).

    Attributes
    ----------
    chip_id : int
        The chip's serial (>= 0).
    preset : object with ``name`` (str) and ``sha256`` (str)
        The population the chip belongs to; an artifact records both and is
        refused on a chip of another population. A hardware backend names its
        chip revision here.
    temperature_c : float
        Reading of the die temperature sensor, degrees Celsius.
    hw_time_s : float
        Hardware time spent so far, seconds (what the operations cost on the chip).
    counters : dict of str to int
        At least ``runs``, ``vectors``, ``events``, ``reconfigurations``,
        ``weight_writes``, ``cadc_reads`` since the object was made.
    """

    chip_id: int
    preset: object
    temperature_c: float
    hw_time_s: float
    counters: dict

    def get_knob(self, name):
        """Current codes of one knob (a copy): shape (4,), (256,) or (512,)."""

    def knob_values(self):
        """Every knob's codes, a dict of copies."""

    def set_knob(self, name, values, index=None):
        """Write one knob (all instances or those at ``index``); one reconfiguration."""

    def set_knobs(self, updates):
        """Write several knobs, ``{name: values}`` or ``{name: (values, index)}``; one reconfiguration."""

    def get_weights(self, hemisphere):
        """The programmed signed weights of one hemisphere (a copy), shape (128, 256)."""

    def set_weights(self, w, hemisphere):
        """Program signed weights -63..63 of shape (128, 256) into hemisphere 0 or 1."""

    def run(self, x, hemisphere=0, *, num_sends=1, wait_between_events=5):
        """Send activations 0..31 of shape (batch, 128) (or (2, batch, 128) with ``"both"``); int8 results."""

    def read_baseline(self, hemisphere=None, n=1):
        """``n`` raw CADC reads (uint8) of the reset membranes: shape (n, 256) or (n, 512)."""

    def read_cadc_reference(self, code, n=1):
        """``n`` raw reads (uint8) of all 512 CADC channels at reference DAC ``code`` (0..1022): (n, 512)."""


def missing_members(chip):
    """Names of :data:`OBSERVABLE` that ``chip`` lacks (empty for a conforming object)."""
    return [a for a in OBSERVABLE if not hasattr(chip, a)]
