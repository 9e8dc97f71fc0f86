"""What the applications share: architecture, the integer forward pass, scores, the mock, the App.

An application (:class:`App`) is a network of the chip's shape (convolutions and dense layers,
no biases, a ConvertingReLU after every layer but the last) plus an input encoding that turns
its raw data into 5-bit activations. Everything else is common:

- :class:`~infer.apps.model.FloatWeights` and :class:`~infer.apps.model.IntegerModel`
  (:mod:`infer.apps.model`): the weights in float and in the chip's number formats, stored as
  ``.npz`` with JSON metadata (never pickle);
- :func:`forward`: one engine call per layer through :mod:`infer.functional`;
- :func:`scores`: accuracy, macro-F1 and the confusion matrix;
- :class:`MockEngine`: the reference library's mock of the VMM as an engine, for quick searches.

Quantization lives in :mod:`infer.apps.quantize`, training (torch) in :mod:`infer.apps.training`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bss2_calib.chipsim.geometry import ROWS

from .. import functional as F
from ..engine import Y_MAX, Y_MIN, check_activations, check_weights
from .model import FloatWeights, IntegerModel, ModelFileError, as_int

__all__ = ["App", "Architecture", "FloatWeights", "IntegerModel", "Layer", "MockEngine", "ModelFileError",
           "Scores", "as_int", "float_forward", "forward", "run_layers", "scores"]


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


# --------------------------------------------------------------------------- forward pass and scores

def run_layers(model: IntegerModel, x, engine, start=0, stop=None):
    """Run layers ``start``..``stop - 1`` on the integer input ``x`` of layer ``start``.

    Returns the last layer's output in LSB (before its ConvertingReLU if it has one).
    """
    layers = model.arch.layers
    stop = len(layers) if stop is None else stop
    y = layers[start].run(x, model.weights[layers[start].name], engine, model.num_sends[start])
    for i in range(start + 1, stop):
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
    load_test, load_train : callable (limit) -> (raw, labels)
        The test and the training split (first ``limit`` samples if given).
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
    load_train: Callable
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


