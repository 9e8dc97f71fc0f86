"""Accuracy of an application on simulated chips: what calibration and hardware-in-the-loop training buy.

Usage::

    python benchmarks/accuracy.py [--model mnist|har] [--chips 1,2,3,4] [--seeds 3] [--limit N]
                                  [--calibration calib|oracle] [--store DIR] [--json PATH] [--calibrated-only]

Rows, on the application's full test set unless ``--limit`` (MNIST: the 10k test images; HAR: the
windows of the test subjects 2, 4, 9, 10, 12, 13, 18, 20, 24): float software; the float-trained
integer model (``data/models/<model>_int.npz``) on the ``hxtorch-mock`` preset, on the ``default``
chips uncalibrated and calibrated; the hardware-in-the-loop (HIL) model (``<model>_hil.npz``, trained
on calibrated chip 0) on the same chips calibrated and uncalibrated. Every chip row runs each chip
of ``--chips`` with ``--seeds`` trial-to-trial noise seeds (seed ``1000 + 100 * chip + k``) and
reports accuracy and macro-F1 as mean +- sd over all (chip, seed) runs, plus the mean per chip.
Also the throughput of the calibrated inference.

Calibration: ``calib`` (default) calibrates each chip afresh with
``calib.calibrate`` (deterministic: noise seed = chip id), or takes its latest
artifact from ``--store`` (calibrating and saving chips that have none there);
``oracle`` builds the correction tables
from the simulator's hidden truth (a perfect calibration; benchmarks only) with
the leak switched off, to separate the engine from the calibration's quality.

MNIST: Y. LeCun, C. Cortes, C. Burges; CC BY-SA 3.0. HAR: J.-L. Reyes-Ortiz, L. Oneto, A. Samà,
X. Parra, D. Anguita, Neurocomputing 2016 (UCI HAPT); CC BY 4.0.
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
from bss2_calib.infer import Corrections, Engine, apps  # noqa: E402
from bss2_calib.infer.apps.inference import run_inference  # noqa: E402

log = logging.getLogger("accuracy")
MODELS = REPO / "data" / "models"
PRESET = "default"
#: the HIL target per application: calibrated + HIL within this many points of float (mean over runs)
TARGET_POINTS = {"mnist": 0.3, "har": 1.0}


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
def run(app, model, raw, labels, chip_id, preset, artifact, seed):
    """Scores, wall time and simulated hardware time of one model on one chip."""
    engine = Engine(Chip(chip_id, preset, noise_seed=seed), artifact)
    return run_inference(app, model, engine, raw, labels, batch_size=2000)


def summary(results):
    """Mean and sd (over runs) of accuracy and macro-F1."""
    acc, f1 = (np.array([r[k] for r in results]) for k in ("accuracy", "macro_f1"))
    sd = (lambda a: float(np.std(a, ddof=1)) if len(a) > 1 else 0.0)
    return {"accuracy": float(acc.mean()), "accuracy_sd": sd(acc), "macro_f1": float(f1.mean()),
            "macro_f1_sd": sd(f1), "runs": len(results)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=apps.names(), default="mnist")
    ap.add_argument("--chips", default="1,2,3,4", help="comma-separated chip ids of the chip rows")
    ap.add_argument("--seeds", type=int, default=3, help="noise seeds per chip")
    ap.add_argument("--limit", type=int, default=None, help="first N test samples only")
    ap.add_argument("--calibration", choices=("calib", "oracle"), default="calib")
    ap.add_argument("--store", type=Path, default=None,
                    help="artifact store to take (and keep) calibrations from; default: calibrate afresh")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    ap.add_argument("--calibrated-only", action="store_true",
                    help="only the float row and the two calibrated rows (the mock and uncalibrated rows cost most)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    app = apps.get(args.model)
    chips = [int(c) for c in args.chips.split(",")]
    if args.seeds < 1 or not chips:
        ap.error("need at least one chip and one seed")
    raw, labels = app.load_test(args.limit)
    fw = app.load_float(MODELS / f"{args.model}_float.npz")
    m_int = app.load_model(MODELS / f"{args.model}_int.npz")
    m_hil = app.load_model(MODELS / f"{args.model}_hil.npz")
    arts, where = {}, {}
    for cid in chips:
        arts[cid], where[cid] = calibration_for(cid, args.calibration, args.store)
        log.info("chip %d: %s", cid, where[cid])

    rows = []

    def add(name, weights, results, chips_used, run_chips=()):
        row = {"row": name, "weights": weights, "chips": chips_used, **summary(results),
               "per_chip": {c: summary([r for r, rc in zip(results, run_chips) if rc == c])["accuracy"]
                            for c in sorted(set(run_chips))},
               "results": [{k: r[k] for k in ("accuracy", "macro_f1", "samples_per_s", "hw_time_per_sample_us")
                            if k in r} for r in results]}
        rows.append(row)
        log.info("%-45s accuracy %.2f +- %.2f %%, macro-F1 %.2f %%", name, 100 * row["accuracy"],
                 100 * row["accuracy_sd"], 100 * row["macro_f1"])
        return row

    float_row = add("float software", "float", [app.evaluate_float(fw, raw, labels).to_dict()], "-")
    seeds = [(c, 1000 + 100 * c + k) for c in chips for k in range(args.seeds)]
    on = [c for c, _ in seeds]
    ids = ", ".join(map(str, chips))
    if not args.calibrated_only:
        add("hxtorch-mock preset", "float-trained",
            [run(app, m_int, raw, labels, c, "hxtorch-mock", None, s) for c, s in seeds], f"{ids} (hxtorch-mock)", on)
        add("default chips, uncalibrated", "float-trained",
            [run(app, m_int, raw, labels, c, PRESET, None, s) for c, s in seeds], ids, on)
    calibrated = add("default chips, calibrated", "float-trained",
                     [run(app, m_int, raw, labels, c, PRESET, arts[c], s) for c, s in seeds], ids, on)
    hil = add("HIL (trained on calibrated chip 0), calibrated", "HIL",
              [run(app, m_hil, raw, labels, c, PRESET, arts[c], s) for c, s in seeds], ids, on)
    if not args.calibrated_only:
        add("HIL weights, uncalibrated", "HIL",
            [run(app, m_hil, raw, labels, c, PRESET, None, s) for c, s in seeds], ids, on)

    points = TARGET_POINTS[args.model]
    targets = {f"calibrated_hil_within_{points}_of_float": hil["accuracy"] >= float_row["accuracy"] - points / 100,
               "float_trained_calibrated_within_1_of_float": calibrated["accuracy"] >= float_row["accuracy"] - 0.01}
    tp = calibrated["results"]
    out = {"model": args.model, "samples": int(len(labels)), "unit": app.unit, "calibration": args.calibration,
           "chips": chips, "seeds_per_chip": args.seeds, "artifacts": where, "rows": rows, "targets": targets,
           "throughput": {"samples_per_s": float(np.median([r["samples_per_s"] for r in tp])),
                          "hw_us_per_sample": float(np.median([r["hw_time_per_sample_us"] for r in tp]))}}
    print(markdown(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


def markdown(out):
    """The table for docs/benchmarks.md."""
    lines = ["| configuration | weights | chip(s) | accuracy (%) | macro-F1 (%) | per chip (accuracy %) |",
             "|---|---|---|---|---|---|"]
    for r in out["rows"]:
        pm = (lambda k: f"{100 * r[k]:.2f}" + (f" +- {100 * r[k + '_sd']:.2f}" if r["runs"] > 1 else ""))
        per = ", ".join(f"{c}: {100 * a:.2f}" for c, a in r["per_chip"].items())
        lines.append(f"| {r['row']} | {r['weights']} | {r['chips']} | {pm('accuracy')} | {pm('macro_f1')} | {per} |")
    t = out["throughput"]
    lines.append("")
    lines.append(f"{out['samples']} test {out['unit']}; chips {out['chips']} x {out['seeds_per_chip']} noise seeds "
                 f"(mean +- sd over the runs); calibration: {out['calibration']}. Calibrated inference: "
                 f"{t['samples_per_s']:.0f} {out['unit']}/s wall, {t['hw_us_per_sample']:.0f} us simulated hardware "
                 f"time per sample (medians).")
    lines.append("Targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in out["targets"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
