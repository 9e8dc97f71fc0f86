"""Runtime overhead of MNIST inference and of one hardware-in-the-loop step (docs/profile.md).

    python benchmarks/runtime_profile.py [--model mnist] [--batch-size 100] [--repeats 5] [--store DIR] [--out DIR]

Profiles (``infer.profile``) the inference pass and one training step of the
model on ``default`` chip 0, uncalibrated and calibrated (``calib.calibrate``
with noise seed 0, or the chip's latest artifact in ``--store``), ``--repeats``
times each with noise seeds 0, 1, ...; prints the median and the range of
every host stage and hardware category, per layer and in total; then the sweep
of one matmul over batch sizes and matrix shapes against the time model. With
``--out`` it writes the figures of the calibrated run with the median host time.
Host times are wall-clock on this machine; the simulated hardware time is the
chip's clock.
"""
import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from bss2_calib.chipsim import Chip
from bss2_calib.infer import Engine
from bss2_calib.infer import profile as prof


def artifact(store):
    from bss2_calib import calib

    st = None if store is None else calib.ArtifactStore(store)
    path = None if st is None else st.latest(0)
    if path is not None:
        return calib.load(path)
    res = calib.calibrate(Chip(0, "default", noise_seed=0))
    return res if st is None else st.save(res)


def _fmt(values, scale=1e3):
    v = np.asarray(values) * scale
    return f"{np.median(v):8.2f} [{v.min():.2f}-{v.max():.2f}]"


def summarize(runs, label):
    print(f"\n== {label}: median [min-max] over {len(runs)} runs, ms")
    names = [r.name for r in runs[0].rows] + ["total", "setup"]
    for i, name in enumerate(names):
        rows = [(list(p.rows) + [p.total, p.setup])[i] for p in runs]
        host = "  ".join(f"{c} {_fmt([r.host[c] for r in rows])}" for c in prof.HOST_CATEGORIES)
        hw = "  ".join(f"{c} {_fmt([r.hw[c] for r in rows])}" for c in prof.HW_CATEGORIES)
        print(f"{name:18s} host {_fmt([r.host_s for r in rows])}: {host}")
        print(f"{'':18s} hw   {_fmt([r.hw_s for r in rows])}: {hw}")
    tot = [p.total for p in runs]
    mops = [t.ops / t.hw_s / 1e6 for t in tot]
    share = [t.host["simulation"] / t.host_s for t in tot]
    print(f"MOp/s (hardware time) {np.median(mops):.1f} [{min(mops):.1f}-{max(mops):.1f}]; simulator share of "
          f"host time {100 * np.median(share):.0f} %; hardware/host time "
          f"{np.median([t.hw_s / t.host_s for t in tot]):.2f}; stage counters "
          f"{1e6 * np.median([p.instrumentation_s for p in runs]):.0f} us")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--store", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print("calibrating chip 0 ...", file=sys.stderr)
    art = artifact(args.store)
    results = {}
    for state, a in (("uncalibrated", None), ("calibrated", art)):
        for train in (False, True):
            runs = []
            for seed in range(args.repeats):
                print(f"{state} {'train' if train else 'inference'} seed {seed}", file=sys.stderr)
                runs.append(prof.profile(lambda: Engine(Chip(0, "default", noise_seed=seed), a), args.model,
                                         batch_size=args.batch_size, train=train))
            results[state, train] = runs
            summarize(runs, f"{args.model}, {state}, {'one HIL step' if train else 'inference'}, "
                            f"batch {args.batch_size}")
    limits = prof.design_limits(nonzero=prof.SWEEP_NONZERO)
    print("\ndesign ceilings (one chip, half the inputs non-zero), MOp/s:",
          ", ".join(f"{k} {v:.0f}" for k, v in limits.items() if k != "reconfiguration_s"))
    points = prof.sweep(Engine(Chip(0, "noiseless", noise_seed=0)), rng=np.random.default_rng(0))
    print("sweep, MOp/s measured (model) of one matmul with fresh weights:")
    for shape in prof.SWEEP_SHAPES:
        cells = [f"b={p.batch} {p.to_dict()['mops_per_s_measured']:.0f} ({p.to_dict()['mops_per_s_model']:.0f})"
                 for p in points if (p.n_in, p.n_out) == shape]
        print(f"  {shape[0]}x{shape[1]}: " + ", ".join(cells))
    if args.out is not None:
        from bss2_calib.infer.profile_plots import plot_profiles, plot_sweep

        args.out.mkdir(parents=True, exist_ok=True)
        pick = [sorted(results["calibrated", t], key=lambda p: p.total.host_s)[args.repeats // 2]
                for t in (False, True)]
        plot_profiles(pick).savefig(args.out / f"profile_{args.model}.png", dpi=80)
        plot_sweep(points, limits).savefig(args.out / "profile_sweep.png", dpi=80)
        print(f"figures in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
