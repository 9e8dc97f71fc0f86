"""Offsets and noise of every neuron from zero-input runs.

A zero input sends no event, so the result is the neuron's offset plus noise.
The mean is ``offset_lsb``, the standard deviation ``noise_lsb``; a neuron whose
noise exceeds ``NOISY_FACTOR`` times the median is flagged noisy.
"""
from dataclasses import dataclass

import numpy as np

from bss2_calib.chipsim import N_NEURONS

from ..problem import Meter, TableStep

NOISY_FACTOR = 2.0  #: noise above this multiple of the median marks a noisy neuron


@dataclass(frozen=True, eq=False)
class ZeroOffsets:
    """Zero-input result of every neuron at ``num_sends_ref``.

    Attributes
    ----------
    offset, offset_std : ndarray of shape (512,)
        Mean and its standard error, LSB.
    noise : ndarray of shape (512,)
        Trial-to-trial standard deviation, LSB.
    noisy : ndarray of bool, shape (512,)
        Noise above ``NOISY_FACTOR`` times the median.
    """

    offset: np.ndarray
    offset_std: np.ndarray
    noise: np.ndarray
    noisy: np.ndarray


def run(session):
    meter = Meter(session.chip)
    vectors = session.options.tables.offset_vectors
    mean, sem, std = session.prober.offsets(vectors, session.options.conditions.num_sends_ref)
    med = float(np.median(std))
    noisy = std > NOISY_FACTOR * max(med, 0.05)
    session.offsets = ZeroOffsets(offset=mean, offset_std=sem, noise=std, noisy=noisy)
    return TableStep(
        name="offsets", algorithm=f"zero-input mean of {vectors} vectors", quantity="offset", unit="LSB",
        n_instances=N_NEURONS, failed=np.flatnonzero(noisy).tolist(), instance="neuron",
        spread_before=float(np.std(mean)), spread_after=float(np.median(sem)), cost=meter.read(),
        quality={"noise_median_lsb": med, "noisy_neurons": int(noisy.sum())})
