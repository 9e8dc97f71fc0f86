"""``bss2-calib infer``: run a network on a simulated chip and report accuracy and throughput."""
import time
import warnings
from pathlib import Path

import click
import numpy as np

from bss2_calib.chipsim import Chip
from bss2_calib.data import models_dir

from .common import chip_options, echo_json, json_option, progress, store_option, verbosity_options

MODELS_DIR = Path(str(models_dir()))  # package data; a wheel installs it as plain files
#: weights tried in order when --weights is not given
DEFAULT_WEIGHTS = ("mnist_hil.npz", "mnist_int.npz")


def default_weights():
    """The shipped MNIST integer model: the hardware-in-the-loop one if present."""
    for name in DEFAULT_WEIGHTS:
        if (MODELS_DIR / name).is_file():
            return MODELS_DIR / name
    raise click.ClickException(f"no MNIST model under {MODELS_DIR} (run benchmarks/train_mnist.py) "
                               "or give --weights")


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
@click.option("--model", type=click.Choice(["mnist"]), default="mnist", show_default=True,
              help="Network to run (the paper's MNIST network).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Integer model file (.npz); default: data/models/mnist_hil.npz, else mnist_int.npz.")
@chip_options
@click.option("--artifact", default=None,
              help="Calibration artifact of the chip (a directory, or chip-N / chip-N/NAME in the store): "
                   "its knobs are written and its corrections applied.")
@store_option
@click.option("--uncalibrated", is_flag=True, help="Run the chip at its default knobs, without corrections.")
@click.option("--chips", "fleet_chips", default=None,
              help="Run the model partitioned across these chips (0-3, or 0,2,5), each with its latest artifact "
                   "in the store (instead of --chip and --artifact).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N test images.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Images per forward pass (one engine call per layer).")
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
@json_option
def infer(model, weights, chip_id, preset, artifact, store_dir, uncalibrated, fleet_chips, limit, batch_size, seed,
          allow_mismatch, remap, spare_rows, spare_columns, as_json):
    """Classify the MNIST test set on a simulated chip: accuracy and throughput."""
    from bss2_calib.infer import ArtifactMismatchWarning, CorrectionOptions, Engine, matmul_backend, mnist
    from bss2_calib.infer.data import load_mnist

    if (artifact is not None) + uncalibrated + (fleet_chips is not None) != 1:
        raise click.UsageError("give exactly one of --artifact PATH, --uncalibrated or --chips IDS")
    options = CorrectionOptions(remap=remap, spare_rows=spare_rows, spare_columns=spare_columns)
    weights = weights or default_weights()
    int_model = mnist.IntegerModel.load(weights)
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
    images, labels = load_mnist("test", limit=limit)
    if limit is not None and limit > len(labels):
        click.echo(f"Warning: --limit {limit} exceeds the {len(labels)} test images; using all of them", err=True)
    backend = matmul_backend(engine)
    correct = 0
    t0 = time.perf_counter()
    with progress(range(0, len(labels), batch_size), label="images") as starts:
        for i in starts:
            pred = mnist.predict(int_model, images[i:i + batch_size], backend)
            correct += int(np.sum(pred == labels[i:i + batch_size]))
    wall = time.perf_counter() - t0
    n = len(labels)
    hw = engine.stats["hw_time_s"]
    macs = _macs_per_image(int_model)
    out = {
        "model": model, "weights": str(weights), "chip_id": chip_id if fleet_chips is None else None,
        "chips": [c.chip_id for c in engine.chips], "preset": chip.preset.name,
        "calibrated": art is not None, "artifact": None if artifact is None else str(artifact),
        "images": n, "correct": correct, "accuracy": correct / n,
        "wall_time_s": wall, "images_per_s": n / wall if wall > 0 else float("inf"),
        "hw_time_s": hw, "hw_time_per_image_us": 1e6 * hw / n,
        "mop_per_image": macs / 1e6, "mops_per_s_wall": macs * n / wall / 1e6 if wall > 0 else float("inf"),
        "mops_per_s_hw": macs * n / hw / 1e6 if hw > 0 else float("inf"),
        "engine": engine.report()["stats"],
        "faults": engine.fault_report().to_dict(),
    }
    if as_json:
        echo_json(out)
        return
    state = f"calibrated ({artifact})" if art is not None else "uncalibrated"
    where = f"chip {chip_id}" if fleet_chips is None else f"chips {', '.join(str(c) for c in out['chips'])}"
    click.echo(f"{model} ({weights.name}) on {where}, preset {chip.preset.name}, {state}")
    click.echo(f"accuracy        {100 * out['accuracy']:.2f} % ({correct}/{n})")
    click.echo(f"throughput      {out['images_per_s']:.0f} images/s wall ({out['mops_per_s_wall']:.0f} MOp/s)")
    click.echo(f"hardware time   {out['hw_time_per_image_us']:.0f} us per image simulated "
               f"({out['mops_per_s_hw']:.0f} MOp/s)")
    total = out["faults"]["total"]
    if any(c["met"] or c["placed"] for c in total.values()):
        parts = ", ".join(f"{k.replace('_', ' ')} {c['lost']} of {c['met']}" for k, c in total.items() if c["met"])
        click.echo(f"faults          {out['faults']['lost']} elements lost "
                   f"(remap {'on' if remap else 'off'}; lost of met: {parts})")


def _macs_per_image(m):
    """Multiply-accumulates per image, counted as rows x columns x vectors of every layer."""
    from bss2_calib.infer import mnist

    conv_rows, conv_cols = m.weight_matrices[0].shape
    return (conv_rows * conv_cols * mnist.CONV_OUT ** 2 + m.fc1.shape[0] * m.fc1.shape[1]
            + m.fc2.shape[0] * m.fc2.shape[1])
