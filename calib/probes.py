"""Probe patterns and measurements through the chip's observable interface only.

A :class:`Prober` runs input patterns on both hemispheres in parallel
(``chip.run(x, "both")``), programs weights only when they differ from what
the chip holds, and averages repeated vectors. Every function here returns
plain arrays indexed by global neuron (512) or driver (256) numbers
(see :mod:`chipsim.geometry`).
"""
import warnings

import numpy as np

from chipsim import COLS, ROWS

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


def spread_rows(step, offset=0):
    """Rows ``offset, offset + step, ...`` below 128: a pattern spread over both driver quadrants."""
    return np.arange(offset, ROWS, step)


def dense_gain(prober, rows, weight, *, repeats, num_sends, offsets, activation=31):
    """Gain of every neuron (LSB per unit of x*w per send) from a dense pattern.

    ``rows`` are driven with ``activation`` through the signed ``weight`` (all
    synapses programmed to it); the neuron's zero-input ``offsets`` are
    subtracted.

    Returns
    -------
    gain, sem : ndarray of float, shape (512,)
        Signed gain (negative for inhibitory weights) and its standard error.
    """
    prober.uniform_weights(weight)
    x = np.zeros((1, ROWS), dtype=np.int64)
    x[0, rows] = activation
    mean, sem = prober.mean_response(x, repeats, num_sends)
    units = float(len(rows) * activation * abs(weight) * num_sends)
    return (flat(mean[:, 0]) - offsets) / units * np.sign(weight), flat(sem[:, 0]) / units


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
    """``np.nanmedian`` that returns NaN for all-NaN slices without a warning."""
    a = np.asarray(a, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


def nanmean(a, axis=None):
    """``np.nanmean`` that returns NaN for all-NaN slices without a warning."""
    a = np.asarray(a, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)




