"""An artifact store: one folder per chip, its history, and a ``latest`` pointer.

Layout::

    <root>/chip=<id>/<created>-<preset>-<random>/   one artifact per calibration
    <root>/chip=<id>/latest.json                    {"artifact": "<name>", "created_utc": ...}
    <root>/chip=<id>/.lock                          serialises pointer updates

The chip folders are hive-style partitions (``chip=<id>``), so any Parquet
reader sees one table across the whole store with the chip id as a column
(see :mod:`calib.dataset`). Stores written before that used ``chip-<id>``
folders; they are still read and written in place (a chip keeps the folder it
has), and :meth:`ArtifactStore.migrate` renames them. References such as
``chip-3`` or ``chip=3/NAME`` name the same chip in either layout.

The root is ``--store`` / the ``root`` argument, else ``$BSS2_CALIB_STORE``, else
``$XDG_DATA_HOME/bss2-calib`` (default ``~/.local/share/bss2-calib``).
Artifacts are written atomically under unique names, so concurrent
calibrations of one chip never collide; the pointer is replaced atomically
under a lock and only ever moves to a newer artifact. Leftover temporary
directories of killed writers are ignored and cleaned up later.
"""
import fcntl
import json
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

from .artifact import MANIFEST, read_manifest
from .errors import ArtifactCorrupt, ArtifactError, CalibValueError
from .result import CalibrationResult

POINTER = "latest.json"
_CHIP_DIR = re.compile(r"^chip[-=](\d{1,19})$")
_ARTIFACT = re.compile(r"^[0-9]{8}T[0-9]{6}(\.[0-9]+)?Z-[A-Za-z0-9_-]{1,40}-[0-9a-f]{8}$")
_TMP = re.compile(r"^\..*\.tmp-(\d+)-")


def default_root():
    """The default store directory (see the module docstring)."""
    env = os.environ.get("BSS2_CALIB_STORE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "bss2-calib"


class ArtifactStore:
    """A directory of calibration artifacts, one folder per chip.

    Parameters
    ----------
    root : path-like or None, default=None
        None: :func:`default_root`.
    """

    def __init__(self, root=None):
        self.root = Path(root).expanduser() if root is not None else default_root()

    def __repr__(self):
        return f"ArtifactStore({str(self.root)!r})"

    def chip_dir(self, chip_id):
        """The chip's folder: ``chip=<id>``, or its legacy ``chip-<id>`` folder if only that exists."""
        if isinstance(chip_id, bool) or not isinstance(chip_id, int) or chip_id < 0:
            raise CalibValueError(f"chip id must be a non-negative integer, got {chip_id!r}")
        d = self.root / f"chip={chip_id}"
        legacy = self.root / f"chip-{chip_id}"
        return legacy if not d.exists() and legacy.is_dir() else d

    def migrate(self):
        """Rename legacy ``chip-<id>`` folders to ``chip=<id>`` (skipping chips that have both); returns the ids.

        Run it while nothing else writes to the store: a writer that already
        chose the legacy folder would find it gone.
        """
        moved = []
        if not self.root.is_dir():
            return moved
        for e in sorted(self.root.iterdir()):
            if e.name.startswith("chip-") and _CHIP_DIR.match(e.name) and e.is_dir() and not e.is_symlink():
                dest = self.root / e.name.replace("chip-", "chip=", 1)
                if not dest.exists():
                    os.rename(e, dest)
                    moved.append(int(e.name[5:]))
        return moved

    # -------------------------------------------------------------- write
    def save(self, result, *, make_latest=True):
        """Store ``result`` under a new unique name; point ``latest`` at it if asked (and newer).

        Returns
        -------
        CalibrationResult
            The stored calibration (``path`` set).
        """
        d = self.chip_dir(result.chip_id)
        d.mkdir(parents=True, exist_ok=True)
        self.cleanup(result.chip_id)
        created = result.manifest.get("created_utc", "")
        stamp = re.sub(r"[^0-9TZ.]", "", created) or "00000000T000000Z"
        preset = re.sub(r"[^A-Za-z0-9_-]", "_", result.preset["name"])[:40] or "preset"
        name = f"{stamp}-{preset}-{uuid.uuid4().hex[:8]}"
        if not _ARTIFACT.match(name):
            name = f"00000000T000000Z-{preset}-{uuid.uuid4().hex[:8]}"
        saved = result.save(d / name)
        if make_latest:
            self._set_latest(result.chip_id, name, created)
        return saved

    @contextmanager
    def _lock(self, chip_id):
        d = self.chip_dir(chip_id)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / ".lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _set_latest(self, chip_id, name, created):
        d = self.chip_dir(chip_id)
        with self._lock(chip_id):
            current = self._read_pointer(chip_id)
            if current is not None and current.get("created_utc", "") > created and (d / current["artifact"]).is_dir():
                return
            tmp = d / f".{POINTER}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"artifact": name, "created_utc": created, "chip_id": chip_id}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, d / POINTER)

    def _read_pointer(self, chip_id):
        p = self.chip_dir(chip_id) / POINTER
        try:
            if p.is_symlink() or p.stat().st_size > 4096:
                raise ArtifactCorrupt(f"store pointer {p} is not a small regular file")
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ArtifactCorrupt(f"store pointer {p} is unreadable ({type(err).__name__})") from None
        if not isinstance(data, dict) or not isinstance(data.get("artifact"), str) \
                or not _ARTIFACT.match(data["artifact"]):
            raise ArtifactCorrupt(f"store pointer {p} is malformed")
        return data

    def cleanup(self, chip_id):
        """Remove temporary directories left by writers that no longer run; returns how many."""
        d = self.chip_dir(chip_id)
        removed = 0
        if not d.is_dir():
            return 0
        for e in d.iterdir():
            m = _TMP.match(e.name)
            if m and e.is_dir() and not e.is_symlink() and not _alive(int(m.group(1))):
                shutil.rmtree(e, ignore_errors=True)
                removed += 1
        return removed

    # --------------------------------------------------------------- read
    def latest(self, chip_id, preset=None):
        """Path of the chip's latest artifact, or None.

        Parameters
        ----------
        chip_id : int
        preset : str or None, default=None
            None: whatever ``latest`` points at. A preset name: the newest
            successful artifact of the chip made with that preset (the pointer's
            when it matches), so that a calibration with another preset does not
            hide it.
        """
        ptr = self._read_pointer(chip_id)
        current = None if ptr is None else self.chip_dir(chip_id) / ptr["artifact"]
        if preset is None:
            return current
        rows = [r for r in self.history(chip_id) if r["ok"] and r["preset"] == preset]
        if current is not None and any(r["path"] == str(current) for r in rows):
            return current
        return Path(max(rows, key=lambda r: r["created_utc"] or "")["path"]) if rows else None

    def load_latest(self, chip_id):
        p = self.latest(chip_id)
        if p is None:
            raise ArtifactError(f"no calibration of chip {chip_id} in {self.root}")
        return CalibrationResult.load(p)

    def history(self, chip_id):
        """The chip's artifacts, oldest first: list of dicts (name, path, created_utc, preset, ok, latest)."""
        d = self.chip_dir(chip_id)
        if not d.is_dir():
            return []
        try:
            ptr = self._read_pointer(chip_id)
        except ArtifactCorrupt:
            ptr = None
        out = []
        for e in sorted(d.iterdir()):
            if not _ARTIFACT.match(e.name) or not e.is_dir() or e.is_symlink():
                continue
            row = {"chip_id": chip_id, "name": e.name, "path": str(e),
                   "latest": bool(ptr and ptr["artifact"] == e.name)}
            try:
                m = read_manifest(e)
                row.update(created_utc=m.get("created_utc"), preset=(m.get("preset") or {}).get("name"),
                           ok=not m.get("failed_stages"), error=None)
            except ArtifactError as err:
                row.update(created_utc=None, preset=None, ok=False, error=str(err))
            out.append(row)
        return out

    def chips(self):
        """Chip ids with a folder in the store, sorted."""
        if not self.root.is_dir():
            return []
        ids = []
        for e in self.root.iterdir():
            m = _CHIP_DIR.match(e.name)
            if m and e.is_dir():
                ids.append(int(m.group(1)))
        return sorted(set(ids))

    def list(self):
        """Every artifact of every chip (see :meth:`history`)."""
        return [row for c in self.chips() for row in self.history(c)]

    def resolve(self, ref, preset=None):
        """Artifact path for ``ref``: a directory path, ``chip-N`` or ``chip=N`` (its latest), or ``chip-N/NAME``.

        Parameters
        ----------
        ref : str or path-like
        preset : str or None, default=None
            For ``chip-N`` and ``chip-N/latest``: the latest artifact of that
            preset (see :meth:`latest`); None: the latest of any preset.

        Raises
        ------
        ArtifactError
            ``chip-N`` has no (matching) calibration; the message names the
            preset of the one there is.
        """
        ref = os.fspath(ref)
        p = Path(ref).expanduser()
        if (p / MANIFEST).exists() or p.is_dir() and not _CHIP_DIR.match(p.name):
            return p
        parts = ref.strip("/").split("/")
        m = _CHIP_DIR.match(parts[0]) if parts else None
        if m and (len(parts) == 1 or len(parts) == 2 and parts[1] == "latest"):
            chip_id = int(m.group(1))
            latest = self.latest(chip_id, preset)
            if latest is None:
                raise ArtifactError(self._none_message(chip_id, preset))
            return latest
        if m and len(parts) == 2 and _ARTIFACT.match(parts[1]):
            return self.chip_dir(int(m.group(1))) / parts[1]
        return p

    def _none_message(self, chip_id, preset):
        msg = f"no calibration of chip {chip_id}" + ("" if preset is None else f" with preset {preset!r}")
        msg += f" in {self.root}"
        others = sorted({r["preset"] for r in self.history(chip_id) if r["ok"] and r["preset"]} - {preset})
        if preset is not None and others:
            msg += f"; chip {chip_id} has calibrations of preset " + ", ".join(
                f"{p!r} (--preset {p})" for p in others)
        run = f"bss2-calib run --chip {chip_id}" + ("" if preset in (None, "default") else f" --preset {preset}")
        return f"{msg}; calibrate it with: {run}"


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
