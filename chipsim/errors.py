"""Exceptions raised by the chip simulator.

Every error a user can provoke is a subclass of :class:`ChipError`; those that
describe bad arguments are also :class:`ValueError`, so callers that expect the
standard library's error type keep working.
"""


class ChipError(Exception):
    """Base class of all simulator errors."""


class ChipValueError(ChipError, ValueError):
    """An argument is out of range, of the wrong shape, or not an integer."""


class PresetError(ChipValueError):
    """A preset name is unknown or a preset file is malformed."""


class TruthAccessError(ChipError, PermissionError):
    """The hidden truth of a chip was requested where it is locked.

    Calibration and inference must only use the observable interface; a chip
    created with ``truth_access=False`` raises this on every truth accessor, so
    tests can prove that they do.
    """


class LinkError(ChipError):
    """The connection to a chip failed (real hardware, or a backend that models it)."""


class TransientLinkError(LinkError):
    """A failure that a retry of the same operation may cure (a lost packet, a timeout).

    Every observable operation is idempotent (knob and weight writes set
    absolute values, a run only reads), so repeating it after this error is
    safe whether the failure happened before or after the chip acted.
    """


class PermanentLinkError(LinkError):
    """The chip is unreachable; retrying will not help (the link is down, the chip is gone)."""
