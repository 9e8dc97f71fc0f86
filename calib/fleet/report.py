"""The fleet report: an HTML page with the distribution of every summary figure across chips.

One strip per quantity (the chips' values over the fleet's median and middle
half) in two PNG files beside ``index.html``: quality and fault figures, and
the spread after every knob step. A chip is an *outlier* in a quantity
when its value lies more than :data:`OUTLIER_Z` robust standard deviations
(1.4826 x the median absolute deviation) from the fleet's median; outliers are
drawn in red with their chip id and listed in a table. Quantities on which all
chips agree (zero spread) flag any chip that differs at all.
"""
import html
from pathlib import Path

import numpy as np

from ..errors import ArtifactExists

OUTLIER_Z = 3.5
#: quantities shown first, then every per-step spread after calibration
MAIN = ("residual_rms_lsb", "failed_instances", "dead_neurons", "noisy_neurons", "weak_neurons", "dead_drivers",
        "stuck_synapses", "link_retries", "gain_deviation_rms", "offset_deviation_rms_lsb", "hw_time_s", "wall_time_s")


def outliers(values):
    """Boolean mask of the outliers among ``values`` (NaN never is one), see the module docstring."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    out = np.zeros(v.shape, dtype=bool)
    if ok.sum() < 3:
        return out
    med = np.median(v[ok])
    mad = 1.4826 * np.median(np.abs(v[ok] - med))
    dev = np.abs(v - med)
    out[ok] = dev[ok] > (OUTLIER_Z * mad if mad > 0 else 1e-12 * max(1.0, abs(med)))
    return out


def quantities(df):
    """Numeric columns of the summary worth a figure (at least one finite value), in display order."""
    spreads = sorted(c for c in df.columns if c.endswith(".spread_after"))
    cols = [c for c in MAIN if c in df.columns] + spreads
    return [c for c in cols if np.isfinite(np.asarray(df[c], dtype=np.float64)).any()]


def _strip(ax, df, col):
    """One quantity: every chip's value over the fleet's median and middle half; outliers in red."""
    v = np.asarray(df[col], dtype=np.float64)
    chips = np.asarray(df["chip"])
    bad = outliers(v)
    ok = np.isfinite(v)
    if ok.sum() >= 2:
        q1, med, q3 = np.percentile(v[ok], [25, 50, 75])
        if q3 > q1:
            ax.axvspan(q1, q3, color="0.9")
        ax.axvline(med, color="0.4", lw=1)
    jitter = 0.5 + 0.3 * np.sin(np.arange(len(v)) * 2.399)  # deterministic vertical spread of the points
    ax.scatter(v[ok & ~bad], jitter[ok & ~bad], s=10, color="tab:blue")
    ax.scatter(v[bad], jitter[bad], s=26, color="tab:red")
    for x, y, c in zip(v[bad], jitter[bad], chips[bad]):
        ax.annotate(str(c), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7, color="tab:red")
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_title(f"{col} ({ok.sum()} chips, {bad.sum()} outliers)", fontsize=8, loc="left")
    ax.tick_params(labelsize=7)


def _figure(df, cols, path):
    """The strips of ``cols``, two per row, in one PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: matplotlib is loaded here only
    from matplotlib.figure import Figure

    rows = (len(cols) + 1) // 2
    fig = Figure(figsize=(10.0, 1.15 * rows + 0.3))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.03, right=0.98, top=1 - 0.35 / (1.15 * rows + 0.3), bottom=0.25 / rows, hspace=0.9)
    axes = fig.subplots(rows, 2, squeeze=False).ravel()
    for ax, col in zip(axes, cols):
        _strip(ax, df, col)
    for ax in axes[len(cols):]:
        ax.set_axis_off()
    fig.savefig(path, dpi=80)


def write_fleet_report(df, out_dir):
    """Write ``out_dir/index.html`` and one PNG per quantity; returns the page's path.

    Parameters
    ----------
    df : DataFrame
        :func:`calib.fleet.summary` output.
    out_dir : path-like
        Must not exist (nothing is overwritten).
    """
    out = Path(out_dir)
    if out.exists():
        raise ArtifactExists(f"{out} already exists; reports are never overwritten")
    out.mkdir(parents=True)
    cols = quantities(df)
    flagged = []
    for col in cols:
        mask = outliers(df[col])
        med = float(np.nanmedian(np.asarray(df[col], dtype=np.float64)))
        flagged += [(int(c), col, float(x), med) for c, x in zip(df["chip"][mask], df[col][mask])]
    figures = {"quality.png": [c for c in cols if c in MAIN], "spreads.png": [c for c in cols if c not in MAIN]}
    for name, group in figures.items():
        if group:
            _figure(df, group, out / name)
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Fleet report: {len(df)} chips</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}.out{background:#fbb}"
             ".bad{color:#b00}</style></head><body>",
             f"<h1>Fleet report: {len(df)} chips</h1>",
             f"<p>{int(df['ok'].sum())} chips calibrated without a failed stage; outliers lie more than {OUTLIER_Z} "
             f"robust standard deviations from the fleet median.</p>", "<h2>Outliers</h2>"]
    if flagged:
        parts.append("<table><tr><th>chip</th><th>quantity</th><th>value</th><th>fleet median</th></tr>")
        parts += [f"<tr class='out'><td>{c}</td><td>{esc(q)}</td><td>{x:.4g}</td><td>{m:.4g}</td></tr>"
                  for c, q, x, m in flagged]
        parts.append("</table>")
    else:
        parts.append("<p>none</p>")
    parts.append("<h2>Distributions across chips</h2>")
    parts += [f"<div><img src='{n}' alt='{n}'></div>" for n, group in figures.items() if group]
    shown = ["chip", "preset", "created_utc", "ok", "verify"] + [c for c in MAIN if c in cols]
    out_cells = {(c, q) for c, q, _, _ in flagged}
    parts.append("<h2>Chips</h2><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in shown) + "</tr>")
    for _, r in df.iterrows():
        cells = []
        for c in shown:
            v = r[c]
            text = f"{v:.4g}" if isinstance(v, float) else esc(str(v))
            cls = " class='out'" if (int(r["chip"]), c) in out_cells else (" class='bad'" if c == "ok" and not v
                                                                           else "")
            cells.append(f"<td{cls}>{text}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table></body></html>")
    page = out / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page
