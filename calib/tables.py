"""The knob tables (tier 1) of an artifact, and the weak-neuron rule its correction tables share.

Each builder returns a DataFrame that passes :func:`calib.schema.check_frame`. The correction tables
are framed by their table stages (``to_frame`` of the modules in :mod:`calib.fits`, declared in
:data:`calib.stages.TABLE_STAGES`).
"""
import numpy as np
import pandas as pd

from bss2_calib.chipsim import N_DRIVERS, N_NEURONS

from .schema import TABLES, check_frame, frame_table

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
        out[name] = frame_table(name, {**{k: np.asarray(knobs[k], dtype=np.int64) for k in names}, "success": ok[gkey]})
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


def knob_codes(tables):
    """The knob codes held by an artifact's knob tables, as a dict of int64 arrays."""
    out = {}
    for name, names in (("knobs_quadrant", QUADRANT_KNOBS), ("knobs_driver", DRIVER_KNOBS),
                        ("knobs_neuron", NEURON_KNOBS)):
        for k in names:
            out[k] = tables[name][k].to_numpy(dtype=np.int64, copy=True)
    return out

