"""Driver transfer: the effective activation of every driver for every input 0..31.

Every synapse is programmed to +63; each driver is driven alone at activation
x = 1..30 (the 31 point comes from the synapse stage), once at each of five
num_sends around ``transfer_num_sends`` (the spread dithers the int8 rounding). With the per-synapse
responses ``a[d, j]`` at activation 31 known, the ratio ``T[d, x] / T[d, 31]``
is a least-squares fit over the 256 columns of the hemisphere (columns weighted
by ``a^2 / noise^2``; saturated points and faulty columns excluded); scaled by
``T31`` it gives ``pulse_steps`` in nominal activation steps. A weighted
isotonic regression makes every driver's transfer monotone, with ``T[d, 0] = 0``.
"""
from dataclasses import dataclass

import numpy as np

from bss2_calib.chipsim import COLS, N_DRIVERS, ROWS

from ..problem import Meter, TableStep
from ..probes import nanmedian
from ..schema import frame_table
from .monotone import isotonic


@dataclass(frozen=True, eq=False)
class DriverTransferFit:
    """Driver transfer ``pulse_steps`` (256, 32) (monotone), its standard error, the dead drivers (256,) and the unconstrained ratios ``raw``."""

    pulse_steps: np.ndarray
    pulse_steps_std: np.ndarray
    dead_driver: np.ndarray
    raw: np.ndarray


def run(session):
    meter = Meter(session.chip)
    t = session.options.tables
    n = t.transfer_num_sends
    syn, off, kappa = session.synapses, session.offsets, session.kappa
    n_ref = session.options.conditions.num_sends_ref
    lr = t.linear_range_lsb
    # expected per-send response at activation 31 of every (driver, column), at this num_sends
    a = np.stack([syn.a_exc[0], syn.a_exc[1]]) * (1 - kappa * (n - 1)) / (1 - kappa * (n_ref - 1))
    noise = np.stack([off.noise[:COLS], off.noise[COLS:]])
    colw = np.where(off.noisy.reshape(2, COLS) | syn.dead_neuron.reshape(2, COLS), 0.0,
                    1.0 / np.maximum(noise, 0.3) ** 2)  # (2, 256)
    bad = syn.stuck_zero_exc | syn.stuck_max_exc | syn.stuck_max_inh | ~np.isfinite(a)
    a = np.where(bad, 0.0, a)
    offset = np.stack([off.offset[:COLS], off.offset[COLS:]])[:, None, :]
    ratio = np.full((N_DRIVERS, 32), np.nan)
    ratio_std = np.full((N_DRIVERS, 32), np.nan)
    ratio[:, 0], ratio_std[:, 0] = 0.0, 0.0
    ratio[:, 31], ratio_std[:, 31] = 1.0, 0.0
    session.prober.uniform_weights(63)
    eye = np.eye(ROWS, dtype=np.int64)
    sends = [m for m in range(n - 2, n + 3) if m >= 1]  # a spread of num_sends dithers the int8 rounding
    for x in range(1, 31):
        num = np.zeros((2, ROWS))
        den = np.zeros((2, ROWS))
        for m in sends:
            f = (1 - kappa * (m - 1)) / (1 - kappa * (n - 1))
            y = session.prober.run(np.broadcast_to(eye * x, (2, ROWS, ROWS)), m).astype(np.float64)  # (2, 128, 256)
            ok = (np.abs(y - offset) <= lr) & (y > -127) & (y < 127)
            w = np.where(ok, colw[:, None, :], 0.0)
            p = a * (m * f)  # expected response at T(x) / T(31) = 1
            num += (w * p * (y - offset)).sum(axis=2)
            den += (w * p * p).sum(axis=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio[:, x] = (num / den).reshape(N_DRIVERS)  # T(x) / T(31)
            ratio_std[:, x] = (1.0 / np.sqrt(den)).reshape(N_DRIVERS)
    T31 = syn.T31
    steps = ratio * T31[:, None]
    steps_std = ratio_std * np.abs(T31[:, None])
    dead = syn.dead_driver | ~np.isfinite(T31)
    mono = np.zeros_like(steps)
    for d in range(N_DRIVERS):
        if dead[d]:
            continue
        wts = 1.0 / np.maximum(steps_std[d], 1e-3) ** 2
        wts[0] = wts[31] = 1e12
        mono[d] = isotonic(steps[d], wts)
    mono[:, 0] = 0.0
    steps_std[dead] = np.nan
    session.transfer = DriverTransferFit(pulse_steps=mono, pulse_steps_std=steps_std, dead_driver=dead, raw=steps)
    live = ~dead
    xs = np.arange(32, dtype=np.float64)
    # what the table corrects: deviation from a proportional transfer
    prop = mono[live] - xs[None, :] * mono[live, 31:32] / 31.0
    quality = {"pulse_steps_std_median": float(nanmedian(steps_std[live][:, 1:31])) if live.any() else None,
               "monotone_adjustment_max": float(np.nanmax(np.abs(mono[live] - steps[live]))) if live.any() else None,
               "dead_drivers": np.flatnonzero(dead).tolist()}
    return TableStep(
        name="transfer", algorithm="one-hot column-weighted LS ratios + isotonic", quantity="pulse length",
        unit="activation steps", n_instances=N_DRIVERS, failed=np.flatnonzero(dead).tolist(), instance="driver",
        spread_before=float(np.sqrt(np.mean(prop ** 2))) if prop.size else float("nan"),
        spread_after=quality["pulse_steps_std_median"] or float("nan"), cost=meter.read(), quality=quality)


def to_frame(session):
    """The ``driver_transfer`` table (256 drivers x 32 activations) from this stage's fit."""
    tr = session.transfer
    if tr is None:
        return {}
    dead = np.repeat(tr.dead_driver, 32)
    ps = tr.pulse_steps.ravel()
    return {"driver_transfer": frame_table("driver_transfer", {
        "pulse_steps": ps, "pulse_steps_std": tr.pulse_steps_std.ravel(), "dead": dead,
        "success": ~dead & np.isfinite(ps)})}
