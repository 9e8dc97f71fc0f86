"""Synapse DAC bias per quadrant: the median column gain of every quadrant reaches the target.

``syn_i_bias_dac`` sets the current unit of every synapse in the quadrant's
columns. The observable is the median, over the quadrant's 128 columns, of the
column gain (LSB per unit of x*w per send) over all 128 rows at activation 31
and weight 63 (:mod:`calib.steps.column_gain`); the target is
``Target.gain_lsb_per_unit``. This fixes the chip's absolute gain; the
per-neuron input gains then only equalise around it.
"""
from bss2_calib.chipsim import N_QUADRANTS, NEURON_QUADRANT

from ..problem import solve
from ..probes import group_median
from .column_gain import ColumnGainProblem


class SynapseBiasProblem(ColumnGainProblem):
    """Per column quadrant: median gain of its columns (LSB per unit per send).

    Parameters
    ----------
    chip : chipsim.Chip
    target : Target
    repeats : int, default=64
        Vectors per measurement.
    wait_between_events : int, default=5
    instances : array-like of int or None, default=None
        Knob instances to calibrate (None: all).
    live_drivers : array-like of bool, shape (256,), or None, default=None
        Drivers the probe uses (None: all).
    """

    name = "syn_i_bias_dac"
    knob = "syn_i_bias_dac"
    quantity = "median column gain"
    unit = "LSB/unit/send"
    increasing = True
    nominal_slope = 3.8e-6  # gain per code at 0.002
    characterisation_codes = (400, 500, 600)

    def __init__(self, chip, target, repeats=64, wait_between_events=5, instances=None, live_drivers=None):
        g = target.gain_lsb_per_unit
        super().__init__(chip, instances, target=g, tolerance=0.005 * g, repeats=repeats,
                         wait_between_events=wait_between_events, live_drivers=live_drivers)

    def measure(self):
        gain, _, _ = self.column_gain()
        med, err = group_median(gain, NEURON_QUADRANT, N_QUADRANTS)
        return self._result(med, err)


def run(session):
    p = SynapseBiasProblem(session.chip, session.target, 4 * session.options.knobs.repeats,
                           session.options.conditions.wait_between_events,
                           live_drivers=session.live_drivers)
    return [solve(p, session.algorithm())]
