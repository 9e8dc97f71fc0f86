"""The MNIST network of the BrainScaleS-2 inference paper as an integer model.

Network (no biases; shapes per image)::

    28x28 pixels 0..255 --input quantization--> 28x28 activations 0..31, zero-padded to 30x30
    -> Conv2d 1->20 channels, 10x10 kernel, stride 5 -> 20x5x5 = 500 -> ConvertingReLU
    -> Linear 500->128 -> ConvertingReLU -> Linear 128->10 -> logits (output LSB)

Every layer is one vector-matrix multiplication on the chip: 5-bit inputs 0..31 times signed
6-bit weights -63..63, returning 8-bit results in output LSB. The multiplication itself is a
parameter, ``matmul(x, w, num_sends) -> y``, so the same integer model runs on the numpy reference
backends defined here (:func:`mock_matmul`, :func:`exact_matmul`) or on any other engine.
The convolution is lowered to one matmul over all patches of the batch with :func:`im2col`.

Float weights (:class:`FloatWeights`) use the same layout; the float network sees pixels / 255.
:func:`quantize` turns them into an :class:`IntegerModel`: per-layer weight scales, the input
quantization, and per-layer ``num_sends`` and ConvertingReLU shifts chosen from activation
percentiles and a search on calibration images. Numpy only; torch is never imported here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "FloatWeights", "IntegerModel", "MatMul", "ModelFileError", "QuantizeOptions",
    "choose_input_quantization", "converting_relu", "evaluate", "exact_matmul", "float_forward",
    "forward", "im2col", "mock_matmul", "predict", "quantize", "quantize_images",
    "quantize_weights",
]

logger = logging.getLogger(__name__)

IMAGE_SIZE, PAD, KERNEL, STRIDE = 28, 1, 10, 5
N_CHANNELS, N_HIDDEN, N_CLASSES = 20, 128, 10
CONV_OUT = (IMAGE_SIZE + 2 * PAD - KERNEL) // STRIDE + 1  # 5
N_CONV = N_CHANNELS * CONV_OUT * CONV_OUT  # 500
X_MAX, W_MAX = 31, 63  # 5-bit inputs, signed 6-bit weights
Y_MIN, Y_MAX = -128, 127  # int8 results
ROWS_PER_TILE = 128  # synapse drivers per hemisphere
SHAPES = {"conv": (N_CHANNELS, 1, KERNEL, KERNEL), "fc1": (N_CONV, N_HIDDEN),
          "fc2": (N_HIDDEN, N_CLASSES)}
LAYERS = tuple(SHAPES)
SCHEMA_VERSION = 1

#: ``matmul(x, w, num_sends) -> y``: x int of shape (batch, n_in) in 0..31, w int of shape
#: (n_in, n_out) in -63..63, num_sends >= 1; y float of shape (batch, n_out) in output LSB.
MatMul = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


class ModelFileError(ValueError):
    """A model file is missing parts, malformed, or holds values outside the legal ranges."""


# --------------------------------------------------------------------------- building blocks

def im2col(images, kernel, stride=1, pad=0) -> np.ndarray:
    """Lower a 2-D convolution to a matrix product: one row per output position.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width) or (n_images, channels, height, width)
        Input maps; one channel is assumed for 3-D input.
    kernel : int or tuple of (int, int)
        Kernel height and width in pixels, >= 1.
    stride : int, default=1
        Step between neighbouring patches in pixels, >= 1.
    pad : int, default=0
        Zeros added on each border in pixels, >= 0.

    Returns
    -------
    patches : ndarray of shape (n_images * out_h * out_w, channels * kernel_h * kernel_w)
        Rows ordered (image, output row, output column); columns ordered (channel, kernel row,
        kernel column), i.e. matching ``weight.reshape(n_out, -1)`` of a torch-layout weight.
        Same dtype as `images`.

    Examples
    --------
    >>> im2col(np.arange(16).reshape(1, 4, 4), kernel=2, stride=2)
    array([[ 0,  1,  4,  5],
           [ 2,  3,  6,  7],
           [ 8,  9, 12, 13],
           [10, 11, 14, 15]])
    """
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(f"images must be 3-D or 4-D, got shape {a.shape}")
    kh, kw = (kernel, kernel) if np.isscalar(kernel) else kernel
    if min(kh, kw) < 1 or stride < 1 or pad < 0:
        raise ValueError(f"need kernel >= 1, stride >= 1, pad >= 0; got {kernel}, {stride}, {pad}")
    if pad:
        a = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, w = a.shape
    if h < kh or w < kw:
        raise ValueError(f"kernel {kh}x{kw} larger than the padded {h}x{w} input")
    win = sliding_window_view(a, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    oh, ow = win.shape[2:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def converting_relu(y, shift: int = 2) -> np.ndarray:
    """ConvertingReLU: ReLU, right shift by `shift` bits (floor), clamp to the 5-bit range.

    Parameters
    ----------
    y : array-like of float or int
        Layer outputs in output LSB (finite).
    shift : int, default=2
        Right shift in bits, 0..7; shift 2 maps the int8 maximum 127 onto 31.

    Returns
    -------
    x : ndarray of dtype uint8, same shape as `y`
        Activations 0..31, valid inputs of the next layer.

    Examples
    --------
    >>> converting_relu([-5, 3, 4, 7.9, 127, 300], shift=2)
    array([ 0,  0,  1,  1, 31, 31], dtype=uint8)
    """
    y = np.asarray(y, dtype=np.float64)
    if not 0 <= shift <= 7:
        raise ValueError(f"shift must be 0..7 bits, got {shift}")
    if not np.all(np.isfinite(y)):
        raise ValueError("converting_relu got non-finite values")
    return np.clip(np.floor(np.maximum(y, 0.0) / 2.0 ** shift), 0, X_MAX).astype(np.uint8)


def quantize_images(images, gain: int, shift: int) -> np.ndarray:
    """Map pixels 0..255 to 5-bit activations: ``min(31, round(pixel * gain / 2**shift))``.

    Rounding is half up, in integer arithmetic: ``(pixel * gain + 2**shift // 2) >> shift``.

    Parameters
    ----------
    images : array-like of int, shape (n_images, ...)
        Pixel intensities 0..255.
    gain : int
        Integer multiplier, >= 1.
    shift : int
        Right shift in bits, 0..16.

    Returns
    -------
    x : ndarray of dtype uint8, same shape as `images`
        Activations 0..31.

    Examples
    --------
    >>> quantize_images([0, 4, 5, 128, 255], gain=31, shift=8)
    array([ 0,  0,  1, 16, 31], dtype=uint8)
    """
    p = np.asarray(images)
    if not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"pixels must be integers, got dtype {p.dtype}")
    if p.size and (p.min() < 0 or p.max() > 255):
        raise ValueError("pixels must be in 0..255")
    p = p.astype(np.int64)
    return np.minimum((p * gain + ((1 << shift) >> 1)) >> shift, X_MAX).astype(np.uint8)


# --------------------------------------------------------------------------- matmul backends

def _check_operands(x, w, num_sends) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"need x (batch, n_in) and w (n_in, n_out), got {x.shape} and {w.shape}")
    for name, a, lo, hi in (("inputs", x, 0, X_MAX), ("weights", w, -W_MAX, W_MAX)):
        if not (np.issubdtype(a.dtype, np.integer) or np.array_equal(a, np.floor(a))):
            raise ValueError(f"{name} must be integers")
        if a.size and (a.min() < lo or a.max() > hi):
            raise ValueError(f"{name} must be in {lo}..{hi}, got {a.min()}..{a.max()}")
    if isinstance(num_sends, bool) or not isinstance(num_sends, (int, np.integer)) \
            or num_sends < 1:
        raise ValueError(f"num_sends must be an integer >= 1, got {num_sends!r}")
    return x.astype(np.float64), w.astype(np.float64)


def _tiled_vmm(x, w, num_sends, gain, noise_std, rng) -> np.ndarray:
    """The hxtorch mock formula; all products are exact in float64 (|x.w| < 2**53)."""
    x, w = _check_operands(x, w, num_sends)
    out = np.zeros((x.shape[0], w.shape[1]))
    for start in range(0, x.shape[1], ROWS_PER_TILE):
        y = (x[:, start:start + ROWS_PER_TILE] @ w[start:start + ROWS_PER_TILE]) \
            * (num_sends * gain)
        if noise_std > 0:
            y += rng.normal(0.0, noise_std, size=y.shape)
        out += np.clip(np.floor(y), Y_MIN, Y_MAX)
    return np.clip(out, Y_MIN, Y_MAX)


def _check_gain(gain, noise_std):
    if not (np.isfinite(gain) and gain > 0):
        raise ValueError(f"gain must be > 0 LSB per unit product, got {gain}")
    if not (np.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be >= 0 LSB, got {noise_std}")


def mock_matmul(rng: np.random.Generator, gain: float = 0.002, noise_std: float = 2.0) -> MatMul:
    """The hxtorch mock of the chip's VMM as a matmul backend.

    Per tile of 128 input rows: ``floor(x.w * num_sends * gain + N(0, noise_std**2))`` clamped to
    -128..127; the tiles are summed and the sum clamped to -128..127 again. No fixed-pattern noise.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the trial-to-trial noise; consumed on every call.
    gain : float, default=0.002
        Output LSB per unit of x.w per send, > 0 (0.0018..0.0024 on current chips).
    noise_std : float, default=2.0
        Trial-to-trial noise per tile output in LSB, >= 0.

    Returns
    -------
    matmul : callable ``(x, w, num_sends) -> ndarray of float64, shape (batch, n_out)``
        Raises ValueError if x is outside 0..31, w outside -63..63 or either is not integer.

    Examples
    --------
    >>> mm = mock_matmul(np.random.default_rng(0), noise_std=0.0)
    >>> mm(np.full((1, 128), 31), np.full((128, 1), 10), num_sends=1)  # 39680 * 0.002 = 79.36
    array([[79.]])
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    _check_gain(gain, noise_std)

    def matmul(x, w, num_sends: int = 1) -> np.ndarray:
        return _tiled_vmm(x, w, num_sends, gain, noise_std, rng)
    return matmul


def exact_matmul(gain: float = 0.002) -> MatMul:
    """The mock formula without noise: deterministic floor, per-tile and final int8 clamps.

    Parameters
    ----------
    gain : float, default=0.002
        Output LSB per unit of x.w per send, > 0.

    Returns
    -------
    matmul : callable ``(x, w, num_sends) -> ndarray of float64, shape (batch, n_out)``

    Examples
    --------
    Two tiles of 128 rows give 79 each; the sum saturates at the int8 maximum:

    >>> exact_matmul()(np.full((1, 256), 31), np.full((256, 1), 10), num_sends=1)
    array([[127.]])
    """
    _check_gain(gain, 0.0)

    def matmul(x, w, num_sends: int = 1) -> np.ndarray:
        return _tiled_vmm(x, w, num_sends, gain, 0.0, None)
    return matmul


# --------------------------------------------------------------------------- file helpers

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
    """Read arrays `keys` and the metadata of a file of format `kind`; never unpickles."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:  # we own the handle: closed even if np.load fails
            if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
                raise ModelFileError(f"{path}: not an .npz archive")
            f.seek(0)
            npz = np.load(f, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ModelFileError(f"{path}: not an .npz archive")
            missing = sorted((set(keys) | {"metadata"}) - set(npz.files))
            if missing:
                raise ModelFileError(f"{path}: missing arrays {missing}")
            arrays = {k: npz[k] for k in keys}
            meta_raw = npz["metadata"]
            npz.close()
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


def _as_int(value, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in {lo}..{'' if hi is None else hi}, got {value}")
    return int(value)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------- float weights

@dataclass(frozen=True, eq=False)
class FloatWeights:
    """Float weights of the MNIST network; the float network's input is pixels / 255.

    Parameters
    ----------
    conv : array-like of shape (20, 1, 10, 10)
        Convolution kernels, layout (out channel, in channel, row, column).
    fc1 : array-like of shape (500, 128)
        First dense layer as (n_in, n_out); inputs ordered (channel, row, column).
    fc2 : array-like of shape (128, 10)
        Output layer as (n_in, n_out).
    """

    conv: np.ndarray
    fc1: np.ndarray
    fc2: np.ndarray

    FORMAT = "bss2-calib/mnist-float-weights"

    def __post_init__(self):
        for name, shape in SHAPES.items():
            a = np.asarray(getattr(self, name))
            if a.shape != shape or a.dtype.kind != "f" or not np.all(np.isfinite(a)):
                raise ValueError(f"{name} must be finite floats of shape {shape}, "
                                 f"got {a.dtype} {a.shape}")
            object.__setattr__(self, name, _readonly(a.astype(np.float32)))

    def save(self, path, info: Mapping | None = None) -> Path:
        """Write an ``.npz`` (float32 arrays, JSON metadata; no pickle) and return its path.

        `info` is a JSON-serialisable mapping of facts about the training run (stored only).
        """
        meta = {"format": self.FORMAT, "schema_version": SCHEMA_VERSION,
                "input": "pixels / 255", "info": dict(info or {})}
        return _write_npz(path, {n: getattr(self, n) for n in LAYERS}, meta)

    @classmethod
    def load(cls, path) -> FloatWeights:
        """Read a file written by :meth:`save`; raises ModelFileError on bad files."""
        arrays, _ = _read_npz(path, cls.FORMAT, LAYERS)
        for name, a in arrays.items():
            if a.dtype != np.float32:
                raise ModelFileError(f"{path}: {name} must be float32, got {a.dtype}")
        try:
            return cls(**arrays)
        except ValueError as err:
            raise ModelFileError(f"{path}: {err}") from err


def float_forward(weights: FloatWeights, images) -> np.ndarray:
    """Float reference forward pass (input pixels / 255, plain ReLUs).

    Parameters
    ----------
    weights : FloatWeights
    images : array-like of shape (n_images, 28, 28)
        Pixel intensities 0..255.

    Returns
    -------
    logits : ndarray of shape (n_images, 10), float64
    """
    x = np.asarray(images, dtype=np.float64) / 255.0
    n = x.shape[0]
    y = im2col(x, KERNEL, STRIDE, PAD) @ weights.conv.reshape(N_CHANNELS, -1).T.astype(np.float64)
    h = np.maximum(_conv_to_vector(y, n), 0.0)
    h = np.maximum(h @ weights.fc1.astype(np.float64), 0.0)
    return h @ weights.fc2.astype(np.float64)


def _conv_to_vector(y: np.ndarray, n_images: int) -> np.ndarray:
    """(n*25, 20) patch-major conv output -> (n, 500) ordered (channel, row, column)."""
    return y.reshape(n_images, CONV_OUT, CONV_OUT, N_CHANNELS).transpose(0, 3, 1, 2) \
        .reshape(n_images, N_CONV)


# --------------------------------------------------------------------------- integer model

@dataclass(frozen=True, eq=False)
class IntegerModel:
    """The MNIST network in the chip's number formats.

    Parameters
    ----------
    conv : array-like of int, shape (20, 1, 10, 10)
        Convolution weights -63..63 (stored as int8).
    fc1 : array-like of int, shape (500, 128)
        First dense layer -63..63 as (n_in, n_out).
    fc2 : array-like of int, shape (128, 10)
        Output layer -63..63 as (n_in, n_out).
    input_gain : int
        Input quantization multiplier, 1..65535; see :func:`quantize_images`.
    input_shift : int
        Input quantization right shift in bits, 0..16.
    num_sends : tuple of 3 int
        Repetitions of the input vector per layer (conv, fc1, fc2), each 1..255.
    relu_shifts : tuple of 2 int
        ConvertingReLU right shifts after conv and fc1 in bits, each 0..7.
    weight_scales : tuple of 3 float, default=(1.0, 1.0, 1.0)
        Integer weight per unit of float weight, per layer (> 0); informative, unused by
        :func:`forward`.
    """

    conv: np.ndarray
    fc1: np.ndarray
    fc2: np.ndarray
    input_gain: int
    input_shift: int
    num_sends: tuple[int, int, int]
    relu_shifts: tuple[int, int]
    weight_scales: tuple[float, float, float] = (1.0, 1.0, 1.0)

    FORMAT = "bss2-calib/mnist-integer-model"

    def __post_init__(self):
        for name, shape in SHAPES.items():
            a = np.asarray(getattr(self, name))
            if a.shape != shape or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{name} must be integers of shape {shape}, "
                                 f"got {a.dtype} {a.shape}")
            if a.min() < -W_MAX or a.max() > W_MAX:
                raise ValueError(f"{name} weights must be in -63..63, "
                                 f"got {a.min()}..{a.max()}")
            object.__setattr__(self, name, _readonly(a.astype(np.int8)))
        _as_int(self.input_gain, "input_gain", 1, 65535)
        _as_int(self.input_shift, "input_shift", 0, 16)
        if len(self.num_sends) != 3 or len(self.relu_shifts) != 2 \
                or len(self.weight_scales) != 3:
            raise ValueError("need 3 num_sends, 2 relu_shifts and 3 weight_scales")
        sends = tuple(_as_int(n, "num_sends", 1, 255) for n in self.num_sends)
        shifts = tuple(_as_int(s, "relu_shifts", 0, 7) for s in self.relu_shifts)
        scales = tuple(float(s) for s in self.weight_scales)
        if not all(np.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"weight_scales must be finite and > 0, got {scales}")
        object.__setattr__(self, "input_gain", int(self.input_gain))
        object.__setattr__(self, "input_shift", int(self.input_shift))
        object.__setattr__(self, "num_sends", sends)
        object.__setattr__(self, "relu_shifts", shifts)
        object.__setattr__(self, "weight_scales", scales)

    @property
    def weight_matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights as (n_in, n_out) matrices, int8: conv (100, 20), fc1 (500, 128), fc2."""
        return self.conv.reshape(N_CHANNELS, -1).T, self.fc1, self.fc2

    def replace(self, **changes) -> IntegerModel:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def save(self, path) -> Path:
        """Write an ``.npz`` (int8 weights, JSON metadata; no pickle) and return its path."""
        meta = {"format": self.FORMAT, "schema_version": SCHEMA_VERSION,
                "input_gain": self.input_gain, "input_shift": self.input_shift,
                "num_sends": list(self.num_sends), "relu_shifts": list(self.relu_shifts),
                "weight_scales": list(self.weight_scales)}
        return _write_npz(path, {n: getattr(self, n) for n in LAYERS}, meta)

    @classmethod
    def load(cls, path) -> IntegerModel:
        """Read a file written by :meth:`save`; raises ModelFileError on bad files."""
        arrays, meta = _read_npz(path, cls.FORMAT, LAYERS)
        for name, a in arrays.items():
            if a.dtype != np.int8:
                raise ModelFileError(f"{path}: {name} must be int8, got {a.dtype}")
        fields = ("input_gain", "input_shift", "num_sends", "relu_shifts", "weight_scales")
        missing = [f for f in fields if f not in meta]
        if missing:
            raise ModelFileError(f"{path}: metadata lacks {missing}")
        if not all(isinstance(meta[f], list) for f in fields[2:]):
            raise ModelFileError(f"{path}: num_sends, relu_shifts, weight_scales must be lists")
        try:
            return cls(**arrays, input_gain=meta["input_gain"], input_shift=meta["input_shift"],
                       num_sends=tuple(meta["num_sends"]),
                       relu_shifts=tuple(meta["relu_shifts"]),
                       weight_scales=tuple(meta["weight_scales"]))
        except (ValueError, TypeError) as err:
            raise ModelFileError(f"{path}: {err}") from err


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"images must have shape (n, 28, 28), got {images.shape}")
    return images


def _first_input(model: IntegerModel, images) -> np.ndarray:
    x = quantize_images(_check_images(images), model.input_gain, model.input_shift)
    return im2col(x, KERNEL, STRIDE, PAD)


def _layer(model: IntegerModel, layer: int, x: np.ndarray, matmul: MatMul) -> np.ndarray:
    """Output of `layer` (0 conv, 1 fc1, 2 fc2) in LSB; conv output reshaped to (n, 500)."""
    w = model.weight_matrices[layer]
    y = np.asarray(matmul(x, w, model.num_sends[layer]), dtype=np.float64)
    if y.shape != (x.shape[0], w.shape[1]):
        raise ValueError(f"matmul returned shape {y.shape}, expected {(x.shape[0], w.shape[1])}")
    return _conv_to_vector(y, x.shape[0] // CONV_OUT ** 2) if layer == 0 else y


def _run(model: IntegerModel, x: np.ndarray, matmul: MatMul, start: int = 0) -> np.ndarray:
    """Run layers `start`..2 on the input matrix `x` of layer `start`; return the logits."""
    for layer in range(start, 3):
        y = _layer(model, layer, x, matmul)
        if layer < 2:
            x = converting_relu(y, model.relu_shifts[layer])
    return y


def _input_of(model: IntegerModel, images, matmul: MatMul, layer: int) -> np.ndarray:
    """The integer input matrix of `layer` (layer 0: the im2col patches)."""
    x = _first_input(model, images)
    for i in range(layer):
        x = converting_relu(_layer(model, i, x, matmul), model.relu_shifts[i])
    return x


def forward(model: IntegerModel, images, matmul: MatMul) -> np.ndarray:
    """Integer forward pass: one `matmul` call per layer for the whole batch.

    Parameters
    ----------
    model : IntegerModel
    images : array-like of int, shape (n_images, 28, 28)
        Pixel intensities 0..255.
    matmul : callable ``(x, w, num_sends) -> y``
        VMM backend, e.g. :func:`exact_matmul` or :func:`mock_matmul`.

    Returns
    -------
    logits : ndarray of shape (n_images, 10), float64
        Outputs of the last layer in output LSB.
    """
    return _run(model, _first_input(model, images), matmul)


def predict(model: IntegerModel, images, matmul: MatMul) -> np.ndarray:
    """Predicted classes 0..9, shape (n_images,): argmax of :func:`forward` (first on ties)."""
    return np.argmax(forward(model, images, matmul), axis=1)


def evaluate(model: IntegerModel, images, labels, matmul: MatMul,
             batch_size: int = 1000) -> float:
    """Accuracy (fraction 0..1) of `model` on `images`, run in batches of `batch_size` images."""
    images, labels = _check_images(images), np.asarray(labels)
    if labels.shape != images.shape[:1] or batch_size < 1:
        raise ValueError("labels must have shape (n_images,) and batch_size must be >= 1")
    if not len(labels):
        raise ValueError("evaluate needs at least one image")
    correct = sum(int(np.sum(predict(model, images[i:i + batch_size], matmul)
                             == labels[i:i + batch_size]))
                  for i in range(0, len(labels), batch_size))
    return correct / len(labels)


# --------------------------------------------------------------------------- quantization

@dataclass(frozen=True)
class QuantizeOptions:
    """How :func:`quantize` chooses the integer model's scales.

    Parameters
    ----------
    gain : float, default=0.002
        Nominal chip gain in output LSB per unit of x.w per send, > 0.
    linear_range : float, default=80.0
        Tile outputs beyond +-`linear_range` LSB leave the chip's linear range, > 0.
    max_out_of_range : float, default=0.001
        Largest tolerated fraction (0..1) of tile outputs outside the linear range on the
        calibration data (only the positive side for single-tile layers, whose negative outputs
        a ReLU or the argmax discards).
    activation_percentile : float, default=99.9
        Percentile (0..100] of positive activations (and of nonzero pixels) mapped onto the
        5-bit maximum 31 by the first guess.
    weight_percentile : float, default=100.0
        Percentile (0..100] of |w| per layer mapped onto 63; larger weights are clipped.
    max_num_sends : int, default=16
        Largest `num_sends` tried, 1..255.
    max_relu_shift : int, default=5
        Largest ConvertingReLU shift tried, 0..7.
    input_shift : int, default=8
        Right shift of the input quantization in bits, 0..16 (sets the resolution of its gain).
    """

    gain: float = 0.002
    linear_range: float = 80.0
    max_out_of_range: float = 0.001
    activation_percentile: float = 99.9
    weight_percentile: float = 100.0
    max_num_sends: int = 16
    max_relu_shift: int = 5
    input_shift: int = 8

    def __post_init__(self):
        if not (self.gain > 0 and self.linear_range > 0 and 0 <= self.max_out_of_range <= 1):
            raise ValueError("need gain > 0, linear_range > 0, 0 <= max_out_of_range <= 1")
        for p in (self.activation_percentile, self.weight_percentile):
            if not 0 < p <= 100:
                raise ValueError(f"percentiles must be in (0, 100], got {p}")
        _as_int(self.max_num_sends, "max_num_sends", 1, 255)
        _as_int(self.max_relu_shift, "max_relu_shift", 0, 7)
        _as_int(self.input_shift, "input_shift", 0, 16)


def quantize_weights(weights: FloatWeights, percentile: float = 100.0):
    """Scale each layer's weights so the `percentile` of |w| becomes 63, round and clip.

    Returns
    -------
    int_weights : dict of str to ndarray of int8
        ``conv``, ``fc1``, ``fc2`` in -63..63.
    scales : tuple of 3 float
        Integer weight per unit of float weight, per layer.
    """
    int_weights, scales = {}, []
    for name in LAYERS:
        w = getattr(weights, name).astype(np.float64)
        ref = np.percentile(np.abs(w), percentile)
        if not ref > 0:
            raise ValueError(f"{name}: all weights are zero")
        scale = W_MAX / ref
        int_weights[name] = np.clip(np.rint(w * scale), -W_MAX, W_MAX).astype(np.int8)
        scales.append(float(scale))
    return int_weights, tuple(scales)


def choose_input_quantization(images, percentile: float = 99.9, shift: int = 8):
    """Input gain such that the `percentile` of nonzero pixels maps onto 31.

    Returns
    -------
    gain, shift : int, int
        Arguments of :func:`quantize_images`.

    Examples
    --------
    >>> choose_input_quantization(np.array([[0, 100, 255]]), percentile=100)
    (31, 8)
    """
    p = np.asarray(images)
    nonzero = p[p > 0]
    if not nonzero.size:
        raise ValueError("calibration images are all zero")
    ref = float(np.percentile(nonzero, percentile))
    return max(1, min(65535, round(X_MAX * 2 ** shift / ref))), shift


class _LayerStats:
    """Ideal (noiseless, unclipped) tile products of one layer on calibration inputs."""

    def __init__(self, x: np.ndarray, w: np.ndarray, options: QuantizeOptions):
        x, w = x.astype(np.float64), w.astype(np.float64)
        tiles = [x[:, i:i + ROWS_PER_TILE] @ w[i:i + ROWS_PER_TILE]
                 for i in range(0, x.shape[1], ROWS_PER_TILE)]
        excess = np.abs(tiles) if len(tiles) > 1 else np.maximum(tiles[0], 0.0)
        self._excess = np.sort(np.ravel(excess))
        self._options = options

    def out_of_range(self, num_sends: int) -> float:
        """Fraction of tile outputs beyond the linear range at `num_sends`."""
        limit = self._options.linear_range / (num_sends * self._options.gain)
        n = self._excess.size
        return float(n - np.searchsorted(self._excess, limit, side="right")) / n

    def allowed_sends(self) -> list[int]:
        ok = [n for n in range(1, self._options.max_num_sends + 1)
              if self.out_of_range(n) <= self._options.max_out_of_range]
        return ok or [1]


def _first_guess(model: IntegerModel, x: np.ndarray, start: int,
                 options: QuantizeOptions) -> IntegerModel:
    """Set layers `start`..2 from percentiles, given the noiseless input `x` of `start`.

    num_sends: the largest within the linear range; shift: the smallest that keeps the
    `activation_percentile` of positive outputs within 0..31.
    """
    matmul = exact_matmul(options.gain)
    for layer in range(start, 3):
        sends = list(model.num_sends)
        sends[layer] = max(_LayerStats(x, model.weight_matrices[layer], options).allowed_sends())
        model = model.replace(num_sends=tuple(sends))
        if layer == 2:
            break
        y = _layer(model, layer, x, matmul)
        positive = y[y > 0]
        q = float(np.percentile(positive, options.activation_percentile)) if positive.size else 0.
        shift = next((s for s in range(options.max_relu_shift + 1) if q < (X_MAX + 1) * 2 ** s),
                     options.max_relu_shift)
        shifts = list(model.relu_shifts)
        shifts[layer] = shift
        model = model.replace(relu_shifts=tuple(shifts))
        x = converting_relu(y, shift)
    return model


def _score(model, x, labels, start, matmul, batch_size=1000) -> tuple[float, float]:
    """Accuracy and mean logit margin (true class minus best other, LSB) from layer `start`."""
    n_rows = x.shape[0] // len(labels)  # im2col rows per image for layer 0
    correct, margin = 0, 0.0
    for i in range(0, len(labels), batch_size):
        logits = _run(model, x[i * n_rows:(i + batch_size) * n_rows], matmul, start)
        lab = labels[i:i + batch_size]
        true = logits[np.arange(len(lab)), lab]
        others = np.where(np.arange(N_CLASSES) == lab[:, None], -np.inf, logits).max(axis=1)
        correct += int(np.sum(np.argmax(logits, axis=1) == lab))
        margin += float(np.sum(true - others))
    return correct / len(labels), margin / len(labels)


def quantize(weights: FloatWeights, images, labels, matmul_factory: Callable[[], MatMul],
             options: QuantizeOptions = QuantizeOptions()) -> IntegerModel:
    """Convert float weights into an :class:`IntegerModel` for the chip's number formats.

    1. weights: per layer, the `weight_percentile` of |w| becomes 63;
    2. input: the `activation_percentile` of nonzero pixels becomes 31;
    3. first guess for every layer: the largest ``num_sends`` whose tile outputs stay within
       the linear range, and the smallest ConvertingReLU shift that keeps the
       `activation_percentile` of positive outputs within 0..31;
    4. layer by layer, try every (num_sends, shift) within the linear range, re-derive the later
       layers with the first guess, and keep the pair with the best accuracy on the calibration
       images under ``matmul_factory()`` (ties: the larger mean logit margin, then fewer sends,
       then the smaller shift).

    Parameters
    ----------
    weights : FloatWeights
        Trained float weights (the float network sees pixels / 255).
    images : array-like of shape (n_images, 28, 28)
        Calibration pixels 0..255 (training data, never the test set).
    labels : array-like of shape (n_images,)
        Their classes 0..9.
    matmul_factory : callable () -> matmul
        Returns a fresh backend per accuracy evaluation, e.g.
        ``lambda: mock_matmul(np.random.default_rng(0))``; a fixed seed compares candidates
        under the same noise.
    options : QuantizeOptions, default=QuantizeOptions()

    Returns
    -------
    model : IntegerModel
    """
    images, labels = _check_images(images), np.asarray(labels)
    if labels.shape != images.shape[:1] or not len(labels):
        raise ValueError("need one label per calibration image and at least one image")
    int_weights, scales = quantize_weights(weights, options.weight_percentile)
    gain, shift = choose_input_quantization(images, options.activation_percentile,
                                            options.input_shift)
    model = IntegerModel(**int_weights, input_gain=gain, input_shift=shift, num_sends=(1, 1, 1),
                         relu_shifts=(2, 2), weight_scales=scales)
    exact = exact_matmul(options.gain)
    model = _first_guess(model, _first_input(model, images), 0, options)
    logger.info("first guess: num_sends %s, relu_shifts %s", model.num_sends, model.relu_shifts)
    for layer in range(3):
        x_exact = _input_of(model, images, exact, layer)
        x_noisy = _input_of(model, images, matmul_factory(), layer)
        stats = _LayerStats(x_exact, model.weight_matrices[layer], options)
        shifts = range(options.max_relu_shift + 1) if layer < 2 else [None]
        best = None
        for n in stats.allowed_sends():
            for s in shifts:
                sends = model.num_sends[:layer] + (n,) + model.num_sends[layer + 1:]
                cand = model.replace(num_sends=sends)
                if s is not None:
                    cand = cand.replace(relu_shifts=cand.relu_shifts[:layer] + (s,)
                                        + cand.relu_shifts[layer + 1:])
                if layer < 2:
                    x_next = converting_relu(_layer(cand, layer, x_exact, exact), s)
                    cand = _first_guess(cand, x_next, layer + 1, options)
                acc, margin = _score(cand, x_noisy, labels, layer, matmul_factory())
                key = (acc, margin, -n, -(s or 0))
                if best is None or key > best[0]:
                    best = (key, cand)
        model = best[1]
        logger.info("layer %s: num_sends %d, relu shift %s, out of range %.2g %%, "
                    "calibration accuracy %.4f", LAYERS[layer], model.num_sends[layer],
                    model.relu_shifts[layer] if layer < 2 else "-",
                    100 * stats.out_of_range(model.num_sends[layer]), best[0][0])
    return model
