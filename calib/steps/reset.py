"""Per-neuron reset potential ``v_reset``: the baseline read reaches ``Target.baseline_read``.

The observable is the mean raw CADC read of the reset membrane
(``read_baseline``); the channel offsets must be calibrated first, so that the
read means the same voltage on every channel.
"""
import numpy as np

from ..problem import KnobProblem, solve


class ResetProblem(KnobProblem):
    """Per neuron: mean raw baseline read (LSB) -> ``Target.baseline_read``.

    Parameters
    ----------
    chip : chipsim.Chip
    target : Target
    reads : int, default=16
        Raw reads averaged per measurement.
    instances : array-like of int or None, default=None
        Knob instances to calibrate (None: all).
    """

    name = "v_reset"
    knob = "v_reset"
    quantity = "baseline read"
    unit = "LSB"
    increasing = True
    nominal_slope = 0.38  # LSB per code (about 1 mV per code at 400 LSB/V)
    characterisation_codes = (400, 500, 600)

    def __init__(self, chip, target, reads=16, instances=None):
        super().__init__(chip, instances, target=target.baseline_read, tolerance=1.0)
        self.reads = reads

    def measure(self):
        r = self.chip.read_baseline(None, n=self.reads).astype(np.float64)
        v = r.mean(axis=0)
        std = r.std(axis=0, ddof=1) / np.sqrt(self.reads) if self.reads > 1 else np.full(v.shape, 0.9)
        return self._result(v, std, (v > 2) & (v < 253))


def run(session):
    return [solve(ResetProblem(session.chip, session.target, session.options.knobs.reads), session.algorithm())]
