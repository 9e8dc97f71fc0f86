"""Report figures of the drift between two artifacts of the same chip and kind.

Imports matplotlib (through :mod:`calib.report.plots`): import it lazily,
as :func:`calib.report.write_report` does.
"""
from ..characterize.result import state_tables
from . import plots as P
from .summary import is_characterization, label, states_of, when


def figures(a, b):
    """Drift figures between ``a`` and ``b`` (``b`` made later than ``a``).

    Returns
    -------
    list of (name, caption, Figure)
    """
    ta, tb = a.tables, b.tables
    la, lb = when(a), when(b)
    pairs, maps = [], []
    if is_characterization(a):
        state = [s for s in states_of(a) if s in states_of(b)][-1]
        sa, sb = state_tables(ta, state), state_tables(tb, state)
        ca, cb = sa["column_summary"], sb["column_summary"]
        ok = ca["success"] & cb["success"]
        for col, name, unit in (("gain_exc_lsb_per_unit", "excitatory gain", "LSB/unit"),
                                ("gain_inh_lsb_per_unit", "inhibitory gain", "LSB/unit"),
                                ("offset_lsb", "offset", "LSB")):
            pairs.append({"name": name, "unit": unit, "a": ca.loc[ok, col], "b": cb.loc[ok, col]})
        da, db = sa["driver_summary"], sb["driver_summary"]
        common = da.index.intersection(db.index)
        pairs.append({"name": "driver amplitude", "unit": "LSB per send", "a": da.loc[common, "amplitude_lsb_per_send"],
                      "b": db.loc[common, "amplitude_lsb_per_send"]})
        ga, gb = sa["synapse_gain"], sb["synapse_gain"]
        col = "rel_exc"
    else:
        state = "calibrated"
        na, nb = ta.get("neuron_correction"), tb.get("neuron_correction")
        if na is not None and nb is not None:
            ok = na["success"].astype(bool) & nb["success"].astype(bool)
            for c, unit in (("gain_exc", "relative"), ("gain_inh", "relative"), ("offset_lsb", "LSB")):
                if c in na.columns and c in nb.columns:
                    pairs.append({"name": c, "unit": unit, "a": na.loc[ok, c], "b": nb.loc[ok, c]})
        ga, gb = ta.get("synapse_gain"), tb.get("synapse_gain")
        col = "gain_exc"
    figs = []
    if pairs:
        figs.append(("drift", f"Drift of per-instance values between {la} and {lb} ({state}); dashed: no change.",
                     P.drift(pairs, f"{label(a)}: drift between {la} and {lb}", la, lb)))
    if ga is not None and gb is not None and col in ga.columns and col in gb.columns:
        common = ga.index.intersection(gb.index)
        if len(common):
            d = (gb.loc[common, col].astype(float) - ga.loc[common, col].astype(float)) * 100
            for h in sorted(common.get_level_values("hemisphere").unique()):
                sub = d.xs(h, level="hemisphere")
                nrow = sub.index.get_level_values("row").nunique()
                maps.append({"title": f"hemisphere {h}, excitatory rows", "data": sub.to_numpy().reshape(nrow, -1)})
            figs.append(("drift_synapse_map", f"Change of the relative excitatory synapse gain from {la} to {lb} "
                                              "(diverging colours: signed change).",
                         P.heatmaps(maps, f"{label(a)}: synapse gain drift ({state})", "change (percentage points)",
                                    cmap=P.DIFF_CMAP, symmetric=True)))
    return figs
