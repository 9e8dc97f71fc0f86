"""Training of the applications (needs torch): float training, and hardware-in-the-loop fine-tuning.

Float training (:func:`train_float`): the architecture's network in float (``torch.nn`` layers
without biases, ReLU between them) on the application's float input, Adam with a one-cycle
learning-rate schedule, cross-entropy.

Hardware-in-the-loop fine-tuning (:func:`train_hil`): starting from the quantized float-trained
:class:`~infer.apps.common.IntegerModel`, the network is rebuilt from the chip layers of
:mod:`infer.torch`: every forward pass runs on the (calibrated) chip, gradients flow through the
linear model with the gain measured on the chip. The float shadow weights are in chip codes;
after every optimiser step they are clamped to -63..63. The result is again an integer model
with the same input encoding, ``num_sends`` and ConvertingReLU shifts: it runs without torch.
The loss is the cross-entropy of ``logit_scale * logits`` (logits are output LSB, tens of LSB
apart, so they are scaled down to a softmax-friendly range).
"""
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import torch as chip_torch
from ..errors import InferValueError
from .common import FloatWeights

__all__ = ["FloatTrainOptions", "HILOptions", "chip_network", "float_network", "float_weights_of",
           "integer_model_of", "net_forward", "train_float", "train_hil", "train_step"]

log = logging.getLogger(__name__)


def _check_positive(obj, ints, floats):
    for name in ints:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "seed" else 1):
            raise InferValueError(f"{name} must be a positive integer, got {v!r}")
    for name in floats:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0 \
                or (v == 0 and name != "weight_decay"):
            raise InferValueError(f"{name} must be a positive number, got {v!r}")


# --------------------------------------------------------------------------- float

@dataclass(frozen=True)
class FloatTrainOptions:
    """How :func:`train_float` trains.

    Parameters
    ----------
    epochs : int, default=30
    batch_size : int, default=128
    lr : float, default=2e-3
        Peak Adam learning rate of the one-cycle schedule (15 % warm-up), > 0.
    weight_decay : float, default=0.0
        Adam's L2 penalty, >= 0.
    seed : int, default=0
        Seeds the initial weights and the shuffling.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self):
        _check_positive(self, ("epochs", "batch_size", "seed"), ("lr", "weight_decay"))


def float_network(arch):
    """``torch.nn.Sequential`` of the architecture in float: layers without biases, ReLU between."""
    nn, mods = torch.nn, []
    for i, layer in enumerate(arch.layers):
        if layer.kind == "linear":
            if i and arch.layers[i - 1].kind != "linear":
                mods.append(nn.Flatten())
            mods.append(nn.Linear(*layer.shape, bias=False))
        else:
            conv = nn.Conv1d if layer.kind == "conv1d" else nn.Conv2d
            mods.append(conv(layer.shape[1], layer.shape[0], layer.shape[2:] if layer.kind == "conv2d"
                             else layer.shape[2], stride=layer.stride, padding=layer.padding, bias=False))
        if i < len(arch.layers) - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def _weighted(net):
    return [m for m in net if hasattr(m, "weight")]


def float_weights_of(net, arch, input_params):
    """The :class:`FloatWeights` of a network built by :func:`float_network`."""
    ws = {}
    for layer, m in zip(arch.layers, _weighted(net)):
        w = m.weight.detach().cpu().numpy()
        ws[layer.name] = w.T if layer.kind == "linear" else w
    return FloatWeights(arch, ws, input_params)


def train_float(arch, x, labels, options=FloatTrainOptions(), *, on_epoch=None):
    """Train the float network of ``arch`` on inputs ``x`` (the application's float input).

    Parameters
    ----------
    arch : Architecture
    x : ndarray of shape (n, *arch.input_shape)
    labels : ndarray of int, shape (n,)
    options : FloatTrainOptions
    on_epoch : callable (epoch, net) -> None, optional
        Called after every epoch (for example to score validation data).

    Returns
    -------
    torch.nn.Sequential in eval mode
    """
    torch.manual_seed(options.seed)
    net = float_network(arch)
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(labels, np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps = options.epochs * ((len(yt) + options.batch_size - 1) // options.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=options.lr, total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(options.seed)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(options.epochs):
        t0, total, correct = time.perf_counter(), 0.0, 0
        net.train()
        for idx in torch.randperm(len(yt), generator=gen).split(options.batch_size):
            out = net(xt[idx])
            loss = loss_fn(out, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == yt[idx]).sum())
        log.info("epoch %2d/%d: loss %.4f, train acc %.4f, %.1f s", epoch + 1, options.epochs, total / len(yt),
                 correct / len(yt), time.perf_counter() - t0)
        net.eval()
        if on_epoch is not None:
            on_epoch(epoch, net)
    return net.eval()


# --------------------------------------------------------------------------- hardware in the loop

@dataclass(frozen=True)
class HILOptions:
    """How :func:`train_hil` fine-tunes.

    Parameters
    ----------
    epochs : int, default=10
        Passes over the training samples, >= 1.
    batch_size : int, default=100
        Samples per optimiser step, >= 1.
    lr : float, default=0.02
        Adam learning rate in weight codes per step, > 0; decays with a cosine to 0.
    logit_scale : float, default=0.3
        Factor applied to the logits (output LSB) before the softmax, > 0.
    seed : int, default=0
        Seed of the shuffling of the training samples.
    mask_saturated : bool, default=True
        No gradient through saturated outputs (see :mod:`infer.torch`).
    """

    epochs: int = 10
    batch_size: int = 100
    lr: float = 0.02
    logit_scale: float = 0.3
    seed: int = 0
    mask_saturated: bool = True

    def __post_init__(self):
        _check_positive(self, ("epochs", "batch_size", "seed"), ("lr", "logit_scale"))


def chip_network(model, engine=None, mask_saturated=True):
    """The integer model as chip layers (``torch.nn.Sequential``) on the integer input (n, *input_shape)."""
    mods, layers = [], model.arch.layers
    kw = {"engine": engine, "mask_saturated": mask_saturated}
    for i, layer in enumerate(layers):
        w = model.weights[layer.name].astype(np.float32)
        if layer.kind == "linear":
            if i and layers[i - 1].kind != "linear":
                mods.append(torch.nn.Flatten())
            mods.append(chip_torch.Linear(*layer.shape, weight=w.T, num_sends=model.num_sends[i], **kw))
        else:
            conv = chip_torch.Conv1d if layer.kind == "conv1d" else chip_torch.Conv2d
            mods.append(conv(layer.shape[1], layer.shape[0], layer.shape[2] if layer.kind == "conv1d"
                             else layer.shape[2:], stride=layer.stride, padding=layer.padding, weight=w,
                             num_sends=model.num_sends[i], **kw))
        if i < len(layers) - 1:
            mods.append(chip_torch.ConvertingReLU(model.relu_shifts[i], mask_saturated))
    return torch.nn.Sequential(*mods)


def _chip_layers(net):
    return [m for m in net if isinstance(m, chip_torch._ChipModule)]


def integer_model_of(net, template):
    """The integer model of a network built by :func:`chip_network` (settings from ``template``)."""
    ws = {}
    for layer, m in zip(template.arch.layers, _chip_layers(net)):
        w = m.integer_weight()
        ws[layer.name] = w.T if layer.kind == "linear" else w
    return template.replace(weights=ws)


def net_forward(net, x, engine=None):
    """Forward pass of a :func:`chip_network` network; ``engine``, if given, replaces the layers' own."""
    for m in net:
        x = m(x, engine) if isinstance(m, chip_torch._ChipModule) else m(x)
    return x


def train_step(net, optimizer, x, labels, logit_scale, engine=None):
    """One optimiser step: forward on the chip, backward through the linear model, weights clamped.

    Parameters
    ----------
    net : torch.nn.Sequential
        A :func:`chip_network` network.
    optimizer : torch.optim.Optimizer
        Over the network's weights.
    x : Tensor of shape (batch, *input_shape)
        Activations 0..31 (the application's encoding).
    labels : Tensor of int64, shape (batch,)
    logit_scale : float
        Factor applied to the logits before the softmax.
    engine : Engine, optional
        Runs the forward pass instead of the layers' own engine.

    Returns
    -------
    loss : Tensor (0-d, detached)
    logits : Tensor of shape (batch, n_classes) (detached)
    """
    logits = net_forward(net, x, engine)
    loss = torch.nn.functional.cross_entropy(logits * logit_scale, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for m in _chip_layers(net):
        m.clamp_weights_()
    return loss.detach(), logits.detach()


def train_hil(app, model, engine, raw, labels, options=HILOptions(), *, on_epoch=None):
    """Fine-tune ``model`` with the chip(s) of ``engine`` in the loop.

    Parameters
    ----------
    app : App
        Encodes the raw samples.
    model : IntegerModel
        Starting point (the quantized float-trained model).
    engine : Engine
        Runs every forward pass; its measured gain scales the backward pass.
    raw : array-like of shape (n, ...)
        Training samples in the application's raw form.
    labels : ndarray of shape (n,)
    options : HILOptions, default=HILOptions()
    on_epoch : callable (epoch, IntegerModel) -> None, optional
        Called after every epoch with the weights so far.

    Returns
    -------
    IntegerModel
        The fine-tuned weights with ``model``'s settings.
    """
    labels = np.asarray(labels)
    if len(labels) != len(raw) or not len(labels):
        raise InferValueError("need one label per training sample and at least one sample")
    net = chip_network(model, engine, options.mask_saturated)
    opt = torch.optim.Adam([m.weight for m in _chip_layers(net)], lr=options.lr)
    steps_per_epoch = (len(labels) + options.batch_size - 1) // options.batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=options.epochs * steps_per_epoch)
    rng = np.random.default_rng(options.seed)
    y_all = torch.from_numpy(labels.astype(np.int64))
    for epoch in range(options.epochs):
        order = rng.permutation(len(labels))
        t0, total, correct = time.perf_counter(), 0.0, 0
        for step in range(steps_per_epoch):
            idx = order[step * options.batch_size:(step + 1) * options.batch_size]
            x = torch.from_numpy(app.encode(raw[idx], model.input).astype(np.float32))
            loss, logits = train_step(net, opt, x, y_all[idx], options.logit_scale)
            sched.step()
            total += float(loss) * len(idx)
            correct += int((logits.argmax(1) == y_all[idx]).sum())
        log.info("epoch %d/%d: loss %.4f, train accuracy on chip %.4f, %.0f s", epoch + 1, options.epochs,
                 total / len(labels), correct / len(labels), time.perf_counter() - t0)
        if on_epoch is not None:
            on_epoch(epoch, integer_model_of(net, model))
    return integer_model_of(net, model)
