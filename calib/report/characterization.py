"""Report figures of a characterization (imports matplotlib: see :mod:`calib.report.calibration`)."""
import numpy as np

from ..characterize.detect import NOISY_RATIO
from ..characterize.result import FAULT_KINDS, residual_by_level, state_tables
from . import chip_plots as C
from . import plots as P
from .summary import label, states_of


def figures(art):
    """Figures of a characterization ``art``: (figs, missing), as :func:`calib.report.calibration.figures`."""
    figs, missing = [], []
    t = art.tables
    lab = label(art)
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
                   "series": {s: sts[s]["driver_summary"].loc[sts[s]["driver_summary"]["success"],
                                                               "amplitude_lsb_per_send"] for s in states},
                   "flagged": {f"dead/failed ({last})": sts[last]["driver_summary"].loc[
                       ~sts[last]["driver_summary"]["success"], "amplitude_lsb_per_send"]}})
    if P.with_data(panels):
        figs.append(("neuron_driver_histograms",
                     f"Distributions of per-neuron gains and offsets and per-driver amplitudes{ba}. Red marks: failed "
                     "or faulty instances (not in the histograms).",
                     P.histograms(panels, f"{lab}: neuron gains, offsets and driver amplitudes{ba}")))
    else:
        missing.append("neuron_driver_histograms: no neuron or driver with a successful fit")

    sg = sts[last]["synapse_gain"]
    maps_abs, maps_rel = [], []
    for h in (0, 1):
        sub = sg.xs(h, level="hemisphere")
        rows = sub.index.get_level_values("row").unique().to_numpy()
        for sign in ("exc", "inh"):
            a = sub[f"gain_{sign}_lsb_per_unit"].to_numpy(float).reshape(len(rows), 256)
            r = sub[f"rel_{sign}"].to_numpy(float).reshape(len(rows), 256)
            fl = (sub[f"stuck_zero_{sign}"] | sub[f"stuck_max_{sign}"]).to_numpy(bool).reshape(len(rows), 256)
            stuck = sub[["stuck_zero_exc", "stuck_max_exc", "stuck_zero_inh", "stuck_max_inh"]].any(axis=1)
            unmeasurable = (~sub["success"] & ~stuck).to_numpy(bool).reshape(len(rows), 256)
            a = np.where(unmeasurable, np.nan, a)  # on a dead driver or neuron: grey, not a gain of 0
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
                     C.transfer_curves(groups, f"{lab}: column transfer curves with linear range ({last})")))
    else:
        missing.append("transfer_curves: no column with a successful fit")

    per_col = {s: sts[s]["column_summary"].loc[~sts[s]["column_summary"]["dead"], "noise_lsb"] for s in states}
    noisy = cs.loc[cs["noisy"], "noise_lsb"]
    if np.isfinite(per_col[last].to_numpy(float)).any():
        thr = NOISY_RATIO * float(np.nanmedian(per_col[last]))
        levels = {s: sts[s]["noise_level"] for s in states if len(sts[s]["noise_level"])}
        right = ("against the output level (right; from the repeated transfer-curve reads, dead and noisy columns "
                 "excluded)" if levels else "along the chip (right)")
        figs.append(("noise",
                     f"Trial-to-trial noise: per column at zero input (left; red: columns reported noisy) and {right}.",
                     C.noise(per_col, levels, f"{lab}: trial-to-trial noise", flagged=noisy, threshold=thr)))
    else:
        missing.append("noise: no live column")

    target = float(art.manifest.get("conditions", {}).get("target_gain_lsb_per_unit", 0.002))
    series = {s: residual_by_level(sts[s], target) for s in states}
    series = {s: v for s, v in series.items() if v is not None}
    if series:
        cal_note = ("; calibrated: after the artifact's knobs and its per-neuron software correction"
                    if "calibrated" in series else "")
        figs.append(("residual_vs_level",
                     f"Residual error against the ideal output {target:g} x sum(x·w), over all successful columns, "
                     f"within the int8 range{cal_note}.",
                     C.residuals(series, f"{lab}: residual error against output level"
                                 + (", calibrated vs uncalibrated" if len(series) > 1 else f" ({last})"))))

    da = sts[last]["driver_activation"]
    drv = da.index.get_level_values("driver").unique().to_numpy()
    pulse = da["pulse_steps"].to_numpy(float).reshape(len(drv), 32)
    dead = sts[last]["driver_summary"].loc[drv, "dead"].to_numpy(bool)
    figs.append(("driver_curves",
                 f"Activation curves of {len(drv)} drivers ({last}): effective activation (output normalised to the "
                 "median driver at code 31) for all 32 codes; right: excess over proportional at low codes.",
                 C.driver_curves(pulse, dead, f"{lab}: driver activation curves ({last})")))

    figs.append(("faults", "Failed and faulty instances: neuron and driver status maps, stuck synapses per column, "
                           "and counts by kind (evidence in the fault table).",
                 _fault_fig(sts[last], f"{lab}: failed and faulty instances ({last})")))
    return figs, missing


def _curve(cs, tr, n):
    c = cs.loc[n]
    d = tr.xs(n, level="neuron")
    width = c["linear_hi_lsb"] - c["linear_lo_lsb"]
    return {"label": f"neuron {n}: linear {c['linear_lo_lsb']:.0f}..{c['linear_hi_lsb']:.0f} LSB ({width:.0f})",
            "sum_xw": d.index.to_numpy(float), "mean": d["output_mean_lsb"].to_numpy(),
            "std": d["output_std_lsb"].to_numpy(), "offset": c["offset_lsb"], "gain_exc": c["gain_exc_lsb_per_unit"],
            "gain_inh": c["gain_inh_lsb_per_unit"], "linear": (c["linear_lo_sum_xw"], c["linear_hi_sum_xw"]),
            "saturation": (c["sat_lo_lsb"], c["sat_hi_lsb"])}


def _fault_fig(st, title):
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
    return C.fault_overview(ns.reshape(2, 256), dsv.reshape(2, 128), stuck, counts, title)
