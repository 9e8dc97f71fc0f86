"""Saving and loading characterization artifacts (manifest.json + Parquet, sha256, atomic).

The same discipline as calibration artifacts (:mod:`calib.artifact`,
docs/artifact-format.md), with kind ``bss2-calib/characterization`` and the
table schema of :mod:`calib.characterize.tables`: a directory holding
``manifest.json`` and one Parquet file per table (index levels stored as plain
columns, written by :func:`calib.artifact.table_bytes`); the manifest lists
every file with its size and SHA-256. A save writes a temporary sibling
directory, fsyncs it and renames it into place, never over an existing one. A
load checks kind and schema version (one branch per version), that every file
is a regular file named plainly inside the directory, sizes against limits and
the manifest, checksums, and each table's index, columns and dtypes; Parquet
is parsed from the verified bytes with pandas metadata ignored.
"""
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..artifact import jsonable, table_bytes
from ..errors import ArtifactCorrupt, ArtifactExists, ArtifactVersionError
from .result import KIND, SCHEMA_VERSION, Characterization
from .tables import SCHEMA, TABLES, conform

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 4 << 20
MAX_FILE_BYTES = 256 << 20
MAX_TOTAL_BYTES = 1 << 30
MAX_ROWS = 1 << 21
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}\.parquet$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _fsync(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    dest = Path(path)
    if dest.exists() or dest.is_symlink():
        raise ArtifactExists(f"{dest} already exists; artifacts are never overwritten")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
    try:
        files = {}
        for name in TABLES:
            data = table_bytes(conform(name, char.tables[name]))
            fname = f"{name}.parquet"
            with open(tmp / fname, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            files[fname] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        manifest = {k: v for k, v in char.manifest.items() if k not in ("tables", "files")}
        text = json.dumps(jsonable({**manifest, "tables": list(TABLES), "files": files}), indent=1,
                          allow_nan=False)
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o755)
        _fsync(tmp, directory=True)
        try:
            os.rename(tmp, dest)
        except OSError:
            if dest.exists():
                raise ArtifactExists(f"{dest} already exists; artifacts are never overwritten") from None
            raise
        _fsync(dest.parent, directory=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _regular_file(path, what, limit):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ArtifactCorrupt(f"{what} is missing: {path}") from None
    except OSError as err:
        raise ArtifactCorrupt(f"cannot read {what} {path}: {err.strerror}") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise ArtifactCorrupt(f"{what} {path} is not a regular file (artifacts hold regular files only)")
    if st.st_size > limit:
        raise ArtifactCorrupt(f"{what} {path} is {st.st_size} bytes, more than the limit of {limit}")
    return st.st_size


def read_manifest(path):
    """The manifest of the characterization at ``path`` (kind and version checked, not the tables)."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactCorrupt(f"no artifact directory at {root}")
    _regular_file(root / MANIFEST, "manifest", MAX_MANIFEST_BYTES)
    try:
        with open(root / MANIFEST, "rb") as f:
            m = json.loads(f.read(MAX_MANIFEST_BYTES + 1).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ArtifactCorrupt(f"manifest of {root} is not valid JSON ({type(err).__name__})") from None
    except OSError as err:
        raise ArtifactCorrupt(f"cannot read the manifest of {root}: {err.strerror}") from None
    if not isinstance(m, dict):
        raise ArtifactCorrupt(f"manifest of {root} is not a JSON object")
    if m.get("kind") != KIND:
        raise ArtifactVersionError(f"{root} is not a characterization (kind {m.get('kind')!r}, expected {KIND!r})")
    v = m.get("schema_version")
    if isinstance(v, bool) or not isinstance(v, int):
        raise ArtifactVersionError(f"{root}: schema_version {v!r} is not an integer")
    if v != SCHEMA_VERSION:
        raise ArtifactVersionError(f"{root}: characterization schema version {v} is not supported (this package "
                                   f"reads {SCHEMA_VERSION})")
    return m


def _no_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


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
    root = Path(path)
    m = read_manifest(root)
    if m["schema_version"] == 1:
        tables = _read_v1(root, m)
    else:  # pragma: no cover - read_manifest admits only known versions
        raise ArtifactVersionError(f"{root}: schema version {m['schema_version']} is not supported")
    return Characterization(tables=tables, manifest=m)


def _read_v1(root, m):
    files = m.get("files")
    if not isinstance(files, dict):
        raise ArtifactCorrupt(f"{root}: manifest field files is missing or malformed")
    for fname, meta in files.items():
        if not isinstance(fname, str) or not _NAME.match(fname) or fname != os.path.basename(fname):
            raise ArtifactCorrupt(f"{root}: manifest names a file outside the artifact directory: {fname!r}")
        if not (isinstance(meta, dict) and isinstance(meta.get("sha256"), str) and _HEX64.match(meta["sha256"])
                and isinstance(meta.get("bytes"), int) and not isinstance(meta["bytes"], bool)
                and 0 <= meta["bytes"] <= MAX_FILE_BYTES):
            raise ArtifactCorrupt(f"{root}: manifest field files[{fname!r}] is malformed")
    if set(files) != {f"{n}.parquet" for n in TABLES}:
        raise ArtifactCorrupt(f"{root}: manifest lists files {sorted(files)}, expected one per table of "
                              f"{', '.join(TABLES)}")
    total = 0
    tables = {}
    for name in TABLES:
        fname = f"{name}.parquet"
        meta = files[fname]
        size = _regular_file(root / fname, f"table file {fname}", MAX_FILE_BYTES)
        if size != meta["bytes"]:
            raise ArtifactCorrupt(f"{root}: {fname} is {size} bytes, the manifest says {meta['bytes']} "
                                  "(truncated or modified)")
        total += size
        if total > MAX_TOTAL_BYTES:
            raise ArtifactCorrupt(f"{root}: tables exceed the total size limit of {MAX_TOTAL_BYTES} bytes")
        try:
            with open(root / fname, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise ArtifactCorrupt(f"cannot read {root / fname}: {err.strerror}") from None
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise ArtifactCorrupt(f"{root}: checksum mismatch in {fname} (corrupt or tampered)")
        tables[name] = _parse(root, name, data)
    return tables


def _parse(root, name, data):
    index, cols = SCHEMA[name]
    try:
        t = pq.read_table(pa.BufferReader(data))
        if t.num_rows > MAX_ROWS or t.num_columns > 64:
            raise ArtifactCorrupt(f"{root}: table {name} has an absurd size")
        df = t.to_pandas(ignore_metadata=True).set_index(["state", *index])
        return conform(name, df)
    except ArtifactCorrupt:
        raise
    except Exception as err:  # pyarrow / pandas errors of any kind: the file is not what the schema says
        raise ArtifactCorrupt(f"{root}: table {name} does not match its schema ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None
