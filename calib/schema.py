"""The artifact's table schema: names, index levels, columns and dtypes (schema version 2).

This module is pure data plus a validator; the inference engine can import it
without pulling in any fitting code. See docs/artifact-format.md for the
meaning of every column ("the correction model"). Version 2 sealed the
manifest (``manifest_sha256``) and added ``neuron_correction.weak``; version-1
tables (no ``weak``) still pass :func:`check_frame`.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bss2_calib.chipsim import COLS, N_DRIVERS, N_NEURONS, N_QUADRANTS, ROWS, W_MAX

from .errors import ArtifactCorrupt

SCHEMA_VERSION = 2
#: schema versions the loader reads (one explicit branch each in :mod:`calib.artifact`)
READABLE_VERSIONS = (1, 2)
KIND = "bss2-calib/calibration"
#: kind of a characterization artifact (its table schema: :mod:`calib.characterize.tables`)
CHARACTERIZATION_KIND = "bss2-calib/characterization"


@dataclass(frozen=True)
class TableSpec:
    """Shape of one table.

    Attributes
    ----------
    index : tuple of str
        Index level names, outermost first.
    columns : dict of str to str
        Required columns and their dtypes (``int64``, ``float64``, ``bool``, ``str``).
    levels : tuple of ndarray or None
        The exact values of each index level (the index is their product, in
        order); None for tables of variable length.
    since : dict of str to int
        Columns added after schema version 1, with the version that added
        them: absent in artifacts of older versions, so not required (their
        dtype is checked when present).
    """

    index: tuple
    columns: dict
    levels: tuple = None
    since: dict = None

    @property
    def n_rows(self):
        return None if self.levels is None else int(np.prod([len(v) for v in self.levels]))

    def make_index(self):
        if len(self.levels) == 1:
            return pd.Index(self.levels[0], name=self.index[0], dtype=np.int64)
        return pd.MultiIndex.from_product(self.levels, names=list(self.index))


def _r(n):
    return np.arange(n, dtype=np.int64)


_F, _I, _B, _S = "float64", "int64", "bool", "str"

TABLES = {
    "knobs_quadrant": TableSpec(("quadrant",), {"syn_i_bias_dac": _I, "stp_i_ramp": _I, "cadc_v_ramp_offset": _I,
                                                "cadc_i_ramp_slope": _I, "success": _B}, (_r(N_QUADRANTS),)),
    "knobs_driver": TableSpec(("driver",), {"hagen_dac_offset": _I, "success": _B}, (_r(N_DRIVERS),)),
    "knobs_neuron": TableSpec(("neuron",), {"v_reset": _I, "i_bias_synin_exc_gm": _I, "i_bias_synin_inh_gm": _I,
                                            "i_bias_leak": _I, "cadc_channel_offset": _I, "success": _B},
                              (_r(N_NEURONS),)),
    "neuron_correction": TableSpec(("neuron",), {
        "gain_exc": _F, "gain_exc_std": _F, "gain_inh": _F, "gain_inh_std": _F, "offset_lsb": _F,
        "offset_std_lsb": _F, "noise_lsb": _F, "dead": _B, "noisy": _B, "weak": _B, "success": _B}, (_r(N_NEURONS),),
        since={"weak": 2}),
    "driver_transfer": TableSpec(("driver", "activation"), {"pulse_steps": _F, "pulse_steps_std": _F, "dead": _B,
                                                            "success": _B}, (_r(N_DRIVERS), _r(32))),
    "synapse_gain": TableSpec(("hemisphere", "row", "column"), {
        "gain_exc": _F, "gain_exc_std": _F, "gain_inh": _F, "gain_inh_std": _F, "stuck_zero_exc": _B,
        "stuck_max_exc": _B, "stuck_zero_inh": _B, "stuck_max_inh": _B, "zero_weight_lsb": _F, "success": _B},
        (_r(2), _r(ROWS), _r(COLS))),
    "weight_transfer": TableSpec(("weight",), {"effective_weight": _F, "effective_weight_std": _F,
                                               "effective_weight_exc": _F, "effective_weight_inh": _F,
                                               "success": _B}, (_r(W_MAX + 1),)),
    "knob_steps": TableSpec(("step", "instance"), {
        "knob": _S, "code": _I, "target": _F, "value": _F, "residual": _F, "before": _F, "success": _B,
        "measurements": _I}),
}
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
