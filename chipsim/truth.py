"""The hidden truth of a simulated chip: for tests and benchmarks only.

Code under ``calib/`` and ``infer/`` must not import this module or touch
``Chip.truth``; tests prove it by calibrating a chip whose truth is locked.
"""
import numpy as np

from .geometry import COLS, ROWS, check_hemisphere
from .physics import soft_saturate


class Truth:
    """Read-only view of a chip's hidden parameters and ideal transfer.

    Every method returns fresh arrays; nothing here changes the chip or
    spends hardware time.
    """

    def __init__(self, chip):
        self._chip = chip

    @property
    def _t(self):
        return self._chip._state()

    def params(self):
        """Every fixed-pattern parameter (a dict of copies); see chipsim.params."""
        return {k: np.array(v, copy=True) for k, v in self._chip._p.items()}

    def faults(self):
        """Boolean masks of the injected faults.

        Returns
        -------
        dict
            ``stuck_zero`` and ``stuck_max`` of shape (2, 2, 128, 256)
            (hemisphere, sign, row, column); ``dead_neuron`` and
            ``noisy_neuron`` of shape (512,); ``dead_driver`` of shape (256,).
        """
        p = self._chip._p
        return {k: p[k].copy() for k in ("stuck_zero", "stuck_max", "dead_neuron", "noisy_neuron", "dead_driver")}

    def expected(self, x, hemisphere=0, *, num_sends=1, wait_between_events=5, saturate=True):
        """Noise-free mean result before rounding and clipping, float64, shape (batch, 256).

        The synapse array's product as the chip forms it, in fixed point
        (:func:`chipsim.kernel.fixed_point`: within a few thousandths of an
        LSB of the float64 product of the pulses and effective weights).
        """
        h = check_hemisphere(hemisphere)
        t = self._t
        x = np.asarray(x, dtype=np.intp)
        plan = self._chip._plan(h, num_sends, wait_between_events)  # the chip's own fixed-point product
        pulses = np.take(plan.table.astype(np.float64), x + np.arange(ROWS) * (plan.table.size // ROWS))
        y = (pulses @ plan.w_fixed) * plan.step + t.offset(h, num_sends, wait_between_events)
        if saturate and self._chip.preset["nonideal"]["soft_saturation"]:
            sl = slice(h * COLS, (h + 1) * COLS)
            y = soft_saturate(y, t.knee_hi[sl], t.sat_hi[sl], t.knee_lo[sl], t.sat_lo[sl])
        return y

    def pulse_table(self, hemisphere=0, wait_between_events=5):
        """Pulse of every driver for every activation, shape (128, 32), nominal activation steps."""
        return self._t.pulse_table(check_hemisphere(hemisphere), wait_between_events)

    def synapse_gain(self, hemisphere=0, *, num_sends=1, wait_between_events=5):
        """Output LSB per (pulse step x weight unit) of every physical synapse at full weight.

        This is the product the chip can distinguish: synapse current unit and
        mismatch, DAC at weight 63, neuron input gain, CADC slope and the timing
        factor. Per send; stuck and dead elements included as they behave.

        Returns
        -------
        ndarray of shape (2, 128, 256)
            [0] excitatory rows, [1] inhibitory rows (as a positive magnitude).
        """
        h = check_hemisphere(hemisphere)
        t = self._t
        full = np.full((ROWS, COLS), 63)
        cur = t.synapse_current(h, full)
        cur_inh = t.synapse_current(h, -full)
        g = t.column_gain(h)
        order = t.order_factor(h, num_sends, wait_between_events) / num_sends
        g0 = self._chip.preset["gain_nominal"]
        exc = g0 * cur[0] / 63 * g[0][None, :] * order
        inh = -g0 * cur_inh[1] / 63 * g[1][None, :] * order
        return np.stack([exc, inh])

    def neuron_offset(self, hemisphere=0, *, num_sends=1, wait_between_events=5):
        """Mean result at zero input of every column, shape (256,), LSB."""
        return self._t.offset(check_hemisphere(hemisphere), num_sends, wait_between_events)

    def baseline(self):
        """Expected raw baseline read of all 512 channels (float, before rounding)."""
        return self._t.baseline.copy()

    def noise_std(self):
        """Result noise std of every column, shape (512,), LSB."""
        return self._t.noise_std.copy()

    def state(self):
        """The derived per-instance quantities at the present knobs (dict of arrays)."""
        t = self._t
        names = ("cadc_v0", "cadc_slope", "cadc_offset", "v_reset", "v_rest", "gm_exc", "gm_inh", "leak",
                 "driver_amp", "driver_offset", "syn_unit", "knee_hi", "knee_lo", "neuron_factor")
        return {n: np.array(getattr(t, n), copy=True) for n in names}
