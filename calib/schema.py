"""The artifact's table schema: names, index levels, columns and dtypes (schema version 2).

The knob tables are declared here; every correction table is declared by its table stage's entry in
:data:`calib.stages.TABLE_STAGES`, and :data:`TABLES` gathers them. This module is pure data plus a
validator and :func:`frame_table`; the inference engine can import it
without pulling in any fitting code. See docs/artifact-format.md for the
meaning of every column ("the correction model"). Version 2 sealed the
manifest (``manifest_sha256``) and added ``neuron_correction.weak``; version-1
tables (no ``weak``) still pass :func:`check_frame`.
"""
import numpy as np
import pandas as pd

from bss2_calib.chipsim import N_DRIVERS, N_NEURONS, N_QUADRANTS

from .errors import ArtifactCorrupt
from .stages import BOOL as _B, FLOAT as _F, INT as _I, STR as _S, TABLE_STAGES, TableSpec, int_range as _r

SCHEMA_VERSION = 2
#: schema versions the loader reads (one explicit branch each in :mod:`calib.artifact`)
READABLE_VERSIONS = (1, 2)
KIND = "bss2-calib/calibration"
#: kind of a characterization artifact (its table schema: :mod:`calib.characterize.tables`)
CHARACTERIZATION_KIND = "bss2-calib/characterization"


#: the knob tables (tier 1), framed by :mod:`calib.tables`
KNOB_TABLES = {
    "knobs_quadrant": TableSpec(("quadrant",), {"syn_i_bias_dac": _I, "stp_i_ramp": _I, "cadc_v_ramp_offset": _I,
                                                "cadc_i_ramp_slope": _I, "success": _B}, (_r(N_QUADRANTS),)),
    "knobs_driver": TableSpec(("driver",), {"hagen_dac_offset": _I, "success": _B}, (_r(N_DRIVERS),)),
    "knobs_neuron": TableSpec(("neuron",), {"v_reset": _I, "i_bias_synin_exc_gm": _I, "i_bias_synin_inh_gm": _I,
                                            "i_bias_leak": _I, "cadc_channel_offset": _I, "success": _B},
                              (_r(N_NEURONS),)),
    "knob_steps": TableSpec(("step", "instance"), {
        "knob": _S, "code": _I, "target": _F, "value": _F, "residual": _F, "before": _F, "success": _B,
        "measurements": _I}),
}
#: every table of a calibration artifact: the knob tables and those each table stage declares
#: (:data:`calib.stages.TABLE_STAGES`)
TABLES = {**KNOB_TABLES, **{name: spec for stage in TABLE_STAGES for name, spec in stage.tables.items()}}
#: tables every artifact has
REQUIRED = ("knobs_quadrant", "knobs_driver", "knobs_neuron")
MAX_ROWS = 1 << 20


def _dtype_ok(series, want):
    k = series.dtype
    if want == _F:
        return k == np.float64
    if want == _I:
        return k == np.int64
    if want == _B:
        return k == np.bool_
    return pd.api.types.is_string_dtype(k) and not pd.api.types.is_numeric_dtype(k)


def check_frame(name, df):
    """Raise :class:`ArtifactCorrupt` unless ``df`` has table ``name``'s index, columns and dtypes."""
    spec = TABLES.get(name)
    if spec is None:
        raise ArtifactCorrupt(f"unknown table {name!r}")
    if list(df.index.names) != list(spec.index):
        raise ArtifactCorrupt(f"table {name}: index levels {list(df.index.names)}, expected {list(spec.index)}")
    missing = [c for c in spec.columns if c not in df.columns and c not in (spec.since or {})]
    if missing:
        raise ArtifactCorrupt(f"table {name}: missing column {missing[0]!r}")
    for c, want in spec.columns.items():
        if c in df.columns and not _dtype_ok(df[c], want):
            raise ArtifactCorrupt(f"table {name}: column {c!r} has dtype {df[c].dtype}, expected {want}")
    if len(df) > MAX_ROWS:
        raise ArtifactCorrupt(f"table {name}: {len(df)} rows is more than the limit {MAX_ROWS}")
    if spec.levels is not None:
        if len(df) != spec.n_rows:
            raise ArtifactCorrupt(f"table {name}: {len(df)} rows, expected {spec.n_rows}")
        if not df.index.equals(spec.make_index()):
            raise ArtifactCorrupt(f"table {name}: index values are not the expected ordered range")
    elif df.index.has_duplicates:
        raise ArtifactCorrupt(f"table {name}: duplicate index entries")


def frame_table(name, data):
    """Table ``name`` of fixed shape from its column arrays: the schema's index, column order and dtypes.

    Parameters
    ----------
    name : str
        A table of :data:`TABLES` with fixed index levels.
    data : dict of str to array-like
        Every column of the table, each of length ``TABLES[name].n_rows`` in index order.

    Returns
    -------
    DataFrame
        Passes :func:`check_frame`.
    """
    spec = TABLES[name]
    df = pd.DataFrame(data, index=spec.make_index())
    for c, dt in spec.columns.items():
        if dt != "str":
            df[c] = df[c].astype(dt)
    df = df[list(spec.columns)]
    check_frame(name, df)
    return df


# ------------------------------------------------------------------ characterization artifacts
# The table schema of a characterization (calib.characterize) lives here, beside the calibration's, so that
# the artifact reader (calib.artifact) knows every kind without importing the characterization code.
#: schema version of characterization artifacts
CHARACTERIZATION_VERSION = 1
CHARACTERIZATION_MAX_MANIFEST_BYTES = 4 << 20
CHARACTERIZATION_MAX_ROWS = 1 << 21
_F32, _NI, _SD = "float32", "Int64", "string"
_FAULT_DTYPES = {"kind": _SD, "element": _SD, "hemisphere": _NI, "row": _NI, "column": _NI, "sign": _SD,
                 "neuron": _NI, "driver": _NI, "measured": _F, "expected": _F, "threshold": _F, "z_score": _F,
                 "unit": _SD, "evidence": _SD}
#: Every characterization table: index levels (after ``state``) and column dtypes (``Int64``: nullable
#: integer); the meaning of the columns: :mod:`calib.characterize.tables`.
CHARACTERIZATION_SCHEMA = {
    "column_summary": (("neuron",), {
        "hemisphere": _I, "column": _I, "baseline_read": _F, "offset_lsb": _F, "noise_lsb": _F,
        "gain_exc_lsb_per_unit": _F, "gain_exc_sem": _F, "gain_inh_lsb_per_unit": _F, "gain_inh_sem": _F,
        "linear_lo_lsb": _F, "linear_hi_lsb": _F, "linear_lo_sum_xw": _F, "linear_hi_sum_xw": _F,
        "sat_lo_lsb": _F, "sat_hi_lsb": _F, "sat_lo_sum_xw": _F, "sat_hi_sum_xw": _F,
        "probe_weight_exc": _I, "probe_weight_inh": _I, "dead": _B, "noisy": _B, "success": _B}),
    "column_transfer": (("neuron", "sum_xw"), {"output_mean_lsb": _F, "output_std_lsb": _F, "corrected_lsb": _F}),
    "noise_level": (("output_lsb",), {"noise_median_lsb": _F, "noise_q10_lsb": _F, "noise_q90_lsb": _F,
                                      "n_points": _I}),
    "driver_activation": (("driver", "activation"), {"output_lsb_per_send": _F, "output_sem_lsb_per_send": _F,
                                                     "pulse_steps": _F}),
    "driver_summary": (("driver",), {
        "hemisphere": _I, "row": _I, "amplitude_lsb_per_send": _F, "amplitude_rel": _F, "slope_steps_per_code": _F,
        "offset_steps": _F, "excess_at_1_steps": _F, "linearity_rms_steps": _F, "dead": _B, "success": _B}),
    "synapse_gain": (("hemisphere", "row", "column"), {
        "gain_exc_lsb_per_unit": _F32, "gain_exc_sem": _F32, "rel_exc": _F32, "gain_inh_lsb_per_unit": _F32,
        "gain_inh_sem": _F32, "rel_inh": _F32, "zero_weight_lsb": _F32, "stuck_zero_exc": _B, "stuck_zero_inh": _B,
        "stuck_max_exc": _B, "stuck_max_inh": _B, "success": _B}),
    "faults": (("fault",), _FAULT_DTYPES),
}
CHARACTERIZATION_TABLES = tuple(CHARACTERIZATION_SCHEMA)


def conform_characterization(name, df):
    """Check and restore the schema of characterization table ``name`` (dtypes lost in a Parquet round trip).

    Raises
    ------
    ValueError
        Missing index levels or columns, or values that do not fit the dtype.
    """
    index, cols = CHARACTERIZATION_SCHEMA[name]
    if list(df.index.names) != ["state", *index]:
        raise ValueError(f"table {name}: index levels {list(df.index.names)}, expected {['state', *index]}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"table {name}: missing column {missing[0]!r}")
    out = df[list(cols)].copy()
    for c, want in cols.items():
        if str(out[c].dtype) != want:
            out[c] = out[c].astype(want)
    state = out.index.get_level_values("state").astype(str)
    levels = [state] + [out.index.get_level_values(n) for n in index]
    out.index = pd.MultiIndex.from_arrays(levels, names=["state", *index])
    return out
