"""Summary rows and labels of a report: statistics of an artifact's own tables, never re-measured.

No matplotlib here: the summary is also what ``bss2-calib report --json`` prints.
"""
import numpy as np

from ..characterize.result import KIND as CHAR_KIND, SUMMARY_SPEC, state_tables, table_stat

#: Summary rows of a calibration artifact: (label, table, column, statistic, subset, unit).
CALIB_SUMMARY_SPEC = (
    ("neurons", "neuron_correction", "success", "count", None, ""),
    ("neurons failed", "neuron_correction", "success", "failed", None, ""),
    ("excitatory gain (relative to target), median", "neuron_correction", "gain_exc", "median", "success",
     "relative"),
    ("excitatory gain, spread (std / median)", "neuron_correction", "gain_exc", "rel_std", "success", "relative"),
    ("inhibitory gain (relative to target), median", "neuron_correction", "gain_inh", "median", "success",
     "relative"),
    ("inhibitory gain, spread (std / median)", "neuron_correction", "gain_inh", "rel_std", "success", "relative"),
    ("offset, mean", "neuron_correction", "offset_lsb", "mean", "success", "LSB"),
    ("offset, std", "neuron_correction", "offset_lsb", "std", "success", "LSB"),
    ("noise, median", "neuron_correction", "noise_lsb", "median", "success", "LSB"),
    ("drivers failed (transfer at code 31)", "driver_transfer", "success", "failed", ("activation", 31), ""),
    ("driver pulse at code 31, median", "driver_transfer", "pulse_steps", "median", ["success", ("activation", 31)],
     "activation steps"),
    ("driver pulse at code 31, std", "driver_transfer", "pulse_steps", "std", ["success", ("activation", 31)],
     "activation steps"),
    ("excitatory synapse gain, std", "synapse_gain", "gain_exc", "std", "success", "relative"),
    ("inhibitory synapse gain, std", "synapse_gain", "gain_inh", "std", "success", "relative"),
    ("synapses failed", "synapse_gain", "success", "failed", None, ""),
    ("quadrant knob sets failed", "knobs_quadrant", "success", "failed", None, ""),
    ("driver knobs failed", "knobs_driver", "success", "failed", None, ""),
    ("neuron knobs failed", "knobs_neuron", "success", "failed", None, ""),
)


def is_characterization(artifact):
    """True for a characterization, False for a calibration artifact."""
    return artifact.manifest.get("kind") == CHAR_KIND


def states_of(artifact):
    """Names of the characterized states, in measurement order (``["uncalibrated"]`` if none are recorded)."""
    return [s["name"] for s in artifact.manifest.get("states", [])] or ["uncalibrated"]


def label(artifact):
    """``chip N (preset)``: how titles name the artifact's chip."""
    m = artifact.manifest
    p = (m.get("preset") or {}).get("name", "?")
    return f"chip {m.get('chip_id', '?')} ({p})"


def when(artifact):
    """Creation time (and temperature, if recorded) of an artifact, for drift labels."""
    m = artifact.manifest
    t = (m.get("conditions") or {}).get("temperature_c")
    return f"{m.get('created_utc', '?')}" + (f" ({t:g} °C)" if isinstance(t, (int, float)) else "")


def fmt(v):
    """A summary value as text: integers as they are, floats to 4 significant digits, None as ``n/a``."""
    if v is None:
        return "n/a"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.4e}"


def summary_rows(artifact):
    """Summary table of one artifact: list of (quantity, value, unit, source).

    Values are statistics of the artifact's tables (see
    :func:`calib.characterize.result.table_stat`), never re-measured; the
    source column names table, column, statistic and subset.
    """
    rows = []
    if is_characterization(artifact):
        for state in states_of(artifact):
            st = state_tables(artifact.tables, state)
            for key, lab, table, col, stat, subset, unit in SUMMARY_SPEC:
                v = table_stat(st[table], col, stat, subset)
                rows.append((f"[{state}] {lab}", v, unit, _source(table, col, stat, subset)))
    else:
        for lab, table, col, stat, subset, unit in CALIB_SUMMARY_SPEC:
            df = artifact.tables.get(table)
            if df is None or (col not in df.columns and col not in df.index.names):
                continue
            rows.append((lab, table_stat(df, col, stat, subset), unit, _source(table, col, stat, subset)))
        for name, df in artifact.tables.items():
            if name not in {r[1] for r in CALIB_SUMMARY_SPEC} and "success" in df.columns:
                rows.append((f"{name}: rows failed", table_stat(df, "success", "failed"), "",
                             _source(name, "success", "failed", None)))
    return rows


def _source(table, col, stat, subset):
    def one(c):
        if isinstance(c, tuple):
            return f"{c[0]} == {c[1]!r}"
        return {None: "all rows", "success": "success", "~dead": "not dead"}.get(c, str(c))

    conds = subset if isinstance(subset, list) else [subset]
    sub = "all rows" if conds == [None] else "rows with " + " and ".join(one(c) for c in conds)
    return f"{table}.{col}: {stat} over {sub}"
