"""Exceptions and warnings of the inference engine.

Every error a caller can provoke is an :class:`InferError`; those describing bad
arguments or unusable artifacts are also :class:`ValueError`, so callers (and the
CLI, which turns them into one-line messages) that expect the standard library's
type keep working.
"""


class InferError(Exception):
    """Base class of all inference-engine errors."""


class InferValueError(InferError, ValueError):
    """An input, weight or option is out of range, of the wrong shape, or not an integer."""


class CorrectionTableError(InferError, ValueError):
    """A calibration table lacks a column or an index level, or holds impossible values."""


class IncompatibleArtifact(InferError, ValueError):
    """A calibration artifact was made for another chip, preset or operating conditions.

    Attributes
    ----------
    field : str
        The first differing field, e.g. ``"chip_id"``, ``"preset.sha256"``,
        ``"conditions.wait_between_events"``.
    """

    def __init__(self, message, field=""):
        super().__init__(message)
        self.field = field


class ArtifactMismatchWarning(UserWarning):
    """An artifact is used outside the conditions it was made for (``allow_mismatch=True``)."""
