"""Report figures of a characterization (called by :func:`calib.report.write_report`).

Each function gets the plotting module (:mod:`calib.plots`) passed in, so
that importing this module never imports matplotlib.
"""
import numpy as np

from .detect import NOISY_RATIO
from .result import FAULT_KINDS, state_tables


def states_of(art):
    """Names of the characterized states, in measurement order."""
    return [s["name"] for s in art.manifest.get("states", [])] or ["uncalibrated"]


def figures(art, P, lab):
    """Figures of a characterization ``art`` titled with ``lab``.

    Returns
    -------
    figs : list of (name, caption, Figure)
    missing : list of str
        Figures left out, with the reason.
    """
    figs, missing = [], []
    t = art.tables
    states = states_of(art)
    last = states[-1]
    sts = {s: state_tables(t, s) for s in states}
    ba = " before and after calibration" if len(states) > 1 else f" ({last})"

    panels = []
    for col, name, unit in (("gain_exc_lsb_per_unit", "excitatory gain", "LSB per unit of sum(x·w) per send"),
                            ("gain_inh_lsb_per_unit", "inhibitory gain", "LSB per unit of sum(x·w) per send"),
                            ("offset_lsb", "offset at zero input", "LSB")):
        panels.append({"title": f"per-neuron {name}", "xlabel": f"{name} ({unit})",
                       "series": {s: sts[s]["column_summary"].loc[sts[s]["column_summary"]["success"], col]
                                  for s in states},
                       "flagged": {f"failed/faulty ({s})": sts[s]["column_summary"].loc[
                           ~sts[s]["column_summary"]["success"], col] for s in states[-1:]}})
    panels.append({"title": "per-driver amplitude (code 31, weight 63)",
                   "xlabel": "driver amplitude (LSB per send)",
                   "series": {s: sts[s]["driver_summary"].loc[sts[s]["driver_summary"]["success"], "amplitude_lsb_per_send"]
                              for s in states},
                   "flagged": {f"dead/failed ({last})": sts[last]["driver_summary"].loc[
                       ~sts[last]["driver_summary"]["success"], "amplitude_lsb_per_send"]}})
    figs.append(("neuron_driver_histograms",
                 f"Distributions of per-neuron gains and offsets and per-driver amplitudes{ba}. Red marks: failed "
                 "or faulty instances (not in the histograms).",
                 P.histograms(panels, f"{lab}: neuron gains, offsets and driver amplitudes{ba}")))

    sg = sts[last]["synapse_gain"]
    maps_abs, maps_rel = [], []
    for h in (0, 1):
        sub = sg.xs(h, level="hemisphere")
        rows = sub.index.get_level_values("row").unique().to_numpy()
        for sign in ("exc", "inh"):
            a = sub[f"gain_{sign}_lsb_per_unit"].to_numpy(float).reshape(len(rows), 256)
            r = sub[f"rel_{sign}"].to_numpy(float).reshape(len(rows), 256)
            fl = (sub[f"stuck_zero_{sign}"] | sub[f"stuck_max_{sign}"]).to_numpy(bool).reshape(len(rows), 256)
            kk, jj = np.nonzero(fl)
            name = "excitatory" if sign == "exc" else "inhibitory"
            ylabel = "row (driver within hemisphere)" if len(rows) == 128 else f"probed row index ({len(rows)} rows)"
            maps_abs.append({"title": f"hemisphere {h}, {name} rows", "data": a, "marks": (kk, jj), "ylabel": ylabel})
            maps_rel.append({"title": f"hemisphere {h}, {name} rows", "data": 100 * (r - 1), "marks": (kk, jj),
                             "ylabel": ylabel})
    n_probe = art.manifest.get("conditions", {}).get("num_sends_probe", {}).get(last)
    figs.append(("synapse_gain_map",
                 f"Per-synapse gain of both hemispheres ({last}), from one-hot driver probes at num_sends "
                 f"{n_probe}: includes the driver's and the column's gain. Red squares: stuck synapses; grey: "
                 "not measurable (dead driver or neuron).",
                 P.heatmaps(maps_abs, f"{lab}: per-synapse gain map ({last})",
                            "gain (LSB per unit of x·w per send)")))
    figs.append(("synapse_deviation_map",
                 "Per-synapse deviation after dividing out each driver's and each column's factor (median "
                 "polish): the synapse mismatch alone. Diverging colours: signed deviation.",
                 P.heatmaps(maps_rel, f"{lab}: synapse gain deviation from driver x column model ({last})",
                            "deviation (%)", cmap=P.DIFF_CMAP, symmetric=True)))

    cs = sts[last]["column_summary"]
    tr = sts[last]["column_transfer"]
    ok = cs[cs["success"]]
    if len(ok):
        g = ok["gain_exc_lsb_per_unit"]
        typical = (g - g.median()).abs().sort_values().index[:3].tolist()
        width = (ok["linear_hi_lsb"] - ok["linear_lo_lsb"])
        worst = width.sort_values().index[:3].tolist()
        groups = [("typical columns (gain nearest the median)", [_curve(cs, tr, n) for n in typical]),
                  ("worst columns (narrowest linear range)", [_curve(cs, tr, n) for n in worst])]
        figs.append(("transfer_curves",
                     f"Transfer curves ({last}, num_sends 1): mean result ± std over repeats against the programmed "
                     "sum(x·w); shaded: the linear range (within max(3 LSB, 5 %) of the linear fit); lines: the fit.",
                     P.transfer_curves(groups, f"{lab}: column transfer curves with linear range ({last})")))
    else:
        missing.append("transfer_curves: no column with a successful fit")

    per_col = {s: sts[s]["column_summary"].loc[~sts[s]["column_summary"]["dead"], "noise_lsb"] for s in states}
    noisy = cs.loc[cs["noisy"], "noise_lsb"]
    thr = None
    if len(per_col[last]):
        thr = NOISY_RATIO * float(np.median(per_col[last]))
    figs.append(("noise",
                 "Trial-to-trial noise: per column at zero input (left; red: columns reported noisy) and against the "
                 "output level (right; from the repeated transfer-curve reads, dead and noisy columns excluded).",
                 P.noise(per_col, {s: sts[s]["noise_level"] for s in states},
                         f"{lab}: trial-to-trial noise", flagged=noisy.to_numpy(), threshold=thr)))

    target = float(art.manifest.get("conditions", {}).get("target_gain_lsb_per_unit", 0.002))
    series = {s: residual_by_level(sts[s], target) for s in states}
    series = {s: v for s, v in series.items() if v is not None}
    if series:
        cal_note = ("; calibrated: after the artifact's knobs and its per-neuron software correction"
                    if "calibrated" in series else "")
        figs.append(("residual_vs_level",
                     f"Residual error against the ideal output {target:g} x sum(x·w), over all successful columns, "
                     f"within the int8 range{cal_note}.",
                     P.residuals(series, f"{lab}: residual error against output level"
                                 + (", calibrated vs uncalibrated" if len(series) > 1 else f" ({last})"))))

    da = sts[last]["driver_activation"]
    drv = da.index.get_level_values("driver").unique().to_numpy()
    pulse = da["pulse_steps"].to_numpy(float).reshape(len(drv), 32)
    dead = sts[last]["driver_summary"].loc[drv, "dead"].to_numpy(bool)
    figs.append(("driver_curves",
                 f"Activation curves of {len(drv)} drivers ({last}): effective activation (output normalised to the "
                 "median driver at code 31) for all 32 codes; right: excess over proportional at low codes.",
                 P.driver_curves(pulse, dead, f"{lab}: driver activation curves ({last})")))

    figs.append(("faults", "Failed and faulty instances: neuron and driver status maps, stuck synapses per column, "
                           "and counts by kind (evidence in the fault table).",
                 _fault_fig(P, sts[last], f"{lab}: failed and faulty instances ({last})")))
    return figs, missing


def _curve(cs, tr, n):
    c = cs.loc[n]
    d = tr.xs(n, level="neuron")
    width = c["linear_hi_lsb"] - c["linear_lo_lsb"]
    return {"label": f"neuron {n}: linear {c['linear_lo_lsb']:.0f}..{c['linear_hi_lsb']:.0f} LSB ({width:.0f})", "sum_xw": d.index.to_numpy(float), "mean": d["output_mean_lsb"].to_numpy(),
            "std": d["output_std_lsb"].to_numpy(), "offset": c["offset_lsb"], "gain_exc": c["gain_exc_lsb_per_unit"],
            "gain_inh": c["gain_inh_lsb_per_unit"], "linear": (c["linear_lo_sum_xw"], c["linear_hi_sum_xw"]),
            "saturation": (c["sat_lo_lsb"], c["sat_hi_lsb"])}


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


def _fault_fig(P, st, title):
    cs, ds, fl = st["column_summary"], st["driver_summary"], st["faults"]
    ns = np.zeros(512, dtype=int)
    ns[~cs["success"].to_numpy(bool)] = 1
    ns[cs["noisy"].to_numpy(bool)] = 2
    ns[cs["dead"].to_numpy(bool)] = 3
    dsv = np.zeros(256, dtype=int)
    drv = ds.index.to_numpy()
    dsv[drv[~ds["success"].to_numpy(bool)]] = 1
    dsv[drv[ds["dead"].to_numpy(bool)]] = 2
    stuck = np.zeros((2, 256), dtype=int)
    if len(fl):
        syn = fl[fl["kind"].isin(["stuck_zero_synapse", "stuck_max_synapse"])]
        np.add.at(stuck, (syn["hemisphere"].to_numpy(int), syn["column"].to_numpy(int)), 1)
    counts = {k: int((fl["kind"] == k).sum()) if len(fl) else 0 for k in FAULT_KINDS}
    return P.fault_overview(ns.reshape(2, 256), dsv.reshape(2, 128), stuck, counts, title)
