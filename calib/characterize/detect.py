"""Detection of elements that do not behave, with the evidence for each.

Every test has two conditions that must both hold:

* a *noise* condition: the element deviates from what a healthy element would
  show by more than ``z_threshold`` standard errors of the measurement (the
  standard error comes from the column's own measured trial-to-trial noise
  and the number of repeats, so noisy neurons get wider margins);
* a *size* condition: the deviation is gross, far outside fixed-pattern
  mismatch (a stuck-at-zero synapse passes less than half of the expected
  current, a stuck-at-max synapse at weight 0 more than half of the full-weight
  current, a dead neuron or driver less than a tenth of the median response,
  a noisy neuron more than 1.5 times the median noise).

The noise condition makes false alarms from trial-to-trial noise negligible;
the size condition keeps strong but working circuits (a synapse 20 % weak) out.
"""
import numpy as np

DEAD_FRACTION = 0.1  #: response below this fraction of the median: dead neuron / driver
STUCK_FRACTION = 0.5  #: synapse passes less (zero) or, at weight 0, more (max) than this of the expected
NOISY_RATIO = 1.5  #: noise above this multiple of the median: noisy neuron

FAULT_COLUMNS = ("kind", "element", "hemisphere", "row", "column", "sign", "neuron", "driver",
                 "measured", "expected", "threshold", "z_score", "unit", "evidence")


def dead_neurons(gain_exc, gain_inh, sem_exc, sem_inh, z_threshold):
    """Columns that respond to neither sign of input.

    Returns
    -------
    flags : ndarray of bool, shape (n,)
    records : list of dict
    """
    ge, gi = np.nan_to_num(gain_exc), np.nan_to_num(gain_inh)
    med = float(np.median(np.maximum(ge, gi)))
    sem = np.nan_to_num(np.maximum(sem_exc, sem_inh), nan=np.inf)
    sem = np.maximum(sem, 1e-12)
    best = np.maximum(ge, gi)
    z = (best - med) / sem
    flags = (best < DEAD_FRACTION * med) & (z < -z_threshold)
    recs = []
    for n in np.flatnonzero(flags):
        recs.append(dict(kind="dead_neuron", element=f"neuron {n}", hemisphere=n // 256, column=n % 256, neuron=n,
                         measured=best[n], expected=med, threshold=DEAD_FRACTION * med, z_score=z[n],
                         unit="LSB per unit of sum(x*w)",
                         evidence=f"gain {best[n]:.2e} (both signs) vs median {med:.2e}; limit "
                                  f"{DEAD_FRACTION:g} x median and z < -{z_threshold:g}"))
    return flags, recs


def noisy_neurons(noise, n_reads, z_threshold, exclude=None):
    """Columns whose trial-to-trial noise at zero input exceeds the median by far.

    The std of ``n_reads`` Gaussian reads has a relative standard error of
    sqrt(1 / (2 (n_reads - 1))); the z-score is that of the variance ratio.
    """
    ok = np.ones(len(noise), dtype=bool) if exclude is None else ~exclude
    med = float(np.median(noise[ok]))
    ratio = noise / med
    z = (ratio ** 2 - 1) / np.sqrt(2.0 / (n_reads - 1))
    flags = (ratio > NOISY_RATIO) & (z > z_threshold) & ok
    recs = []
    for n in np.flatnonzero(flags):
        recs.append(dict(kind="noisy_neuron", element=f"neuron {n}", hemisphere=n // 256, column=n % 256, neuron=n,
                         measured=noise[n], expected=med, threshold=NOISY_RATIO * med, z_score=z[n], unit="LSB",
                         evidence=f"noise {noise[n]:.2f} LSB over {n_reads} zero-input reads vs median {med:.2f}; "
                                  f"limit {NOISY_RATIO:g} x median and z > {z_threshold:g}"))
    return flags, recs


def dead_drivers(amp, amp_sem, rows, z_threshold, hemisphere_rows=128):
    """Drivers whose one-hot probe moves no column.

    Parameters
    ----------
    amp, amp_sem : ndarray of shape (2, len(rows))
        Relative amplitude (median driver 1) and its standard error, per hemisphere.
    rows : ndarray of int
        The visited rows.
    """
    med = 1.0
    z = (amp - med) / np.maximum(amp_sem, 1e-12)
    flags = (amp < DEAD_FRACTION * med) & (z < -z_threshold)
    recs = []
    for h, k in zip(*np.nonzero(flags)):
        d = h * hemisphere_rows + rows[k]
        recs.append(dict(kind="dead_driver", element=f"driver {d}", hemisphere=h, row=rows[k], driver=d,
                         measured=amp[h, k], expected=med, threshold=DEAD_FRACTION * med, z_score=z[h, k],
                         unit="relative amplitude",
                         evidence=f"one-hot response {amp[h, k]:.3f} of the median driver's; limit "
                                  f"{DEAD_FRACTION:g} and z < -{z_threshold:g}"))
    return flags, recs


def stuck_synapses(y_exc, e_exc, y_inh, e_inh, y_zero, e_full_exc, e_full_inh, sem_exc, sem_inh, sem_zero,
                   valid, rows, z_threshold):
    """Stuck-at-zero and stuck-at-max synapses of one hemisphere from three one-hot probes.

    Parameters
    ----------
    y_exc, y_inh : ndarray of shape (rows, 256)
        Offset-subtracted mean results of the positive-weight and negative-weight probes (LSB).
    e_exc, e_inh : ndarray of shape (rows, 256)
        What a healthy synapse would give in those probes (row factor x column factor, LSB).
    y_zero : ndarray of shape (rows, 256)
        Offset-subtracted mean result of the weight-0 probe (LSB); healthy: 0.
    e_full_exc, e_full_inh : ndarray of shape (rows, 256)
        Healthy response at full weight 63 of either row (magnitudes, LSB).
    sem_exc, sem_inh, sem_zero : ndarray of shape (256,)
        Standard error of one probe mean (column noise / sqrt(repeats)).
    valid : ndarray of bool, shape (rows, 256)
        Synapses that can be judged (live driver and neuron).

    Returns
    -------
    flags : dict of ndarray of bool, shape (rows, 256)
        ``stuck_zero_exc``, ``stuck_zero_inh``, ``stuck_max_exc``, ``stuck_max_inh``.
    z : dict of ndarray, shape (rows, 256)
        z-score per flag kind, and ``y_exc``/``y_inh``: the probed row's own
        contribution (the weight-0 probe subtracted where the other row is stuck at max).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        z_zero = y_zero / sem_zero[None]
        max_exc = valid & (y_zero > STUCK_FRACTION * e_full_exc) & (z_zero > z_threshold)
        max_inh = valid & (-y_zero > STUCK_FRACTION * e_full_inh) & (z_zero < -z_threshold)
        # a row stuck at max also acts in the other sign's probe; the weight-0 probe measured
        # exactly that contribution, so subtract it to judge the probed row alone
        y_exc, y_inh = np.where(max_inh, y_exc - y_zero, y_exc), np.where(max_exc, y_inh - y_zero, y_inh)
        sem_e = np.where(max_inh, np.hypot(sem_exc, sem_zero)[None], sem_exc[None])
        sem_i = np.where(max_exc, np.hypot(sem_inh, sem_zero)[None], sem_inh[None])
        z_exc = (y_exc - e_exc) / sem_e
        z_inh = (-y_inh - e_inh) / sem_i
        zero_exc = valid & ~max_exc & (y_exc < STUCK_FRACTION * e_exc) & (z_exc < -z_threshold)
        zero_inh = valid & ~max_inh & (-y_inh < STUCK_FRACTION * e_inh) & (z_inh < -z_threshold)
        # neither row follows its weight, yet current flows at weight 0: two stuck-at-zero rows pass exactly
        # nothing, so both rows are stuck at max (their currents nearly cancel). With no significant current
        # at weight 0 the two cases cannot be told apart; they stay reported as stuck at zero.
        both_max = zero_exc & zero_inh & (np.abs(z_zero) > z_threshold)
        max_exc, max_inh = max_exc | both_max, max_inh | both_max
        zero_exc, zero_inh = zero_exc & ~both_max, zero_inh & ~both_max
    flags = {"stuck_zero_exc": zero_exc, "stuck_zero_inh": zero_inh, "stuck_max_exc": max_exc,
             "stuck_max_inh": max_inh}
    z = {"stuck_zero_exc": z_exc, "stuck_zero_inh": z_inh, "stuck_max_exc": z_zero, "stuck_max_inh": z_zero,
         "y_exc": y_exc, "y_inh": y_inh, "both_max": both_max, "sem_zero": sem_zero}
    return flags, z


def synapse_records(h, rows, flags, z, e_exc, e_inh, y_zero, e_full_exc, e_full_inh, z_threshold):
    """Fault-table records for the flagged synapses of hemisphere ``h``."""
    recs = []
    y_exc, y_inh = z["y_exc"], z["y_inh"]
    spec = {
        "stuck_zero_exc": ("stuck_zero_synapse", "exc", y_exc, e_exc, "positive-weight probe"),
        "stuck_zero_inh": ("stuck_zero_synapse", "inh", -y_inh, e_inh, "negative-weight probe (magnitude)"),
        "stuck_max_exc": ("stuck_max_synapse", "exc", y_zero, e_full_exc, "weight-0 probe"),
        "stuck_max_inh": ("stuck_max_synapse", "inh", -y_zero, e_full_inh, "weight-0 probe (magnitude)"),
    }
    for key, (kind, sign, meas, exp, probe) in spec.items():
        for k, j in zip(*np.nonzero(flags[key])):
            r = int(rows[k])
            m, what = meas[k, j], probe
            if kind == "stuck_zero_synapse":
                expected, thr = exp[k, j], STUCK_FRACTION * exp[k, j]
                rule = f"< {STUCK_FRACTION:g} x expected and z < -{z_threshold:g}"
            elif z["both_max"][k, j]:
                m, expected, thr = abs(y_zero[k, j]), 0.0, z_threshold * z["sem_zero"][j]
                what = "both rows ignore their weight; weight-0 probe (magnitude)"
                rule = f"> {thr:.2f} LSB = {z_threshold:g} standard errors (two rows stuck at zero pass nothing)"
            else:
                expected, thr = 0.0, STUCK_FRACTION * exp[k, j]
                rule = f"> {STUCK_FRACTION:g} x the full-weight response {exp[k, j]:.1f} LSB and |z| > {z_threshold:g}"
            recs.append(dict(kind=kind, element=f"synapse h{h} row {r} column {j} {sign}", hemisphere=h, row=r,
                             column=j, sign=sign, neuron=256 * h + j, driver=128 * h + r, measured=m,
                             expected=expected, threshold=thr, z_score=z[key][k, j], unit="LSB",
                             evidence=f"{what}: {m:.1f} LSB vs {expected:.1f} expected; limit {rule}"))
    return recs
