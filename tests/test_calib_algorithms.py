"""Search algorithms on a synthetic problem, and every knob problem with every algorithm on a chip."""
import numpy as np
import pytest

from bss2_calib.chipsim import Chip
from bss2_calib.calib import (BinarySearch, FixedCode, LinearPrediction, ModelBased, NoisyBinarySearch, Target,
                   solve)
from bss2_calib.calib.problem import KnobProblem
from bss2_calib.calib.steps.cadc import CadcChannelOffsetProblem, CadcRampOffsetProblem, CadcRampSlopeProblem
from bss2_calib.calib.steps.driver_trim import DriverRampProblem, DriverTrimProblem
from bss2_calib.calib.steps.leak import LeakOffProblem
from bss2_calib.calib.steps.reset import ResetProblem
from bss2_calib.calib.steps.synapse_bias import SynapseBiasProblem
from bss2_calib.calib.steps.synin import SynapticInputGainProblem

N = 40


class FakeChip:
    """Just enough of the observable interface for a synthetic knob."""

    def __init__(self):
        self.codes = np.full(512, 500, dtype=np.int64)
        self.writes = 0
        self.hw_time_s = 0.0
        self.counters = dict(vectors=0, cadc_reads=0, reconfigurations=0, weight_writes=0)

    def get_knob(self, name):
        return self.codes.copy()

    def set_knob(self, name, values, index=None):
        self.codes[index] = values
        self.writes += 1


class SyntheticProblem(KnobProblem):
    """response = a_i * (u + 0.3 u^2) * 100 + b_i + noise, u = code / 1022 (monotone, mildly non-linear)."""

    name = "synthetic"
    knob = "v_reset"
    quantity = "response"
    unit = "1"
    nominal_slope = 0.12
    characterisation_codes = (300, 500, 700)

    def __init__(self, chip, noise=0.1, seed=0, increasing=True):
        super().__init__(chip, np.arange(N), target=60.0, tolerance=0.3)
        rng = np.random.default_rng(seed)
        self.a = 1 + 0.15 * rng.standard_normal(N)
        self.b = 5 * rng.standard_normal(N)
        self.noise, self.rng, self.increasing = noise, np.random.default_rng(seed + 1), increasing

    def truth(self, codes):
        u = np.asarray(codes) / 1022.0
        if not self.increasing:
            u = 1 - u
        return self.a * (u + 0.3 * u * u) * 100 + self.b

    def measure(self):
        v = self.truth(self.chip.codes[:N]) + self.noise * self.rng.standard_normal(N)
        return self._result(np.concatenate([v, np.zeros(512 - N)]), self.noise)

    def best_codes(self):
        grid = np.arange(1023)
        u = grid / 1022.0
        if not self.increasing:
            u = 1 - u
        resp = self.a[:, None] * (u + 0.3 * u * u)[None, :] * 100 + self.b[:, None]
        return np.argmin(np.abs(resp - 60), axis=1)


ALGOS = [BinarySearch(), NoisyBinarySearch(seed=3), ModelBased(refinements=3), LinearPrediction(refinements=4)]


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.describe())
@pytest.mark.parametrize("increasing", [True, False])
def test_algorithms_reach_the_best_code(algo, increasing):
    chip = FakeChip()
    p = SyntheticProblem(chip, increasing=increasing)
    r = solve(p, algo)
    assert r.success.all(), r.failed
    # the true response is within the tolerance plus three noise sigmas of the target
    assert np.abs(p.truth(r.codes) - 60).max() <= p.tolerance.max() + 3 * p.noise
    # and as good as the best achievable code up to that margin
    assert np.abs(p.truth(r.codes) - 60).max() <= np.abs(p.truth(p.best_codes()) - 60).max() + 3 * p.noise
    assert np.array_equal(chip.codes[:N], r.codes)  # the chip is left at the result
    assert r.measurements.shape == (N,) and (r.measurements == r.rounds + 1).all()
    assert r.rounds <= {"binary": 12, "noisy": 22, "model": 9, "linear": 6}[algo.describe().split("(")[0][:6]
                                                                             .replace("noisy_", "noisy")]


def test_model_based_needs_fewer_rounds_than_binary_search():
    rb = solve(SyntheticProblem(FakeChip()), BinarySearch())
    rm = solve(SyntheticProblem(FakeChip()), ModelBased())
    assert rm.rounds <= rb.rounds / 2
    assert rb.rounds == 11  # 10 bisection rounds for 1023 codes + 1 re-measurement


def test_algorithms_are_stateless_and_reproducible():
    algo = NoisyBinarySearch(seed=7)
    r1 = solve(SyntheticProblem(FakeChip(), seed=1), algo)
    r2 = solve(SyntheticProblem(FakeChip(), seed=1), algo)
    assert np.array_equal(r1.codes, r2.codes) and r1.rounds == r2.rounds
    assert algo == NoisyBinarySearch(seed=7)  # nothing stored on the algorithm


def test_fixed_code_sets_and_verifies():
    chip = FakeChip()
    r = solve(SyntheticProblem(chip), FixedCode(0))
    assert (r.codes == 0).all() and r.rounds == 1
    assert not r.success.any()  # code 0 is far from the target: failures are reported, not hidden
    assert r.failed == list(range(N))


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.describe())
def test_unreachable_target_fails_at_the_range_limit(algo):
    chip = FakeChip()
    p = SyntheticProblem(chip)
    target = np.full(N, 60.0)
    target[:5] = 1e4  # beyond the top of the range
    target[5:10] = -1e4  # below the bottom
    p._target = target
    r = solve(p, algo)
    assert (r.codes[:5] == 1022).all() and (r.codes[5:10] == 0).all()
    assert r.limited[:10].all() and not r.limited[10:].any()
    assert not r.success[:10].any() and r.success[10:].all()
    rec = r.record()
    assert rec["range_limited"] == list(range(10)) and set(range(10)) <= set(rec["failed"])
    assert rec["n_measured"] == N


def test_a_near_miss_at_the_range_limit_is_not_range_limited():
    chip = FakeChip()
    p = SyntheticProblem(chip, noise=0.0)
    p._target = p.truth(np.full(N, 1022)) + 0.2  # just beyond the top, inside the tolerance (0.3)
    r = solve(p, ModelBased(refinements=3))
    assert (r.codes == 1022).all() and not r.limited.any() and r.success.all()


# ---------------------------------------------------------------- real chip
def _problems(chip):
    t = Target()
    return [
        CadcRampOffsetProblem(chip, t, reads=8), CadcRampSlopeProblem(chip, t, reads=8),
        CadcChannelOffsetProblem(chip, t, reads=8, instances=np.arange(16)),
        LeakOffProblem(chip, repeats=48, instances=np.arange(16)),
        ResetProblem(chip, t, reads=8, instances=np.arange(0, 512, 32)),
        DriverTrimProblem(chip, repeats=2, instances=np.arange(0, 256, 16)),
        DriverRampProblem(chip, repeats=8), SynapseBiasProblem(chip, t, repeats=32),
        SynapticInputGainProblem(chip, +1, 0.002, repeats=32, instances=np.arange(16)),
        SynapticInputGainProblem(chip, -1, 0.002, repeats=32, instances=np.arange(16)),
    ]


PROBLEM_NAMES = [p.name for p in _problems(Chip(0, "ideal"))]


@pytest.mark.parametrize("algo", [BinarySearch(), NoisyBinarySearch(seed=1), ModelBased(), LinearPrediction()],
                         ids=lambda a: a.describe().split("(")[0])
@pytest.mark.parametrize("index", range(len(PROBLEM_NAMES)), ids=PROBLEM_NAMES)
def test_every_problem_with_every_algorithm(index, algo):
    chip = Chip(5, "default", noise_seed=11)
    chip.set_knob("i_bias_leak", 0)  # integrating neurons, as after the leak step
    p = _problems(chip)[index]
    r = solve(p, algo)
    n = p.n_instances
    for a in (r.codes, r.target, r.value, r.residual, r.before, r.success, r.measurements):
        assert a.shape == (n,)
    assert np.array_equal(chip.get_knob(p.knob)[p.instances], r.codes)
    assert r.success.mean() >= 0.85, (r.failed, r.residual)
    assert r.cost["hw_time_s"] > 0 and r.rounds >= 1
    rec = r.record()
    assert rec["n_instances"] == n and rec["n_failed"] == len(r.failed)
