"""Tidy tables of a characterization (named index levels, units in column names).

Every table's first index level is ``state`` ("uncalibrated" or "calibrated").

| table | index | columns |
|---|---|---|
| ``column_summary`` | (state, neuron) | hemisphere, column, baseline_read, offset_lsb, noise_lsb, gain_exc_lsb_per_unit, gain_exc_sem, gain_inh_lsb_per_unit, gain_inh_sem, linear_lo_lsb, linear_hi_lsb, linear_lo_sum_xw, linear_hi_sum_xw, sat_lo_lsb, sat_hi_lsb, sat_lo_sum_xw, sat_hi_sum_xw, probe_weight_exc, probe_weight_inh, dead, noisy, success |
| ``column_transfer`` | (state, neuron, sum_xw) | output_mean_lsb, output_std_lsb, corrected_lsb |
| ``noise_level`` | (state, output_lsb) | noise_median_lsb, noise_q10_lsb, noise_q90_lsb, n_points |
| ``driver_activation`` | (state, driver, activation) | output_lsb_per_send, output_sem_lsb_per_send, pulse_steps |
| ``driver_summary`` | (state, driver) | hemisphere, row, amplitude_lsb_per_send, amplitude_rel, slope_steps_per_code, offset_steps, excess_at_1_steps, linearity_rms_steps, dead, success |
| ``synapse_gain`` | (state, hemisphere, row, column) | gain_exc_lsb_per_unit, gain_exc_sem, rel_exc, gain_inh_lsb_per_unit, gain_inh_sem, rel_inh, zero_weight_lsb, stuck_zero_exc, stuck_zero_inh, stuck_max_exc, stuck_max_inh, success |
| ``faults`` | (state, fault) | kind, element, hemisphere, row, column, sign, neuron, driver, measured, expected, threshold, z_score, unit, evidence |

Driver outputs are LSB per send at weight 63, normalised to the median column.
Gains are LSB per unit of sum(x*w) per send (the transfer gains at
num_sends 1, the map gains at the probe's num_sends, see the manifest);
``rel_*`` are the synapse's share after dividing out its driver's and its
column's factor (median 1); ``corrected_lsb`` is the output after a
calibration artifact's per-neuron software correction (NaN without one).
"""
import numpy as np
import pandas as pd

from ..schema import CHARACTERIZATION_SCHEMA as SCHEMA, CHARACTERIZATION_TABLES as TABLES
from ..schema import conform_characterization as conform
from .detect import FAULT_COLUMNS

__all__ = ["SCHEMA", "TABLES", "conform", "build_tables"]

COLS = 256
def _mi(state, *levels, names):
    arrays = [np.full(len(levels[0]), state, dtype=object)] + [np.asarray(v) for v in levels]
    return pd.MultiIndex.from_arrays(arrays, names=["state", *names])


def column_summary(r):
    f = r["fit"]
    n = np.arange(512)
    df = pd.DataFrame({
        "hemisphere": n // COLS, "column": n % COLS, "baseline_read": r["baseline"],
        "offset_lsb": r["offset"], "noise_lsb": r["noise"],
        "gain_exc_lsb_per_unit": f["gain_exc"], "gain_exc_sem": f["gain_exc_sem"],
        "gain_inh_lsb_per_unit": f["gain_inh"], "gain_inh_sem": f["gain_inh_sem"],
        "linear_lo_lsb": f["linear_lo_lsb"], "linear_hi_lsb": f["linear_hi_lsb"],
        "linear_lo_sum_xw": f["linear_lo_sum_xw"], "linear_hi_sum_xw": f["linear_hi_sum_xw"],
        "sat_lo_lsb": f["sat_lo_lsb"], "sat_hi_lsb": f["sat_hi_lsb"],
        "sat_lo_sum_xw": f["sat_lo_sum_xw"], "sat_hi_sum_xw": f["sat_hi_sum_xw"],
        "probe_weight_exc": r["probe_w_exc"], "probe_weight_inh": r["probe_w_inh"],
        "dead": r["dead_neuron"], "noisy": r["noisy_neuron"],
        "success": f["success"] & ~r["dead_neuron"] & ~r["noisy_neuron"],
    }, index=_mi(r["state"], n, names=["neuron"]))
    return df


def column_transfer(r):
    s = r["sum_xw"]
    k = len(s)
    neuron = np.repeat(np.arange(512), k)
    sums = np.tile(s, 512)
    corr = r.get("transfer_corrected")
    return pd.DataFrame({
        "output_mean_lsb": r["transfer_mean"].T.ravel(),
        "output_std_lsb": r["transfer_std"].T.ravel(),
        "corrected_lsb": corr.T.ravel() if corr is not None else np.full(k * 512, np.nan),
    }, index=_mi(r["state"], neuron, sums, names=["neuron", "sum_xw"]))


def noise_level(r):
    nl = r["noise_level"]
    return pd.DataFrame({k: nl[k] for k in ("noise_median_lsb", "noise_q10_lsb", "noise_q90_lsb", "n_points")},
                        index=_mi(r["state"], nl["output_lsb"], names=["output_lsb"]))


def driver_activation(r):
    rows = r["rows"]
    d = r["drivers"]
    drv = (128 * np.arange(2)[:, None] + rows[None]).ravel()  # (2 * nr,)
    act = np.arange(32)
    idx_d = np.repeat(drv, 32)
    idx_a = np.tile(act, len(drv))

    def flat(a):  # (2, 32, nr) -> driver-major
        return a.transpose(0, 2, 1).reshape(-1)

    return pd.DataFrame({"output_lsb_per_send": flat(d["output_lsb_per_send"]),
                         "output_sem_lsb_per_send": flat(d["output_sem_lsb_per_send"]),
                         "pulse_steps": flat(d["pulse_steps"])},
                        index=_mi(r["state"], idx_d, idx_a, names=["driver", "activation"]))


def driver_summary(r):
    rows = r["rows"]
    s = r["drivers"]["summary"]
    h = np.repeat(np.arange(2), len(rows))
    rr = np.tile(rows, 2)
    dead = r["dead_driver"].ravel()
    return pd.DataFrame({
        "hemisphere": h, "row": rr,
        "amplitude_lsb_per_send": s["amplitude_lsb_per_send"].ravel(), "amplitude_rel": s["amplitude_rel"].ravel(),
        "slope_steps_per_code": s["slope"].ravel(), "offset_steps": s["offset_steps"].ravel(),
        "excess_at_1_steps": s["excess_at_1_steps"].ravel(), "linearity_rms_steps": s["linearity_rms_steps"].ravel(),
        "dead": dead, "success": ~dead & np.isfinite(s["offset_steps"].ravel()),
    }, index=_mi(r["state"], 128 * h + rr, names=["driver"]))


def synapse_gain(r):
    rows = r["rows"]
    nr = len(rows)
    h = np.repeat(np.arange(2), nr * COLS)
    rr = np.tile(np.repeat(rows, COLS), 2)
    cc = np.tile(np.arange(COLS), 2 * nr)

    def f32(a):
        return np.asarray(a, dtype=np.float32).ravel()

    stuck = {k: r[k].ravel() for k in ("stuck_zero_exc", "stuck_zero_inh", "stuck_max_exc", "stuck_max_inh")}
    any_stuck = np.any(np.stack(list(stuck.values())), axis=0)
    return pd.DataFrame({
        "gain_exc_lsb_per_unit": f32(r["gain_exc"]), "gain_exc_sem": f32(r["sem_exc"]), "rel_exc": f32(r["rel_exc"]),
        "gain_inh_lsb_per_unit": f32(r["gain_inh"]), "gain_inh_sem": f32(r["sem_inh"]), "rel_inh": f32(r["rel_inh"]),
        "zero_weight_lsb": f32(r["zero_probe"]), **stuck,
        "success": r["valid"].ravel() & ~any_stuck,
    }, index=_mi(r["state"], h, rr, cc, names=["hemisphere", "row", "column"]))


def faults(r):
    recs = r["fault_records"]
    data = {c: [rec.get(c) for rec in recs] for c in FAULT_COLUMNS}
    cols = {}
    for c in FAULT_COLUMNS:
        want = SCHEMA["faults"][1][c]
        if want == "Int64":
            cols[c] = pd.array([None if v is None else int(v) for v in data[c]], dtype=want)
        elif want == "float64":
            cols[c] = np.asarray([np.nan if v is None else float(v) for v in data[c]], dtype=np.float64)
        else:
            cols[c] = pd.array(data[c], dtype=want)
    return pd.DataFrame(cols, index=_mi(r["state"], np.arange(len(recs), dtype=np.int64), names=["fault"]))


def build_tables(results):
    """Concatenate the tables of one or two passes (states)."""
    builders = {"column_summary": column_summary, "column_transfer": column_transfer, "noise_level": noise_level,
                "driver_activation": driver_activation, "driver_summary": driver_summary,
                "synapse_gain": synapse_gain, "faults": faults}
    out = {}
    for name, fn in builders.items():
        frames = [fn(r) for r in results]
        nonempty = [f for f in frames if len(f)] or frames[:1]  # pandas warns on concatenating empty frames
        out[name] = conform(name, pd.concat(nonempty) if len(nonempty) > 1 else nonempty[0])
    return out
