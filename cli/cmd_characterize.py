"""``bss2-calib characterize``: measure a chip's transfer, noise, drivers, synapse map and faults."""
import datetime as dt
from pathlib import Path

import click

from bss2_calib.chipsim import Chip

from .common import chip_options, echo_json, json_option, stderr_progress, store_option, verbosity_options


def _rows(spec):
    """'0:128:8' (a slice) or '0,5,9' (a list) -> tuple of rows, None for all."""
    if spec is None:
        return None
    try:
        if ":" in spec:
            parts = [int(p) if p else None for p in spec.split(":")]
            if len(parts) > 3:
                raise ValueError
            return tuple(range(128)[slice(*parts)])
        return tuple(int(p) for p in spec.split(",") if p.strip())
    except ValueError:
        raise click.BadParameter(f"expected START:STOP[:STEP] or a comma-separated list, got {spec!r}",
                                 param_hint="--rows") from None


@click.command("characterize")
@verbosity_options
@chip_options
@click.option("--artifact", default=None, metavar="ARTIFACT",
              help="Calibration artifact (a directory, or chip-N / chip-N/NAME in the store): characterize the "
                   "chip as found and with the artifact applied.")
@store_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory of the characterization artifact (must not exist) "
                   "[default: characterization-chip<ID>-<preset>-<UTC time>].")
@click.option("--seed", type=int, default=None, help="Seed of the chip's trial-to-trial noise [default: fresh].")
@click.option("--rows", "rows_spec", default=None, metavar="SPEC",
              help="Rows (drivers per hemisphere) for the one-hot probes, e.g. 0:128:8 or 0,64 [default: all].")
@click.option("--quick", is_flag=True, help="A fast preview: every 8th row and fewer repeats.")
@click.option("--z-threshold", type=click.FloatRange(3, 100), default=6.0, show_default=True,
              help="Fault evidence needed, in standard errors of the measurement noise.")
@json_option
def characterize(chip_id, preset, artifact, store_dir, out, seed, rows_spec, quick, z_threshold, as_json):
    """Characterize a chip through its observable interface and save the result.

    Measures per-column transfer curves (linear range, saturation), noise and
    its dependence on the output level, the activation curves of the drivers,
    the per-synapse gain map of both hemispheres, and the elements that do not
    behave (with the evidence for each). The result is an artifact directory
    (manifest.json + Parquet tables); `bss2-calib report DIR` draws it.
    """
    from bss2_calib.calib.characterize import CharacterizeOptions
    from bss2_calib.calib.characterize import characterize as run_characterization

    rows = _rows(rows_spec)
    if quick:
        kw = dict(transfer_levels=64, transfer_repeats=8, zero_repeats=128, map_repeats=16, stuck_repeats=8,
                  rows=rows if rows is not None else tuple(range(0, 128, 8)))
    else:
        kw = dict(rows=rows)
    opts = CharacterizeOptions(z_threshold=z_threshold, **kw)
    chip = Chip(chip_id, preset, noise_seed=seed)
    art = None
    if artifact is not None:
        from bss2_calib.calib import ArtifactStore, load

        artifact = ArtifactStore(store_dir).resolve(artifact, preset=chip.preset.name)
        art = load(artifact)
    if out is None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = Path(f"characterization-chip{chip_id}-{chip.preset.name}-{stamp}")
    if out.exists():
        raise click.ClickException(f"{out} exists; characterizations are never overwritten (choose another --out)")
    res = run_characterization(chip, opts, artifact=art, artifact_path=artifact, progress=stderr_progress("characterize"))
    path = res.save(out)
    m = res.manifest
    if as_json:
        echo_json({"path": str(path), "chip_id": chip_id, "preset": chip.preset.name, "states": res.states,
                   "hw_time_s": m["hw_time_s"], "wall_time_s": m["wall_time_s"],
                   "conditions": m["conditions"], "quality": m["quality"]})
        return
    click.echo(f"chip {chip_id} ({chip.preset.name}): characterization written to {path}")
    click.echo(f"hardware time {m['hw_time_s']:.2f} s, wall time {m['wall_time_s']:.1f} s")
    for state, q in m["quality"].items():
        click.echo(f"[{state}]")
        click.echo(f"  gain exc/inh (median)  {_g(q['gain_exc_median_lsb_per_unit'])} / "
                   f"{_g(q['gain_inh_median_lsb_per_unit'])} LSB per unit of sum(x*w) per send; spread "
                   f"{_pct(q['gain_exc_spread_rel'])} / {_pct(q['gain_inh_spread_rel'])}")
        click.echo(f"  offset spread          {_g(q['offset_spread_lsb'])} LSB")
        click.echo(f"  noise (median)         {_g(q['noise_median_lsb'])} LSB")
        click.echo(f"  linear range (median)  {_g(q['linear_lo_median_lsb'])} .. {_g(q['linear_hi_median_lsb'])} LSB")
        click.echo(f"  driver amplitude       {_g(q['driver_amplitude_median_lsb_per_send'])} LSB per send, "
                   f"spread {_pct(q['driver_amplitude_spread_rel'])}")
        faults = ", ".join(f"{k[len('faults_'):].replace('_', ' ')} {v}" for k, v in q.items()
                           if k.startswith("faults_"))
        click.echo(f"  faults                 {faults}")


def _g(v):
    return "n/a" if v is None else f"{v:.4g}"


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.1f} %"
