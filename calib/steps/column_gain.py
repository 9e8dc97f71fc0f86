"""The column-gain observable shared by the synapse-bias and input-gain steps.

Both steps tune a knob that scales a neuron column's gain, so both measure the
same thing in the same gauge: every neuron's gain (LSB per unit of x*w per
send) over all 128 rows at activation 31 and weight +-63, in interleaved
patterns of about 10 rows (:func:`calib.probes.interleaved_gain`); drivers the
driver step found dead are left out. Averaging over every row makes the result
independent of which drivers a subset would sample; the full weight makes it
blind to stuck-at-max synapses (which pass the weight-63 current whatever is
programmed). The absolute gain this gauge calibrates is the chip's gain for
full-scale activations and weights; see docs/benchmarks.md ("Calibration") for
how it compares with other workloads.
"""
import math

import numpy as np

from bss2_calib.chipsim import W_MAX

from ..problem import KnobProblem
from ..probes import Prober, interleaved_gain

GROUPS = 13  #: interleaved patterns: 9-10 rows each, 10 x 31 x 63 x 0.002 = 39 LSB nominal


class ColumnGainProblem(KnobProblem):
    """A knob problem whose observable derives from every neuron's column gain.

    Parameters
    ----------
    chip : chipsim.Chip
    instances : array-like of int or None
    target, tolerance : see :class:`~calib.problem.KnobProblem`
    sign : {+1, -1}, default=+1
        Excitatory (weight +63) or inhibitory (weight -63) rows.
    repeats : int, default=64
        Vectors per measurement, spread over the :data:`GROUPS` patterns
        (at least 2 per pattern).
    wait_between_events : int, default=5
    linear_range_lsb : float, default=72.0
        Patterns that move a neuron further than this make its value not valid.
    live_drivers : array-like of bool, shape (256,), or None, default=None
        Drivers the patterns use; None: all. The pipeline passes the drivers
        that responded in the driver step, so that dead drivers (which pass
        nothing) do not lower the measured gain by their share.
    """

    def __init__(self, chip, instances=None, *, target=None, tolerance=None, sign=1, repeats=64,
                 wait_between_events=5, linear_range_lsb=72.0, live_drivers=None):
        super().__init__(chip, instances, target=target, tolerance=tolerance)
        self.prober = Prober(chip, wait_between_events)
        self.sign = sign
        self.repeats = max(2, math.ceil(repeats / GROUPS))
        self.linear_range_lsb = linear_range_lsb
        self.live_drivers = None if live_drivers is None else np.asarray(live_drivers, dtype=bool).copy()
        self._offsets = None

    def column_gain(self):
        """Gain magnitude, its standard error and validity of every neuron, each (512,).

        The zero-input offsets (independent of the gain knobs) are measured
        on the first call only.
        """
        if self._offsets is None:
            self._offsets = self.prober.offsets(8 * self.repeats * GROUPS)[0]
        gain, sem, valid = interleaved_gain(self.prober, self.sign * W_MAX, groups=GROUPS, repeats=self.repeats,
                                            num_sends=1, offsets=self._offsets,
                                            linear_range_lsb=self.linear_range_lsb, live_drivers=self.live_drivers)
        return gain, sem, valid


