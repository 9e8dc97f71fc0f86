"""Weighted isotonic (non-decreasing) regression by pool-adjacent-violators."""
import numpy as np


def isotonic(y, w=None):
    """Least-squares non-decreasing fit to ``y`` with weights ``w``.

    Parameters
    ----------
    y : array-like of float, shape (n,)
        NaN entries get zero weight and take the value of their block.
    w : array-like of float, shape (n,) or None, default=None
        Positive weights (None: all 1).

    Returns
    -------
    ndarray of float, shape (n,)

    Examples
    --------
    >>> isotonic([1.0, 3.0, 2.0, 4.0]).tolist()
    [1.0, 2.5, 2.5, 4.0]
    """
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64).copy()
    bad = ~np.isfinite(y) | ~np.isfinite(w) | (w <= 0)
    w = np.where(bad, 1e-12, w)
    y = np.where(bad, 0.0, y)
    vals, wts, sizes = [], [], []
    for yi, wi in zip(y, w):
        vals.append(yi)
        wts.append(wi)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            vals[-2:] = [v]
            wts[-2:] = [wsum]
            sizes[-2:] = [sizes[-2] + sizes[-1]]
    return np.repeat(vals, sizes)
