"""Shared test fixtures (keep this small: module-specific helpers belong in the test modules).

A full calibration costs seconds of CPU; the fast suite makes each kind of calibrated chip once per
session here and every module shares it. Shared objects are read-only: a test that programs the chip,
edits a result or writes into an artifact directory works on a copy (``copy.deepcopy``,
``shutil.copytree``).
"""
import numpy as np
import pytest

#: (chip id, preset, noise seed) of the shared calibrations: the chip ``bss2-calib run`` calibrates, a harsh
#: chip with every kind of fault (dead and noisy neurons, dead drivers, stuck synapses), and a perfect one
DEFAULT_CHIP = (0, "default", 0)
HARSH_CHIP = (0, "harsh", 1)
NOISELESS_CHIP = (1, "noiseless", 0)


@pytest.fixture
def rng():
    """A seeded numpy Generator, fresh for every test."""
    return np.random.default_rng(20240611)


def _calibrated(chip_id, preset, seed):
    from bss2_calib import calib
    from bss2_calib.chipsim import Chip

    chip = Chip(chip_id, preset, noise_seed=seed)
    return chip, calib.calibrate(chip)  # under the strict warning filter: a calibration warning fails the suite


@pytest.fixture(scope="session")
def calibrated_default():
    """(chip, CalibrationResult) of :data:`DEFAULT_CHIP`, calibrated once per session (the chip keeps its knobs)."""
    return _calibrated(*DEFAULT_CHIP)


@pytest.fixture(scope="session")
def calibrated_harsh():
    """(chip, CalibrationResult) of :data:`HARSH_CHIP`, calibrated once per session."""
    return _calibrated(*HARSH_CHIP)


@pytest.fixture(scope="session")
def calibrated_noiseless():
    """(chip, CalibrationResult) of :data:`NOISELESS_CHIP` (no mismatch, no noise), calibrated once per session."""
    return _calibrated(*NOISELESS_CHIP)


@pytest.fixture(scope="session")
def default_store(tmp_path_factory, calibrated_default):
    """An ArtifactStore (in a session temporary directory) holding the default calibration."""
    from bss2_calib import calib

    store = calib.ArtifactStore(tmp_path_factory.mktemp("default-store"))
    store.save(calibrated_default[1])
    return store


@pytest.fixture(scope="session")
def harsh_store(tmp_path_factory, calibrated_harsh):
    """An ArtifactStore (in a session temporary directory) holding the harsh calibration."""
    from bss2_calib import calib

    store = calib.ArtifactStore(tmp_path_factory.mktemp("harsh-store"))
    store.save(calibrated_harsh[1])
    return store
