"""Reading and writing artifact directories: ``manifest.json`` plus Parquet tables.

One set of rules for every kind of artifact this package writes (calibrations,
characterizations); what differs between kinds (the ``kind`` string, the schema
version, the table names, index levels and dtypes, kind-specific manifest
fields) is an :class:`ArtifactSchema`, chosen by the ``kind`` argument.

Writing is atomic: everything goes into a temporary sibling directory, is
fsynced, and the directory is renamed into place; an existing destination is
never overwritten. Reading trusts nothing: the kind and schema version are
checked first (one explicit branch per version), then the manifest's own seal
(``manifest_sha256``, the SHA-256 of its canonical JSON without that field; for
kinds and versions that have one), every file name must be a plain name inside
the directory (no separators, no symlinks), every size and SHA-256 must match
the manifest, sizes are limited, and every table must have its schema's index,
columns and dtypes. Parquet is parsed from the verified
bytes with pandas metadata ignored: loading never executes anything.
"""
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ArtifactCorrupt, ArtifactError, ArtifactExists, ArtifactVersionError, CalibValueError
from .schema import (CHARACTERIZATION_KIND, CHARACTERIZATION_MAX_MANIFEST_BYTES, CHARACTERIZATION_MAX_ROWS,
                     CHARACTERIZATION_SCHEMA, CHARACTERIZATION_TABLES, CHARACTERIZATION_VERSION, KIND, MAX_ROWS,
                     READABLE_VERSIONS, REQUIRED, SCHEMA_VERSION, TABLES, check_frame, conform_characterization)

MANIFEST = "manifest.json"
SEAL = "manifest_sha256"  #: the manifest field holding the manifest's own checksum
MAX_MANIFEST_BYTES = 8 << 20
MAX_FILE_BYTES = 256 << 20
MAX_TOTAL_BYTES = 1 << 30
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}\.parquet$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ArtifactSchema:
    """What distinguishes one kind of artifact; the file rules are the same for all.

    Attributes
    ----------
    kind : str
        The manifest's ``kind``.
    version : int
        The schema version written.
    what : str
        How messages name it ("a calibration artifact").
    tables : tuple of str
        Every table name the kind knows (files are written in sorted order).
    required : tuple of str
        Tables every artifact of the kind has.
    index : callable
        ``index(name) -> tuple of str``: index levels of a table (stored as
        plain columns in the file).
    conform : callable
        ``conform(name, df) -> DataFrame``: the table checked against its
        schema (dtypes restored); raises :class:`ArtifactCorrupt` (or
        ``ValueError``) if it does not fit.
    check_manifest : callable or None, default=None
        ``check_manifest(root, manifest)``: kind-specific manifest fields;
        raises :class:`ArtifactCorrupt`.
    max_manifest_bytes : int or None, default=None
        None: :data:`MAX_MANIFEST_BYTES`.
    max_rows : int, default=2**20
        Rows per table.
    readable : tuple of int or None, default=None
        Schema versions read (each needs its branch in :func:`read_artifact`);
        None: ``(version,)``.
    sealed_since : int or None, default=None
        The first schema version whose manifests carry :data:`SEAL`; None:
        the kind's manifests are not sealed.
    """

    kind: str
    version: int
    what: str
    tables: tuple
    required: tuple
    index: object
    conform: object
    check_manifest: object = None
    max_manifest_bytes: int = None
    max_rows: int = MAX_ROWS
    readable: tuple = None
    sealed_since: int = None

    @property
    def versions(self):
        """Schema versions this package reads (tuple of int)."""
        return self.readable or (self.version,)

    def sealed(self, version):
        """True if manifests of schema ``version`` carry :data:`SEAL`."""
        return self.sealed_since is not None and version >= self.sealed_since


def _conform_calibration(name, df):
    check_frame(name, df)
    return df


def _calibration_index(name):
    return TABLES[name].index


# ------------------------------------------------------------------ writing
def jsonable(obj):
    """``obj`` with numpy scalars/arrays as Python values and non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def manifest_digest(manifest):
    """SHA-256 (hex) of ``manifest``'s canonical JSON, its :data:`SEAL` field left out.

    Canonical: keys sorted, no whitespace, UTF-8, no NaN; the value a manifest
    file parses to hashes the same whatever its formatting.
    """
    body = {k: v for k, v in manifest.items() if k != SEAL}
    text = json.dumps(jsonable(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fsync(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def table_bytes(df):
    """Parquet bytes of a table (index levels stored as plain columns)."""
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df.reset_index(), preserve_index=False), buf)
    return buf.getvalue()


def write_artifact(dest, manifest, tables, *, kind=KIND):
    """Write an artifact directory atomically.

    Parameters
    ----------
    dest : path-like
        The artifact directory to create; must not exist.
    manifest : dict
        Everything but ``tables``, ``files`` and ``manifest_sha256`` (added
        here; a value present is replaced); ``kind`` and ``schema_version``
        are set from the schema (a different value in ``manifest`` is
        refused).
    tables : dict of str to DataFrame
        Checked against the kind's table schema.
    kind : str or ArtifactSchema, default="bss2-calib/calibration"
        The kind of artifact (see :func:`artifact_schema`).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    ArtifactExists
        ``dest`` exists (or appeared while writing); nothing was overwritten.
    ArtifactCorrupt
        A table that does not fit the schema (nothing is written).
    """
    schema = artifact_schema(kind)
    for key, want in (("kind", schema.kind), ("schema_version", schema.version)):
        if key in manifest and manifest[key] != want:
            raise CalibValueError(f"manifest {key} {manifest[key]!r} does not match the schema's {want!r}")
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        raise ArtifactExists(f"{dest} already exists; artifacts are never overwritten")
    unknown = [n for n in tables if n not in schema.tables]
    if unknown:
        raise ArtifactCorrupt(f"unknown table {unknown[0]!r} for {schema.what}")
    missing = [n for n in schema.required if n not in tables]
    if missing:
        raise ArtifactCorrupt(f"required table {missing[0]!r} of {schema.what} missing")
    names = sorted(tables)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
    except OSError as err:
        raise ArtifactError(f"cannot write an artifact into {dest.parent}: {err.strerror or err}") from None
    try:
        files = {}
        for name in names:
            data = table_bytes(schema.conform(name, tables[name]))
            fname = f"{name}.parquet"
            with open(tmp / fname, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            files[fname] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        body = {k: v for k, v in manifest.items() if k not in ("schema_version", "kind", "tables", "files", SEAL)}
        full = jsonable({"schema_version": schema.version, "kind": schema.kind, **body, "tables": names,
                         "files": files})
        if schema.sealed(schema.version):
            full[SEAL] = manifest_digest(full)
        text = json.dumps(full, indent=2, sort_keys=False, allow_nan=False)
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o755)
        _fsync(tmp, directory=True)
        try:
            os.rename(tmp, dest)
        except OSError as err:
            if dest.exists():
                raise ArtifactExists(f"{dest} already exists; artifacts are never overwritten") from None
            raise err
        _fsync(dest.parent, directory=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# ------------------------------------------------------------------ reading
def _regular_file(path, what, limit):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ArtifactCorrupt(f"{what} is missing: {path}") from None
    except OSError as err:
        raise ArtifactCorrupt(f"cannot read {what} {path}: {err.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ArtifactCorrupt(f"{what} {path} is a symbolic link; artifacts hold regular files only")
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactCorrupt(f"{what} {path} is not a regular file")
    if st.st_size > limit:
        raise ArtifactCorrupt(f"{what} {path} is {st.st_size} bytes, more than the limit of {limit}")
    return st.st_size


def read_manifest(path, *, kind=KIND):
    """The parsed manifest of the artifact at ``path`` (kind, version and seal checked, not the tables).

    Parameters
    ----------
    path : path-like
    kind : str, ArtifactSchema or None, default="bss2-calib/calibration"
        The kind expected; None accepts any kind :func:`artifact_schema` knows.

    Raises
    ------
    ArtifactCorrupt, ArtifactVersionError
    """
    root = Path(path)
    if not root.exists():
        raise ArtifactCorrupt(f"no artifact at {root}")
    if not root.is_dir():
        raise ArtifactCorrupt(f"{root} is not an artifact directory")
    schema = None if kind is None else artifact_schema(kind)
    limit = MAX_MANIFEST_BYTES if schema is None or schema.max_manifest_bytes is None else schema.max_manifest_bytes
    mpath = root / MANIFEST
    _regular_file(mpath, "manifest", limit)
    try:
        with open(mpath, "rb") as f:
            raw = f.read(limit + 1)
        m = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ArtifactCorrupt(f"manifest of {root} is not valid JSON ({type(err).__name__})") from None
    except OSError as err:
        raise ArtifactCorrupt(f"cannot read manifest of {root}: {err.strerror}") from None
    if not isinstance(m, dict):
        raise ArtifactCorrupt(f"manifest of {root} is not a JSON object")
    if schema is None:
        found = m.get("kind")
        if not isinstance(found, str) or found not in _KINDS:
            raise ArtifactVersionError(f"{root} is not an artifact of this package (kind {found!r})")
        schema = artifact_schema(found)
    if m.get("kind") != schema.kind:
        raise ArtifactVersionError(f"{root} is not {schema.what} (kind {m.get('kind')!r}, expected {schema.kind!r})")
    v = m.get("schema_version")
    if isinstance(v, bool) or not isinstance(v, int):
        raise ArtifactVersionError(f"{root}: schema_version {v!r} is not an integer")
    if v not in schema.versions:
        known = ", ".join(str(x) for x in schema.versions)
        raise ArtifactVersionError(f"{root}: schema version {v} is not supported (this package reads versions "
                                   f"{known} of {schema.what})")
    if schema.sealed(v):
        seal = m.get(SEAL)
        _need(root, isinstance(seal, str) and _HEX64.match(seal), SEAL)
        try:
            digest = manifest_digest(m)
        except (ValueError, TypeError, RecursionError):
            raise ArtifactCorrupt(f"manifest of {root} cannot be canonicalised") from None
        if digest != seal:
            raise ArtifactCorrupt(f"{root}: checksum mismatch in {MANIFEST} (corrupt or tampered)")
    elif SEAL in m:
        # no writer of this version sealed its manifests: a sealed manifest relabelled to an older version
        raise ArtifactCorrupt(f"{root}: a schema version {v} manifest carries {SEAL} (relabelled; tampered)")
    return m


def _no_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def read_artifact(path, *, kind=KIND):
    """Load and verify the artifact at ``path``.

    Parameters
    ----------
    path : path-like
    kind : str, ArtifactSchema or None, default="bss2-calib/calibration"
        The kind expected; None accepts any kind :func:`artifact_schema` knows.

    Returns
    -------
    manifest : dict
    tables : dict of str to DataFrame

    Raises
    ------
    ArtifactCorrupt, ArtifactVersionError
    """
    root = Path(path)
    m = read_manifest(root, kind=kind)
    schema = artifact_schema(m["kind"])
    version = m["schema_version"]
    if version == 1:
        # version 1: the manifest has no seal (its tables are still checked); nothing added later may appear
        return m, _read_tables(root, m, schema, newer_columns_allowed=False)
    if version == 2:
        # version 2: the manifest's seal was verified by read_manifest; the tables as in version 1
        return m, _read_tables(root, m, schema, newer_columns_allowed=True)
    raise ArtifactVersionError(f"{root}: schema version {version} is not supported")  # pragma: no cover


def _read_tables(root, m, schema, newer_columns_allowed):
    _check_files_v1(root, m, schema)
    if schema.check_manifest is not None:
        schema.check_manifest(root, m)
    total = 0
    tables = {}
    for name in m["tables"]:
        fname = f"{name}.parquet"
        meta = m["files"][fname]
        fpath = root / fname
        size = _regular_file(fpath, f"table file {fname}", MAX_FILE_BYTES)
        if size != meta["bytes"]:
            raise ArtifactCorrupt(f"{root}: {fname} is {size} bytes, the manifest says {meta['bytes']} "
                                  f"(truncated or modified)")
        total += size
        if total > MAX_TOTAL_BYTES:
            raise ArtifactCorrupt(f"{root}: tables exceed the total size limit of {MAX_TOTAL_BYTES} bytes")
        try:
            with open(fpath, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise ArtifactCorrupt(f"cannot read {fpath}: {err.strerror}") from None
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise ArtifactCorrupt(f"{root}: checksum mismatch in {fname} (corrupt or tampered)")
        tables[name] = _parse_table(root, name, data, schema)
        if not newer_columns_allowed and schema.kind == KIND:
            late = [c for c in (TABLES[name].since or {}) if c in tables[name].columns]
            if late:
                raise ArtifactCorrupt(f"{root}: table {name} of a schema version {m['schema_version']} artifact has "
                                      f"the later column {late[0]!r} (relabelled; tampered)")
    return tables


def _parse_table(root, name, data, schema):
    try:
        t = pq.read_table(pa.BufferReader(data))
        if t.num_rows > schema.max_rows or t.num_columns > 64:
            raise ArtifactCorrupt(f"{root}: table {name} has an absurd size")
        df = t.to_pandas(ignore_metadata=True)
        df = df.set_index(list(schema.index(name)))
    except ArtifactCorrupt:
        raise
    except Exception as err:  # pyarrow / pandas parse errors of any kind
        raise ArtifactCorrupt(f"{root}: table {name} cannot be parsed ({type(err).__name__})") from None
    try:
        return schema.conform(name, df)
    except ArtifactCorrupt as err:
        raise ArtifactCorrupt(f"{root}: {err}") from None
    except (ValueError, TypeError) as err:  # a conform that restores dtypes: values that do not fit
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ArtifactCorrupt(f"{root}: table {name} does not match its schema ({first})") from None


def _need(root, cond, what):
    if not cond:
        raise ArtifactCorrupt(f"{root}: manifest field {what} is missing or malformed")


def _check_files_v1(root, m, schema):
    """The manifest's ``files`` and ``tables``: plain names inside the directory, one file per known table."""
    files, names = m.get("files"), m.get("tables")
    _need(root, isinstance(files, dict) and isinstance(names, list), "files/tables")
    for fname, meta in files.items():
        if not isinstance(fname, str) or not _NAME.match(fname) or fname != os.path.basename(fname):
            raise ArtifactCorrupt(f"{root}: manifest names a file outside the artifact directory: {fname!r}")
        _need(root, isinstance(meta, dict) and isinstance(meta.get("sha256"), str) and _HEX64.match(meta["sha256"])
              and isinstance(meta.get("bytes"), int) and not isinstance(meta.get("bytes"), bool)
              and 0 <= meta["bytes"] <= MAX_FILE_BYTES, f"files[{fname!r}]")
    for name in names:
        _need(root, isinstance(name, str) and name in schema.tables, f"tables ({name!r} is not a known table)")
        _need(root, f"{name}.parquet" in files, f"files[{name}.parquet]")
    for name in schema.required:
        _need(root, name in names, f"tables (required table {name} missing)")
    _need(root, len(set(names)) == len(names) and len(files) == len(names), "files (entries without a table)")


def _check_calibration_v1(root, m):
    """Calibration-specific manifest fields (chip, preset, conditions, target, steps, ...)."""
    def need(cond, what):
        _need(root, cond, what)

    cid = m.get("chip_id")
    need(isinstance(cid, int) and not isinstance(cid, bool) and 0 <= cid < 2**63, "chip_id")
    p = m.get("preset")
    need(isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("sha256"), str)
         and _HEX64.match(p["sha256"]), "preset")
    c = m.get("conditions")
    need(isinstance(c, dict), "conditions")
    for k in ("wait_between_events", "num_sends_min", "num_sends_max", "num_sends_ref"):
        need(isinstance(c.get(k), int) and not isinstance(c.get(k), bool) and 1 <= c[k] <= 255, f"conditions.{k}")
    need(c["num_sends_min"] <= c["num_sends_ref"] <= c["num_sends_max"], "conditions.num_sends_*")
    for k in ("temperature_c", "temperature_tolerance_k", "send_decay_per_send"):
        need(isinstance(c.get(k), (int, float)) and not isinstance(c.get(k), bool) and math.isfinite(c[k]),
             f"conditions.{k}")
    t = m.get("target")
    need(isinstance(t, dict) and isinstance(t.get("gain_lsb_per_unit"), (int, float))
         and not isinstance(t.get("gain_lsb_per_unit"), bool) and 0 < t["gain_lsb_per_unit"] < 1,
         "target.gain_lsb_per_unit")
    need(isinstance(m.get("steps"), list) and all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                                   for s in m["steps"]), "steps")
    need(isinstance(m.get("options"), dict), "options")
    for k in ("totals", "quality"):
        need(isinstance(m.get(k, {}), dict), k)
    need(isinstance(m.get("failed_stages", []), list) and all(isinstance(s, str) for s in m.get("failed_stages", [])),
         "failed_stages")


#: The calibration artifact (docs/artifact-format.md).
CALIBRATION = ArtifactSchema(kind=KIND, version=SCHEMA_VERSION, what="a calibration artifact", tables=tuple(TABLES),
                             required=REQUIRED, index=_calibration_index, conform=_conform_calibration,
                             check_manifest=_check_calibration_v1, readable=READABLE_VERSIONS, sealed_since=2)


def _characterization_index(name):
    return ("state", *CHARACTERIZATION_SCHEMA[name][0])


def _conform_characterization(name, df):
    try:
        return conform_characterization(name, df)
    except (ValueError, TypeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ArtifactCorrupt(f"table {name} does not match its schema ({type(err).__name__}: {first})") from None


#: The characterization artifact (:mod:`calib.characterize`): every table is required.
CHARACTERIZATION = ArtifactSchema(kind=CHARACTERIZATION_KIND, version=CHARACTERIZATION_VERSION,
                                  what="a characterization", tables=CHARACTERIZATION_TABLES,
                                  required=CHARACTERIZATION_TABLES, index=_characterization_index,
                                  conform=_conform_characterization,
                                  max_manifest_bytes=CHARACTERIZATION_MAX_MANIFEST_BYTES,
                                  max_rows=CHARACTERIZATION_MAX_ROWS)
_SCHEMAS = {s.kind: s for s in (CALIBRATION, CHARACTERIZATION)}
_KINDS = tuple(_SCHEMAS)


def artifact_schema(kind):
    """The :class:`ArtifactSchema` of an artifact kind.

    Parameters
    ----------
    kind : str or ArtifactSchema
        ``"bss2-calib/calibration"`` (:data:`CALIBRATION`) or
        ``"bss2-calib/characterization"`` (:data:`CHARACTERIZATION`); an
        ArtifactSchema is returned as it is.

    Raises
    ------
    ArtifactVersionError
        An unknown kind.
    """
    if isinstance(kind, ArtifactSchema):
        return kind
    try:
        return _SCHEMAS[kind]
    except (KeyError, TypeError):
        raise ArtifactVersionError(f"unknown artifact kind {kind!r}") from None
