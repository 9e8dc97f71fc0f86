"""The HAR application: input encoding, registry, the integer path against float, the CLI."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from bss2_calib.chipsim import Chip
from bss2_calib.cli.main import main
from bss2_calib.data import models_dir
from bss2_calib.infer import Engine, apps, har_data
from bss2_calib.infer.apps import MockEngine, har, mnist
from bss2_calib.infer.apps.common import float_forward, run_layers, scores

MODELS = models_dir()
PARAMS = {"input_encoding": "split", "input_scale": [2.0, 1.0, 1.0, 4.0, 4.0, 2.0]}


def test_registry():
    assert apps.names() == ("har", "mnist")
    assert apps.get("har") is har.APP and apps.get("mnist") is mnist.APP
    with pytest.raises(ValueError, match="known: har, mnist"):
        apps.get("cifar")


def test_split_encoding_carries_the_sign_in_two_channels():
    x = np.zeros((1, 6, 128), np.float32)
    x[0, 0, :4] = [1.0, -1.0, 2.5, -0.01]  # acc-x, scale 2 g: 15.5 -> 16 (half to even), 15.5, 31 (clipped)
    a = har.encode(x, PARAMS)
    assert a.shape == (1, 12, 128) and a.dtype == np.uint8
    assert a[0, 0, :4].tolist() == [16, 0, 31, 0] and a[0, 6, :4].tolist() == [0, 16, 0, 0]
    assert not a[0, 1:6].any() and not a[0, 7:].any()
    # the float network sees the same encoding unrounded, / 31
    f = har.float_encoding(x, PARAMS)
    np.testing.assert_allclose(f[0, 0, :4], [0.5, 0, 1, 0])
    np.testing.assert_allclose(f[0, 6, :4], [0, 0.5, 0, 0.005])
    off = har.encode(x, dict(PARAMS, input_encoding="offset"))
    assert off.shape == (1, 6, 128) and off[0, 0, :4].tolist() == [24, 8, 31, 16] and off[0, 1, 0] == 16


@pytest.mark.parametrize("bad", [{"input_encoding": "abs", "input_scale": [1] * 6},
                                 {"input_encoding": "split", "input_scale": [1] * 5},
                                 {"input_encoding": "split", "input_scale": [1, 1, 1, 1, 1, 0]},
                                 {"input_encoding": "split", "input_scale": [1, 1, 1, 1, 1, float("nan")]}])
def test_bad_encodings_are_refused(bad):
    with pytest.raises(ValueError, match="input_"):
        har.check_input(bad)


def test_scores_macro_f1():
    s = scores([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 1 fp 0 fn 1 -> 2/3; class 2: tp 2 fp 1 fn 0 -> 0.8
    assert s.accuracy == pytest.approx(4 / 6) and s.macro_f1 == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert s.confusion.tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 2]]


@pytest.fixture(scope="module")
def shipped():
    assert (MODELS / "har_int.npz").is_file(), "the shipped HAR model is missing (benchmarks/train_har.py)"
    try:
        raw, labels = har.load_test(limit=None)
    except har_data.HarNotFoundError as err:
        pytest.skip(str(err))
    pick = np.random.default_rng(0).choice(len(labels), 300, replace=False)
    return har.APP.load_float(MODELS / "har_float.npz"), har.APP.load_model(MODELS / "har_int.npz"), \
        raw[pick], labels[pick]


def test_integer_conv_layer_is_the_float_one_within_rounding(shipped):
    """Conv outputs of the integer model = gain * sends * (31 s_w) * float conv, up to the rounding of
    inputs (|dx| <= 1/2) and weights (|dw| <= 1/2), and the floor of the mock (-1..0 LSB)."""
    fw, model, raw, _ = shipped
    layer, g, n = model.arch.layers[0], 0.002, model.num_sends[0]
    s_w = model.weight_scales[0]
    y_int = run_layers(model, har.encode(raw, model.input), MockEngine(g), 0, 1)
    xf = 31 * har.float_input(raw, fw)  # activation units, unrounded
    wf = s_w * fw.weights["conv"].astype(np.float64)  # weight codes, unrounded (percentile 100: no clipping)
    assert np.abs(wf).max() <= 63 + 1e-3
    y_float = g * n * layer.run_float(xf, wf)
    p, _ = layer.patches(xf)
    bound = g * n * (0.5 * p.sum(1)[:, None] + 0.5 * np.abs(layer.matrix(wf)).sum(0)[None, :]
                     + 0.25 * p.shape[1])
    bound = np.moveaxis(bound.reshape(len(raw), -1, wf.shape[0]), -1, 1) + 1.0
    inside = np.abs(y_float) < 126
    assert inside.mean() > 0.99
    err = np.abs(y_int - y_float)[inside]
    assert np.all(err <= bound[inside])
    assert np.median(err) < 1.0  # typical: the floor plus well under one LSB of rounding


def test_shipped_model_tracks_float_on_a_noiseless_chip(shipped):
    fw, model, raw, labels = shipped
    f = har.APP.evaluate_float(fw, raw, labels).accuracy
    q = har.APP.evaluate(model, raw, labels, MockEngine()).accuracy
    agree = np.mean(har.APP.predict(model, raw, MockEngine())
                    == np.argmax(float_forward(fw, har.float_input(raw, fw)), 1))
    assert q >= f - 0.03 and agree >= 0.9


def test_infer_har_on_a_few_windows():
    assert (MODELS / "har_int.npz").is_file(), "the shipped HAR model is missing (benchmarks/train_har.py)"
    try:
        har_data.har_file()
    except har_data.HarNotFoundError as err:
        pytest.skip(str(err))
    res = CliRunner().invoke(main, ["infer", "--model", "har", "--uncalibrated", "--limit", "24", "--batch-size",
                                    "10", "--json", "--weights", str(MODELS / "har_int.npz")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["model"] == "har" and out["windows"] == 24 and 0 <= out["macro_f1"] <= 1
    assert out["classes"] == list(har_data.ACTIVITIES) and np.sum(out["confusion"]) == 24
    assert out["engine"]["calls"] == 3 * 3  # one engine call per layer and batch (10, 10, 4)
    # simulated time: per window 31 conv vectors + fc1 tiles + fc2, each >= the fixed ~40 us
    assert out["hw_time_per_window_us"] > 33 * 40
    text = CliRunner().invoke(main, ["infer", "--model", "har", "--uncalibrated", "--limit", "5"])
    assert text.exit_code == 0 and "us per window" in text.stdout and "macro-F1" in text.stdout
    bad = CliRunner().invoke(main, ["infer", "--model", "har", "--uncalibrated", "--limit", "5", "--weights",
                                    str(MODELS / "mnist_int.npz")])
    assert bad.exit_code == 1 and "not a bss2-calib/har-integer-model file" in bad.output


def test_shipped_mnist_files_keep_their_format(tmp_path):
    """Loading and saving a shipped MNIST model reproduces its arrays and metadata exactly."""
    src = MODELS / "mnist_hil.npz"
    back = mnist.APP.load_model(src).save(tmp_path / "m.npz")
    with np.load(src) as a, np.load(back) as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k])
    assert json.loads(str(np.load(back)["metadata"]))["format"] == "bss2-calib/mnist-integer-model"


@pytest.mark.slow
def test_the_calibrated_engine_runs_the_har_model(shipped):
    from bss2_calib import calib

    fw, model, raw, labels = shipped
    art = calib.calibrate(Chip(1, "default", noise_seed=1))
    acc = har.APP.evaluate(model, raw[:100], labels[:100], Engine(Chip(1, "default", noise_seed=5), art)).accuracy
    assert acc >= har.APP.evaluate_float(fw, raw[:100], labels[:100]).accuracy - 0.08
