"""From a finished calibration session to the artifact's tidy tables.

One builder per table; each returns a DataFrame that passes
:func:`calib.schema.check_frame`. Tables whose stages did not run are left out.
"""
import numpy as np
import pandas as pd

from bss2_calib.chipsim import COLS, N_DRIVERS, N_NEURONS, ROWS

from .schema import TABLES, check_frame

QUADRANT_KNOBS = ("syn_i_bias_dac", "stp_i_ramp", "cadc_v_ramp_offset", "cadc_i_ramp_slope")
DRIVER_KNOBS = ("hagen_dac_offset",)
NEURON_KNOBS = ("v_reset", "i_bias_synin_exc_gm", "i_bias_synin_inh_gm", "i_bias_leak", "cadc_channel_offset")
#: a live neuron whose excitatory or inhibitory gain stays below this fraction of the target is *weak*
#: (its input-gain knob could not bring it up): the digital correction would have to amplify the column,
#: and its noise and rounding, more than twofold, so it is marked failed instead
WEAK_GAIN = 0.5


def weak_neurons(gain_exc, gain_inh, dead):
    """Per neuron: live, and its excitatory or inhibitory gain (relative to the target) below :data:`WEAK_GAIN`."""
    ge, gi = np.asarray(gain_exc, dtype=np.float64), np.asarray(gain_inh, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ~np.asarray(dead, dtype=bool) & ((ge < WEAK_GAIN) | (gi < WEAK_GAIN))


def _frame(name, data):
    spec = TABLES[name]
    df = pd.DataFrame(data, index=spec.make_index())
    for c, dt in spec.columns.items():
        if dt != "str":
            df[c] = df[c].astype(dt)
    df = df[list(spec.columns)]
    check_frame(name, df)
    return df


def knob_tables(knobs, knob_results):
    """knobs_quadrant / knobs_driver / knobs_neuron from the chip's final codes and step successes."""
    ok = {"quadrant": np.ones(4, bool), "driver": np.ones(N_DRIVERS, bool), "neuron": np.ones(N_NEURONS, bool)}
    gran = {k: "quadrant" for k in QUADRANT_KNOBS} | {k: "driver" for k in DRIVER_KNOBS} | \
        {k: "neuron" for k in NEURON_KNOBS}
    for r in knob_results:
        ok[gran[r.knob]][r.instances[~r.success]] = False
    out = {}
    for name, gkey, names in (("knobs_quadrant", "quadrant", QUADRANT_KNOBS), ("knobs_driver", "driver", DRIVER_KNOBS),
                              ("knobs_neuron", "neuron", NEURON_KNOBS)):
        out[name] = _frame(name, {**{k: np.asarray(knobs[k], dtype=np.int64) for k in names}, "success": ok[gkey]})
    return out


def knob_steps_table(knob_results):
    """Per knob step and instance: code, target, value, residual, success, measurements."""
    parts = []
    for r in knob_results:
        parts.append(pd.DataFrame({
            "step": r.name, "instance": r.instances.astype(np.int64), "knob": r.knob,
            "code": r.codes.astype(np.int64), "target": r.target.astype(np.float64),
            "value": r.value.astype(np.float64), "residual": r.residual.astype(np.float64),
            "before": r.before.astype(np.float64), "success": r.success.astype(bool),
            "measurements": r.measurements.astype(np.int64)}))
    cols = list(TABLES["knob_steps"].columns)
    if parts:
        df = pd.concat(parts, ignore_index=True)
    else:
        df = pd.DataFrame({"step": pd.Series([], dtype="str"), "instance": pd.Series([], dtype=np.int64),
                           "knob": pd.Series([], dtype="str"), "code": pd.Series([], dtype=np.int64),
                           **{c: pd.Series([], dtype=np.float64) for c in ("target", "value", "residual", "before")},
                           "success": pd.Series([], dtype=bool), "measurements": pd.Series([], dtype=np.int64)})
    df["step"] = df["step"].astype("str")
    df["knob"] = df["knob"].astype("str")
    df = df.set_index(["step", "instance"])[cols]
    check_frame("knob_steps", df)
    return df


def correction_tables(session):
    """neuron_correction, driver_transfer, synapse_gain, weight_transfer from the table stages' typed results."""
    out = {}
    syn, off = session.synapses, session.offsets
    if syn is not None and off is not None:
        nf = session.neuron_fit
        dead, noisy = syn.dead_neuron, off.noisy
        if nf is not None:
            ge, gi, o = nf.gain_exc, nf.gain_inh, nf.offset
            ges, gis, os_ = nf.gain_exc_std, nf.gain_inh_std, nf.offset_std
            ok = nf.success
        else:
            ge, gi, o = syn.gain_exc, syn.gain_inh, off.offset
            ges = gis = np.full(N_NEURONS, np.nan)
            os_ = off.offset_std
            ok = np.isfinite(ge) & np.isfinite(gi)
        weak = weak_neurons(ge, gi, dead)
        out["neuron_correction"] = _frame("neuron_correction", {
            "gain_exc": ge, "gain_exc_std": ges, "gain_inh": gi, "gain_inh_std": gis, "offset_lsb": o,
            "offset_std_lsb": os_, "noise_lsb": off.noise, "dead": dead, "noisy": noisy, "weak": weak,
            "success": ok & ~dead & ~noisy & ~weak})
        bad_col = np.stack([(dead | noisy)[:COLS], (dead | noisy)[COLS:]])[:, None, :]
        bad_row = syn.dead_driver.reshape(2, ROWS)[:, :, None]
        stuck = syn.stuck_zero_exc | syn.stuck_max_exc | syn.stuck_zero_inh | syn.stuck_max_inh
        fin = np.isfinite(syn.s_exc) & np.isfinite(syn.s_inh)
        sok = fin & ~stuck & ~bad_col & ~bad_row
        out["synapse_gain"] = _frame("synapse_gain", {
            "gain_exc": syn.s_exc.ravel(), "gain_exc_std": syn.s_exc_std.ravel(),
            "gain_inh": syn.s_inh.ravel(), "gain_inh_std": syn.s_inh_std.ravel(),
            "stuck_zero_exc": syn.stuck_zero_exc.ravel(), "stuck_max_exc": syn.stuck_max_exc.ravel(),
            "stuck_zero_inh": syn.stuck_zero_inh.ravel(), "stuck_max_inh": syn.stuck_max_inh.ravel(),
            "zero_weight_lsb": syn.zero_weight_response.ravel(), "success": sok.ravel()})
    tr = session.transfer
    if tr is not None:
        dead = np.repeat(tr.dead_driver, 32)
        ps = tr.pulse_steps.ravel()
        out["driver_transfer"] = _frame("driver_transfer", {
            "pulse_steps": ps, "pulse_steps_std": tr.pulse_steps_std.ravel(), "dead": dead,
            "success": ~dead & np.isfinite(ps)})
    wt = session.weights
    if wt is not None:
        out["weight_transfer"] = _frame("weight_transfer", {
            "effective_weight": wt.effective_weight, "effective_weight_std": wt.effective_weight_std,
            "effective_weight_exc": wt.effective_weight_exc, "effective_weight_inh": wt.effective_weight_inh,
            "success": wt.success})
    return out


def knob_codes(tables):
    """The knob codes held by an artifact's knob tables, as a dict of int64 arrays."""
    out = {}
    for name, names in (("knobs_quadrant", QUADRANT_KNOBS), ("knobs_driver", DRIVER_KNOBS),
                        ("knobs_neuron", NEURON_KNOBS)):
        for k in names:
            out[k] = tables[name][k].to_numpy(dtype=np.int64, copy=True)
    return out

