"""Per-synapse gains from one-hot driver probes; driver and neuron factors by median polish.

Probe design: every synapse of a hemisphere is programmed to +63 (then -63,
then 0); one-hot vectors drive one driver at activation 31, so a single vector
reads that driver's 256 synapses at once on all columns, and both hemispheres
run in parallel. Each driver is sent ``synapse_repeats`` times at every
num_sends in ``synapse_num_sends`` (the spread of num_sends dithers the int8
rounding). Per synapse, the response per send ``a`` is a least-squares slope of
``y - offset`` against num_sends, saturated points excluded, with its
standard error.

The zero-weight run exposes stuck-at-max synapses (they pass current whatever
is programmed) and removes their contribution from the signed runs; stuck-at-
zero synapses pass (almost) nothing, judged against the response their row and
column lead one to expect (so a weak column or driver is not mistaken for a
column or row of stuck synapses). Then, per hemisphere,
``log a[i, j] = row[i] + column[j] + residual`` (median polish over
excitatory and inhibitory columns jointly, faulty elements excluded) gives the
driver factor ``T31`` (activation 31 in nominal steps, median 31 per hemisphere), the neuron
column factors and the relative synapse gains ``s`` (median 1 per column).
"""
from dataclasses import dataclass

import numpy as np

from bss2_calib.chipsim import COLS, N_DRIVERS, N_NEURONS, ROWS

from ..problem import Meter, TableStep
from ..probes import nanmedian
from ..schema import frame_table

STUCK_FRACTION = 0.3  #: a synapse below this fraction of its expected response is stuck at zero
DEAD_FRACTION = 0.2  #: a driver or neuron below this fraction of the median response is dead


def _one_hot_slopes(prober, weight, num_sends, repeats, offsets, linear_range):
    """Per-synapse response per send at activation 31, LS over num_sends; (a, std), each (2, 128, 256)."""
    eye = np.eye(ROWS, dtype=np.int64) * 31
    prober.uniform_weights(weight)
    off = np.stack([offsets[:COLS], offsets[COLS:]])[:, None, None, :]  # (2, 1, 1, 256)
    s_ny = np.zeros((2, ROWS, COLS))
    s_nn = np.zeros((2, ROWS, COLS))
    s_yy = np.zeros((2, ROWS, COLS))
    cnt = np.zeros((2, ROWS, COLS))
    for n in num_sends:
        y = prober.run(np.tile(eye, (2, repeats, 1)), n).reshape(2, repeats, ROWS, COLS)
        d = y.astype(np.float64) - off
        ok = (np.abs(d) <= linear_range) & (y > -127) & (y < 127)
        s_ny += np.where(ok, d, 0).sum(axis=1) * n
        s_yy += np.where(ok, d * d, 0).sum(axis=1)
        c = ok.sum(axis=1)
        s_nn += c * n * n
        cnt += c
    with np.errstate(divide="ignore", invalid="ignore"):
        a = s_ny / s_nn
        rss = np.maximum(s_yy - a * s_ny, 0)
        var = rss / np.maximum(cnt - 1, 1)
        std = np.sqrt(var / s_nn)
    a[cnt < 2] = np.nan
    return a, std


def median_polish(log_a, iterations=6):
    """Two-way median polish of (rows, cols) with NaN for excluded cells; returns (row, col, residual).

    Rows and columns without any cell (a dead driver, a dead neuron: every cell
    excluded) are left out of the medians explicitly; their factor stays 0 and
    their residuals NaN.
    """
    res = np.array(log_a, dtype=np.float64)
    cells = ~np.isnan(res)
    live_r, live_c = cells.any(axis=1), cells.any(axis=0)
    row = np.zeros(res.shape[0])
    col = np.zeros(res.shape[1])
    for _ in range(iterations):
        r = np.zeros(res.shape[0])
        r[live_r] = nanmedian(res[live_r], axis=1)
        row += r
        res -= r[:, None]
        c = np.zeros(res.shape[1])
        c[live_c] = nanmedian(res[:, live_c], axis=0)
        col += c
        res -= c[None, :]
    return row, col, res


def n_effective(num_sends):
    """Effective num_sends of a least-squares slope through the origin over ``num_sends``."""
    n = np.asarray(num_sends, dtype=np.float64)
    return float((n ** 3).sum() / (n ** 2).sum())


@dataclass(frozen=True, eq=False)
class SynapseFit:
    """What the one-hot synapse probes found (arrays per hemisphere, row and column unless noted).

    ``a_exc``/``a_inh`` the measured response per send (LSB) at activation 31 and weight +-63;
    ``T31`` (256,) driver amplitudes; ``gain_exc``/``gain_inh`` (512,) neuron gains relative to the target;
    ``s_*`` relative synapse gains (median 1 per column) and ``s_*_std`` their standard errors; the stuck
    masks; ``zero_weight_response`` the weight-0 response; ``dead_driver`` (256,), ``dead_neuron`` (512,);
    ``num_sends`` the probes' num_sends.
    """

    a_exc: np.ndarray
    a_inh: np.ndarray
    T31: np.ndarray
    gain_exc: np.ndarray
    gain_inh: np.ndarray
    s_exc: np.ndarray
    s_inh: np.ndarray
    s_exc_std: np.ndarray
    s_inh_std: np.ndarray
    stuck_zero_exc: np.ndarray
    stuck_zero_inh: np.ndarray
    stuck_max_exc: np.ndarray
    stuck_max_inh: np.ndarray
    zero_weight_response: np.ndarray
    dead_driver: np.ndarray
    dead_neuron: np.ndarray
    num_sends: list


def run(session):
    meter = Meter(session.chip)
    t = session.options.tables
    gt = session.target.gain_lsb_per_unit
    kappa = session.kappa
    n_ref = session.options.conditions.num_sends_ref
    off = session.offsets
    ns = list(range(t.synapse_num_sends[0], t.synapse_num_sends[1] + 1))
    lr = t.linear_range_lsb
    p = session.prober

    a_pos, std_pos = _one_hot_slopes(p, 63, ns, t.synapse_repeats, off.offset, lr)
    a_neg, std_neg = _one_hot_slopes(p, -63, ns, t.synapse_repeats, off.offset, lr)
    # zero weights: a stuck-at-max synapse still answers; half the smallest num_sends keeps even a
    # high-gain column's full-weight response well inside the linear range
    n_z, r_z = max(1, ns[0] // 2), 4
    z, _ = _one_hot_slopes(p, 0, [n_z], r_z, off.offset, lr)
    z = np.where(np.isfinite(z), z, 0.0)

    # stuck-at-max: a response with weight 0; remove the other row's stuck current from each sign
    scale = nanmedian(np.abs(np.concatenate([a_pos.ravel(), a_neg.ravel()])))
    # half a typical full-weight response, and at least 6 standard errors of the column's noise
    z_sem = np.stack([off.noise[:COLS], off.noise[COLS:]])[:, None, :] / (n_z * np.sqrt(r_z))
    thr = np.maximum(0.5 * scale, 6 * z_sem)
    stuck_max_exc = z > thr
    stuck_max_inh = z < -thr
    a_exc = a_pos - np.minimum(z, 0) * (np.abs(z) > thr)
    a_inh = -(a_neg - np.maximum(z, 0) * (np.abs(z) > thr))
    # per-send gain at num_sends_ref (global decay kappa from the linearity stage)
    corr = (1 - kappa * (n_ref - 1)) / (1 - kappa * (n_effective(ns) - 1))
    a_exc, a_inh, std_exc, std_inh = a_exc * corr, a_inh * corr, std_pos * corr, std_neg * corr

    # dead drivers and neurons: the median response of the row / column is (almost) nothing
    both = np.concatenate([a_exc, a_inh], axis=2)  # (2, 128, 512): exc columns then inh columns
    row_med = nanmedian(both, axis=2)  # (2, 128)
    col_med = nanmedian(both, axis=1)  # (2, 512)
    dead_driver = (~(row_med > DEAD_FRACTION * scale)).reshape(N_DRIVERS)
    dead_neuron = np.concatenate([~(col_med[h, :COLS] > DEAD_FRACTION * scale) &
                                  ~(col_med[h, COLS:] > DEAD_FRACTION * scale) for h in (0, 1)])
    T31 = np.full(N_DRIVERS, np.nan)
    K_exc = np.full(N_NEURONS, np.nan)
    K_inh = np.full(N_NEURONS, np.nan)
    s_exc = np.full((2, ROWS, COLS), np.nan)
    s_inh = np.full((2, ROWS, COLS), np.nan)
    stuck_zero_exc = np.zeros((2, ROWS, COLS), dtype=bool)
    stuck_zero_inh = np.zeros((2, ROWS, COLS), dtype=bool)
    row_f = np.full(N_DRIVERS, np.nan)
    for h in (0, 1):
        dd = dead_driver[h * ROWS:(h + 1) * ROWS]
        dn = dead_neuron[h * COLS:(h + 1) * COLS]
        valid = np.ones((ROWS, 2 * COLS), dtype=bool)
        valid[dd] = False
        valid[:, np.concatenate([dn, dn])] = False
        sm = np.concatenate([stuck_max_exc[h], stuck_max_inh[h]], axis=1)
        # a first guess of every cell's response from its row's and its column's medians, so that a weak
        # column (an input gain knob at its range limit) or a weak driver is polished with its own level
        # instead of having every synapse excluded and then mislabelled stuck at zero
        ref = nanmedian(np.where(valid, both[h], np.nan)) if valid.any() else scale
        with np.errstate(divide="ignore", invalid="ignore"):
            guess = row_med[h][:, None] * col_med[h][None, :] / ref
            la = np.where(valid & ~sm & (both[h] > STUCK_FRACTION * guess), np.log(both[h]), np.nan)
        row, col, _ = median_polish(la)
        expected = np.exp(row[:, None] + col[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = both[h] / expected
        sz = valid & ~sm & ~(rel > STUCK_FRACTION)
        stuck_zero_exc[h], stuck_zero_inh[h] = sz[:, :COLS], sz[:, COLS:]
        row_f[h * ROWS:(h + 1) * ROWS] = np.where(dd, np.nan, np.exp(row))
        colv = np.where(np.concatenate([dn, dn]), np.nan, np.exp(col))
        K_exc[h * COLS:(h + 1) * COLS], K_inh[h * COLS:(h + 1) * COLS] = colv[:COLS], colv[COLS:]
        s_exc[h], s_inh[h] = rel[:, :COLS], rel[:, COLS:]
    # gauge (per hemisphere: only products are observable): the median T31 of the live
    # drivers is 31 nominal steps; the neuron columns absorb the rest
    g = np.repeat([nanmedian(row_f[h * ROWS:(h + 1) * ROWS]) / 31.0 for h in (0, 1)], COLS)  # per neuron
    T31 = row_f / np.repeat(g[::COLS], ROWS)
    for s_, K_ in ((s_exc, K_exc), (s_inh, K_inh)):
        good = ~np.isnan(s_)
        for h in (0, 1):
            m = nanmedian(np.where(good[h] & (s_[h] > STUCK_FRACTION), s_[h], np.nan), axis=0)  # per column
            m = np.where(np.isfinite(m), m, 1.0)
            s_[h] /= m[None, :]
            K_[h * COLS:(h + 1) * COLS] *= m
    # neuron gain relative to the target: a = gt * 63 * T31 * gain * s
    gain_exc = K_exc * g / (63 * gt)
    gain_inh = K_inh * g / (63 * gt)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_exc_std = np.abs(s_exc) * std_exc / np.abs(a_exc)
        s_inh_std = np.abs(s_inh) * std_inh / np.abs(a_inh)
    session.synapses = SynapseFit(
        a_exc=a_exc, a_inh=a_inh, T31=T31, gain_exc=gain_exc, gain_inh=gain_inh, s_exc=s_exc, s_inh=s_inh,
        s_exc_std=s_exc_std, s_inh_std=s_inh_std, stuck_zero_exc=stuck_zero_exc, stuck_zero_inh=stuck_zero_inh,
        stuck_max_exc=stuck_max_exc, stuck_max_inh=stuck_max_inh, zero_weight_response=z,
        dead_driver=dead_driver, dead_neuron=dead_neuron, num_sends=ns)
    faulty = (stuck_zero_exc | stuck_zero_inh | stuck_max_exc | stuck_max_inh)
    vals = np.concatenate([s_exc[np.isfinite(s_exc) & ~faulty], s_inh[np.isfinite(s_inh) & ~faulty]])
    unc = np.concatenate([s_exc_std[np.isfinite(s_exc_std)], s_inh_std[np.isfinite(s_inh_std)]])
    failed = np.flatnonzero(faulty.reshape(-1)).tolist()
    quality = {
        "stuck_zero_synapses": int((stuck_zero_exc | stuck_zero_inh).sum()),
        "stuck_max_synapses": int((stuck_max_exc | stuck_max_inh).sum()),
        "dead_drivers": np.flatnonzero(dead_driver).tolist(), "dead_neurons": np.flatnonzero(dead_neuron).tolist(),
        "synapse_gain_uncertainty_median": float(np.median(unc)) if unc.size else None,
        "num_sends": ns, "repeats": t.synapse_repeats,
    }
    return TableStep(
        name="synapses", algorithm="one-hot LS slope over num_sends + median polish", quantity="synapse gain",
        unit="relative", n_instances=int(2 * ROWS * COLS), failed=failed,
        instance="synapse pair, flat index 32768 h + 256 row + column",
        spread_before=float(np.std(vals)) if vals.size else float("nan"), spread_after=quality["synapse_gain_uncertainty_median"] or float("nan"), cost=meter.read(),
        quality=quality)


def to_frame(session):
    """The ``synapse_gain`` table (relative synapse gains and stuck masks), given the offsets and this stage's fit.

    A synapse succeeds when its gains are finite, it is not stuck, and neither its driver nor its neuron is dead
    (or, for the neuron, noisy).
    """
    syn, off = session.synapses, session.offsets
    if syn is None or off is None:
        return {}
    dead, noisy = syn.dead_neuron, off.noisy
    bad_col = np.stack([(dead | noisy)[:COLS], (dead | noisy)[COLS:]])[:, None, :]
    bad_row = syn.dead_driver.reshape(2, ROWS)[:, :, None]
    stuck = syn.stuck_zero_exc | syn.stuck_max_exc | syn.stuck_zero_inh | syn.stuck_max_inh
    fin = np.isfinite(syn.s_exc) & np.isfinite(syn.s_inh)
    sok = fin & ~stuck & ~bad_col & ~bad_row
    return {"synapse_gain": frame_table("synapse_gain", {
        "gain_exc": syn.s_exc.ravel(), "gain_exc_std": syn.s_exc_std.ravel(),
        "gain_inh": syn.s_inh.ravel(), "gain_inh_std": syn.s_inh_std.ravel(),
        "stuck_zero_exc": syn.stuck_zero_exc.ravel(), "stuck_max_exc": syn.stuck_max_exc.ravel(),
        "stuck_zero_inh": syn.stuck_zero_inh.ravel(), "stuck_max_inh": syn.stuck_max_inh.ravel(),
        "zero_weight_lsb": syn.zero_weight_response.ravel(), "success": sok.ravel()})}
