"""Figure primitives of the reports (matplotlib, Agg): style, histograms, heat maps, drift, tables.

Every function takes plain arrays or DataFrames and returns a
:class:`matplotlib.figure.Figure` attached to an Agg canvas: no pyplot, no
global state, no display. This module imports matplotlib at import time, so
import it lazily (:func:`calib.report.write_report` does); neither
``import calib`` nor ``import calib.report`` loads it.

The chip's own views (transfer, noise, driver curves, fault overview) are in
:mod:`calib.report.chip_plots`. Colour maps are perceptually uniform (``cividis``
for magnitudes, ``RdBu_r`` only for signed deviations around zero); category
colours are fixed below.
"""
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

#: colours of the characterized states and of highlighted faults
STATE_COLORS = {"uncalibrated": "#7a5195", "calibrated": "#2a9d8f", "before": "#7a5195", "after": "#2a9d8f"}
FAULT_COLOR = "#d62728"
OTHER_COLORS = ("#e76f51", "#264653", "#e9c46a", "#8ab17d")
MAP_CMAP = "cividis"
DIFF_CMAP = "RdBu_r"
FIGSIZE = (10.0, 6.0)


def new_figure(figsize=FIGSIZE):
    """A Figure on an Agg canvas, constrained layout."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def color_of(label, k):
    return STATE_COLORS.get(label, OTHER_COLORS[k % len(OTHER_COLORS)])


def finite(v):
    v = np.asarray(v, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def legend(ax, **kw):
    """A legend if anything is labelled (matplotlib warns otherwise)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _note(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def integer_ticks(axis, nbins="auto"):
    """Ticks at whole numbers only (counts, codes)."""
    axis.set_major_locator(MaxNLocator(nbins=nbins, integer=True))


def axis_label(quantity, unit=None):
    """``quantity (unit)``; the unit is left out when it is missing or dimensionless (``"1"``)."""
    unit = "" if unit is None else str(unit).strip()
    return quantity if unit in ("", "1", "?") else f"{quantity} ({unit})"


def with_data(panels):
    """The histogram panels (see :func:`histograms`) that have at least one finite value to draw."""
    return [p for p in panels if any(finite(v).size for v in p["series"].values())]


def histograms(panels, title):
    """Overlaid step histograms, one panel per quantity.

    Parameters
    ----------
    panels : list of dict
        Each with ``title``, ``xlabel``, ``series`` ({label: values}) and
        optionally ``flagged`` ({label: values} drawn as red rug marks:
        failed or faulty instances) and ``vlines`` ([(x, text)]).
        Panels without data are left out (see :func:`with_data`).
    title : str

    Raises
    ------
    ValueError
        No panel has data.
    """
    panels = with_data(panels)
    if not panels:
        raise ValueError("histograms: no panel has data")
    n = len(panels)
    ncol = 2 if n > 1 else 1
    nrow = int(np.ceil(n / ncol))
    fig = new_figure((10.0, 3.2 * nrow + 0.6))
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    for ax, p in zip(axes, panels):
        allv = [finite(v) for v in p["series"].values()]
        lo, hi = np.percentile(np.concatenate(allv), [0.5, 99.5])
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, 41)
        for k, (label, v) in enumerate(p["series"].items()):
            v = finite(v)
            if v.size:
                ax.hist(np.clip(v, lo, hi), bins=bins, histtype="step", lw=1.8, color=color_of(label, k),
                        label=f"{label} (n={v.size}, median {np.median(v):.4g}, std {np.std(v):.3g})")
        for label, v in (p.get("flagged") or {}).items():
            v = finite(v)
            if v.size:
                out = int(np.sum((v < lo) | (v > hi)))
                note = f", {out} beyond the axis drawn at its edge" if out else ""
                ax.plot(np.clip(v, lo, hi), np.zeros_like(v), "|", ms=14, mew=2, color=FAULT_COLOR,
                        label=f"{label} ({v.size}{note})")
        for x, text in p.get("vlines", []):
            ax.axvline(x, color="0.3", ls="--", lw=1)
            ax.annotate(text, (x, 0), xycoords=("data", "axes fraction"), ha="left", va="bottom", fontsize=7,
                        xytext=(3, 3), textcoords="offset points", color="0.3", rotation=90)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.45)  # headroom: the legend sits above the bars
        legend(ax, fontsize=7, loc="upper right")
        ax.set_title(p["title"], fontsize=10)
        ax.set_xlabel(p["xlabel"])
        ax.set_ylabel("count")
        integer_ticks(ax.yaxis)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


def heatmaps(maps, title, cbar_label, *, cmap=MAP_CMAP, symmetric=False, limits=None):
    """Heat maps of per-synapse values (rows x columns), one panel per map.

    Parameters
    ----------
    maps : list of dict
        Each with ``title``, ``data`` (2-D array, NaN = not measured, grey)
        and optionally ``marks`` ((rows, columns) of faulty entries, red).
    symmetric : bool
        Colour limits symmetric around 0 (diverging maps).
    limits : (float, float) or None
        Colour limits; None takes the 1st and 99th percentiles of the
        entries that are not marked (faulty entries would wash out the
        scale); values beyond the limits get the end colours (the colour
        bar's arrows).
    """
    n = len(maps)
    ncol = 2 if n > 1 else 1
    nrow = int(np.ceil(n / ncol))
    fig = new_figure((11.0, 3.3 * nrow + 0.8))
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    vals = np.concatenate([finite(_unmarked(m)) for m in maps]) if maps else np.zeros(0)
    allv = np.concatenate([finite(m["data"]) for m in maps]) if maps else np.zeros(0)
    if limits is None:
        if vals.size:
            lo, hi = np.percentile(vals, [1, 99])
        else:
            lo, hi = 0.0, 1.0
        if symmetric:
            a = max(abs(lo), abs(hi), 1e-12)
            lo, hi = -a, a
        limits = (lo, hi)
    cm = matplotlib.colormaps[cmap].with_extremes(bad="0.75")
    im = None
    for ax, m in zip(axes, maps):
        d = np.asarray(m["data"], dtype=np.float64)
        im = ax.imshow(np.ma.masked_invalid(d), cmap=cm, vmin=limits[0], vmax=limits[1], aspect="auto",
                       interpolation="nearest", origin="upper")
        rows, cols = m.get("marks", (np.zeros(0), np.zeros(0)))
        if len(rows):
            ax.plot(cols, rows, "s", ms=2.5, mfc="none", mec=FAULT_COLOR, mew=0.8, label=f"faulty ({len(rows)})")
            legend(ax, fontsize=7, loc="lower right", markerscale=2)
        ax.set_title(m["title"], fontsize=10)
        ax.set_xlabel("column (neuron within hemisphere)")
        ax.set_ylabel(m.get("ylabel", "row (driver within hemisphere)"))
    for ax in axes[n:]:
        ax.set_visible(False)
    if im is not None:
        below, above = bool((allv < limits[0]).any()), bool((allv > limits[1]).any())
        extend = {(False, False): "neither", (True, False): "min", (False, True): "max"}.get((below, above), "both")
        fig.colorbar(im, ax=axes[:n].tolist(), label=cbar_label, shrink=0.9, extend=extend)
    fig.suptitle(title)
    return fig


def _unmarked(m):
    """The map's values with the marked (faulty) entries left out."""
    d = np.asarray(m["data"], dtype=np.float64)
    rows, cols = m.get("marks", (np.zeros(0, int), np.zeros(0, int)))
    keep = np.ones(d.shape, dtype=bool)
    keep[np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)] = False
    return d[keep]


def drift(pairs, title, label_a, label_b):
    """Drift between two artifacts: scatter of per-instance values and histograms of differences.

    Parameters
    ----------
    pairs : list of dict
        Each with ``name``, ``unit``, ``a`` and ``b`` (arrays aligned by instance).
    """
    n = len(pairs)
    fig = new_figure((11.0, 3.3 * n + 0.6))
    axes = fig.subplots(n, 2, squeeze=False)
    for (ax1, ax2), p in zip(axes, pairs):
        a, b = np.asarray(p["a"], float), np.asarray(p["b"], float)
        ok = np.isfinite(a) & np.isfinite(b)
        ax1.plot(a[ok], b[ok], ".", ms=3, color=OTHER_COLORS[1], alpha=0.6)
        if ok.any():
            lo, hi = np.percentile(np.concatenate([a[ok], b[ok]]), [0.5, 99.5])
            ax1.plot([lo, hi], [lo, hi], "k--", lw=1, label="no drift")
            legend(ax1, fontsize=7)
        ax1.set_xlabel(f"{p['name']} in {label_a} ({p['unit']})")
        ax1.set_ylabel(f"... in {label_b} ({p['unit']})")
        ax1.set_title(f"{p['name']}: later against earlier", fontsize=10)
        d = (b - a)[ok]
        if d.size:
            ax2.hist(d, bins=40, color=OTHER_COLORS[0], alpha=0.85)
            ax2.axvline(0, color="k", ls="--", lw=1)
            ax2.set_title(f"{p['name']} drift: mean {d.mean():+.3g}, std {d.std():.3g} {p['unit']}", fontsize=10)
        else:
            _note(ax2, "no common instances")
        ax2.set_xlabel(f"{p['name']} change ({p['unit']})")
        ax2.set_ylabel("instances")
        integer_ticks(ax2.yaxis)
    fig.suptitle(title)
    return fig


def table_figure(rows, title, col_labels=("quantity", "value", "unit", "source")):
    """A table rendered as a figure (the summary page of the PDF)."""
    per_page = 34
    fig = new_figure((11.0, 0.28 * min(len(rows), per_page) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.axis("off")
    shown = rows[:per_page]
    if shown:
        t = ax.table(cellText=[[str(c) for c in r] for r in shown], colLabels=list(col_labels), loc="upper center",
                     cellLoc="left", colLoc="left")
        t.auto_set_font_size(False)
        t.set_fontsize(7.5)
        t.auto_set_column_width(list(range(len(col_labels))))
    else:
        _note(ax, "no rows")
    if len(rows) > per_page:
        ax.set_title(f"(first {per_page} of {len(rows)} rows; all in report.html)", fontsize=8)
    fig.suptitle(title)
    return fig
