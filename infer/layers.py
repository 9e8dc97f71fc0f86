"""Numpy layers in the reference library's vocabulary (no torch).

Weights follow PyTorch's layout: ``Linear.weight`` is (out_features, in_features),
``Conv2d.weight`` is (out_channels, in_channels, kh, kw). Layers keep their
integer weights and run settings; the engine is given at construction or per
call (``layer(x, engine)``), so the same layer runs on any chip.

Examples
--------
>>> from chipsim import Chip
>>> from infer import Engine
>>> net = Sequential(Linear(4, 3, weight=np.full((3, 4), 50)), ConvertingReLU(shift=0))
>>> net(np.full((2, 4), 31), Engine(Chip(0, "noiseless")))  # round(0.002 * 4 * 31 * 50) = 12
array([[12, 12, 12],
       [12, 12, 12]])
"""
import numpy as np

from bss2_calib.chipsim.geometry import W_MAX

from . import functional as F
from .engine import _run_param, check_weights
from .errors import InferValueError

__all__ = ["Conv1d", "Conv2d", "ConvertingReLU", "Flatten", "Linear", "ReLU", "Sequential"]


def pick_engine(layer, engine):
    """The engine passed for this call, else the layer's own; a clear error if neither is set."""
    engine = engine if engine is not None else layer.engine
    if engine is None:
        raise InferValueError(f"{type(layer).__name__} needs an engine (at construction, as .engine, or per call)")
    return engine


class _EngineLayer:
    """A layer that multiplies on the chip: integer weights, num_sends, wait_between_events, engine."""

    def __init__(self, weight_shape, weight, rng, num_sends, wait_between_events, engine):
        if weight is None:
            if not isinstance(rng, np.random.Generator):
                raise InferValueError("give either weight or rng (a numpy.random.Generator) to draw it")
            fan_in = int(np.prod(weight_shape[1:]))
            bound = max(1, min(W_MAX, round(2 * W_MAX / np.sqrt(fan_in))))
            weight = rng.integers(-bound, bound + 1, size=weight_shape)
        w = np.asarray(weight)
        if w.shape != tuple(weight_shape):
            raise InferValueError(f"weight must have shape {tuple(weight_shape)}, got {w.shape}")
        check_weights(w.reshape(w.shape[0], -1))
        self.weight = np.array(w, dtype=np.int64)
        self.num_sends = _run_param("num_sends", num_sends)
        self.wait_between_events = _run_param("wait_between_events", wait_between_events)
        self.engine = engine

    def _engine(self, engine):
        return pick_engine(self, engine)

    def _run(self):
        return {"num_sends": self.num_sends, "wait_between_events": self.wait_between_events}


class Linear(_EngineLayer):
    """``y = x @ weight.T`` on the chip (no bias).

    Parameters
    ----------
    in_features, out_features : int
    weight : array-like of int, shape (out_features, in_features), optional
        Weights -63..63; drawn uniformly from ``rng`` if omitted.
    rng : numpy.random.Generator, optional
    num_sends : int, default=1
    wait_between_events : int, default=5
    engine : Engine, optional
    """

    def __init__(self, in_features, out_features, *, weight=None, rng=None, num_sends=1, wait_between_events=5,
                 engine=None):
        super().__init__((out_features, in_features), weight, rng, num_sends, wait_between_events, engine)

    def __call__(self, x, engine=None):
        return F.matmul(x, self.weight.T, engine=self._engine(engine), **self._run())


class Conv1d(_EngineLayer):
    """1-D convolution on the chip (no bias), one engine call per batch.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
    stride : int, default=1
    padding : int, default=0
    weight : array-like of int, shape (out_channels, in_channels, kernel_size), optional
    rng, num_sends, wait_between_events, engine : see :class:`Linear`
    """

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0, weight=None, rng=None,
                 num_sends=1, wait_between_events=5, engine=None):
        super().__init__((out_channels, in_channels, kernel_size), weight, rng, num_sends, wait_between_events,
                         engine)
        self.stride, self.padding = stride, padding

    def __call__(self, x, engine=None):
        return F.conv1d(x, self.weight, engine=self._engine(engine), stride=self.stride, padding=self.padding,
                        **self._run())


class Conv2d(_EngineLayer):
    """2-D convolution on the chip (no bias), one engine call per batch.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride : int or (int, int), default=1
    padding : int or (int, int), default=0
    weight : array-like of int, shape (out_channels, in_channels, kh, kw), optional
    rng, num_sends, wait_between_events, engine : see :class:`Linear`
    """

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0, weight=None, rng=None,
                 num_sends=1, wait_between_events=5, engine=None):
        kh, kw = F._pair(kernel_size, "kernel_size", 1)
        super().__init__((out_channels, in_channels, kh, kw), weight, rng, num_sends, wait_between_events, engine)
        self.stride, self.padding = stride, padding

    def __call__(self, x, engine=None):
        return F.conv2d(x, self.weight, engine=self._engine(engine), stride=self.stride, padding=self.padding,
                        **self._run())


class ReLU:
    """``max(y, 0)``."""

    def __call__(self, x, engine=None):
        return F.relu(x)


class ConvertingReLU:
    """ReLU, right shift by ``shift`` bits, clamp to 0..31 (the next layer's 5-bit input).

    Parameters
    ----------
    shift : int, default=2
    """

    def __init__(self, shift=2):
        F.converting_relu(np.zeros(1), shift)  # validates
        self.shift = shift

    def __call__(self, x, engine=None):
        return F.converting_relu(x, self.shift)


class Flatten:
    """(batch, ...) -> (batch, prod(...)) in C order (channel, row, column for conv outputs)."""

    def __call__(self, x, engine=None):
        x = np.asarray(x)
        return x.reshape(x.shape[0], -1)


class Sequential:
    """Layers applied in order; ``net(x, engine)`` hands the engine to every layer.

    Parameters
    ----------
    *layers : callables ``layer(x, engine)``
    """

    def __init__(self, *layers):
        self.layers = list(layers)

    def __call__(self, x, engine=None):
        for layer in self.layers:
            x = layer(x, engine)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)
