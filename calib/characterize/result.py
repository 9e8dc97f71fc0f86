"""The result of a characterization, its summary figures and the statistics reports draw from its tables."""
from dataclasses import dataclass, field

import numpy as np

from ..schema import CHARACTERIZATION_KIND as KIND, CHARACTERIZATION_VERSION as SCHEMA_VERSION
FAULT_KINDS = ("stuck_zero_synapse", "stuck_max_synapse", "dead_neuron", "noisy_neuron", "dead_driver")


@dataclass(frozen=True)
class Characterization:
    """Tables and manifest of one characterization (same shape as a loaded artifact).

    Attributes
    ----------
    tables : dict of str to pandas.DataFrame
        See :mod:`calib.characterize.tables`.
    manifest : dict
        Kind, chip id, preset, conditions, options, states, steps, quality.
    """

    tables: dict = field(repr=False)
    manifest: dict = field(repr=False)

    def __repr__(self):
        m = self.manifest
        return (f"Characterization(chip_id={m.get('chip_id')}, preset={m.get('preset', {}).get('name')!r}, "
                f"states={[s['name'] for s in m.get('states', [])]})")

    @property
    def states(self):
        """Names of the characterized states, in measurement order."""
        return [s["name"] for s in self.manifest.get("states", [])]

    def save(self, path):
        """Write the characterization as an artifact directory ``path`` (must not exist), atomically.

        Returns the path; see :func:`calib.characterize.io.save`.
        """
        from .io import save

        return save(self, path)


def _f(x):
    x = float(x)
    return x if np.isfinite(x) else None


#: Summary figures of a characterization, per state: (key, label, table, column, statistic, subset, unit).
#: ``statistic``: count | failed (rows with column False) | median | mean | std | rel_std (std / median);
#: ``subset``: None (all rows) | "success" | "~dead" | (column, value). Evaluated by :func:`table_stat`
#: on the table with its index levels as columns; the report shows the same numbers.
SUMMARY_SPEC = (
    ("columns", "columns characterized", "column_summary", "success", "count", None, ""),
    ("columns_failed", "columns failed (fit, dead or noisy)", "column_summary", "success", "failed", None, ""),
    ("gain_exc_median_lsb_per_unit", "excitatory gain, median", "column_summary", "gain_exc_lsb_per_unit", "median",
     "success", "LSB per unit of sum(x*w) per send"),
    ("gain_exc_spread_rel", "excitatory gain, spread (std / median)", "column_summary", "gain_exc_lsb_per_unit",
     "rel_std", "success", "relative"),
    ("gain_inh_median_lsb_per_unit", "inhibitory gain, median", "column_summary", "gain_inh_lsb_per_unit", "median",
     "success", "LSB per unit of sum(x*w) per send"),
    ("gain_inh_spread_rel", "inhibitory gain, spread (std / median)", "column_summary", "gain_inh_lsb_per_unit",
     "rel_std", "success", "relative"),
    ("offset_mean_lsb", "offset at zero input, mean", "column_summary", "offset_lsb", "mean", "success", "LSB"),
    ("offset_spread_lsb", "offset at zero input, std", "column_summary", "offset_lsb", "std", "success", "LSB"),
    ("noise_median_lsb", "trial-to-trial noise, median", "column_summary", "noise_lsb", "median", "~dead", "LSB"),
    ("linear_hi_median_lsb", "upper end of the linear range, median", "column_summary", "linear_hi_lsb", "median",
     "success", "LSB"),
    ("linear_lo_median_lsb", "lower end of the linear range, median", "column_summary", "linear_lo_lsb", "median",
     "success", "LSB"),
    ("sat_hi_median_lsb", "positive saturation, median", "column_summary", "sat_hi_lsb", "median", "success", "LSB"),
    ("sat_lo_median_lsb", "negative saturation, median", "column_summary", "sat_lo_lsb", "median", "success", "LSB"),
    ("drivers", "drivers characterized", "driver_summary", "success", "count", None, ""),
    ("drivers_failed", "drivers failed (dead or no fit)", "driver_summary", "success", "failed", None, ""),
    ("driver_amplitude_median_lsb_per_send", "driver amplitude (code 31, weight 63), median", "driver_summary",
     "amplitude_lsb_per_send", "median", "success", "LSB per send"),
    ("driver_amplitude_spread_rel", "driver amplitude, spread (std / median)", "driver_summary",
     "amplitude_lsb_per_send", "rel_std", "success", "relative"),
    ("driver_offset_spread_steps", "driver comparator offset, std", "driver_summary", "offset_steps", "std",
     "success", "activation steps"),
    ("synapse_rel_exc_spread", "excitatory synapse deviation, std", "synapse_gain", "rel_exc", "std", "success",
     "relative"),
    ("synapse_rel_inh_spread", "inhibitory synapse deviation, std", "synapse_gain", "rel_inh", "std", "success",
     "relative"),
    ("synapses_failed", "synapses not usable (stuck, or on a dead driver or neuron)", "synapse_gain", "success",
     "failed", None, ""),
) + tuple((f"faults_{k}", f"faults: {k.replace('_', ' ')}", "faults", "kind", "count", ("kind", k), "")
          for k in FAULT_KINDS)


def table_stat(df, column, statistic, subset=None):
    """One summary statistic of a table column (index levels count as columns).

    Parameters
    ----------
    df : pandas.DataFrame
    column : str
    statistic : {"count", "failed", "median", "mean", "std", "rel_std"}
    subset : None, "success", "~dead", (column, value), or a list of these (all must hold), default=None

    Returns
    -------
    int, float or None
        None when the statistic is undefined (no rows, all NaN).
    """
    d = df.reset_index() if any(n is not None for n in df.index.names) else df
    for cond in (subset if isinstance(subset, list) else [subset]):
        if cond is None:
            continue
        if cond == "success":
            d = d[d["success"].astype(bool)]
        elif cond == "~dead":
            d = d[~d["dead"].astype(bool)]
        elif isinstance(cond, tuple) and len(cond) == 2:
            d = d[d[cond[0]] == cond[1]]
        else:
            raise ValueError(f"unknown subset {cond!r}")
    if statistic == "count":
        return int(len(d))
    if statistic == "failed":
        return int((~d[column].astype(bool)).sum())
    v = d[column].astype(np.float64)
    if statistic == "median":
        return _f(v.median())
    if statistic == "mean":
        return _f(v.mean())
    if statistic == "std":
        return _f(v.std())
    if statistic == "rel_std":
        return _f(v.std() / v.median())
    raise ValueError(f"unknown statistic {statistic!r}")


def state_tables(tables, state):
    """The tables of one state (the ``state`` index level dropped)."""
    out = {}
    for name, df in tables.items():
        if "state" in df.index.names:
            sel = df.index.get_level_values("state") == state
            out[name] = df[sel].droplevel("state")
        else:
            out[name] = df
    return out


def quality(tables):
    """Summary figures per state, computed from the tables (what a report shows).

    Returns
    -------
    dict of state name to dict
        One entry per :data:`SUMMARY_SPEC` key.
    """
    out = {}
    states = tables["column_summary"].index.get_level_values("state").unique()
    for state in states:
        st = state_tables(tables, state)
        out[str(state)] = {key: table_stat(st[table], col, stat, subset)
                           for key, _, table, col, stat, subset, _ in SUMMARY_SPEC}
    return out


def residual_by_level(st, target, bin_lsb=10.0):
    """Residual (corrected output if present, else output, minus target x sum(x*w)) binned by ideal output.

    Parameters
    ----------
    st : dict of DataFrame
        The tables of one state (:func:`calib.characterize.result.state_tables`).
    target : float
        Target gain, LSB per unit of sum(x*w) per send.
    bin_lsb : float, default=10.0

    Returns
    -------
    dict of ndarray or None
        ``level`` (bin centres), ``median``, ``q25``, ``q75``, ``rms`` over the successful columns
        (LSB); None without data.
    """
    cs, tr = st["column_summary"], st["column_transfer"]
    ok = cs.index[cs["success"]]
    d = tr[tr.index.get_level_values("neuron").isin(ok)]
    if not len(d):
        return None
    s = d.index.get_level_values("sum_xw").to_numpy(float)
    y = d["corrected_lsb"].to_numpy(float)
    if not np.isfinite(y).any():
        y = d["output_mean_lsb"].to_numpy(float)
    ideal = target * s
    keep = np.isfinite(y) & (ideal >= -128) & (ideal <= 127)
    ideal, res = ideal[keep], (y - ideal)[keep]
    edges = np.arange(-130.0, 131.0, bin_lsb)
    which = np.digitize(ideal, edges) - 1
    out = {k: [] for k in ("level", "median", "q25", "q75", "rms")}
    for b in range(len(edges) - 1):
        v = res[which == b]
        if v.size:
            out["level"].append(0.5 * (edges[b] + edges[b + 1]))
            q25, q50, q75 = np.percentile(v, [25, 50, 75])
            out["median"].append(q50)
            out["q25"].append(q25)
            out["q75"].append(q75)
            out["rms"].append(float(np.sqrt(np.mean(v ** 2))))
    return {k: np.asarray(v) for k, v in out.items()}
