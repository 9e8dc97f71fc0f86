"""Fleet benchmark: chips calibrated per minute on Dask with 1 and 2 workers, and the scheduler's overhead.

Usage::

    python benchmarks/fleet.py [--chips 8] [--preset default] [--stages all] [--repeats 3] [--json]

In one process, interleaved ``--repeats`` times (in the order serial, 1, 2 workers, then reversed):

* **serial**: the chips calibrated one after another in this process (``calib.calibrate`` and
  ``ArtifactStore.save``, exactly what a task does), the baseline without Dask;
* **1 worker** and **2 workers**: ``calib.fleet.run`` on an embedded ``LocalCluster`` of that many
  worker processes (one thread each). Cluster start-up and each worker's first-call compilation
  are outside the timing (one warm-up chip per worker first).

Prints chips per minute (median and range over the repeats), the 2-worker / 1-worker ratio of
each repeat, and the overhead per chip: the run's elapsed time times its workers, less the
time the tasks spent inside ``calibrate_chip``, per chip; and the round trip of an empty task.
Every run writes into a fresh temporary store.
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

from bss2_calib import calib  # noqa: E402
from bss2_calib.calib import fleet  # noqa: E402


def _noop(x):
    return x


def serial(chips, preset, options, root):
    t0 = time.perf_counter()
    for c in chips:
        fleet.calibrate_chip(fleet.ChipJob(c, preset, root, options.to_dict()))
    return time.perf_counter() - t0, None


def on_dask(f, n_workers, chips, preset, options, root):
    t0 = time.perf_counter()
    out = fleet.run(f, chips, root, preset=preset, options=options)
    elapsed = time.perf_counter() - t0
    bad = [o for o in out if o.status == "failed"]
    if bad:
        raise SystemExit(f"chip {bad[0].chip_id} failed: {bad[0].reason}")
    busy = sum(o.record["wall_time_s"] for o in out)
    return elapsed, (elapsed * n_workers - busy) / len(chips)


def round_trip(f, n=200):
    t0 = time.perf_counter()
    f.client.gather(f.client.map(_noop, range(n), pure=False))
    return (time.perf_counter() - t0) / n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chips", type=int, default=8, help="chips per run (ids 100..)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--stages", default="all")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    options = calib.Options(stages=a.stages)
    chips = list(range(100, 100 + a.chips))
    warm = calib.Options(stages="cadc")
    res = {"serial": [], "1 worker": [], "2 workers": []}
    overhead = {"1 worker": [], "2 workers": []}
    trips = []
    fleets = {}
    try:
        for name, n in (("1 worker", 1), ("2 workers", 2)):
            fleets[name] = f = fleet.Fleet(workers=n)
            with tempfile.TemporaryDirectory() as tmp:  # compile each worker's kernels outside the timing
                fleet.run(f, list(range(90, 90 + n)), tmp, preset=a.preset, options=warm)
        with tempfile.TemporaryDirectory() as tmp:
            fleet.calibrate_chip(fleet.ChipJob(90, a.preset, tmp, warm.to_dict()))
        for r in range(a.repeats):
            order = list(res) if r % 2 == 0 else list(res)[::-1]  # ABBA: a steady drift in load cancels
            for name in order:
                with tempfile.TemporaryDirectory() as tmp:
                    if name == "serial":
                        t, o = serial(chips, a.preset, options, tmp)
                    else:
                        t, o = on_dask(fleets[name], int(name[0]), chips, a.preset, options, tmp)
                        overhead[name].append(o)
                res[name].append(60.0 * len(chips) / t)
                print(f"repeat {r + 1}: {name:9s} {res[name][-1]:6.1f} chips/min", file=sys.stderr)
            trips.append(round_trip(fleets["2 workers"]))
    finally:
        for f in fleets.values():
            f.close()
    ratio = np.array(res["2 workers"]) / np.array(res["1 worker"])
    out = {"chips": a.chips, "preset": a.preset, "stages": a.stages, "repeats": a.repeats,
           "chips_per_min": {k: {"median": float(np.median(v)), "min": float(min(v)), "max": float(max(v))}
                             for k, v in res.items()},
           "ratio_2_to_1": {"median": float(np.median(ratio)), "per_repeat": ratio.tolist()},
           "overhead_per_chip_s": {k: float(np.median(v)) for k, v in overhead.items()},
           "empty_task_round_trip_ms": 1e3 * float(np.median(trips))}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{a.chips} chips, preset {a.preset}, stages {a.stages}, {a.repeats} repeats (median [min, max])")
    for k, v in out["chips_per_min"].items():
        print(f"  {k:9s} {v['median']:6.1f} chips/min [{v['min']:.1f}, {v['max']:.1f}]")
    print(f"  2 workers / 1 worker: {out['ratio_2_to_1']['median']:.2f} "
          f"(per repeat {', '.join(f'{x:.2f}' for x in ratio)})")
    for k, v in out["overhead_per_chip_s"].items():
        print(f"  overhead per chip, {k}: {v:.3f} s (elapsed x workers - time in tasks)")
    print(f"  empty task round trip: {out['empty_task_round_trip_ms']:.1f} ms")


if __name__ == "__main__":
    main()
