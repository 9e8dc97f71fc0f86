"""Retrying transient link failures: the calibration side of the hardware seam.

A real chip sits behind a link that sometimes loses a packet. Every observable
operation is idempotent (absolute knob and weight writes, reads), so an
operation that raised :class:`~chipsim.errors.TransientLinkError` is simply
repeated, after a backoff, at most ``RetryPolicy.attempts`` times in all. A
:class:`~chipsim.errors.PermanentLinkError`, or a transient failure that
outlasts the attempts, ends the calibration with :class:`ChipUnreachable`,
which names the chip, the operation and the cause. Other exceptions (bad
arguments) pass through unchanged.
"""
from dataclasses import dataclass

from bss2_calib.chipsim.errors import LinkError, PermanentLinkError, TransientLinkError
from bss2_calib.chipsim.flaky import LINK_OPERATIONS

from .errors import CalibValueError


class ChipUnreachable(PermanentLinkError):
    """A chip's link failed for good during calibration (not a calibration error: no stage can continue)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How transient link failures are retried.

    Attributes
    ----------
    attempts : int, default=5
        Tries per operation in all (1..20); 1 means no retry.
    backoff_s : float, default=1e-3
        Wait before the first retry, seconds (0..10); it doubles with every further retry.
    sleep : callable or None, default=None
        ``sleep(seconds)`` for a real link (``time.sleep``). None: the wait is
        simulated, counted in hardware time only (the simulator has no link to
        wait for, and tests must not sleep).
    """

    attempts: int = 5
    backoff_s: float = 1e-3
    sleep: object = None

    def __post_init__(self):
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or not 1 <= self.attempts <= 20:
            raise CalibValueError(f"RetryPolicy.attempts must be an integer in 1..20, got {self.attempts!r}")
        if isinstance(self.backoff_s, bool) or not isinstance(self.backoff_s, (int, float)) \
                or not 0 <= self.backoff_s <= 10:
            raise CalibValueError(f"RetryPolicy.backoff_s must be in 0..10 s, got {self.backoff_s!r}")
        if self.sleep is not None and not callable(self.sleep):
            raise CalibValueError("RetryPolicy.sleep must be callable or None")


class Retrying:
    """The observable interface of ``chip`` with transient failures retried (see the module docstring).

    Parameters
    ----------
    chip : ObservableChip
    policy : RetryPolicy, default=RetryPolicy()

    Attributes
    ----------
    retries : int
        Operations repeated so far.
    """

    def __init__(self, chip, policy=RetryPolicy()):
        self._chip = chip
        self.policy = policy
        self.retries = 0
        self._waited_s = 0.0

    def __getattr__(self, name):  # identity and reads of cached state go straight through
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._chip, name)

    @property
    def hw_time_s(self):
        """The chip's hardware time plus the simulated backoff waits."""
        return self._chip.hw_time_s + self._waited_s

    def _call(self, name, *args, **kwargs):
        p = self.policy
        wait = p.backoff_s
        for attempt in range(1, p.attempts + 1):
            try:
                return getattr(self._chip, name)(*args, **kwargs)
            except TransientLinkError as err:
                if attempt == p.attempts:
                    raise ChipUnreachable(f"chip {self._chip.chip_id}: {name} failed on all {p.attempts} attempts "
                                          f"(last: {err}); calibration aborted") from err
            except LinkError as err:
                raise ChipUnreachable(f"chip {self._chip.chip_id}: {name}: {err}; calibration aborted") from err
            self.retries += 1
            if p.sleep is not None:
                p.sleep(wait)
            else:
                self._waited_s += wait
            wait *= 2


def _forward(name):
    def op(self, *args, **kwargs):
        return self._call(name, *args, **kwargs)

    op.__name__ = name
    op.__doc__ = f"``chip.{name}`` with transient link failures retried."
    return op


for _name in LINK_OPERATIONS:
    setattr(Retrying, _name, _forward(_name))
del _name
