"""The correction model of docs/artifact-format.md: one copy, for calibration, verify, the engine and benchmarks.

    E[y_j] = offset_lsb[n_j] + n * gain_target * (1 - kappa (n - n_ref)) * sum_i T[d_i, x_i] * (
                 D(w+_ij) gain_exc[n_j] s_exc[h, i, j] - D(w-_ij) gain_inh[n_j] s_inh[h, i, j])

:class:`CorrectionModel` holds an artifact's tables as arrays and decides, in
one place, which values a chip is corrected with (:meth:`CorrectionModel.predict`
uses exactly those; the inference engine's :class:`infer.Corrections` inverts
them):

* a **neuron** is corrected with its fitted gains and offset whenever it is live
  (not dead) and they were measured (finite, gains > 0): *weak* neurons (gain
  below :data:`calib.tables.WEAK_GAIN`, knob at its range limit) and noisy ones
  included; only a neuron whose fit produced nothing falls back to nominal (gain
  1, offset 0). A dead neuron has gain 0 (its column carries nothing);
* a **driver** uses its measured transfer unless it is dead or unmeasured
  (identity ``T[d, x] = x``);
* a **synapse** uses its measured relative gain where finite (1 otherwise);
  stuck-at-max synapses pass ``D(63)`` whatever is programmed, stuck-at-zero ones
  nothing.

Missing tables mean identity. The compatibility check is :func:`calib.compat.mismatches`.
Only numpy (and pandas for tables) is used here: this is the artifact layer,
which the inference engine imports; nothing fits.
"""
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from bss2_calib.chipsim.geometry import ACT_MAX, COLS, N_DRIVERS, N_HEMISPHERES, N_NEURONS, ROWS, W_MAX

from . import compat
from .errors import CorrectionTableError
from .tables import WEAK_GAIN

__all__ = ["CorrectionModel", "Faults"]

N_ACT = ACT_MAX + 1  # 32 activation codes
KNOB_TABLES = {"knobs_quadrant": "quadrant", "knobs_driver": "driver", "knobs_neuron": "neuron"}
_SYN = (N_HEMISPHERES, ROWS, COLS)
_SYN4 = (2,) + _SYN  # (sign: 0 excitatory / 1 inhibitory, hemisphere, row, column)


def readonly(a, dtype=np.float64):
    a = np.array(a, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Faults:
    """Faulty elements recorded by a calibration (all False by default).

    Parameters
    ----------
    driver_dead : array-like of bool, shape (256,)
    neuron_dead, neuron_noisy : array-like of bool, shape (512,)
    stuck_zero, stuck_max : array-like of bool, shape (2, 2, 128, 256)
        (sign, hemisphere, row, column); sign 0 is the excitatory row, 1 the inhibitory one.
    """

    driver_dead: np.ndarray = None
    neuron_dead: np.ndarray = None
    neuron_noisy: np.ndarray = None
    stuck_zero: np.ndarray = None
    stuck_max: np.ndarray = None

    def __post_init__(self):
        for name, shape in (("driver_dead", (N_DRIVERS,)), ("neuron_dead", (N_NEURONS,)),
                            ("neuron_noisy", (N_NEURONS,)), ("stuck_zero", _SYN4), ("stuck_max", _SYN4)):
            v = getattr(self, name)
            a = np.zeros(shape, bool) if v is None else np.asarray(v, dtype=bool)
            if a.shape != shape:
                raise CorrectionTableError(f"faults.{name} must have shape {shape}, got {a.shape}")
            object.__setattr__(self, name, readonly(a, bool))

    def counts(self):
        """Number of faulty elements of each kind (dict)."""
        return {"dead_drivers": int(self.driver_dead.sum()), "dead_neurons": int(self.neuron_dead.sum()),
                "noisy_neurons": int(self.neuron_noisy.sum()), "stuck_zero_synapses": int(self.stuck_zero.sum()),
                "stuck_max_synapses": int(self.stuck_max.sum())}


@dataclass(frozen=True, eq=False)
class CorrectionModel:
    """The correction arrays of one chip, built from a calibration artifact.

    Parameters
    ----------
    pulse_steps : array-like of shape (256, 32)
        Driver transfer ``T[d, x]`` in nominal activation steps (0 at x = 0, monotone).
    gain_exc, gain_inh : array-like of shape (512,)
        Neuron input gains relative to the target gain (NaN: not measured).
    offset_lsb : array-like of shape (512,)
        Mean result at zero input, output LSB.
    synapse_exc, synapse_inh : array-like of shape (2, 128, 256)
        Per-synapse gains relative to their column (median 1).
    driver_ok, neuron_ok : array-like of bool, shape (256,) and (512,), default all True
        The tables' ``success`` flags (a weak or noisy neuron is not ``ok`` but is still
        corrected with its fitted values, see the module docstring).
    synapse_ok : array-like of bool, shape (2, 128, 256), default all True
    weight_transfer : array-like of shape (64,) or None, default=None
        Effective weight ``D(c)`` of each code 0..63 (finite, D(63) > 0); None is the identity.
    faults : Faults or None, default=None
    gain_target : float, default=0.002
        Target gain ``g_t``, output LSB per unit of x*w per send.
    chip_id : int or None, default=None
        Chip the tables were measured on (None: not checked).
    preset_name, preset_sha256 : str or None, default=None
        Preset of that chip (the hash is checked when given).
    conditions : dict, default={}
        ``wait_between_events``, ``num_sends_min``, ``num_sends_max``, ``temperature_c``,
        ``temperature_tolerance_k`` (missing keys are not checked), ``num_sends_ref`` and
        ``send_decay_per_send`` (the gain's decay per extra send; absent: none).
    knobs : dict of str to array-like, default={}
        Knob codes to write before use (``chip.set_knobs`` format); empty writes nothing.
    noise_lsb : array-like of shape (512,) or None, default=None
        Measured trial-to-trial noise per neuron (NaN or None: not measured).
    """

    pulse_steps: np.ndarray
    gain_exc: np.ndarray
    gain_inh: np.ndarray
    offset_lsb: np.ndarray
    synapse_exc: np.ndarray
    synapse_inh: np.ndarray
    driver_ok: np.ndarray = None
    neuron_ok: np.ndarray = None
    synapse_ok: np.ndarray = None
    weight_transfer: np.ndarray = None
    faults: Faults = None
    gain_target: float = 0.002
    chip_id: int = None
    preset_name: str = None
    preset_sha256: str = None
    conditions: dict = field(default_factory=dict)
    knobs: dict = field(default_factory=dict)
    noise_lsb: np.ndarray = None

    def __post_init__(self):
        shapes = {"pulse_steps": (N_DRIVERS, N_ACT), "gain_exc": (N_NEURONS,), "gain_inh": (N_NEURONS,),
                  "offset_lsb": (N_NEURONS,), "synapse_exc": _SYN, "synapse_inh": _SYN}
        for name, shape in shapes.items():
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.shape != shape:
                raise CorrectionTableError(f"{name} must have shape {shape}, got {a.shape}")
            object.__setattr__(self, name, readonly(a))
        for name, shape in (("driver_ok", (N_DRIVERS,)), ("neuron_ok", (N_NEURONS,)), ("synapse_ok", _SYN)):
            v = getattr(self, name)
            a = np.ones(shape, bool) if v is None else np.asarray(v, dtype=bool)
            if a.shape != shape:
                raise CorrectionTableError(f"{name} must have shape {shape}, got {a.shape}")
            object.__setattr__(self, name, readonly(a, bool))
        noise = np.full(N_NEURONS, np.nan) if self.noise_lsb is None else np.asarray(self.noise_lsb, np.float64)
        if noise.shape != (N_NEURONS,):
            raise CorrectionTableError(f"noise_lsb must have shape ({N_NEURONS},), got {noise.shape}")
        object.__setattr__(self, "noise_lsb", readonly(noise))
        D = np.arange(W_MAX + 1, dtype=np.float64) if self.weight_transfer is None else \
            np.asarray(self.weight_transfer, dtype=np.float64)
        if D.shape != (W_MAX + 1,) or not np.all(np.isfinite(D)) or not D[-1] > 0:
            raise CorrectionTableError("weight_transfer must hold 64 finite values with D(63) > 0")
        object.__setattr__(self, "weight_transfer", readonly(D))
        if self.faults is None:
            object.__setattr__(self, "faults", Faults())
        elif not isinstance(self.faults, Faults):
            raise CorrectionTableError("faults must be a Faults")
        g = self.gain_target
        if isinstance(g, bool) or not isinstance(g, (int, float, np.floating)) or not 0 < g < 1:
            raise CorrectionTableError(f"gain_target must be a number in (0, 1), got {g!r}")
        object.__setattr__(self, "gain_target", float(g))
        object.__setattr__(self, "conditions", MappingProxyType(dict(self.conditions or {})))
        object.__setattr__(self, "knobs", MappingProxyType(
            {k: readonly(v, np.int64) for k, v in (self.knobs or {}).items()}))
        oks = {"pulse_steps": np.broadcast_to(self.driver_ok[:, None], self.pulse_steps.shape),
               "gain_exc": self.neuron_ok, "gain_inh": self.neuron_ok, "offset_lsb": self.neuron_ok,
               "synapse_exc": self.synapse_ok, "synapse_inh": self.synapse_ok}
        for name, ok in oks.items():
            if not np.all(np.isfinite(getattr(self, name)[ok])):
                raise CorrectionTableError(f"{name} holds NaN or inf in rows marked successful")
        self._derive()

    def _derive(self):
        """The values the chip is corrected with (see the module docstring), read-only."""
        f = self.faults
        set_ = object.__setattr__
        dead = f.neuron_dead
        with np.errstate(invalid="ignore"):
            fitted = (~dead & np.isfinite(self.gain_exc) & np.isfinite(self.gain_inh) & np.isfinite(self.offset_lsb)
                      & (self.gain_exc > 0) & (self.gain_inh > 0))
            weak = fitted & ((self.gain_exc < WEAK_GAIN) | (self.gain_inh < WEAK_GAIN))
        set_(self, "neuron_fitted", readonly(fitted, bool))
        set_(self, "neuron_weak", readonly(weak, bool))
        set_(self, "gain_exc_used", readonly(np.where(fitted, self.gain_exc, np.where(dead, 0.0, 1.0))))
        set_(self, "gain_inh_used", readonly(np.where(fitted, self.gain_inh, np.where(dead, 0.0, 1.0))))
        off = np.where(fitted | (dead & np.isfinite(self.offset_lsb)), self.offset_lsb, 0.0)
        set_(self, "offset", readonly(off))
        ramp = np.arange(N_ACT, dtype=np.float64)[None, :]
        driver_used = self.driver_ok & ~f.driver_dead & np.all(np.isfinite(self.pulse_steps), axis=1)
        T = np.where(driver_used[:, None], self.pulse_steps, ramp)
        T[:, 0] = 0.0
        set_(self, "driver_fitted", readonly(driver_used, bool))
        set_(self, "T", readonly(T))
        set_(self, "D", self.weight_transfer)
        set_(self, "s_exc", readonly(np.where(np.isfinite(self.synapse_exc), self.synapse_exc, 1.0)))
        set_(self, "s_inh", readonly(np.where(np.isfinite(self.synapse_inh), self.synapse_inh, 1.0)))
        c = self.conditions
        set_(self, "kappa", float(c.get("send_decay_per_send") or 0.0))
        set_(self, "n_ref", float(c.get("num_sends_ref") or 1))

    # ------------------------------------------------------------ constructors
    @classmethod
    def identity(cls, chip=None, *, gain_target=0.002, conditions=None):
        """A model that changes nothing: identity transfer, unit gains, zero offsets.

        Parameters
        ----------
        chip : chipsim.Chip or None, default=None
            If given, the model is stamped with its id and preset (no knobs).
        gain_target : float, default=0.002
        conditions : dict or None, default=None
        """
        return cls(pulse_steps=np.tile(np.arange(N_ACT, dtype=np.float64), (N_DRIVERS, 1)),
                   gain_exc=np.ones(N_NEURONS), gain_inh=np.ones(N_NEURONS), offset_lsb=np.zeros(N_NEURONS),
                   synapse_exc=np.ones(_SYN), synapse_inh=np.ones(_SYN), gain_target=gain_target,
                   chip_id=None if chip is None else chip.chip_id,
                   preset_name=None if chip is None else chip.preset.name,
                   preset_sha256=None if chip is None else chip.preset.sha256, conditions=conditions or {})

    @classmethod
    def from_artifact(cls, artifact):
        """Build from a loaded artifact (anything with ``.tables`` and ``.manifest``); a model of this class as is."""
        if isinstance(artifact, cls):
            return artifact
        if isinstance(artifact, CorrectionModel):
            return cls(**{k: getattr(artifact, k) for k in CorrectionModel.__dataclass_fields__})
        tables, manifest = getattr(artifact, "tables", None), getattr(artifact, "manifest", None)
        if tables is None or manifest is None:
            raise CorrectionTableError(
                f"expected a calibration artifact with .tables and .manifest, got {type(artifact).__name__}")
        return cls.from_tables(tables, manifest)

    @classmethod
    def from_tables(cls, tables, manifest):
        """Build from the artifact's tables (mapping of DataFrames) and its manifest (dict).

        Missing correction tables mean identity; present ones must have the documented index
        levels, size and columns. Fault columns (``dead``, ``noisy``, ``stuck_*``) are optional.

        Raises
        ------
        CorrectionTableError
            If a table lacks an index level, a required column, or has the wrong size.
        """
        manifest = dict(manifest or {})
        kw, faults = {}, {}
        if "neuron_correction" in tables:
            nc = _frame(tables, "neuron_correction", ["neuron"], N_NEURONS, ["gain_exc", "gain_inh", "offset_lsb"])
            kw.update(gain_exc=_col(nc, "gain_exc"), gain_inh=_col(nc, "gain_inh"),
                      offset_lsb=_col(nc, "offset_lsb"), neuron_ok=_success(nc))
            if "noise_lsb" in nc.columns:
                kw["noise_lsb"] = _col(nc, "noise_lsb")
            faults.update(neuron_dead=_flag(nc, "dead"), neuron_noisy=_flag(nc, "noisy"))
        else:
            kw.update(gain_exc=np.ones(N_NEURONS), gain_inh=np.ones(N_NEURONS), offset_lsb=np.zeros(N_NEURONS))
        if "driver_transfer" in tables:
            dt = _frame(tables, "driver_transfer", ["driver", "activation"], N_DRIVERS * N_ACT, ["pulse_steps"])
            kw.update(pulse_steps=_col(dt, "pulse_steps").reshape(N_DRIVERS, N_ACT),
                      driver_ok=_success(dt).reshape(N_DRIVERS, N_ACT).all(axis=1))
            faults["driver_dead"] = _flag(dt, "dead").reshape(N_DRIVERS, N_ACT).any(axis=1)
        else:
            kw["pulse_steps"] = np.tile(np.arange(N_ACT, dtype=np.float64), (N_DRIVERS, 1))
        if "synapse_gain" in tables:
            sg = _frame(tables, "synapse_gain", ["hemisphere", "row", "column"], N_HEMISPHERES * ROWS * COLS,
                        ["gain_exc", "gain_inh"])
            kw.update(synapse_exc=_col(sg, "gain_exc").reshape(_SYN), synapse_inh=_col(sg, "gain_inh").reshape(_SYN),
                      synapse_ok=_success(sg).reshape(_SYN))
            for kind in ("zero", "max"):
                faults[f"stuck_{kind}"] = np.stack([_flag(sg, f"stuck_{kind}_{sign}").reshape(_SYN)
                                                    for sign in ("exc", "inh")])
        else:
            kw.update(synapse_exc=np.ones(_SYN), synapse_inh=np.ones(_SYN))
        if "weight_transfer" in tables:
            wtf = _frame(tables, "weight_transfer", ["weight"], W_MAX + 1, ["effective_weight"])
            kw["weight_transfer"] = _col(wtf, "effective_weight")
        knobs = {}
        for tname, level in KNOB_TABLES.items():
            if tname in tables:
                df = tables[tname]
                _check_index(df, tname, [level])
                df = df.sort_index()
                for col in df.columns:
                    if col != "success":
                        knobs[col] = df[col].to_numpy(np.int64)
        preset = manifest.get("preset") or {}
        target = manifest.get("target") or {}
        return cls(**kw, faults=Faults(**faults), gain_target=float(target.get("gain_lsb_per_unit", 0.002)),
                   chip_id=manifest.get("chip_id"), preset_name=preset.get("name"),
                   preset_sha256=preset.get("sha256"), conditions=manifest.get("conditions") or {}, knobs=knobs)

    # --------------------------------------------------------------- checking
    def mismatches(self, chip=None, *, num_sends=None, wait_between_events=None, temperature_c=None):
        """Fields in which ``chip`` and the run conditions differ from what the tables were made for.

        Returns
        -------
        list of (str, str)
            ``(field, explanation)`` pairs (:func:`calib.compat.mismatches`); empty when everything matches.
        """
        return compat.mismatches(self.chip_id, {"name": self.preset_name, "sha256": self.preset_sha256},
                                 self.conditions, chip, num_sends=num_sends,
                                 wait_between_events=wait_between_events, temperature_c=temperature_c)

    def check(self, chip=None, **run):
        """Raise :class:`~calib.errors.IncompatibleArtifact` naming the first field of :meth:`mismatches`."""
        compat.check(self.chip_id, {"name": self.preset_name, "sha256": self.preset_sha256}, self.conditions,
                     chip, **run)

    def summary(self):
        """Counts of entries corrected with nominal values (nothing measured), weak neurons and faulty elements."""
        return {"drivers_not_calibrated": int((~self.driver_fitted & ~self.faults.driver_dead).sum()),
                "neurons_not_calibrated": int((~self.neuron_fitted & ~self.faults.neuron_dead).sum()),
                "synapses_not_calibrated": int((~np.isfinite(self.synapse_exc) | ~np.isfinite(self.synapse_inh)).sum()),
                "weak_neurons": int(self.neuron_weak.sum()), **self.faults.counts()}

    # ----------------------------------------------------------- the spreads
    def neuron_gain_spread(self):
        """rms relative deviation from 1 of the fitted gains of live, non-weak neurons (0 if none).

        What a neuron corrected with nominal values is typically off by: the routing cost of
        such a column comes from here, not from a preset constant.
        """
        ok = self.neuron_fitted & ~self.neuron_weak
        g = np.concatenate([self.gain_exc[ok], self.gain_inh[ok]])
        return float(np.sqrt(np.mean((g - 1) ** 2))) if g.size else 0.0

    def driver_gain_spread(self):
        """rms relative deviation from 1 of the measured driver amplitudes ``T[d, 31] / 31`` (0 if none)."""
        a = self.T[self.driver_fitted, ACT_MAX] / ACT_MAX
        return float(np.sqrt(np.mean((a - 1) ** 2))) if a.size else 0.0

    # ------------------------------------------------------------- prediction
    def send_factor(self, num_sends, send_decay=True):
        """Relative gain at ``num_sends`` from the per-send decay: ``1 - kappa (n - n_ref)`` (>= 1e-3)."""
        return max(1.0 - self.kappa * (num_sends - self.n_ref), 1e-3) if send_decay else 1.0

    def effective_weights(self, w, hemisphere):
        """``D(w+) gain_exc s_exc - D(w-) gain_inh s_inh`` of signed weights ``w`` (128, 256) on a hemisphere.

        Stuck-at-max synapses pass ``D(63)``, stuck-at-zero ones nothing, whatever is programmed.
        """
        h, f = hemisphere, self.faults
        w = np.asarray(w, dtype=np.int64)
        D = self.D
        exc = np.where(f.stuck_max[0, h], D[W_MAX], D[np.clip(w, 0, W_MAX)])
        inh = np.where(f.stuck_max[1, h], D[W_MAX], D[np.clip(-w, 0, W_MAX)])
        exc = np.where(f.stuck_zero[0, h], 0.0, exc)
        inh = np.where(f.stuck_zero[1, h], 0.0, inh)
        sl = slice(h * COLS, (h + 1) * COLS)
        return exc * self.s_exc[h] * self.gain_exc_used[sl] - inh * self.s_inh[h] * self.gain_inh_used[sl]

    def pulses(self, x, hemisphere):
        """Effective activations ``T[d, x]`` of inputs ``x`` (batch, 128); a dead driver passes nothing."""
        x = np.asarray(x, dtype=np.int64)
        d = hemisphere * ROWS + np.arange(ROWS)
        return np.where(self.faults.driver_dead[d], 0.0, self.T[d, x])

    def predict(self, x, w, hemisphere=0, num_sends=1, *, send_decay=True):
        """Mean raw result of inputs ``x`` (batch, 128) through programmed weights ``w`` (128, 256).

        Parameters
        ----------
        x : array-like of int, shape (batch, 128)
            Activation codes 0..31 as sent to the drivers.
        w : array-like of int, shape (128, 256)
            Signed weight codes -63..63 as programmed.
        hemisphere : {0, 1}, default=0
        num_sends : int, default=1
        send_decay : bool, default=True
            Apply the per-send decay ``kappa`` away from ``num_sends_ref``.

        Returns
        -------
        ndarray of float64, shape (batch, 256)
            Valid in the linear range (no saturation is modelled).
        """
        scale = num_sends * self.gain_target * self.send_factor(num_sends, send_decay)
        sl = slice(hemisphere * COLS, (hemisphere + 1) * COLS)
        return self.offset[sl] + scale * self.pulses(x, hemisphere) @ self.effective_weights(w, hemisphere)


# ------------------------------------------------------------------ table reading
def _check_index(df, name, levels):
    names = list(df.index.names)
    if names != levels:
        raise CorrectionTableError(f"table {name}: index levels must be {levels}, got {names}")


_LEVEL_SIZES = {"neuron_correction": (N_NEURONS,), "driver_transfer": (N_DRIVERS, N_ACT),
                "synapse_gain": _SYN, "weight_transfer": (W_MAX + 1,)}


def _frame(tables, name, levels, n_rows, columns):
    df = tables[name]
    _check_index(df, name, levels)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CorrectionTableError(f"table {name} lacks the column(s) {', '.join(missing)}")
    if len(df) != n_rows:
        raise CorrectionTableError(f"table {name} has {len(df)} rows, expected {n_rows}")
    df = df.sort_index()
    if not df.index.is_unique:
        raise CorrectionTableError(f"table {name} has duplicate index entries")
    for lvl, size in zip(levels, _LEVEL_SIZES[name]):
        vals = df.index.get_level_values(lvl)
        if vals.min() < 0 or vals.max() >= size:
            raise CorrectionTableError(f"table {name}: index {lvl} outside 0..{size - 1}")
    return df


def _col(df, name):
    try:
        return df[name].to_numpy(np.float64)
    except (TypeError, ValueError) as err:
        raise CorrectionTableError(f"column {name} is not numeric ({err})") from None


def _flag(df, name):
    return df[name].to_numpy(bool) if name in df.columns else np.zeros(len(df), bool)


def _success(df):
    return _flag(df, "success") if "success" in df.columns else np.ones(len(df), bool)
