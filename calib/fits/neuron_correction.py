"""Per-neuron gains and offsets: a robust scipy least-squares fit to random dense probes.

Random signed weight matrices (two per hemisphere, one mostly excitatory, one
mostly inhibitory, so the two input gains separate) and random sparse-to-dense
inputs are run; for column j and vector k the correction model predicts

    y[j, k] = offset[j] + gain_exc[j] E[j, k] - gain_inh[j] I[j, k]

with ``E``/``I`` built from the driver transfer, the weight transfer and the
relative synapse gains (``n * gain_target * sum_i T[d_i, x_i] D(w) s``). All
512 neurons are fitted in one ``scipy.optimize.least_squares`` call (sparse,
block-diagonal Jacobian, robust loss, residuals in units of each neuron's
noise); the zero-input offsets and the one-hot column gains of the synapse
stage enter as priors. Points whose measured or
predicted amplitude leaves the linear range are excluded. One vector in five is
held out to measure the model's residual. A neuron whose fitted excitatory or
inhibitory gain stays below :data:`calib.tables.WEAK_GAIN` of the target (its
input-gain knob at the end of its range) is *weak* and fails.
"""
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import least_squares

from bss2_calib.chipsim import COLS, N_NEURONS, ROWS, W_MAX

from ..errors import FitDidNotConverge
from ..problem import Meter, TableStep
from ..probes import nanmean
from ..schema import frame_table
from ..tables import weak_neurons

HOLD_OUT = 5  #: every HOLD_OUT-th vector is held out for validation
MIN_POINTS = 24  #: fewer fitted points mark the neuron failed
GAIN_PRIOR_REL = 0.002  #: relative uncertainty given to the one-hot column gains as a prior


def effective_weight(w, table, stuck_max_exc=None, stuck_max_inh=None):
    """Excitatory and inhibitory effective weights, shape (2, ...) from signed weights ``w``.

    ``table`` holds ``D(|w|)`` for |w| = 0..63; stuck-at-max synapses pass the
    full-weight current whatever is programmed.
    """
    w = np.asarray(w, dtype=np.int64)
    exc = table[np.clip(w, 0, W_MAX)]
    inh = table[np.clip(-w, 0, W_MAX)]
    if stuck_max_exc is not None:
        exc = np.where(stuck_max_exc, float(table[W_MAX]), exc)
        inh = np.where(stuck_max_inh, float(table[W_MAX]), inh)
    return np.stack([exc, inh])


def _probes(rng, n_vectors):
    """Random weights (2 matrices per hemisphere) and inputs; returns W (2, 2, 128, 256), X (2, 2, B, 128)."""
    W = np.empty((2, 2, ROWS, COLS), dtype=np.int64)
    for h in (0, 1):
        for m, p_pos in enumerate((0.65, 0.35)):
            mag = rng.integers(1, W_MAX + 1, size=(ROWS, COLS))
            W[h, m] = np.where(rng.random((ROWS, COLS)) < p_pos, mag, -mag)
    b = n_vectors // 2
    dens = rng.uniform(0.04, 0.6, size=(2, 2, b, 1))
    X = np.where(rng.random((2, 2, b, ROWS)) < dens, rng.integers(1, 32, size=(2, 2, b, ROWS)), 0)
    return W, X


@dataclass(frozen=True, eq=False)
class NeuronFit:
    """Fitted per-neuron offset, gains and their standard errors (512,), fitted points, success and weak flags, held-out residual rms."""

    offset: np.ndarray
    gain_exc: np.ndarray
    gain_inh: np.ndarray
    offset_std: np.ndarray
    gain_exc_std: np.ndarray
    gain_inh_std: np.ndarray
    points: np.ndarray
    success: np.ndarray
    weak: np.ndarray
    residual_rms: np.ndarray


def run(session):
    meter = Meter(session.chip)
    t = session.options.tables
    gt = session.target.gain_lsb_per_unit
    n = t.neuron_fit_num_sends
    n_ref = session.options.conditions.num_sends_ref
    kappa = session.kappa
    syn, off, tr = session.synapses, session.offsets, session.transfer
    table = np.arange(W_MAX + 1, dtype=np.float64) if session.weights is None else session.weights.effective_weight
    T = np.nan_to_num(tr.pulse_steps)  # (256, 32)
    s_exc, s_inh = np.nan_to_num(syn.s_exc), np.nan_to_num(syn.s_inh)
    scale = n * gt * (1 - kappa * (n - 1)) / (1 - kappa * (n_ref - 1))
    W, X = _probes(session.rng, t.neuron_fit_vectors)
    b = X.shape[2]
    E = np.empty((2, 2, b, COLS))
    I = np.empty((2, 2, b, COLS))
    Y = np.empty((2, 2, b, COLS))
    for m in range(2):
        session.prober.set_weights(W[:, m])
        Y[:, m] = session.prober.run(X[:, m], n)
        for h in (0, 1):
            eff = effective_weight(W[h, m], table, syn.stuck_max_exc[h], syn.stuck_max_inh[h])
            tx = T[h * ROWS + np.arange(ROWS), X[h, m]]  # (b, 128)
            E[h, m] = scale * tx @ (eff[0] * s_exc[h])
            I[h, m] = scale * tx @ (eff[1] * s_inh[h])
    # to (neuron, vector) layout
    E = np.concatenate([E[0], E[1]], axis=-1).reshape(2 * b, N_NEURONS).T
    I = np.concatenate([I[0], I[1]], axis=-1).reshape(2 * b, N_NEURONS).T
    Y = np.concatenate([Y[0], Y[1]], axis=-1).reshape(2 * b, N_NEURONS).T
    g0e, g0i = np.nan_to_num(syn.gain_exc, nan=1.0), np.nan_to_num(syn.gain_inh, nan=1.0)
    o0 = off.offset
    pred0 = o0[:, None] + g0e[:, None] * E - g0i[:, None] * I
    lr = t.linear_range_lsb
    usable = (np.abs(Y - o0[:, None]) <= lr) & (np.abs(pred0 - o0[:, None]) <= lr) & (np.abs(Y) < 127)
    held = np.zeros(2 * b, dtype=bool)
    held[::HOLD_OUT] = True
    fit_mask = usable & ~held[None, :]
    sigma = np.maximum(off.noise, 0.3)
    rows_n, rows_k = np.nonzero(fit_mask)
    m_pts = rows_n.size
    # residual r = (A p - y) / sigma ; p = [offset (512), gain_exc (512), gain_inh (512)]
    w = 1.0 / sigma[rows_n]
    A = sp.csr_matrix((np.concatenate([w, w * E[rows_n, rows_k], -w * I[rows_n, rows_k]]),
                       (np.tile(np.arange(m_pts), 3),
                        np.concatenate([rows_n, rows_n + N_NEURONS, rows_n + 2 * N_NEURONS]))),
                      shape=(m_pts, 3 * N_NEURONS))
    # priors: the zero-input offsets, and the one-hot column gains (``GAIN_PRIOR_REL`` each)
    prior_w = 1.0 / np.maximum(off.offset_std, 1e-3)
    pe, pi = 1.0 / (GAIN_PRIOR_REL * g0e), 1.0 / (GAIN_PRIOR_REL * g0i)
    Ap = sp.csr_matrix((np.concatenate([prior_w, pe, pi]), (np.arange(3 * N_NEURONS), np.arange(3 * N_NEURONS))),
                       shape=(3 * N_NEURONS, 3 * N_NEURONS))
    A = sp.vstack([A, Ap]).tocsr()
    rhs = np.concatenate([w * Y[rows_n, rows_k], prior_w * o0, pe * g0e, pi * g0i])
    p0 = np.concatenate([o0, g0e, g0i])
    try:
        res = least_squares(lambda p: A @ p - rhs, p0, jac=lambda p: A, loss=t.loss, f_scale=2.0,
                            method="trf", tr_solver="lsmr", x_scale="jac", max_nfev=50)
    except (ValueError, np.linalg.LinAlgError) as err:
        raise FitDidNotConverge(f"neuron_fit: scipy least_squares failed: {err}") from err
    if res.status <= 0 or not np.all(np.isfinite(res.x)):
        raise FitDidNotConverge(f"neuron_fit: scipy least_squares did not converge: {res.message}")
    offset, gain_exc, gain_inh = res.x[:N_NEURONS], res.x[N_NEURONS:2 * N_NEURONS], res.x[2 * N_NEURONS:]
    # parameter uncertainty per neuron from its 3x3 normal equations (noise-scaled residuals)
    cols = [np.ones_like(E), E, -I]
    fm = fit_mask / sigma[:, None] ** 2
    N = np.empty((N_NEURONS, 3, 3))
    for i in range(3):
        for j in range(3):
            N[:, i, j] = (fm * cols[i] * cols[j]).sum(axis=1)
    N[:, 0, 0] += prior_w ** 2
    N[:, 1, 1] += pe ** 2
    N[:, 2, 2] += pi ** 2
    with np.errstate(invalid="ignore"):
        cov = np.linalg.pinv(N)
    pstd = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0))
    # validation on held-out vectors
    pred = offset[:, None] + gain_exc[:, None] * E - gain_inh[:, None] * I
    vmask = usable & held[None, :]
    resid = np.where(vmask, Y - pred, np.nan)
    rms_col = np.sqrt(nanmean(resid ** 2, axis=1))
    points = fit_mask.sum(axis=1)
    dead, noisy = syn.dead_neuron, off.noisy
    weak = weak_neurons(gain_exc, gain_inh, dead)
    success = (np.isfinite(res.x).reshape(3, -1).all(0) & (points >= MIN_POINTS) & ~dead & ~noisy & ~weak
               & (gain_exc < 3) & (gain_inh < 3))
    session.neuron_fit = NeuronFit(
        offset=offset, gain_exc=gain_exc, gain_inh=gain_inh, offset_std=pstd[:, 0], gain_exc_std=pstd[:, 1],
        gain_inh_std=pstd[:, 2], points=points, success=success, weak=weak, residual_rms=rms_col)
    noise_ms = float(nanmean(np.where(success, off.noise, np.nan) ** 2))
    rms = float(np.sqrt(nanmean(np.where(success[:, None], resid, np.nan) ** 2)))
    quality = {"heldout_residual_rms_lsb": rms, "noise_rms_lsb": float(np.sqrt(noise_ms)),
               "model_excess_rms_lsb": float(np.sqrt(max(rms ** 2 - noise_ms, 0.0))),
               "points_median": int(np.median(points)), "cost_function": float(res.cost),
               "nfev": int(res.nfev), "weak_neurons": np.flatnonzero(weak).tolist(),
               "gain_exc_std_median": float(np.median(pstd[success, 1])) if success.any() else None,
               "gain_vs_one_hot_rms": float(np.sqrt(nanmean(((gain_exc / g0e - 1)[success]) ** 2)))
               if success.any() else None}
    gains = np.concatenate([gain_exc[success], gain_inh[success]])
    return TableStep(
        name="neuron_fit", algorithm=f"scipy least_squares ({t.loss}, sparse trf/lsmr)", quantity="neuron gain",
        unit="relative", n_instances=N_NEURONS, failed=np.flatnonzero(~success).tolist(), instance="neuron",
        spread_before=float(np.std(gains)) if gains.size else float("nan"),
        spread_after=quality["gain_exc_std_median"] or float("nan"), cost=meter.read(), quality=quality)


def to_frame(session):
    """The ``neuron_correction`` table: this stage's fit, or without it the offsets and one-hot column gains.

    Needs the ``offsets`` and ``synapses`` results (their dead and noisy masks); when this stage did not run,
    the gains are the one-hot column gains of ``synapses`` (no standard errors) and the offsets the zero-input
    ones.
    """
    syn, off, nf = session.synapses, session.offsets, session.neuron_fit
    if syn is None or off is None:
        return {}
    dead, noisy = syn.dead_neuron, off.noisy
    if nf is not None:
        ge, gi, o = nf.gain_exc, nf.gain_inh, nf.offset
        ges, gis, os_ = nf.gain_exc_std, nf.gain_inh_std, nf.offset_std
        ok = nf.success
    else:
        ge, gi, o = syn.gain_exc, syn.gain_inh, off.offset
        ges = gis = np.full(N_NEURONS, np.nan)
        os_ = off.offset_std
        ok = np.isfinite(ge) & np.isfinite(gi)
    weak = weak_neurons(ge, gi, dead)
    return {"neuron_correction": frame_table("neuron_correction", {
        "gain_exc": ge, "gain_exc_std": ges, "gain_inh": gi, "gain_inh_std": gis, "offset_lsb": o,
        "offset_std_lsb": os_, "noise_lsb": off.noise, "dead": dead, "noisy": noisy, "weak": weak,
        "success": ok & ~dead & ~noisy & ~weak})}
