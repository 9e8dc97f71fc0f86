"""Figures of the chip's own views (matplotlib, Agg): transfer and driver curves, noise, residuals, faults.

Same conventions as :mod:`calib.report.plots` (its colours and helpers); imports matplotlib, so import it
lazily, as :func:`calib.report.write_report` does.
"""
import matplotlib
import numpy as np
from matplotlib import cm as mcm
from matplotlib import colors as mcolors

from .plots import FAULT_COLOR, OTHER_COLORS, color_of, finite, integer_ticks, legend, new_figure


def transfer_curves(groups, title, xlabel="sum(x·w) per send (weight units x activation steps)"):
    """Transfer curves of a few columns with their linear range shaded.

    Parameters
    ----------
    groups : list of (str, list of dict)
        Panel title and its curves; each curve has ``label``, ``sum_xw``,
        ``mean``, ``std``, ``offset``, ``gain_exc``, ``gain_inh``,
        ``linear`` ((lo, hi) in sum(x*w)), ``saturation`` ((lo, hi) LSB).
    """
    fig = new_figure((11.0, 4.8))
    axes = np.atleast_1d(fig.subplots(1, len(groups), squeeze=False)).ravel()
    cmap = matplotlib.colormaps["viridis"]
    for ax, (ptitle, curves) in zip(axes, groups):
        for k, c in enumerate(curves):
            col = cmap(0.1 + 0.75 * k / max(len(curves) - 1, 1))
            s = np.asarray(c["sum_xw"], dtype=np.float64)
            ax.errorbar(s, c["mean"], yerr=c["std"], fmt=".", ms=3, lw=0.6, color=col, label=c["label"])
            lo, hi = c["linear"]
            if np.isfinite(lo) and np.isfinite(hi):
                ax.axvspan(lo, hi, color=col, alpha=0.08)
                for edge in (lo, hi):
                    ax.axvline(edge, color=col, lw=0.8, ls=":")
            if np.isfinite(c["gain_exc"]) and np.isfinite(c["gain_inh"]):
                fit = np.where(s >= 0, c["offset"] + c["gain_exc"] * s, c["offset"] + c["gain_inh"] * s)
                inside = (s >= lo) & (s <= hi) if np.isfinite(lo) and np.isfinite(hi) else np.ones_like(s, bool)
                ax.plot(s[inside], fit[inside], "-", color=col, lw=1.2, alpha=0.9)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_title(ptitle, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean result (LSB, int8)")
        legend(ax, fontsize=7, loc="upper left")
    fig.suptitle(title)
    return fig


def noise(per_column, levels, title, flagged=None, threshold=None):
    """Noise per column: its histogram (left) and, right, its dependence on the output level or its place on the chip.

    Parameters
    ----------
    per_column : dict of label to pandas.Series or array
        Trial-to-trial noise of every column (LSB); a Series is indexed by
        neuron (0-511), an array is in neuron order.
    levels : dict of label to DataFrame
        ``noise_level`` tables (index ``output_lsb``; median and q10/q90).
        Empty (a calibration artifact has none): the right panel shows the
        noise of every neuron along the chip instead.
    flagged : pandas.Series, array or None
        Noise of the columns reported noisy (drawn red).
    threshold : float or None
        The noisy-neuron limit (LSB).

    Raises
    ------
    ValueError
        No finite noise value to draw.
    """
    allv = np.concatenate([finite(v) for v in per_column.values()]) if per_column else np.zeros(0)
    if not allv.size:
        raise ValueError("noise: no per-column noise to draw")
    fig = new_figure((11.0, 4.6))
    ax1, ax2 = fig.subplots(1, 2)
    bins = np.linspace(max(allv.min() - 0.2, 0.0), allv.max() + 0.2, 60)
    for k, (label, v) in enumerate(per_column.items()):
        v = finite(v)
        ax1.hist(v, bins=bins, histtype="step", lw=1.8, color=color_of(label, k),
                 label=f"{label}: median {np.median(v):.2f} LSB")
    n_flagged = 0 if flagged is None else finite(flagged).size
    if n_flagged:
        ax1.hist(finite(flagged), bins=bins, color=FAULT_COLOR, alpha=0.8, label=f"noisy neurons ({n_flagged})")
    has_threshold = threshold is not None and np.isfinite(threshold)
    if has_threshold:
        ax1.axvline(threshold, color="0.3", ls="--", lw=1, label=f"noisy limit {threshold:.2f} LSB")
    ax1.set_yscale("log")
    legend(ax1, fontsize=7)
    ax1.set_xlabel("trial-to-trial noise at zero input (LSB std)")
    ax1.set_ylabel("columns")
    ax1.set_title("noise per column", fontsize=10)
    if levels:
        for k, (label, df) in enumerate(levels.items()):
            x = df.index.get_level_values("output_lsb").to_numpy(float)
            col = color_of(label, k)
            ax2.fill_between(x, df["noise_q10_lsb"], df["noise_q90_lsb"], color=col, alpha=0.2)
            ax2.plot(x, df["noise_median_lsb"], "o-", ms=3, color=col, label=f"{label}: median (band 10-90 %)")
        ax2.set_xlabel("mean output level (LSB)")
        ax2.set_ylabel("noise (LSB std over repeats)")
        ax2.set_title("noise against output level", fontsize=10)
    else:
        for k, (label, v) in enumerate(per_column.items()):
            x, y = _by_neuron(v)
            ax2.plot(x, y, ".", ms=3, color=color_of(label, k), label=label)
        if n_flagged:
            x, y = _by_neuron(flagged)
            ax2.plot(x, y, "o", ms=6, mfc="none", mec=FAULT_COLOR, mew=1.2, label=f"noisy neurons ({n_flagged})")
        if has_threshold:
            ax2.axhline(threshold, color="0.3", ls="--", lw=1)
        ax2.axvline(255.5, color="0.6", lw=0.8)
        ax2.set_xlim(-4, 515)
        ax2.set_xlabel("neuron (0-255: hemisphere 0, 256-511: hemisphere 1)")
        integer_ticks(ax2.xaxis)
        ax2.set_ylabel("noise at zero input (LSB std)")
        ax2.set_title("noise along the chip", fontsize=10)
    legend(ax2, fontsize=7)
    fig.suptitle(title)
    return fig


def _by_neuron(v):
    """(neuron, value) of the finite entries of a Series indexed by neuron, or of an array in neuron order."""
    x = np.asarray(v.index if hasattr(v, "index") else np.arange(len(v)), dtype=np.float64)
    y = np.asarray(v, dtype=np.float64)
    ok = np.isfinite(y)
    return x[ok], y[ok]


def residuals(series, title):
    """Residual error against output level, one line (median, IQR band, RMS) per state.

    Parameters
    ----------
    series : dict of label to dict
        ``level`` (bin centres, LSB), ``median``, ``q25``, ``q75``, ``rms`` (LSB).
    """
    fig = new_figure((10.0, 4.8))
    ax1, ax2 = fig.subplots(1, 2)
    for k, (label, s) in enumerate(series.items()):
        col = color_of(label, k)
        ax1.fill_between(s["level"], s["q25"], s["q75"], color=col, alpha=0.2)
        ax1.plot(s["level"], s["median"], "-", color=col, lw=1.6, label=f"{label}: median, band 25-75 %")
        ax2.plot(s["level"], s["rms"], "o-", ms=3, color=col, label=label)
    for ax in (ax1, ax2):
        ax.set_xlabel("ideal output, target gain x sum(x·w) (LSB)")
        ax.axhline(0, color="0.6", lw=0.6)
        legend(ax, fontsize=7)
    ax1.set_ylabel("residual: output - ideal (LSB)")
    ax1.set_title("signed residual over columns", fontsize=10)
    ax2.set_ylabel("RMS residual over columns (LSB)")
    ax2.set_ylim(bottom=0)
    ax2.set_title("RMS residual", fontsize=10)
    fig.suptitle(title)
    return fig


NEURON_STATUS = ("ok", "failed fit", "noisy", "dead")
DRIVER_STATUS = ("ok", "failed fit", "dead")
_STATUS_COLORS = ("#d9ead3", "#e9c46a", "#f4a261", FAULT_COLOR)


def fault_overview(neuron_status, driver_status, synapse_counts, kind_counts, title,
                   synapse_title="stuck synapses per column"):
    """Where the failed and faulty instances are on the chip.

    Parameters
    ----------
    neuron_status : ndarray of int, shape (2, 256)
        Index into :data:`NEURON_STATUS` per hemisphere and column.
    driver_status : ndarray of int, shape (2, 128)
        Index into :data:`DRIVER_STATUS`.
    synapse_counts : ndarray of int, shape (2, 256), or None
        Faulty synapses per column; None (not measured) or all zero leaves
        the panel out (the counts by kind still say how many there are).
    kind_counts : dict of str to int
        Faults per kind.
    synapse_title : str
        Title of the synapse panel.
    """
    cnt = None if synapse_counts is None else np.asarray(synapse_counts)
    show_synapses = cnt is not None and cnt.any()
    fig = new_figure((11.0, 6.4 if show_synapses else 4.6))
    gs = fig.add_gridspec(3 if show_synapses else 2, 2, height_ratios=[1, 1, 1.4] if show_synapses else [1, 1],
                          width_ratios=[3, 1.3])
    cmap = mcolors.ListedColormap(_STATUS_COLORS)
    ns = np.asarray(neuron_status)
    ax = fig.add_subplot(gs[0, 0])
    ax.imshow(ns, cmap=cmap, vmin=-0.5, vmax=3.5, aspect="auto", interpolation="nearest")
    ax.set_yticks([0, 1], ["h0", "h1"])
    ax.set_xlabel("column (neuron within hemisphere)")
    ax.set_title(f"{ns.size} neurons: " + ", ".join(
        f"{int((ns == k).sum())} {name} ({c})"
        for k, (name, c) in enumerate(zip(NEURON_STATUS, ("green", "yellow", "orange", "red")))), fontsize=9)
    ax = fig.add_subplot(gs[1, 0])
    ds = np.asarray(driver_status)
    ax.imshow(np.where(ds == 2, 3, ds), cmap=cmap, vmin=-0.5, vmax=3.5, aspect="auto", interpolation="nearest")
    ax.set_yticks([0, 1], ["h0", "h1"])
    ax.set_xlabel("row (driver within hemisphere)")
    ax.set_title(f"{ds.size} drivers: " + ", ".join(
        f"{int((ds == k).sum())} {name} ({c})" for k, (name, c) in enumerate(zip(DRIVER_STATUS,
                                                                                ("green", "yellow", "red")))),
                 fontsize=9)
    if show_synapses:
        ax = fig.add_subplot(gs[2, 0])
        for h in range(cnt.shape[0]):
            ax.bar(np.arange(cnt.shape[1]), cnt[h], width=1.0, alpha=0.8, color=OTHER_COLORS[h],
                   label=f"hemisphere {h} ({int(cnt[h].sum())})")
        ax.set_xlabel("column (neuron within hemisphere)")
        ax.set_ylabel("faulty synapses")
        integer_ticks(ax.yaxis)
        ax.set_title(synapse_title, fontsize=9)
        legend(ax, fontsize=7)
    ax = fig.add_subplot(gs[:, 1])
    names = list(kind_counts)
    values = [int(kind_counts[k]) for k in names]
    ax.barh(np.arange(len(names)), values, color=FAULT_COLOR)
    for k, v in enumerate(values):
        ax.annotate(str(v), (v, k), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(np.arange(len(names)), [n.replace("_", " ") for n in names], fontsize=8)
    ax.set_xlim(0, 1.15 * max(values + [1]))  # room for the numbers; a count axis starts at 0
    integer_ticks(ax.xaxis, nbins=4)
    ax.set_xlabel("count")
    ax.set_title("count by kind" + (": none found" if not any(values) else ""), fontsize=9)
    fig.suptitle(title)
    return fig


def driver_curves(pulse, dead, title, ylabel="effective activation (nominal steps)"):
    """Activation curves of all drivers (thin lines) against the ideal diagonal.

    Parameters
    ----------
    pulse : ndarray of shape (n_drivers, 32)
    dead : ndarray of bool, shape (n_drivers,)
    """
    fig = new_figure((11.0, 4.6))
    ax1, ax2 = fig.subplots(1, 2)
    x = np.arange(pulse.shape[1])
    live = ~np.asarray(dead, bool)
    amp = pulse[:, -1]
    cmap = matplotlib.colormaps["viridis"]
    shown = amp[live & np.isfinite(amp)]
    norm = mcolors.Normalize(*(np.percentile(shown, [2, 98]) if shown.size else (0, 1)))
    for d in np.flatnonzero(live):
        ax1.plot(x, pulse[d], "-", lw=0.5, alpha=0.5, color=cmap(norm(amp[d])))
    for d in np.flatnonzero(~live):
        ax1.plot(x, pulse[d], "-", lw=1.5, color=FAULT_COLOR)
    ax1.plot(x, x, "k--", lw=1, label="ideal (proportional)")
    if (~live).any():
        ax1.plot([], [], "-", color=FAULT_COLOR, label=f"dead drivers ({(~live).sum()})")
    ax1.set_xlabel("activation code x")
    ax1.set_ylabel(ylabel)
    ax1.set_title(f"activation curves of {pulse.shape[0]} drivers (colour: amplitude)", fontsize=10)
    legend(ax1, fontsize=7)
    lowx = x[1:6]
    for d in np.flatnonzero(live):
        ax2.plot(lowx, pulse[d, 1:6] - lowx * pulse[d, -1] / x[-1], "-", lw=0.5, alpha=0.5, color=cmap(norm(amp[d])))
    ax2.axhline(0, color="k", ls="--", lw=1)
    ax2.set_xlabel("activation code x")
    integer_ticks(ax2.xaxis)
    ax2.set_ylabel("excess over proportional (steps)")
    ax2.set_title("low-activation distortion (codes 1-5)", fontsize=10)
    fig.colorbar(mcm.ScalarMappable(norm=norm, cmap=cmap), ax=[ax1, ax2],
                 label="effective activation at code 31 (steps)")
    fig.suptitle(title)
    return fig
