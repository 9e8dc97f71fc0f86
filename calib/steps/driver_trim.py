"""Synapse drivers: the 6-bit comparator trim per driver, then the ramp per quadrant.

* ``hagen_dac_offset`` (driver): low activations get their proportional share.
  The observable is ``[r(x_lo) / x_lo] / [r(31) / 31]`` where ``r(x)`` is the
  driver's one-hot response averaged over all 256 columns of its hemisphere
  (every synapse at weight 63); target 1.
* ``stp_i_ramp`` (driver quadrant): the pulse length per activation step. The
  two driver quadrants of a hemisphere are equalised at their mean: the
  observable is the mean column response to the quadrant's 64 drivers at
  activation 31. The hemisphere's absolute scale is left to the synapse bias.

The trim runs first: the ramp measurement at activation 31 then no longer
carries the comparator offsets.
"""
import numpy as np

from bss2_calib.chipsim import N_DRIVERS, N_QUADRANTS, ROWS

from ..problem import KnobProblem, solve
from ..probes import Prober


class DriverTrimProblem(KnobProblem):
    """Per driver: proportional share of a low activation (1 = proportional).

    Parameters
    ----------
    chip : chipsim.Chip
    x_lo : int, default=2
        The low activation (1..15).
    repeats : int, default=4
    wait_between_events : int, default=5
    n_lo : int or None, default=None
        num_sends of the low-activation probe; None: about 96 / x_lo.
    n_hi : int, default=12
        num_sends of the full-activation (31) probe.
    instances : array-like of int or None, default=None
        Knob instances to calibrate (None: all).
    """

    name = "hagen_dac_offset"
    knob = "hagen_dac_offset"
    quantity = "proportional share of a low activation"
    unit = "1"
    increasing = False
    nominal_slope = 0.04  # 0.08 activation steps per code at x_lo = 2
    characterisation_codes = (16, 32, 48)

    def __init__(self, chip, x_lo=2, repeats=4, wait_between_events=5, n_lo=None, n_hi=12, instances=None):
        super().__init__(chip, instances, target=1.0, tolerance=0.03 * 2 / x_lo)
        self.prober = Prober(chip, wait_between_events)
        if n_lo is None:
            n_lo = int(np.clip(round(96 / x_lo), 4, 64))
        self.x_lo, self.repeats, self.n_lo, self.n_hi = x_lo, repeats, n_lo, n_hi

    def responses(self, activation, num_sends):
        """Mean over columns of every driver's one-hot response per send, shape (256,), and its sem."""
        eye = np.eye(ROWS, dtype=np.int64) * activation
        x = np.concatenate([eye, np.zeros((8, ROWS), dtype=np.int64)])
        m, s = self.prober.mean_response(x, self.repeats, num_sends)
        y = m[:, :ROWS] - m[:, ROWS:].mean(axis=1, keepdims=True)  # (2, 128, 256)
        r = y.mean(axis=2) / num_sends
        sem = np.sqrt((s[:, :ROWS] ** 2).mean(axis=2) / s.shape[2]) / num_sends
        return r.reshape(N_DRIVERS), sem.reshape(N_DRIVERS)

    def measure(self):
        self.prober.uniform_weights(63)
        lo, slo = self.responses(self.x_lo, self.n_lo)
        hi, shi = self.responses(31, self.n_hi)
        alive = (hi > 10 * shi) & (hi > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(alive, (lo / self.x_lo) / (hi / 31), np.nan)
            err = np.abs(q) * np.hypot(slo / lo, shi / hi)
        return self._result(q, err)


class DriverRampProblem(KnobProblem):
    """Per driver quadrant: mean column response to its 64 drivers at activation 31.

    Target: the mean of the two quadrants of the hemisphere at the start codes.

    Parameters
    ----------
    chip : chipsim.Chip
    repeats : int, default=16
    wait_between_events : int, default=5
    weight : int, default=12
        Weight of every synapse (64 x 31 x 12 x 0.002 = 48 LSB nominal).
    """

    name = "stp_i_ramp"
    knob = "stp_i_ramp"
    quantity = "mean response to the quadrant's drivers"
    unit = "LSB"
    increasing = True
    nominal_slope = 0.07  # LSB per code at 48 LSB
    characterisation_codes = (500, 600, 700)

    def __init__(self, chip, repeats=16, wait_between_events=5, weight=12):
        super().__init__(chip, np.arange(N_QUADRANTS), tolerance=0.15)
        self.prober = Prober(chip, wait_between_events)
        self.repeats, self.weight = repeats, weight

    def resolve_target(self, before):
        v = before.values
        t = np.array([(v[0] + v[1]) / 2, (v[0] + v[1]) / 2, (v[2] + v[3]) / 2, (v[2] + v[3]) / 2])
        self.tolerance = np.maximum(0.003 * np.abs(t), 0.05)
        return t

    def measure(self):
        self.prober.uniform_weights(self.weight)
        x = np.zeros((3, ROWS), dtype=np.int64)
        x[0, :ROWS // 2] = 31
        x[1, ROWS // 2:] = 31
        m, s = self.prober.mean_response(x, self.repeats, 1)
        y = m[:, :2] - m[:, 2:3]  # (2 hemispheres, 2 sides, 256)
        v = y.mean(axis=2).reshape(N_QUADRANTS)
        err = (np.sqrt((s[:, :2] ** 2 + s[:, 2:3] ** 2).mean(axis=2)) / np.sqrt(s.shape[2])).reshape(N_QUADRANTS)
        return self._result(v, err)


def run(session):
    """Trim every driver, then equalise the ramps of the two quadrants of each hemisphere.

    Records the drivers that respond (``session.live_drivers``, bool (256,)).
    """
    o = session.options
    wait = o.conditions.wait_between_events
    trim = DriverTrimProblem(session.chip, x_lo=session.target.driver_low_activation,
                             repeats=max(1, o.knobs.repeats // 4), wait_between_events=wait)
    ramp = DriverRampProblem(session.chip, repeats=o.knobs.repeats, wait_between_events=wait)
    trimmed = solve(trim, session.algorithm())
    # drivers that respond at activation 31 (the trim's observable is NaN for a driver that does not):
    # the column-gain probes of the later steps leave the others out
    live = np.zeros(N_DRIVERS, dtype=bool)
    live[trimmed.instances] = np.isfinite(trimmed.value) | np.isfinite(trimmed.before)
    session.live_drivers = live
    return [trimmed, solve(ramp, session.algorithm())]

