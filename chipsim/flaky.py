"""A backend that behaves like a chip behind an unreliable link: latency and transient failures.

:class:`FlakyChip` wraps any object with the observable interface
(:class:`~chipsim.interface.ObservableChip`) and is *not* a subclass of the
simulator: it is the seam a real-hardware backend plugs into, exercised. Every
operation costs an extra ``latency_s`` of hardware time (a round trip over the
link) and fails with probability ``transient_rate`` with a
:class:`~chipsim.errors.TransientLinkError`, half of the time before the chip
acted (the request was lost) and half after (the reply was lost). After
``dead_after`` operations the link is down for good
(:class:`~chipsim.errors.PermanentLinkError` on every call).

Failures are drawn from their own seeded Generator, so a run is reproducible.

Examples
--------
>>> from bss2_calib.chipsim import Chip
>>> chip = FlakyChip(Chip(0, "noiseless"), transient_rate=0.5, seed=1)
>>> errors = 0
>>> for _ in range(100):
...     try:
...         _ = chip.read_baseline(n=1)
...     except TransientLinkError:
...         errors += 1
>>> 30 < errors < 70
True
"""
import numpy as np

from .errors import ChipValueError, PermanentLinkError, TransientLinkError
from .interface import missing_members

#: operations that go over the link (reads of cached state do not)
LINK_OPERATIONS = ("set_knob", "set_knobs", "set_weights", "run", "read_baseline", "read_cadc_reference")


class FlakyChip:
    """An unreliable link in front of a chip.

    Parameters
    ----------
    chip : ObservableChip
        The chip behind the link (a :class:`~chipsim.Chip` or another backend).
    transient_rate : float, default=0.01
        Probability that one operation fails transiently, 0..0.5.
    latency_s : float, default=1e-4
        Hardware time added per operation (a link round trip), seconds, 0..1.
    dead_after : int or None, default=None
        After this many operations every call raises :class:`PermanentLinkError`;
        None: never.
    seed : int, default=0
        Seed of the failure draws.
    """

    def __init__(self, chip, *, transient_rate=0.01, latency_s=1e-4, dead_after=None, seed=0):
        missing = missing_members(chip)
        if missing:
            raise ChipValueError(f"FlakyChip wraps an object with the observable interface; "
                                 f"{type(chip).__name__} has no {missing[0]!r}")
        if not 0.0 <= float(transient_rate) <= 0.5:
            raise ChipValueError(f"transient_rate must be in 0..0.5, got {transient_rate!r}")
        if not 0.0 <= float(latency_s) <= 1.0:
            raise ChipValueError(f"latency_s must be in 0..1 s, got {latency_s!r}")
        if dead_after is not None and (isinstance(dead_after, bool) or not isinstance(dead_after, int)
                                       or dead_after < 0):
            raise ChipValueError(f"dead_after must be a non-negative integer or None, got {dead_after!r}")
        self._chip = chip
        self.transient_rate = float(transient_rate)
        self.latency_s = float(latency_s)
        self.dead_after = dead_after
        self._rng = np.random.default_rng(np.random.SeedSequence([0xF1A4, int(seed), int(chip.chip_id)]))
        self._link_time_s = 0.0
        self.operations = 0  #: operations attempted over the link
        self.failures = 0  #: transient failures raised

    def __repr__(self):
        return f"FlakyChip({self._chip!r}, transient_rate={self.transient_rate}, latency_s={self.latency_s})"

    # ------------------------------------------------------- identity, state
    @property
    def chip_id(self):
        return self._chip.chip_id

    @property
    def preset(self):
        return self._chip.preset

    @property
    def temperature_c(self):
        return self._chip.temperature_c

    @property
    def hw_time_s(self):
        """The chip's hardware time plus the link's latency."""
        return self._chip.hw_time_s + self._link_time_s

    @property
    def counters(self):
        return self._chip.counters

    def get_knob(self, name):
        return self._chip.get_knob(name)

    def knob_values(self):
        return self._chip.knob_values()

    def get_weights(self, hemisphere):
        return self._chip.get_weights(hemisphere)

    # ------------------------------------------------------ over the link
    def _call(self, name, *args, **kwargs):
        self.operations += 1
        self._link_time_s += self.latency_s
        if self.dead_after is not None and self.operations > self.dead_after:
            raise PermanentLinkError(f"chip {self.chip_id}: link down ({name} after {self.dead_after} operations)")
        fail = self._rng.random() < self.transient_rate
        lost_reply = self._rng.random() < 0.5
        if fail and not lost_reply:
            self.failures += 1
            raise TransientLinkError(f"chip {self.chip_id}: {name}: request lost")
        out = getattr(self._chip, name)(*args, **kwargs)
        if fail:
            self.failures += 1
            raise TransientLinkError(f"chip {self.chip_id}: {name}: reply lost")
        return out

    def set_knob(self, name, values, index=None):
        return self._call("set_knob", name, values, index)

    def set_knobs(self, updates):
        return self._call("set_knobs", updates)

    def set_weights(self, w, hemisphere):
        return self._call("set_weights", w, hemisphere)

    def run(self, x, hemisphere=0, *, num_sends=1, wait_between_events=5):
        return self._call("run", x, hemisphere, num_sends=num_sends, wait_between_events=wait_between_events)

    def read_baseline(self, hemisphere=None, n=1):
        return self._call("read_baseline", hemisphere, n)

    def read_cadc_reference(self, code, n=1):
        return self._call("read_cadc_reference", code, n)
