"""``bss2-calib chip info``: geometry, preset, and the chip's mismatch as measured."""
import click
import numpy as np

from bss2_calib.chipsim import COLS, KNOBS, ROWS, Chip
from bss2_calib.chipsim.geometry import N_DRIVERS, N_NEURONS

from .common import chip_options, echo_json, json_option, verbosity_options


@click.group()
@verbosity_options
def chip():
    """Inspect simulated chips."""


def measure_summary(c, *, vectors=256, seed=0):
    """Gain, offset and noise of every column, measured through the observable interface only.

    One test pattern per hemisphere: 16 rows of weight +40 driven with random
    activations (so sum(x*w) spans the linear range), plus zero-input runs for
    offset and noise.
    """
    rng = np.random.default_rng(seed)
    gains, offsets, noises = [], [], []
    for h in (0, 1):
        w = np.zeros((ROWS, COLS), dtype=np.int64)
        w[:16] = 40
        x = rng.integers(0, 32, size=(vectors, ROWS))
        y = c.vmm(x, w, hemisphere=h).astype(np.float64)
        z = c.run(np.zeros((vectors, ROWS), dtype=np.int64), h).astype(np.float64)
        s = (x[:, :16] * 40).sum(axis=1).astype(np.float64)
        off = z.mean(axis=0)
        sc = s - s.mean()
        g = (sc @ (y - y.mean(axis=0))) / (sc @ sc)
        gains.append(g)
        offsets.append(off)
        noises.append(z.std(axis=0, ddof=1))
    g, o, n = (np.concatenate(a) for a in (gains, offsets, noises))
    alive = np.abs(g) > 1e-4
    med = np.median(g[alive]) if alive.any() else 0.0
    return {
        "gain_median_lsb_per_unit": float(med),
        "gain_spread_rel": float(np.std(g[alive]) / med) if med else float("nan"),
        "offset_spread_lsb": float(np.std(o)),
        "offset_mean_lsb": float(np.mean(o)),
        "noise_median_lsb": float(np.median(n)),
        "columns_without_response": int((~alive).sum()),
        "vectors_per_hemisphere": 2 * vectors,
    }


@chip.command("info")
@verbosity_options
@chip_options
@json_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the trial-to-trial noise.")
def info(chip_id, preset, as_json, seed):
    """Geometry, preset and a measured summary of one chip's mismatch."""
    c = Chip(chip_id, preset, noise_seed=seed)
    summary = measure_summary(c, seed=seed)
    out = {
        "chip_id": chip_id,
        "preset": c.preset.name,
        "preset_sha256": c.preset.sha256,
        "geometry": {"hemispheres": 2, "rows_per_hemisphere": ROWS, "columns_per_hemisphere": COLS,
                     "drivers": N_DRIVERS, "neurons": N_NEURONS, "quadrants": 4},
        "knobs": {k.name: {"granularity": k.granularity, "range": [k.lo, k.hi], "default": k.default}
                  for k in KNOBS.values()},
        "measured": summary,
        "hw_time_s": c.hw_time_s,
    }
    if as_json:
        echo_json(out)
        return
    click.echo(f"chip {chip_id}  preset {c.preset.name} ({c.preset.sha256[:12]})")
    click.echo(f"geometry: 2 hemispheres x {ROWS} signed inputs x {COLS} columns; {N_DRIVERS} drivers, "
               f"{N_NEURONS} neurons, 4 quadrants")
    m = summary
    click.echo(f"gain (median)        {m['gain_median_lsb_per_unit']:.5f} LSB per unit of sum(x*w) per send")
    click.echo(f"column gain spread   {100 * m['gain_spread_rel']:.1f} %")
    click.echo(f"column offset spread {m['offset_spread_lsb']:.2f} LSB (mean {m['offset_mean_lsb']:+.2f})")
    click.echo(f"noise (median)       {m['noise_median_lsb']:.2f} LSB")
    click.echo(f"silent columns       {m['columns_without_response']}")
    click.echo(f"hardware time spent  {c.hw_time_s * 1e3:.1f} ms")
