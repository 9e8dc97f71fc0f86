"""Report figures of a calibration artifact (whatever of its tables are present).

Imports matplotlib (through :mod:`calib.report.plots`): import it lazily,
as :func:`calib.report.write_report` does.
"""
import numpy as np

from . import chip_plots as C
from . import plots as P
from .summary import label


def figures(art):
    """Figures of a calibration artifact ``art``.

    Returns
    -------
    figs : list of (name, caption, Figure)
    missing : list of str
        Figures left out, with the reason.
    """
    figs, missing = [], []
    t = art.tables
    lab = label(art)
    nc = t.get("neuron_correction")
    dt = t.get("driver_transfer")
    panels = []
    if nc is not None:
        ok = nc["success"].astype(bool)
        for col, name, unit in (("gain_exc", "excitatory gain", "relative to the target gain"),
                                ("gain_inh", "inhibitory gain", "relative to the target gain"),
                                ("offset_lsb", "offset", "LSB")):
            if col in nc.columns:
                panels.append({"title": f"per-neuron {name} (correction table)", "xlabel": f"{name} ({unit})",
                               "series": {"after knob calibration": nc.loc[ok, col]},
                               "flagged": {"failed": nc.loc[~ok, col]}})
    if dt is not None and "pulse_steps" in dt.columns:
        d31 = dt.xs(31, level="activation")
        ok = d31["success"].astype(bool)
        panels.append({"title": "per-driver amplitude (pulse at code 31)", "xlabel": "effective activation (steps)",
                       "series": {"after knob calibration": d31.loc[ok, "pulse_steps"]},
                       "flagged": {"failed": d31.loc[~ok, "pulse_steps"]}})
    if P.with_data(panels):
        figs.append(("correction_histograms",
                     "Distributions of the correction tables: per-neuron gains (relative to the target gain) and "
                     "offsets, per-driver amplitude. Red marks: failed instances (their values are not used).",
                     P.histograms(panels, f"{lab}: calibrated neuron gains, offsets and driver amplitudes")))
    ks = t.get("knob_steps")
    if ks is not None and len(ks):
        steps = {s.get("name"): s for s in art.manifest.get("steps", [])}
        kpanels = []
        for name in ks.index.get_level_values("step").unique():
            sub = ks.xs(name, level="step")
            if len(sub) < 16:
                continue  # quadrant-level steps: 4 values are no histogram (see the summary and manifest)
            rec = steps.get(name, {})
            ok = sub["success"].astype(bool)
            tgt = sub["target"].median()
            kpanels.append({"title": f"{name}: knob {sub['knob'].iloc[0]}",
                            "xlabel": P.axis_label(rec.get("quantity", "measured value"), rec.get("unit")),
                            "series": {"before": sub["before"], "after": sub.loc[ok, "value"]},
                            "flagged": {"failed (after)": sub.loc[~ok, "value"]},
                            "vlines": [(tgt, "target (median)")] if np.isfinite(tgt) else []})
        if P.with_data(kpanels):
            figs.append(("knob_before_after",
                         "Knob calibration, per step: the measured observable of every instance before (default "
                         "codes) and after calibration, with the target; red: instances that failed.",
                         P.histograms(kpanels, f"{lab}: knob calibration before and after")))
    else:
        missing.append("knob_before_after: no knob_steps table")
    sg = t.get("synapse_gain")
    if sg is not None and {"gain_exc", "gain_inh"} <= set(sg.columns):
        maps = []
        for h in sorted(sg.index.get_level_values("hemisphere").unique()):
            sub = sg.xs(h, level="hemisphere")
            nrow = sub.index.get_level_values("row").nunique()
            ok = sub["success"].to_numpy(bool).reshape(nrow, -1)
            for sign in ("exc", "inh"):
                a = sub[f"gain_{sign}"].to_numpy(float).reshape(nrow, -1)
                kk, jj = np.nonzero(~ok)
                maps.append({"title": f"hemisphere {h}, {'excitatory' if sign == 'exc' else 'inhibitory'} rows",
                             "data": a, "marks": (kk, jj)})
        figs.append(("synapse_gain_map", "Per-synapse relative gain of the correction table (median 1 per column). "
                                         "Red squares: synapses that failed.",
                     P.heatmaps(maps, f"{lab}: per-synapse gain map", "relative synapse gain")))
    else:
        missing.append("synapse_gain_map: no synapse_gain table")
    if dt is not None and "pulse_steps" in dt.columns:
        drv = dt.index.get_level_values("driver").unique().to_numpy()
        pulse = dt["pulse_steps"].to_numpy(float).reshape(len(drv), -1)
        failed = ~dt["success"].to_numpy(bool).reshape(len(drv), -1).all(axis=1)
        figs.append(("driver_curves", "Driver transfer of the correction table: effective activation per code; red: "
                                      "drivers that failed.",
                     C.driver_curves(pulse, failed, f"{lab}: driver activation transfer")))
    if nc is not None and "noise_lsb" in nc.columns and np.isfinite(nc["noise_lsb"].to_numpy(float)).any():
        noisy = nc.loc[nc["noisy"].astype(bool), "noise_lsb"] if "noisy" in nc.columns else None
        figs.append(("noise", "Per-neuron trial-to-trial noise at zero input recorded in the correction table: "
                              "histogram (left) and along the chip (right); red: neurons flagged noisy. The noise "
                              "against the output level needs a characterization.",
                     C.noise({"calibrated": nc["noise_lsb"]}, {}, f"{lab}: trial-to-trial noise", flagged=noisy)))
    missing.append("transfer_curves, residual_vs_level, noise against output level: need measured transfer curves; "
                   "run bss2-calib characterize --artifact ARTIFACT and report the characterization")
    failed = {name: df.index[~df["success"].astype(bool)] for name, df in t.items() if "success" in df.columns}
    if failed:
        figs.append(("faults", "Faulty and failed instances of the calibration: neuron status (dead and noisy from "
                               "the correction table, failed fits), drivers, synapses that failed per column (stuck, "
                               "or on a dead driver or neuron), and counts.",
                     _fault_fig(t, failed, f"{lab}: faulty and failed instances")))
    return figs, missing


def _fault_fig(t, failed, title):
    nc, dt, sg = t.get("neuron_correction"), t.get("driver_transfer"), t.get("synapse_gain")
    ns = np.zeros(512, dtype=int)
    for name in ("neuron_correction", "knobs_neuron"):
        if name in failed:
            ns[np.asarray(failed[name], dtype=int)] = 1
    counts = {}
    if nc is not None:
        for col, code in (("noisy", 2), ("dead", 3)):
            if col in nc.columns:
                mask = nc[col].to_numpy(bool)
                ns[mask] = code
                counts[f"{col} neurons"] = int(mask.sum())
    dsv = np.zeros(256, dtype=int)
    if "knobs_driver" in failed:
        dsv[np.asarray(failed["knobs_driver"], dtype=int)] = 1
    if dt is not None:
        fd = dt.index.get_level_values("driver")[~dt["success"].astype(bool)].unique()
        dsv[np.asarray(fd, dtype=int)] = 1
        if "dead" in dt.columns:
            dead = dt.index.get_level_values("driver")[dt["dead"].astype(bool)].unique()
            dsv[np.asarray(dead, dtype=int)] = 2
            counts["dead drivers"] = int(len(dead))
    bad_syn = None
    if sg is not None:
        bad_syn = np.zeros((2, 256), dtype=int)
        bad = sg[~sg["success"].astype(bool)]
        np.add.at(bad_syn, (bad.index.get_level_values("hemisphere").to_numpy(int),
                            bad.index.get_level_values("column").to_numpy(int)), 1)
        for col in ("stuck_zero_exc", "stuck_zero_inh", "stuck_max_exc", "stuck_max_inh"):
            if col in sg.columns:
                counts[col.replace("_", " ") + " synapses"] = int(sg[col].sum())
    counts.update({f"{name} failed": int(len(idx)) for name, idx in failed.items()})
    return C.fault_overview(ns.reshape(2, 256), dsv.reshape(2, 128), bad_syn, counts, title,
                            synapse_title="synapses that failed, per column")
