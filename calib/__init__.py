"""Calibration of BrainScaleS-2 chips in VMM mode: knobs, correction tables, artifacts.

Quick start::

    from bss2_calib.chipsim import Chip
    from bss2_calib import calib

    chip = Chip(0)
    result = calib.calibrate(chip)                   # tier 1 knobs + tier 2 tables
    result = calib.ArtifactStore().save(result)      # or result.save("some/dir")
    again = calib.load(result.path)                  # verified, exact round trip
    again.apply_to(Chip(0))                          # refuses another chip / preset / conditions
    again.tables["neuron_correction"]                # tidy pandas tables

Only the chip's observable interface is used (never ``chip.truth``).

Importing the package loads only the artifact side (configuration, errors,
schema, :func:`load`, :class:`CalibrationResult`, :class:`ArtifactStore`);
the fitting code (and scipy) is imported on first use of :func:`calibrate`,
:func:`verify`, the algorithms or the problems.
"""
import importlib

from .config import (ALGORITHMS, KNOB_STAGES, STAGES, TABLE_STAGES, CalibWarning, ConditionOptions, KnobOptions,
                     Options, TableOptions, Target)
from .errors import (ArtifactCorrupt, ArtifactError, ArtifactExists, ArtifactVersionError, CalibError,
                     CalibValueError, FitDidNotConverge, IncompatibleArtifact, StageFailed)
from .explain import failure_notes
from .result import CalibrationResult, load
from .schema import SCHEMA_VERSION, TABLES
from .store import ArtifactStore, default_root

_LAZY = {
    "calibrate": "pipeline", "verify": "verify", "VerifyReport": "verify", "CorrectionModel": "model",
    "KnobProblem": "problem", "KnobResult": "problem", "TableStep": "problem", "Measurement": "problem",
    "solve": "problem", "BinarySearch": "algorithms", "NoisyBinarySearch": "algorithms",
    "ModelBased": "algorithms", "LinearPrediction": "algorithms", "FixedCode": "algorithms",
    "RetryPolicy": "link", "ChipUnreachable": "link",
}


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'calib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "calibrate", "load", "verify", "failure_notes", "CalibrationResult", "ArtifactStore", "default_root", "CorrectionModel",
    "VerifyReport", "Target", "Options", "KnobOptions", "TableOptions", "ConditionOptions", "CalibWarning",
    "STAGES", "KNOB_STAGES", "TABLE_STAGES", "ALGORITHMS", "SCHEMA_VERSION", "TABLES",
    "KnobProblem", "KnobResult", "TableStep", "Measurement", "solve",
    "BinarySearch", "NoisyBinarySearch", "ModelBased", "LinearPrediction", "FixedCode",
    "CalibError", "CalibValueError", "FitDidNotConverge", "StageFailed", "ArtifactError", "ArtifactCorrupt",
    "ArtifactVersionError", "IncompatibleArtifact", "ArtifactExists", "RetryPolicy", "ChipUnreachable",
]
