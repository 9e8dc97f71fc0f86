"""Fault detection of the characterization: recall and false alarms per fault kind.

Usage::

    python benchmarks/faults.py [--chips 8] [--json]

Characterizes ``--chips`` chips (ids 0..N-1) of two populations through the
observable interface (``calib.characterize``, all defaults) and scores the
reported faults against the simulator's truth:

* ``harsh``: every mismatch doubled; 0.5 % stuck-at-zero and 0.2 % stuck-at-max
  synapses, 1 % dead and 1 % noisy neurons, 1 % dead drivers;
* ``stuck1-dead2``: a JSON preset written to a temporary directory, ``"base":
  "default"`` with 1 % stuck synapses (0.5 % stuck at zero, 0.5 % at max) and
  2 % dead neurons.

Recall = faulty elements of a kind reported as that kind / faulty elements of
that kind. False-alarm rate = healthy elements reported as that kind / healthy
elements. Synapses on a dead driver or neuron cannot be observed and are left
out of both. A synapse whose two rows are both stuck is reported, but its kind
may be mistaken; such cases are counted under "misclassified".
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from bss2_calib.chipsim import Chip  # noqa: E402
from bss2_calib.calib.characterize import characterize  # noqa: E402

KINDS = ("stuck_zero_synapse", "stuck_max_synapse", "dead_neuron", "noisy_neuron", "dead_driver")
N_ELEMENTS = {"stuck_zero_synapse": 2 * 2 * 128 * 256, "stuck_max_synapse": 2 * 2 * 128 * 256, "dead_neuron": 512,
              "noisy_neuron": 512, "dead_driver": 256}
CUSTOM = {"name": "stuck1-dead2", "base": "default",
          "description": "default chip with 1 % stuck synapses (half at zero, half at max) and 2 % dead neurons",
          "faults": {"stuck_zero_synapses": 0.005, "stuck_max_synapses": 0.005, "dead_neurons": 0.02}}


def truth_sets(chip):
    """Faulty elements by kind, from the simulator's truth (benchmark only)."""
    f = chip.truth.faults()
    out = {"dead_neuron": set(np.flatnonzero(f["dead_neuron"]).tolist()),
           "noisy_neuron": set(np.flatnonzero(f["noisy_neuron"]).tolist()),
           "dead_driver": set(np.flatnonzero(f["dead_driver"]).tolist())}
    masked = 0
    for kind, key in (("stuck_zero_synapse", "stuck_zero"), ("stuck_max_synapse", "stuck_max")):
        s = set()
        for h, sign, r, j in zip(*np.nonzero(f[key])):
            if f["dead_driver"][128 * h + r] or f["dead_neuron"][256 * h + j]:
                masked += 1
                continue
            s.add((int(h), "exc" if sign == 0 else "inh", int(r), int(j)))
        out[kind] = s
    return out, masked


def found_sets(res):
    fl = res.tables["faults"]
    out = {k: set() for k in KINDS}
    if not len(fl):
        return out
    for _, row in fl.xs("uncalibrated", level="state").iterrows():
        k = row["kind"]
        if k in ("dead_neuron", "noisy_neuron"):
            out[k].add(int(row["neuron"]))
        elif k == "dead_driver":
            out[k].add(int(row["driver"]))
        else:
            out[k].add((int(row["hemisphere"]), str(row["sign"]), int(row["row"]), int(row["column"])))
    return out


def run(preset, chips):
    tot = {k: {"faulty": 0, "detected": 0, "false_alarms": 0, "healthy": 0, "misclassified": 0} for k in KINDS}
    walls, hws, masked = [], [], 0
    for cid in range(chips):
        chip = Chip(cid, preset, noise_seed=1000 + cid)
        t0 = time.perf_counter()
        res = characterize(chip)
        walls.append(time.perf_counter() - t0)
        hws.append(res.manifest["hw_time_s"])
        truth, m = truth_sets(chip)
        masked += m
        found = found_sets(res)
        any_synapse_fault = truth["stuck_zero_synapse"] | truth["stuck_max_synapse"]
        for k in KINDS:
            fa = found[k] - truth[k]
            tot[k]["faulty"] += len(truth[k])
            tot[k]["detected"] += len(found[k] & truth[k])
            if k.endswith("synapse"):
                wrong_kind = fa & any_synapse_fault
                tot[k]["misclassified"] += len(wrong_kind)
                fa = fa - wrong_kind
            tot[k]["false_alarms"] += len(fa)
            tot[k]["healthy"] += N_ELEMENTS[k] - len(truth[k])
    for k in KINDS:
        t = tot[k]
        t["recall"] = t["detected"] / t["faulty"] if t["faulty"] else None
        t["false_alarm_rate"] = t["false_alarms"] / t["healthy"]
    return {"preset": str(preset), "chips": chips, "masked_synapse_faults": masked, "kinds": tot,
            "wall_time_s_median": float(np.median(walls)), "hw_time_s_median": float(np.median(hws))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chips", type=int, default=8, help="chips per population (ids 0..N-1)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        custom = Path(tmp) / "stuck1-dead2.json"
        custom.write_text(json.dumps(CUSTOM, indent=1))
        results = [run("harsh", args.chips), run(custom, args.chips)]
    results[1]["preset"] = CUSTOM["name"]
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for r in results:
        print(f"\n{r['preset']}: {r['chips']} chips, characterization {r['wall_time_s_median']:.2f} s wall / "
              f"{r['hw_time_s_median']:.2f} s hardware time per chip (median); "
              f"{r['masked_synapse_faults']} stuck synapses on dead drivers/neurons left out")
        print(f"{'fault kind':<20} {'faulty':>7} {'found':>7} {'recall':>8} {'false alarms':>13} "
              f"{'rate':>9} {'wrong kind':>10}")
        for k, t in r["kinds"].items():
            rec = "n/a" if t["recall"] is None else f"{100 * t['recall']:.2f} %"
            print(f"{k:<20} {t['faulty']:>7} {t['detected']:>7} {rec:>8} {t['false_alarms']:>13} "
                  f"{t['false_alarm_rate']:>9.1e} {t['misclassified']:>10}")


if __name__ == "__main__":
    main()
