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
  programmed weight of the column within 63, each allowed to fall short of its
  value by ``clip_tolerance`` (default 10 %: a few weights on the weakest synapses
  are carried slightly short rather than the whole column's output, noise
  included, amplified), capped at ``max_scale`` (default
  1) and floored at ``min_scale`` (default 0.5; below it the few weights that
  would exceed 63 are clipped and counted).
* **outputs**, per column: ``y_corrected = (y - offset_lsb[n_j]) / (h_j * f(n))``
  with the artifact's per-send gain decay ``f(n) = 1 - kappa (n - n_ref)``
  (``conditions.send_decay_per_send`` and ``conditions.num_sends_ref``; 1 if absent).

Which measured values are used is decided by the one correction model,
:class:`calib.model.CorrectionModel` (which :class:`Corrections` extends with the
inversion): every live neuron keeps its fitted gains and offset (weak ones
included); only entries with nothing measured get nominal values (identity
transfer, gain 1, offset 0), counted in :meth:`Corrections.summary`. Faulty elements
(:class:`Faults`, from the tables' ``dead``/``stuck_*`` columns) are handled
explicitly: a dead driver's row and a stuck-at-zero synapse carry no weight
(the weights there are dropped and counted), a dead neuron's column reads 0,
and a stuck-at-max synapse is compensated through its partner row of the other
sign (the pair is programmed so that the sum is the wanted weight) where the
6-bit range allows it. Where a tile leaves room, :mod:`infer.routing` moves
logical rows and columns off faulty elements and gives rows that still lose
weight a second (partner) driver row, so that nothing needs dropping
(``CorrectionOptions.remap``, ``spare_rows``, ``spare_columns``); weak columns
(a gain below half the target: the weights would need codes beyond 63 and the
output more than twofold amplification) are avoided likewise. Missing tables
mean identity.

Only numpy and pandas (and calib's artifact layer) are used here; nothing fits,
nothing touches a chip's hidden truth.
"""
from dataclasses import dataclass

import numpy as np

from bss2_calib.calib.model import KNOB_TABLES, CorrectionModel, Faults, readonly
from bss2_calib.chipsim.geometry import ACT_MAX, COLS, N_DRIVERS, N_HEMISPHERES, N_NEURONS, ROWS, W_MAX

from .errors import InferValueError

__all__ = ["CorrectionOptions", "Corrections", "Faults"]

N_ACT = ACT_MAX + 1  # 32 activation codes
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
    clip_tolerance : float, default=0.1
        Largest fraction of its magnitude (0 <= clip_tolerance < 0.5) by which a weight may
        fall short (its code clipped at 63) before it lowers its column's headroom scale.
        Dividing a column's output by a scale below 1 amplifies its noise for every
        input; clipping a weight on one of the weakest synapses costs only where that
        synapse is driven. 0: no weight is ever clipped while the scale is above
        ``min_scale`` (every column is limited by its weakest full-scale synapse).
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
        Columns per tile to keep free (0..248), likewise; ``"auto"``: the most dead, noisy
        or weak neurons of any hemisphere.
    spill : bool, default=True
        Run what a tile still loses after routing (no room: rows on dead drivers; columns on
        dead, noisy or out-of-reach weak neurons) again as smaller *spill tiles* that leave
        room, and combine the results digitally (:class:`~infer.engine.Engine`): extra tile
        runs and hardware time, only on chips whose artifact records such faults and only
        for tiles that meet them. False: the loss is only counted in the fault report.
    """

    max_scale: float = 1.0
    min_scale: float = 0.5
    clip_tolerance: float = 0.1
    remap: bool = True
    spare_rows: int | str = 0
    spare_columns: int | str = 0
    spill: bool = True

    def __post_init__(self):
        for name in ("max_scale", "min_scale", "clip_tolerance"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise InferValueError(f"{name} must be a finite number, got {v!r}")
        if not 0 < self.max_scale <= 4:
            raise InferValueError(f"max_scale must be in (0, 4], got {self.max_scale}")
        if not 0 < self.min_scale <= self.max_scale:
            raise InferValueError(f"min_scale must be in (0, max_scale], got {self.min_scale}")
        if not 0 <= self.clip_tolerance < 0.5:
            raise InferValueError(f"clip_tolerance must be in [0, 0.5), got {self.clip_tolerance}")
        for name in ("remap", "spill"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InferValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name, hi in (("spare_rows", ROWS - 8), ("spare_columns", COLS - 8)):
            v = getattr(self, name)
            if v == "auto" and isinstance(v, str):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= hi:
                raise InferValueError(f'{name} must be an integer in 0..{hi} or "auto", got {v!r}')
            object.__setattr__(self, name, int(v))


@dataclass(frozen=True, eq=False)
class Corrections(CorrectionModel):
    """The correction model of one chip (:class:`calib.model.CorrectionModel`) and its inversion.

    Built like the model (same parameters, :meth:`from_artifact`, :meth:`from_tables`,
    :meth:`identity`); adds the input lookup table, the effective gain of every synapse
    and the weight predistortion the engine programs.
    """

    # ----------------------------------------------------------- derived arrays
    def _derive(self):
        super()._derive()
        T = self.T
        a = T[:, ACT_MAX] / ACT_MAX
        usable = a > 1e-6
        a = np.where(usable, a, 0.0)
        targets = a[:, None] * np.arange(N_ACT)[None, :]  # (256, 32)
        lut = np.abs(T[:, None, :] - targets[:, :, None]).argmin(axis=2)
        lut[~usable] = np.arange(N_ACT)
        lut[:, 0] = 0
        f = self.faults
        a = np.where(f.driver_dead, 0.0, a)
        a_hi = a.reshape(N_HEMISPHERES, ROWS)[:, :, None]
        G = np.stack([a_hi * self.gain_exc_used.reshape(N_HEMISPHERES, 1, COLS) * self.s_exc,
                      a_hi * self.gain_inh_used.reshape(N_HEMISPHERES, 1, COLS) * self.s_inh])  # (2 signs, 2 h, 128, 256)
        G = np.where((G > _TINY_GAIN) & ~f.stuck_zero, G, 0.0)
        object.__setattr__(self, "driver_scale", readonly(a))
        object.__setattr__(self, "input_lut", readonly(lut, np.int64))
        object.__setattr__(self, "effective_gain", readonly(G))
        # the weight DAC's monotone envelope, and the midpoints between its codes, for the inversion
        D = np.maximum.accumulate(self.weight_transfer)
        object.__setattr__(self, "weight_envelope", readonly(D))
        object.__setattr__(self, "weight_midpoints", readonly((D[1:] + D[:-1]) / 2))

    # --------------------------------------------------------------- tables
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
             "noise_lsb": self.noise_lsb, "dead": f.neuron_dead, "noisy": f.neuron_noisy,
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
        for tname, level in KNOB_TABLES.items():
            names = [k.name for k in KNOBS.values() if k.granularity == level]
            if names and all(n in self.knobs for n in names):
                size = KNOBS[names[0]].size
                cols = {n: self.knobs[n] for n in names} | {"success": np.ones(size, bool)}
                out[tname] = pd.DataFrame(cols, index=pd.RangeIndex(size, name=level))
        return out

    def knob_updates(self):
        """The knob codes as a ``chip.set_knobs`` argument (one reconfiguration); may be empty."""
        return {k: np.array(v) for k, v in self.knobs.items()}

    # ------------------------------------------------------------ application
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
