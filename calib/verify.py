"""Is an artifact still valid for a chip? A quick check with a small fraction of the calibration's cost.

The artifact's knobs are applied; random dense probes and zero-input vectors
(a few hundred vectors per hemisphere) are run and compared with what the
correction model predicts. Two figures decide: the rms deviation of the
per-neuron gain ratio (measured / predicted) from 1 and the rms deviation of
the zero-input offsets from the table, each with what is not staleness
subtracted: the measurement noise, measured here per neuron (the zero-input
vectors' standard deviation, not a preset's constant), and the table's own
standard errors (``gain_*_std``, ``offset_std_lsb``). Above a threshold the
artifact has gone stale. The model compared with is the one the engine runs
(:class:`calib.model.CorrectionModel`).
"""
from dataclasses import dataclass

import numpy as np

from bss2_calib.chipsim import COLS, ROWS, W_MAX

from .errors import CalibValueError, IncompatibleArtifact
from .model import CorrectionModel
from .probes import Prober, flat


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`.

    Attributes
    ----------
    valid : bool
        True if the artifact still describes the chip.
    reason : str
        Why not (empty when valid).
    gain_deviation_rms : float
        rms of (measured / predicted gain - 1) over healthy neurons, noise removed.
    gain_threshold : float
    offset_deviation_rms_lsb : float
        rms of (measured - table offset), noise removed, LSB.
    offset_threshold_lsb : float
    global_gain_ratio : float
        Median measured / predicted gain.
    vectors : int
        Input vectors spent (both hemispheres in parallel count once).
    hw_time_s : float
    noise_rms_lsb : float
        rms over healthy neurons of the trial-to-trial noise measured here (LSB).
    """

    valid: bool
    reason: str
    gain_deviation_rms: float
    gain_threshold: float
    offset_deviation_rms_lsb: float
    offset_threshold_lsb: float
    global_gain_ratio: float
    vectors: int
    hw_time_s: float
    noise_rms_lsb: float = float("nan")

    def to_dict(self):
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _noise_free_rms(dev, sem):
    ok = np.isfinite(dev) & np.isfinite(sem)
    if not ok.any():
        return float("nan")
    return float(np.sqrt(max(np.mean(dev[ok] ** 2) - np.mean(sem[ok] ** 2), 0.0)))


def _table_sems(result):
    """Per-neuron standard errors the table states for its gains (relative, exc/inh averaged) and offsets (LSB)."""
    nc = result.tables["neuron_correction"] if "neuron_correction" in result.tables else None
    zero = np.zeros(2 * COLS)
    if nc is None:
        return zero, zero
    cols = [c for c in ("gain_exc_std", "gain_inh_std") if c in nc.columns]
    g = np.nan_to_num(np.sqrt(np.mean([nc[c].to_numpy(np.float64) ** 2 for c in cols], axis=0))) if cols else zero
    o = np.nan_to_num(nc["offset_std_lsb"].to_numpy(np.float64)) if "offset_std_lsb" in nc.columns else zero
    return g, o


def verify(result, chip, *, vectors=192, zero_vectors=64, gain_threshold=0.01, offset_threshold_lsb=0.5, seed=0):
    """Check whether ``result`` still describes ``chip`` (applies its knobs first).

    Parameters
    ----------
    result : CalibrationResult
    chip : ObservableChip
        A :class:`chipsim.Chip` or any backend with the observable interface.
    vectors : int, default=192
        Random dense probe vectors per hemisphere (16..8192).
    zero_vectors : int, default=64
        Zero-input vectors per hemisphere.
    gain_threshold : float, default=0.01
        Largest acceptable rms gain deviation (relative).
    offset_threshold_lsb : float, default=0.5
        Largest acceptable rms offset deviation, LSB.
    seed : int, default=0
        Seed of the probe patterns.

    Returns
    -------
    VerifyReport

    Raises
    ------
    IncompatibleArtifact
        Wrong chip id or preset (a different chip is not "stale", it is wrong).
    """
    from .link import Retrying
    from .pipeline import check_chip

    check_chip(chip)
    chip = Retrying(chip)  # transient link failures of a hardware backend are repeated
    if not hasattr(result, "apply_to") or not hasattr(result, "conditions"):
        raise CalibValueError(f"expected a CalibrationResult, got {type(result).__name__}")
    for name, v, lo, hi in (("vectors", vectors, 16, 8192), ("zero_vectors", zero_vectors, 16, 8192)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise CalibValueError(f"{name} must be an integer in {lo}..{hi}, got {v!r}")
    for name, v in (("gain_threshold", gain_threshold), ("offset_threshold_lsb", offset_threshold_lsb)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not 0 < v < np.inf:
            raise CalibValueError(f"{name} must be a positive finite number, got {v!r}")
    hw0, v0 = chip.hw_time_s, chip.counters["vectors"]
    try:
        result.apply_to(chip)
    except IncompatibleArtifact as err:
        if err.field.startswith("conditions."):
            return VerifyReport(False, str(err), float("nan"), gain_threshold, float("nan"), offset_threshold_lsb,
                                float("nan"), 0, 0.0)
        raise
    c = result.conditions
    n = int(c["num_sends_ref"])
    model = CorrectionModel.from_artifact(result)
    prober = Prober(chip, c["wait_between_events"])
    rng = np.random.default_rng(np.random.SeedSequence([0x7E21F, seed]))
    mag = rng.integers(1, W_MAX + 1, size=(2, ROWS, COLS))
    W = np.where(rng.random((2, ROWS, COLS)) < 0.5, mag, -mag)
    # input density such that the outputs spread ~30 LSB rms at num_sends_ref:
    # std = sqrt(128 rho E[x^2] E[w^2]) * gain * n with E[x^2] = 331, E[w^2] = 1344
    dens = float(np.clip((30.0 / (7547.0 * model.gain_target * n)) ** 2, 0.002, 0.6))
    X = np.where(rng.random((2, vectors, ROWS)) < dens, rng.integers(1, 32, size=(2, vectors, ROWS)), 0)
    prober.set_weights(W)
    y = prober.run(X, n).astype(np.float64)
    zmean, zsem, zstd = prober.offsets(zero_vectors, n)
    pred = np.stack([model.predict(X[h], W[h], h, n) for h in (0, 1)])  # (2, B, 256)
    off_t = np.stack([model.offset[:COLS], model.offset[COLS:]])[:, None, :]
    sig_p = pred - off_t
    sig_m = y - np.stack([zmean[:COLS], zmean[COLS:]])[:, None, :]
    ok = (np.abs(sig_p) < 60) & (np.abs(y) < 120)
    sxx = np.where(ok, sig_p * sig_p, 0).sum(axis=1)
    ratio = np.where(ok, sig_p * sig_m, 0).sum(axis=1) / np.maximum(sxx, 1e-9)
    sp = flat(np.where(ok, sig_p, 0).sum(axis=1))
    ratio, sxx = flat(ratio), flat(sxx)
    # what is not staleness: the measured noise of every neuron (a point's signal carries it, and the
    # zero-input mean it is referred to), and the table's own standard errors
    table_gain_sem, table_offset_sem = _table_sems(result)
    sxx_ = np.maximum(sxx, 1e-9)
    ratio_sem = np.sqrt(zstd ** 2 * (1 / sxx_ + sp ** 2 / (zero_vectors * sxx_ ** 2)) + table_gain_sem ** 2)
    offset_sem = np.sqrt(zsem ** 2 + table_offset_sem ** 2)
    f = model.faults
    healthy = model.neuron_fitted & ~f.neuron_noisy & ~f.neuron_dead & (sxx > 100)
    g_dev = _noise_free_rms(np.where(healthy, ratio - 1, np.nan), np.where(healthy, ratio_sem, np.nan))
    o_dev = _noise_free_rms(np.where(healthy, zmean - model.offset, np.nan), np.where(healthy, offset_sem, np.nan))
    reasons = []
    if not g_dev <= gain_threshold:
        reasons.append(f"gain deviation {100 * g_dev:.2f} % rms exceeds {100 * gain_threshold:.2f} %")
    if not o_dev <= offset_threshold_lsb:
        reasons.append(f"offset deviation {o_dev:.2f} LSB rms exceeds {offset_threshold_lsb:.2f} LSB")
    return VerifyReport(not reasons, "; ".join(reasons), g_dev, gain_threshold, o_dev, offset_threshold_lsb,
                        float(np.median(ratio[healthy])) if healthy.any() else float("nan"),
                        int(chip.counters["vectors"] - v0), float(chip.hw_time_s - hw0),
                        float(np.sqrt(np.mean(zstd[healthy] ** 2))) if healthy.any() else float("nan"))
