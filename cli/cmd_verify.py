"""``bss2-calib verify``: does a stored calibration still describe the chip?"""
import sys

import click

from .common import echo_json, json_option, store_option, verbosity_options


@click.command("verify")
@verbosity_options
@click.argument("artifact")
@store_option
@click.option("--chip", "chip_id", type=click.IntRange(min=0), default=None,
              help="Chip id to check (default: the artifact's).")
@click.option("--preset", default=None, help="Preset of the chip (default: the artifact's preset name).")
@click.option("--hours", type=click.FloatRange(0, 1e6), default=0.0, show_default=True,
              help="Simulated environment: let the chip age this many hours first (it drifts).")
@click.option("--temperature", type=click.FloatRange(-40, 125), default=None,
              help="Simulated environment: die temperature in deg C.")
@click.option("--gain-threshold", type=click.FloatRange(0, 1, min_open=True), default=0.01, show_default=True,
              help="Largest acceptable rms gain deviation (relative).")
@click.option("--offset-threshold", type=click.FloatRange(0, 100, min_open=True), default=0.5, show_default=True,
              help="Largest acceptable rms offset deviation, LSB.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the chip's noise and the probe patterns.")
@json_option
def verify(artifact, store_dir, chip_id, preset, hours, temperature, gain_threshold, offset_threshold, seed,
           as_json):
    """Check ARTIFACT against the chip with a few hundred probe vectors.

    Exit 0 if the calibration still holds, 1 if it has gone stale (the
    figures and thresholds are printed). --hours and --temperature simulate
    the environment of the simulated chip before the check.
    """
    from bss2_calib.chipsim import Chip
    from bss2_calib.calib import ArtifactStore, load
    from bss2_calib.calib import verify as run_verify

    res = load(ArtifactStore(store_dir).resolve(artifact, preset=preset))
    chip = Chip(res.chip_id if chip_id is None else chip_id, preset or res.preset["name"], noise_seed=seed)
    if hours or temperature is not None:
        chip.advance(hours=hours, temperature_c=temperature)
    rep = run_verify(res, chip, gain_threshold=gain_threshold, offset_threshold_lsb=offset_threshold, seed=seed)
    if as_json:
        echo_json({"artifact": str(res.path), "chip_id": chip.chip_id, **rep.to_dict()})
    elif rep.vectors == 0:
        click.echo(f"STALE: {rep.reason}")
    else:
        state = "valid" if rep.valid else "STALE"
        click.echo(f"{state}: gain deviation {100 * rep.gain_deviation_rms:.2f} % rms (threshold "
                   f"{100 * rep.gain_threshold:.2f} %), offset deviation {rep.offset_deviation_rms_lsb:.2f} LSB rms "
                   f"(threshold {rep.offset_threshold_lsb:.2f} LSB), global gain x{rep.global_gain_ratio:.4f}; "
                   f"{rep.vectors} vectors, {1e3 * rep.hw_time_s:.0f} ms hardware time")
        if not rep.valid:
            click.echo(f"reason: {rep.reason}")
    if not as_json:
        click.echo(f"artifact: {res.path}")
    if not rep.valid:
        sys.exit(1)
