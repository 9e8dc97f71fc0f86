"""``calib.verify``: a cheap check that an artifact still describes its chip."""
import numpy as np
import pytest

from bss2_calib.chipsim import Chip
from bss2_calib import calib
from bss2_calib.calib import IncompatibleArtifact


@pytest.fixture(scope="module")
def artifact(calibrated_default):
    return calibrated_default[1]  # calibrated once per session


def test_fresh_chip_is_valid_and_cheap(artifact):
    chip = Chip(artifact.chip_id, "default", noise_seed=9)
    rep = calib.verify(artifact, chip)
    assert rep.valid, rep
    assert rep.gain_deviation_rms < 0.5 * rep.gain_threshold
    assert rep.offset_deviation_rms_lsb < 0.5 * rep.offset_threshold_lsb
    assert abs(rep.global_gain_ratio - 1) < 0.005
    full = artifact.manifest["totals"]
    assert rep.vectors < 0.05 * full["vectors"] and rep.hw_time_s < 0.05 * full["hw_time_s"]


@pytest.mark.parametrize("hours", [100, 400])
def test_drift_is_caught(artifact, hours):
    chip = Chip(artifact.chip_id, "default", noise_seed=9)
    chip.advance(hours=hours)
    rep = calib.verify(artifact, chip)
    assert not rep.valid and rep.reason


def test_small_drift_stays_valid(artifact):
    chip = Chip(artifact.chip_id, "default", noise_seed=9)
    chip.advance(hours=1)
    assert calib.verify(artifact, chip).valid


def test_temperature_outside_the_conditions_is_stale(artifact):
    chip = Chip(artifact.chip_id, "default")
    chip.advance(temperature_c=33)
    rep = calib.verify(artifact, chip)
    assert not rep.valid and "conditions.temperature_c" in rep.reason


def test_a_foreign_chip_is_an_error_not_staleness(artifact):
    with pytest.raises(IncompatibleArtifact, match="chip_id"):
        calib.verify(artifact, Chip(5, "default"))


def test_verify_detects_a_temperature_shift_within_tolerance(artifact):
    """4 K is within the artifact's tolerance, and its gain change stays below the threshold."""
    chip = Chip(artifact.chip_id, "default", noise_seed=9)
    chip.advance(temperature_c=29)
    rep = calib.verify(artifact, chip)
    assert np.isfinite(rep.gain_deviation_rms)
