"""One characterization pass over a chip in its present state.

Order of the measurements (each step uses what the previous ones found):

1. zero input: offset and noise of every column; raw baseline reads; a row scan
   (each row alone at activation 31) that moves rows with a dead driver to the
   end of the transfer sweep;
2. transfer curves (all weights +63, then -63, summed activation swept from
   0 to 128 x 31): gains, linear range, saturation; dead and noisy neurons;
3. one-hot driver probes at a ``num_sends`` chosen from step 2, with per-column
   probe weights that keep strong columns inside their linear range:
   positive weights at every activation 0..31 (driver curves, excitatory gain
   map), negative weights at 31 (inhibitory gain map), weight 0 at 31 (a
   healthy synapse passes nothing: reveals stuck-at-max synapses);
4. median polish of the gain maps into driver x column x synapse factors;
   dead drivers; stuck synapses; driver activation curves.
"""
import time

import numpy as np

from ..probes import nanmean, nanmedian
from . import analysis, detect, probes

COLS, ROWS = 256, 128
PROBE_MARGIN = 1.4  #: allowance for driver amplitude and comparator offsets when sizing probe weights
PROBE_ROOM = 0.85  #: probes use at most this fraction of a column's linear range
MIN_PROBE_WEIGHT = 8
MIN_MODEL_GAIN = 0.25  #: a correction model predicting less than this fraction of the ideal is not inverted
ROW_SCAN_REPEATS = 2  #: one-hot vectors per row of the scan that orders the transfer sweep
SILENT_ROW_FRACTION = 0.3  #: a row answering below this fraction of the median row goes last in the sweep


class _Steps:
    """Book-keeping of hardware time, vectors and wall time per step."""

    def __init__(self, chip, state, progress):
        self.chip, self.state, self.progress = chip, state, progress
        self.records = []

    def run(self, name, fn, *args, **kwargs):
        if self.progress is not None:
            self.progress(f"{self.state}: {name}")
        t0, hw0, v0 = time.perf_counter(), self.chip.hw_time_s, self.chip.counters["vectors"]
        out = fn(*args, **kwargs)
        self.records.append({"name": name, "state": self.state, "vectors": self.chip.counters["vectors"] - v0,
                             "hw_time_s": self.chip.hw_time_s - hw0, "wall_time_s": time.perf_counter() - t0})
        return out


def choose_probe(fit, offset, dead, n_max, n_min, target_lsb):
    """num_sends of the one-hot probes and per-column probe weights.

    Returns
    -------
    num_sends : int
    w_exc, w_inh : ndarray of int64, shape (512,)
        Weight magnitudes of the positive and negative probes per column.
    """
    live = fit["success"] & ~dead
    ge, gi = fit["gain_exc"], fit["gain_inh"]
    med = float(np.median(np.maximum(ge[live], gi[live]))) if live.any() else 0.002
    n = int(np.clip(np.rint(target_lsb / (med * 31 * 63)), max(n_min, 1), max(n_max, n_min, 1)))
    ws = []
    for g, edge, sign in ((ge, fit["linear_hi_lsb"], 1.0), (gi, fit["linear_lo_lsb"], -1.0)):
        room = np.where(np.isfinite(edge), sign * (edge - offset), 60.0)
        pred = np.where(np.isfinite(g) & (g > 0), g, med) * 31 * 63 * n * PROBE_MARGIN
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.floor(63 * PROBE_ROOM * np.maximum(room, 0) / pred)
        w = np.clip(np.nan_to_num(w, nan=63), MIN_PROBE_WEIGHT, 63).astype(np.int64)
        w[~live] = 63
        ws.append(w)
    return n, ws[0], ws[1]


def characterize_state(chip, opts, *, wait, n_min, n_max, state, progress=None, correction=None):
    """Characterize ``chip`` as it is configured now (observable interface only).

    Parameters
    ----------
    chip : chipsim.Chip or any object with the same observable interface
    opts : CharacterizeOptions
    wait : int
        wait_between_events of every run.
    n_min, n_max : int
        Allowed range of num_sends for the one-hot probes.
    state : str
        Label of this pass (``"uncalibrated"`` or ``"calibrated"``).
    progress : callable(str) or None
    correction : calib.model.CorrectionModel or None
        Correction model of a calibration artifact; when given, the transfer
        table gets corrected outputs.

    Returns
    -------
    dict
        Arrays of every measurement and fit, plus ``fault_records`` and ``steps``.
    """
    st = _Steps(chip, state, progress)
    z_thr = opts.z_threshold
    rows = opts.probe_rows
    out = {"state": state, "rows": rows}

    out["baseline"] = st.run("baseline", probes.read_baseline, chip, 64)
    off1, noise1 = st.run("zero input", probes.measure_zero, chip, 1, opts.zero_repeats, wait)
    out["offset"], out["noise"] = off1, noise1

    # rows whose driver passes (almost) nothing go last in the transfer sweep: the curves' linear part
    # then measures the column through live drivers only (a dead driver among the first rows would
    # lower every column's apparent gain of its hemisphere by its share)
    rows_y = st.run("row scan", probes.measure_rows, chip, ROW_SCAN_REPEATS, wait)
    rows_y = rows_y - np.array([off1[:COLS].mean(), off1[COLS:].mean()])[:, None]
    med = np.median(rows_y, axis=1, keepdims=True)
    last = np.flatnonzero(np.any(rows_y < SILENT_ROW_FRACTION * med, axis=0))
    order = probes.fill_order(last)
    out["transfer_rows_last"], out["fill_order"] = last, order
    s, tmean, tstd = st.run("transfer curves", probes.measure_transfer, chip, opts.transfer_levels,
                            opts.transfer_repeats, wait, order)
    fit = analysis.fit_transfer(s, tmean, off1, opts.linear_tolerance_lsb, opts.linear_tolerance_rel)
    out.update(sum_xw=s, transfer_mean=tmean, transfer_std=tstd, fit=fit)

    dead_n, recs = detect.dead_neurons(fit["gain_exc"], fit["gain_inh"], fit["gain_exc_sem"], fit["gain_inh_sem"],
                                       z_thr)
    noisy_n, recs2 = detect.noisy_neurons(noise1, opts.zero_repeats, z_thr, exclude=dead_n)
    records = recs + recs2
    out["dead_neuron"], out["noisy_neuron"] = dead_n, noisy_n
    out["noise_level"] = analysis.noise_vs_level(tmean, tstd, exclude=dead_n | noisy_n)
    if correction is not None:
        out["transfer_corrected"] = _correct(s, tmean, correction, order)

    n, w_exc, w_inh = choose_probe(fit, off1, dead_n, n_max, n_min, opts.probe_target_lsb)
    out.update(num_sends=n, probe_w_exc=w_exc, probe_w_inh=w_inh)
    off_n, noise_n = (off1, noise1) if n == 1 else st.run(
        "zero input at probe num_sends", probes.measure_zero, chip, n, opts.zero_repeats, wait)
    out["offset_probe"], out["noise_probe"] = off_n, noise_n

    acts = np.arange(32)
    reps = [opts.activation_repeats] * 31 + [opts.map_repeats]
    ya = st.run("driver curves and excitatory gain map", probes.measure_one_hot, chip, w_exc, rows, acts, reps, n, wait)
    yb = st.run("inhibitory gain map", probes.measure_one_hot, chip, -w_inh, rows, [31], [opts.map_repeats], n, wait)[0]
    yc = st.run("weight-0 probe", probes.measure_one_hot, chip, np.zeros(512, dtype=np.int64), rows, [31],
                [opts.stuck_repeats], n, wait)[0]
    ya = np.stack(ya) - off_n  # (32, rows, 512)
    yb, yc = yb - off_n, yc - off_n

    maps = _gain_maps(ya[31], yb, yc, w_exc, w_inh, n, noise_n, opts, dead_n, rows)
    records += maps.pop("records")
    out.update(maps)
    out["drivers"] = _drivers(ya, w_exc, maps, rows, n)
    out["fault_records"] = records
    out["steps"] = st.records
    return out


def _correct(s, mean, model, order=probes.FILL_ORDER):
    """Transfer means after a calibration's software correction (LSB on the ideal scale).

    The artifact's correction model predicts each level's mean output
    (offset, driver transfer, weight DAC, neuron gain and synapse gains);
    the corrected output is the ideal ``gain_target * sum(x*w)`` plus the
    deviation from that prediction, divided by the model's gain for the pattern:
    what a user gets after inverting the correction. NaN for neurons whose
    correction failed.
    """
    out = np.full_like(mean, np.nan)
    totals = np.abs(s) // probes.W_MAX
    x = np.stack([probes.fill_activation(t, order) for t in totals])
    ideal = model.gain_target * s.astype(np.float64)[:, None]
    for h in (0, 1):
        sl = slice(h * COLS, (h + 1) * COLS)
        pred = np.where(s[:, None] >= 0,
                        model.predict(x, np.full((ROWS, COLS), probes.W_MAX), h, num_sends=1),
                        model.predict(x, np.full((ROWS, COLS), -probes.W_MAX), h, num_sends=1))
        off = model.offset[sl][None]
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = (pred - off) / ideal
            # where the model expects almost no response (a stuck synapse on a one-row pattern) it cannot be inverted
            gain = np.where(gain > MIN_MODEL_GAIN, gain, np.nan)
            corr = np.where(s[:, None] == 0, mean[:, sl] - off, ideal + (mean[:, sl] - pred) / gain)
        corr[:, ~np.asarray(model.neuron_fitted[sl], dtype=bool)] = np.nan
        out[:, sl] = corr
    return out


def _gain_maps(ya, yb, yc, w_exc, w_inh, n, noise, opts, dead_n, rows):
    """Per-hemisphere gain maps, median polish, dead drivers, stuck synapses."""
    z_thr = opts.z_threshold
    nr = len(rows)
    res = {k: np.full((2, nr, COLS), np.nan) for k in ("gain_exc", "gain_inh", "rel_exc", "rel_inh",
                                                       "sem_exc", "sem_inh", "zero_probe")}
    flags_all = {k: np.zeros((2, nr, COLS), dtype=bool) for k in (
        "stuck_zero_exc", "stuck_zero_inh", "stuck_max_exc", "stuck_max_inh")}
    amp = np.full((2, nr), np.nan)
    amp_sem = np.full((2, nr), np.nan)
    col_factor = np.full((2, 2, COLS), np.nan)
    records = []
    for h in (0, 1):
        sl = slice(h * COLS, (h + 1) * COLS)
        live_c = ~dead_n[sl]
        unit_e = 31.0 * w_exc[sl] * n
        unit_i = 31.0 * w_inh[sl] * n
        ge = ya[:, sl] / unit_e[None]
        gi = -yb[:, sl] / unit_i[None]
        sem_e_col = noise[sl] / np.sqrt(opts.map_repeats)
        sem_i_col = sem_e_col
        sem_z_col = noise[sl] / np.sqrt(opts.stuck_repeats)
        valid0 = np.broadcast_to(live_c, ge.shape)
        r_e, c_e = analysis.median_polish(ge, valid0)
        r_i, c_i = analysis.median_polish(gi, valid0)
        # dead drivers: row factor of both maps near 0
        with np.errstate(invalid="ignore", divide="ignore"):
            rel_sem = np.sqrt(nanmean((sem_e_col / (unit_e * c_e))[live_c] ** 2)) * 1.2533 / np.sqrt(live_c.sum())
        a = np.maximum(r_e, r_i)
        amp[h], amp_sem[h] = a, rel_sem
        dead_d, recs = detect.dead_drivers(a[None], np.full((1, nr), rel_sem), rows, z_thr)
        for rec in recs:  # detect.dead_drivers numbers hemisphere 0; fix the index
            rec.update(hemisphere=h, driver=128 * h + rec["row"], element=f"driver {128 * h + rec['row']}")
        records += recs
        dead_d = dead_d[0]
        valid = np.broadcast_to(live_c, ge.shape) & ~dead_d[:, None]
        r_e, c_e = analysis.median_polish(ge, valid)
        r_i, c_i = analysis.median_polish(gi, valid)
        e_exc = r_e[:, None] * c_e[None] * unit_e[None]
        e_inh = r_i[:, None] * c_i[None] * unit_i[None]
        e_full_e = r_e[:, None] * c_e[None] * 31.0 * 63 * n
        e_full_i = r_i[:, None] * c_i[None] * 31.0 * 63 * n
        flags, z = detect.stuck_synapses(ya[:, sl], e_exc, yb[:, sl], e_inh, yc[:, sl], e_full_e, e_full_i,
                                         sem_e_col, sem_i_col, sem_z_col, valid, rows, z_thr)
        records += detect.synapse_records(h, rows, flags, z, e_exc, e_inh, yc[:, sl], e_full_e, e_full_i, z_thr)
        for k in flags:
            flags_all[k][h] = flags[k]
        with np.errstate(invalid="ignore", divide="ignore"):
            res["gain_exc"][h], res["gain_inh"][h] = ge, gi
            res["sem_exc"][h] = np.broadcast_to(sem_e_col / unit_e, ge.shape)
            res["sem_inh"][h] = np.broadcast_to(sem_i_col / unit_i, gi.shape)
            res["rel_exc"][h] = np.where(valid, ge / (r_e[:, None] * c_e[None]), np.nan)
            res["rel_inh"][h] = np.where(valid, gi / (r_i[:, None] * c_i[None]), np.nan)
        res["zero_probe"][h] = yc[:, sl]
        col_factor[h, 0], col_factor[h, 1] = c_e, c_i
        res.setdefault("valid", np.zeros((2, nr, COLS), dtype=bool))[h] = valid
        res.setdefault("dead_driver", np.zeros((2, nr), dtype=bool))[h] = dead_d
    res.update(flags_all)
    res.update(amp=amp, amp_sem=amp_sem, col_factor=col_factor, records=records)
    return res


def _drivers(ya, w_exc, maps, rows, n):
    """Driver activation curves (32 codes) from the positive-weight one-hot probe, per send."""
    nr = len(rows)
    out = {k: np.full((2, 32, nr), np.nan) for k in ("output_lsb_per_send", "output_sem_lsb_per_send", "pulse_steps")}
    summ = {k: np.full((2, nr), np.nan) for k in ("slope", "offset_steps", "excess_at_1_steps",
                                                 "linearity_rms_steps", "amplitude_lsb_per_send", "amplitude_rel")}
    for h in (0, 1):
        sl = slice(h * COLS, (h + 1) * COLS)
        c = maps["col_factor"][h, 0]
        valid = maps["valid"][h]
        healthy = valid & ~maps["stuck_zero_exc"][h] & ~maps["stuck_max_exc"][h] & ~maps["stuck_max_inh"][h]
        live_cols = np.any(valid, axis=0)
        c_med = nanmedian(c[live_cols])
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = (63.0 / w_exc[sl]) * (c_med / c) / n
        cur = analysis.driver_curves(ya[:, :, sl] * norm[None, None], healthy)
        dead = maps["dead_driver"][h]
        output = cur["output_lsb"]
        # a dead driver has no healthy synapse to average: its (null) response over all live columns
        output[:, dead] = (ya[:, dead][:, :, sl][:, :, live_cols].mean(axis=2) * 63.0
                           / np.median(w_exc[sl]) / n)
        amp31 = output[31]
        k = nanmedian(amp31[~dead]) / 31.0
        pulse = output / k
        out["output_lsb_per_send"][h], out["output_sem_lsb_per_send"][h] = output, cur["output_sem_lsb"]
        out["pulse_steps"][h] = pulse
        for key, v in analysis.driver_summary(pulse, dead).items():
            summ[key][h] = v
        summ["amplitude_lsb_per_send"][h] = amp31
        summ["amplitude_rel"][h] = amp31 / (31.0 * k)
    out["summary"] = summ
    return out
