"""Saving and loading characterization artifacts (manifest.json + Parquet, sha256, atomic).

The same rules and the same code as calibration artifacts
(:func:`calib.artifact.write_artifact` / :func:`calib.artifact.read_artifact`,
docs/artifact-format.md), with kind ``bss2-calib/characterization`` and the
table schema of :mod:`calib.characterize.tables` (:data:`CHARACTERIZATION`):
a directory holding ``manifest.json`` and one Parquet file per table (index
levels stored as plain columns); every table is always present.
"""
from ..artifact import ArtifactSchema, read_artifact, write_artifact
from ..errors import ArtifactCorrupt
from .result import KIND, SCHEMA_VERSION, Characterization
from .tables import SCHEMA, TABLES, conform

MAX_MANIFEST_BYTES = 4 << 20
MAX_ROWS = 1 << 21


def _index(name):
    return ("state", *SCHEMA[name][0])


def _conform(name, df):
    try:
        return conform(name, df)
    except (ValueError, TypeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ArtifactCorrupt(f"table {name} does not match its schema ({type(err).__name__}: {first})") from None


#: The characterization artifact: every table of :data:`calib.characterize.tables.TABLES` is required.
CHARACTERIZATION = ArtifactSchema(kind=KIND, version=SCHEMA_VERSION, what="a characterization", tables=TABLES,
                                  required=TABLES, index=_index, conform=_conform,
                                  max_manifest_bytes=MAX_MANIFEST_BYTES, max_rows=MAX_ROWS)


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
