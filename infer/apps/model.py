"""Weights and integer models of the applications, and their files (``.npz`` with JSON metadata, never pickle).

:class:`FloatWeights` holds an architecture's float weights; :class:`IntegerModel` the same network
in the chip's number formats (6-bit weights, per-layer ``num_sends`` and ConvertingReLU shifts) plus
the parameters of its application's input encoding. Files are written atomically and read without
unpickling; every malformed file raises :class:`ModelFileError` with a one-line message.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bss2_calib.calib.model import readonly
from bss2_calib.chipsim.geometry import W_MAX

if TYPE_CHECKING:
    from .common import Architecture

__all__ = ["FloatWeights", "IntegerModel", "ModelFileError", "SCHEMA_VERSION", "as_int"]

SCHEMA_VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing parts, malformed, or holds values outside the legal ranges."""


# --------------------------------------------------------------------------- files

def _write_npz(path, arrays: Mapping[str, np.ndarray], metadata: Mapping) -> Path:
    """Write arrays plus a JSON metadata string atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, metadata=np.array(json.dumps(metadata, sort_keys=True)))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read_npz(path, kind: str, keys: tuple[str, ...]) -> tuple[dict, dict]:
    """Read arrays ``keys`` and the metadata of a file of format ``kind``; never unpickles."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:  # we own the handle: closed even if np.load fails
            if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
                raise ModelFileError(f"{path}: not an .npz archive")
            f.seek(0)
            with np.load(f, allow_pickle=False) as npz:
                missing = sorted((set(keys) | {"metadata"}) - set(npz.files))
                if missing:
                    raise ModelFileError(f"{path}: missing arrays {missing}")
                arrays = {k: npz[k] for k in keys}
                meta_raw = npz["metadata"]
        if meta_raw.shape != () or meta_raw.dtype.kind != "U":
            raise ModelFileError(f"{path}: metadata is not a JSON string")
        metadata = json.loads(str(meta_raw))
    except ModelFileError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        first_line = (str(err).splitlines() or [type(err).__name__])[0]
        raise ModelFileError(f"{path}: unreadable model file ({first_line})") from err
    if not isinstance(metadata, dict) or metadata.get("format") != kind:
        raise ModelFileError(f"{path}: not a {kind} file")
    if metadata.get("schema_version") != SCHEMA_VERSION:
        raise ModelFileError(f"{path}: unsupported schema_version "
                             f"{metadata.get('schema_version')!r} (expected {SCHEMA_VERSION})")
    return arrays, metadata


def as_int(value, name: str, lo: int, hi: int | None = None) -> int:
    """``value`` as an int after checking it is an integer in lo..hi."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in {lo}..{'' if hi is None else hi}, got {value}")
    return int(value)


# --------------------------------------------------------------------------- weights and models

@dataclass(frozen=True, eq=False)
class FloatWeights:
    """Float weights of an architecture, in the stored layouts of its layers.

    Parameters
    ----------
    arch : Architecture
    weights : dict of str to array-like
        One finite float array per layer name, of the layer's shape.
    input : str or dict, default="pixels / 255"
        What the float network sees (a description, or the parameters of the encoding).
    """

    arch: Architecture
    weights: dict
    input: str | dict = "pixels / 255"

    def __post_init__(self):
        if set(self.weights) != set(self.arch.names):
            raise ValueError(f"need weights {list(self.arch.names)}, got {sorted(self.weights)}")
        out = {}
        for name, shape in self.arch.shapes.items():
            a = np.asarray(self.weights[name])
            if a.shape != shape or a.dtype.kind != "f" or not np.all(np.isfinite(a)):
                raise ValueError(f"{name} must be finite floats of shape {shape}, got {a.dtype} {a.shape}")
            out[name] = readonly(a, np.float32)
        object.__setattr__(self, "weights", out)

    @property
    def format(self):
        return f"bss2-calib/{self.arch.name}-float-weights"

    def save(self, path, info: Mapping | None = None) -> Path:
        """Write an ``.npz`` (float32 arrays, JSON metadata; no pickle); ``info`` is stored only."""
        meta = {"format": self.format, "schema_version": SCHEMA_VERSION, "input": self.input,
                "info": dict(info or {})}
        return _write_npz(path, self.weights, meta)

    @classmethod
    def load(cls, path, arch) -> FloatWeights:
        """Read a file written by :meth:`save`; raises ModelFileError on bad files."""
        arrays, meta = _read_npz(path, f"bss2-calib/{arch.name}-float-weights", arch.names)
        for name, a in arrays.items():
            if a.dtype != np.float32:
                raise ModelFileError(f"{path}: {name} must be float32, got {a.dtype}")
        try:
            return cls(arch, arrays, meta.get("input", "pixels / 255"))
        except ValueError as err:
            raise ModelFileError(f"{path}: {err}") from err


@dataclass(frozen=True, eq=False)
class IntegerModel:
    """A network in the chip's number formats.

    Parameters
    ----------
    arch : Architecture
    weights : dict of str to array-like of int
        Per layer, weights -63..63 in the layer's stored shape (kept as int8).
    input : dict
        Parameters of the application's input encoding (JSON values; checked by the application).
    num_sends : tuple of int
        Repetitions of the input vector per layer, each 1..255.
    relu_shifts : tuple of int
        ConvertingReLU right shifts after every layer but the last, each 0..7 bits.
    weight_scales : tuple of float, optional
        Integer weight per unit of float weight per layer (> 0); informative. Default all 1.
    """

    arch: Architecture
    weights: dict
    input: dict
    num_sends: tuple
    relu_shifts: tuple
    weight_scales: tuple = field(default=None)

    def __post_init__(self):
        n = len(self.arch.layers)
        if set(self.weights) != set(self.arch.names):
            raise ValueError(f"need weights {list(self.arch.names)}, got {sorted(self.weights)}")
        out = {}
        for name, shape in self.arch.shapes.items():
            a = np.asarray(self.weights[name])
            if a.shape != shape or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{name} must be integers of shape {shape}, got {a.dtype} {a.shape}")
            if a.min() < -W_MAX or a.max() > W_MAX:
                raise ValueError(f"{name} weights must be in -63..63, got {a.min()}..{a.max()}")
            out[name] = readonly(a, np.int8)
        scales = (1.0,) * n if self.weight_scales is None else tuple(float(s) for s in self.weight_scales)
        if len(self.num_sends) != n or len(self.relu_shifts) != n - 1 or len(scales) != n:
            raise ValueError(f"need {n} num_sends, {n - 1} relu_shifts and {n} weight_scales")
        if not all(np.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"weight_scales must be finite and > 0, got {scales}")
        if not isinstance(self.input, dict):
            raise ValueError("input must be a dict of encoding parameters")
        object.__setattr__(self, "weights", out)
        object.__setattr__(self, "num_sends", tuple(as_int(s, "num_sends", 1, 255) for s in self.num_sends))
        object.__setattr__(self, "relu_shifts", tuple(as_int(s, "relu_shifts", 0, 7) for s in self.relu_shifts))
        object.__setattr__(self, "weight_scales", scales)
        object.__setattr__(self, "input", dict(self.input))

    @property
    def format(self):
        return f"bss2-calib/{self.arch.name}-integer-model"

    @property
    def weight_matrices(self):
        """Per layer, the int8 (n_in, n_out) matrix of its engine call."""
        return tuple(layer.matrix(self.weights[layer.name]) for layer in self.arch.layers)

    def replace(self, **changes) -> IntegerModel:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_layer(self, i, *, num_sends=None, relu_shift=None) -> IntegerModel:
        """A copy with layer ``i``'s num_sends and/or ConvertingReLU shift changed."""
        sends, shifts = list(self.num_sends), list(self.relu_shifts)
        if num_sends is not None:
            sends[i] = num_sends
        if relu_shift is not None:
            shifts[i] = relu_shift
        return self.replace(num_sends=tuple(sends), relu_shifts=tuple(shifts))

    def save(self, path) -> Path:
        """Write an ``.npz`` (int8 weights; the settings and the input encoding as JSON; no pickle)."""
        meta = {"format": self.format, "schema_version": SCHEMA_VERSION, **self.input,
                "num_sends": list(self.num_sends), "relu_shifts": list(self.relu_shifts),
                "weight_scales": list(self.weight_scales)}
        return _write_npz(path, self.weights, meta)

    @classmethod
    def load(cls, path, arch, input_keys, check_input=dict) -> IntegerModel:
        """Read a file written by :meth:`save`; raises ModelFileError on bad files.

        ``input_keys`` name the metadata entries of the input encoding; ``check_input`` validates them.
        """
        arrays, meta = _read_npz(path, f"bss2-calib/{arch.name}-integer-model", arch.names)
        for name, a in arrays.items():
            if a.dtype != np.int8:
                raise ModelFileError(f"{path}: {name} must be int8, got {a.dtype}")
        fields = tuple(input_keys) + ("num_sends", "relu_shifts", "weight_scales")
        missing = [f for f in fields if f not in meta]
        if missing:
            raise ModelFileError(f"{path}: metadata lacks {missing}")
        if not all(isinstance(meta[f], list) for f in fields[-3:]):
            raise ModelFileError(f"{path}: num_sends, relu_shifts, weight_scales must be lists")
        try:
            return cls(arch, arrays, check_input({k: meta[k] for k in input_keys}), tuple(meta["num_sends"]),
                       tuple(meta["relu_shifts"]), tuple(meta["weight_scales"]))
        except (ValueError, TypeError) as err:
            raise ModelFileError(f"{path}: {err}") from err
