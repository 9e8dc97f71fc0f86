"""Exceptions and warnings of the inference engine.

The engine's own errors are :class:`InferError`; those describing bad arguments
are also :class:`ValueError`, so callers (and the CLI, which turns them into
one-line messages) that expect the standard library's type keep working.

:class:`IncompatibleArtifact` and :class:`CorrectionTableError` are calib's own
classes (one class each for the whole package), re-exported here.
"""
from bss2_calib.calib.errors import CorrectionTableError, IncompatibleArtifact

__all__ = ["ArtifactMismatchWarning", "CorrectionTableError", "IncompatibleArtifact", "InferError",
           "InferValueError"]


class InferError(Exception):
    """Base class of all inference-engine errors."""


class InferValueError(InferError, ValueError):
    """An input, weight or option is out of range, of the wrong shape, or not an integer."""


class ArtifactMismatchWarning(UserWarning):
    """An artifact is used outside the conditions it was made for (``allow_mismatch=True``)."""
