"""The simulated chip and its observable interface.

:class:`Chip` offers only what the real hardware offers: knobs, weights,
input batches, int8 results, raw CADC reads, a temperature sensor and the
hardware clock. The hidden parameters live behind :attr:`Chip.truth`, which
calibration and inference code must never touch (a chip made with
``truth_access=False`` raises on it).
"""
import numpy as np

from .errors import ChipValueError, TruthAccessError
from .geometry import ACT_MAX, CLOCK_NS, COLS, N_HEMISPHERES, N_NEURONS, ROWS, W_MAX, check_hemisphere
from .knobs import KNOBS, RUN_LIMITS, default_knobs, knob_spec
from .noise import NoiseSource
from .params import draw_params, stream_rng
from .physics import Transfer
from .preset import load_preset

MAX_BATCH = 1 << 20  #: largest batch of one run call (vectors)
VECTOR_OVERHEAD_S = 40e-6  #: reset, baseline read and result read per vector
RECONFIG_S = 20e-3  #: settling of analog parameters after a batch of knob writes
WEIGHT_WRITE_S = 0.5e-3  #: writing one hemisphere's 32 768 weights
CADC_READ_S = 10e-6  #: one standalone CADC read of all channels


def _as_int_array(a, what, lo, hi, shape_desc):
    arr = np.asarray(a)
    if arr.dtype == object:
        raise ChipValueError(f"{what} must be a numeric array, got objects")
    if arr.dtype.kind == "b":
        raise ChipValueError(f"{what} must hold integers, got booleans")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ChipValueError(f"{what} contains NaN or inf")
        if not np.all(arr == np.rint(arr)):
            raise ChipValueError(f"{what} must hold integers, got non-integer floats")
    elif arr.dtype.kind not in "iu":
        raise ChipValueError(f"{what} must hold integers, got dtype {arr.dtype}")
    if arr.size:
        amin, amax = arr.min(), arr.max()
        if amin < lo or amax > hi:
            bad = amin if amin < lo else amax
            raise ChipValueError(f"{what} value {bad:g} outside {lo}..{hi} ({shape_desc})")
    return arr


def _check_run_param(name, value):
    lo, hi = RUN_LIMITS[name]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ChipValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    if not lo <= value <= hi:
        raise ChipValueError(f"{name} must be in {lo}..{hi}, got {value}")
    return int(value)


class _Cache:
    """Per hemisphere and run conditions: the precomputed float32 kernel inputs."""

    __slots__ = ("pulse_flat", "w_eff", "offset", "knee_hi", "sat_hi", "knee_lo", "sat_lo",
                 "lo", "hi", "noise_std", "hi_min", "lo_max")


class Chip:
    """One simulated BrainScaleS-2 chip in VMM mode (both hemispheres).

    Parameters
    ----------
    chip_id : int, default=0
        The chip's serial (>= 0). It alone fixes every fixed-pattern parameter.
    preset : str, path-like or Preset, default="default"
        Population the chip is drawn from: a built-in name (``default``,
        ``ideal``, ``noiseless``, ``hxtorch-mock``, ``harsh``) or a JSON file.
    noise_seed : int or None, default=None
        Seed of the trial-to-trial noise stream (None: fresh OS entropy).
    truth_access : bool, default=True
        False locks :attr:`truth`, to prove that a caller only uses the
        observable interface.

    Examples
    --------
    >>> chip = Chip(7, "noiseless")
    >>> x = np.full((1, 128), 31)
    >>> w = np.zeros((128, 256), dtype=int); w[:, 0] = 10
    >>> int(chip.vmm(x, w)[0, 0])  # round(0.002 * 128 * 31 * 10)
    79
    """

    def __init__(self, chip_id=0, preset="default", *, noise_seed=None, truth_access=True):
        if isinstance(chip_id, (bool, np.bool_)) or not isinstance(chip_id, (int, np.integer)) or chip_id < 0:
            raise ChipValueError(f"chip_id must be a non-negative integer, got {chip_id!r}")
        if chip_id >= 2**63:
            raise ChipValueError(f"chip_id {chip_id} is too large (must fit 63 bits)")
        self.chip_id = int(chip_id)
        self.preset = load_preset(preset)
        self._p = draw_params(self.chip_id, self.preset)
        if noise_seed is not None and (isinstance(noise_seed, bool) or not isinstance(noise_seed, (int, np.integer))):
            raise ChipValueError(f"noise_seed must be an integer or None, got {noise_seed!r}")
        self._rng = np.random.default_rng(noise_seed)
        self._noise = NoiseSource(self._rng, self.preset["noise"]["method"])
        self._drift_rng = stream_rng(self.chip_id, "drift")
        self._knobs = default_knobs()
        self._weights = np.zeros((N_HEMISPHERES, ROWS, COLS), dtype=np.int64)
        self._drift_gain = np.zeros(N_NEURONS)
        self._drift_offset = np.zeros(N_NEURONS)
        self._temperature = 25.0
        self._age_h = 0.0
        self._reference_code = None
        self._truth_access = bool(truth_access)
        self.hw_time_s = 0.0
        self.counters = dict(runs=0, vectors=0, events=0, reconfigurations=0, weight_writes=0, cadc_reads=0)
        self._invalidate()

    def __repr__(self):
        return f"Chip(chip_id={self.chip_id}, preset={self.preset.name!r})"

    # ----------------------------------------------------------- internals
    def _invalidate(self, hemisphere=None):
        if hemisphere is None or not hasattr(self, "_cache"):
            self._transfer = None
            self._cache = {}
        else:
            self._cache = {k: v for k, v in self._cache.items() if k[0] != hemisphere}

    def _state(self):
        if self._transfer is None:
            self._transfer = Transfer(self.preset, self._p, self._knobs, self._drift_gain,
                                      self._drift_offset, self._temperature)
        return self._transfer

    def _kernel_inputs(self, h, num_sends, wait):
        key = (h, num_sends, wait)
        c = self._cache.get(key)
        if c is not None:
            return c
        t = self._state()
        c = _Cache()
        c.pulse_flat = t.pulse_table(h, wait).astype(np.float32).ravel()
        c.w_eff = np.ascontiguousarray(t.effective_weights(h, self._weights[h], num_sends, wait), dtype=np.float32)
        off = t.offset(h, num_sends, wait)
        if self.preset["rounding"] == "floor":
            off = off - 0.5  # floor(y) == rint(y - 0.5) but for exact ties
        c.offset = off.astype(np.float32)
        sl = slice(h * COLS, (h + 1) * COLS)
        if self.preset["nonideal"]["soft_saturation"]:
            c.knee_hi = t.knee_hi[sl].astype(np.float32)
            c.sat_hi = t.sat_hi[sl].astype(np.float32)
            c.knee_lo = t.knee_lo[sl].astype(np.float32)
            c.sat_lo = t.sat_lo[sl].astype(np.float32)
            c.hi_min = float(c.knee_hi.min())
            c.lo_max = float(c.knee_lo.max())
        else:
            c.knee_hi = None
        lo, hi = t.bounds(h)
        c.lo, c.hi = lo.astype(np.float32), hi.astype(np.float32)
        c.noise_std = t.noise_std[sl].astype(np.float32)
        self._cache[key] = c
        return c

    def _vmm_hemisphere(self, h, x, num_sends, wait):
        """Core kernel: int activations (B,128) -> int8 results (B,256)."""
        c = self._kernel_inputs(h, num_sends, wait)
        idx = x.astype(np.intp, copy=False) + (np.arange(ROWS, dtype=np.intp) * 32)
        pulses = np.take(c.pulse_flat, idx)
        y = pulses @ c.w_eff
        y += c.offset
        if c.knee_hi is not None:
            self._soft_saturate(y, c)
        self._noise.add_scaled(y, c.noise_std)
        np.rint(y, out=y)
        np.maximum(y, c.lo, out=y)
        np.minimum(y, c.hi, out=y)
        return y.astype(np.int8)

    @staticmethod
    def _soft_saturate(y, c):
        if y.size == 0:
            return
        rows = np.flatnonzero((y.max(axis=1) > c.hi_min) | (y.min(axis=1) < c.lo_max))
        if rows.size == 0:
            return
        sub = y[rows]
        d = np.maximum(sub - c.knee_hi, 0)
        sub -= d - d / (1 + d / c.sat_hi)
        d = np.maximum(c.knee_lo - sub, 0)
        sub += d - d / (1 + d / c.sat_lo)
        y[rows] = sub

    # ------------------------------------------------------ observable: knobs
    def get_knob(self, name):
        """Current codes of knob ``name`` (a copy), shape (4,), (256,) or (512,)."""
        return self._knobs[knob_spec(name).name].copy()

    def knob_values(self):
        """All knob codes as a dict of copies."""
        return {k: v.copy() for k, v in self._knobs.items()}

    def set_knob(self, name, values, index=None):
        """Write knob ``name`` (all instances, or those selected by ``index``).

        Costs one reconfiguration (about 20 ms of hardware time).
        """
        self.set_knobs({name: values} if index is None else {name: (values, index)})

    def set_knobs(self, updates):
        """Write several knobs at once; one reconfiguration for the whole batch.

        Parameters
        ----------
        updates : dict
            ``{name: values}`` or ``{name: (values, index)}``. Everything is
            validated before anything is written.
        """
        if not isinstance(updates, dict):
            raise ChipValueError("set_knobs takes a dict {knob name: values}")
        staged = []
        for name, val in updates.items():
            spec = knob_spec(name)
            if isinstance(val, tuple) and len(val) == 2:
                values, index = val
            else:
                values, index = val, None
            staged.append((spec, spec.validate(values, index), index))
        for spec, arr, index in staged:
            if index is None:
                self._knobs[spec.name][:] = arr
            else:
                self._knobs[spec.name][index] = arr
        self._invalidate()
        self.counters["reconfigurations"] += 1
        self.hw_time_s += RECONFIG_S

    # ---------------------------------------------------- observable: weights
    def set_weights(self, w, hemisphere):
        """Program the signed weights of one hemisphere.

        Parameters
        ----------
        w : array-like of int, shape (128, 256)
            Weights in -63..63; the sign selects the excitatory or inhibitory row.
        hemisphere : {0, 1}
        """
        h = check_hemisphere(hemisphere)
        arr = _as_int_array(w, "weights", -W_MAX, W_MAX, "6-bit signed weights")
        if arr.shape != (ROWS, COLS):
            raise ChipValueError(f"weights must have shape ({ROWS}, {COLS}), got {arr.shape}")
        self._weights[h] = arr
        self._invalidate(h)
        self.counters["weight_writes"] += 1
        self.hw_time_s += WEIGHT_WRITE_S

    def get_weights(self, hemisphere):
        """The programmed weights of one hemisphere (a copy), shape (128, 256)."""
        return self._weights[check_hemisphere(hemisphere)].copy()

    # -------------------------------------------------------- observable: run
    def _check_inputs(self, x):
        return _as_int_array(x, "activations", 0, ACT_MAX, "5-bit inputs")

    def run(self, x, hemisphere=0, *, num_sends=1, wait_between_events=5):
        """Send a batch of input vectors and read the int8 results.

        Parameters
        ----------
        x : array-like of int, shape (batch, 128), or (2, batch, 128) with ``hemisphere="both"``
            Activations 0..31, one per driver (row).
        hemisphere : {0, 1, "both"}, default=0
            "both" runs the two hemispheres in parallel (one vector time).
        num_sends : int, default=1
            Repetitions of each vector (1..255); the signal grows with it.
        wait_between_events : int, default=5
            Spacing of input events in clock cycles of 8 ns (1..255).

        Returns
        -------
        ndarray of int8, shape (batch, 256) or (2, batch, 256)
            ``saturate_int8(read - baseline)`` of every column.
        """
        n = _check_run_param("num_sends", num_sends)
        wait = _check_run_param("wait_between_events", wait_between_events)
        both = isinstance(hemisphere, str) and hemisphere == "both"
        arr = self._check_inputs(x)
        if both:
            if arr.ndim != 3 or arr.shape[0] != 2 or arr.shape[2] != ROWS:
                raise ChipValueError(f"with hemisphere='both', x must have shape (2, batch, {ROWS}), got {arr.shape}")
            hemis = (0, 1)
        else:
            h = check_hemisphere(hemisphere)
            if arr.ndim != 2 or arr.shape[1] != ROWS:
                raise ChipValueError(f"x must have shape (batch, {ROWS}), got {arr.shape}")
            hemis = (h,)
            arr = arr[None]
        batch = arr.shape[1]
        if batch > MAX_BATCH:
            raise ChipValueError(f"batch of {batch} vectors exceeds the limit of {MAX_BATCH} per call")
        out = np.empty((len(hemis), batch, COLS), dtype=np.int8)
        events = np.count_nonzero(arr, axis=-1)  # (len(hemis), batch)
        for k, h in enumerate(hemis):
            out[k] = self._vmm_hemisphere(h, arr[k], n, wait)
        per_vector = VECTOR_OVERHEAD_S + events.max(axis=0) * n * wait * CLOCK_NS * 1e-9
        self.hw_time_s += float(per_vector.sum())
        self.counters["runs"] += 1
        self.counters["vectors"] += int(batch)
        self.counters["events"] += int(events.sum()) * n
        return out if both else out[0]

    def vmm(self, x, w, *, hemisphere=0, num_sends=1, wait_between_events=5):
        """Program ``w`` into ``hemisphere`` and run ``x`` through it (inputs are not modified)."""
        self.set_weights(w, hemisphere)
        return self.run(x, hemisphere, num_sends=num_sends, wait_between_events=wait_between_events)

    # ------------------------------------------------------- observable: CADC
    def _noisy_reads(self, expected, n):
        std = self.preset["noise"]["result_std_lsb"] / np.sqrt(2.0)
        y = np.broadcast_to(expected.astype(np.float32), (n,) + expected.shape).copy()
        self._noise.add_scaled(y, std)
        np.rint(y, out=y)
        return np.clip(y, 0, 255).astype(np.uint8)

    def _check_n(self, n):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_BATCH:
            raise ChipValueError(f"n must be an integer in 1..{MAX_BATCH}, got {n!r}")
        return int(n)

    def read_baseline(self, hemisphere=None, n=1):
        """Raw CADC reads (0..255) of the reset membranes, as before every VMM.

        Parameters
        ----------
        hemisphere : {0, 1, None}, default=None
            None reads all 512 channels.
        n : int, default=1
            Number of repeated reads.

        Returns
        -------
        ndarray of uint8, shape (n, 256) or (n, 512)
        """
        n = self._check_n(n)
        base = self._state().baseline
        if hemisphere is not None:
            h = check_hemisphere(hemisphere)
            base = base[h * COLS:(h + 1) * COLS]
        self.counters["cadc_reads"] += n
        self.hw_time_s += n * CADC_READ_S
        return self._noisy_reads(base, n)

    def read_cadc_reference(self, code, n=1):
        """Raw reads of all 512 CADC channels connected to the global reference DAC.

        Parameters
        ----------
        code : int
            Reference DAC code 0..1022 (about 1.2 V full scale). Changing it
            costs one reconfiguration.
        n : int, default=1

        Returns
        -------
        ndarray of uint8, shape (n, 512)
        """
        if isinstance(code, (bool, np.bool_)) or not isinstance(code, (int, np.integer)) or not 0 <= code <= 1022:
            raise ChipValueError(f"reference code must be an integer in 0..1022, got {code!r}")
        n = self._check_n(n)
        t = self._state()
        if code != self._reference_code:
            self._reference_code = int(code)
            self.counters["reconfigurations"] += 1
            self.hw_time_s += RECONFIG_S
        self.counters["cadc_reads"] += n
        self.hw_time_s += n * CADC_READ_S
        return self._noisy_reads(t.cadc_read(code * t.reference_gain), n)

    @property
    def temperature_c(self):
        """Reading of the chip's temperature sensor, degrees Celsius."""
        return self._temperature

    @property
    def age_h(self):
        """Simulated hours the chip has been in service (see :meth:`advance`)."""
        return self._age_h

    # ------------------------------------------------ environment (not hardware)
    def advance(self, hours=0.0, temperature_c=None):
        """Let time pass and/or change the temperature: the chip drifts.

        This is the simulation's environment, not a hardware operation:
        calibration and inference code never call it. Gains and offsets of
        every neuron take a random walk (deterministic for a chip id and a
        sequence of calls) and follow their temperature coefficients.

        Parameters
        ----------
        hours : float, default=0.0
            Time to pass, >= 0.
        temperature_c : float or None, default=None
            New die temperature in degrees Celsius (-40..125), None keeps it.
        """
        hours = float(hours)
        if not np.isfinite(hours) or hours < 0 or hours > 1e6:
            raise ChipValueError(f"hours must be in 0..1e6, got {hours}")
        if temperature_c is not None:
            temperature_c = float(temperature_c)
            if not np.isfinite(temperature_c) or not -40 <= temperature_c <= 125:
                raise ChipValueError(f"temperature_c must be in -40..125, got {temperature_c}")
            self._temperature = temperature_c
        if hours > 0:
            d = self.preset["drift"]
            s = np.sqrt(hours)
            self._drift_gain += self._drift_rng.standard_normal(N_NEURONS) * d["gain_rw_per_sqrt_h"] * s
            self._drift_offset += self._drift_rng.standard_normal(N_NEURONS) * d["offset_rw_lsb_per_sqrt_h"] * s
            self._age_h += hours
        self._invalidate()

    # ------------------------------------------------------------------ truth
    @property
    def truth(self):
        """The hidden truth (tests and benchmarks only), see :class:`chipsim.truth.Truth`."""
        if not self._truth_access:
            raise TruthAccessError(
                f"chip {self.chip_id}: truth access is locked (only the observable interface may be used)")
        from .truth import Truth

        return Truth(self)
