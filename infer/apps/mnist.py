"""The MNIST network of the BrainScaleS-2 inference paper as an application.

Network (no biases; shapes per image)::

    28x28 pixels 0..255 --input quantization--> 1x28x28 activations 0..31, zero-padded to 30x30
    -> Conv2d 1->20 channels, 10x10 kernel, stride 5 -> 20x5x5 = 500 -> ConvertingReLU
    -> Linear 500->128 -> ConvertingReLU -> Linear 128->10 -> logits (output LSB)

The float network sees pixels / 255. The integer model's input quantization is
``min(31, round(pixel * input_gain / 2**input_shift))`` (:func:`quantize_images`), with the gain
chosen so that a percentile of the nonzero training pixels maps onto 31. Model files keep the
format of the first release (``bss2-calib/mnist-integer-model``, ``input_gain`` and
``input_shift`` in the metadata).

MNIST: Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0.
"""
from __future__ import annotations

import numpy as np

from bss2_calib.chipsim.geometry import ACT_MAX

from . import quantize as Q
from .common import App, Architecture, Layer, as_int

__all__ = ["APP", "ARCH", "choose_input_quantization", "quantize", "quantize_images"]

ARCH = Architecture("mnist", (1, 28, 28), (
    Layer("conv", "conv2d", (20, 1, 10, 10), stride=5, padding=1),
    Layer("fc1", "linear", (500, 128)),
    Layer("fc2", "linear", (128, 10)),
))


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"images must have shape (n, 28, 28), got {images.shape}")
    return images


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
    return np.minimum((p * gain + ((1 << shift) >> 1)) >> shift, ACT_MAX).astype(np.uint8)


def choose_input_quantization(images, percentile: float = 99.9, shift: int = 8):
    """Input gain such that the ``percentile`` of nonzero pixels maps onto 31.

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
    return max(1, min(65535, round(ACT_MAX * 2 ** shift / ref))), shift


def check_input(params):
    """Validate ``{"input_gain": 1..65535, "input_shift": 0..16}``."""
    return {"input_gain": as_int(params["input_gain"], "input_gain", 1, 65535),
            "input_shift": as_int(params["input_shift"], "input_shift", 0, 16)}


def encode(images, params):
    """Pixels (n, 28, 28) -> activations (n, 1, 28, 28), uint8 0..31."""
    return quantize_images(_check_images(images), params["input_gain"], params["input_shift"])[:, None]


def float_input(images, weights=None):
    """Pixels -> the float network's input, pixels / 255 of shape (n, 1, 28, 28)."""
    return np.asarray(_check_images(images), np.float64)[:, None] / 255.0


def load_test(limit=None):
    from ..data import load_mnist

    return load_mnist("test", limit=limit)


def load_train(limit=None):
    from ..data import load_mnist

    return load_mnist("train", limit=limit)


APP = App(ARCH, tuple(str(d) for d in range(10)), ("input_gain", "input_shift"), check_input, encode,
          float_input, load_test, load_train, ("mnist_hil.npz", "mnist_int.npz"), unit="images")


def quantize(weights, images, labels, engine_factory, options=Q.QuantizeOptions()):
    """:func:`infer.apps.quantize.quantize` with the input gain from the calibration images' pixels.

    Parameters
    ----------
    weights : FloatWeights
        Of :data:`ARCH` (the float network sees pixels / 255).
    images : array-like of shape (n_images, 28, 28)
        Calibration pixels 0..255 (training data, never the test set).
    labels : array-like of shape (n_images,)
    engine_factory : callable () -> engine
    options : QuantizeOptions, default=QuantizeOptions()
    """
    images = _check_images(images)
    gain, shift = choose_input_quantization(images, options.activation_percentile, options.input_shift)
    params = {"input_gain": gain, "input_shift": shift}
    return Q.quantize(weights, encode(images, params), labels, engine_factory, params, options)
