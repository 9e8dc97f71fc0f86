"""Functional API and numpy layers: convolutions against a direct loop computation."""
import numpy as np
import pytest

from bss2_calib.chipsim import Chip
from bss2_calib.infer import (Conv1d, Conv2d, ConvertingReLU, Engine, Flatten, InferValueError, Linear, ReLU, Sequential,
                   functional as F)

G = 0.002


def exact_rows(patches, wm, num_sends, nudge=0.0):
    """The noiseless chip's product of patch rows: rounded per 128-row tile, clipped, summed, clipped.

    ``nudge`` shifts tile values before rounding, to bracket exact .5 ties (the chip rounds in float32).
    """
    out = np.zeros((patches.shape[0], wm.shape[1]))
    for r0 in range(0, wm.shape[0], 128):
        t = np.rint(G * num_sends * (patches[:, r0:r0 + 128] @ wm[r0:r0 + 128]).astype(np.float64) + nudge)
        out += np.clip(t, -128, 127)
    return np.clip(out, -128, 127)


def loop_conv2d(x, w, stride, padding, num_sends, nudge=0.0):
    """Direct loop over output positions: gather each patch by hand."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, hgt, wid = x.shape
    co, _, kh, kw = w.shape
    xp = np.zeros((n, c, hgt + 2 * ph, wid + 2 * pw), dtype=np.int64)
    xp[:, :, ph:ph + hgt, pw:pw + wid] = x
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros((n, co, oh, ow))
    wm = w.reshape(co, -1).T
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(n, -1)
            out[:, :, i, j] = exact_rows(patch, wm, num_sends, nudge)
    return out


def loop_conv1d(x, w, stride, padding, num_sends, nudge=0.0):
    n, c, length = x.shape
    co, _, k = w.shape
    xp = np.zeros((n, c, length + 2 * padding), dtype=np.int64)
    xp[:, :, padding:padding + length] = x
    lo = (xp.shape[2] - k) // stride + 1
    out = np.zeros((n, co, lo))
    for i in range(lo):
        out[:, :, i] = exact_rows(xp[:, :, i * stride:i * stride + k].reshape(n, -1), w.reshape(co, -1).T,
                                  num_sends, nudge)
    return out


def assert_exact(y, loop, *args):
    lo, hi = loop(*args, nudge=-1e-6), loop(*args, nudge=1e-6)
    assert np.all((lo <= y) & (y <= hi)), "differs from the direct computation beyond a .5 tie"
    assert np.mean(lo == hi) > 0.95


@pytest.mark.parametrize("c_in, kernel, stride, padding, sends", [
    (1, (10, 10), (5, 5), (1, 1), 2),   # the MNIST layer
    (3, (3, 5), (1, 2), (2, 0), 1),     # 45 inputs per patch
    (6, (5, 5), (2, 2), (1, 1), 3),     # 150 inputs: two row tiles
])
def test_conv2d_matches_a_direct_loop(c_in, kernel, stride, padding, sends):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 32, (3, c_in, 14, 13))
    w = rng.integers(-63, 64, (7, c_in) + kernel)
    engine = Engine(Chip(0, "noiseless"))
    y = F.conv2d(x, w, engine=engine, stride=stride, padding=padding, num_sends=sends)
    assert_exact(y, loop_conv2d, x, w, stride, padding, sends)
    assert engine.stats["calls"] == 1  # the whole batch in one engine call


@pytest.mark.parametrize("c_in, k, stride, padding", [(1, 3, 1, 0), (4, 7, 2, 3), (20, 9, 3, 1)])
def test_conv1d_matches_a_direct_loop(c_in, k, stride, padding):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 32, (4, c_in, 30))
    w = rng.integers(-63, 64, (5, c_in, k))
    engine = Engine(Chip(0, "noiseless"))
    layer = Conv1d(c_in, 5, k, stride=stride, padding=padding, weight=w, num_sends=2, engine=engine)
    assert_exact(layer(x), loop_conv1d, x, w, stride, padding, 2)
    assert engine.stats["calls"] == 1


def test_layers_reproduce_the_mnist_integer_model():
    from bss2_calib.infer.apps import IntegerModel, mnist

    rng = np.random.default_rng(2)
    model = IntegerModel(mnist.ARCH, {"conv": rng.integers(-63, 64, (20, 1, 10, 10)),
                                      "fc1": rng.integers(-20, 21, (500, 128)), "fc2": rng.integers(-63, 64, (128, 10))},
                         {"input_gain": 40, "input_shift": 8}, num_sends=(2, 1, 3), relu_shifts=(2, 1))
    images = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    w = model.weights
    net = Sequential(
        Conv2d(1, 20, 10, stride=5, padding=1, weight=w["conv"], num_sends=2), ConvertingReLU(2), Flatten(),
        Linear(500, 128, weight=w["fc1"].T, num_sends=1), ConvertingReLU(1),
        Linear(128, 10, weight=w["fc2"].T, num_sends=3))
    x = mnist.quantize_images(images, 40, 8)[:, None]
    engine = Engine(Chip(0, "noiseless"))
    ours = net(x, engine)
    theirs = mnist.APP.forward(model, images, Engine(Chip(0, "noiseless")))
    np.testing.assert_array_equal(ours, theirs)
    assert engine.stats["calls"] == 3 and len(net) == 6 and isinstance(net[1], ConvertingReLU)


def test_elementwise_functions():
    y = np.array([[-3.0, 0.0, 5.5, 200.0]])
    np.testing.assert_array_equal(F.relu(y), [[0, 0, 5.5, 200]])
    np.testing.assert_array_equal(F.converting_relu(y, 1), [[0, 0, 2, 31]])
    np.testing.assert_array_equal(ReLU()(y), F.relu(y))
    assert F.argmax(np.array([[1, 3, 3], [5, 0, 1]])).tolist() == [1, 0]
    with pytest.raises(InferValueError):
        F.converting_relu(y, 8)
    with pytest.raises(InferValueError):
        F.converting_relu([np.nan], 2)
    with pytest.raises(InferValueError):
        ConvertingReLU(-1)


def test_layer_arguments_are_validated():
    engine = Engine(Chip(0, "noiseless"))
    with pytest.raises(InferValueError, match="shape"):
        Linear(4, 3, weight=np.zeros((4, 3)))
    with pytest.raises(InferValueError, match="outside"):
        Linear(4, 3, weight=np.full((3, 4), 70))
    with pytest.raises(InferValueError, match="rng"):
        Linear(4, 3)
    with pytest.raises(InferValueError, match="needs an engine"):
        Linear(4, 3, rng=np.random.default_rng(0))(np.ones((1, 4), int))
    with pytest.raises(InferValueError, match="num_sends"):
        Linear(4, 3, rng=np.random.default_rng(0), num_sends=0)
    layer = Conv2d(2, 3, (3, 2), rng=np.random.default_rng(0))
    assert layer.weight.shape == (3, 2, 3, 2) and np.abs(layer.weight).max() <= 63
    with pytest.raises(InferValueError, match="input channels"):
        layer(np.ones((1, 3, 5, 5), int), engine)
    with pytest.raises(InferValueError, match="larger than"):
        layer(np.ones((1, 2, 2, 1), int), engine)
    with pytest.raises(InferValueError, match="stride"):
        F.conv2d(np.ones((1, 2, 5, 5), int), layer.weight, engine=engine, stride=0)
    with pytest.raises(InferValueError, match="shape"):
        F.conv1d(np.ones((2, 5), int), np.ones((1, 1, 2), int), engine=engine)


def test_conv_inputs_are_not_modified():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 32, (2, 2, 8, 8))
    x.flags.writeable = False
    w = rng.integers(-63, 64, (3, 2, 3, 3))
    w.flags.writeable = False
    x0, w0 = x.copy(), w.copy()
    F.conv2d(x, w, engine=Engine(Chip(0, "default", noise_seed=0)), padding=1)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


def test_the_numpy_path_imports_neither_torch_nor_the_fitting_code():
    """The engine needs calib's artifact layer (the correction model), never torch or the fitting code.

    (scipy itself may be loaded: numba imports it when present.)
    """
    import subprocess
    import sys

    code = ("import sys, numpy as np; from bss2_calib import infer; from bss2_calib.chipsim import Chip; "
            "infer.Engine(Chip(0, 'noiseless')).matmul(np.ones((1, 3), int), np.ones((3, 2), int)); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(("
            "'bss2_calib.calib.fits', 'bss2_calib.calib.steps', 'bss2_calib.calib.pipeline'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
