"""Functional API in the reference library's vocabulary, on numpy arrays (no torch).

Every product runs on an :class:`~infer.engine.Engine`, passed explicitly. A
convolution is lowered with im2col to **one** engine call for the whole batch.
Layouts follow PyTorch: activations (batch, channels, length) or
(batch, channels, height, width); weights of a convolution (out_channels,
in_channels, kernel...); weights of :func:`matmul` (n_in, n_out).

Examples
--------
>>> from chipsim import Chip
>>> from infer import Engine
>>> engine = Engine(Chip(0, "noiseless"))
>>> x = np.full((1, 1, 6), 31)
>>> w = np.full((2, 1, 3), 40)
>>> conv1d(x, w, engine=engine, stride=3)  # round(0.002 * 3 * 31 * 40) = 7
array([[[7., 7.],
        [7., 7.]]])
>>> converting_relu(np.array([-5.0, 3.9, 4.0, 200.0]), shift=2)
array([ 0,  0,  1, 31])
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bss2_calib.chipsim.geometry import ACT_MAX

from .errors import InferValueError

__all__ = ["argmax", "conv1d", "conv2d", "converting_relu", "im2col_1d", "im2col_2d", "matmul",
           "relu"]


def _pair(v, name, lo):
    t = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else tuple(v) \
        if isinstance(v, (tuple, list)) else None
    if t is None or len(t) != 2 or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                                            and a >= lo for a in t):
        raise InferValueError(f"{name} must be an integer >= {lo} or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


def _single(v, name, lo):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise InferValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def matmul(x, w, *, engine, num_sends=None, wait_between_events=None):
    """``x @ w`` on the engine's chips; see :meth:`infer.engine.Engine.matmul`.

    Parameters
    ----------
    x : array-like of int, shape (batch, n_in) or (n_in,)
        Activations 0..31.
    w : array-like of int, shape (n_in, n_out)
        Weights -63..63.
    engine : Engine
    num_sends, wait_between_events : int or None, default=None
        None uses the engine's defaults.

    Returns
    -------
    ndarray of float64, shape (batch, n_out) or (n_out,)
    """
    return engine.matmul(x, w, num_sends=num_sends, wait_between_events=wait_between_events)


def im2col_1d(x, kernel_size, stride=1, padding=0):
    """Patches of a 1-D convolution.

    Parameters
    ----------
    x : ndarray of shape (batch, channels, length)
    kernel_size, stride : int, >= 1
    padding : int, default=0
        Zeros on each end, >= 0.

    Returns
    -------
    patches : ndarray of shape (batch * out_length, channels * kernel_size)
        Rows ordered (sample, position); columns (channel, tap), matching
        ``weight.reshape(out_channels, -1)``.
    out_length : int
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise InferValueError(f"conv1d input must have shape (batch, channels, length), got {x.shape}")
    k, s, p = _single(kernel_size, "kernel_size", 1), _single(stride, "stride", 1), _single(padding, "padding", 0)
    if p:
        x = np.pad(x, ((0, 0), (0, 0), (p, p)))
    if x.shape[2] < k:
        raise InferValueError(f"kernel of {k} longer than the padded input of {x.shape[2]}")
    win = sliding_window_view(x, k, axis=2)[:, :, ::s]  # (batch, C, L_out, k)
    n, c, lo, _ = win.shape
    return win.transpose(0, 2, 1, 3).reshape(n * lo, c * k), lo


def im2col_2d(x, kernel_size, stride=1, padding=0):
    """Patches of a 2-D convolution.

    Parameters
    ----------
    x : ndarray of shape (batch, channels, height, width)
    kernel_size, stride : int or (int, int), >= 1
    padding : int or (int, int), default=0
        Zeros on each border, >= 0.

    Returns
    -------
    patches : ndarray of shape (batch * out_h * out_w, channels * kh * kw)
        Rows ordered (sample, output row, output column); columns (channel, kernel row,
        kernel column), matching ``weight.reshape(out_channels, -1)``.
    out_shape : (int, int)
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise InferValueError(f"conv2d input must have shape (batch, channels, height, width), got {x.shape}")
    (kh, kw), (sh, sw), (ph, pw) = (_pair(kernel_size, "kernel_size", 1), _pair(stride, "stride", 1),
                                    _pair(padding, "padding", 0))
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    if x.shape[2] < kh or x.shape[3] < kw:
        raise InferValueError(f"kernel {kh}x{kw} larger than the padded input {x.shape[2]}x{x.shape[3]}")
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # (n, C, oh, ow, kh, kw)
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw), (oh, ow)


def _conv_weight(w, ndim, x):
    from .engine import check_weights

    if x.ndim != ndim:
        raise InferValueError(f"conv{ndim - 2}d input must have {ndim} dimensions (batch, channels, ...), "
                              f"got shape {x.shape}")
    in_channels = x.shape[1]
    w = np.asarray(w)
    if w.ndim != ndim:
        raise InferValueError(f"conv weight must have {ndim} dimensions (out, in, kernel...), got {w.shape}")
    if w.shape[1] != in_channels:
        raise InferValueError(f"conv weight expects {w.shape[1]} input channels, the input has {in_channels}")
    return check_weights(w.reshape(w.shape[0], -1).T)


def conv1d(x, w, *, engine, stride=1, padding=0, num_sends=None, wait_between_events=None):
    """1-D convolution (cross-correlation, no bias) as one engine call for the whole batch.

    Parameters
    ----------
    x : array-like of int, shape (batch, in_channels, length)
        Activations 0..31.
    w : array-like of int, shape (out_channels, in_channels, kernel_size)
        Weights -63..63.
    engine : Engine
    stride : int, default=1
    padding : int, default=0
    num_sends, wait_between_events : int or None, default=None

    Returns
    -------
    ndarray of float64, shape (batch, out_channels, out_length)
    """
    x = np.asarray(x)
    wm = _conv_weight(w, 3, x)
    patches, lo = im2col_1d(x, np.shape(w)[2], stride, padding)
    y = engine.matmul(patches, wm, num_sends=num_sends, wait_between_events=wait_between_events)
    return y.reshape(x.shape[0], lo, -1).transpose(0, 2, 1)


def conv2d(x, w, *, engine, stride=1, padding=0, num_sends=None, wait_between_events=None):
    """2-D convolution (cross-correlation, no bias) as one engine call for the whole batch.

    Parameters
    ----------
    x : array-like of int, shape (batch, in_channels, height, width)
        Activations 0..31.
    w : array-like of int, shape (out_channels, in_channels, kh, kw)
        Weights -63..63.
    engine : Engine
    stride, padding : int or (int, int), default=1 and 0
    num_sends, wait_between_events : int or None, default=None

    Returns
    -------
    ndarray of float64, shape (batch, out_channels, out_h, out_w)
    """
    x = np.asarray(x)
    wm = _conv_weight(w, 4, x)
    patches, (oh, ow) = im2col_2d(x, np.shape(w)[2:], stride, padding)
    y = engine.matmul(patches, wm, num_sends=num_sends, wait_between_events=wait_between_events)
    return y.reshape(x.shape[0], oh, ow, -1).transpose(0, 3, 1, 2)


def relu(y):
    """``max(y, 0)`` (a new array)."""
    return np.maximum(np.asarray(y), 0)


def converting_relu(y, shift=2):
    """ReLU, right shift by ``shift`` bits (floor), clamp to 0..31: valid inputs of the next layer.

    Parameters
    ----------
    y : array-like of float or int
        Layer outputs in output LSB (finite).
    shift : int, default=2
        0..7 bits; 2 maps the int8 maximum 127 onto 31.

    Returns
    -------
    ndarray of int64, same shape as y
    """
    shift = _single(shift, "shift", 0)
    if shift > 7:
        raise InferValueError(f"shift must be 0..7 bits, got {shift}")
    y = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise InferValueError("converting_relu got NaN or inf")
    return np.clip(np.floor(np.maximum(y, 0.0) / 2.0 ** shift), 0, ACT_MAX).astype(np.int64)


def argmax(y, axis=1):
    """Index of the largest output (the first one on ties)."""
    return np.argmax(np.asarray(y), axis=axis)
