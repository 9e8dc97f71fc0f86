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
from . import kernel
from .knobs import RUN_LIMITS, default_knobs, knob_spec
from .noise import NoiseStream
from .params import draw_params, stream_rng
from .physics import Transfer
from .preset import load_preset
from .validation import as_int_array

MAX_BATCH = 1 << 20  #: largest batch of one run call (vectors)
VECTOR_OVERHEAD_S = 40e-6  #: reset, baseline read and result read per vector
RECONFIG_S = 20e-3  #: settling of analog parameters after a batch of knob writes
WEIGHT_WRITE_S = 0.5e-3  #: writing one hemisphere's 32 768 weights
CADC_READ_S = 10e-6  #: one CADC read of all channels
VECTOR_READS = 2  #: CADC reads per vector (baseline and result), part of :data:`VECTOR_OVERHEAD_S`
VECTOR_FIXED_S = VECTOR_OVERHEAD_S - VECTOR_READS * CADC_READ_S  #: resets and settling per vector
#: categories of simulated hardware time, see :attr:`Chip.hw_time_split`
HW_TIME_CATEGORIES = ("knobs", "weights", "events", "vector_fixed", "readout")


def _as_int_array(a, what, lo, hi, shape_desc):
    return as_int_array(a, what, lo, hi, note=shape_desc)


def _as_activations(x):
    """``x`` as an integer array (integer arrays as they are: the kernel checks their range in its first pass)."""
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype.kind in "iu":
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))  # the loops read native order
    return _as_int_array(arr, "activations", 0, ACT_MAX, "5-bit inputs").astype(np.int64)


def _check_run_param(name, value):
    lo, hi = RUN_LIMITS[name]
    if value.__class__ is int and lo <= value <= hi:  # the common case, fast
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ChipValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    if not lo <= value <= hi:
        raise ChipValueError(f"{name} must be in {lo}..{hi}, got {value}")
    return int(value)


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
        self._stream = NoiseStream(noise_seed)
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
        self._hw_split = dict.fromkeys(HW_TIME_CATEGORIES, 0.0)
        self.counters = dict(runs=0, vectors=0, events=0, reconfigurations=0, weight_writes=0, cadc_reads=0)
        self._invalidate()

    def __repr__(self):
        return f"Chip(chip_id={self.chip_id}, preset={self.preset.name!r})"

    # ----------------------------------------------------------- internals
    def _charge(self, category, seconds):
        """Advance the hardware clock by ``seconds`` spent on ``category``."""
        self.hw_time_s += seconds
        self._hw_split[category] += seconds

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

    def _plan(self, h, num_sends, wait):
        key = (h, num_sends, wait)
        plan = self._cache.get(key)
        if plan is not None:
            return plan
        t = self._state()
        sl = slice(h * COLS, (h + 1) * COLS)
        sat = None
        if self.preset["nonideal"]["soft_saturation"]:
            sat = (t.knee_hi[sl], t.sat_hi[sl], t.knee_lo[sl], t.sat_lo[sl])
        plan = kernel.make_plan(
            t.pulse_table(h, wait), t.effective_weights(h, self._weights[h], num_sends, wait),
            t.offset(h, num_sends, wait), t.bounds(h), sat, t.noise_std[sl],
            self.preset["noise"]["method"], self.preset["rounding"] == "floor", codes=self._weights[h])
        self._cache[key] = plan
        return plan

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
        self._charge("knobs", RECONFIG_S)

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
        self._charge("weights", WEIGHT_WRITE_S)

    def get_weights(self, hemisphere):
        """The programmed weights of one hemisphere (a copy), shape (128, 256)."""
        return self._weights[check_hemisphere(hemisphere)].copy()

    # -------------------------------------------------------- observable: run
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
        both = hemisphere == "both" if isinstance(hemisphere, str) else False
        if not both:
            h = hemisphere if (hemisphere.__class__ is int and 0 <= hemisphere <= 1) else check_hemisphere(hemisphere)
        arr = _as_activations(x)
        if both:
            if arr.ndim != 3 or arr.shape[0] != 2 or arr.shape[2] != ROWS:
                raise ChipValueError(f"with hemisphere='both', x must have shape (2, batch, {ROWS}), got {arr.shape}")
            plans = (self._plan(0, n, wait), self._plan(1, n, wait))
        else:
            if arr.ndim != 2 or arr.shape[1] != ROWS:
                raise ChipValueError(f"x must have shape (batch, {ROWS}), got {arr.shape}")
            arr = arr[None]
            plans = (self._plan(h, n, wait),)
        batch = arr.shape[1]
        if batch > MAX_BATCH:
            raise ChipValueError(f"batch of {batch} vectors exceeds the limit of {MAX_BATCH} per call")
        out, events = kernel.run(arr, plans, self._stream)
        if both:
            slowest = int(np.maximum(events[0], events[1]).sum())  # the hemispheres run in parallel
            total = int(events.sum())
        else:
            slowest = total = int(events.sum())
        self._charge("vector_fixed", batch * VECTOR_FIXED_S)
        self._charge("readout", batch * VECTOR_READS * CADC_READ_S)
        self._charge("events", slowest * n * wait * CLOCK_NS * 1e-9)
        c = self.counters
        c["runs"] += 1
        c["vectors"] += batch
        c["events"] += total * n
        return out if both else out[0]

    def vmm(self, x, w, *, hemisphere=0, num_sends=1, wait_between_events=5):
        """Program ``w`` into ``hemisphere`` and run ``x`` through it (inputs are not modified)."""
        self.set_weights(w, hemisphere)
        return self.run(x, hemisphere, num_sends=num_sends, wait_between_events=wait_between_events)

    # ------------------------------------------------------- observable: CADC
    def _noisy_reads(self, expected, n):
        std = self.preset["noise"]["result_std_lsb"] / np.sqrt(2.0)
        y = np.broadcast_to(np.asarray(expected, dtype=np.float32), (n,) + expected.shape)
        y = self._stream.noisy_round(y, std, self.preset["noise"]["method"])
        return np.clip(y, 0, 255, out=y).astype(np.uint8)

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
        self._charge("readout", n * CADC_READ_S)
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
            self._charge("knobs", RECONFIG_S)
        self.counters["cadc_reads"] += n
        self._charge("readout", n * CADC_READ_S)
        return self._noisy_reads(t.cadc_read(code * t.reference_gain), n)

    @property
    def hw_time_split(self):
        """Simulated hardware time by category, seconds (a dict, a copy); the values sum to :attr:`hw_time_s`.

        ``knobs``: settling after knob writes and reference DAC changes (20 ms each);
        ``weights``: weight writes (0.5 ms per hemisphere); ``events``: input events
        (events x num_sends x wait x 8 ns, the slower hemisphere of a parallel run);
        ``vector_fixed``: resets and settling of every vector (20 us); ``readout``: CADC
        reads, two per vector (baseline and result, 10 us each) and every standalone read.
        """
        return dict(self._hw_split)

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
