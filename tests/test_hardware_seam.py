"""The observable-interface Protocol and a backend that is not the simulator (chipsim.flaky)."""
import numpy as np
import pytest

from bss2_calib import calib
from bss2_calib.chipsim import Chip
from bss2_calib.chipsim.errors import PermanentLinkError, TransientLinkError
from bss2_calib.chipsim.flaky import FlakyChip
from bss2_calib.chipsim.interface import ObservableChip
from bss2_calib.infer import Engine

KNOBS = calib.Options(stages="knobs")


def test_protocol_is_met_by_the_simulator_and_the_wrappers_only():
    chip = Chip(0, "noiseless")
    flaky = FlakyChip(chip)
    assert isinstance(chip, ObservableChip) and isinstance(flaky, ObservableChip)
    assert not isinstance(flaky, Chip)  # a backend of its own, not a subclass
    assert not isinstance(object(), ObservableChip)
    with pytest.raises(calib.CalibValueError, match="observable interface.*no 'chip_id'"):
        calib.calibrate(object())


def test_flaky_link_costs_latency_and_fails_at_its_rate():
    inner = Chip(0, "noiseless")
    flaky = FlakyChip(inner, transient_rate=0.1, latency_s=1e-3, seed=4)
    fails = 0
    for _ in range(400):
        try:
            flaky.read_baseline(n=1)
        except TransientLinkError:
            fails += 1
    assert fails == flaky.failures
    assert 0.1 * 400 - 4 * np.sqrt(400 * 0.09) < fails < 0.1 * 400 + 4 * np.sqrt(400 * 0.09)  # binomial, 4 sd
    assert flaky.hw_time_s == pytest.approx(inner.hw_time_s + 400 * 1e-3)


def _residual_rms(result):
    steps = result.tables["knob_steps"]
    return steps.groupby(level="step")["residual"].apply(lambda r: float(np.sqrt(np.nanmean(r ** 2))))


def test_calibration_through_a_noiseless_flaky_link_gives_the_same_tables():
    """Without noise every operation is deterministic: the retries must not change a single code."""
    plain = calib.calibrate(Chip(3, "noiseless", noise_seed=0), options=KNOBS)
    flaky = calib.calibrate(FlakyChip(Chip(3, "noiseless", noise_seed=0), transient_rate=0.05, seed=1),
                            options=KNOBS)
    assert flaky.manifest["totals"]["link_retries"] > 0
    for name in ("knobs_quadrant", "knobs_driver", "knobs_neuron"):
        assert flaky.tables[name].equals(plain.tables[name]), name
    # the link's latency and the simulated backoff are hardware time
    assert flaky.manifest["totals"]["hw_time_s"] > plain.manifest["totals"]["hw_time_s"]


def test_calibration_through_a_flaky_link_is_as_good_as_without_within_noise():
    opts = calib.Options(stages="cadc,leak,reset")  # the CADC and neuron knob steps: cheap, noise-limited
    a = calib.calibrate(Chip(5, "default", noise_seed=0), options=opts)
    b = calib.calibrate(Chip(5, "default", noise_seed=1), options=opts)
    f = calib.calibrate(FlakyChip(Chip(5, "default", noise_seed=0), transient_rate=0.05, seed=2), options=opts)
    assert f.manifest["totals"]["link_retries"] >= 1
    ra, rb, rf = _residual_rms(a), _residual_rms(b), _residual_rms(f)
    # each step's residual is set by the measurement noise: two noise seeds bound its spread
    assert (rf <= 1.5 * np.maximum(ra, rb)).all(), (rf / np.maximum(ra, rb)).to_dict()
    assert abs(int(f.tables["knobs_neuron"]["success"].sum()) - int(a.tables["knobs_neuron"]["success"].sum())) <= 2


def test_a_permanent_link_failure_ends_the_calibration_with_a_clear_message():
    chip = FlakyChip(Chip(2, "noiseless"), transient_rate=0.0, dead_after=10)
    with pytest.raises(calib.ChipUnreachable, match=r"chip 2: .*link down.*calibration aborted"):
        calib.calibrate(chip, options=KNOBS)
    assert isinstance(calib.ChipUnreachable("x"), PermanentLinkError)


def test_retries_are_bounded():
    chip = FlakyChip(Chip(2, "noiseless"), transient_rate=0.5, seed=0)
    with pytest.raises(calib.ChipUnreachable, match=r"failed on all 2 attempts"):
        calib.calibrate(chip, options=KNOBS, retry=calib.RetryPolicy(attempts=2))
    with pytest.raises(calib.CalibValueError, match="attempts"):
        calib.RetryPolicy(attempts=0)


def test_the_engine_runs_on_a_backend_that_is_not_the_simulator():
    x = np.random.default_rng(0).integers(0, 32, size=(4, 200))
    w = np.random.default_rng(1).integers(-20, 21, size=(200, 30))
    ref = Engine(Chip(0, "noiseless")).matmul(x, w)
    chip = FlakyChip(Chip(0, "noiseless"), transient_rate=0.0, latency_s=1e-3)
    engine = Engine(chip)
    np.testing.assert_array_equal(engine.matmul(x, w), ref)
    assert chip.operations > 0 and chip.hw_time_s > chip._chip.hw_time_s


def test_verify_retries_transient_failures_too():
    from pathlib import Path

    art = calib.load(Path(__file__).parent / "data" / "artifacts" / "v2-noiseless-chip0")
    plain = calib.verify(art, Chip(0, "noiseless", noise_seed=0))
    flaky = calib.verify(art, FlakyChip(Chip(0, "noiseless", noise_seed=0), transient_rate=0.2, seed=3))
    assert plain.valid and flaky.valid
    for field in ("gain_deviation_rms", "offset_deviation_rms_lsb", "global_gain_ratio"):  # noiseless: exact
        assert getattr(flaky, field) == getattr(plain, field), field
    assert flaky.vectors > plain.vectors  # runs whose reply was lost were sent again: spent, and counted
