"""Per-neuron excitatory and inhibitory input gains to one common target.

``i_bias_synin_exc_gm`` / ``i_bias_synin_inh_gm`` scale the charge of each
neuron's excitatory / inhibitory input. The observable is the neuron's column
gain magnitude (LSB per unit of x*w per send) over all 128 rows at activation
31 and weight +63 or -63 (:mod:`calib.steps.column_gain`, the synapse-bias
step's gauge): every column averages 128 synapses, so the synapse mismatch
hardly biases the neuron's gain, and stuck-at-max synapses do not bias it at
all. The common target is the median excitatory gain at the start codes
(``Target.synin_gain="median"``) or ``Target.gain_lsb_per_unit``; the
inhibitory gains get the same target. A neuron that does not respond (dead) is
not measured (NaN) and fails.
"""
import numpy as np

from ..problem import solve
from .column_gain import ColumnGainProblem


class SynapticInputGainProblem(ColumnGainProblem):
    """Per neuron: gain magnitude of the excitatory (``sign=+1``) or inhibitory (``-1``) input.

    Parameters
    ----------
    chip : chipsim.Chip
    sign : {+1, -1}
    target : float or None, default=None
        Common target gain; None: the median of the first measurement.
    repeats : int, default=64
        Vectors per measurement.
    wait_between_events : int, default=5
    relative_tolerance : float, default=0.01
    instances : array-like of int or None, default=None
        Knob instances to calibrate (None: all).
    live_drivers : array-like of bool, shape (256,), or None, default=None
        Drivers the probe uses (None: all).
    """

    quantity = "gain magnitude"
    unit = "LSB/unit/send"
    increasing = True
    nominal_slope = 3.8e-6
    characterisation_codes = (380, 500, 620)

    def __init__(self, chip, sign, target=None, repeats=64, wait_between_events=5, relative_tolerance=0.01,
                 instances=None, live_drivers=None):
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {sign!r}")
        self.knob = "i_bias_synin_exc_gm" if sign > 0 else "i_bias_synin_inh_gm"
        self.name = "synin_exc_gm" if sign > 0 else "synin_inh_gm"
        self.relative_tolerance = relative_tolerance
        super().__init__(chip, instances, target=target, tolerance=np.inf, sign=sign, repeats=repeats,
                         wait_between_events=wait_between_events, live_drivers=live_drivers)

    def resolve_target(self, before):
        if self._target is None:
            v = before.values[np.isfinite(before.values) & (before.values > 0)]
            self._target = np.full(self.n_instances, np.median(v) if v.size else np.nan)
        self.tolerance = self.relative_tolerance * np.abs(self._target)
        return self._target

    def measure(self):
        gain, sem, valid = self.column_gain()
        alive = gain > 8 * sem
        return self._result(np.where(alive, gain, np.nan), sem, valid)


def run(session):
    """Excitatory gains to the common target, then inhibitory gains to the same target."""
    o, chip = session.options, session.chip
    wait = o.conditions.wait_between_events
    target = session.target.gain_lsb_per_unit if session.target.synin_gain == "absolute" else None
    repeats = 4 * o.knobs.repeats
    live = session.live_drivers
    exc = solve(SynapticInputGainProblem(chip, +1, target, repeats, wait, live_drivers=live), session.algorithm())
    common = float(exc.target[0])
    inh = solve(SynapticInputGainProblem(chip, -1, common, repeats, wait, live_drivers=live), session.algorithm())
    return [exc, inh]
