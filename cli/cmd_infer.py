"""``bss2-calib infer``: run an application (:mod:`infer.apps`) on a simulated chip; the loop lives in infer."""
import warnings
from pathlib import Path

import click

from bss2_calib.chipsim import Chip
from bss2_calib.data import models_dir
from bss2_calib.infer import apps

from .common import chip_options, echo_json, json_option, progress, store_option, verbosity_options

MODELS_DIR = Path(str(models_dir()))  # package data; a wheel installs it as plain files


def _spare(ctx, param, value):
    """--spare-rows / --spare-columns: an integer >= 0 or "auto" (the engine checks the upper bound)."""
    if value is None or value == "auto":
        return value or 0
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0 or str(n) != value.strip():
        raise click.BadParameter(f'expected a non-negative integer or "auto", got {value!r}')
    return n


def load_artifact(ref, store_dir=None, preset=None):
    """Load a calibration artifact (a directory, or chip-N / chip-N/NAME in the store) with calib's loader.

    ``chip-N`` is the latest calibration of chip N made with ``preset`` (None: of any preset).
    """
    try:
        from bss2_calib.calib import ArtifactStore, load
    except ImportError as err:
        raise click.ClickException(f"cannot load artifacts: the calib package is unavailable ({err})") from None
    return load(ArtifactStore(store_dir).resolve(ref, preset=preset))


@click.command("infer")
@verbosity_options
@click.option("--model", "model_name", type=click.Choice(apps.names()), default="mnist", show_default=True,
              help="Application: mnist (the paper's MNIST network) or har (activities of daily living "
                   "from smartphone sensors).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Integer model file (.npz); default: the shipped data/models/<model>_hil.npz, else "
                   "<model>_int.npz.")
@chip_options
@click.option("--artifact", default=None,
              help="Calibration artifact of the chip (a directory, or chip-N / chip-N/NAME in the store): "
                   "its knobs are written and its corrections applied.")
@store_option
@click.option("--uncalibrated", is_flag=True, help="Run the chip at its default knobs, without corrections.")
@click.option("--chips", "fleet_chips", default=None,
              help="Run the model partitioned across these chips (0-3, or 0,2,5), each with its latest artifact "
                   "in the store (instead of --chip and --artifact).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N test samples.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Samples per forward pass (one engine call per layer).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the chip's trial-to-trial noise.")
@click.option("--allow-mismatch", is_flag=True, help="Use an artifact made for another chip/preset/conditions "
                                                      "(warns).")
@click.option("--remap/--no-remap", default=True, show_default=True,
              help="Route tiles around the faults the artifact records (dead drivers and neurons, noisy neurons, "
                   "stuck synapses).")
@click.option("--spare-rows", default="0", show_default=True, callback=_spare,
              help='Synapse rows per tile to keep free for remapping (0..120), or "auto" (the most dead drivers '
                   'of a hemisphere).')
@click.option("--spare-columns", default="0", show_default=True, callback=_spare,
              help='Columns per tile to keep free for remapping (0..248), or "auto" (the most dead or noisy '
                   'neurons of a hemisphere).')
@click.option("--spill/--no-spill", default=True, show_default=True,
              help="Run what routing could not save for lack of room (weights on dead drivers and stuck synapses, "
                   "columns on dead, noisy or weak neurons) again as smaller spill tiles (extra runs).")
@json_option
def infer(model_name, weights, chip_id, preset, artifact, store_dir, uncalibrated, fleet_chips, limit, batch_size,
          seed,
          allow_mismatch, remap, spare_rows, spare_columns, spill, as_json):
    """Classify an application's test set on a simulated chip: accuracy, macro-F1 and throughput."""
    from bss2_calib.infer import ArtifactMismatchWarning, CorrectionOptions, Engine
    from bss2_calib.infer.apps.inference import run_inference

    if (artifact is not None) + uncalibrated + (fleet_chips is not None) != 1:
        raise click.UsageError("give exactly one of --artifact PATH, --uncalibrated or --chips IDS")
    app = apps.get(model_name)
    options = CorrectionOptions(remap=remap, spare_rows=spare_rows, spare_columns=spare_columns, spill=spill)
    weights = weights or app.default_model_path()
    int_model = app.load_model(weights)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ArtifactMismatchWarning)
        if fleet_chips is not None:
            from bss2_calib.calib.fleet import parse_chips

            engine = Engine.from_store(store_dir, parse_chips(fleet_chips), seed=seed, allow_mismatch=allow_mismatch,
                                       correction=options)
            chip, art, artifact = engine.chips[0], True, f"latest of chips {fleet_chips} in the store"
        else:
            chip = Chip(chip_id, preset, noise_seed=seed)
            art = None if artifact is None else load_artifact(artifact, store_dir, chip.preset.name)
            engine = Engine(chip, art, allow_mismatch=allow_mismatch, correction=options)
    for w in caught:
        click.echo(f"Warning: {w.message}", err=True)
    raw, labels = app.load_test(limit)
    unit, one = app.unit, app.unit[:-1]
    if limit is not None and limit > len(labels):
        click.echo(f"Warning: --limit {limit} exceeds the {len(labels)} test {unit}; using all of them", err=True)
    with progress(length=len(labels), label=unit) as bar:
        done = [0]

        def advance(n_done):
            bar.update(n_done - done[0])
            done[0] = n_done
        res = run_inference(app, int_model, engine, raw, labels, batch_size=batch_size, progress=advance)
    n = res["samples"]
    out = {
        "model": model_name, "weights": str(weights), "chip_id": chip_id if fleet_chips is None else None,
        "chips": [c.chip_id for c in engine.chips], "preset": chip.preset.name,
        "calibrated": art is not None, "artifact": None if artifact is None else str(artifact),
        unit: n, "correct": res["correct"], "accuracy": res["accuracy"],
        "macro_f1": res["macro_f1"], "confusion": res["confusion"], "classes": list(app.classes),
        "wall_time_s": res["wall_time_s"], f"{unit}_per_s": res["samples_per_s"], "hw_time_s": res["hw_time_s"],
        f"hw_time_per_{one}_us": res["hw_time_per_sample_us"], f"mop_per_{one}": res["mop_per_sample"],
        "mops_per_s_wall": res["mops_per_s_wall"], "mops_per_s_hw": res["mops_per_s_hw"],
        "engine": engine.report()["stats"],
        "faults": engine.fault_report().to_dict(),
    }
    if as_json:
        echo_json(out)
        return
    state = f"calibrated ({artifact})" if art is not None else "uncalibrated"
    where = f"chip {chip_id}" if fleet_chips is None else f"chips {', '.join(str(c) for c in out['chips'])}"
    click.echo(f"{model_name} ({weights.name}) on {where}, preset {chip.preset.name}, {state}")
    click.echo(f"accuracy        {100 * out['accuracy']:.2f} % ({out['correct']}/{n}); "
               f"macro-F1 {100 * out['macro_f1']:.2f} %")
    click.echo(f"throughput      {out[f'{unit}_per_s']:.0f} {unit}/s wall ({out['mops_per_s_wall']:.0f} MOp/s)")
    click.echo(f"hardware time   {out[f'hw_time_per_{one}_us']:.0f} us per {one} simulated "
               f"({out['mops_per_s_hw']:.0f} MOp/s)")
    total = out["faults"]["total"]
    if any(c["met"] or c["placed"] for c in total.values()):
        parts = ", ".join(f"{k.replace('_', ' ')} {c['lost']} of {c['met']}" for k, c in total.items() if c["met"])
        spilled = sum(c["spilled"] for c in total.values())
        click.echo(f"faults          {out['faults']['lost']} elements lost, {spilled} spilled "
                   f"({out['engine']['spill_runs']} spill runs; remap {'on' if remap else 'off'}, "
                   f"spill {'on' if spill else 'off'}; lost of met: {parts})")
