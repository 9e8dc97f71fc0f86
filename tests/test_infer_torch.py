"""PyTorch layers: forward on the chip, gradients of the measured linear model."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bss2_calib.chipsim import Chip  # noqa: E402
from bss2_calib.infer import Engine, InferValueError, layers  # noqa: E402
from bss2_calib.infer import torch as T  # noqa: E402

pytestmark = pytest.mark.torch


def _engine(preset="noiseless", seed=0):
    return Engine(Chip(0, preset, noise_seed=seed))


def test_linear_forward_is_the_engine_and_backward_the_measured_linear_model():
    engine = _engine("default")
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.integers(0, 32, (6, 200)), dtype=torch.float32, requires_grad=True)
    layer = T.Linear(200, 30, weight=rng.integers(-40, 41, (30, 200)), num_sends=3, engine=engine)
    y = layer(x)
    gain = engine.measure(num_sends=3).gain
    assert abs(gain - 0.002) < 0.0003  # measured on the uncalibrated chip, not assumed
    grad = torch.tensor(rng.standard_normal((6, 30)), dtype=torch.float32)
    y.backward(grad)
    # reference: the ideal linear model scaled by the measured gain times num_sends
    xr = x.detach().clone().requires_grad_(True)
    wr = layer.weight.detach().clone().requires_grad_(True)
    (xr @ wr.T * (gain * 3)).backward(grad)
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(layer.weight.grad, wr.grad)
    assert y.shape == (6, 30) and y.dtype == torch.float32


def test_forward_equals_the_numpy_layers():
    rng = np.random.default_rng(1)
    w = rng.integers(-63, 64, (8, 3, 4, 4))
    x = rng.integers(0, 32, (2, 3, 12, 12))
    ours = T.Conv2d(3, 8, 4, stride=2, padding=1, weight=w, num_sends=2)(torch.tensor(x, dtype=torch.float32),
                                                                          _engine())
    ref = layers.Conv2d(3, 8, 4, stride=2, padding=1, weight=w, num_sends=2)(x, _engine())
    np.testing.assert_array_equal(ours.detach().numpy(), ref)
    w1 = rng.integers(-63, 64, (5, 3, 3))
    x1 = rng.integers(0, 32, (2, 3, 20))
    ours = T.Conv1d(3, 5, 3, stride=2, padding=1, weight=w1)(torch.tensor(x1, dtype=torch.float32), _engine())
    ref = layers.Conv1d(3, 5, 3, stride=2, padding=1, weight=w1)(x1, _engine())
    np.testing.assert_array_equal(ours.detach().numpy(), ref)


def test_conv_gradients_are_those_of_the_scaled_linear_convolution():
    engine = _engine()
    rng = np.random.default_rng(2)
    layer = T.Conv2d(2, 4, (3, 2), stride=(1, 2), padding=(1, 0), weight=rng.integers(-30, 31, (4, 2, 3, 2)),
                     num_sends=2, engine=engine)
    x = torch.tensor(rng.integers(0, 32, (3, 2, 7, 8)), dtype=torch.float32, requires_grad=True)
    y = layer(x)
    grad = torch.tensor(rng.standard_normal(tuple(y.shape)), dtype=torch.float32)
    y.backward(grad)
    scale = engine.measure(num_sends=2).gain * 2
    xr = x.detach().clone().requires_grad_(True)
    wr = layer.weight.detach().clone().requires_grad_(True)
    (torch.nn.functional.conv2d(xr, wr, stride=(1, 2), padding=(1, 0)) * scale).backward(grad)
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(layer.weight.grad, wr.grad)


def test_saturated_outputs_pass_no_gradient():
    engine = _engine()
    x = torch.full((1, 128), 31.0, requires_grad=True)
    w = torch.zeros((128, 3))
    w[:, 0], w[:, 1], w[:, 2] = 63, -63, 1  # 127 (saturated), -128 (saturated), 8
    for mask, expect in ((True, [0, 0, 1]), (False, [1, 1, 1])):
        x.grad = None
        wr = w.clone().requires_grad_(True)
        T.matmul(x, wr, engine=engine, mask_saturated=mask).sum().backward()
        col_has_grad = (wr.grad.abs().sum(0) > 0).int().tolist()
        assert col_has_grad == expect


def test_relu_gradients():
    x = torch.tensor([-3.0, 0.0, 2.0, 9.0, 500.0], requires_grad=True)
    y = T.ConvertingReLU(shift=2)(x)
    assert y.tolist() == [0, 0, 0, 2, 31]
    y.backward(torch.ones(5))
    assert x.grad.tolist() == [0, 0, 0.25, 0.25, 0]  # none where clamped at 31
    x.grad = None
    T.ConvertingReLU(shift=2, mask_saturated=False)(x).backward(torch.ones(5))
    assert x.grad.tolist() == [0, 0, 0.25, 0.25, 0.25]  # the reference's rule
    x.grad = None
    T.ReLU()(x).backward(torch.ones(5))
    assert x.grad.tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(InferValueError):
        T.ConvertingReLU(shift=9)


def test_weights_are_rounded_and_clamped_and_inputs_untouched():
    engine = _engine()
    layer = T.Linear(4, 2, weight=[[70.4, -80.0, 1.4, 0.6], [0.0, 0.0, 0.0, 0.0]], engine=engine)
    assert layer.integer_weight().tolist() == [[63, -63, 1, 1], [0, 0, 0, 0]]
    x = torch.tensor([[31.0, 31.0, 31.0, 31.2]])
    x0 = x.clone()
    layer(x)
    assert torch.equal(x, x0)
    layer.clamp_weights_()
    assert layer.weight.detach().abs().max() == 63
    with pytest.raises(InferValueError, match="outside 0..31"):
        layer(torch.tensor([[40.0, 0, 0, 0]]))
    with pytest.raises(InferValueError, match="needs an engine"):
        T.Linear(4, 2, generator=torch.Generator().manual_seed(0))(x)
    with pytest.raises(InferValueError, match="shape"):
        T.Linear(4, 2, weight=np.zeros((4, 2)))


def test_hil_training_step_moves_weights_and_returns_an_integer_model():
    from bss2_calib.infer.apps import IntegerModel, mnist, training

    rng = np.random.default_rng(3)
    model = IntegerModel(mnist.ARCH, {"conv": rng.integers(-63, 64, (20, 1, 10, 10)),
                                      "fc1": rng.integers(-20, 21, (500, 128)), "fc2": rng.integers(-63, 64, (128, 10))},
                         {"input_gain": 40, "input_shift": 8}, num_sends=(2, 1, 3), relu_shifts=(3, 2))
    images = rng.integers(0, 256, (40, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, 40)
    engine = _engine("hxtorch-mock")
    net = training.chip_network(model, engine)
    np.testing.assert_array_equal(training.integer_model_of(net, model).weights["fc1"], model.weights["fc1"])
    # the chip network computes what the numpy path computes (noiseless chip: bit for bit)
    exact = _engine("noiseless")
    with torch.no_grad():
        ours = training.chip_network(model, exact)(torch.from_numpy(mnist.APP.encode(images, model.input)
                                                                    .astype(np.float32)))
    np.testing.assert_array_equal(ours.numpy(), mnist.APP.forward(model, images, exact))
    epochs = []
    tuned = training.train_hil(mnist.APP, model, engine, images, labels,
                               training.HILOptions(epochs=1, batch_size=20, lr=0.5),
                               on_epoch=lambda e, m: epochs.append(e))
    assert isinstance(tuned, IntegerModel) and tuned.num_sends == model.num_sends and epochs == [0]
    assert np.any(tuned.weights["fc2"] != model.weights["fc2"])
    with pytest.raises(InferValueError):
        training.HILOptions(lr=0)
