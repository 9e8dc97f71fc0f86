"""Calibration tables turned into the engine's correction arrays.

A calibration artifact (see docs/artifact-format.md) describes, for its knob
settings, the mean int8 result of column ``j`` of hemisphere ``h``::

    E[y_j] = offset_lsb[n_j] + n * g_t * sum_i T[d_i, x_i] * (
                 D(w+_ij) * gain_exc[n_j] * s_exc[h,i,j] - D(w-_ij) * gain_inh[n_j] * s_inh[h,i,j])

:class:`Corrections` inverts that model so that a corrected chip computes
``n * g_t * x.W`` (output LSB at the target gain ``g_t``):

* **inputs**, per driver: the driver's scale is the chord of its transfer,
  ``a_d = T[d, 31] / 31``; activation ``x`` is sent as the code ``k`` whose
  pulse ``T[d, k]`` is nearest to ``a_d * x`` (:attr:`Corrections.input_lut`).
  This linearises short pulses and comparator offsets; ``a_d`` itself moves
  into the synapse gain below.
* **weights**, per synapse: with ``G+_ij = a_d * gain_exc[n_j] * s_exc[h,i,j]``
  (``G-`` likewise), weight ``w`` is programmed as the code ``c`` with
  ``D(c)`` nearest to ``|w| * h_j / G_ij``, signed like ``w``. The
  **headroom scale** ``h_j`` of a column is the largest value that keeps every
  programmed weight of the column within 63, capped at ``max_scale`` (default
  1) and floored at ``min_scale`` (default 0.5; below it the few weights that
  would exceed 63 are clipped and counted).
* **outputs**, per column: ``y_corrected = (y - offset_lsb[n_j]) / (h_j * f(n))``
  with the artifact's per-send gain decay ``f(n) = 1 - kappa (n - n_ref)``
  (``conditions.send_decay_per_send`` and ``conditions.num_sends_ref``; 1 if absent).

Table rows with ``success == False`` are not used as fitted values: such a
driver, neuron or synapse gets its nominal value (identity transfer, gain 1,
offset 0) and is counted in :meth:`Corrections.summary`. Faulty elements
(:class:`Faults`, from the tables' ``dead``/``stuck_*`` columns) are handled
explicitly: a dead driver's row and a stuck-at-zero synapse carry no weight
(the weights there are dropped and counted), a dead neuron's column reads 0,
and a stuck-at-max synapse is compensated through its partner row of the other
sign (the pair is programmed so that the sum is the wanted weight) where the
6-bit range allows it. Where a tile leaves room, :mod:`infer.routing` moves
logical rows and columns off faulty elements and gives rows that still lose
weight a second (partner) driver row, so that nothing needs dropping
(``CorrectionOptions.remap``, ``spare_rows``, ``spare_columns``). Missing tables
mean identity, as in calib's ``CorrectionModel``.

Only numpy and pandas are used here; nothing fits, nothing touches a chip's
hidden truth.
"""
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from bss2_calib.chipsim.geometry import ACT_MAX, COLS, N_DRIVERS, N_HEMISPHERES, N_NEURONS, ROWS, W_MAX

from .errors import CorrectionTableError, InferValueError

__all__ = ["CorrectionOptions", "Corrections", "Faults"]

N_ACT = ACT_MAX + 1  # 32 activation codes
_KNOB_TABLES = {"knobs_quadrant": "quadrant", "knobs_driver": "driver", "knobs_neuron": "neuron"}
_TINY_GAIN = 1e-3  # synapse gains below this (relative) are treated as no connection


@dataclass(frozen=True)
class CorrectionOptions:
    """How weights are predistorted and tiles are placed around faulty elements.

    Parameters
    ----------
    max_scale : float, default=1.0
        Largest column headroom scale ``h_j`` (0 < max_scale <= 4). 1 keeps the
        corrected output's linear range at least that of a chip at the target gain.
    min_scale : float, default=0.5
        Smallest column scale (0 < min_scale <= max_scale); weights that would need
        more than 63 at this scale are clipped (counted in the engine's report).
    remap : bool, default=True
        Route around the faults the artifact records (:mod:`infer.routing`): logical rows
        and columns move off dead drivers, dead or noisy neurons and stuck synapses onto
        the rows and columns a tile leaves free, and rows that still lose weight get a
        free partner row. False places every tile at rows 0..r-1 and columns 0..c-1
        (faults are then only compensated in place or dropped). No effect on a chip
        without recorded faults.
    spare_rows : int or "auto", default=0
        Synapse rows per hemisphere to keep free: tiles have at most ``128 - spare_rows``
        rows (0..120), so that remapping has room even in layers with 128 or more
        inputs (more tiles, more hardware time). ``"auto"``: as many as the most dead
        drivers any hemisphere of the engine's chips has.
    spare_columns : int or "auto", default=0
        Columns per tile to keep free (0..248), likewise; ``"auto"``: the most dead or
        noisy neurons of any hemisphere.
    """

    max_scale: float = 1.0
    min_scale: float = 0.5
    remap: bool = True
    spare_rows: int | str = 0
    spare_columns: int | str = 0

    def __post_init__(self):
        for name in ("max_scale", "min_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise InferValueError(f"{name} must be a finite number, got {v!r}")
        if not 0 < self.max_scale <= 4:
            raise InferValueError(f"max_scale must be in (0, 4], got {self.max_scale}")
        if not 0 < self.min_scale <= self.max_scale:
            raise InferValueError(f"min_scale must be in (0, max_scale], got {self.min_scale}")
        if not isinstance(self.remap, (bool, np.bool_)):
            raise InferValueError(f"remap must be True or False, got {self.remap!r}")
        for name, hi in (("spare_rows", ROWS - 8), ("spare_columns", COLS - 8)):
            v = getattr(self, name)
            if v == "auto" and isinstance(v, str):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= hi:
                raise InferValueError(f'{name} must be an integer in 0..{hi} or "auto", got {v!r}')
            object.__setattr__(self, name, int(v))


def _readonly(a, dtype=np.float64):
    a = np.array(a, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


_SYN4 = (2, N_HEMISPHERES, ROWS, COLS)  # (sign: 0 excitatory / 1 inhibitory, hemisphere, row, column)


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
            object.__setattr__(self, name, _readonly(a, bool))

    def counts(self):
        """Number of faulty elements of each kind (dict)."""
        return {"dead_drivers": int(self.driver_dead.sum()), "dead_neurons": int(self.neuron_dead.sum()),
                "noisy_neurons": int(self.neuron_noisy.sum()), "stuck_zero_synapses": int(self.stuck_zero.sum()),
                "stuck_max_synapses": int(self.stuck_max.sum())}


@dataclass(frozen=True, eq=False)
class Corrections:
    """The correction arrays of one chip, built from a calibration artifact.

    Parameters
    ----------
    pulse_steps : array-like of shape (256, 32)
        Driver transfer ``T[d, x]`` in nominal activation steps (0 at x = 0, monotone).
    gain_exc, gain_inh : array-like of shape (512,)
        Neuron input gains relative to the target gain.
    offset_lsb : array-like of shape (512,)
        Mean result at zero input, output LSB.
    synapse_exc, synapse_inh : array-like of shape (2, 128, 256)
        Per-synapse gains relative to their column (median 1).
    driver_ok, neuron_ok : array-like of bool, shape (256,) and (512,), default all True
    synapse_ok : array-like of bool, shape (2, 128, 256), default all True
    weight_transfer : array-like of shape (64,) or None, default=None
        Effective weight ``D(c)`` of each code 0..63 (finite, D(63) > 0); None is the identity.
    faults : Faults or None, default=None
        Faulty elements; None: none.
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

    def __post_init__(self):
        shapes = {"pulse_steps": (N_DRIVERS, N_ACT), "gain_exc": (N_NEURONS,), "gain_inh": (N_NEURONS,),
                  "offset_lsb": (N_NEURONS,), "synapse_exc": (N_HEMISPHERES, ROWS, COLS),
                  "synapse_inh": (N_HEMISPHERES, ROWS, COLS)}
        for name, shape in shapes.items():
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.shape != shape:
                raise CorrectionTableError(f"{name} must have shape {shape}, got {a.shape}")
            object.__setattr__(self, name, _readonly(a))
        for name, shape in (("driver_ok", (N_DRIVERS,)), ("neuron_ok", (N_NEURONS,)),
                            ("synapse_ok", (N_HEMISPHERES, ROWS, COLS))):
            v = getattr(self, name)
            a = np.ones(shape, bool) if v is None else np.asarray(v, dtype=bool)
            if a.shape != shape:
                raise CorrectionTableError(f"{name} must have shape {shape}, got {a.shape}")
            object.__setattr__(self, name, _readonly(a, bool))
        D = np.arange(W_MAX + 1, dtype=np.float64) if self.weight_transfer is None else \
            np.asarray(self.weight_transfer, dtype=np.float64)
        if D.shape != (W_MAX + 1,) or not np.all(np.isfinite(D)) or not D[-1] > 0:
            raise CorrectionTableError("weight_transfer must hold 64 finite values with D(63) > 0")
        object.__setattr__(self, "weight_transfer", _readonly(D))
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
            {k: _readonly(v, np.int64) for k, v in (self.knobs or {}).items()}))
        for name in ("pulse_steps", "gain_exc", "gain_inh", "offset_lsb", "synapse_exc", "synapse_inh"):
            a = getattr(self, name)
            ok = self._ok_mask(name)
            if not np.all(np.isfinite(a[ok])):
                raise CorrectionTableError(f"{name} holds NaN or inf in rows marked successful")
        self._derive()

    def _ok_mask(self, name):
        if name == "pulse_steps":
            return np.broadcast_to(self.driver_ok[:, None], self.pulse_steps.shape)
        if name in ("gain_exc", "gain_inh", "offset_lsb"):
            return self.neuron_ok
        return self.synapse_ok

    # ----------------------------------------------------------- derived arrays
    def _derive(self):
        T = np.where(self.driver_ok[:, None], self.pulse_steps, np.arange(N_ACT, dtype=np.float64)[None, :])
        T = T.copy()
        T[:, 0] = 0.0
        a = T[:, ACT_MAX] / ACT_MAX
        usable = a > 1e-6
        a = np.where(usable, a, 0.0)
        targets = a[:, None] * np.arange(N_ACT)[None, :]  # (256, 32)
        lut = np.abs(T[:, None, :] - targets[:, :, None]).argmin(axis=2)
        lut[~usable] = np.arange(N_ACT)
        lut[:, 0] = 0
        f = self.faults
        gain_exc = np.where(self.neuron_ok, self.gain_exc, 1.0)
        gain_inh = np.where(self.neuron_ok, self.gain_inh, 1.0)
        # a stuck-at-max synapse keeps its measured gain if there is one: it is needed to compensate it
        keep = self.synapse_ok[None] | (f.stuck_max & np.isfinite(np.stack([self.synapse_exc, self.synapse_inh])))
        s_exc = np.where(keep[0], self.synapse_exc, 1.0)
        s_inh = np.where(keep[1], self.synapse_inh, 1.0)
        a = np.where(f.driver_dead, 0.0, a)
        a_hi = a.reshape(N_HEMISPHERES, ROWS)[:, :, None]
        alive = (~f.neuron_dead).reshape(N_HEMISPHERES, 1, COLS)
        G = np.stack([a_hi * (gain_exc.reshape(N_HEMISPHERES, 1, COLS) * alive) * s_exc,
                      a_hi * (gain_inh.reshape(N_HEMISPHERES, 1, COLS) * alive) * s_inh])  # (2 signs, 2 h, 128, 256)
        G = np.where((G > _TINY_GAIN) & ~f.stuck_zero, G, 0.0)
        object.__setattr__(self, "driver_scale", _readonly(a))
        object.__setattr__(self, "input_lut", _readonly(lut, np.int64))
        object.__setattr__(self, "effective_gain", _readonly(G))
        object.__setattr__(self, "offset", _readonly(np.where(self.neuron_ok, self.offset_lsb, 0.0)))
        D = np.maximum.accumulate(self.weight_transfer)  # monotone envelope for the inversion
        object.__setattr__(self, "_d_mono", _readonly(D))
        object.__setattr__(self, "_d_mid", _readonly((D[1:] + D[:-1]) / 2))
        c = self.conditions
        kappa = float(c.get("send_decay_per_send") or 0.0)
        n_ref = float(c.get("num_sends_ref") or 1)
        object.__setattr__(self, "_send_decay", (kappa, n_ref))

    # ------------------------------------------------------------ constructors
    @classmethod
    def identity(cls, chip=None, *, gain_target=0.002, conditions=None):
        """Corrections that change nothing: identity transfer, unit gains, zero offsets.

        Parameters
        ----------
        chip : chipsim.Chip or None, default=None
            If given, the corrections are stamped with its id and preset (no knobs are written).
        gain_target : float, default=0.002
        conditions : dict or None, default=None
        """
        return cls(pulse_steps=np.tile(np.arange(N_ACT, dtype=np.float64), (N_DRIVERS, 1)),
                   gain_exc=np.ones(N_NEURONS), gain_inh=np.ones(N_NEURONS), offset_lsb=np.zeros(N_NEURONS),
                   synapse_exc=np.ones((N_HEMISPHERES, ROWS, COLS)), synapse_inh=np.ones((N_HEMISPHERES, ROWS, COLS)),
                   gain_target=gain_target,
                   chip_id=None if chip is None else chip.chip_id,
                   preset_name=None if chip is None else chip.preset.name,
                   preset_sha256=None if chip is None else chip.preset.sha256,
                   conditions=conditions or {})

    @classmethod
    def from_artifact(cls, artifact):
        """Build from a loaded artifact (anything with ``.tables`` and ``.manifest``) or return a Corrections as is."""
        if isinstance(artifact, cls):
            return artifact
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
        syn_shape = (N_HEMISPHERES, ROWS, COLS)
        kw, faults = {}, {}
        if "neuron_correction" in tables:
            nc = _frame(tables, "neuron_correction", ["neuron"], N_NEURONS, ["gain_exc", "gain_inh", "offset_lsb"])
            kw.update(gain_exc=_col(nc, "gain_exc"), gain_inh=_col(nc, "gain_inh"),
                      offset_lsb=_col(nc, "offset_lsb"), neuron_ok=_success(nc))
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
            kw.update(synapse_exc=_col(sg, "gain_exc").reshape(syn_shape),
                      synapse_inh=_col(sg, "gain_inh").reshape(syn_shape), synapse_ok=_success(sg).reshape(syn_shape))
            for kind in ("zero", "max"):
                faults[f"stuck_{kind}"] = np.stack([_flag(sg, f"stuck_{kind}_{sign}").reshape(syn_shape)
                                                    for sign in ("exc", "inh")])
        else:
            kw.update(synapse_exc=np.ones(syn_shape), synapse_inh=np.ones(syn_shape))
        if "weight_transfer" in tables:
            wtf = _frame(tables, "weight_transfer", ["weight"], W_MAX + 1, ["effective_weight"])
            kw["weight_transfer"] = _col(wtf, "effective_weight")
        knobs = {}
        for tname, level in _KNOB_TABLES.items():
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

    def to_tables(self):
        """The correction tables in the artifact format (dict of DataFrames), fault columns included.

        Knob tables are included when :attr:`knobs` holds all knobs of their granularity.
        """
        import pandas as pd

        from bss2_calib.chipsim import KNOBS

        f = self.faults
        out = {}
        out["neuron_correction"] = pd.DataFrame(
            {"gain_exc": self.gain_exc, "gain_inh": self.gain_inh, "offset_lsb": self.offset_lsb,
             "noise_lsb": np.full(N_NEURONS, np.nan), "dead": f.neuron_dead, "noisy": f.neuron_noisy,
             "success": self.neuron_ok}, index=pd.RangeIndex(N_NEURONS, name="neuron"))
        idx = pd.MultiIndex.from_product([range(N_DRIVERS), range(N_ACT)], names=["driver", "activation"])
        out["driver_transfer"] = pd.DataFrame(
            {"pulse_steps": self.pulse_steps.ravel(), "pulse_steps_std": np.zeros(N_DRIVERS * N_ACT),
             "dead": np.repeat(f.driver_dead, N_ACT), "success": np.repeat(self.driver_ok, N_ACT)}, index=idx)
        idx = pd.MultiIndex.from_product([range(N_HEMISPHERES), range(ROWS), range(COLS)],
                                         names=["hemisphere", "row", "column"])
        z = np.zeros(N_HEMISPHERES * ROWS * COLS)
        out["synapse_gain"] = pd.DataFrame(
            {"gain_exc": self.synapse_exc.ravel(), "gain_exc_std": z, "gain_inh": self.synapse_inh.ravel(),
             "gain_inh_std": z, "stuck_zero_exc": f.stuck_zero[0].ravel(), "stuck_max_exc": f.stuck_max[0].ravel(),
             "stuck_zero_inh": f.stuck_zero[1].ravel(), "stuck_max_inh": f.stuck_max[1].ravel(),
             "success": self.synapse_ok.ravel()}, index=idx)
        if not np.array_equal(self.weight_transfer, np.arange(W_MAX + 1)):
            out["weight_transfer"] = pd.DataFrame(
                {"effective_weight": self.weight_transfer, "success": np.ones(W_MAX + 1, bool)},
                index=pd.RangeIndex(W_MAX + 1, name="weight"))
        for tname, level in _KNOB_TABLES.items():
            names = [k.name for k in KNOBS.values() if k.granularity == level]
            if names and all(n in self.knobs for n in names):
                size = KNOBS[names[0]].size
                cols = {n: self.knobs[n] for n in names} | {"success": np.ones(size, bool)}
                out[tname] = pd.DataFrame(cols, index=pd.RangeIndex(size, name=level))
        return out

    # --------------------------------------------------------------- checking
    def mismatches(self, chip, *, num_sends=None, wait_between_events=None):
        """Fields in which ``chip`` and the run conditions differ from what the tables were made for.

        Returns
        -------
        list of (str, str)
            ``(field, explanation)`` pairs; empty when everything matches.
        """
        out = []
        if self.chip_id is not None and int(self.chip_id) != chip.chip_id:
            out.append(("chip_id", f"artifact was made for chip {self.chip_id}, not chip {chip.chip_id}"))
        if self.preset_sha256 is not None and self.preset_sha256 != chip.preset.sha256:
            out.append(("preset.sha256",
                        f"artifact was made for preset {self.preset_name!r} ({self.preset_sha256[:12]}), "
                        f"chip {chip.chip_id} runs preset {chip.preset.name!r} ({chip.preset.sha256[:12]})"))
        c = self.conditions
        if wait_between_events is not None and c.get("wait_between_events") is not None \
                and int(c["wait_between_events"]) != wait_between_events:
            out.append(("conditions.wait_between_events",
                        f"artifact is valid for wait_between_events={c['wait_between_events']}, "
                        f"not {wait_between_events}"))
        if num_sends is not None:
            lo, hi = c.get("num_sends_min"), c.get("num_sends_max")
            if (lo is not None and num_sends < lo) or (hi is not None and num_sends > hi):
                out.append(("conditions.num_sends",
                            f"artifact is valid for num_sends {lo}..{hi}, not {num_sends}"))
        t0, tol = c.get("temperature_c"), c.get("temperature_tolerance_k")
        if t0 is not None and tol is not None and abs(chip.temperature_c - t0) > tol:
            out.append(("conditions.temperature_c",
                        f"artifact is valid for {t0:g} +- {tol:g} degC, chip {chip.chip_id} is at "
                        f"{chip.temperature_c:g} degC"))
        return out

    def knob_updates(self):
        """The knob codes as a ``chip.set_knobs`` argument (one reconfiguration); may be empty."""
        return {k: np.array(v) for k, v in self.knobs.items()}

    def summary(self):
        """Counts of table entries that fell back to nominal values, and of faulty elements."""
        return {"drivers_not_calibrated": int((~self.driver_ok).sum()),
                "neurons_not_calibrated": int((~self.neuron_ok).sum()),
                "synapses_not_calibrated": int((~self.synapse_ok).sum()),
                **self.faults.counts()}

    # ------------------------------------------------------------ application
    def send_factor(self, num_sends):
        """Relative gain at ``num_sends`` from the artifact's per-send decay: ``1 - kappa (n - n_ref)``."""
        kappa, n_ref = self._send_decay
        return max(1.0 - kappa * (num_sends - n_ref), 1e-3)

    def predistort(self, w, hemisphere, rows, cols, options=CorrectionOptions()):
        """Weights to program for a logical tile, and the column scales to undo afterwards.

        Parameters
        ----------
        w : ndarray of int, shape (n_rows, n_cols)
            Logical weights -63..63 of the tile.
        hemisphere : {0, 1}
        rows : ndarray of int, shape (n_rows,)
            Physical synapse rows (0..127) of the logical rows.
        cols : ndarray of int, shape (n_cols,)
            Physical columns (0..255) of the logical columns.
        options : CorrectionOptions

        Returns
        -------
        codes : ndarray of int64, shape (n_rows, n_cols)
            Signed codes -63..63 to program at (rows, cols).
        scale : ndarray of float64, shape (n_cols,)
            Headroom scale ``h_j`` of every column.
        clipped : int
            Synapses whose programmed value misses the wanted weight by more than one weight
            step: weights that needed more than 63 at ``min_scale``, and stuck-at-max synapses
            that could not be compensated.
        dropped : int
            Nonzero weights on elements that cannot carry them (dead driver or neuron, stuck at
            zero), programmed as 0.
        """
        from .routing import Hemisphere, program

        p = program(Hemisphere(self, hemisphere), w, np.asarray(rows), np.asarray(cols), [], options)
        return p["codes"], p["scale"], p["clipped"], p["dropped"]

    def lut_rows(self, hemisphere, rows):
        """Input predistortion of the given physical rows, shape (n_rows, 32), codes 0..31."""
        return self.input_lut[hemisphere * ROWS + np.asarray(rows)]

    def column_offset(self, hemisphere, cols):
        """Offsets (LSB) of the given physical columns, shape (n_cols,)."""
        return self.offset[hemisphere * COLS + np.asarray(cols)]

    def column_dead(self, hemisphere, cols):
        """Which of the given physical columns belong to dead neurons, shape (n_cols,)."""
        return self.faults.neuron_dead[hemisphere * COLS + np.asarray(cols)]


def _check_index(df, name, levels):
    names = list(df.index.names)
    if names != levels:
        raise CorrectionTableError(f"table {name}: index levels must be {levels}, got {names}")


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
    for lvl, size in zip(levels, _level_sizes(name)):
        vals = df.index.get_level_values(lvl)
        if vals.min() < 0 or vals.max() >= size:
            raise CorrectionTableError(f"table {name}: index {lvl} outside 0..{size - 1}")
    return df


def _level_sizes(name):
    return {"neuron_correction": (N_NEURONS,), "driver_transfer": (N_DRIVERS, N_ACT),
            "synapse_gain": (N_HEMISPHERES, ROWS, COLS), "weight_transfer": (W_MAX + 1,)}[name]


def _col(df, name):
    try:
        return df[name].to_numpy(np.float64)
    except (TypeError, ValueError) as err:
        raise CorrectionTableError(f"column {name} is not numeric ({err})") from None


def _flag(df, name):
    return df[name].to_numpy(bool) if name in df.columns else np.zeros(len(df), bool)


def _success(df):
    return _flag(df, "success") if "success" in df.columns else np.ones(len(df), bool)
