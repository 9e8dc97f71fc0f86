"""``bss2-calib profile``: where the time of inference and of a hardware-in-the-loop step goes."""
from pathlib import Path

import click
import numpy as np

from bss2_calib.chipsim import Chip, load_preset

from .cmd_infer import load_artifact
from .common import chip_options, echo_json, json_option, store_option, verbosity_options


@click.command("profile")
@verbosity_options
@click.option("--model", default="mnist", show_default=True,
              help="Application to profile: mnist or har (the registry of infer.apps).")
@click.option("--train", is_flag=True, help="Profile one hardware-in-the-loop training step (needs torch).")
@chip_options
@click.option("--artifact", default=None, help="Calibration artifact of the chip (a directory or chip-N[/NAME] in "
                                               "the store); default: the uncalibrated chip.")
@store_option
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True,
              help="Samples in the profiled pass.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the chip's noise and of the sweep.")
@click.option("--sweep/--no-sweep", default=True, show_default=True,
              help="Also measure one matmul over batch sizes and matrix shapes against the time model.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the figures profile_MODEL.png (and sweep.png); created if missing.")
@json_option
def profile(model, train, chip_id, preset, artifact, store_dir, batch_size, seed, sweep, out, as_json):
    """Host time by stage and simulated hardware time by category, per layer and in total."""
    from bss2_calib.infer import Engine
    from bss2_calib.infer import profile as prof

    if train:
        prof.require_torch()
    art = None if artifact is None else load_artifact(artifact, store_dir, load_preset(preset).name)

    def engine():
        return Engine(Chip(chip_id, preset, noise_seed=seed), art)

    profiles = [prof.profile(engine, model, batch_size=batch_size)]
    if train:
        profiles.append(prof.profile(engine, model, batch_size=batch_size, train=True))
    limits = prof.design_limits(nonzero=prof.SWEEP_NONZERO)
    points = prof.sweep(Engine(Chip(chip_id, preset, noise_seed=seed)), prof.SWEEP_SHAPES, prof.SWEEP_BATCHES,
                        rng=np.random.default_rng(seed)) if sweep else []
    files = []
    if out is not None:
        from bss2_calib.infer.profile_plots import plot_profiles, plot_sweep

        out.mkdir(parents=True, exist_ok=True)
        files.append(out / f"profile_{model}.png")
        plot_profiles(profiles).savefig(files[-1], dpi=100)
        if points:
            files.append(out / "sweep.png")
            plot_sweep(points, limits).savefig(files[-1], dpi=100)
    if as_json:
        echo_json({"chip_id": chip_id, "preset": preset, "calibrated": art is not None,
                   "profiles": [p.to_dict() for p in profiles], "design_limits_mops": limits,
                   "published_mops": prof.PUBLISHED_MOPS, "sweep": [p.to_dict() for p in points],
                   "figures": [str(f) for f in files]})
        return
    for p in profiles:
        _echo_profile(p)
    click.echo(f"design ceilings (one chip, half the inputs non-zero, MOp/s): fixed cost {limits['fixed_cost']:.0f}, "
               f"event rate {limits['event_rate']:.0f}, both {limits['vector']:.0f}; weight writes "
               f"{limits['weight_write']:.0f} x batch; published end-to-end "
               + ", ".join(f"{v:.0f} ({k})" for k, v in prof.PUBLISHED_MOPS.items()))
    if points:
        click.echo("sweep: MOp/s of one matmul with fresh weights, measured / model")
        for shape in sorted({(p.n_in, p.n_out) for p in points}):
            cells = [f"b={p.batch}: {d['mops_per_s_measured']:.0f}/{d['mops_per_s_model']:.0f}"
                     for p in points if (p.n_in, p.n_out) == shape for d in [p.to_dict()]]
            click.echo(f"  {shape[0]}x{shape[1]}  " + "  ".join(cells))
    for f in files:
        click.echo(f"figure: {f}")


def _echo_profile(p):
    total = p.total
    click.echo(f"{p.model} {p.mode}, batch {p.batch}: host {1e3 * total.host_s:.1f} ms, simulated hardware "
               f"{1e3 * total.hw_s:.2f} ms, {p.to_dict()['total']['mops_per_s_hw'] or 0:.0f} MOp/s (hardware time)")
    head = f"  {'row':18s} {'host ms':>8s} " + " ".join(f"{c[:6]:>7s}" for c in ("partit", "correc", "simula",
                                                                                 "other")) \
        + f" | {'hw ms':>7s} " + " ".join(f"{c[:7]:>7s}" for c in ("knobs", "weights", "events", "fixed", "readout"))
    click.echo(head)
    for r in list(p.rows) + [total, p.setup]:
        click.echo(f"  {r.name:18s} {1e3 * r.host_s:8.2f} " + " ".join(f"{1e3 * r.host[c]:7.2f}" for c in r.host)
                   + f" | {1e3 * r.hw_s:7.3f} " + " ".join(f"{1e3 * r.hw[c]:7.3f}" for c in r.hw))
    click.echo(f"  (simulator host time {100 * total.host['simulation'] / total.host_s:.0f} % of host time; the "
               f"engine's stage counters cost about {1e6 * p.instrumentation_s:.0f} us)")
