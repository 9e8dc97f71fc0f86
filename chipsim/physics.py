"""From knob codes and fixed-pattern parameters to the chip's transfer.

Units: membrane and CADC voltages in volts, CADC reads in LSB, time in
microseconds, pulse lengths in nominal activation steps, synapse currents in
weight units (a nominal synapse at weight w passes w current units).

Nominal design (every deviation is a per-instance draw, see params.py):

* CADC channel j reads ``20 + A_j (v - v0_q) + o_j + c_j`` LSB, with the ramp
  start ``v0_q`` (0.35 V nominal) and slope ``A_q`` (400 LSB/V nominal) set per
  quadrant, a channel offset ``o_j`` and slope deviation, and the digital
  channel offset ``c_j``. So 0.35..0.85 V reads 20..220.
* the reset potential is 0.60 V nominal: a baseline read of 120.
* one send of activation x through weight w adds ``0.002 x w`` LSB (the
  preset's ``gain_nominal``) at nominal codes, before leak and timing effects.
"""
import numpy as np

from .geometry import CLOCK_NS, COLS, DRIVER_QUADRANT, NEURON_QUADRANT, ROWS, W_MAX
from .knobs import KNOBS

V_REF_FULL = 1.2  #: reference DAC voltage at code 1022, V
CADC_READ_LOW = 20.0  #: read at the ramp start, LSB
V0_NOM, A_NOM = 0.35, 400.0  #: nominal CADC ramp start (V) and slope (LSB/V)
V_RESET_NOM = 0.60  #: nominal reset potential, V
LEAK_NOM = 0.010  #: leak rate at the default i_bias_leak code, 1/us
LEAK_RESIDUAL = 1e-4  #: leak rate with the leak switched off (code 0), 1/us
KNEE_HI, RAIL_HI = 0.825, 1.00  #: soft saturation of the membrane, V
KNEE_LO, RAIL_LO = 0.40, 0.32
TRIM_STEPS_PER_CODE = 0.08  #: driver comparator trim, activation steps per DAC code


def soft_saturate(v, knee_hi, sat_hi, knee_lo, sat_lo):
    """The membrane's soft saturation of a mean result ``v`` (LSB): the one copy of the formula.

    Beyond a knee the excess ``d`` is compressed to ``d / (1 + d / sat)``, which
    approaches the rail ``knee + sat`` (and likewise below ``knee_lo``). The
    kernel's reference and the truth call it on arrays (float64; the
    parameters broadcast against ``v``); :mod:`chipsim._jit` compiles this same
    function for its loops (numba, on scalars), with the same operations in
    the same order: the same bits.

    Parameters
    ----------
    v : float or ndarray of float64
        Mean result, LSB relative to the baseline.
    knee_hi, sat_hi, knee_lo, sat_lo : float or ndarray of float64
        Upper knee and the distance from it to the upper rail, lower knee and
        the distance from it to the lower rail (``sat_* >= 1``), LSB.

    Returns
    -------
    float or ndarray of float64
    """
    d = np.maximum(v - knee_hi, 0.0)
    v = v - (d - d / (1.0 + d / sat_hi))
    d = np.maximum(knee_lo - v, 0.0)
    return v + (d - d / (1.0 + d / sat_lo))


def capmem_shape(code, kappa):
    """Mildly non-linear, monotone shape of a CapMem cell, 0 at code 0, 1 at 1022."""
    u = np.asarray(code, dtype=np.float64) / 1022.0
    return (u + kappa * u * u) / (1.0 + kappa)


def knob_transfer(name, code, kappa):
    """Shape of knob ``name`` at ``code`` relative to its default code (0 there)."""
    return capmem_shape(code, kappa) - capmem_shape(KNOBS[name].default, kappa)


class Transfer:
    """Everything about the chip's present state that a VMM needs, per hemisphere.

    Built from the preset, the fixed-pattern parameters, the knob codes and the
    drift state; cheap (a few ms). Its arrays are read-only views for callers.
    """

    def __init__(self, preset, params, knobs, drift_gain, drift_offset, temperature_c):
        self.preset = preset
        self.p = params
        self.k = knobs
        self.linear = preset["model"] == "linear"
        nl = preset["nonideal"]
        kappa = nl["knob_nonlinearity"]
        p = params
        dt = temperature_c - 25.0

        # CADC (per neuron/channel)
        q = NEURON_QUADRANT
        v0_q = V0_NOM + 0.6 * knob_transfer("cadc_v_ramp_offset", knobs["cadc_v_ramp_offset"], kappa) * (
            1 + p["cadc_ramp_offset_d1"]) + p["cadc_ramp_offset_d0_v"]
        a_q = A_NOM * (1 + p["cadc_ramp_slope_d1"]) * np.maximum(
            1 + 2.0 * knob_transfer("cadc_i_ramp_slope", knobs["cadc_i_ramp_slope"], kappa), 0.05)
        self.cadc_v0 = v0_q[q]
        self.cadc_slope = a_q[q] * (1 + p["cadc_channel_slope_d1"])  # LSB/V
        self.cadc_offset = CADC_READ_LOW + p["cadc_channel_offset_lsb"] + knobs["cadc_channel_offset"]
        self.reference_gain = V_REF_FULL / 1022.0 * (1 + p["reference_dac_d1"])

        # neurons
        self.v_reset = V_RESET_NOM + 1.0 * knob_transfer("v_reset", knobs["v_reset"], kappa) * (
            1 + p["v_reset_d1"]) + p["v_reset_d0_v"]
        self.v_rest = V_RESET_NOM + p["v_rest_d0_v"]

        def gm(name, d1, d0):
            return np.maximum((1 + d1) * (1 + 2.0 * knob_transfer(name, knobs[name], kappa)) + d0, 0.01)

        self.gm_exc = gm("i_bias_synin_exc_gm", p["gm_exc_d1"], p["gm_exc_d0"])
        self.gm_inh = gm("i_bias_synin_inh_gm", p["gm_inh_d1"], p["gm_inh_d0"])
        if nl["leak"]:
            shape = capmem_shape(knobs["i_bias_leak"], kappa) / capmem_shape(KNOBS["i_bias_leak"].default, kappa)
            self.leak = LEAK_RESIDUAL * (1 + p["leak_residual_d1"]) + LEAK_NOM * (1 + p["leak_d1"]) * shape
        else:
            self.leak = np.zeros(len(self.v_reset))
        drift_factor = (1 + drift_gain) * (1 + p["gain_tempco_per_k"] * dt) * (
            1 + preset["drift"]["global_gain_tempco_per_k"] * dt)
        self.neuron_factor = drift_factor * self.cadc_slope / A_NOM  # relative output per unit membrane charge
        self.offset_extra = p["reset_offset_lsb"] + drift_offset + p["offset_tempco_lsb_per_k"] * dt
        self.baseline = self.cadc_read(self.v_reset)  # expected raw baseline (before rounding and clip)

        # saturation points relative to the baseline, in result LSB
        self.knee_hi = self.cadc_slope * (KNEE_HI + p["knee_hi_d0_v"] - self.v_reset)
        self.sat_hi = self.cadc_slope * (RAIL_HI + p["rail_hi_d0_v"] - KNEE_HI - p["knee_hi_d0_v"])
        self.knee_lo = self.cadc_slope * (KNEE_LO + p["knee_lo_d0_v"] - self.v_reset)
        self.sat_lo = self.cadc_slope * (KNEE_LO + p["knee_lo_d0_v"] - RAIL_LO - p["rail_lo_d0_v"])
        self.sat_hi = np.maximum(self.sat_hi, 1.0)
        self.sat_lo = np.maximum(self.sat_lo, 1.0)

        # drivers
        dq = DRIVER_QUADRANT
        ramp_q = np.maximum(1 + 1.6 * knob_transfer("stp_i_ramp", knobs["stp_i_ramp"], kappa), 0.02) * (1 + p["ramp_d1"])
        self.driver_amp = ramp_q[dq] * (1 + p["driver_gain_d1"])
        self.driver_offset = p["driver_offset_steps"] - TRIM_STEPS_PER_CODE * (1 + p["driver_trim_d1"]) * (
            knobs["hagen_dac_offset"] - KNOBS["hagen_dac_offset"].default)
        self.driver_dead = p["dead_driver"]

        # synapse current unit per column
        self.syn_unit = (np.maximum(1 + 2.0 * knob_transfer("syn_i_bias_dac", knobs["syn_i_bias_dac"], kappa), 0.02)
                         * (1 + p["syn_unit_d1"]))[q]
        self.noise_std = np.full(len(self.v_reset), preset["noise"]["result_std_lsb"])
        self.noise_std[p["noisy_neuron"]] *= preset["noise"]["noisy_neuron_factor"]
        self.dead_neuron = p["dead_neuron"]

    # ------------------------------------------------------------------ CADC
    def cadc_read(self, v):
        """Expected raw CADC read (float, unclipped) of membrane voltage(s) v, shape (..., 512)."""
        return self.cadc_offset + self.cadc_slope * (v - self.cadc_v0)

    # ---------------------------------------------------------------- driver
    def pulse_table(self, hemisphere, wait):
        """Pulse length of every driver for every activation, shape (128, 32), activation steps."""
        nl = self.preset["nonideal"]
        sl = slice(hemisphere * ROWS, (hemisphere + 1) * ROWS)
        x = np.arange(32, dtype=np.float64)
        u = x[None, :] + self.driver_offset[sl, None]
        tau = nl["driver_softplus_tau"]
        if tau > 0:
            shaped = tau * np.logaddexp(0.0, u / tau)
        else:
            shaped = np.maximum(u, 0.0)
        spacing = 1.0 - nl["spacing_saturation"] * np.exp(-(wait - 1) / max(nl["spacing_saturation_cycles"], 1e-9))
        table = shaped * self.driver_amp[sl, None] * spacing
        table[:, 0] = 0.0  # x = 0 sends no event: exactly no charge
        table[self.driver_dead[sl]] = 0.0
        return table

    # --------------------------------------------------------------- synapse
    def synapse_current(self, hemisphere, weights):
        """Currents of the excitatory and inhibitory rows, shape (2, 128, 256), weight units."""
        beta = self.preset["nonideal"]["dac_nonlinearity"]
        w = np.asarray(weights, dtype=np.float64)
        mags = np.stack([np.maximum(w, 0.0), np.maximum(-w, 0.0)])
        dac = mags * (1 + beta * (mags - W_MAX) / W_MAX)
        dac_max = float(W_MAX)
        p = self.p
        dac = np.where(p["stuck_max"][hemisphere], dac_max, dac)
        dac = np.where(p["stuck_zero"][hemisphere], 0.0, dac)
        return dac * (1 + p["synapse_d1"][hemisphere].astype(np.float64))

    # ------------------------------------------------------------------ time
    def order_factor(self, hemisphere, num_sends, wait):
        """Leak decay of each driver's events until the read, summed over sends, shape (128, 256).

        Without leak this is ``num_sends`` everywhere.
        """
        lam = self.leak[hemisphere * COLS:(hemisphere + 1) * COLS]
        slot = wait * CLOCK_NS * 1e-3  # us per driver slot
        t_send = ROWS * slot
        t_event = (np.arange(ROWS) + 0.5) * slot
        decay_to_end = np.exp(-lam[None, :] * (t_send - t_event[:, None]))
        x = lam * t_send
        with np.errstate(invalid="ignore", divide="ignore"):
            sends = np.where(x > 1e-12, np.expm1(-x * num_sends) / np.expm1(-x), float(num_sends))
        return decay_to_end * sends[None, :]

    def window_us(self, num_sends, wait):
        """Integration window from reset to read, us (every driver slot is scheduled)."""
        return num_sends * ROWS * wait * CLOCK_NS * 1e-3

    # ------------------------------------------------------------ per column
    def column_gain(self, hemisphere):
        """Relative gain of the excitatory and inhibitory input of each column, shape (2, 256)."""
        sl = slice(hemisphere * COLS, (hemisphere + 1) * COLS)
        f = self.neuron_factor[sl] * self.syn_unit[sl]
        g = np.stack([self.gm_exc[sl] * f, -self.gm_inh[sl] * f])
        g[:, self.dead_neuron[sl]] = 0.0
        return g

    def offset(self, hemisphere, num_sends, wait):
        """Mean result at zero input, shape (256,), LSB."""
        sl = slice(hemisphere * COLS, (hemisphere + 1) * COLS)
        if self.linear:
            return np.zeros(COLS)
        t = self.window_us(num_sends, wait)
        pull = (self.v_rest[sl] - self.v_reset[sl]) * -np.expm1(-self.leak[sl] * t) * self.cadc_slope[sl]
        off = self.offset_extra[sl] + pull
        off[self.dead_neuron[sl]] = 0.0
        return off

    def effective_weights(self, hemisphere, weights, num_sends, wait):
        """Matrix W_eff with mean result = offset + pulses @ W_eff, shape (128, 256), LSB per pulse step."""
        g0 = self.preset["gain_nominal"]
        if self.linear:
            return np.asarray(weights, dtype=np.float64) * (g0 * num_sends)
        cur = self.synapse_current(hemisphere, weights)
        gain = self.column_gain(hemisphere)
        w_eff = cur[0] * gain[0][None, :] + cur[1] * gain[1][None, :]
        return g0 * w_eff * self.order_factor(hemisphere, num_sends, wait)

    def bounds(self, hemisphere):
        """Result limits (lo, hi) per column from the raw 0..255 ADC range and int8, shape (256,) each."""
        sl = slice(hemisphere * COLS, (hemisphere + 1) * COLS)
        if not self.preset["nonideal"]["adc_raw_clip"]:
            return np.full(COLS, -128.0), np.full(COLS, 127.0)
        base = np.clip(np.rint(self.baseline[sl]), 0, 255)
        return np.maximum(-base, -128.0), np.minimum(255.0 - base, 127.0)
