"""Fits of a characterization: linear range and saturation of transfer curves,
noise against output level, the synapse gain map, driver activation curves.

Pure functions of measured arrays; no chip access.
"""
import numpy as np

from ..probes import nanmedian

FIT_WINDOW_LSB = 50.0  #: transfer points within this distance of the offset enter the first gain fit
EDGE_START_LSB = 20.0  #: the linear-range scan starts here (below, low-activation distortion dominates)
NOISE_BIN_LSB = 10.0  #: width of the output-level bins of the noise table
SLOPE_FRACTION = 0.7  #: the curve bends where its local slope falls below this fraction of the fitted gain
SLOPE_HALF_WINDOW = 3  #: half width (levels) of the local-slope window


def _side_fit(s, y, offset, window):
    """Least-squares slope through (0, offset) of the points with |y - offset| <= window."""
    sel = np.abs(y - offset) <= window
    sel &= s != 0
    if sel.sum() < 3:
        return np.nan, np.nan
    ss, yy = s[sel].astype(np.float64), y[sel] - offset
    g = (ss @ yy) / (ss @ ss)
    resid = yy - g * ss
    sem = np.sqrt(resid @ resid / max(sel.sum() - 1, 1) / (ss @ ss))
    return g, sem


def _local_slope(s, y, half=SLOPE_HALF_WINDOW):
    """Slope of y over s across a centred window of 2 * half levels (shrunk at the ends)."""
    n = len(s)
    k = np.arange(n)
    lo, hi = np.clip(k - half, 0, n - 1), np.clip(k + half, 0, n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (y[hi] - y[lo]) / (s[hi] - s[lo])


def _edge(s, y, offset, g, tol_lsb, tol_rel):
    """Index of the last point of the linear range on one side (s ordered outward from 0).

    A point is outside the linear range when it deviates from the linear fit
    by more than max(tol_lsb, tol_rel * |fit|) *and* the curve bends there
    (the local slope over a few levels is below SLOPE_FRACTION of the fitted
    gain). The second condition keeps steps out: a row that adds nothing (a
    dead driver, a stuck synapse) shifts the rest of a column's curve without
    bending it. The scan starts where the linear model is EDGE_START_LSB away
    from the offset and stops before the first two consecutive points outside.
    """
    model = g * s
    dev = np.abs(y - offset - model)
    tol = np.maximum(tol_lsb, tol_rel * np.abs(model))
    bent = _local_slope(s, y) < SLOPE_FRACTION * g
    bad = (dev > tol) & bent
    start = int(np.argmax(np.abs(model) >= EDGE_START_LSB)) if np.any(np.abs(model) >= EDGE_START_LSB) else 0
    for k in range(start, len(s) - 1):
        if bad[k] and bad[k + 1]:
            return k - 1
    if bad[-1] and len(s) - 1 >= start:
        return len(s) - 2
    return len(s) - 1


def fit_transfer(sum_xw, mean, offset, tol_lsb=3.0, tol_rel=0.05):
    """Gains, linear range and saturation of every column's transfer curve.

    Parameters
    ----------
    sum_xw : ndarray of shape (k,)
        Programmed sum(x*w) per send, ascending, containing 0.
    mean : ndarray of shape (k, n_columns)
        Mean result at each level (LSB).
    offset : ndarray of shape (n_columns,)
        Mean result at zero input (LSB), from a precise zero-input measurement.
    tol_lsb, tol_rel : float
        Linear-range tolerance, see :class:`CharacterizeOptions`.

    Returns
    -------
    dict of ndarray of shape (n_columns,)
        ``gain_exc``, ``gain_inh`` (LSB per unit of sum(x*w) per send, both
        positive), their standard errors, ``linear_lo_lsb``/``linear_hi_lsb``
        and ``linear_lo_sum_xw``/``linear_hi_sum_xw`` (edges of the linear
        range), ``sat_lo_lsb``/``sat_hi_lsb`` (extreme mean outputs) and
        ``sat_lo_sum_xw``/``sat_hi_sum_xw`` (first level within 1 LSB of them),
        ``success`` (a usable fit on both sides).
    """
    s = np.asarray(sum_xw)
    n_cols = mean.shape[1]
    pos = np.flatnonzero(s > 0)
    neg = np.flatnonzero(s < 0)[::-1]  # outward from 0
    out = {k: np.full(n_cols, np.nan) for k in (
        "gain_exc", "gain_exc_sem", "gain_inh", "gain_inh_sem", "linear_lo_lsb", "linear_hi_lsb",
        "linear_lo_sum_xw", "linear_hi_sum_xw", "sat_lo_lsb", "sat_hi_lsb", "sat_lo_sum_xw", "sat_hi_sum_xw")}
    out["success"] = np.zeros(n_cols, dtype=bool)
    for j in range(n_cols):
        y, o = mean[:, j], offset[j]
        ok = True
        for side, idx, key in ((0, pos, "exc"), (1, neg, "inh")):
            ss, yy = s[idx], y[idx]
            window = FIT_WINDOW_LSB
            g = sem = np.nan
            for _ in range(3):  # shrink the fit window into the linear range if needed
                g, sem = _side_fit(ss, yy, o, window)
                if not np.isfinite(g) or g == 0:
                    break
                e = _edge(ss, yy, o, g, tol_lsb, tol_rel)
                reach = abs(yy[e] - o) if e >= 0 else 0.0
                if reach >= window or reach < EDGE_START_LSB:
                    break
                window = 0.8 * reach
            if not np.isfinite(g):
                ok = False
                continue
            e = _edge(ss, yy, o, g, tol_lsb, tol_rel)
            out[f"gain_{key}"][j] = g
            out[f"gain_{key}_sem"][j] = sem
            lim = "hi" if side == 0 else "lo"
            if e >= 0:
                out[f"linear_{lim}_lsb"][j] = yy[e]
                out[f"linear_{lim}_sum_xw"][j] = ss[e]
            else:
                ok = False
            k_ext = int(np.argmax(yy) if side == 0 else np.argmin(yy))
            ext = yy[k_ext]
            out[f"sat_{lim}_lsb"][j] = ext
            near = np.flatnonzero(np.abs(yy - ext) <= 1.0)
            out[f"sat_{lim}_sum_xw"][j] = ss[near.min()]
            if g <= 0:
                ok = False
        out["success"][j] = ok
    return out


def noise_vs_level(mean, std, exclude=None, bin_lsb=NOISE_BIN_LSB):
    """Trial-to-trial noise binned by output level, over all columns.

    Parameters
    ----------
    mean, std : ndarray of shape (k, n_columns)
        Mean and std of repeated reads at each transfer level.
    exclude : ndarray of bool, shape (n_columns,), optional
        Columns left out (dead or noisy neurons).

    Returns
    -------
    dict of ndarray
        ``output_lsb`` (bin centres), ``noise_median_lsb``, ``noise_q10_lsb``,
        ``noise_q90_lsb``, ``n_points`` (only bins with points).
    """
    m, sd = mean, std
    if exclude is not None:
        m, sd = m[:, ~exclude], sd[:, ~exclude]
    m, sd = m.ravel(), sd.ravel()
    edges = np.arange(-130.0, 130.0 + bin_lsb, bin_lsb)
    which = np.digitize(m, edges) - 1
    rows = []
    for b in range(len(edges) - 1):
        v = sd[which == b]
        if v.size:
            q10, q50, q90 = np.percentile(v, [10, 50, 90])
            rows.append((0.5 * (edges[b] + edges[b + 1]), q50, q10, q90, v.size))
    cols = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return {"output_lsb": cols[:, 0], "noise_median_lsb": cols[:, 1], "noise_q10_lsb": cols[:, 2],
            "noise_q90_lsb": cols[:, 3], "n_points": cols[:, 4].astype(np.int64)}


def median_polish(g, valid, iterations=4):
    """Multiplicative decomposition g[i, j] ~ r[i] * c[j] over the valid entries.

    Parameters
    ----------
    g : ndarray of shape (rows, columns)
    valid : ndarray of bool, same shape
        Entries used for the medians (healthy drivers, neurons and synapses).

    Returns
    -------
    r : ndarray of shape (rows,)
        Row factors, median 1 over rows with valid entries.
    c : ndarray of shape (columns,)
        Column factors (carry the scale).
    """
    gm = np.where(valid, g, np.nan)
    r = np.ones(g.shape[0])
    c = np.ones(g.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(iterations):
            c = nanmedian(gm / r[:, None], axis=0)
            r = nanmedian(gm / c[None, :], axis=1)
            scale = nanmedian(r) if np.any(np.isfinite(r)) else 1.0
            r, c = r / scale, c * scale
    return r, c


def driver_curves(outputs, healthy):
    """Activation curves of the visited drivers from one-hot probe outputs.

    Parameters
    ----------
    outputs : ndarray of shape (32, rows, columns)
        Offset-subtracted mean result at each activation 0..31, normalised to
        weight 63 and to the median column (LSB).
    healthy : ndarray of bool, shape (rows, columns)
        Synapses whose response may enter the average.

    Returns
    -------
    dict of ndarray
        ``output_lsb`` and ``output_sem_lsb`` of shape (32, rows) (mean over
        healthy columns and its standard error).
    """
    w = healthy[None].astype(np.float64)
    n = w.sum(axis=2)
    vals = np.where(healthy[None], outputs, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = vals.sum(axis=2) / n
        var = (np.where(healthy[None], outputs - mean[..., None], 0.0) ** 2).sum(axis=2) / np.maximum(n - 1, 1)
        sem = np.sqrt(var / n)
    mean[:, n[0] == 0] = np.nan
    return {"output_lsb": mean, "output_sem_lsb": sem}


def driver_summary(pulse_steps, dead):
    """Slope, offset and linearity of each driver's effective activation.

    Parameters
    ----------
    pulse_steps : ndarray of shape (32, rows)
        Effective activation (nominal steps) at each code.
    dead : ndarray of bool, shape (rows,)

    Returns
    -------
    dict of ndarray of shape (rows,)
        ``slope`` (steps per code, fit over codes 8..31), ``offset_steps``
        (the fit's shift of the activation axis: pulse = slope * (x + offset)),
        ``excess_at_1_steps`` (pulse at code 1 minus the fit's value there),
        ``linearity_rms_steps`` (rms residual of the fit over codes 8..31).
    """
    x = np.arange(8, 32, dtype=np.float64)
    y = pulse_steps[8:32]
    xm = x.mean()
    ym = y.mean(axis=0)
    slope = ((x - xm) @ (y - ym)) / ((x - xm) @ (x - xm))
    icpt = ym - slope * xm
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.where(dead | (slope <= 0), np.nan, icpt / slope)
    resid = y - (icpt[None] + slope[None] * x[:, None])
    rms = np.sqrt(np.mean(resid ** 2, axis=0))
    excess = pulse_steps[1] - (icpt + slope)
    return {"slope": slope, "offset_steps": offset, "excess_at_1_steps": excess, "linearity_rms_steps": rms}
