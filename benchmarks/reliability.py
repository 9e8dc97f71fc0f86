"""Reliability: fault masks of the calibration, MNIST on faulty chips with and without remapping, drift.

Usage::

    python benchmarks/reliability.py [--part faults|drift|all] [--chips 4] [--limit N] [--json PATH]

Faults (``--part faults``), two populations of ``--chips`` chips (ids 0..N-1):

* ``harsh``: every mismatch doubled; 0.5 % stuck-at-zero and 0.2 % stuck-at-max
  synapses, 1 % dead and 1 % noisy neurons, 1 % dead drivers;
* ``stuck1-dead2``: a JSON preset written to a temporary directory, ``"base":
  "default"``, 1 % stuck synapses (0.5 % at zero, 0.5 % at max) and 2 % dead neurons.

Every chip is calibrated by ``calib.calibrate`` (noise seed = chip id). Detection: the
fault masks of the artifact, as the engine reads them (``Corrections.from_artifact``),
against the simulator's truth (read here only, to score): recall = faulty elements
flagged with their kind / faulty elements; false-alarm rate = healthy elements flagged /
healthy elements. Stuck synapses on a dead driver or neuron cannot be observed (nothing
passes either way) and are left out of both.

MNIST (full 10k test set unless ``--limit``), per chip and model (``mnist_hil.npz``,
``mnist_int.npz``), noise seed 100 + chip id, all through ``infer.Engine`` with the
artifact; rows:

* *fault-free twin*: the same chip id with the preset's fault fractions set to 0 (same
  fixed-pattern mismatch), calibrated the same way: the reference;
* *masks ignored*: the artifact with its fault masks removed (flagged elements are then
  used with nominal values): what detection buys;
* *in place*: ``CorrectionOptions(remap=False, spill=False)``: dead columns read 0, weights on dead
  drivers and stuck-at-zero synapses are dropped, stuck-at-max synapses compensated
  through their partner row where possible (the engine before routing);
* *remap*: ``CorrectionOptions(spill=False)``: tiles routed around faults using the rows
  and columns they leave free;
* *remap + spare*: ``CorrectionOptions(spare_rows="auto", spare_columns="auto", spill=False)``:
  tiles cut smaller so that every tile has as many free rows as the chip has dead drivers per
  hemisphere (and columns likewise);
* *remap + spill*: ``CorrectionOptions()`` (the default): routed, and what routing could not
  save is run again as spill tiles (see ``infer.engine``).

Drift (``--part drift``): ``default`` chips 0..``--drift-chips``-1, each calibrated once at
25 degC; then the environment moves (``chip.advance``): an ageing sweep (hours, one chip
aged from point to point) and a temperature sweep (a fresh chip per temperature). At every point
``calib.verify`` (default thresholds) gives its figures and verdict, and both models
run the MNIST test set on the drifted chip with the stale artifact
(``allow_mismatch=True`` where the temperature leaves the artifact's range). Reported:
the first point verify flags and the first point where accuracy falls more than 0.5
points below the fresh chip's (same noise seed at every point).

MNIST: Y. LeCun, C. Cortes, C. Burges; CC BY-SA 3.0.
"""
import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from bss2_calib import calib  # noqa: E402
from bss2_calib.chipsim import Chip  # noqa: E402
from bss2_calib.infer import ArtifactMismatchWarning, CorrectionOptions, Corrections, Engine  # noqa: E402
from bss2_calib.infer.apps.mnist import APP as MNIST  # noqa: E402
from bss2_calib.infer.corrections import Faults  # noqa: E402
from bss2_calib.infer.data import load_mnist  # noqa: E402

log = logging.getLogger("reliability")
MODELS = REPO / "data" / "models"
MODEL_NAMES = ("mnist_hil", "mnist_int")
NO_FAULTS = {"stuck_zero_synapses": 0.0, "stuck_max_synapses": 0.0, "dead_neurons": 0.0, "noisy_neurons": 0.0,
             "dead_drivers": 0.0}
CUSTOM = {"name": "stuck1-dead2", "base": "default",
          "description": "default chip with 1 % stuck synapses (half at zero, half at max) and 2 % dead neurons",
          "faults": {"stuck_zero_synapses": 0.005, "stuck_max_synapses": 0.005, "dead_neurons": 0.02}}
HARSH_TWIN = {"name": "harsh-fault-free", "base": "harsh", "description": "harsh without faults",
              "faults": NO_FAULTS}
KINDS = ("stuck_zero_synapse", "stuck_max_synapse", "dead_neuron", "noisy_neuron", "dead_driver")
CONFIGS = {"in place": CorrectionOptions(remap=False, spill=False), "remap": CorrectionOptions(spill=False),
           "remap + spare": CorrectionOptions(spare_rows="auto", spare_columns="auto", spill=False),
           "remap + spill": CorrectionOptions()}
HOURS = (0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
TEMPERATURES = (25, 26, 27, 28, 29, 30, 32, 35, 45, 55, 65, 75, 85)
DROP = 0.005


# ------------------------------------------------------------------ detection
def _truth(chip):
    f = chip.truth.faults()
    sets = {"dead_neuron": f["dead_neuron"], "noisy_neuron": f["noisy_neuron"], "dead_driver": f["dead_driver"]}
    # synapse rows (sign, hemisphere, row, column), as the engine's Faults hold them
    observable = ~(f["dead_driver"].reshape(2, 1, 128, 1) | f["dead_neuron"].reshape(2, 1, 1, 256))
    sets["stuck_zero_synapse"] = f["stuck_zero"].transpose(1, 0, 2, 3)
    sets["stuck_max_synapse"] = f["stuck_max"].transpose(1, 0, 2, 3)
    obs = np.broadcast_to(observable, f["stuck_zero"].shape).transpose(1, 0, 2, 3)
    return sets, obs


def detection(chip, artifact):
    """Per kind: faulty, found, false alarms, healthy, wrong kind (masks of the artifact vs truth)."""
    faults = Corrections.from_artifact(artifact).faults
    found = {"dead_neuron": faults.neuron_dead, "noisy_neuron": faults.neuron_noisy, "dead_driver": faults.driver_dead,
             "stuck_zero_synapse": faults.stuck_zero, "stuck_max_synapse": faults.stuck_max}
    truth, obs = _truth(chip)
    any_stuck = truth["stuck_zero_synapse"] | truth["stuck_max_synapse"]
    out = {}
    for k in KINDS:
        t, f = np.asarray(truth[k], bool), np.asarray(found[k], bool)
        scope = obs if k.endswith("synapse") else np.ones_like(t)
        wrong = f & ~t & any_stuck & scope if k.endswith("synapse") else np.zeros_like(t)
        out[k] = {"faulty": int((t & scope).sum()), "found": int((t & f & scope).sum()),
                  "false_alarms": int((f & ~t & scope & ~wrong).sum()), "healthy": int((~t & scope).sum()),
                  "wrong_kind": int(wrong.sum())}
    return out


# ---------------------------------------------------------------------- MNIST
def evaluate(model, images, labels, chip, artifact, options=CorrectionOptions()):
    engine = Engine(chip, artifact, correction=options)
    t0 = time.perf_counter()
    acc = MNIST.evaluate(model, images, labels, engine, batch_size=2000).accuracy
    return acc, engine, time.perf_counter() - t0


def layer_names(report):
    names = {(100, 20): "conv", (500, 128): "fc1", (128, 10): "fc2"}
    return {names.get(tuple(layer["shape"]), layer["name"]): layer["counts"] for layer in report.layers}


def faults_part(chips, images, labels, tmp):
    custom = Path(tmp) / "stuck1-dead2.json"
    custom.write_text(json.dumps(CUSTOM))
    twin = Path(tmp) / "harsh-fault-free.json"
    twin.write_text(json.dumps(HARSH_TWIN))
    models = {k: MNIST.load_model(MODELS / f"{k}.npz") for k in MODEL_NAMES}
    out = []
    for name, preset, twin_preset in (("harsh", "harsh", twin), ("stuck1-dead2", custom, "default")):
        det = {k: dict.fromkeys(("faulty", "found", "false_alarms", "healthy", "wrong_kind"), 0) for k in KINDS}
        acc = {}  # (model, config) -> list over chips
        reports = {}
        for cid in range(chips):
            chip = Chip(cid, preset, noise_seed=cid)
            art = calib.calibrate(chip)
            for k, v in detection(chip, art).items():
                for f, n in v.items():
                    det[k][f] += n
            twin_art = calib.calibrate(Chip(cid, twin_preset, noise_seed=cid))
            corr = Corrections.from_artifact(art)
            blind = dataclasses.replace(corr, faults=Faults())
            for mname, model in models.items():
                seed = 100 + cid
                runs = {"fault-free twin": (Chip(cid, twin_preset, noise_seed=seed), twin_art, CorrectionOptions()),
                        "masks ignored": (Chip(cid, preset, noise_seed=seed), blind, CorrectionOptions())}
                for cname, opt in CONFIGS.items():
                    runs[cname] = (Chip(cid, preset, noise_seed=seed), art, opt)
                for cname, (c, a, opt) in runs.items():
                    a_, engine, wall = evaluate(model, images, labels, c, a, opt)
                    acc.setdefault((mname, cname), []).append(a_)
                    if cname in CONFIGS:
                        rep = engine.fault_report()
                        reports.setdefault((mname, cname), []).append(
                            {"chip": cid, "tile_shape": list(rep.tile_shape), "layers": layer_names(rep),
                             "hw_time_s": engine.stats["hw_time_s"], "wall_s": wall})
                    log.info("%s chip %d %s %-16s %.2f %% (%.1f s)", name, cid, mname, cname, 100 * a_, wall)
        for k in KINDS:
            d = det[k]
            d["recall"] = d["found"] / d["faulty"] if d["faulty"] else None
            d["false_alarm_rate"] = d["false_alarms"] / d["healthy"] if d["healthy"] else None
        out.append({"preset": name, "chips": chips, "detection": det,
                    "accuracy": {f"{m} | {c}": v for (m, c), v in acc.items()},
                    "fault_reports": {f"{m} | {c}": v for (m, c), v in reports.items()}})
    return out


# ---------------------------------------------------------------------- drift
def _accuracy(model, images, labels, chip, artifact):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ArtifactMismatchWarning)
        engine = Engine(chip, artifact, allow_mismatch=True)
    return MNIST.evaluate(model, images, labels, engine, batch_size=2000).accuracy


def drift_sweep(artifact, images, labels, models, *, hours=(), temperatures=(), noise_seed=7):
    """Points of a sweep: verify's figures and verdict, and the accuracy of every model on the drifted chip.

    Ageing: one chip, advanced from point to point (the random walk accumulates); temperature:
    a fresh chip per point set to that temperature.
    """
    points = []

    def point(chip, label):
        rep = calib.verify(artifact, chip)
        acc = {m: _accuracy(model, images, labels, chip, artifact) for m, model in models.items()}
        points.append({"point": label, "age_h": chip.age_h, "temperature_c": chip.temperature_c,
                       "verify": rep.to_dict(), "accuracy": acc})
        log.info("%-8s verify %s gain %.2f %% offset %.2f LSB | %s", label, "valid" if rep.valid else "STALE",
                 100 * rep.gain_deviation_rms, rep.offset_deviation_rms_lsb,
                 " ".join(f"{m} {100 * a:.2f}" for m, a in acc.items()))

    if hours:
        chip = Chip(artifact.chip_id, artifact.preset["name"], noise_seed=noise_seed)
        age = 0.0
        for h in hours:
            chip.advance(hours=h - age)
            age = h
            point(chip, f"{h:g} h")
    for t in temperatures:
        chip = Chip(artifact.chip_id, artifact.preset["name"], noise_seed=noise_seed)
        chip.advance(temperature_c=t)
        point(chip, f"{t:g} degC")
    return points


def first_points(points, drop=DROP):
    """Index of the first stale verdict and, per model, of the first accuracy drop > drop (None if none)."""
    flag = next((i for i, p in enumerate(points) if not p["verify"]["valid"]), None)
    ref = points[0]["accuracy"]
    drops = {m: next((i for i, p in enumerate(points) if p["accuracy"][m] < ref[m] - drop), None) for m in ref}
    return flag, drops


def drift_part(images, labels, chips=(0,)):
    """Ageing and temperature sweeps of every chip in ``chips`` (default preset, calibrated at 25 degC)."""
    models = {k: MNIST.load_model(MODELS / f"{k}.npz") for k in MODEL_NAMES}
    out = {}
    for cid in chips:
        art = calib.calibrate(Chip(cid, "default", noise_seed=cid))
        for name, kw in (("ageing", {"hours": HOURS}), ("temperature", {"temperatures": TEMPERATURES})):
            pts = drift_sweep(art, images, labels, models, noise_seed=7 + cid, **kw)
            flag, drops = first_points(pts)
            out[f"chip {cid}, {name}"] = {
                "chip": cid, "sweep": name, "points": pts, "first_flag": flag, "first_drop": drops,
                "caught_first": all(d is None or (flag is not None and flag < d) for d in drops.values())}
    return out


# --------------------------------------------------------------------- output
def markdown(res):
    lines = []
    for p in res.get("faults", []):
        lines += [f"\n### `{p['preset']}`, chips 0-{p['chips'] - 1}: detection by the calibration's masks", "",
                  "| fault kind | faulty | found | recall | false alarms | false-alarm rate | wrong kind |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for k, d in p["detection"].items():
            if not d["faulty"] and not d["false_alarms"]:
                continue
            rec = "n/a" if d["recall"] is None else f"{100 * d['recall']:.2f} %"
            lines.append(f"| {k} | {d['faulty']} | {d['found']} | {rec} | {d['false_alarms']} | "
                         f"{d['false_alarm_rate']:.1e} | {d['wrong_kind']} |")
        n_img = res["images"]
        lines += ["", "MNIST accuracy (%), mean over chips (per chip in brackets); simulated hardware time per image "
                  "(HIL weights, mean over chips):", "",
                  "| configuration | HIL weights | float-trained weights | hw time / image |", "|---|---|---|---|"]
        for cfg in ("fault-free twin", "masks ignored") + tuple(CONFIGS):
            cells = []
            for m in MODEL_NAMES:
                v = p["accuracy"][f"{m} | {cfg}"]
                cells.append(f"{100 * np.mean(v):.2f} (" + ", ".join(f"{100 * a:.2f}" for a in v) + ")")
            reps = p["fault_reports"].get(f"mnist_hil | {cfg}")
            hw = f"{1e6 * np.mean([r['hw_time_s'] for r in reps]) / n_img:.0f} us" if reps else "-"
            lines.append(f"| {cfg} | {cells[0]} | {cells[1]} | {hw} |")
        lines += ["", "Lost elements (summed over chips, HIL weights; dead drivers and neurons count rows and "
                  "columns, stuck kinds synapses), met / lost:", "",
                  "| configuration | layer | dead driver | dead neuron | noisy neuron | stuck at zero | stuck at max |",
                  "|---|---|---|---|---|---|---|"]
        for cfg in CONFIGS:
            reps = p["fault_reports"][f"mnist_hil | {cfg}"]
            for layer in ("conv", "fc1", "fc2"):
                tot = {}
                for r in reps:
                    for k, c in r["layers"].get(layer, {}).items():
                        tot.setdefault(k, [0, 0])
                        tot[k][0] += c["met"]
                        tot[k][1] += c["lost"]
                cells = [f"{tot.get(k, [0, 0])[0]} / {tot.get(k, [0, 0])[1]}"
                         for k in ("dead_driver", "dead_neuron", "noisy_neuron", "stuck_zero", "stuck_max")]
                lines.append(f"| {cfg} | {layer} | " + " | ".join(cells) + " |")
    drift = res.get("drift", {})
    if drift:
        lines += ["\n### Drift: first STALE verdict vs first accuracy drop > 0.5 points", "",
                  "| chip | sweep | first STALE | first drop, HIL | first drop, float-trained | caught first |",
                  "|---|---|---|---|---|---|"]
        for sweep in drift.values():
            pts, flag = sweep["points"], sweep["first_flag"]
            name = (lambda i: "none" if i is None else pts[i]["point"])
            lines.append(f"| {sweep['chip']} | {sweep['sweep']} | {name(flag)} | "
                         f"{name(sweep['first_drop']['mnist_hil'])} | {name(sweep['first_drop']['mnist_int'])} | "
                         f"{'yes' if sweep['caught_first'] else 'NO'} |")
    for name, sweep in drift.items():
        if sweep["chip"] != min(s["chip"] for s in drift.values()):
            continue
        lines += [f"\n### Drift: {name}", "",
                  "| point | verify gain dev. (thr.) | offset dev. (thr.) | verdict | HIL acc. | float-trained acc. |",
                  "|---|---|---|---|---|---|"]
        for p in sweep["points"]:
            v = p["verify"]
            if v["vectors"] == 0:
                fig, off, verdict = "-", "-", "STALE (conditions: " + v["reason"].split(" (")[0] + ")"
            else:
                fig = f"{100 * v['gain_deviation_rms']:.2f} % ({100 * v['gain_threshold']:.2f} %)"
                off = f"{v['offset_deviation_rms_lsb']:.2f} LSB ({v['offset_threshold_lsb']:.2f})"
                verdict = "valid" if v["valid"] else "STALE"
            acc = " | ".join(f"{100 * p['accuracy'][m]:.2f}" for m in MODEL_NAMES)
            lines.append(f"| {p['point']} | {fig} | {off} | {verdict} | {acc} |")
        pts = sweep["points"]
        flag = sweep["first_flag"]
        drops = ", ".join(f"{m}: {'none' if d is None else pts[d]['point']}" for m, d in sweep["first_drop"].items())
        lines += ["", f"First STALE: {'none' if flag is None else pts[flag]['point']}; first drop > 0.5 points: "
                  f"{drops}; caught first: {sweep['caught_first']}."]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("faults", "drift", "all"), default="all")
    ap.add_argument("--chips", type=int, default=4, help="chips per fault population (ids 0..N-1)")
    ap.add_argument("--drift-chips", type=int, default=4, help="chips of the drift sweeps (ids 0..N-1)")
    ap.add_argument("--limit", type=int, default=None, help="first N test images only")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results as JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("calib", "chipsim", "bss2"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    images, labels = load_mnist("test", limit=args.limit)
    res = {"images": int(len(labels))}
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("faults", "all"):
            res["faults"] = faults_part(args.chips, images, labels, tmp)
    if args.part in ("drift", "all"):
        res["drift"] = drift_part(images, labels, tuple(range(args.drift_chips)))
    print(f"{res['images']} test images")
    print(markdown(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
