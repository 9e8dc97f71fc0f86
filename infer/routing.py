"""Routing around faulty elements: where a tile's rows and columns go on a hemisphere.

A tile of ``r`` logical rows (inputs) and ``c`` logical columns (outputs) is
*placed* on one hemisphere: every logical row gets a physical synapse row
(driver), every logical column a physical column (neuron), and some logical
rows get a second, *partner* row that carries the same input. Only the fault
masks and gains of the calibration artifact (:class:`~infer.corrections.Corrections`)
are used, never the simulator's truth.

What can each physical synapse pair (the excitatory and the inhibitory row of
one driver at one column) still do? Its excitatory row passes ``E`` and its
inhibitory row ``I`` (effective weight units, gains included); the programmed
code moves one of them:

* healthy row: ``0 .. D(63) * G`` (``G`` its gain: driver x neuron x synapse);
* stuck at zero, dead driver, dead neuron: exactly 0;
* stuck at max: exactly ``D(63) * G`` whatever is programmed.

so the pair reaches the interval ``[E_lo - I_hi, E_hi - I_lo]``. A stuck-at-max
excitatory row with a healthy inhibitory partner reaches
``[D(63) (G+ - G-), D(63) G+]``: all positive weights (the inhibitory row
cancels the surplus; the correction that existed before routing), but no
negative one. A stuck-at-zero excitatory row reaches ``[-D(63) G-, 0]``: the
other sign cannot stand in for it, a positive weight there is lost. A partner
row adds its own interval, so a weight that one pair cannot carry is split:
the primary pair takes what it can (``clip(w, lo, hi)``) and the partner the
rest; with a healthy partner every weight is reachable again.

Placement (:func:`place`), greedy and deterministic, starting from the
identity (so a chip without recorded faults is used exactly as before):

1. **rows**: a logical row moves to a free physical row, or swaps with
   another logical row, when that lowers its cost: the weight it loses on
   dead drivers (``sum |w|``) and stuck synapses (distance of each weight from
   the pair's interval, +0.25 per stuck-at-max synapse used), plus, on a
   driver with no measured transfer, ``sum |w|`` times the artifact's spread of
   driver amplitudes (:meth:`~calib.model.CorrectionModel.driver_gain_spread`);
2. **columns**: the same with a column cost: dead neuron (1e12: never, if
   there is room), noisy neuron (1e6), a *weak* neuron out of reach (1e6: its
   fitted gain is below half the target and the column's largest weight needs
   more than its ``D(63) * gain``, so the correction can bring it onto the target
   only by amplifying its 8-bit output, noise and rounding included, or by
   clipping weights), a neuron with nothing measured (the artifact's own spread of
   fitted gains, :meth:`~calib.model.CorrectionModel.neuron_gain_spread`, times
   ``sum |w|``), plus the stuck-synapse losses of the column's rows;
3. rows again (the columns moved);
4. **partners**: logical rows that still lose weight get, while free live rows
   remain, the free row that removes most of the loss.

Free rows and columns are those the tile leaves unused; ``CorrectionOptions``
(``spare_rows``, ``spare_columns``) makes the engine cut smaller tiles to keep
more free. What remains is counted per fault kind (:data:`KINDS`): ``met``
(elements the identity placement would have used), ``placed`` (elements the
final placement uses), ``compensated`` (placed, but every weight reached
within one weight step), ``spilled`` (placed and not reached, but run again
in a spill tile, ``CorrectionOptions.spill``: what rows miss on dead drivers, whole
columns on dead, noisy or out-of-reach weak neurons, and what stuck synapses miss
in a tile that spills for those) and ``lost`` (placed, not reached, not spilled). "Used" means: a
driver row or neuron column with a nonzero weight; a stuck-at-zero synapse
with a nonzero weight of its sign; any stuck-at-max synapse (it passes
current even at weight 0); a weak column only where out of reach. Dead, noisy
and out-of-reach weak columns and dead drivers cannot be compensated (a dead
driver row can, by a partner).
"""
from dataclasses import dataclass

import numpy as np

from bss2_calib.chipsim.geometry import COLS, ROWS, W_MAX

__all__ = ["COUNTS", "KINDS", "FaultReport", "Hemisphere", "Placement", "place", "program"]

#: fault kinds of the report, in order
KINDS = ("dead_driver", "dead_neuron", "noisy_neuron", "weak_neuron", "stuck_zero", "stuck_max")
COUNTS = ("met", "placed", "compensated", "spilled", "lost")

_DEAD_COLUMN = 1e12
_NOISY_COLUMN = 1e6
_WEAK_COLUMN = 1e6
_STUCK_MAX_EPS = 0.25  # weight units: prefer not to lean on a compensated stuck-at-max synapse
_TOL = 1e-6
_LOST = 1.0  # weight units (as programmed): a weight missed by more than one step is lost (rounding gives <= ~0.6)


@dataclass(frozen=True)
class FaultReport:
    """Faults that an engine's weight matrices met, per matrix ("layer") and kind.

    Attributes
    ----------
    layers : tuple of dict
        One per weight matrix, in order of first use: ``name``, ``shape`` (n_in, n_out),
        ``tiles`` (tiles of the matrix), ``placed_tiles`` (tiles placed on a calibrated
        chip so far), ``spill_tiles`` (spill tiles run for it, see :class:`~infer.engine.Engine`)
        and ``counts``: ``{kind: {"met", "placed", "compensated", "spilled", "lost"}}`` for every
        kind of :data:`KINDS` (units: driver rows, neuron columns, synapses), the spill tiles'
        own counts included (what a spill tile still loses is ``lost``).
    remap : bool
        Whether the engine routed around faults.
    tile_shape : tuple of (int, int)
        Largest tile (rows, columns) the engine cut.
    """

    layers: tuple
    remap: bool = True
    tile_shape: tuple = (ROWS, COLS)

    def total(self):
        """Counts summed over all layers: ``{kind: {"met", "placed", "compensated", "spilled", "lost"}}``."""
        out = {k: dict.fromkeys(COUNTS, 0) for k in KINDS}
        for layer in self.layers:
            for k in KINDS:
                for c in COUNTS:
                    out[k][c] += layer["counts"][k][c]
        return out

    @property
    def lost(self):
        """Faulty elements whose loss reaches the results, all kinds and layers."""
        return sum(v["lost"] for v in self.total().values())

    def to_dict(self):
        return {"remap": self.remap, "tile_shape": list(self.tile_shape),
                "layers": [dict(layer, shape=list(layer["shape"])) for layer in self.layers],
                "total": self.total(), "lost": self.lost}

    def __str__(self):
        lines = [f"faults (remap {'on' if self.remap else 'off'}, tiles up to {self.tile_shape[0]}x"
                 f"{self.tile_shape[1]}): met / placed / compensated / spilled / lost"]
        for layer in self.layers:
            parts = [f"{k} {c['met']}/{c['placed']}/{c['compensated']}/{c['spilled']}/{c['lost']}"
                     for k, c in layer["counts"].items() if c["met"] or c["placed"]]
            spill = f" ({layer['spill_tiles']} spill tiles)" if layer.get("spill_tiles") else ""
            lines.append(f"  {layer['name']}{spill}: " + (", ".join(parts) if parts else "none"))
        return "\n".join(lines)


def _dist(v, lo, hi):
    """Distance of v from the interval [lo, hi] (elementwise)."""
    return np.maximum(lo - v, 0.0) + np.maximum(v - hi, 0.0)


class Hemisphere:
    """What the calibration says about one hemisphere: reach of every synapse pair and the masks.

    Parameters
    ----------
    corrections : Corrections
    hemisphere : {0, 1}
    """

    def __init__(self, corrections, hemisphere):
        h, f = hemisphere, corrections.faults
        self.G = corrections.effective_gain[:, h]  # (2, 128, 256): 0 where nothing passes
        self.stuck_max = f.stuck_max[:, h] & (self.G > 0)
        self.stuck_zero = f.stuck_zero[:, h]
        self.dmax = float(corrections.weight_envelope[-1])
        self.d_mono, self.d_mid = corrections.weight_envelope, corrections.weight_midpoints
        e_hi, i_hi = self.dmax * self.G[0], self.dmax * self.G[1]
        e_lo = np.where(self.stuck_max[0], e_hi, 0.0)
        i_lo = np.where(self.stuck_max[1], i_hi, 0.0)
        self.lo, self.hi = e_lo - i_hi, e_hi - i_lo  # (128, 256) reach of each pair
        rs, cs = slice(h * ROWS, (h + 1) * ROWS), slice(h * COLS, (h + 1) * COLS)
        self.row_dead = f.driver_dead[rs].copy()
        self.row_uncal = ~corrections.driver_fitted[rs] & ~self.row_dead
        self.col_dead = f.neuron_dead[cs].copy()
        self.col_noisy = f.neuron_noisy[cs] & ~self.col_dead
        self.col_uncal = ~corrections.neuron_fitted[cs] & ~self.col_dead & ~self.col_noisy
        self.col_weak = corrections.neuron_weak[cs] & ~self.col_noisy
        # largest weight (weight units) a weak column carries at its fitted gain without amplification
        self.col_reach = self.dmax * np.minimum(corrections.gain_exc_used[cs], corrections.gain_inh_used[cs])
        # routing costs per unit of sum|w| of a neuron / driver corrected with nominal values: the spreads
        # the artifact measured, not a preset's constants
        self.uncal_neuron_cost = corrections.neuron_gain_spread()
        self.uncal_driver_cost = corrections.driver_gain_spread()
        stuck = (self.stuck_zero | self.stuck_max).any(axis=0)
        # synapses whose loss depends on where a weight goes (dead rows and columns are handled apart)
        self.stuck = stuck & ~self.row_dead[:, None] & ~self.col_dead[None, :]
        self.any_fault = bool(self.row_dead.any() or self.row_uncal.any() or self.col_dead.any()
                              or self.col_noisy.any() or self.col_uncal.any() or self.col_weak.any() or stuck.any())

    def out_of_reach(self, w, cols):
        """(c,) bool: logical columns of ``w`` whose weights a weak physical column at ``cols`` cannot carry."""
        m = np.abs(w).max(axis=0, initial=0) if w.size else np.zeros(len(cols))
        return self.col_weak[cols] & (m > self.col_reach[cols] + _TOL)

    # ------------------------------------------------------------------ costs
    def _pair_cost(self, w, p, q):
        """Loss of weights w on the stuck pairs (p, q), broadcasting; 0 on healthy pairs."""
        d = _dist(w, self.lo[p, q], self.hi[p, q]) + _STUCK_MAX_EPS * self.stuck_max[:, p, q].any(axis=0)
        return np.where(self.stuck[p, q], d, 0.0)

    def column_costs(self, w, rows):
        """(c, 256): cost of logical column j on physical column q, given the physical rows."""
        a = np.abs(w).astype(np.float64)
        live = ~self.row_dead[rows]
        s = (a * live[:, None]).sum(axis=0)  # (c,)
        m = (a * live[:, None]).max(axis=0, initial=0)  # (c,)
        C = (_DEAD_COLUMN * self.col_dead + _NOISY_COLUMN * self.col_noisy)[None, :] \
            + _WEAK_COLUMN * (self.col_weak[None, :] & (m[:, None] > self.col_reach[None, :] + _TOL)) \
            + self.uncal_neuron_cost * s[:, None] * self.col_uncal[None, :]
        ii, qq = np.nonzero(self.stuck[rows])
        if ii.size:
            p = rows[ii]
            vals = self._pair_cost(w[ii, :].astype(np.float64), p[:, None], qq[:, None])  # (nnz, c)
            np.add.at(C.T, qq, vals)
        return C

    def row_costs(self, w, cols):
        """(r, 128): cost of logical row i on physical row p, given the physical columns."""
        a = np.abs(w).astype(np.float64)
        s = (a * ~self.col_dead[cols][None, :]).sum(axis=1)  # (r,)
        R = s[:, None] * (self.row_dead + self.uncal_driver_cost * self.row_uncal)[None, :]
        pp, jj = np.nonzero(self.stuck[:, cols])
        if pp.size:
            vals = self._pair_cost(w[:, jj].astype(np.float64), pp[None, :], cols[jj][None, :])  # (r, nnz)
            np.add.at(R.T, pp, vals.T)
        return R


def _improve(C, assign, pinned=None):
    """Greedy moves (to unused targets) and swaps that lower the total cost; returns a new assignment.

    Targets marked ``pinned`` take part in no swap (a dead column loses its whole output,
    whichever logical column sits there: swapping would only trade one lost output for another).
    """
    n, m = C.shape
    pinned = np.zeros(m, bool) if pinned is None else pinned
    assign = assign.copy()
    used = np.zeros(m, bool)
    used[assign] = True
    idx = np.arange(n)
    for _ in range(3):
        changed = False
        cur = C[idx, assign]
        for j in np.argsort(-cur, kind="stable"):
            cj = C[j, assign[j]]
            if cj <= _TOL:
                continue
            gain_move, q = 0.0, -1
            free = np.flatnonzero(~used)
            if free.size:
                q = free[np.argmin(C[j, free])]
                gain_move = cj - C[j, q]
            delta = C[j, assign] + C[idx, assign[j]] - cj - C[idx, assign]
            delta[pinned[assign] | pinned[assign[j]]] = np.inf
            k = int(np.argmin(delta))
            gain_swap = -delta[k]
            if max(gain_move, gain_swap) <= _TOL * max(1.0, cj):
                continue
            if gain_move >= gain_swap:
                used[assign[j]] = False
                assign[j] = q
                used[q] = True
            else:
                assign[j], assign[k] = assign[k], assign[j]
            changed = True
        if not changed:
            break
    return assign


@dataclass(frozen=True, eq=False)
class Placement:
    """Where a tile goes on a hemisphere and what to program there.

    Attributes
    ----------
    rows : ndarray of int, shape (r + k,)
        Physical synapse rows: the primaries of logical rows 0..r-1, then k partner rows.
    src : ndarray of int, shape (r + k,)
        Logical row whose input each physical row receives.
    cols : ndarray of int, shape (c,)
        Physical column of every logical column.
    codes : ndarray of int64, shape (r + k, c)
        Signed weight codes -63..63 to program at ``(rows, cols)``.
    scale : ndarray of float64, shape (c,)
        Headroom scale of every column (undone on the outputs).
    counts : dict
        ``{kind: {"met", "placed", "compensated", "lost"}}`` for :data:`KINDS`.
    clipped : int
        Weights missed by more than one weight step for other reasons than a fault
        (headroom at ``min_scale``), and stuck-at-max synapses that could not be compensated.
    dropped : int
        Nonzero weights lost on faulty elements.
    spill_rows : ndarray of int, shape (k,)
        Logical rows to run again in a spill tile (``CorrectionOptions.spill``): rows that
        miss weight on a dead driver, or on a stuck synapse of a tile that spills anyway.
        Empty without ``spill``.
    spill_weights : ndarray of int64, shape (k, c)
        What those rows miss, as weights -63..63 (0 on ``spill_cols`` and where nothing is
        missed): the spill tile's output for them is added to the tile's.
    spill_cols : ndarray of int, shape (m,)
        Logical columns to run again in a spill tile: on a dead, noisy or out-of-reach weak
        neuron (their output here is discarded). Empty without ``spill``.
    """

    rows: np.ndarray
    src: np.ndarray
    cols: np.ndarray
    codes: np.ndarray
    scale: np.ndarray
    counts: dict
    clipped: int
    dropped: int
    spill_rows: np.ndarray
    spill_weights: np.ndarray
    spill_cols: np.ndarray

    @property
    def identity(self):
        """True if logical row i and column j sit at physical row i and column j, without partners."""
        return bool(np.array_equal(self.src, np.arange(len(self.src))) and np.array_equal(self.rows, self.src)
                    and np.array_equal(self.cols, np.arange(len(self.cols))))


def _assign_partners(hs, w, rows, cols, n_partners_max):
    """Partner rows for logical rows that still lose weight: list of (logical row, physical row)."""
    if n_partners_max <= 0:
        return []
    live_c = ~hs.col_dead[cols]
    wf = w.astype(np.float64)
    lo, hi = hs.lo[np.ix_(rows, cols)], hs.hi[np.ix_(rows, cols)]
    bad = hs.stuck[np.ix_(rows, cols)] | hs.row_dead[rows][:, None]
    loss = np.where(bad & live_c[None, :], _dist(wf, lo, hi), 0.0).sum(axis=1)
    used = np.zeros(ROWS, bool)
    used[rows] = True
    free = np.flatnonzero(~used & ~hs.row_dead)
    free = free[np.argsort(hs.row_uncal[free], kind="stable")]  # calibrated drivers first
    out = []
    for i in np.argsort(-loss, kind="stable"):
        if loss[i] <= _LOST or not free.size or len(out) >= n_partners_max:
            break
        plo, phi = hs.lo[np.ix_(free, cols)], hs.hi[np.ix_(free, cols)]  # (F, c)
        pbad = hs.stuck[np.ix_(free, cols)]
        relevant = (bad[i][None, :] | pbad) & live_c[None, :]
        d = _dist(wf[i][None, :], lo[i][None, :] + plo, hi[i][None, :] + phi)
        d = d + _STUCK_MAX_EPS * hs.stuck_max[:, free][:, :, cols].any(axis=0)
        cost = np.where(relevant, d, 0.0).sum(axis=1) + hs.uncal_driver_cost * np.abs(wf[i]).sum() * hs.row_uncal[free]
        k = int(np.argmin(cost))
        if cost[k] < loss[i] - _LOST:
            out.append((int(i), int(free[k])))
            free = np.delete(free, k)
    return out


def _solve(hs, t, prow, cols):
    """Codes that bring each physical pair (prow[a], cols[b]) nearest to its target t[a, b]; and what they give."""
    G0, G1 = hs.G[0][np.ix_(prow, cols)], hs.G[1][np.ix_(prow, cols)]
    sm0, sm1 = hs.stuck_max[0][np.ix_(prow, cols)], hs.stuck_max[1][np.ix_(prow, cols)]
    dmax = hs.dmax
    with np.errstate(divide="ignore", invalid="ignore"):
        d_exc = np.where(G0 > 0, t / G0, 0.0)  # healthy pair, positive target
        d_inh = np.where(G1 > 0, -t / G1, 0.0)  # healthy pair, negative target
        signed = np.where(t >= 0, d_exc, -d_inh)
        signed = np.where(sm0 & ~sm1, -np.where(G1 > 0, (dmax * G0 - t) / G1, 0.0), signed)
        signed = np.where(sm1 & ~sm0, np.where(G0 > 0, (t + dmax * G1) / G0, 0.0), signed)
    signed = np.where(sm0 & sm1, 0.0, signed)
    signed = np.where(sm0 & ~sm1, np.minimum(signed, 0.0), signed)
    signed = np.where(sm1 & ~sm0, np.maximum(signed, 0.0), signed)
    mag = np.searchsorted(hs.d_mid, np.minimum(np.abs(signed), dmax))
    codes = np.where(signed < 0, -mag, mag).astype(np.int64)
    d = hs.d_mono[np.abs(codes)]
    exc = np.where(sm0, dmax * G0, np.where(codes > 0, d * G0, 0.0))
    inh = np.where(sm1, dmax * G1, np.where(codes < 0, d * G1, 0.0))
    return codes, exc - inh


def _lost_columns(hs, w, rows, cols):
    """{kind: (c,) bool} logical columns that lose their whole output: on a dead, noisy or out-of-reach weak neuron."""
    live_r = ~hs.row_dead[rows]
    col_used = ((w != 0) & live_r[:, None]).any(axis=0)
    return {"dead_neuron": hs.col_dead[cols] & col_used, "noisy_neuron": hs.col_noisy[cols] & col_used,
            "weak_neuron": hs.out_of_reach(w * live_r[:, None], cols) & col_used}


def _fault_elements(hs, w, rows, cols):
    """{kind: (r, c) bool} weights on a dead driver, a stuck-at-zero synapse of their sign or a stuck-at-max one."""
    nz = w != 0
    live_r, live_c = ~hs.row_dead[rows], ~hs.col_dead[cols]
    szr = np.where(w < 0, hs.stuck_zero[1][np.ix_(rows, cols)], hs.stuck_zero[0][np.ix_(rows, cols)])
    live = live_r[:, None] & live_c[None, :]
    return {"dead_driver": ~live_r[:, None] & live_c[None, :] & nz, "stuck_zero": szr & nz & live,
            "stuck_max": hs.stuck_max[:, rows][:, :, cols].any(axis=0) & live}


def _count(hs, w, rows, cols, err=None):
    """Fault counts of a placement; err (r, c) is the miss in weight units (None: only which are met)."""
    out = {k: dict.fromkeys(COUNTS, 0) for k in KINDS}
    for k, m in _lost_columns(hs, w, rows, cols).items():
        out[k]["met"] = out[k]["placed"] = out[k]["lost"] = int(m.sum())
    for k, m in _fault_elements(hs, w, rows, cols).items():
        # dead drivers count rows; a row is lost if any of its weights is
        out[k]["met"] = out[k]["placed"] = int(m.any(axis=1).sum() if k == "dead_driver" else m.sum())
        if err is None:
            continue
        lost = m & (err > _LOST)
        out[k]["lost"] = int(lost.any(axis=1).sum() if k == "dead_driver" else lost.sum())
        out[k]["compensated"] = out[k]["placed"] - out[k]["lost"]
    return out


def _spill(hs, w, rows, cols, prog, counts):
    """What a spill tile must run again: (logical rows, their residual weights, logical columns); counts updated.

    A tile spills when routing left it rows that miss weight on dead drivers or columns on dead,
    noisy or out-of-reach weak neurons: those columns are run again whole, and every weight that
    misses by more than a weight step on a faulty element (dead driver, stuck synapse:
    :func:`_fault_elements`) leaves a residual ``(v - got) / scale`` (as a weight, rounded, within
    -63..63; what partner rows already carry is included in ``got``) that the spill tile adds (an
    element whose residual lies beyond -63..63 is carried in part and stays counted as lost).
    Stuck synapses alone do not make a tile spill: a single synapse's miss is small next to the
    read-out noise a spill tile adds to its columns; they ride along when the tile spills anyway.
    """
    lost_c = np.logical_or.reduce(list(_lost_columns(hs, w, rows, cols).values()))
    elements = _fault_elements(hs, w, rows, cols)
    missed = prog["err"] > _LOST
    if not (lost_c.any() or (elements["dead_driver"] & missed).any()):
        return np.zeros(0, dtype=np.int64), np.zeros((0, w.shape[1]), dtype=np.int64), np.zeros(0, dtype=np.int64)
    lost = np.logical_or.reduce(list(elements.values())) & missed & ~lost_c[None, :]
    res = np.rint(prog["miss"] / prog["scale"][None, :])
    short = lost & (np.abs(res) > W_MAX)  # beyond one weight's range: carried only in part
    res = np.where(lost, np.clip(res, -W_MAX, W_MAX), 0).astype(np.int64)
    spill_rows = np.flatnonzero(res.any(axis=1))
    for k, c in counts.items():  # what a row or a column spill carries whole is spilled, the rest still lost
        m = elements[k] & short if k in elements else None
        still = 0 if m is None else int(m.any(axis=1).sum() if k == "dead_driver" else m.sum())
        c["spilled"], c["lost"] = c["lost"] - still, still
    return spill_rows, res[spill_rows], np.flatnonzero(lost_c)


def place(corrections, hemisphere, w, options, hs=None):
    """Place a logical tile on a hemisphere and compute the codes to program.

    Parameters
    ----------
    corrections : Corrections
    hemisphere : {0, 1}
    w : ndarray of int, shape (r, c)
        Logical weights -63..63, r <= 128, c <= 256.
    options : CorrectionOptions
        ``remap`` (route around faults), ``spill`` (mark what is lost for a spill tile and
        count it ``spilled``), ``min_scale``, ``max_scale``.
    hs : Hemisphere or None, default=None
        Precomputed :class:`Hemisphere` of these corrections (built if None).

    Returns
    -------
    Placement
    """
    hs = hs if hs is not None else Hemisphere(corrections, hemisphere)
    w = np.asarray(w, dtype=np.int64)
    r, c = w.shape
    rows, cols = np.arange(r), np.arange(c)
    met = _count(hs, w, rows, cols)
    partners = []
    if options.remap and hs.any_fault:
        rows = _improve(hs.row_costs(w, cols), rows)
        cols = _improve(hs.column_costs(w, rows), cols, pinned=hs.col_dead)
        rows = _improve(hs.row_costs(w, cols), rows)
        partners = _assign_partners(hs, w, rows, cols, ROWS - r)
    prog = program(hs, w, rows, cols, partners, options)
    counts = _count(hs, w, rows, cols, prog["err"])
    for k in KINDS:
        counts[k]["met"] = met[k]["met"]
    spill_rows, spill_weights, spill_cols = np.zeros(0, np.int64), np.zeros((0, c), np.int64), np.zeros(0, np.int64)
    if options.spill:
        spill_rows, spill_weights, spill_cols = _spill(hs, w, rows, cols, prog, counts)
    return Placement(rows=prog["rows"], src=prog["src"], cols=cols, codes=prog["codes"], scale=prog["scale"],
                     counts=counts, clipped=prog["clipped"], dropped=prog["dropped"], spill_rows=spill_rows,
                     spill_weights=spill_weights, spill_cols=spill_cols)


def program(hs, w, rows, cols, partners, options):
    """Codes for logical weights w placed at (rows, cols) with partner rows; the headroom scale; the misses.

    Parameters
    ----------
    hs : Hemisphere
    w : ndarray of int, shape (r, c)
    rows : ndarray of int, shape (r,)
        Physical row of every logical row.
    cols : ndarray of int, shape (c,)
        Physical column of every logical column.
    partners : list of (int, int)
        (logical row, physical partner row) pairs.
    options : CorrectionOptions

    Returns
    -------
    dict
        ``rows``, ``src`` (physical rows and the logical row feeding each), ``codes`` (len(rows), c),
        ``scale`` (c,), ``err`` (r, c) the miss in weight units as programmed (``miss`` signed,
        wanted minus got), ``clipped`` and
        ``dropped`` (see :class:`Placement`).
    """
    w = np.asarray(w, dtype=np.int64)
    r, c = w.shape
    src = np.concatenate([np.arange(r), np.array([i for i, _ in partners], dtype=np.int64)])
    prow = np.concatenate([np.asarray(rows, dtype=np.int64), np.array([p for _, p in partners], dtype=np.int64)])
    # headroom scale from the primaries' ordinary synapses: the largest that carries every weight at least
    # (1 - clip_tolerance) of the way
    mag = np.abs(w).astype(np.float64)
    sign = w < 0
    G = hs.G[:, rows][:, :, cols]
    g = np.where(sign, G[1], G[0])
    plain = ~hs.stuck_max[:, rows][:, :, cols].any(axis=0)
    usable = (mag > 0) & (g > 0) & plain
    with np.errstate(divide="ignore", invalid="ignore"):
        limit = np.where(usable, hs.dmax * g / (np.where(mag > 0, mag, 1.0) * (1 - options.clip_tolerance)), np.inf)
    scale = np.clip(limit.min(axis=0, initial=np.inf), options.min_scale, options.max_scale)
    v = w * scale[None, :]
    # the primary pair takes what it can, the partner the rest
    lo, hi = hs.lo[np.ix_(prow, cols)], hs.hi[np.ix_(prow, cols)]
    t = np.zeros((len(prow), c))
    t[:r] = np.clip(v, lo[:r], hi[:r])
    for k, (i, _) in enumerate(partners):
        t[r + k] = np.clip(v[i] - t[i], lo[r + k], hi[r + k])
    codes, net = _solve(hs, t, prow, cols)
    got = np.zeros((r, c))
    np.add.at(got, src, net)
    err = np.abs(got - v)
    szr = np.where(sign, hs.stuck_zero[1][np.ix_(rows, cols)], hs.stuck_zero[0][np.ix_(rows, cols)])
    cannot = hs.row_dead[rows][:, None] | hs.col_dead[cols][None, :] | szr
    lost = err > _LOST
    return {"rows": prow, "src": src, "codes": codes, "scale": scale, "err": err, "miss": v - got,
            "clipped": int((lost & ~cannot).sum()), "dropped": int((lost & cannot & (w != 0)).sum())}
