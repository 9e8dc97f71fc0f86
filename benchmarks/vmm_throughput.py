"""Throughput of the simulated chip against a plain float32 matmul of the same shapes.

Full-chip VMM: both hemispheres in one ``chip.run(x, "both")`` call, a batch of
4096 vectors, the ``default`` preset (every non-ideality on: mismatch, leak,
soft saturation, raw-ADC clipping, fast noise). The reference is a plain
``numpy.matmul`` of float32 arrays of the same shapes, 2 x (4096 x 128) @ (128 x 256),
allocating its result like the simulator does. The two are timed interleaved in
one process; the ratio is the median simulator time over the median reference
time. Peak memory of one call is measured with ``tracemalloc`` (numpy's
allocations are traced); the process's peak RSS comes from ``getrusage``.

Also times the simulator back to back (after a pause, so that no BLAS thread
of the reference is still spinning), and the per-call time of small batches
(what calibration loops see). ``--numpy`` measures the plain numpy reference
(``BSS2_CHIPSIM_JIT=0``; the same numbers, see ``chipsim.kernel``).

``--runs N`` starts N fresh processes one after another (each the
measurement above) and prints every run's ratios and their median, min and
max: a single process run moves by up to 30 % on a shared machine.
``--profile`` adds the time of each step of a call (means over the
interleaved repeats): the kernel's steps (``chipsim.kernel.run(..., profile=)``:
the seeds, then the fused per-block loop ``vmm`` on all threads), and the
parts of that loop timed alone in one thread over every block of the call
(``gather``, the look-up and range check; ``product``; ``readout``, the noise
and the rounding). ``BSS2_CHIPSIM_THREADS=1`` measures one thread.

Usage::

    python benchmarks/vmm_throughput.py [--batch 4096] [--repeats 60] [--preset default] [--numpy]
        [--dtype int64|int32|uint8] [--runs N] [--profile] [--json]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from bss2_calib.chipsim import Chip, kernel
from bss2_calib.chipsim.chip import _as_activations


def _peak_bytes(fn):
    kernel.wait_for_helpers()
    tracemalloc.start()
    try:
        fn()
        kernel.wait_for_helpers()  # CPython 3.11 can crash if tracemalloc stops while a helper allocates
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _median_us(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=60, help="interleaved repeats of each (median)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--chip", type=int, default=0)
    ap.add_argument("--numpy", action="store_true", help="the numpy path (BSS2_CHIPSIM_JIT=0)")
    ap.add_argument("--dtype", default="int64", choices=("int64", "int32", "uint8"),
                    help="dtype of the activations (numpy's default integer is int64)")
    ap.add_argument("--runs", type=int, default=1, help="fresh processes to run one after another")
    ap.add_argument("--profile", action="store_true", help="also time each step of a call")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args(argv)
    if args.runs > 1:
        return _runs(args, sys.argv[1:] if argv is None else list(argv))
    if args.numpy:
        os.environ["BSS2_CHIPSIM_JIT"] = "0"
    from bss2_calib.chipsim.noise import jit

    path = "compiled (numba)" if jit() is not None else "numpy"

    rng = np.random.default_rng(0)
    chip = Chip(args.chip, args.preset, noise_seed=1)
    for h in (0, 1):
        chip.set_weights(rng.integers(-63, 64, (128, 256)), h)
    x = rng.integers(0, 32, (2, args.batch, 128)).astype(args.dtype)
    a = x.astype(np.float32)
    w = rng.standard_normal((2, 128, 256)).astype(np.float32)

    def sim():
        return chip.run(x, "both")

    def ref():
        return np.matmul(a, w)

    for _ in range(5):  # warm up caches, thread pool, BLAS
        sim()
        ref()
    t_sim, t_ref = [], []
    for _ in range(args.repeats):
        for fn, ts in ((ref, t_ref), (sim, t_sim)):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    t_sim, t_ref = np.array(t_sim), np.array(t_ref)
    time.sleep(0.3)  # let the reference's BLAS threads fall asleep (OpenBLAS spins about 0.1 s after a call)
    t_b2b = _median_us(sim, max(args.repeats // 2, 10)) / 1e3
    cpu0 = time.process_time()
    for _ in range(10):
        sim()
    cpu_sim = (time.process_time() - cpu0) / 10
    cpu0 = time.process_time()
    for _ in range(10):
        ref()
    cpu_ref = (time.process_time() - cpu0) / 10

    profile = _profile(chip, x, ref, args.repeats) if args.profile else None

    small = {}
    for b in (1, 8, 64):
        xs = rng.integers(0, 32, (b, 128))
        x2 = rng.integers(0, 32, (2, b, 128))
        small[b] = {"one_hemisphere_us": _median_us(lambda: chip.run(xs, 0), 300),
                    "both_us": _median_us(lambda: chip.run(x2, "both"), 300)}

    res = {
        "preset": args.preset,
        "path": path,
        "dtype": args.dtype,
        "batch": args.batch,
        "repeats": args.repeats,
        "sim_ms": float(np.median(t_sim)) * 1e3,
        "ref_ms": float(np.median(t_ref)) * 1e3,
        "ratio": float(np.median(t_sim) / np.median(t_ref)),
        "ratio_p25_p75_of_pairs": [float(v) for v in np.percentile(t_sim / t_ref, [25, 75])],
        "sim_back_to_back_ms": float(t_b2b),
        "ratio_back_to_back": float(t_b2b / (np.median(t_ref) * 1e3)),
        "cpu_ratio": cpu_sim / cpu_ref,
        "sim_peak_traced_mib": _peak_bytes(sim) / 2**20,
        "ref_peak_traced_mib": _peak_bytes(ref) / 2**20,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "small_batch": small,
        "profile_ms": profile,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
        return res
    print(f"full-chip VMM, preset {args.preset!r}, {path} path, {args.dtype} activations, "
          f"2 x ({args.batch} x 128) @ (128 x 256), "
          f"{args.repeats} interleaved repeats, {res['cpus']} CPUs, load {res['load_average'][0]:.2f}")
    print(f"  simulator  chip.run(x, 'both')  {res['sim_ms']:7.2f} ms (median)")
    print(f"  reference  float32 np.matmul    {res['ref_ms']:7.2f} ms (median)")
    print(f"  ratio {res['ratio']:.2f}  (pairwise ratios, 25..75 %: {res['ratio_p25_p75_of_pairs'][0]:.2f}.."
          f"{res['ratio_p25_p75_of_pairs'][1]:.2f}; process CPU-time ratio {res['cpu_ratio']:.2f})")
    print(f"  simulator back to back (no matmul in between) {res['sim_back_to_back_ms']:.2f} ms: "
          f"ratio {res['ratio_back_to_back']:.2f}")
    print(f"  peak traced memory of one call: simulator {res['sim_peak_traced_mib']:.1f} MiB, "
          f"reference {res['ref_peak_traced_mib']:.1f} MiB; process max RSS {res['max_rss_mib']:.0f} MiB")
    for b, v in small.items():
        print(f"  batch {b:3d}: {v['one_hemisphere_us']:6.1f} us per run (one hemisphere), "
              f"{v['both_us']:6.1f} us ('both')")
    if profile:
        print("  one call by step (ms, mean over the interleaved repeats): "
              + ", ".join(f"{k} {v:.2f}" for k, v in profile.items()))
    return res


def _profile(chip, x, ref, repeats):
    """Mean wall time per step of ``chip.run(x, "both")``, ms, each call right after a reference call."""
    from bss2_calib.chipsim.noise import NOISE_ROWS, jit

    plans = (chip._plan(0, 1, 5), chip._plan(1, 1, 5))
    xa = _as_activations(x)
    steps = {}
    for _ in range(repeats):
        ref()
        t0 = time.perf_counter()
        kernel.run(xa, plans, chip._stream, profile=steps)
        steps["total"] = steps.get("total", 0.0) + time.perf_counter() - t0
    J = jit()
    if J is None:
        return {k: v / repeats * 1e3 for k, v in steps.items()}
    batch = x.shape[1]
    pb, p16, yb = J._block_buffers(batch)
    out, events = np.empty((batch, 256), np.int8), np.empty(batch, np.int64)
    blocks = [(k, b * NOISE_ROWS, min(batch, (b + 1) * NOISE_ROWS)) for k in (0, 1)
              for b in range(-(-batch // NOISE_ROWS))]
    seeds = chip._stream.seeds(len(blocks), plans[0].seed_words)

    def gather():
        for k, r0, r1 in blocks:
            J.gather(xa[k, r0:r1], plans[k].table, p16[:r1 - r0], events[r0:r1])

    def product():
        for k, r0, r1 in blocks:
            J.product(pb, plans[k].wp, yb, plans[k].yscale, r1 - r0)

    def readout():
        for i, (k, r0, r1) in enumerate(blocks):
            p = plans[k]
            read = J.readout_fast if p.vmm == "vmm_fast" else J.readout_gauss
            read(yb[:r1 - r0], p.off, seeds[i:i + 1] if p.draws else seeds[:0], out[r0:r1], 0, 1, *p.args)

    for name, fn in (("gather", gather), ("product", product), ("readout", readout)):
        fn()  # compiles what has not run alone before
        t = 0.0
        for _ in range(repeats):
            ref()
            t0 = time.perf_counter()
            fn()
            t += time.perf_counter() - t0
        steps[f"{name} (alone)"] = t
    return {k: v / repeats * 1e3 for k, v in steps.items()}


def _runs(args, argv):
    """Run the benchmark in ``args.runs`` fresh processes; print each run's ratios and their spread."""
    child, skip = [], False
    for a in argv:  # drop --runs N and --json
        if skip:
            skip = False
        elif a == "--runs":
            skip = True
        elif not a.startswith("--runs=") and a != "--json":
            child.append(a)
    results = []
    for i in range(args.runs):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), *child, "--json"], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out)
        results.append(r)
        if not args.json:
            print(f"run {i + 1}: ratio {r['ratio']:.2f} (sim {r['sim_ms']:.2f} ms, ref {r['ref_ms']:.2f} ms), "
                  f"back to back {r['ratio_back_to_back']:.2f}, load {r['load_average'][0]:.2f}", flush=True)
    summary = {}
    for key in ("ratio", "ratio_back_to_back", "sim_ms", "ref_ms"):
        v = np.array([r[key] for r in results])
        summary[key] = {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}
    if args.json:
        json.dump({"runs": results, "summary": summary}, sys.stdout, indent=1)
        print()
    else:
        r0 = results[0]
        print(f"{args.runs} runs, preset {r0['preset']!r}, {r0['path']} path, {r0['dtype']} activations, batch "
              f"{r0['batch']}, {r0['repeats']} repeats each:")
        for key, v in summary.items():
            print(f"  {key:20s} median {v['median']:.2f}  min {v['min']:.2f}  max {v['max']:.2f}")
    return summary


if __name__ == "__main__":
    main()
