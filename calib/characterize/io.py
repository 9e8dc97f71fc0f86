"""Saving and loading characterization artifacts (manifest.json + Parquet, sha256, atomic).

The same rules and the same code as calibration artifacts
(:func:`calib.artifact.write_artifact` / :func:`calib.artifact.read_artifact`,
docs/artifact-format.md), with kind ``bss2-calib/characterization`` and the
table schema of :data:`calib.schema.CHARACTERIZATION_SCHEMA`
(:data:`calib.artifact.CHARACTERIZATION`):
a directory holding ``manifest.json`` and one Parquet file per table (index
levels stored as plain columns); every table is always present.
"""
from ..artifact import CHARACTERIZATION, read_artifact, write_artifact
from .result import Characterization


def save(char, path):
    """Write ``char`` as an artifact directory at ``path``, atomically.

    Parameters
    ----------
    char : Characterization
    path : path-like
        The directory to create; it must not exist.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ArtifactExists
        ``path`` exists (or appeared while writing); nothing is overwritten.
    """
    return write_artifact(path, char.manifest, char.tables, kind=CHARACTERIZATION)


def load(path):
    """Load and verify a characterization artifact.

    Returns
    -------
    Characterization

    Raises
    ------
    ArtifactCorrupt
        Missing, truncated, tampered or malformed files; files outside the directory.
    ArtifactVersionError
        Another kind, or an unknown schema version.
    """
    manifest, tables = read_artifact(path, kind=CHARACTERIZATION)
    return Characterization(tables=tables, manifest=manifest)
