"""Per-neuron excitatory and inhibitory input gains to one common target.

``i_bias_synin_exc_gm`` / ``i_bias_synin_inh_gm`` scale the charge of each
neuron's excitatory / inhibitory input. The observable is the neuron's gain
magnitude (LSB per unit of x*w per send) for all 128 rows at activation 31
through weight +5 or -5 (40 LSB nominal): every column averages 128 synapses,
so the synapse mismatch hardly biases the neuron's gain. The common target is
the median excitatory gain at the start codes (``Target.synin_gain="median"``)
or ``Target.gain_lsb_per_unit``; the inhibitory gains get the same target.
"""
import numpy as np

from ..problem import KnobProblem, solve
from ..probes import Prober, dense_gain, spread_rows


class SynapticInputGainProblem(KnobProblem):
    """Per neuron: gain magnitude of the excitatory (``sign=+1``) or inhibitory (``-1``) input.

    Parameters
    ----------
    chip : chipsim.Chip
    sign : {+1, -1}
    target : float or None, default=None
        Common target gain; None: the median of the first measurement.
    repeats : int, default=16
    wait_between_events : int, default=5
    relative_tolerance : float, default=0.01
    instances : array-like of int or None, default=None
        Knob instances to calibrate (None: all).
    """

    quantity = "gain magnitude"
    unit = "LSB/unit/send"
    increasing = True
    nominal_slope = 3.8e-6
    characterisation_codes = (380, 500, 620)
    rows = spread_rows(1)
    weight = 5

    def __init__(self, chip, sign, target=None, repeats=16, wait_between_events=5, relative_tolerance=0.01,
                 instances=None):
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {sign!r}")
        self.sign = sign
        self.knob = "i_bias_synin_exc_gm" if sign > 0 else "i_bias_synin_inh_gm"
        self.name = "synin_exc_gm" if sign > 0 else "synin_inh_gm"
        self.relative_tolerance = relative_tolerance
        super().__init__(chip, instances, target=target, tolerance=np.inf)
        self.prober = Prober(chip, wait_between_events)
        self.repeats = repeats
        self._offsets = None

    def resolve_target(self, before):
        if self._target is None:
            v = before.values[np.isfinite(before.values) & (before.values > 0)]
            self._target = np.full(self.n_instances, np.median(v) if v.size else np.nan)
        self.tolerance = self.relative_tolerance * np.abs(self._target)
        return self._target

    def measure(self):
        if self._offsets is None:
            self._offsets = self.prober.offsets(8 * self.repeats)[0]
        gain, sem = dense_gain(self.prober, self.rows, self.weight * self.sign, repeats=self.repeats, num_sends=1,
                               offsets=self._offsets)
        alive = gain > 8 * sem
        return self._result(np.where(alive, gain, np.nan), sem)


def run(session):
    """Excitatory gains to the common target, then inhibitory gains to the same target."""
    o, chip = session.options, session.chip
    wait = o.conditions.wait_between_events
    target = session.target.gain_lsb_per_unit if session.target.synin_gain == "absolute" else None
    repeats = 4 * o.knobs.repeats
    exc = solve(SynapticInputGainProblem(chip, +1, target, repeats, wait), session.algorithm())
    common = float(exc.target[0])
    inh = solve(SynapticInputGainProblem(chip, -1, common, repeats, wait), session.algorithm())
    return [exc, inh]
