"""What the applications share: architecture, weight files, the integer forward pass, scores, the mock.

An application (:class:`App`) is a network of the chip's shape (convolutions and dense layers,
no biases, a ConvertingReLU after every layer but the last) plus an input encoding that turns
its raw data into 5-bit activations. Everything else is common:

- :class:`FloatWeights` and :class:`IntegerModel`: the weights in float and in the chip's number
  formats (6-bit weights, per-layer ``num_sends`` and ConvertingReLU shifts), stored as ``.npz``
  with JSON metadata (never pickle);
- :func:`forward`: one engine call per layer through :mod:`infer.functional`;
- :func:`scores`: accuracy, macro-F1 and the confusion matrix;
- :class:`MockEngine`: the reference library's mock of the VMM as an engine, for quick searches.

Quantization lives in :mod:`infer.apps.quantize`, training (torch) in :mod:`infer.apps.training`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bss2_calib.chipsim.geometry import ROWS, W_MAX

from .. import functional as F
from ..engine import Y_MAX, Y_MIN, check_activations, check_weights

__all__ = ["App", "Architecture", "FloatWeights", "IntegerModel", "Layer", "MockEngine", "ModelFileError",
           "Scores", "as_int", "float_forward", "forward", "run_layers", "scores"]

SCHEMA_VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing parts, malformed, or holds values outside the legal ranges."""


# --------------------------------------------------------------------------- architecture

@dataclass(frozen=True)
class Layer:
    """One layer of an application's network: one engine call per batch.

    Parameters
    ----------
    name : str
        Key of its weights in files (``conv``, ``fc1``, ...).
    kind : {"conv1d", "conv2d", "linear"}
    shape : tuple of int
        Stored weight shape: (out_channels, in_channels, kernel...) for a convolution,
        (n_in, n_out) for a dense layer.
    stride, padding : int or tuple of int, default=1 and 0
        Of a convolution.
    """

    name: str
    kind: str
    shape: tuple
    stride: int | tuple = 1
    padding: int | tuple = 0

    def matrix(self, w):
        """The weights as the (n_in, n_out) matrix the engine multiplies with."""
        return w if self.kind == "linear" else w.reshape(w.shape[0], -1).T

    def run(self, x, w, engine, num_sends):
        """Output of the layer on ``engine`` (conv: (n, C, ...); dense: (n, n_out)), in LSB."""
        if self.kind == "linear":
            return F.matmul(x.reshape(len(x), -1), w, engine=engine, num_sends=num_sends)
        conv = F.conv1d if self.kind == "conv1d" else F.conv2d
        return conv(x, w, engine=engine, stride=self.stride, padding=self.padding, num_sends=num_sends)

    def patches(self, x):
        """The (rows, n_in) input matrix of the layer's engine call (im2col of a convolution)."""
        if self.kind == "linear":
            return x.reshape(len(x), -1), None
        im2col = F.im2col_1d if self.kind == "conv1d" else F.im2col_2d
        return im2col(x, self.shape[2] if self.kind == "conv1d" else self.shape[2:], self.stride, self.padding)

    def run_float(self, x, w):
        """The same layer in float64 (no rounding, no clipping)."""
        w = np.asarray(w, np.float64)
        if self.kind == "linear":
            return x.reshape(len(x), -1) @ w
        p, out = self.patches(np.asarray(x, np.float64))
        y = p @ self.matrix(w)
        out = (out,) if self.kind == "conv1d" else out
        return np.moveaxis(y.reshape(len(x), *out, -1), -1, 1)


@dataclass(frozen=True)
class Architecture:
    """A network of :class:`Layer` s with a ConvertingReLU (ReLU in float) after all but the last.

    Parameters
    ----------
    name : str
        Application name; file formats are ``bss2-calib/<name>-float-weights`` and
        ``bss2-calib/<name>-integer-model``.
    input_shape : tuple of int
        (channels, length) or (channels, height, width) of one input.
    layers : tuple of Layer
    """

    name: str
    input_shape: tuple
    layers: tuple

    @property
    def names(self):
        return tuple(layer.name for layer in self.layers)

    @property
    def shapes(self):
        return {layer.name: tuple(layer.shape) for layer in self.layers}

    @property
    def n_classes(self):
        return self.layers[-1].shape[1]


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


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


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
            out[name] = _readonly(a.astype(np.float32))
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
            out[name] = _readonly(a.astype(np.int8))
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


# --------------------------------------------------------------------------- forward pass and scores

def run_layers(model: IntegerModel, x, engine, start=0, stop=None):
    """Run layers ``start``..``stop - 1`` on the integer input ``x`` of layer ``start``.

    Returns the last layer's output in LSB (before its ConvertingReLU if it has one).
    """
    layers = model.arch.layers
    stop = len(layers) if stop is None else stop
    for i in range(start, stop):
        if i > start:
            x = F.converting_relu(y, model.relu_shifts[i - 1])
        y = layers[i].run(x, model.weights[layers[i].name], engine, model.num_sends[i])
    return y


def forward(model: IntegerModel, x, engine):
    """Logits (output LSB, float64, shape (n, n_classes)) of the integer input ``x`` (0..31)."""
    return run_layers(model, np.asarray(x), engine)


def float_forward(weights: FloatWeights, x):
    """Logits of the float network (ReLU between layers) on its float input ``x``."""
    layers = weights.arch.layers
    for i, layer in enumerate(layers):
        x = layer.run_float(x, weights.weights[layer.name])
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


@dataclass(frozen=True)
class Scores:
    """Accuracy (0..1), macro-F1 (0..1, the mean of the per-class F1) and the confusion matrix
    (rows true class, columns prediction)."""

    accuracy: float
    macro_f1: float
    confusion: np.ndarray

    def to_dict(self):
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "confusion": self.confusion.tolist()}


def scores(pred, labels, n_classes) -> Scores:
    """:class:`Scores` of predictions against labels (both int arrays of shape (n,), n >= 1)."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape or not len(labels):
        raise ValueError("need one prediction per label and at least one label")
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (labels, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)  # 2 tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    present = cm.sum(1) > 0
    return Scores(float(tp.sum() / len(labels)), float(f1[present].mean()), cm)


# --------------------------------------------------------------------------- the mock as an engine

class MockEngine:
    """The reference library's mock of the chip's VMM, with the engine's ``matmul`` signature.

    Per tile of 128 input rows: ``floor(x.w * num_sends * gain + N(0, noise_std**2))`` clamped to
    -128..127; the tiles are summed and the sum clamped again. No fixed-pattern noise, no time.

    Parameters
    ----------
    gain : float, default=0.002
        Output LSB per unit of x.w per send, > 0.
    noise_std : float, default=0.0
        Trial-to-trial noise per tile output in LSB, >= 0; 0 is the exact quantized reference.
    rng : numpy.random.Generator, optional
        Needed when ``noise_std > 0``; consumed on every call.

    Examples
    --------
    >>> MockEngine().matmul(np.full((1, 128), 31), np.full((128, 1), 10))  # 39680 * 0.002 = 79.36
    array([[79.]])
    """

    def __init__(self, gain=0.002, noise_std=0.0, rng=None):
        if not (np.isfinite(gain) and gain > 0):
            raise ValueError(f"gain must be > 0 LSB per unit product, got {gain}")
        if not (np.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std must be >= 0 LSB, got {noise_std}")
        if noise_std > 0 and not isinstance(rng, np.random.Generator):
            raise TypeError(f"a noisy mock needs rng, a numpy.random.Generator; got {type(rng).__name__}")
        self.gain, self.noise_std, self.rng = float(gain), float(noise_std), rng

    def matmul(self, x, w, *, num_sends=None, wait_between_events=None, name=None):
        """``x @ w`` by the mock formula; x (batch, n_in) 0..31, w (n_in, n_out) -63..63."""
        x, w = check_activations(x).astype(np.float64), check_weights(w).astype(np.float64)
        n = 1 if num_sends is None else as_int(num_sends, "num_sends", 1, 255)
        if x.ndim != 2 or x.shape[1] != w.shape[0]:
            raise ValueError(f"need x (batch, n_in) and w (n_in, n_out), got {x.shape} and {w.shape}")
        out = np.zeros((x.shape[0], w.shape[1]))
        for start in range(0, x.shape[1], ROWS):  # products are exact in float64 (|x.w| < 2**53)
            y = (x[:, start:start + ROWS] @ w[start:start + ROWS]) * (n * self.gain)
            if self.noise_std > 0:
                y += self.rng.normal(0.0, self.noise_std, size=y.shape)
            out += np.clip(np.floor(y), Y_MIN, Y_MAX)
        return np.clip(out, Y_MIN, Y_MAX)


# --------------------------------------------------------------------------- applications

@dataclass(frozen=True)
class App:
    """An application: an architecture, its input encoding, its data and its shipped models.

    Parameters
    ----------
    arch : Architecture
    classes : tuple of str
        Class names, index = label.
    input_keys : tuple of str
        Metadata keys of the input encoding in integer-model files.
    check_input : callable (dict) -> dict
        Validates the encoding parameters (raises ValueError).
    encode : callable (raw, dict) -> ndarray of int
        Raw samples -> integer input (n, *arch.input_shape), 0..31.
    float_input : callable (raw, FloatWeights) -> ndarray of float
        Raw samples -> the float network's input.
    load_test : callable (limit) -> (raw, labels)
        The test split (first ``limit`` samples if given).
    default_models : tuple of str
        File names under the package's ``data/models``, best first.
    unit : str
        What one sample is called ("images", "windows").
    """

    arch: Architecture
    classes: tuple
    input_keys: tuple
    check_input: Callable
    encode: Callable
    float_input: Callable
    load_test: Callable
    default_models: tuple
    unit: str = "samples"

    @property
    def name(self):
        return self.arch.name

    def load_model(self, path) -> IntegerModel:
        """The :class:`IntegerModel` in ``path`` (ModelFileError if it is not one of this app's)."""
        return IntegerModel.load(path, self.arch, self.input_keys, self.check_input)

    def load_float(self, path) -> FloatWeights:
        return FloatWeights.load(path, self.arch)

    def default_model_path(self):
        """The first shipped model file that exists (FileNotFoundError if none)."""
        from bss2_calib.data import models_dir

        root = Path(str(models_dir()))
        for name in self.default_models:
            if (root / name).is_file():
                return root / name
        raise FileNotFoundError(f"no {self.name} model under {root}; give a weights file")

    def forward(self, model, raw, engine):
        """Logits (output LSB) of raw samples, one engine call per layer."""
        return forward(model, self.encode(raw, model.input), engine)

    def predict(self, model, raw, engine):
        return np.argmax(self.forward(model, raw, engine), axis=1)

    def evaluate(self, model, raw, labels, engine, batch_size=1000, progress=None) -> Scores:
        """:class:`Scores` of ``model`` on ``engine``, in batches of ``batch_size`` samples.

        ``progress``, if given, is called with the number of samples done after every batch.
        """
        labels = np.asarray(labels)
        if len(labels) != len(raw) or not len(labels):
            raise ValueError("need one label per sample and at least one sample")
        as_int(batch_size, "batch_size", 1)
        pred = []
        for i in range(0, len(labels), batch_size):
            pred.append(self.predict(model, raw[i:i + batch_size], engine))
            if progress is not None:
                progress(min(i + batch_size, len(labels)))
        return scores(np.concatenate(pred), labels, len(self.classes))

    def evaluate_float(self, weights, raw, labels) -> Scores:
        return scores(np.argmax(float_forward(weights, self.float_input(raw, weights)), 1), labels,
                      len(self.classes))

    def macs_per_sample(self):
        """Multiply-accumulates per sample: rows x columns x vectors of every layer's engine call."""
        x, total = np.zeros((1,) + tuple(self.arch.input_shape), np.int64), 0
        for layer in self.arch.layers:
            p, _ = layer.patches(x)
            total += p.size * layer.shape[-1 if layer.kind == "linear" else 0]
            x = layer.run_float(x, np.zeros(layer.shape))
        return int(total)


