"""Float weights -> an :class:`~infer.apps.common.IntegerModel` for the chip's number formats.

One path for every application: per-layer weight scales from a percentile of |w|, then per layer
the ``num_sends`` and ConvertingReLU shift, first guessed from activation percentiles and then
searched for the best accuracy on calibration samples (training data, never the test set).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from bss2_calib.chipsim.geometry import ACT_MAX, ROWS, W_MAX

from .. import functional as F
from .common import IntegerModel, MockEngine, as_int, run_layers

__all__ = ["QuantizeOptions", "quantize", "quantize_weights"]

log = logging.getLogger(__name__)


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
        Percentile (0..100] of positive activations (and of an image's nonzero pixels) mapped
        onto the 5-bit maximum 31 by the first guess.
    weight_percentile : float, default=100.0
        Percentile (0..100] of |w| per layer mapped onto 63; larger weights are clipped.
    max_num_sends : int, default=16
        Largest `num_sends` tried, 1..255.
    max_relu_shift : int, default=5
        Largest ConvertingReLU shift tried, 0..7.
    input_shift : int, default=8
        Right shift of MNIST's input quantization in bits, 0..16 (sets the resolution of its gain).
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
        as_int(self.max_num_sends, "max_num_sends", 1, 255)
        as_int(self.max_relu_shift, "max_relu_shift", 0, 7)
        as_int(self.input_shift, "input_shift", 0, 16)


def quantize_weights(weights, percentile=100.0):
    """Scale each layer's weights so the ``percentile`` of |w| becomes 63, round and clip.

    Returns
    -------
    int_weights : dict of str to ndarray of int8
    scales : tuple of float
        Integer weight per unit of float weight, per layer.
    """
    int_weights, scales = {}, []
    for name in weights.arch.names:
        w = weights.weights[name].astype(np.float64)
        ref = np.percentile(np.abs(w), percentile)
        if not ref > 0:
            raise ValueError(f"{name}: all weights are zero")
        scale = W_MAX / ref
        int_weights[name] = np.clip(np.rint(w * scale), -W_MAX, W_MAX).astype(np.int8)
        scales.append(float(scale))
    return int_weights, tuple(scales)


class _LayerStats:
    """Ideal (noiseless, unclipped) tile products of one layer on calibration inputs."""

    def __init__(self, layer, x, w, options):
        x, w = layer.patches(x)[0].astype(np.float64), layer.matrix(w).astype(np.float64)
        tiles = [x[:, i:i + ROWS] @ w[i:i + ROWS] for i in range(0, x.shape[1], ROWS)]
        excess = np.abs(tiles) if len(tiles) > 1 else np.maximum(tiles[0], 0.0)
        self._excess = np.sort(np.ravel(excess))
        self._options = options

    def out_of_range(self, num_sends):
        """Fraction of tile outputs beyond the linear range at ``num_sends``."""
        limit = self._options.linear_range / (num_sends * self._options.gain)
        n = self._excess.size
        return float(n - np.searchsorted(self._excess, limit, side="right")) / n

    def allowed_sends(self):
        ok = [n for n in range(1, self._options.max_num_sends + 1)
              if self.out_of_range(n) <= self._options.max_out_of_range]
        return ok or [1]


def _input_of(model, x0, engine, layer):
    """The integer input of ``layer`` (0: ``x0``)."""
    if layer == 0:
        return x0
    return F.converting_relu(run_layers(model, x0, engine, 0, layer), model.relu_shifts[layer - 1])


def _first_guess(model, x, start, options):
    """Set layers ``start``.. from percentiles, given the noiseless input ``x`` of ``start``.

    num_sends: the largest within the linear range; shift: the smallest that keeps the
    ``activation_percentile`` of positive outputs within 0..31.
    """
    exact = MockEngine(options.gain)
    last = len(model.arch.layers) - 1
    for i in range(start, last + 1):
        layer = model.arch.layers[i]
        stats = _LayerStats(layer, x, model.weights[layer.name], options)
        model = model.with_layer(i, num_sends=max(stats.allowed_sends()))
        if i == last:
            break
        y = run_layers(model, x, exact, i, i + 1)
        positive = y[y > 0]
        q = float(np.percentile(positive, options.activation_percentile)) if positive.size else 0.0
        shift = next((s for s in range(options.max_relu_shift + 1) if q < (ACT_MAX + 1) * 2 ** s),
                     options.max_relu_shift)
        model = model.with_layer(i, relu_shift=shift)
        x = F.converting_relu(y, shift)
    return model


def _score(model, x, labels, start, engine, batch_size=1000):
    """Accuracy and mean logit margin (true class minus best other, LSB) from layer ``start``."""
    correct, margin = 0, 0.0
    n_classes = model.arch.n_classes
    for i in range(0, len(labels), batch_size):
        logits = run_layers(model, x[i:i + batch_size], engine, start)
        lab = labels[i:i + batch_size]
        true = logits[np.arange(len(lab)), lab]
        others = np.where(np.arange(n_classes) == lab[:, None], -np.inf, logits).max(axis=1)
        correct += int(np.sum(np.argmax(logits, axis=1) == lab))
        margin += float(np.sum(true - others))
    return correct / len(labels), margin / len(labels)


def quantize(weights, x0, labels, engine_factory, input_params, options=QuantizeOptions()):
    """Convert float weights into an :class:`IntegerModel`.

    1. weights: per layer, the ``weight_percentile`` of |w| becomes 63;
    2. first guess for every layer: the largest ``num_sends`` whose tile outputs stay within the
       linear range, and the smallest ConvertingReLU shift that keeps the
       ``activation_percentile`` of positive outputs within 0..31;
    3. layer by layer, try every (num_sends, shift) within the linear range, re-derive the later
       layers with the first guess, and keep the pair with the best accuracy on the calibration
       samples under ``engine_factory()`` (ties: the larger mean logit margin, then fewer sends,
       then the smaller shift).

    Parameters
    ----------
    weights : FloatWeights
    x0 : ndarray of int, shape (n, *input_shape)
        The calibration samples already encoded by the application (0..31).
    labels : ndarray of int, shape (n,)
    engine_factory : callable () -> engine
        A fresh engine per accuracy evaluation, e.g. ``lambda: MockEngine(noise_std=2.0,
        rng=np.random.default_rng(0))``; a fixed seed compares candidates under the same noise.
    input_params : dict
        The application's input encoding, stored in the model.
    options : QuantizeOptions, default=QuantizeOptions()

    Returns
    -------
    IntegerModel
    """
    x0, labels = np.asarray(x0), np.asarray(labels)
    if len(labels) != len(x0) or not len(labels):
        raise ValueError("need one label per calibration sample and at least one sample")
    arch = weights.arch
    n = len(arch.layers)
    int_weights, scales = quantize_weights(weights, options.weight_percentile)
    model = IntegerModel(arch, int_weights, input_params, (1,) * n, (2,) * (n - 1), scales)
    exact = MockEngine(options.gain)
    model = _first_guess(model, x0, 0, options)
    log.info("first guess: num_sends %s, relu_shifts %s", model.num_sends, model.relu_shifts)
    for i, layer in enumerate(arch.layers):
        x_exact = _input_of(model, x0, exact, i)
        x_noisy = _input_of(model, x0, engine_factory(), i)
        stats = _LayerStats(layer, x_exact, model.weights[layer.name], options)
        best = None
        for sends in stats.allowed_sends():
            for s in (range(options.max_relu_shift + 1) if i < n - 1 else [None]):
                cand = model.with_layer(i, num_sends=sends, relu_shift=s)
                if s is not None:
                    x_next = F.converting_relu(run_layers(cand, x_exact, exact, i, i + 1), s)
                    cand = _first_guess(cand, x_next, i + 1, options)
                acc, margin = _score(cand, x_noisy, labels, i, engine_factory())
                key = (acc, margin, -sends, -(s or 0))
                if best is None or key > best[0]:
                    best = (key, cand)
        model = best[1]
        log.info("layer %s: num_sends %d, relu shift %s, out of range %.2g %%, calibration accuracy %.4f",
                 layer.name, model.num_sends[i], model.relu_shifts[i] if i < n - 1 else "-",
                 100 * stats.out_of_range(model.num_sends[i]), best[0][0])
    return model
