"""Synapse DAC bias per quadrant: the median column gain of every quadrant reaches the target.

``syn_i_bias_dac`` sets the current unit of every synapse in the quadrant's
columns. The observable is the median, over the quadrant's 128 columns, of the
gain (LSB per unit of x*w per send) measured with a dense excitatory pattern;
the target is ``Target.gain_lsb_per_unit``. This fixes the chip's absolute gain;
the per-neuron input gains then only equalise within about +-10 %.
"""
from chipsim import N_QUADRANTS, NEURON_QUADRANT

from ..problem import KnobProblem, solve
from ..probes import Prober, dense_gain, group_median, spread_rows


class SynapseBiasProblem(KnobProblem):
    """Per column quadrant: median gain of its columns (LSB per unit per send).

    Parameters
    ----------
    chip : chipsim.Chip
    target : Target
    repeats : int, default=16
    wait_between_events : int, default=5
    instances : array-like of int or None, default=None
        Knob instances to calibrate (None: all).
    """

    name = "syn_i_bias_dac"
    knob = "syn_i_bias_dac"
    quantity = "median column gain"
    unit = "LSB/unit/send"
    increasing = True
    nominal_slope = 3.8e-6  # gain per code at 0.002
    characterisation_codes = (400, 500, 600)
    rows = spread_rows(12)  # 11 rows: 11 x 31 x 63 x 0.002 = 43 LSB nominal

    def __init__(self, chip, target, repeats=16, wait_between_events=5, instances=None):
        g = target.gain_lsb_per_unit
        super().__init__(chip, instances, target=g, tolerance=0.005 * g)
        self.prober = Prober(chip, wait_between_events)
        self.repeats = repeats
        self._offsets = None

    def measure(self):
        if self._offsets is None:  # offsets do not depend on this knob
            self._offsets = self.prober.offsets(8 * self.repeats)[0]
        gain, _ = dense_gain(self.prober, self.rows, 63, repeats=self.repeats, num_sends=1, offsets=self._offsets)
        med, err = group_median(gain, NEURON_QUADRANT, N_QUADRANTS)
        return self._result(med, err)


def run(session):
    p = SynapseBiasProblem(session.chip, session.target, 4 * session.options.knobs.repeats,
                           session.options.conditions.wait_between_events)
    return [solve(p, session.algorithm())]
