"""MNIST accuracy on simulated chips: what calibration and hardware-in-the-loop training buy.

Usage::

    python benchmarks/accuracy.py [--limit N] [--calibration calib|oracle] [--store DIR] [--json PATH] [--seeds N]

Rows (full 10k test set unless ``--limit``): float software; the float-trained
integer model on the ``hxtorch-mock`` preset, on ``default`` chip 0 uncalibrated
and calibrated; the hardware-in-the-loop (HIL) model (``data/models/mnist_hil.npz``,
made by ``benchmarks/train_hil.py`` on calibrated chip 0) on chip 0, on four
other calibrated chips and on the same four uncalibrated; for comparison the
float-trained model on those four calibrated chips. Also throughput of the
calibrated inference (images/s wall, simulated hardware time per image).

Calibration: ``calib`` (default) calibrates each chip afresh with
``calib.calibrate`` (deterministic: noise seed = chip id), or takes its latest
artifact from ``--store`` (calibrating and saving chips that have none there);
``oracle`` builds the correction tables
from the simulator's hidden truth (a perfect calibration; benchmarks only) with
the leak switched off, to separate the engine from the calibration's quality.

MNIST: Y. LeCun, C. Cortes, C. Burges; CC BY-SA 3.0.
"""
import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bss2_calib.chipsim import Chip  # noqa: E402
from bss2_calib.infer import Corrections, Engine, matmul_backend, mnist  # noqa: E402
from bss2_calib.infer.data import load_mnist  # noqa: E402

log = logging.getLogger("accuracy")
MODELS = REPO / "data" / "models"
PRESET = "default"
OTHER_CHIPS = (1, 2, 3, 4)


# ------------------------------------------------------------ calibrations
def oracle_corrections(chip, *, wait=5, gain_target=0.002):
    """Tables a perfect calibration would measure, from the hidden truth (benchmarks/tests only).

    Switches the leak off (as the calibration does), then reads the driver transfer,
    the per-synapse gains, neuron gains and offsets and the weight DAC shape.
    """
    chip.set_knob("i_bias_leak", 0)
    t = chip.truth
    T = np.concatenate([t.pulse_table(h, wait) for h in (0, 1)])
    sg = np.stack([t.synapse_gain(h, wait_between_events=wait) for h in (0, 1)]) / gain_target
    gexc, ginh = np.median(sg[:, 0], axis=1), np.median(sg[:, 1], axis=1)
    safe = (lambda g: np.where(g > 0, g, 1.0))
    off = np.concatenate([t.neuron_offset(h, wait_between_events=wait) for h in (0, 1)])
    beta = chip.preset["nonideal"]["dac_nonlinearity"]
    c = np.arange(64.0)
    return Corrections(pulse_steps=T, gain_exc=gexc.ravel(), gain_inh=ginh.ravel(), offset_lsb=off,
                       synapse_exc=sg[:, 0] / safe(gexc)[:, None, :], synapse_inh=sg[:, 1] / safe(ginh)[:, None, :],
                       weight_transfer=c * (1 + beta * (c - 63) / 63), gain_target=gain_target,
                       chip_id=chip.chip_id, preset_name=chip.preset.name, preset_sha256=chip.preset.sha256,
                       conditions={"wait_between_events": wait, "num_sends_min": 1, "num_sends_max": 16,
                                   "temperature_c": 25.0, "temperature_tolerance_k": 5.0},
                       knobs={"i_bias_leak": np.zeros(512, np.int64)})


def calibration_for(chip_id, how, store=None):
    """(artifact, description) for a chip of the default preset.

    ``calib``: the chip's latest artifact in ``store`` if there is one for this preset;
    otherwise a fresh calibration (``calib.calibrate`` of the chip with noise seed = chip id,
    deterministic), saved to ``store`` if one is given. ``oracle``: :func:`oracle_corrections`.
    """
    if how == "oracle":
        return oracle_corrections(Chip(chip_id, PRESET)), "oracle (truth-derived tables)"
    from bss2_calib import calib

    sha = Chip(chip_id, PRESET).preset.sha256
    st = None if store is None else calib.ArtifactStore(store)
    path = None if st is None else st.latest(chip_id)
    if path is not None:
        art = calib.load(path)
        if art.manifest["preset"]["sha256"] == sha:
            return art, f"calib artifact {path}"
    t0 = time.perf_counter()
    res = calib.calibrate(Chip(chip_id, PRESET, noise_seed=chip_id))
    log.info("chip %d calibrated in %.0f s", chip_id, time.perf_counter() - t0)
    if st is None:
        return res, f"calib.calibrate(Chip({chip_id}, {PRESET!r}, noise_seed={chip_id}))"
    saved = st.save(res)
    return saved, f"calib artifact {saved.path}"


# --------------------------------------------------------------- evaluation
def run(model, images, labels, chip_id, preset, artifact, seed):
    """Accuracy, wall time and simulated hardware time of one model on one chip."""
    chip = Chip(chip_id, preset, noise_seed=seed)
    engine = Engine(chip, artifact)
    t0 = time.perf_counter()
    acc = mnist.evaluate(model, images, labels, matmul_backend(engine), batch_size=2000)
    wall = time.perf_counter() - t0
    return {"accuracy": acc, "wall_s": wall, "hw_time_s": engine.stats["hw_time_s"],
            "images_per_s": len(labels) / wall, "hw_us_per_image": 1e6 * engine.stats["hw_time_s"] / len(labels)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="first N test images only")
    ap.add_argument("--calibration", choices=("calib", "oracle"), default="calib")
    ap.add_argument("--store", type=Path, default=None,
                    help="artifact store to take (and keep) calibrations from; default: calibrate afresh")
    ap.add_argument("--float-weights", type=Path, default=MODELS / "mnist_float.npz")
    ap.add_argument("--int-weights", type=Path, default=MODELS / "mnist_int.npz")
    ap.add_argument("--hil-weights", type=Path, default=MODELS / "mnist_hil.npz")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    ap.add_argument("--seeds", type=int, default=0,
                    help="also run calibrated chip 0 (float-trained and HIL weights) with this many other noise seeds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    images, labels = load_mnist("test", limit=args.limit)
    fw = mnist.FloatWeights.load(args.float_weights)
    m_int = mnist.IntegerModel.load(args.int_weights)
    m_hil = mnist.IntegerModel.load(args.hil_weights)
    arts, where = {}, {}
    for cid in (0,) + OTHER_CHIPS:
        arts[cid], where[cid] = calibration_for(cid, args.calibration, args.store)
        log.info("chip %d: %s", cid, where[cid])

    rows = []

    def add(name, weights, chips, results):
        accs = [r["accuracy"] for r in results]
        rows.append({"row": name, "weights": weights, "chips": chips, "accuracy": float(np.mean(accs)),
                     "accuracies": accs, "results": results})
        log.info("%-45s %s", name, " ".join(f"{100 * a:.2f}" for a in accs))

    float_acc = float(np.mean(np.argmax(mnist.float_forward(fw, images), 1) == labels))
    add("float software", "float", "-", [{"accuracy": float_acc}])
    add("hxtorch-mock preset", "float-trained", "0 (hxtorch-mock)",
        [run(m_int, images, labels, 0, "hxtorch-mock", None, 100)])
    add("default chip, uncalibrated", "float-trained", "0", [run(m_int, images, labels, 0, PRESET, None, 100)])
    calibrated = run(m_int, images, labels, 0, PRESET, arts[0], 100)
    add("default chip, calibrated", "float-trained", "0", [calibrated])
    hil = run(m_hil, images, labels, 0, PRESET, arts[0], 100)
    add("HIL-trained on calibrated chip 0", "HIL", "0", [hil])
    others = ", ".join(map(str, OTHER_CHIPS))
    add("HIL weights, four other calibrated chips", "HIL", others,
        [run(m_hil, images, labels, c, PRESET, arts[c], 100 + c) for c in OTHER_CHIPS])
    add("HIL weights, the same four uncalibrated", "HIL", others,
        [run(m_hil, images, labels, c, PRESET, None, 100 + c) for c in OTHER_CHIPS])
    add("float-trained weights, four other calibrated chips", "float-trained", others,
        [run(m_int, images, labels, c, PRESET, arts[c], 100 + c) for c in OTHER_CHIPS])

    spread = {}
    if args.seeds:
        for name, model in (("float-trained", m_int), ("HIL", m_hil)):
            accs = [run(model, images, labels, 0, PRESET, arts[0], 1000 + i)["accuracy"] for i in range(args.seeds)]
            spread[name] = {"seeds": list(range(1000, 1000 + args.seeds)), "accuracies": accs,
                            "mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0}
            log.info("calibrated chip 0, %s, %d noise seeds: %.2f +- %.2f %% (%.2f..%.2f)", name, len(accs),
                     100 * np.mean(accs), 100 * spread[name]["std"], 100 * min(accs), 100 * max(accs))

    targets = {
        "calibrated_hil_at_least_98.0": hil["accuracy"] >= 0.980,
        "calibrated_hil_within_0.3_of_float": hil["accuracy"] >= float_acc - 0.003,
        "float_trained_calibrated_within_1_of_float": calibrated["accuracy"] >= float_acc - 0.01,
    }
    out = {"images": int(len(labels)), "calibration": args.calibration, "artifacts": where, "rows": rows,
           "throughput": {k: calibrated[k] for k in ("images_per_s", "hw_us_per_image", "wall_s", "hw_time_s")},
           "targets": targets, "noise_seeds": spread}
    print(markdown(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


def markdown(out):
    """The table for docs/benchmarks.md."""
    lines = [f"| configuration | weights | chip(s) | accuracy (%) |", "|---|---|---|---|"]
    for r in out["rows"]:
        accs = r["accuracies"]
        detail = f"{100 * r['accuracy']:.2f}" if len(accs) == 1 else \
            f"{100 * r['accuracy']:.2f} (" + ", ".join(f"{100 * a:.2f}" for a in accs) + ")"
        lines.append(f"| {r['row']} | {r['weights']} | {r['chips']} | {detail} |")
    t = out["throughput"]
    lines.append("")
    lines.append(f"{out['images']} test images; calibration: {out['calibration']}. Calibrated inference: "
                 f"{t['images_per_s']:.0f} images/s wall, {t['hw_us_per_image']:.0f} us simulated hardware time "
                 f"per image.")
    lines.append("Targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in out["targets"].items()))
    for name, v in out.get("noise_seeds", {}).items():
        a = 100 * np.array(v["accuracies"])
        lines.append(f"Calibrated chip 0, {name} weights, {len(a)} other noise seeds: {a.mean():.2f} +- "
                     f"{100 * v['std']:.2f} % ({a.min():.2f}..{a.max():.2f})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
