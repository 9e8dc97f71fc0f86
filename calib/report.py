"""Reports of calibration and characterization artifacts: HTML, PDF and PNG.

:func:`write_report` is the one entry point (``bss2-calib report`` and
``bss2-calib run --report`` call it). The HTML is self-contained (figures
embedded as base64 PNG, inline CSS, no scripts) and readable offline; the PDF
has the summary table on its first page and one figure per page after it.

The summary numbers are statistics of the artifact's own tables (each row
names its table, column and statistic); nothing is re-measured. matplotlib is
imported only inside :func:`write_report` (via :mod:`calib.plots`).
"""
import base64
import html
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .characterize.result import KIND as CHAR_KIND, SUMMARY_SPEC, state_tables, table_stat

FORMATS = ("html", "pdf", "png")
PNG_DPI = 110
MAX_FAULT_ROWS = 300

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


@dataclass
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    html, pdf : Path or None
        The report files (None when the format was not asked for).
    png : list of Path
        One file per figure.
    figures : list of str
        Names of the figures, in report order.
    missing : list of str
        Figures that the artifact(s) had no data for, with the reason.
    summary : list of tuple
        The summary rows (quantity, value, unit, source).
    """

    html: Path = None
    pdf: Path = None
    png: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    summary: list = field(default_factory=list)


# ---------------------------------------------------------------- loading
def load_artifact(path):
    """Load a calibration or characterization artifact by the kind in its manifest."""
    from .artifact import read_manifest

    if read_manifest(path, kind=None)["kind"] == CHAR_KIND:
        from .characterize.io import load

        return load(path)
    from . import load

    return load(path)


def _as_artifact(a):
    if hasattr(a, "tables") and hasattr(a, "manifest"):
        return a
    return load_artifact(a)


# ---------------------------------------------------------------- summary
def _fmt(v):
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
    kind = artifact.manifest.get("kind")
    if kind == CHAR_KIND:
        for state in _states(artifact):
            st = state_tables(artifact.tables, state)
            for key, label, table, col, stat, subset, unit in SUMMARY_SPEC:
                v = table_stat(st[table], col, stat, subset)
                rows.append((f"[{state}] {label}", v, unit, _source(table, col, stat, subset)))
    else:
        for label, table, col, stat, subset, unit in CALIB_SUMMARY_SPEC:
            df = artifact.tables.get(table)
            if df is None or (col not in df.columns and col not in df.index.names):
                continue
            rows.append((label, table_stat(df, col, stat, subset), unit, _source(table, col, stat, subset)))
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


def _states(artifact):
    return [s["name"] for s in artifact.manifest.get("states", [])] or ["uncalibrated"]


# ---------------------------------------------------------------- figures
def _label(artifact):
    m = artifact.manifest
    p = (m.get("preset") or {}).get("name", "?")
    return f"chip {m.get('chip_id', '?')} ({p})"


def _calib_figures(art, P):
    """Figures of a calibration artifact (whatever of its tables are present)."""
    figs, missing = [], []
    t = art.tables
    lab = _label(art)
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
    if panels:
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
                            "xlabel": f"{rec.get('quantity', 'measured value')} ({rec.get('unit', '?')})",
                            "series": {"before": sub["before"], "after": sub.loc[ok, "value"]},
                            "flagged": {"failed (after)": sub.loc[~ok, "value"]},
                            "vlines": [(tgt, "target (median)")] if np.isfinite(tgt) else []})
        if kpanels:
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
                     P.driver_curves(pulse, failed, f"{lab}: driver activation transfer")))
    if nc is not None and "noise_lsb" in nc.columns:
        figs.append(("noise", "Per-neuron noise recorded in the correction table.",
                     P.noise({"calibrated": nc["noise_lsb"]}, {}, f"{lab}: trial-to-trial noise")))
    missing.append("transfer_curves, residual_vs_level: need measured transfer curves; run bss2-calib characterize "
                   "--artifact ARTIFACT and report the characterization")
    failed = {name: df.index[~df["success"].astype(bool)] for name, df in t.items() if "success" in df.columns}
    if failed:
        figs.append(("faults", "Faulty and failed instances of the calibration: neuron status (dead and noisy from "
                               "the correction table, failed fits), drivers, synapses that failed per column (stuck, "
                               "or on a dead driver or neuron), and counts.",
                     _calib_fault_fig(P, t, failed, f"{lab}: faulty and failed instances")))
    return figs, missing


def _calib_fault_fig(P, t, failed, title):
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
    bad_syn = np.zeros((2, 256), dtype=int)
    if sg is not None:
        bad = sg[~sg["success"].astype(bool)]
        np.add.at(bad_syn, (bad.index.get_level_values("hemisphere").to_numpy(int),
                            bad.index.get_level_values("column").to_numpy(int)), 1)
        for col in ("stuck_zero_exc", "stuck_zero_inh", "stuck_max_exc", "stuck_max_inh"):
            if col in sg.columns:
                counts[col.replace("_", " ") + " synapses"] = int(sg[col].sum())
    counts.update({f"{name} failed": int(len(idx)) for name, idx in failed.items()})
    return P.fault_overview(ns.reshape(2, 256), dsv.reshape(2, 128), bad_syn, counts, title,
                            synapse_title="synapses that failed, per column")


def _drift_figures(a, b, P):
    """Drift between two artifacts of the same chip (b later than a)."""
    ta, tb = a.tables, b.tables
    la, lb = _when(a), _when(b)
    pairs, maps = [], []
    if a.manifest.get("kind") == CHAR_KIND:
        state = [s for s in _states(a) if s in _states(b)][-1]
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
                     P.drift(pairs, f"{_label(a)}: drift between {la} and {lb}", la, lb)))
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
                         P.heatmaps(maps, f"{_label(a)}: synapse gain drift ({state})", "change (percentage points)",
                                    cmap=P.DIFF_CMAP, symmetric=True)))
    return figs


def _when(art):
    m = art.manifest
    t = (m.get("conditions") or {}).get("temperature_c")
    return f"{m.get('created_utc', '?')}" + (f" ({t:g} °C)" if isinstance(t, (int, float)) else "")


# ---------------------------------------------------------------- writing
def _atomic_write(path, data):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _formats(formats):
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = [str(f).lower() for f in formats]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"report formats must be a non-empty subset of {', '.join(FORMATS)}, got {formats!r}")
    return set(formats)


def write_report(artifacts, out_dir, *, formats=FORMATS, progress=None):
    """Write the report of a calibration or characterization artifact.

    Parameters
    ----------
    artifacts : path-like or loaded artifact, or a sequence of one or two
        The artifact to report (a directory, or an object with ``tables`` and
        ``manifest`` such as ``calib.load(path)`` or a
        :class:`~calib.characterize.Characterization`). A second artifact of
        the same kind and chip, made at another time, adds the drift between
        the two (the earlier one is the reference).
    out_dir : path-like
        Directory for ``report.html``, ``report.pdf`` and the PNGs
        (created if missing; files of an earlier report are replaced, each
        atomically).
    formats : str or iterable of {"html", "pdf", "png"}, default=all three
        E.g. ``"html,pdf"``.
    progress : callable(str) or None, default=None
        Called with a short message before each figure is drawn and each file written.

    Returns
    -------
    ReportFiles
        Paths written, figure names, figures not available, summary rows.

    Raises
    ------
    ValueError
        Bad formats, more than two artifacts, or a second artifact of another
        chip or kind (an :class:`~calib.errors.ArtifactError` for unreadable
        artifacts).
    """
    fmts = _formats(formats)
    if isinstance(artifacts, (str, os.PathLike)) or hasattr(artifacts, "tables"):
        artifacts = [artifacts]
    artifacts = list(artifacts)
    if not 1 <= len(artifacts) <= 2:
        raise ValueError(f"a report takes one or two artifacts, got {len(artifacts)}")
    arts = [_as_artifact(a) for a in artifacts]
    if len(arts) == 2:
        ka, kb = (x.manifest.get("kind") for x in arts)
        if ka != kb:
            raise ValueError(f"drift needs two artifacts of the same kind, got {ka} and {kb}")
        ca, cb = (x.manifest.get("chip_id") for x in arts)
        if ca != cb:
            raise ValueError(f"drift needs two artifacts of the same chip, got chip {ca} and chip {cb}")
        arts.sort(key=lambda x: str(x.manifest.get("created_utc", "")))
    main = arts[-1]  # the latest state of the chip is the report's subject

    from . import plots as P  # lazy: matplotlib is loaded here only

    if main.manifest.get("kind") == CHAR_KIND:
        from .characterize.figures import figures as char_figures

        figs, missing = char_figures(main, P, _label(main))
    else:
        figs, missing = _calib_figures(main, P)
    if len(arts) == 2:
        figs += _drift_figures(arts[0], arts[1], P)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = [(q, _fmt(v), u, s) for q, v, u, s in summary_rows(main)]
    res = ReportFiles(figures=[f[0] for f in figs], missing=missing, summary=summary)
    say = progress if progress is not None else (lambda msg: None)
    pngs = []
    for name, caption, fig in figs:
        say(f"drawing {name}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=PNG_DPI)
        pngs.append(buf.getvalue())
        fig.set_layout_engine("none")  # keep the layout just computed: the PDF page does not redo it
    if "png" in fmts:
        for (name, _, _), data in zip(figs, pngs):
            p = out / f"{name}.png"
            _atomic_write(p, data)
            res.png.append(p)
    if "pdf" in fmts:
        say("writing report.pdf")
        res.pdf = out / "report.pdf"
        _atomic_write(res.pdf, _pdf_bytes(P, main, summary, figs))
    if "html" in fmts:
        res.html = out / "report.html"
        _atomic_write(res.html, _html(main, arts, summary, figs, pngs, missing).encode("utf-8"))
    return res


def _pdf_bytes(P, art, summary, figs):
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": f"bss2-calib report, {_label(art)}", "Creator": "bss2-calib"}) as pdf:
        per_page = 34
        for start in range(0, max(len(summary), 1), per_page):
            page = summary[start:start + per_page]
            pdf.savefig(P.table_figure(page, f"{_label(art)}: summary from the artifact's tables"
                                       + (f" ({start // per_page + 1})" if len(summary) > per_page else "")))
        for _, _, fig in figs:
            pdf.savefig(fig)
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.5em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444;margin-top:.3em}
.meta td:first-child{font-weight:600}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em}
"""


def _e(x):
    return html.escape(str(x), quote=True)


def _html(art, arts, summary, figs, pngs, missing):
    m = art.manifest
    lab = _label(art)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e('bss2-calib report: ' + lab)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             f"<h1>{_e('bss2-calib report: ' + lab)}</h1>", '<table class="meta">']
    meta = [("kind", m.get("kind")), ("chip id", m.get("chip_id")),
            ("preset", f"{(m.get('preset') or {}).get('name')} (sha256 {(m.get('preset') or {}).get('sha256', '')[:16]}…)"),
            ("created (UTC)", m.get("created_utc")), ("package version", m.get("package_version")),
            ("conditions", json.dumps(m.get("conditions"), sort_keys=True))]
    if m.get("kind") == CHAR_KIND:
        meta.append(("states", ", ".join(_states(art))))
        meta.append(("hardware time spent", f"{m.get('hw_time_s', float('nan')):.3f} s"))
    if len(arts) == 2:
        meta.append(("compared with", f"{_when(arts[0])} (drift reference)"))
    parts += [f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in meta]
    parts.append("</table>")

    parts.append('<h2 id="summary">Summary</h2>')
    parts.append("<p>Every number is a statistic of the artifact's tables; the source column says which.</p>")
    parts.append("<table><thead><tr><th>quantity</th><th>value</th><th>unit</th><th>source</th></tr></thead><tbody>")
    for q, v, u, s in summary:
        parts.append(f'<tr><td>{_e(q)}</td><td class="num">{_e(v)}</td><td>{_e(u)}</td><td>{_e(s)}</td></tr>')
    parts.append("</tbody></table>")

    fl = art.tables.get("faults")
    if fl is not None:
        parts.append('<h2 id="faults">Faulty elements</h2>')
        flr = fl.reset_index()
        if not len(flr):
            parts.append("<p>No faulty element found.</p>")
        else:
            counts = flr.groupby(["state", "kind"]).size() if "state" in flr.columns else flr.groupby("kind").size()
            parts.append("<p>" + "; ".join(f"{_e(' '.join(map(str, k)) if isinstance(k, tuple) else k)}: {int(v)}"
                                           for k, v in counts.items()) + "</p>")
            cols = [c for c in ("state", "kind", "element", "measured", "expected", "threshold", "z_score", "unit",
                                "evidence") if c in flr.columns]
            parts.append("<table><thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr></thead><tbody>")
            for _, r in flr.head(MAX_FAULT_ROWS).iterrows():
                cells = []
                for c in cols:
                    v = r[c]
                    num = isinstance(v, (float, np.floating))
                    cells.append(f'<td class="num">{_e(_fmt(v))}</td>' if num else f"<td>{_e(v)}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
            if len(flr) > MAX_FAULT_ROWS:
                parts.append(f"<p>First {MAX_FAULT_ROWS} of {len(flr)} rows; all are in the artifact's "
                             "faults table.</p>")

    parts.append('<h2 id="figures">Figures</h2>')
    for (name, caption, _), data in zip(figs, pngs):
        b64 = base64.b64encode(data).decode("ascii")
        parts.append(f'<figure id="fig-{_e(name)}"><img alt="{_e(name)}" src="data:image/png;base64,{b64}">'
                     f"<figcaption>{_e(caption)}</figcaption></figure>")
    if missing:
        parts.append('<h2 id="missing">Not in this report</h2><ul>')
        parts += [f"<li>{_e(x)}</li>" for x in missing]
        parts.append("</ul>")
    steps = m.get("steps") or []
    if steps:
        parts.append('<h2 id="steps">Steps</h2>')
        keys = [k for k in ("state", "name", "algorithm", "vectors", "measurements", "hw_time_s", "wall_time_s",
                            "n_failed") if any(k in st for st in steps)]
        parts.append("<table><thead><tr>" + "".join(f"<th>{_e(k)}</th>" for k in keys) + "</tr></thead><tbody>")
        for st in steps:
            cells = []
            for k in keys:
                v = st.get(k, "")
                cells.append(f'<td class="num">{_e(_fmt(v))}</td>' if isinstance(v, (int, float)) and not
                             isinstance(v, bool) else f"<td>{_e(v)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
    q = m.get("quality")
    if q and m.get("kind") != CHAR_KIND:  # a characterization's quality is the summary above
        parts.append('<h2 id="manifest-quality">Quality figures recorded in the manifest</h2>')
        parts.append(f"<pre>{_e(json.dumps(q, indent=1, sort_keys=True, default=str))}</pre>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
