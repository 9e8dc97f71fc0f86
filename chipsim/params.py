"""Fixed-pattern parameters of one chip, drawn from its id.

Every group of parameters has its own random stream,
``SeedSequence([0xB552, chip_id, stream])``, with the stream numbers of
:data:`STREAMS`. Each draw is a standard normal (or uniform, for faults) scaled
by the preset's spread afterwards, so the same chip id gives the same pattern
in any process, on any machine, and under any preset: a ``harsh`` chip 7 is
chip 7 with every deviation doubled. Adding a parameter to one stream never
changes another stream's values.
"""
import numpy as np

from .geometry import COLS, N_DRIVERS, N_HEMISPHERES, N_NEURONS, N_QUADRANTS, ROWS

SEED_TAG = 0xB552
STREAMS = {
    "quadrant": 0,
    "cadc_channel": 1,
    "synapse": 2,
    "driver": 3,
    "neuron": 4,
    "saturation": 5,
    "faults": 6,
    "drift": 7,
    "global": 8,
}


def stream_rng(chip_id, stream):
    """The numpy Generator of one documented parameter stream of a chip."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([SEED_TAG, int(chip_id), STREAMS[stream]])))


def _rel(rng, size, std):
    """Relative deviation with the given spread, clipped so factors stay positive."""
    return np.clip(rng.standard_normal(size) * std, -0.9, None)


def draw_params(chip_id, preset):
    """Draw every fixed-pattern parameter of chip ``chip_id``.

    Parameters
    ----------
    chip_id : int
        The chip's serial, >= 0.
    preset : Preset
        Supplies the spreads (``mismatch`` times ``mismatch_scale``) and fault
        fractions.

    Returns
    -------
    dict of str to ndarray
        See docs/chipsim.md for the meaning and unit of each entry.
    """
    m = {k: v * preset["mismatch_scale"] for k, v in preset["mismatch"].items()}
    p = {}

    rng = stream_rng(chip_id, "quadrant")
    p["cadc_ramp_offset_d0_v"] = rng.standard_normal(N_QUADRANTS) * m["cadc_ramp_offset_v"]
    p["cadc_ramp_offset_d1"] = _rel(rng, N_QUADRANTS, m["capmem_slope_rel"])
    p["cadc_ramp_slope_d1"] = _rel(rng, N_QUADRANTS, m["cadc_ramp_slope_rel"])
    p["syn_unit_d1"] = _rel(rng, N_QUADRANTS, m["syn_bias_rel"])
    p["ramp_d1"] = _rel(rng, N_QUADRANTS, m["ramp_rel"])

    rng = stream_rng(chip_id, "cadc_channel")
    p["cadc_channel_offset_lsb"] = rng.standard_normal(N_NEURONS) * m["cadc_channel_offset_lsb"]
    p["cadc_channel_slope_d1"] = _rel(rng, N_NEURONS, m["cadc_channel_slope_rel"])

    rng = stream_rng(chip_id, "synapse")
    # (hemisphere, sign [0: excitatory row, 1: inhibitory row], row, column)
    p["synapse_d1"] = _rel(rng, (N_HEMISPHERES, 2, ROWS, COLS), m["synapse_rel"]).astype(np.float32)

    rng = stream_rng(chip_id, "driver")
    p["driver_gain_d1"] = _rel(rng, N_DRIVERS, m["driver_gain_rel"])
    p["driver_offset_steps"] = rng.standard_normal(N_DRIVERS) * m["driver_offset_steps"]
    p["driver_trim_d1"] = _rel(rng, N_DRIVERS, m["driver_trim_slope_rel"])

    rng = stream_rng(chip_id, "neuron")
    p["v_reset_d0_v"] = rng.standard_normal(N_NEURONS) * m["v_reset_v"]
    p["v_reset_d1"] = _rel(rng, N_NEURONS, m["capmem_slope_rel"])
    p["v_rest_d0_v"] = rng.standard_normal(N_NEURONS) * m["v_rest_v"]
    p["gm_exc_d1"] = _rel(rng, N_NEURONS, m["gm_rel"])
    p["gm_exc_d0"] = rng.standard_normal(N_NEURONS) * m["gm_offset_rel"]
    p["gm_inh_d1"] = _rel(rng, N_NEURONS, m["gm_rel"])
    p["gm_inh_d0"] = rng.standard_normal(N_NEURONS) * m["gm_offset_rel"]
    p["leak_d1"] = _rel(rng, N_NEURONS, m["leak_rel"])
    p["leak_residual_d1"] = _rel(rng, N_NEURONS, 2.5 * m["leak_rel"])
    p["reset_offset_lsb"] = rng.standard_normal(N_NEURONS) * m["reset_offset_lsb"]

    rng = stream_rng(chip_id, "saturation")
    for name in ("knee_hi_d0_v", "rail_hi_d0_v", "knee_lo_d0_v", "rail_lo_d0_v"):
        p[name] = rng.standard_normal(N_NEURONS) * m["saturation_v"]

    rng = stream_rng(chip_id, "global")
    p["reference_dac_d1"] = float(_rel(rng, 1, m["reference_dac_rel"])[0])
    d = preset["drift"]
    p["gain_tempco_per_k"] = rng.standard_normal(N_NEURONS) * d["gain_tempco_per_k"]
    p["offset_tempco_lsb_per_k"] = rng.standard_normal(N_NEURONS) * d["offset_tempco_lsb_per_k"]

    rng = stream_rng(chip_id, "faults")
    f = preset["faults"]
    u = rng.random((N_HEMISPHERES, 2, ROWS, COLS))
    p["stuck_zero"] = u < f["stuck_zero_synapses"]
    p["stuck_max"] = (u >= f["stuck_zero_synapses"]) & (u < f["stuck_zero_synapses"] + f["stuck_max_synapses"])
    u = rng.random(N_NEURONS)
    p["dead_neuron"] = u < f["dead_neurons"]
    p["noisy_neuron"] = (u >= f["dead_neurons"]) & (u < f["dead_neurons"] + f["noisy_neurons"])
    u = rng.random(N_DRIVERS)
    p["dead_driver"] = u < f["dead_drivers"]
    return p
