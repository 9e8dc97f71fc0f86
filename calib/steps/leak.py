"""Leak off: ``i_bias_leak`` = 0 on every neuron, verified by measurement.

With the leak on, charge decays during the integration window, so the gain per
send falls with num_sends. The observable is the ratio of the gain per send at
``n_hi`` sends to that at ``n_lo`` sends (1.0 for a pure integrator); a neuron
whose ratio stays below ``1 - tolerance`` failed.
"""
import numpy as np

from bss2_calib.chipsim import ROWS

from ..algorithms import FixedCode
from ..problem import KnobProblem, solve
from ..probes import Prober, flat


class LeakOffProblem(KnobProblem):
    """Per neuron: gain per send at ``n_hi`` sends relative to ``n_lo`` sends.

    Parameters
    ----------
    chip : chipsim.Chip
    repeats : int, default=64
        Vectors per pattern and num_sends value.
    wait_between_events : int, default=5
    tolerance : float, default=0.05
        Allowed |ratio - 1|.
    n_lo, n_hi : int, default=2, 6
    instances : array-like of int or None, default=None
        Knob instances to calibrate (None: all).
    """

    name = "leak_off"
    knob = "i_bias_leak"
    quantity = "gain per send ratio (n_hi / n_lo)"
    unit = "1"
    increasing = False
    nominal_slope = 4e-4  # ratio per code near the default
    characterisation_codes = (0, 100, 300)
    rows = (0, 32, 64, 96)
    weight = 32

    def __init__(self, chip, repeats=64, wait_between_events=5, tolerance=0.05, n_lo=2, n_hi=6, instances=None):
        super().__init__(chip, instances, target=1.0, tolerance=tolerance)
        self.prober = Prober(chip, wait_between_events)
        self.repeats, self.n_lo, self.n_hi = repeats, n_lo, n_hi

    def measure(self):
        w = np.zeros((2, ROWS, 256), dtype=np.int64)
        w[:, list(self.rows)] = self.weight
        self.prober.set_weights(w)
        x = np.zeros((2, ROWS), dtype=np.int64)
        x[0, list(self.rows)] = 31
        per_send, sem = [], []
        for n in (self.n_lo, self.n_hi):
            m, s = self.prober.mean_response(x, self.repeats, n)
            per_send.append(flat(m[:, 0] - m[:, 1]) / n)
            sem.append(flat(np.hypot(s[:, 0], s[:, 1])) / n)
        lo, hi = per_send
        signal = np.abs(lo) > 6 * sem[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(signal, hi / lo, np.nan)
            err = np.abs(ratio) * np.hypot(sem[0] / lo, sem[1] / hi)
        return self._result(ratio, err)


def run(session):
    """Switch the leak off on every neuron and verify the integration is linear."""
    p = LeakOffProblem(session.chip, repeats=4 * session.options.knobs.repeats,
                       wait_between_events=session.options.conditions.wait_between_events)
    algo = FixedCode(0) if session.options.knobs.algorithm == "model" else session.algorithm()
    return [solve(p, algo)]
