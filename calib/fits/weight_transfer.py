"""Weight DAC transfer: the effective current of every programmable weight magnitude.

The synapse gains are measured at |w| = 63; a weight's current is not exactly
proportional to |w| (the 6-bit current DAC is mildly non-linear). Probe design:
every column of a weight matrix gets one magnitude on all its rows (a
different magnitude per column, rotated over two matrices per sign, so each
magnitude is seen on about 16 columns of either sign); vectors drive 1, 2, 4,
..., 128 spread rows at activation 31. With the per-synapse responses at 63
known, each column's response gives ``D(|w|) / 63`` by least squares over the
patterns whose amplitude is in the linear range; the median over columns, made
monotone, is the table (``D(63) = 63`` by definition, ``D(0) = 0``). The two signs
are measured apart and combined (one DAC drives both rows of a synapse pair);
both are kept as extra columns.
"""
from dataclasses import dataclass

import numpy as np

from bss2_calib.chipsim import COLS, ROWS, W_MAX

from ..problem import Meter, TableStep
from ..probes import nanmedian, nanmean
from ..schema import frame_table
from .monotone import isotonic

MIN_AMPLITUDE = 10.0  #: LSB; weaker pattern responses are too noisy to use
NUM_SENDS = 4


@dataclass(frozen=True, eq=False)
class WeightTransferFit:
    """The weight DAC's effective weight per magnitude 0..63 (combined, its error, per sign) and success flags."""

    effective_weight: np.ndarray
    effective_weight_std: np.ndarray
    effective_weight_exc: np.ndarray
    effective_weight_inh: np.ndarray
    success: np.ndarray


def run(session):
    meter = Meter(session.chip)
    t = session.options.tables
    syn, off, kappa = session.synapses, session.offsets, session.kappa
    n_ref = session.options.conditions.num_sends_ref
    n = NUM_SENDS
    f = (1 - kappa * (n - 1)) / (1 - kappa * (n_ref - 1))
    ks = [1, 2, 4, 8, 16, 32, 64, 128]
    x = np.zeros((len(ks), ROWS), dtype=np.int64)
    for i, k in enumerate(ks):
        x[i, np.arange(0, ROWS, ROWS // k)[:k]] = 31
    active = (x > 0).astype(np.float64)  # (8, 128)
    stuck = syn.stuck_max_exc | syn.stuck_max_inh
    offset = np.stack([off.offset[:COLS], off.offset[COLS:]])[:, None, :]
    noisy = np.stack([off.noisy[:COLS], off.noisy[COLS:]]) | syn.dead_neuron.reshape(2, COLS)
    ratios = {1: [[] for _ in range(W_MAX + 1)], -1: [[] for _ in range(W_MAX + 1)]}
    for m in range(4):
        sign = 1 if m < 2 else -1
        mag = 1 + (np.arange(2 * COLS).reshape(2, COLS) + 41 * m) % W_MAX  # (2, 256), 1..63
        session.prober.set_weights(np.broadcast_to(sign * mag[:, None, :], (2, ROWS, COLS)))
        mean, _ = session.prober.mean_response(x, t.weight_repeats, n)  # (2, 8, 256)
        d = sign * (mean - offset)  # response magnitude
        a = syn.a_exc if sign > 0 else syn.a_inh  # (2, 128, 256)
        unusable = stuck | ~np.isfinite(a)
        P = n * f * np.einsum("kr,hrc->hkc", active, np.where(unusable, 0.0, a))  # prediction at D = 63
        P[np.einsum("kr,hrc->hkc", active, unusable.astype(np.float64)) > 0] = np.nan
        amp = P * mag[:, None, :] / W_MAX
        ok = np.isfinite(P) & (amp >= MIN_AMPLITUDE) & (amp <= t.linear_range_lsb) & (np.abs(mean) < 127)
        with np.errstate(invalid="ignore", divide="ignore"):
            est = W_MAX * np.where(ok, d * P, 0).sum(1) / np.where(ok, P * P, 0).sum(1)  # D(mag) per column
        good = ok.any(axis=1) & ~noisy & np.isfinite(est)
        for h in (0, 1):
            for c in np.flatnonzero(good[h]):
                ratios[sign][mag[h, c]].append(est[h, c] / mag[h, c])
    mags = np.arange(W_MAX + 1, dtype=np.float64)
    per_sign, per_std, seen = {}, {}, {}
    quality = {}
    for sign in (1, -1):
        r = np.array([np.median(v) if v else np.nan for v in ratios[sign]])
        e = np.array([1.2533 * np.std(v) / np.sqrt(len(v)) if len(v) > 1 else np.nan for v in ratios[sign]])
        top = np.isfinite(r) & (mags >= 48)
        r63 = np.polyval(np.polyfit(mags[top], r[top], 1), W_MAX) if top.sum() >= 3 else 1.0
        per_sign[sign] = mags * r / r63
        per_std[sign] = mags * e / abs(r63)
        per_sign[sign][0], per_std[sign][0] = 0.0, 0.0
        seen[sign] = np.isfinite(per_sign[sign])
        name = "exc" if sign > 0 else "inh"
        quality[f"{name}_columns_per_magnitude_median"] = float(np.median([len(v) for v in ratios[sign][1:]]))
    # one transfer for both signs (the same DAC drives both rows), inverse-variance weighted
    we = np.where(seen[1], 1.0 / np.maximum(np.nan_to_num(per_std[1], nan=1.0), 1e-3) ** 2, 0.0)
    wi = np.where(seen[-1], 1.0 / np.maximum(np.nan_to_num(per_std[-1], nan=1.0), 1e-3) ** 2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        comb = (we * np.nan_to_num(per_sign[1]) + wi * np.nan_to_num(per_sign[-1])) / (we + wi)
        comb_std = 1.0 / np.sqrt(we + wi)
    ok = seen[1] | seen[-1]
    ok[0] = True
    comb[0], comb_std[0] = 0.0, 0.0
    comb[~ok] = mags[~ok]  # unmeasured magnitudes: identity, flagged
    wts = 1.0 / np.maximum(np.where(np.isfinite(comb_std), comb_std, 1.0), 1e-3) ** 2
    wts[0] = wts[W_MAX] = 1e12
    comb[W_MAX] = W_MAX
    table = isotonic(comb, wts)
    for i in range(1, W_MAX + 1):  # strictly increasing, so the transfer can be inverted
        table[i] = max(table[i], table[i - 1] + 0.01)
    quality["max_deviation_from_identity"] = float(np.max(np.abs(table - mags)))
    quality["exc_inh_difference_rms"] = float(np.sqrt(nanmean((per_sign[1] - per_sign[-1])[1:] ** 2)))
    session.weights = WeightTransferFit(effective_weight=table, effective_weight_std=comb_std,
                                        effective_weight_exc=per_sign[1], effective_weight_inh=per_sign[-1],
                                        success=ok)
    dev = table - mags
    return TableStep(
        name="weights", algorithm="column-assigned magnitudes, LS per column, median + isotonic",
        quantity="effective weight", unit="weight units", n_instances=W_MAX + 1,
        failed=np.flatnonzero(~ok).tolist(), instance="weight magnitude 0..63",
        spread_before=float(np.sqrt(np.mean(dev ** 2))), spread_after=float(nanmedian(comb_std[1:])),
        cost=meter.read(), quality=quality)


def to_frame(session):
    """The ``weight_transfer`` table (weight magnitudes 0..63) from this stage's fit."""
    wt = session.weights
    if wt is None:
        return {}
    return {"weight_transfer": frame_table("weight_transfer", {
        "effective_weight": wt.effective_weight, "effective_weight_std": wt.effective_weight_std,
        "effective_weight_exc": wt.effective_weight_exc, "effective_weight_inh": wt.effective_weight_inh,
        "success": wt.success})}
