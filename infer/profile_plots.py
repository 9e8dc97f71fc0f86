"""Figures of the runtime-overhead analysis (matplotlib, Agg; import this module lazily).

Functions return a :class:`matplotlib.figure.Figure` on an Agg canvas: no pyplot, no global state.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .profile import HOST_CATEGORIES, HW_CATEGORIES, PUBLISHED_MOPS

HOST_COLORS = {"partition": "#264653", "corrections": "#2a9d8f", "simulation": "#e9c46a", "other": "#bbbbbb"}
HW_COLORS = {"knobs": "#7a5195", "weights": "#ef5675", "events": "#ffa600", "vector_fixed": "#003f5c",
             "readout": "#58a4b0"}


def _figure(figsize):
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _stacked(ax, rows, field, categories, colors, title):
    names = [r.name for r in rows]
    bottom = np.zeros(len(rows))
    for cat in categories:
        v = np.array([1e3 * getattr(r, field)[cat] for r in rows])
        ax.barh(names, v, left=bottom, color=colors[cat], label=cat.replace("_", " "))
        bottom += v
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def plot_profiles(profiles):
    """Stacked bars per row: host time by stage (left), simulated hardware time by category (right).

    Parameters
    ----------
    profiles : sequence of Profile
        One line of panels each (inference, training step).

    Returns
    -------
    Figure
    """
    fig = _figure((11.0, 3.2 * len(profiles) + 0.4))
    axes = fig.subplots(len(profiles), 2, squeeze=False)
    for (ax_h, ax_w), p in zip(axes, profiles):
        rows = list(p.rows) + [p.total]
        what = f"{p.model}, {p.mode}, batch {p.batch}"
        _stacked(ax_h, rows, "host", HOST_CATEGORIES, HOST_COLORS, f"host time ({what})")
        _stacked(ax_w, rows, "hw", HW_CATEGORIES, HW_COLORS, f"simulated hardware time ({what})")
    return fig


def plot_sweep(points, limits):
    """Achieved MOp/s against batch size per matrix shape: measured (markers) and modelled (lines).

    Parameters
    ----------
    points : sequence of SweepPoint
    limits : dict
        :func:`infer.profile.design_limits`.

    Returns
    -------
    Figure
    """
    fig = _figure((13.0, 5.0))
    ax, ax_share = fig.subplots(1, 2, width_ratios=(3, 2))
    shapes = sorted({(p.n_in, p.n_out) for p in points})
    for k, shape in enumerate(shapes):
        pts = sorted((p for p in points if (p.n_in, p.n_out) == shape), key=lambda p: p.batch)
        b = [p.batch for p in pts]
        color = f"C{k}"
        ax.plot(b, [p.ops / sum(p.model.values()) / 1e6 for p in pts], "-", color=color, alpha=0.7)
        ax.plot(b, [p.ops / sum(p.measured.values()) / 1e6 for p in pts], "osD^v<>"[k % 7], color=color,
                ms=9 - k, label=f"{shape[0]}x{shape[1]}")
        total = np.array([sum(p.measured.values()) for p in pts])
        ax_share.plot(b, [p.measured["weights"] for p in pts] / total, "--", color=color, marker="osD^v<>"[k % 7],
                      ms=8 - k)
        ax_share.plot(b, [p.measured["vector_fixed"] + p.measured["readout"] for p in pts] / total, "-",
                      color=color, marker="osD^v<>"[k % 7], ms=8 - k)
    ax.axhline(limits["vector"], color="k", ls="--", lw=1, label="ceiling: 40 us + events per vector")
    for k, (shape, v) in enumerate(PUBLISHED_MOPS.items()):
        ax.axhline(v, color="0.4", ls=":", lw=1, label="published end-to-end, real system" if k == 0 else None)
        ax.annotate(f"{v:.0f} MOp/s ({shape}, published)", (1, v), fontsize=7, xytext=(2, 2),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch (vectors per matmul, fresh weights)")
    ax.set_ylabel("MOp/s of simulated hardware time")
    ax.set_title("one chip: markers measured (chip clock), lines the analytic model", fontsize=10)
    ax.legend(fontsize=8)
    ax_share.set_xscale("log")
    ax_share.set_ylim(0, 1)
    ax_share.set_xlabel("batch")
    ax_share.set_ylabel("share of the simulated time")
    ax_share.set_title("weight writes (dashed) and fixed cost per vector (solid)", fontsize=10)
    return fig
