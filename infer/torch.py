"""PyTorch layers whose forward pass runs on a simulated chip (extra ``[torch]``).

As in the reference library (hxtorch), the forward pass computes on the chip
through an :class:`~infer.engine.Engine`, and the backward pass goes through
the ideal linear model ``y = gain * num_sends * x @ w``, with ``gain`` *measured*
on the engine first (:meth:`Engine.measure`, once per ``num_sends``). Inputs
and weights are rounded in the forward pass; their gradients pass straight
through the rounding. :class:`ReLU` passes the gradient where its input is
positive; :class:`ConvertingReLU` also divides it by ``2**shift``.

One refinement over the reference: with ``mask_saturated=True`` (the default)
no gradient flows through outputs that the hardware saturated (a product at
-128 or 127, a ConvertingReLU output clamped at 31), which is the derivative
of the clamp. Without it, hardware-in-the-loop training pushes activations
into saturation, where the linear model promises gains the chip cannot give
(measured on MNIST: 14 % instead of 1 % saturated hidden outputs after two
epochs, and a loss of accuracy instead of a gain).

The float weights of a layer are shadow weights in units of the chip's 6-bit
codes: the forward pass sends ``round(clamp(weight, -63, 63))``. A "mock"
is simply an engine on a ``hxtorch-mock`` chip.

Importing this module imports torch; nothing else in :mod:`infer` does.
"""
import numpy as np
import torch

from bss2_calib.chipsim.geometry import ACT_MAX, W_MAX

from .engine import Y_MAX, Y_MIN, _run_param
from .errors import InferValueError
from .layers import pick_engine

__all__ = ["Conv1d", "Conv2d", "ConvertingReLU", "Linear", "ReLU", "conv1d", "conv2d", "converting_relu",
           "matmul", "relu"]


class _ChipMatmul(torch.autograd.Function):
    """Forward on the chip, backward through the measured linear model."""

    @staticmethod
    def forward(ctx, x, w, engine, num_sends, wait_between_events, scale, mask_saturated):
        x_int = torch.round(x.detach())
        w_int = torch.round(w.detach())
        y = engine.matmul(x_int.cpu().numpy(), w_int.cpu().numpy(), num_sends=num_sends,
                          wait_between_events=wait_between_events)
        y = torch.from_numpy(y).to(dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
        inside = (y > Y_MIN) & (y < Y_MAX) if mask_saturated else torch.ones((), dtype=torch.bool)
        ctx.save_for_backward(x_int, w_int, inside)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx, grad):
        x_int, w_int, inside = ctx.saved_tensors
        grad = grad * inside.to(grad.dtype)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = (grad @ w_int.to(grad.dtype).T) * ctx.scale
        if ctx.needs_input_grad[1]:
            gw = (x_int.to(grad.dtype).T @ grad) * ctx.scale
        return gx, gw, None, None, None, None, None


def matmul(x, w, *, engine, num_sends=None, wait_between_events=None, mask_saturated=True):
    """``x @ w`` on the chip, differentiable through the measured linear model.

    Parameters
    ----------
    x : Tensor of shape (batch, n_in) or (n_in,)
        Activations; rounded, must then lie in 0..31.
    w : Tensor of shape (n_in, n_out)
        Weights; rounded, must then lie in -63..63.
    engine : Engine
    num_sends, wait_between_events : int or None, default=None
        None uses the engine's defaults.
    mask_saturated : bool, default=True
        No gradient through outputs at -128 or 127.

    Returns
    -------
    Tensor of shape (batch, n_out) or (n_out,)
        The engine's output (raw LSB, or LSB at the target gain when calibrated).
    """
    n = engine.num_sends if num_sends is None else _run_param("num_sends", num_sends)
    gain = engine.measure(num_sends=n).gain
    return _ChipMatmul.apply(x, w, engine, n, wait_between_events, gain * n, bool(mask_saturated))


def _unfold_conv(x, w, engine, stride, padding, num_sends, wait, dims, mask_saturated):
    if x.dim() != dims + 2 or w.dim() != dims + 2:
        raise InferValueError(f"conv{dims}d needs input (batch, channels, ...) and weight (out, in, ...) with "
                              f"{dims + 2} dimensions, got {tuple(x.shape)} and {tuple(w.shape)}")
    if x.shape[1] != w.shape[1]:
        raise InferValueError(f"conv weight expects {w.shape[1]} input channels, the input has {x.shape[1]}")
    x4, w4 = (x, w) if dims == 2 else (x.unsqueeze(2), w.unsqueeze(2))
    st = (stride, stride) if isinstance(stride, int) else tuple(stride)
    pd = (padding, padding) if isinstance(padding, int) else tuple(padding)
    if dims == 1:
        st, pd = (1, st[0]), (0, pd[0])
    kh, kw = w4.shape[2:]
    cols = torch.nn.functional.unfold(x4, (kh, kw), padding=pd, stride=st)  # (N, C*kh*kw, L)
    n, k, locs = cols.shape
    oh = (x4.shape[2] + 2 * pd[0] - kh) // st[0] + 1
    ow = (x4.shape[3] + 2 * pd[1] - kw) // st[1] + 1
    y = matmul(cols.transpose(1, 2).reshape(n * locs, k), w4.reshape(w4.shape[0], -1).T, engine=engine,
               num_sends=num_sends, wait_between_events=wait, mask_saturated=mask_saturated)
    y = y.reshape(n, oh, ow, -1).permute(0, 3, 1, 2)
    return y if dims == 2 else y[:, :, 0, :]


def conv1d(x, w, *, engine, stride=1, padding=0, num_sends=None, wait_between_events=None, mask_saturated=True):
    """1-D convolution on the chip (one engine call per batch); see :func:`infer.functional.conv1d`."""
    return _unfold_conv(x, w, engine, stride, padding, num_sends, wait_between_events, 1, mask_saturated)


def conv2d(x, w, *, engine, stride=1, padding=0, num_sends=None, wait_between_events=None, mask_saturated=True):
    """2-D convolution on the chip (one engine call per batch); see :func:`infer.functional.conv2d`."""
    return _unfold_conv(x, w, engine, stride, padding, num_sends, wait_between_events, 2, mask_saturated)


class _ConvertingReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, shift, mask_saturated):
        ctx.save_for_backward(x)
        ctx.shift, ctx.mask_saturated = shift, mask_saturated
        return torch.clamp(torch.floor(torch.relu(x) / 2 ** shift), 0, ACT_MAX)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        passing = x > 0
        if ctx.mask_saturated:
            passing &= x < (ACT_MAX + 1) * 2 ** ctx.shift
        return grad * passing.to(grad.dtype) / 2 ** ctx.shift, None, None


def relu(x):
    """``max(x, 0)``; gradient passes where x > 0."""
    return torch.relu(x)


def converting_relu(x, shift=2, mask_saturated=True):
    """ReLU, floor of a right shift by ``shift`` bits, clamp to 0..31.

    The gradient is ``(x > 0) / 2**shift``, and 0 where the output is clamped at 31 if
    ``mask_saturated``.
    """
    if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= 7:
        raise InferValueError(f"shift must be an integer in 0..7, got {shift!r}")
    return _ConvertingReLU.apply(x, shift, bool(mask_saturated))


class _ChipModule(torch.nn.Module):
    def __init__(self, shape, weight, generator, num_sends, wait_between_events, engine, mask_saturated=True):
        super().__init__()
        self.mask_saturated = bool(mask_saturated)
        if weight is None:
            fan_in = int(np.prod(shape[1:]))
            bound = float(max(1, min(W_MAX, round(2 * W_MAX / np.sqrt(fan_in)))))
            weight = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        weight = torch.as_tensor(np.asarray(weight) if not torch.is_tensor(weight) else weight,
                                 dtype=torch.float32).clone()
        if tuple(weight.shape) != tuple(shape):
            raise InferValueError(f"weight must have shape {tuple(shape)}, got {tuple(weight.shape)}")
        self.weight = torch.nn.Parameter(weight)
        self.num_sends = _run_param("num_sends", num_sends)
        self.wait_between_events = _run_param("wait_between_events", wait_between_events)
        self.engine = engine

    def _engine(self, engine):
        return pick_engine(self, engine)

    def _w(self):
        return torch.clamp(self.weight, -W_MAX, W_MAX)

    @torch.no_grad()
    def clamp_weights_(self):
        """Clamp the shadow weights to -63..63 in place (call after an optimiser step)."""
        self.weight.clamp_(-W_MAX, W_MAX)
        return self

    def integer_weight(self):
        """The weights the chip receives, as an int64 numpy array (torch layout)."""
        return torch.round(self._w().detach()).to(torch.int64).cpu().numpy()

    def extra_repr(self):
        return f"num_sends={self.num_sends}, wait_between_events={self.wait_between_events}"


class Linear(_ChipModule):
    """``y = x @ weight.T`` on the chip (no bias).

    Parameters
    ----------
    in_features, out_features : int
    weight : array-like or Tensor of shape (out_features, in_features), optional
        Initial shadow weights (chip codes); random if omitted.
    generator : torch.Generator, optional
        Source of the random initial weights.
    num_sends : int, default=1
    wait_between_events : int, default=5
    engine : Engine, optional
        May also be set later (``layer.engine = ...``) or passed to ``forward``.
    mask_saturated : bool, default=True
        No gradient through outputs the chip saturated (-128 or 127).
    """

    def __init__(self, in_features, out_features, *, weight=None, generator=None, num_sends=1,
                 wait_between_events=5, engine=None, mask_saturated=True):
        super().__init__((out_features, in_features), weight, generator, num_sends, wait_between_events, engine,
                         mask_saturated)

    def forward(self, x, engine=None):
        return matmul(x, self._w().T, engine=self._engine(engine), num_sends=self.num_sends,
                      wait_between_events=self.wait_between_events, mask_saturated=self.mask_saturated)


class Conv1d(_ChipModule):
    """1-D convolution on the chip (no bias); arguments as :class:`infer.layers.Conv1d`."""

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0, weight=None, generator=None,
                 num_sends=1, wait_between_events=5, engine=None, mask_saturated=True):
        super().__init__((out_channels, in_channels, kernel_size), weight, generator, num_sends,
                         wait_between_events, engine, mask_saturated)
        self.stride, self.padding = stride, padding

    def forward(self, x, engine=None):
        return conv1d(x, self._w(), engine=self._engine(engine), stride=self.stride, padding=self.padding,
                      num_sends=self.num_sends, wait_between_events=self.wait_between_events,
                      mask_saturated=self.mask_saturated)


class Conv2d(_ChipModule):
    """2-D convolution on the chip (no bias); arguments as :class:`infer.layers.Conv2d`."""

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0, weight=None, generator=None,
                 num_sends=1, wait_between_events=5, engine=None, mask_saturated=True):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        super().__init__((out_channels, in_channels, kh, kw), weight, generator, num_sends,
                         wait_between_events, engine, mask_saturated)
        self.stride, self.padding = stride, padding

    def forward(self, x, engine=None):
        return conv2d(x, self._w(), engine=self._engine(engine), stride=self.stride, padding=self.padding,
                      num_sends=self.num_sends, wait_between_events=self.wait_between_events,
                      mask_saturated=self.mask_saturated)


class ReLU(torch.nn.Module):
    """``max(x, 0)``."""

    def forward(self, x):
        return relu(x)


class ConvertingReLU(torch.nn.Module):
    """ReLU, right shift by ``shift`` bits, clamp to 0..31; gradient divided by ``2**shift``.

    Parameters
    ----------
    shift : int, default=2
    mask_saturated : bool, default=True
        No gradient where the output is clamped at 31.
    """

    def __init__(self, shift=2, mask_saturated=True):
        super().__init__()
        converting_relu(torch.zeros(1), shift)  # validates
        self.shift, self.mask_saturated = shift, bool(mask_saturated)

    def forward(self, x):
        return converting_relu(x, self.shift, self.mask_saturated)

    def extra_repr(self):
        return f"shift={self.shift}"
