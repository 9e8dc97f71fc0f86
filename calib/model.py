"""The correction model of docs/artifact-format.md as arrays: predict a calibrated chip's mean output.

    E[y_j] = offset_lsb[n_j] + n * gain_target * (1 - kappa (n - n_ref)) * sum_i T[d_i, x_i] * (
                 D(w+_ij) gain_exc[n_j] s_exc[h, i, j] - D(w-_ij) gain_inh[n_j] s_inh[h, i, j])

Missing tables mean identity (T[d, x] = x, D(w) = w, s = 1, gains 1, offsets 0).
Stuck-at-max synapses pass the full-weight current whatever is programmed.
Used by :mod:`calib.verify`, the tests and the benchmark; the inference engine
implements the same model on its own.
"""
import numpy as np

from bss2_calib.chipsim import COLS, N_DRIVERS, N_NEURONS, ROWS, W_MAX


class CorrectionModel:
    """Arrays of one artifact's correction model.

    Parameters
    ----------
    result : CalibrationResult
    use_send_decay : bool, default=True
        Apply the manifest's per-send decay ``kappa`` away from ``num_sends_ref``.
    """

    def __init__(self, result, use_send_decay=True):
        m = result.manifest
        t = result.tables
        self.gain_target = float(m["target"]["gain_lsb_per_unit"])
        self.n_ref = int(m["conditions"]["num_sends_ref"])
        self.kappa = float(m["conditions"]["send_decay_per_send"]) if use_send_decay else 0.0
        self.T = np.tile(np.arange(32, dtype=np.float64), (N_DRIVERS, 1))
        if "driver_transfer" in t:
            self.T = t["driver_transfer"]["pulse_steps"].to_numpy().reshape(N_DRIVERS, 32).copy()
        self.D = np.arange(W_MAX + 1, dtype=np.float64)  # D(|w|), |w| = 0..63
        if "weight_transfer" in t:
            self.D = t["weight_transfer"]["effective_weight"].to_numpy().copy()
        self.gain_exc = np.ones(N_NEURONS)
        self.gain_inh = np.ones(N_NEURONS)
        self.offset = np.zeros(N_NEURONS)
        self.neuron_ok = np.ones(N_NEURONS, dtype=bool)
        if "neuron_correction" in t:
            nc = t["neuron_correction"]
            self.gain_exc = nc["gain_exc"].to_numpy().copy()
            self.gain_inh = nc["gain_inh"].to_numpy().copy()
            self.offset = nc["offset_lsb"].to_numpy().copy()
            self.neuron_ok = nc["success"].to_numpy().copy()
        shape = (2, ROWS, COLS)
        self.s_exc = np.ones(shape)
        self.s_inh = np.ones(shape)
        self.stuck_max_exc = np.zeros(shape, dtype=bool)
        self.stuck_max_inh = np.zeros(shape, dtype=bool)
        if "synapse_gain" in t:
            sg = t["synapse_gain"]
            self.s_exc = sg["gain_exc"].to_numpy().reshape(shape).copy()
            self.s_inh = sg["gain_inh"].to_numpy().reshape(shape).copy()
            self.stuck_max_exc = sg["stuck_max_exc"].to_numpy().reshape(shape).copy()
            self.stuck_max_inh = sg["stuck_max_inh"].to_numpy().reshape(shape).copy()

    def effective_weights(self, w, hemisphere):
        """LSB per (pulse step x send) / gain_target of every synapse for signed weights ``w`` (128, 256).

        Returns the excitatory minus inhibitory product ``D(w+) gain_exc s_exc - D(w-) gain_inh s_inh``.
        """
        h = hemisphere
        w = np.asarray(w, dtype=np.int64)
        exc = self.D[np.clip(w, 0, W_MAX)]
        inh = self.D[np.clip(-w, 0, W_MAX)]
        exc = np.where(self.stuck_max_exc[h], self.D[W_MAX], exc)
        inh = np.where(self.stuck_max_inh[h], self.D[W_MAX], inh)
        sl = slice(h * COLS, (h + 1) * COLS)
        s_exc = np.nan_to_num(self.s_exc[h])
        s_inh = np.nan_to_num(self.s_inh[h])
        return exc * s_exc * np.nan_to_num(self.gain_exc[sl]) - inh * s_inh * np.nan_to_num(self.gain_inh[sl])

    def pulses(self, x, hemisphere):
        """Effective activations T[d, x] of inputs ``x`` (batch, 128)."""
        x = np.asarray(x, dtype=np.int64)
        return np.nan_to_num(self.T[hemisphere * ROWS + np.arange(ROWS), x])

    def predict(self, x, w, hemisphere=0, num_sends=1):
        """Mean result of inputs ``x`` (batch, 128) through weights ``w`` (128, 256), float (batch, 256).

        Valid in the linear range only (no saturation is modelled).
        """
        scale = num_sends * self.gain_target * (1 - self.kappa * (num_sends - self.n_ref))
        sl = slice(hemisphere * COLS, (hemisphere + 1) * COLS)
        return self.offset[sl] + scale * self.pulses(x, hemisphere) @ self.effective_weights(w, hemisphere)
