"""The outcome of a calibration: manifest + tables, saved and loaded as an artifact.

:class:`CalibrationResult` is what :func:`calib.calibrate` returns and what
:func:`calib.load` gives back; the two are indistinguishable (round trips are
exact). It is immutable: :meth:`save` and :meth:`apply_to` never modify it,
and :attr:`tables` hands out copies.
"""
import copy
from collections.abc import Mapping
from pathlib import Path

from .artifact import SEAL, read_artifact, write_artifact
from .compat import check
from .errors import CalibValueError
from .schema import SCHEMA_VERSION
from .tables import knob_codes


class _Tables(Mapping):
    """Read-only mapping of table name -> DataFrame (a copy per access)."""

    def __init__(self, frames):
        self._frames = dict(frames)

    def raw(self):
        """The frames themselves (no copies), for the result's own IO."""
        return self._frames

    def __getitem__(self, name):
        try:
            return self._frames[name].copy()
        except KeyError:
            raise KeyError(f"no table {name!r}; tables: {', '.join(sorted(self._frames))}") from None

    def __iter__(self):
        return iter(sorted(self._frames))

    def __len__(self):
        return len(self._frames)

    def __repr__(self):
        return f"<tables: {', '.join(sorted(self._frames))}>"


class CalibrationResult:
    """A chip's calibration: knob settings, correction tables and the manifest that describes them.

    Parameters
    ----------
    manifest : dict
        See docs/artifact-format.md.
    tables : dict of str to DataFrame
    path : path-like or None, default=None
        Where it is stored, if it is.

    Examples
    --------
    >>> from chipsim import Chip
    >>> import calib
    >>> res = calib.calibrate(Chip(3, "noiseless"), options=calib.Options(stages=("reset",)))
    >>> sorted(res.tables)[:2]
    ['knob_steps', 'knobs_driver']
    """

    def __init__(self, manifest, tables, path=None):
        self._manifest = copy.deepcopy(manifest)
        self._tables = _Tables(tables)
        self.path = None if path is None else Path(path)

    # ---------------------------------------------------------- accessors
    @property
    def manifest(self):
        """A copy of the manifest (dict)."""
        return copy.deepcopy(self._manifest)

    @property
    def tables(self):
        """Mapping of table name -> pandas DataFrame (copies)."""
        return self._tables

    @property
    def chip_id(self):
        return self._manifest["chip_id"]

    @property
    def preset(self):
        """``{"name": ..., "sha256": ...}`` of the chip population."""
        return dict(self._manifest["preset"])

    @property
    def conditions(self):
        """Operating conditions the artifact is valid for (dict)."""
        return dict(self._manifest["conditions"])

    @property
    def steps(self):
        """The steps run, in order, each a dict (see :meth:`KnobResult.record`)."""
        return copy.deepcopy(self._manifest["steps"])

    @property
    def failed_stages(self):
        """Names of stages that failed outright (list of str)."""
        return list(self._manifest.get("failed_stages", []))

    @property
    def manifest_sealed(self):
        """Whether the stored manifest is protected by its own checksum (``manifest_sha256``).

        True: saved, or loaded with a schema version >= 2 (the seal was
        verified); False: loaded from a schema-version-1 artifact, whose
        tables are checksummed but whose manifest (chip id, conditions,
        target, quality, ...) is not; None: not saved.
        """
        if self.path is None:
            return None
        return self._manifest.get("schema_version", 2) >= 2

    @property
    def ok(self):
        """True if no stage failed outright."""
        return not self.failed_stages

    def knob_codes(self):
        """Knob codes to apply, dict of knob name -> int64 array."""
        return knob_codes(self._tables.raw())

    def __repr__(self):
        where = f", path={str(self.path)!r}" if self.path else ""
        return (f"CalibrationResult(chip_id={self.chip_id}, preset={self.preset['name']!r}, "
                f"tables={len(self._tables)}{where})")

    # ------------------------------------------------------------------ IO
    def save(self, path):
        """Write the artifact directory ``path`` atomically (it must not exist).

        Returns
        -------
        CalibrationResult
            The same calibration, with ``path`` set.
        """
        dest = write_artifact(path, self._manifest_core(), self._tables.raw())
        return CalibrationResult.load(dest) if self._manifest.get("schema_version") != SCHEMA_VERSION else \
            CalibrationResult(self._manifest, self._tables.raw(), dest)

    def _manifest_core(self):
        # what the writer adds itself; a loaded version-1 calibration is saved as the current version
        # (its manifest sealed as it was loaded)
        m = dict(self._manifest)
        for k in ("tables", "files", SEAL, "schema_version"):
            m.pop(k, None)
        return m

    @classmethod
    def load(cls, path):
        """Load and verify the artifact directory at ``path``."""
        manifest, tables = read_artifact(path)
        return cls(manifest, tables, path)

    # --------------------------------------------------------------- apply
    def check(self, chip=None, *, num_sends=None, wait_between_events=None, temperature_c=None):
        """Raise :class:`IncompatibleArtifact` unless the artifact fits the chip and conditions.

        The one compatibility check of artifacts (:func:`calib.compat.mismatches`), shared with the
        correction model and the inference engine.

        Parameters
        ----------
        chip : chipsim.Chip or None
            Checked for chip id, preset hash and temperature.
        num_sends : int or None
            Must lie in the verified range ``num_sends_min..num_sends_max``.
        wait_between_events : int or None
            Must equal the calibration's spacing.
        temperature_c : float or None
            Overrides the chip's temperature sensor.
        """
        m = self._manifest
        check(m["chip_id"], m["preset"], m["conditions"], chip, num_sends=num_sends,
              wait_between_events=wait_between_events, temperature_c=temperature_c)

    def apply_to(self, chip, *, num_sends=None, wait_between_events=None):
        """Write the artifact's knob codes into ``chip`` (one reconfiguration), after :meth:`check`.

        Raises
        ------
        IncompatibleArtifact
            Wrong chip id, preset or conditions; the message names the field.
        """
        self.check(chip, num_sends=num_sends, wait_between_events=wait_between_events)
        codes = self.knob_codes()
        try:
            chip.set_knobs(codes)
        except ValueError as err:
            raise CalibValueError(f"cannot apply the artifact's knob codes: {err}") from None

    # ------------------------------------------------------------- summary
    def summary(self):
        """JSON-ready summary: identity, conditions, per-step figures, totals, quality."""
        m = self._manifest
        steps = m["steps"]
        return {
            "artifact": None if self.path is None else str(self.path),
            "chip_id": m["chip_id"], "preset": m["preset"]["name"], "created_utc": m.get("created_utc"),
            "ok": self.ok, "failed_stages": self.failed_stages, "conditions": dict(m["conditions"]),
            "schema_version": m.get("schema_version"), "manifest_sealed": self.manifest_sealed,
            "steps": [{k: s.get(k) for k in ("name", "kind", "algorithm", "quantity", "unit", "spread_before",
                                             "spread_after", "n_instances", "n_failed", "failed", "measurements",
                                             "rounds", "vectors", "wall_time_s", "hw_time_s", "error")
                       if k in s} for s in steps],
            "totals": dict(m.get("totals", {})), "quality": copy.deepcopy(m.get("quality", {})),
            "tables": sorted(self._tables),
        }


def load(path):
    """Load and verify a calibration artifact directory.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    CalibrationResult

    Raises
    ------
    ArtifactCorrupt
        Missing, truncated, tampered or malformed files; files outside the directory.
    ArtifactVersionError
        Unknown kind or schema version.
    """
    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise CalibValueError(f"path must be a path, got {type(path).__name__}")
    return CalibrationResult.load(path)


