"""Probe patterns and measurements through the chip's observable interface only.

A :class:`Prober` runs input patterns on both hemispheres in parallel
(``chip.run(x, "both")``), programs weights only when they differ from what
the chip holds, and averages repeated vectors. Every function here returns
plain arrays indexed by global neuron (512) or driver (256) numbers
(see :mod:`chipsim.geometry`).
"""
import numpy as np

from bss2_calib.chipsim import COLS, ROWS

REF_FULL_SCALE_V = 1.2  #: reference DAC voltage at code 1022 (chip documentation), V
REF_MAX_CODE = 1022
MAX_CHUNK = 8192  #: vectors per chip.run call


def reference_code(volts):
    """Reference DAC code (0..1022) for a voltage in 0..1.2 V."""
    return int(np.clip(round(volts / REF_FULL_SCALE_V * REF_MAX_CODE), 0, REF_MAX_CODE))


class Prober:
    """Runs probe patterns on one chip.

    Parameters
    ----------
    chip : chipsim.Chip (or anything with the same observable interface)
    wait_between_events : int, default=5
        Event spacing of every run, clock cycles (1..255).
    """

    def __init__(self, chip, wait_between_events=5):
        self.chip = chip
        self.wait = int(wait_between_events)

    # ------------------------------------------------------------ weights
    def set_weights(self, w2):
        """Program both hemispheres, shape (2, 128, 256); skips unchanged hemispheres."""
        w2 = np.asarray(w2, dtype=np.int64)
        for h in (0, 1):
            if not np.array_equal(self.chip.get_weights(h), w2[h]):
                self.chip.set_weights(w2[h], h)

    def uniform_weights(self, value):
        """Program every synapse of both hemispheres to the signed weight ``value``."""
        self.set_weights(np.full((2, ROWS, COLS), int(value), dtype=np.int64))

    # --------------------------------------------------------------- runs
    def run(self, x2, num_sends=1):
        """Results of both hemispheres, int8 (2, batch, 256), for inputs (2, batch, 128)."""
        x2 = np.asarray(x2)
        out = np.empty((2, x2.shape[1], COLS), dtype=np.int8)
        for s in range(0, x2.shape[1], MAX_CHUNK):
            out[:, s:s + MAX_CHUNK] = self.chip.run(x2[:, s:s + MAX_CHUNK], "both", num_sends=int(num_sends),
                                                     wait_between_events=self.wait)
        return out

    def mean_response(self, x, repeats, num_sends=1):
        """Mean and standard error of the results of repeated patterns.

        Parameters
        ----------
        x : array-like of int, shape (batch, 128) or (2, batch, 128)
            Patterns (the same for both hemispheres when 2-d).
        repeats : int
        num_sends : int

        Returns
        -------
        mean, sem : ndarray of float64, shape (2, batch, 256)
        """
        x = np.asarray(x, dtype=np.int64)
        if x.ndim == 2:
            x = np.broadcast_to(x, (2,) + x.shape)
        b = x.shape[1]
        y = self.run(np.tile(x, (1, repeats, 1)), num_sends).reshape(2, repeats, b, COLS).astype(np.float32)
        mean = y.mean(axis=1, dtype=np.float64)
        if repeats > 1:
            sem = y.std(axis=1, ddof=1, dtype=np.float64) / np.sqrt(repeats)
        else:
            sem = np.full(mean.shape, np.nan)
        return mean, sem

    def offsets(self, vectors, num_sends=1):
        """Mean, standard error and std of the zero-input result of every neuron, each (512,)."""
        y = self.run(np.zeros((2, vectors, ROWS), dtype=np.int64), num_sends).astype(np.float32)
        y = np.concatenate([y[0], y[1]], axis=1)  # (vectors, 512)
        std = y.std(axis=0, ddof=1, dtype=np.float64)
        return y.mean(axis=0, dtype=np.float64), std / np.sqrt(vectors), std

    # --------------------------------------------------------------- CADC
    def cadc_reference(self, code, reads):
        """Mean and standard error of the raw reads of all 512 channels at a reference code."""
        r = self.chip.read_cadc_reference(int(code), n=int(reads)).astype(np.float64)
        return r.mean(axis=0), _sem(r)

    def baseline(self, reads):
        """Mean and standard error of the raw baseline reads of all 512 channels."""
        r = self.chip.read_baseline(None, n=int(reads)).astype(np.float64)
        return r.mean(axis=0), _sem(r)


def _sem(r):
    if r.shape[0] < 2:
        return np.full(r.shape[1], np.nan)
    return r.std(axis=0, ddof=1) / np.sqrt(r.shape[0])


def flat(a2):
    """(2, ..., 256) per-hemisphere array -> (..., 512) by global neuron index."""
    return np.concatenate([a2[0], a2[1]], axis=-1)


def interleaved_gain(prober, weight, *, groups, repeats, num_sends, offsets, activation=31,
                     linear_range_lsb=72.0, live_drivers=None):
    """Gain of every neuron over all (live) rows at one signed weight, measured in interleaved patterns.

    Pattern ``g`` drives rows ``g, g + groups, ...`` (of the hemisphere's live
    rows) with ``activation`` through ``weight`` (every synapse programmed to
    it), so each pattern stays in the linear range while every row enters
    once: the sum of the patterns' responses is the column's response to all
    its rows. Stuck-at-max synapses pass the weight-63 current whatever is
    programmed; at ``weight`` +-63 they do not bias the result (at a small
    weight one of them would add ~12x its share to its column).

    Parameters
    ----------
    prober : Prober
    weight : int
        Signed weight of every synapse, -63..63 (not 0).
    groups : int
        Number of interleaved patterns (1..128).
    repeats : int
        Vectors averaged per pattern (>= 2).
    num_sends : int
    offsets : ndarray of shape (512,)
        Zero-input result of every neuron at ``num_sends`` (subtracted per pattern).
    activation : int, default=31
    linear_range_lsb : float, default=72.0
        A neuron whose response to any pattern lies further from its offset is
        marked not valid (saturating).
    live_drivers : array-like of bool, shape (256,), or None, default=None
        Drivers to use (dead drivers pass nothing and would lower the gain by
        their share); None: all.

    Returns
    -------
    gain, sem : ndarray of float, shape (512,)
        Gain (LSB per unit of x*w per send: positive for a healthy column of
        either sign) and its standard error.
    valid : ndarray of bool, shape (512,)
    """
    live = np.ones(2 * ROWS, dtype=bool) if live_drivers is None else np.asarray(live_drivers, dtype=bool)
    x = np.zeros((2, groups, ROWS), dtype=np.int64)
    n_rows = np.zeros(2)
    for h in (0, 1):
        rows = np.flatnonzero(live[h * ROWS:(h + 1) * ROWS])
        n_rows[h] = rows.size
        for g in range(groups):
            x[h, g, rows[g::groups]] = activation
    prober.uniform_weights(weight)
    mean, sem = prober.mean_response(x, repeats, num_sends)  # (2, groups, 256)
    d = flat(mean) - offsets  # (groups, 512)
    units = np.repeat(n_rows, COLS) * float(activation * abs(weight) * num_sends)
    valid = np.all(np.abs(d) <= linear_range_lsb, axis=0) & (units > 0)
    err = np.sqrt((flat(sem) ** 2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return d.sum(axis=0) / units * np.sign(weight), err / units, valid


def group_median(values, groups, n_groups):
    """Median (NaN-aware) and its standard error of ``values`` per group id, each (n_groups,)."""
    med = np.full(n_groups, np.nan)
    err = np.full(n_groups, np.nan)
    for g in range(n_groups):
        v = values[(groups == g) & np.isfinite(values)]
        if v.size:
            med[g] = np.median(v)
            err[g] = 1.2533 * np.std(v) / np.sqrt(v.size) if v.size > 1 else np.nan
    return med, err


def nanmedian(a, axis=None):
    """Median over the non-NaN values; NaN for a slice with none (explicitly, no warning).

    Parameters
    ----------
    a : array-like
    axis : int or None, default=None
        None: the median of all values (a float).

    Returns
    -------
    float or ndarray of float64
        ``a``'s shape without ``axis``.
    """
    a = np.asarray(a, dtype=np.float64)
    if axis is None:
        v = a[~np.isnan(a)]
        return float(np.median(v)) if v.size else float("nan")
    a = np.moveaxis(a, axis, -1)
    has = ~np.isnan(a).all(axis=-1)  # slices with at least one value; all-NaN slices stay NaN
    out = np.full(a.shape[:-1], np.nan)
    if has.any():
        out[has] = np.nanmedian(a[has], axis=-1)
    return out


def nanmean(a, axis=None):
    """Mean over the non-NaN values; NaN for a slice with none (explicitly, no warning).

    Parameters
    ----------
    a : array-like
    axis : int or None, default=None
        None: the mean of all values (a float).

    Returns
    -------
    float or ndarray of float64
    """
    a = np.asarray(a, dtype=np.float64)
    ok = ~np.isnan(a)
    cnt = ok.sum(axis=axis)
    total = np.where(ok, a, 0.0).sum(axis=axis)
    out = np.divide(total, cnt, out=np.full(np.shape(total), np.nan), where=cnt > 0)
    return float(out) if axis is None else out
