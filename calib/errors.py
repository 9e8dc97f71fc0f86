"""Exceptions raised by the calibration package.

Every error a caller can provoke is a :class:`CalibError`. Those that describe
bad arguments or bad files are also :class:`ValueError`, so the command line
(and callers that expect the standard library's types) turn them into one-line
messages.

Hierarchy::

    CalibError
    ├── CalibValueError (ValueError)          bad Target / Options / arguments
    ├── FitDidNotConverge                     a fit or search failed outright
    ├── StageFailed                           a calibration stage failed as a whole
    └── ArtifactError (ValueError)            anything about a stored artifact
        ├── ArtifactCorrupt                   missing, truncated, tampered, malformed
        ├── ArtifactVersionError              unknown kind or schema version
        ├── IncompatibleArtifact              wrong chip, preset or conditions
        ├── CorrectionTableError              a table lacks a column or holds impossible values
        └── ArtifactExists (FileExistsError)  refusing to overwrite
"""


class CalibError(Exception):
    """Base class of every calibration error."""


class CalibValueError(CalibError, ValueError):
    """An argument, target or option is out of range or of the wrong type."""


class FitDidNotConverge(CalibError, RuntimeError):
    """A search or a scipy fit did not reach a usable result.

    The message names the instance (``neuron 17: ...``) and the cause.
    """


class StageFailed(CalibError, RuntimeError):
    """A calibration stage failed outright (not just some of its instances)."""


class ArtifactError(CalibError, ValueError):
    """Base class of errors about calibration artifacts."""


class ArtifactCorrupt(ArtifactError):
    """An artifact is missing files, truncated, tampered with or malformed."""


class ArtifactVersionError(ArtifactError):
    """An artifact has an unknown kind or schema version."""


class IncompatibleArtifact(ArtifactError):
    """An artifact does not belong to this chip, preset or operating conditions.

    Attributes
    ----------
    field : str
        The manifest field that differs (``chip_id``, ``preset.sha256``,
        ``conditions.temperature_c``, ...).

    The one class for every refusal: ``calib`` (``check``, ``apply_to``, ``verify``)
    and the inference engine (``bss2_calib.infer.IncompatibleArtifact`` is this class).
    """

    def __init__(self, message, field=""):
        super().__init__(message)
        self.field = field


class CorrectionTableError(ArtifactError):
    """A correction table lacks a column or an index level, or holds impossible values.

    Raised when the correction model (:class:`calib.model.CorrectionModel`) is built
    from tables or arrays; the inference engine raises the same class.
    """


class ArtifactExists(ArtifactError, FileExistsError):
    """The destination of a save already exists; artifacts are never overwritten."""
