"""The inference engine: matrices of any size on one or several (calibrated) chips.

A product ``x @ w`` with ``x`` of shape (batch, n_in) and ``w`` of shape
(n_in, n_out) is split into tiles of 128 inputs x 256 outputs. Tiles are
ordered column block by column block, and within one column block by row block
(input block). Each tile is placed on a *slot* (one hemisphere of one chip);
``2 * len(chips)`` tiles run at once (the two hemispheres of a chip in one
``chip.run(x2, "both")`` call, chips in parallel), further tiles run in
following rounds. Each tile's int8 result is clipped (by the chip, and again to
-128..127 after correction) before the tiles stacked along ``n_in`` are summed
digitally and the sum is saturated to -128..127; column blocks are
concatenated.

Output scale
------------
Without an artifact the engine returns the chip's raw results (LSB at whatever
gain the chip has, as floats). With an artifact it writes the artifact's knobs,
applies the corrections of :mod:`infer.corrections` (inputs predistorted per
driver, weights per synapse within -63..63 with a per-column headroom scale,
outputs corrected per column for offset, scale and the per-send gain decay)
and returns **output LSB at the artifact's target gain**: a well-calibrated
chip approximates ``round(g_t * num_sends * x.W)`` (``g_t = 0.002`` by
default), clipped per tile and after the sum like the raw results. Values are
float64 and not rounded; columns of dead neurons read 0 (unless spilled, see Faults).

Slots remember which tile of which weight matrix they hold (a hash of the
weights), so repeated calls with the same ``w`` do not rewrite weights.

Faults
------
With an artifact that records faulty elements, every tile is *placed* by
:func:`infer.routing.place`: its logical rows and columns move off dead
drivers, dead or noisy neurons and stuck synapses onto the rows and columns the
tile leaves free, and rows that still lose weight get a partner row carrying the
same input (``CorrectionOptions.remap``, on by default). Tiles are at most
``128 - spare_rows`` x ``256 - spare_columns`` (``CorrectionOptions``; default
full size), so layers that fill whole tiles can be given room.

What routing could not avoid for lack of room is run again (``CorrectionOptions.spill``,
on by default) as *spill tiles*, after the ordinary tiles, on whatever slots the
assignment gives them, placed and corrected like any tile:

* logical rows whose weight is lost on dead drivers: a spill tile with those inputs,
  carrying what they miss on the tile's other columns; its output is added to the tile's
  (in a tile that spills anyway, what stuck synapses miss rides along the same way);
* logical columns on dead, noisy or out-of-reach weak neurons: a spill tile with all
  of the tile's rows and those columns; the tile's own output for them is discarded.

Spill tiles are cut into blocks that leave as many rows and columns free as the worst
hemisphere of the engine has dead drivers and dead, noisy or weak neurons, so routing
has room (a full 128-row column spill becomes two halves of 64, each also carrying half
of the lost rows' columns). Spill tiles are routed even with ``remap=False`` (placed in
place they would meet the same faults again). One level only: what a spill tile still loses is counted as
lost. A column's result is then the sum of two read-outs: their noise adds (about
sqrt(2) times one read-out's noise, and two roundings). Spill runs cost tile runs and
hardware time (``stats["spill_runs"]``, ``stats["spill_hw_time_s"]``).
What is neither avoided nor spilled is counted per weight matrix and fault kind in
:meth:`Engine.fault_report` (spilled elements as ``spilled``). On a chip without
recorded faults the placement is the identity and nothing spills.
"""
import dataclasses
import hashlib
import logging
import os
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from bss2_calib.chipsim.geometry import ACT_MAX, COLS, ROWS, W_MAX
from bss2_calib.chipsim.interface import ObservableChip
from bss2_calib.chipsim.validation import as_int_array

from .corrections import CorrectionOptions, Corrections
from .errors import ArtifactMismatchWarning, IncompatibleArtifact, InferValueError
from .routing import COUNTS, KINDS, FaultReport, Hemisphere, place
from .spill import spill_tiles

__all__ = ["Engine", "FaultReport", "Measurement", "check_activations", "check_weights"]

log = logging.getLogger(__name__)

Y_MIN, Y_MAX = -128.0, 127.0
_PLACEMENT_CACHE = 64  # placements kept per engine (tiles of recently used weight matrices)
_FAULT_LOG = 64  # weight matrices kept in the fault report
_RUN_LIMITS = {"num_sends": (1, 255), "wait_between_events": (1, 255)}
#: host-time stages of :attr:`Engine.host_time`
HOST_STAGES = ("partition", "corrections", "simulation", "matmul")
#: fault count per hemisphere that a tile must leave room for, by ``CorrectionOptions`` field
_ROOM = {"spare_rows": lambda hs: int(hs.row_dead.sum()),
         "spare_columns": lambda hs: int((hs.col_dead | hs.col_noisy | hs.col_weak).sum())}


# ---------------------------------------------------------------- validation
def _int_array(a, what, lo, hi):
    if hasattr(a, "detach") and hasattr(a, "numpy"):  # a torch tensor: no torch import needed
        a = a.detach().cpu().numpy()
    return as_int_array(a, what, lo, hi, error=InferValueError)


def check_activations(x):
    """Validate activations: integers 0..31, shape (batch, n_in) or (n_in,); returns an array (a view if possible)."""
    arr = _int_array(x, "activations", 0, ACT_MAX)
    if arr.ndim not in (1, 2):
        raise InferValueError(f"activations must have shape (batch, n_in) or (n_in,), got {arr.shape}")
    return arr


def check_weights(w):
    """Validate weights: integers -63..63, shape (n_in, n_out); returns an array (a view if possible)."""
    arr = _int_array(w, "weights", -W_MAX, W_MAX)
    if arr.ndim != 2:
        raise InferValueError(f"weights must have shape (n_in, n_out), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InferValueError(f"weights must have at least one row and one column, got {arr.shape}")
    return arr


def _run_param(name, value):
    lo, hi = _RUN_LIMITS[name]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise InferValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return int(value)


def _weight_key(w):
    w8 = np.ascontiguousarray(w, dtype=np.int8)
    h = hashlib.blake2b(w8.tobytes(), digest_size=16)
    h.update(repr(w8.shape).encode())
    return h.hexdigest()


# --------------------------------------------------------------------- slots
class _Slot:
    """One hemisphere of one chip and the tile it holds."""

    __slots__ = ("chip_index", "hemisphere", "rows", "src", "cols", "key", "last_used", "programmed",
                 "scale", "offset", "dead", "lut_flat", "n_rows", "n_cols", "spill")

    def __init__(self, chip_index, hemisphere):
        self.chip_index = chip_index
        self.hemisphere = hemisphere
        self.rows = np.arange(ROWS)  # physical synapse rows in use (primaries, then partner rows)
        self.src = np.arange(ROWS)  # logical row feeding each of them
        self.cols = np.arange(COLS)  # physical column of every logical column
        self.key = None
        self.last_used = 0
        self.programmed = None
        self.scale = self.offset = self.dead = self.lut_flat = None
        self.n_rows = self.n_cols = 0
        self.spill = None  # the placement's spill_rows, spill_weights, spill_cols if it leaves anything to spill


@dataclass(frozen=True)
class Measurement:
    """Gain and trial-to-trial noise of an engine's output, measured through :meth:`Engine.matmul`.

    Attributes
    ----------
    gain : float
        Output units per unit of x*w per send (about 0.002 for a calibrated engine).
    noise_std : float
        Trial-to-trial standard deviation of one output, output units.
    num_sends : int
        The ``num_sends`` it was measured at.
    """

    gain: float
    noise_std: float
    num_sends: int


def _resolve_artifact(artifact):
    """Path -> loaded artifact (via calib.load); anything else is returned as is."""
    if isinstance(artifact, (str, os.PathLike)):
        from bss2_calib.calib import load  # the artifact loader only; never the fitting code

        return load(artifact)
    return artifact


class Engine:
    """Run vector-matrix products on simulated BrainScaleS-2 chips.

    Parameters
    ----------
    chips : ObservableChip or sequence of ObservableChip
        The chips to use (:class:`chipsim.Chip` or any object with the observable
        interface, :class:`chipsim.interface.ObservableChip`); each contributes two
        tiles (one per hemisphere) per round.
    artifacts : artifact, Corrections, path, None, or a sequence of those, default=None
        One per chip (a single value is allowed for a single chip). None runs that chip
        uncalibrated (raw results). An artifact is anything with ``.tables`` and
        ``.manifest`` (as returned by ``calib.load``), a path to load, or a
        :class:`~infer.corrections.Corrections`.
    num_sends : int, default=1
        Default repetitions of every input vector, 1..255.
    wait_between_events : int, default=5
        Default event spacing in clock cycles, 1..255.
    allow_mismatch : bool, default=False
        Use an artifact although it was made for another chip id, preset or conditions
        (an :class:`~infer.errors.ArtifactMismatchWarning` names the field) instead of
        raising :class:`~infer.errors.IncompatibleArtifact`.
    correction : CorrectionOptions, default=CorrectionOptions()
        Headroom of the weight predistortion; routing around faults (``remap``), the
        rows and columns kept free per tile (``spare_rows``, ``spare_columns``) and spill
        tiles for what routing could not save (``spill``).
    max_batch : int, default=16384
        Largest number of vectors sent to a chip in one call (memory bound), >= 1.

    Examples
    --------
    >>> from chipsim import Chip
    >>> engine = Engine(Chip(0, "noiseless"))
    >>> x = np.full((1, 300), 31)
    >>> w = np.zeros((300, 2), dtype=int); w[:, 0] = 10; w[:, 1] = -3
    >>> engine.matmul(x, w)  # row tiles of 128, 128, 44 inputs: 79 + 79 + 27 saturates; -24 - 24 - 8
    array([[127., -56.]])
    """

    def __init__(self, chips, artifacts=None, *, num_sends=1, wait_between_events=5, allow_mismatch=False,
                 correction=CorrectionOptions(), max_batch=16384):
        chips = (chips,) if isinstance(chips, ObservableChip) else tuple(chips)
        if not chips or not all(isinstance(c, ObservableChip) for c in chips):
            raise InferValueError("chips must be one chip with the observable interface (chipsim.Chip or any "
                                  "chipsim.interface.ObservableChip) or a non-empty sequence of them")
        if len({id(c) for c in chips}) != len(chips):
            raise InferValueError("the same chip object is listed twice")
        if artifacts is None:
            artifacts = (None,) * len(chips)
        elif isinstance(artifacts, (list, tuple)):
            artifacts = tuple(artifacts)
        else:
            artifacts = (artifacts,)
        if len(artifacts) != len(chips):
            raise InferValueError(f"got {len(artifacts)} artifacts for {len(chips)} chips")
        if not isinstance(correction, CorrectionOptions):
            raise InferValueError("correction must be a CorrectionOptions")
        if isinstance(max_batch, bool) or not isinstance(max_batch, (int, np.integer)) or max_batch < 1:
            raise InferValueError(f"max_batch must be a positive integer, got {max_batch!r}")
        self.num_sends = _run_param("num_sends", num_sends)
        self.wait_between_events = _run_param("wait_between_events", wait_between_events)
        self.allow_mismatch = bool(allow_mismatch)
        self.correction = correction
        self.max_batch = int(max_batch)
        self.chips = chips
        self._artifacts = tuple(_resolve_artifact(a) for a in artifacts)
        self.corrections = tuple(None if a is None else Corrections.from_artifact(a) for a in self._artifacts)
        self._warned = set()
        for i, chip in enumerate(chips):
            if self.corrections[i] is not None:
                mism = self._check(i, self.num_sends, self.wait_between_events)
                self._apply_knobs(i, use_artifact=not mism)
        self._slots = [_Slot(i, h) for i in range(len(chips)) for h in (0, 1)]
        self._hemispheres = {}
        self._placements = OrderedDict()
        self._fault_log = OrderedDict()
        self.tile_rows, self.tile_cols = self._tile_shape()
        #: largest spill tile: as many rows and columns free as the worst hemisphere has faults
        self._spill_room = (min(self.tile_rows, ROWS - self._room("spare_rows")),
                            min(self.tile_cols, COLS - self._room("spare_columns")))
        # one level (spill tiles do not spill), and spill tiles are always routed: they are the engine's own
        # construction, cut to leave room, and placed in place they would meet the same faults again
        self._spill_options = dataclasses.replace(correction, spill=False, remap=True)
        self._clock = 0
        self._measurements = {}
        #: counters; ``tile_runs`` and ``hw_time_s`` include the spill tiles, counted apart in
        #: ``spill_runs`` and ``spill_hw_time_s`` (hardware time of the rounds that ran only spill tiles)
        self.stats = dict(calls=0, vectors=0, tile_runs=0, weight_writes=0, hw_time_s=0.0,
                          clipped_weights=0, dropped_weights=0, spill_runs=0, spill_hw_time_s=0.0)
        #: cumulative host seconds (``time.perf_counter``) by stage, see :data:`HOST_STAGES`:
        #: ``partition`` (tiling, placement, weight codes, tile inputs), ``corrections`` (input
        #: predistortion and output corrections, with the gather of tile columns), ``simulation``
        #: (inside the chips' ``set_weights`` and ``run``), ``matmul`` (whole :meth:`matmul` calls)
        self.host_time = dict.fromkeys(HOST_STAGES, 0.0)

    def __repr__(self):
        ids = ", ".join(f"{c.chip_id}{'' if k is None else '*'}" for c, k in zip(self.chips, self.corrections))
        return f"Engine(chips=[{ids}], num_sends={self.num_sends}, wait_between_events={self.wait_between_events})"

    @classmethod
    def from_store(cls, store, chips, *, open_chip=None, seed=None, **kwargs):
        """An engine on several chips, each with the latest artifact the store holds for it.

        Parameters
        ----------
        store : calib.ArtifactStore or path-like
        chips : sequence of int
            Chip ids (distinct); the model's tiles are spread over them.
        open_chip : callable or None, default=None
            ``open_chip(chip_id, preset_name) -> ObservableChip`` (a hardware
            backend). None: a simulated ``chipsim.Chip`` of the artifact's preset.
        seed : int or None, default=None
            Noise seed of the simulated chips (chip ``i`` of the list gets ``seed + i``).
        **kwargs
            Passed to :class:`Engine` (``num_sends``, ``correction``, ...).

        Returns
        -------
        Engine
        """
        from bss2_calib.calib import ArtifactStore  # the artifact store only; never the fitting code

        store = store if isinstance(store, ArtifactStore) else ArtifactStore(store)
        ids = [int(c) for c in chips]
        if not ids or len(set(ids)) != len(ids) or min(ids) < 0:
            raise InferValueError(f"chips must be distinct non-negative chip ids, got {list(chips)!r}")
        arts = [store.load_latest(c) for c in ids]
        if open_chip is None:
            from bss2_calib.chipsim import Chip

            objs = [Chip(c, a.preset["name"], noise_seed=None if seed is None else seed + k)
                    for k, (c, a) in enumerate(zip(ids, arts))]
        else:
            objs = [open_chip(c, a.preset["name"]) for c, a in zip(ids, arts)]
        return cls(objs, arts, **kwargs)

    @property
    def calibrated(self):
        """True if every chip has corrections."""
        return all(c is not None for c in self.corrections)

    # ------------------------------------------------------------- artifacts
    def _check(self, i, num_sends, wait):
        """Refuse (or warn about) an artifact that does not match chip i and the run conditions."""
        mism = self.corrections[i].mismatches(self.chips[i], num_sends=num_sends, wait_between_events=wait)
        if not mism:
            return mism
        field, why = mism[0]
        if not self.allow_mismatch:
            raise IncompatibleArtifact(f"{why} (field {field}; allow_mismatch=True overrides)", field)
        for field, why in mism:
            if (i, field) not in self._warned:
                self._warned.add((i, field))
                warnings.warn(ArtifactMismatchWarning(f"{why} (field {field}); using it anyway"), stacklevel=3)
        return mism

    def _apply_knobs(self, i, use_artifact=True):
        chip, art, corr = self.chips[i], self._artifacts[i], self.corrections[i]
        if use_artifact and hasattr(art, "apply_to") and not isinstance(art, Corrections):
            art.apply_to(chip)
        elif corr.knobs:
            chip.set_knobs(corr.knob_updates())

    def _ensure_knobs(self, i):
        """Write the artifact's knobs again if someone changed them since (one reconfiguration)."""
        corr, chip = self.corrections[i], self.chips[i]
        if corr.knobs and any(not np.array_equal(chip.get_knob(k), v) for k, v in corr.knobs.items()):
            log.info("chip %d: knobs changed since the artifact was applied; writing them again", chip.chip_id)
            chip.set_knobs(corr.knob_updates())

    # ---------------------------------------------------------------- tiling
    def _hemisphere(self, i, h):
        """The routing view of chip i's hemisphere h (cached)."""
        if (i, h) not in self._hemispheres:
            self._hemispheres[i, h] = Hemisphere(self.corrections[i], h)
        return self._hemispheres[i, h]

    def _room(self, name):
        """Rows ("spare_rows") or columns ("spare_columns") a tile leaves free when it may meet the worst hemisphere."""
        v = max([_ROOM[name](self._hemisphere(i, h)) for i, k in enumerate(self.corrections) if k is not None
                 for h in (0, 1)], default=0)
        return min(v, (ROWS if name == "spare_rows" else COLS) - 8)

    def _tile_shape(self):
        """Largest tile (rows, columns): the full 128 x 256 less the spare rows and columns."""
        spare = {}
        for name, size in (("spare_rows", ROWS), ("spare_columns", COLS)):
            v = getattr(self.correction, name)
            spare[name] = self._room(name) if v == "auto" else min(int(v), size - 8)
        return ROWS - spare["spare_rows"], COLS - spare["spare_columns"]

    def plan(self, n_in, n_out):
        """The tiles of an (n_in, n_out) matrix in execution order: list of (row0, row1, col0, col1).

        Tiles are at most :attr:`tile_rows` x :attr:`tile_cols` (128 x 256 unless spare rows or
        columns are kept free, see :class:`~infer.corrections.CorrectionOptions`).
        """
        tr, tc = self.tile_rows, self.tile_cols
        return [(r0, min(r0 + tr, n_in), c0, min(c0 + tc, n_out))
                for c0 in range(0, n_out, tc) for r0 in range(0, n_in, tr)]

    def _assign(self, key, tile_ids):
        """Slot index for every tile of one round: resident tiles stay, others go to the least recently used slot."""
        slots, used, out = self._slots, set(), [None] * len(tile_ids)
        for k, t in enumerate(tile_ids):
            for s, slot in enumerate(slots):
                if s not in used and slot.key == (key, t):
                    out[k] = s
                    used.add(s)
                    break
        for k in range(len(tile_ids)):
            if out[k] is None:
                s = min((s for s in range(len(slots)) if s not in used), key=lambda s: (slots[s].last_used, s))
                out[k] = s
                used.add(s)
        for s in out:
            self._clock += 1
            slots[s].last_used = self._clock
        return out

    def _placement(self, slot, key, tile_id, w_tile, options):
        """Where the tile goes on the slot's hemisphere and the codes to program (cached)."""
        ck = (slot.chip_index, slot.hemisphere, key, tile_id)
        p = self._placements.get(ck)
        if p is None:
            i, h = slot.chip_index, slot.hemisphere
            p = place(self.corrections[i], h, w_tile, options, hs=self._hemisphere(i, h))
            self._placements[ck] = p
            while len(self._placements) > _PLACEMENT_CACHE:
                self._placements.popitem(last=False)
        else:
            self._placements.move_to_end(ck)
        return p

    def _log_faults(self, key, tile_id, slot, n_tiles, shape, name, counts):
        entry = self._fault_log.get(key)
        if entry is None:
            entry = {"name": name or f"matrix {shape[0]}x{shape[1]}", "shape": shape, "n_tiles": n_tiles,
                     "tiles": {}, "slots": {}, "spills": {}}
            self._fault_log[key] = entry
            while len(self._fault_log) > _FAULT_LOG:
                self._fault_log.popitem(last=False)
        elif name:
            entry["name"] = name
        if isinstance(tile_id, tuple):  # a spill tile: ("spill", tile, chip, hemisphere of the tile, block)
            entry["spills"][tile_id] = counts
        else:
            entry["tiles"][tile_id] = counts
            entry["slots"][tile_id] = (slot.chip_index, slot.hemisphere)

    def _program(self, slot, key, tile_id, w_tile, options):
        chip = self.chips[slot.chip_index]
        h = slot.hemisphere
        if slot.key == (key, tile_id) and np.array_equal(chip.get_weights(h), slot.programmed):
            return None
        r, c = w_tile.shape
        full = np.zeros((ROWS, COLS), dtype=np.int64)
        corr = self.corrections[slot.chip_index]
        counts = None
        if corr is None:
            slot.rows, slot.src, slot.cols = np.arange(r), np.arange(r), np.arange(c)
            full[:r, :c] = w_tile
            slot.scale = slot.offset = slot.dead = slot.lut_flat = None
            slot.spill = None
        else:
            p = self._placement(slot, key, tile_id, w_tile, options)
            slot.rows, slot.src, slot.cols = p.rows, p.src, p.cols
            lost = p.spill_rows.size or p.spill_cols.size
            slot.spill = (p.spill_rows, p.spill_weights, p.spill_cols) if lost else None
            full[np.ix_(p.rows, p.cols)] = p.codes
            slot.scale, slot.offset = p.scale, corr.column_offset(h, p.cols)
            dead = corr.column_dead(h, p.cols)
            slot.dead = dead if dead.any() else None
            slot.lut_flat = np.ascontiguousarray(corr.lut_rows(h, p.rows).ravel().astype(np.uint8))
            self.stats["clipped_weights"] += p.clipped
            self.stats["dropped_weights"] += p.dropped
            counts = p.counts
        t = time.perf_counter()
        chip.set_weights(full, h)
        self.host_time["simulation"] += time.perf_counter() - t
        slot.programmed, slot.key, slot.n_rows, slot.n_cols = full, (key, tile_id), r, c
        self.stats["weight_writes"] += 1
        return counts

    def _physical_input(self, slot, x_tile, out):
        """Write the (predistorted) activations of a tile into out (batch, 128) at the slot's rows."""
        n = len(slot.rows)
        identity = n == x_tile.shape[1] and np.array_equal(slot.src, np.arange(n))
        xs = x_tile if identity else x_tile[:, slot.src]
        if slot.lut_flat is None:
            vals = xs
        else:
            idx = xs.astype(np.uint16)  # < 128 * 32: small indices are twice as fast as intp here
            idx += np.arange(n, dtype=np.uint16) * (ACT_MAX + 1)
            vals = np.take(slot.lut_flat, idx)
        if n == ROWS and np.array_equal(slot.rows, np.arange(ROWS)):
            out[:] = vals
        else:
            out[:, slot.rows] = vals

    def _output(self, slot, y, n_cols, num_sends):
        """Corrected, clipped float64 result of a tile from the raw chip output (batch, 256)."""
        yc = y[:, slot.cols[:n_cols]].astype(np.float64)
        if slot.scale is not None:
            yc -= slot.offset
            yc /= slot.scale * self.corrections[slot.chip_index].send_factor(num_sends)
            if slot.dead is not None:
                yc[:, slot.dead] = 0.0
            if slot.spill is not None and slot.spill[2].size:  # a spill tile delivers these columns
                yc[:, slot.spill[2]] = 0.0
            np.clip(yc, Y_MIN, Y_MAX, out=yc)
        return yc

    # ----------------------------------------------------------------- matmul
    def matmul(self, x, w, *, num_sends=None, wait_between_events=None, name=None):
        """Compute ``x @ w`` on the chips.

        Parameters
        ----------
        x : array-like of int, shape (batch, n_in) or (n_in,)
            Activations 0..31 (integer-valued floats are accepted). Not modified.
        w : array-like of int, shape (n_in, n_out)
            Weights -63..63. Not modified.
        num_sends : int or None, default=None
            Repetitions of each vector (1..255); None uses the engine's default.
        wait_between_events : int or None, default=None
            Event spacing in clock cycles (1..255); None uses the engine's default.
        name : str or None, default=None
            Name of the weight matrix in :meth:`fault_report` (default ``"matrix NxM"``).

        Returns
        -------
        ndarray of float64, shape (batch, n_out) or (n_out,)
            Raw results (uncalibrated chips) or output LSB at the target gain (calibrated),
            saturated to -128..127; see the module docstring.
        """
        t_call = time.perf_counter()
        if name is not None and not isinstance(name, str):
            raise InferValueError(f"name must be a string, got {type(name).__name__}")
        n = self.num_sends if num_sends is None else _run_param("num_sends", num_sends)
        wait = self.wait_between_events if wait_between_events is None else \
            _run_param("wait_between_events", wait_between_events)
        xa, wa = check_activations(x), check_weights(w)
        single = xa.ndim == 1
        if single:
            xa = xa[None, :]
        if xa.shape[1] != wa.shape[0]:
            raise InferValueError(f"activations have {xa.shape[1]} inputs but weights have {wa.shape[0]} rows")
        for i in range(len(self.chips)):
            if self.corrections[i] is not None:
                self._check(i, n, wait)
                self._ensure_knobs(i)
        batch, n_out = xa.shape[0], wa.shape[1]
        out = np.zeros((batch, n_out))
        if batch:
            t0 = [c.hw_time_s for c in self.chips]
            self._run_tiles(xa, wa, n, wait, out, name)
            self.stats["hw_time_s"] += max(c.hw_time_s - t for c, t in zip(self.chips, t0))
            np.clip(out, Y_MIN, Y_MAX, out=out)
        self.stats["calls"] += 1
        self.stats["vectors"] += batch
        self.host_time["matmul"] += time.perf_counter() - t_call
        return out[0] if single else out

    def _run_tiles(self, xa, wa, n, wait, out, name=None):
        clock, host = time.perf_counter, self.host_time
        t0, before = clock(), (host["corrections"], host["simulation"])
        tiles = self.plan(*wa.shape)
        log = (_weight_key(wa), len(tiles), wa.shape, name)
        jobs = [(t, slice(r0, r1), slice(c0, c1), None) for t, (r0, r1, c0, c1) in enumerate(tiles)]
        lost = self._run_jobs(jobs, xa, wa, n, wait, out, log)
        spills = [job for t, ci, h, spill in lost for job in self._spill_jobs(wa, tiles[t], t, ci, h, *spill)]
        if spills:
            hw0 = [c.hw_time_s for c in self.chips]
            self._run_jobs(spills, xa, wa, n, wait, out, log)
            self.stats["spill_runs"] += len(spills)
            self.stats["spill_hw_time_s"] += max(c.hw_time_s - t for c, t in zip(self.chips, hw0))
        host["partition"] += clock() - t0 - (host["corrections"] - before[0]) - (host["simulation"] - before[1])

    def _spill_jobs(self, wa, tile, t, chip_index, hemisphere, lost_rows, residual, lost_cols):
        """Spill tiles of tile t as placed on chip_index's hemisphere (:func:`infer.spill.spill_tiles`)."""
        return spill_tiles(wa, tile, ("spill", t, chip_index, hemisphere), lost_rows, residual, lost_cols,
                           self._spill_room)

    def _run_jobs(self, jobs, xa, wa, n, wait, out, log):
        """Run tiles in rounds of one tile per slot; add their outputs into out.

        ``jobs``: (tile id, rows, columns, weights): ordinary tiles are slices of ``wa`` (weights
        None), spill tiles give index arrays and their own weights. Returns (tile id, chip index,
        hemisphere, (spill rows, spill weights, spill columns)) of every tile whose placement left
        something for a spill tile.
        """
        clock, host = time.perf_counter, self.host_time
        key, n_tiles, shape, name = log
        n_slots, batch = len(self._slots), xa.shape[0]
        lost = []
        for first in range(0, len(jobs), n_slots):
            chunk = jobs[first:first + n_slots]
            by_chip = {}
            for (tid, rows, cols, w_tile), s in zip(chunk, self._assign(key, [j[0] for j in chunk])):
                slot = self._slots[s]
                spill = w_tile is not None
                w_tile = w_tile if spill else wa[rows, cols]
                counts = self._program(slot, key, tid, w_tile, self._spill_options if spill else self.correction)
                if counts is not None:
                    self._log_faults(key, tid, slot, n_tiles, shape, name, counts)
                if slot.spill is not None:
                    lost.append((tid, slot.chip_index, slot.hemisphere, slot.spill))
                by_chip.setdefault(slot.chip_index, []).append((slot.hemisphere, slot, rows, cols))
            for ci in sorted(by_chip):
                entries = sorted(by_chip[ci], key=lambda e: e[0])
                chip = self.chips[ci]
                for b0 in range(0, batch, self.max_batch):
                    b1 = min(b0 + self.max_batch, batch)
                    xin = np.zeros((len(entries), b1 - b0, ROWS), dtype=np.uint8)
                    t1 = clock()
                    for k, (_, slot, rows, _cols) in enumerate(entries):
                        self._physical_input(slot, xa[b0:b1, rows], xin[k])
                    t2 = clock()
                    if len(entries) == 2:
                        y = chip.run(xin, "both", num_sends=n, wait_between_events=wait)
                    else:
                        y = chip.run(xin[0], entries[0][0], num_sends=n, wait_between_events=wait)[None]
                    t3 = clock()
                    for k, (_, slot, _rows, cols) in enumerate(entries):
                        out[b0:b1, cols] += self._output(slot, y[k], slot.n_cols, n)
                    host["corrections"] += (t2 - t1) + (clock() - t3)
                    host["simulation"] += t3 - t2
                self.stats["tile_runs"] += len(entries)
        return lost

    # ------------------------------------------------------------ measuring
    def measure(self, *, num_sends=None, n_vectors=200, repeats=8, seed=0):
        """Measure the gain and trial-to-trial noise of this engine's outputs (cached per num_sends).

        Random weights on one full tile (128 x 256, magnitude scaled so outputs stay within
        about +-30 LSB) and random activations (half of them zero) are run ``repeats`` times;
        the gain is the least-squares slope of the mean output against ``num_sends * x.w``,
        the noise the root-mean-square of the per-output standard deviation over repeats.

        Parameters
        ----------
        num_sends : int or None, default=None
        n_vectors : int, default=200
        repeats : int, default=8
            >= 2.
        seed : int, default=0
            Seed of the probe pattern (not of the chip's noise).

        Returns
        -------
        Measurement
        """
        n = self.num_sends if num_sends is None else _run_param("num_sends", num_sends)
        if repeats < 2 or n_vectors < 2:
            raise InferValueError("measure needs repeats >= 2 and n_vectors >= 2")
        key = (n, n_vectors, repeats, seed)
        if key in self._measurements:
            return self._measurements[key]
        rng = np.random.default_rng(seed)
        wmax = int(max(4, min(W_MAX, round(2 * W_MAX / n))))
        w = rng.integers(-wmax, wmax + 1, size=(ROWS, COLS))
        x = rng.integers(0, ACT_MAX + 1, size=(n_vectors, ROWS)) * (rng.random((n_vectors, ROWS)) < 0.5)
        ys = np.stack([self.matmul(x, w, num_sends=n) for _ in range(repeats)])
        ideal = n * (x @ w).astype(np.float64)
        mean = ys.mean(axis=0)
        inside = np.all(np.abs(ys) < 100, axis=0)  # away from saturation
        s, m = ideal[inside], mean[inside]
        sc = s - s.mean()
        gain = float(sc @ (m - m.mean()) / (sc @ sc))
        noise = float(np.sqrt(np.mean(ys.var(axis=0, ddof=1)[inside])))
        self._measurements[key] = Measurement(gain=gain, noise_std=noise, num_sends=n)
        return self._measurements[key]

    def fault_report(self):
        """Faults the weight matrices run so far met, and what became of them.

        One entry per weight matrix (the 64 most recent), summed over its tiles as last
        placed and their spill tiles; see :mod:`infer.routing` for the kinds and counts.

        Returns
        -------
        FaultReport
        """
        layers = []
        for entry in self._fault_log.values():
            counts = {k: dict.fromkeys(COUNTS, 0) for k in KINDS}
            # the spill tiles of every tile's last placement (the slot it was placed on decides what they hold)
            spills = [sc for sid, sc in entry["spills"].items() if entry["slots"].get(sid[1]) == sid[2:4]]
            for tc in (*entry["tiles"].values(), *spills):
                for k in KINDS:
                    for c in COUNTS:
                        counts[k][c] += tc[k][c]
            layers.append({"name": entry["name"], "shape": tuple(int(v) for v in entry["shape"]),
                           "tiles": int(entry["n_tiles"]), "placed_tiles": len(entry["tiles"]),
                           "spill_tiles": len(spills), "counts": counts})
        return FaultReport(tuple(layers), remap=bool(self.correction.remap),
                           tile_shape=(self.tile_rows, self.tile_cols))

    def report(self):
        """Counters, the correction summary of every chip and the fault report (a dict)."""
        return {"stats": dict(self.stats),
                "chips": [{"chip_id": c.chip_id, "preset": c.preset.name, "calibrated": k is not None,
                           **({} if k is None else k.summary())}
                          for c, k in zip(self.chips, self.corrections)],
                "faults": self.fault_report().to_dict()}
