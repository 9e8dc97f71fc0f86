"""Activities of daily living from smartphone sensors (UCI HAPT) as an application.

Task (:mod:`infer.har_data`): windows of 128 samples (2.56 s at 50 Hz) of the six channels
acc-x/y/z (g, gravity included) and gyro-x/y/z (rad/s), one of six activities each; test subjects
2, 4, 9, 10, 12, 13, 18, 20, 24, validation subjects 3, 8, 16, 22, 27, the rest train.

Input encoding: the chip takes unsigned 5-bit inputs, the sensors are signed. Each channel ``c`` is
divided by a scale ``s_c`` (a percentile of |signal| over the training windows), then

- ``"split"`` (the shipped model): two input channels per sensor channel, the positive part and the
  negative part, ``x+ = min(31, round(31 * max(v / s_c, 0)))`` and
  ``x- = min(31, round(31 * max(-v / s_c, 0)))``: 12 input channels; the signed weights of the two
  halves carry the sign (a linear layer sees ``w+ x+ + w- x-``);
- ``"offset"``: one channel, ``x = clip(round(16 + 15 * v / s_c), 0, 31)`` (zero at 16).

The float network sees the same encoding before rounding, divided by 31 (values 0..1), so the
integer model differs from it only by rounding, the chip's number formats and the chip.

Network (no biases; shapes per window, the architecture chosen on the validation subjects, see
``benchmarks/train_har.py``)::

    12 x 128 activations -> Conv1d 12->32 channels, kernel 8, stride 4 -> 32 x 31 -> ConvertingReLU
    -> Linear 992->64 -> ConvertingReLU -> Linear 64->6 -> logits (output LSB)

Data: J.-L. Reyes-Ortiz, L. Oneto, A. Samà, X. Parra, D. Anguita, Neurocomputing 171 (2016)
754-767; CC BY 4.0.
"""
from __future__ import annotations

import numpy as np

from bss2_calib.chipsim.geometry import ACT_MAX

from .. import har_data
from . import quantize as Q
from .common import App, Architecture, Layer

__all__ = ["APP", "ARCH", "ENCODINGS", "architecture", "check_input", "choose_scale", "encode", "float_encoding", "float_input",
           "quantize"]

ENCODINGS = ("split", "offset")
N_SENSORS = len(har_data.CHANNELS)


def architecture(encoding="split", channels=16, kernel=8, stride=4, hidden=64):
    """The HAR network for an input encoding and layer sizes (see the module docstring)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    c_in = 2 * N_SENSORS if encoding == "split" else N_SENSORS
    length = (har_data.WINDOW - kernel) // stride + 1
    return Architecture("har", (c_in, har_data.WINDOW), (
        Layer("conv", "conv1d", (channels, c_in, kernel), stride=stride),
        Layer("fc1", "linear", (channels * length, hidden)),
        Layer("fc2", "linear", (hidden, len(har_data.ACTIVITIES))),
    ))


#: the architecture chosen on the validation subjects (benchmarks/train_har.py --select)
ARCH = architecture("split", channels=32, kernel=8, stride=4, hidden=64)


def check_input(params):
    """Validate ``{"input_encoding": "split" | "offset", "input_scale": 6 positive floats}``."""
    enc, scale = params.get("input_encoding"), params.get("input_scale")
    if enc not in ENCODINGS:
        raise ValueError(f"input_encoding must be one of {ENCODINGS}, got {enc!r}")
    if not isinstance(scale, (list, tuple)) or len(scale) != N_SENSORS \
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and np.isfinite(s) and s > 0
                       for s in scale):
        raise ValueError(f"input_scale must be {N_SENSORS} finite positive numbers, got {scale!r}")
    return {"input_encoding": enc, "input_scale": [float(s) for s in scale]}


def _check_windows(x):
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1:] != (N_SENSORS, har_data.WINDOW) or x.dtype.kind != "f":
        raise ValueError(f"windows must be floats of shape (n, {N_SENSORS}, {har_data.WINDOW}), "
                         f"got {x.dtype} {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("windows hold NaN or inf")
    return x


def _encode_float(x, params):
    """The encoding before rounding, in activation units 0..31."""
    params = check_input(params)
    v = _check_windows(x).astype(np.float64) / np.asarray(params["input_scale"])[:, None]
    if params["input_encoding"] == "split":
        return np.minimum(ACT_MAX * np.concatenate([np.maximum(v, 0), np.maximum(-v, 0)], axis=1), ACT_MAX)
    return np.clip(16.0 + 15.0 * v, 0, ACT_MAX)


def encode(x, params):
    """Windows (n, 6, 128) in g and rad/s -> activations (n, 12 or 6, 128), uint8 0..31."""
    return np.rint(_encode_float(x, params)).astype(np.uint8)


def float_encoding(x, params):
    """Windows -> the float network's input: the encoding ``params`` unrounded, divided by 31 (0..1)."""
    return _encode_float(x, params) / ACT_MAX


def float_input(x, weights):
    """Windows -> the float network's input for ``weights`` (their own encoding)."""
    return float_encoding(x, weights.input)


def choose_scale(x, percentile):
    """Per-channel scale: the ``percentile`` of |signal| over the windows ``x`` (training data)."""
    return [float(s) for s in np.percentile(np.abs(_check_windows(x)), percentile, axis=(0, 2))]


def _load(subjects, limit):
    w, _ = har_data.load_windows()
    part = w.of_subjects(subjects)
    return (part.x, part.y) if limit is None else (part.x[:limit], part.y[:limit])


def load_test(limit=None):
    """The test subjects' windows and classes (first ``limit`` windows if given)."""
    return _load(har_data.TEST_SUBJECTS, limit)


def load_train(limit=None):
    """The training subjects' windows (validation subjects included) and classes."""
    return _load(har_data.TRAIN_SUBJECTS, limit)


APP = App(ARCH, har_data.ACTIVITIES, ("input_encoding", "input_scale"), check_input, encode, float_input,
          load_test, load_train, ("har_hil.npz", "har_int.npz"), unit="windows")


def quantize(weights, x, labels, engine_factory, options=Q.QuantizeOptions()):
    """:func:`infer.apps.quantize.quantize` with the float weights' own input encoding."""
    params = check_input(weights.input)
    return Q.quantize(weights, encode(x, params), labels, engine_factory, params, options)
