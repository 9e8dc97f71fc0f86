"""Hardware-in-the-loop fine-tuning of the MNIST integer model (needs torch).

Starting from the quantized float-trained :class:`~infer.mnist.IntegerModel`, the
network is rebuilt from the chip layers of :mod:`infer.torch`: every forward
pass runs on the (calibrated) chip, gradients flow through the linear model
with the gain measured on the chip. The float shadow weights are in chip codes;
after every optimiser step they are clamped to -63..63. The result is again an
:class:`~infer.mnist.IntegerModel` with the same input quantization,
``num_sends`` and ConvertingReLU shifts: it runs without torch.

The loss is the cross-entropy of ``logit_scale * logits`` (logits are output
LSB, tens of LSB apart, so they are scaled down to a softmax-friendly range).
"""
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import mnist
from . import torch as chip_torch
from .errors import InferValueError

__all__ = ["HILOptions", "build_network", "evaluate", "integer_model", "train", "train_step"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HILOptions:
    """How :func:`train` fine-tunes.

    Parameters
    ----------
    epochs : int, default=10
        Passes over the training images, >= 1.
    batch_size : int, default=100
        Images per optimiser step, >= 1.
    lr : float, default=0.02
        Adam learning rate in weight codes per step, > 0; decays with a cosine to 0.
    logit_scale : float, default=0.3
        Factor applied to the logits (output LSB) before the softmax, > 0.
    seed : int, default=0
        Seed of the shuffling of the training images.
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
        for name in ("epochs", "batch_size", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "seed" else 1):
                raise InferValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("lr", "logit_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise InferValueError(f"{name} must be a positive number, got {v!r}")


def build_network(model, engine=None, mask_saturated=True):
    """The MNIST integer model as chip layers (torch.nn.Sequential), input (n, 1, 28, 28) activations 0..31."""
    n0, n1, n2 = model.num_sends
    s0, s1 = model.relu_shifts
    m = {"engine": engine, "mask_saturated": mask_saturated}
    return torch.nn.Sequential(
        chip_torch.Conv2d(1, mnist.N_CHANNELS, mnist.KERNEL, stride=mnist.STRIDE, padding=mnist.PAD,
                          weight=model.conv.astype(np.float32), num_sends=n0, **m),
        chip_torch.ConvertingReLU(s0, mask_saturated), torch.nn.Flatten(),
        chip_torch.Linear(mnist.N_CONV, mnist.N_HIDDEN, weight=model.fc1.T.astype(np.float32), num_sends=n1, **m),
        chip_torch.ConvertingReLU(s1, mask_saturated),
        chip_torch.Linear(mnist.N_HIDDEN, mnist.N_CLASSES, weight=model.fc2.T.astype(np.float32), num_sends=n2, **m))


def integer_model(net, template):
    """The integer model of a network built by :func:`build_network` (settings from ``template``)."""
    return template.replace(conv=net[0].integer_weight(), fc1=net[3].integer_weight().T,
                            fc2=net[5].integer_weight().T)


def _inputs(model, images):
    x = mnist.quantize_images(images, model.input_gain, model.input_shift)
    return torch.from_numpy(x.astype(np.float32)).unsqueeze(1)


def evaluate(net, model, images, labels, engine, batch_size=2000):
    """Accuracy (0..1) of the chip network ``net`` on images (pixels 0..255)."""
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), batch_size):
            y = net_forward(net, _inputs(model, images[i:i + batch_size]), engine)
            correct += int((y.argmax(1).numpy() == labels[i:i + batch_size]).sum())
    return correct / len(labels)


def net_forward(net, x, engine):
    """Forward pass of a :func:`build_network` network on ``engine``."""
    for layer in net:
        x = layer(x, engine) if isinstance(layer, chip_torch._ChipModule) else layer(x)
    return x


def train_step(net, optimizer, x, labels, engine, logit_scale):
    """One optimiser step: forward on the chip, backward through the linear model, weights clamped.

    Parameters
    ----------
    net : torch.nn.Sequential
        A :func:`build_network` network.
    optimizer : torch.optim.Optimizer
        Over the network's weights.
    x : Tensor of shape (batch, 1, 28, 28)
        Activations 0..31 (see :func:`_inputs`).
    labels : Tensor of int64, shape (batch,)
    engine : Engine
        Runs the forward pass.
    logit_scale : float
        Factor applied to the logits before the softmax.

    Returns
    -------
    loss : Tensor (0-d, detached)
    logits : Tensor of shape (batch, 10) (detached)
    """
    logits = net_forward(net, x, engine)
    loss = torch.nn.functional.cross_entropy(logits * logit_scale, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for layer in net:
        if isinstance(layer, chip_torch._ChipModule):
            layer.clamp_weights_()
    return loss.detach(), logits.detach()


def train(model, engine, images, labels, options=HILOptions(), *, progress=None):
    """Fine-tune ``model`` with the chip(s) of ``engine`` in the loop.

    Parameters
    ----------
    model : IntegerModel
        Starting point (the quantized float-trained model).
    engine : Engine
        Runs every forward pass; its measured gain scales the backward pass.
    images : ndarray of shape (n, 28, 28)
        Training pixels 0..255.
    labels : ndarray of shape (n,)
    options : HILOptions, default=HILOptions()
    progress : callable (epoch, step, n_steps, loss, train_accuracy) -> None, optional

    Returns
    -------
    IntegerModel
        The fine-tuned weights with ``model``'s quantization settings.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or labels.shape != images.shape[:1] or not len(labels):
        raise InferValueError("need images of shape (n, 28, 28) and one label per image")
    net = build_network(model, engine, options.mask_saturated)
    params = [net[0].weight, net[3].weight, net[5].weight]
    opt = torch.optim.Adam(params, lr=options.lr)
    steps_per_epoch = (len(labels) + options.batch_size - 1) // options.batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=options.epochs * steps_per_epoch)
    rng = np.random.default_rng(options.seed)
    y_all = torch.from_numpy(labels.astype(np.int64))
    for epoch in range(options.epochs):
        order = rng.permutation(len(labels))
        t0, total, correct = time.perf_counter(), 0.0, 0
        for step in range(steps_per_epoch):
            idx = order[step * options.batch_size:(step + 1) * options.batch_size]
            loss, logits = train_step(net, opt, _inputs(model, images[idx]), y_all[idx], engine, options.logit_scale)
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y_all[idx]).sum())
            if progress is not None:
                progress(epoch, step, steps_per_epoch, float(loss.detach()), correct / ((step + 1) * len(idx)))
        log.info("epoch %d/%d: loss %.4f, train accuracy on chip %.4f, %.0f s", epoch + 1, options.epochs,
                 total / len(labels), correct / len(labels), time.perf_counter() - t0)
    return integer_model(net, model)
