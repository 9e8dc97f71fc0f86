"""Spill tiles: what a tile's placement could not save, run again as smaller tiles that leave room.

A tile placed on a hemisphere (:func:`infer.routing.place`) may leave, for lack of free
rows and columns, logical rows that miss weight (on dead drivers, and in such a tile on
stuck synapses) and logical columns on dead, noisy or out-of-reach weak neurons. With
``CorrectionOptions.spill`` the engine runs them again as *spill tiles*, placed, routed
and corrected like any tile, and combines the results digitally:

* the lost rows, with what they miss (``Placement.spill_weights``) on the columns where
  they miss it: the spill's output is **added** to the tile's;
* the lost columns, with all of the tile's rows: the tile's own output for them is
  **discarded** and replaced by the spill's.

Only the artifact's fault masks and gains decide (through the placement), never the truth.
"""
import numpy as np

__all__ = ["spill_tiles"]


def spill_tiles(wa, tile, tid, lost_rows, residual, lost_cols, room):
    """The spill tiles of one tile: list of (tile id, rows, columns, weights).

    Parameters
    ----------
    wa : ndarray of int, shape (n_in, n_out)
        The weight matrix the tile is cut from.
    tile : tuple of int
        (row0, row1, col0, col1) of the tile in ``wa``.
    tid : tuple
        Prefix of the spill tiles' ids (it names the tile and the slot it was placed on).
    lost_rows : ndarray of int, shape (k,)
        Logical rows of the tile (0-based within it) that miss weight.
    residual : ndarray of int, shape (k, c)
        What they miss, as weights -63..63 (0 where nothing is missed).
    lost_cols : ndarray of int, shape (m,)
        Logical columns of the tile whose output is discarded.
    room : tuple of (int, int)
        Largest spill tile (rows, columns): one that leaves as many rows and columns free as
        the worst hemisphere has dead drivers and dead, noisy or weak neurons, so that routing
        has room wherever it lands.

    Returns
    -------
    list of (tuple, ndarray, ndarray, ndarray)
        Tile id, rows and columns of ``wa`` (index arrays), and the weights to program
        (len(rows), len(columns)). The tile's rows are cut into n near-equal blocks for the
        lost columns, the residual's columns into n blocks for the lost rows, and block k of
        each share spill tile k (the rest of its weights are 0): a full 128-row column spill
        becomes two halves of 64, each also carrying half of the lost rows' columns. Lost rows
        or columns too many to share tiles are cut apart.
    """
    r0, r1, c0, c1 = tile
    max_r, max_c = room
    rows, cols = np.arange(r0, r1), np.arange(c0, c1)
    lr, lc = rows[lost_rows], cols[lost_cols]
    kk = np.flatnonzero(residual.any(axis=0))  # tile columns where the lost rows miss something
    if lr.size > max_r // 2 or lc.size > max_c // 2:
        return (_blocks((*tid, 0), rows, lc, wa[np.ix_(rows, lc)], room)
                + _blocks((*tid, 1), lr, cols[kk], residual[:, kk], room))
    n = max(-(-rows.size // (max_r - lr.size)) if lc.size else 1, -(-kk.size // (max_c - lc.size)))
    row_blocks = np.array_split(rows, n) if lc.size else [rows[:0]] * n
    out = []
    for k, (rb, kb) in enumerate(zip(row_blocks, np.array_split(kk, n))):
        rs = np.union1d(rb, lr)
        w = np.zeros((rs.size, lc.size + kb.size), dtype=np.int64)
        w[np.isin(rs, rb), :lc.size] = wa[np.ix_(rb, lc)]  # the lost columns: this block of the tile's rows
        w[np.isin(rs, lr), lc.size:] = residual[:, kb]  # the other columns: what the lost rows miss
        out.append(((*tid, k), rs, np.concatenate([lc, cols[kb]]), w))
    return out


def _blocks(tid, rows, cols, w, room):
    """Spill tiles of weights w (rows x cols of wa) in near-equal blocks of at most room."""
    if not rows.size or not cols.size:
        return []
    rb = np.array_split(np.arange(rows.size), -(-rows.size // room[0]))
    cb = np.array_split(np.arange(cols.size), -(-cols.size // room[1]))
    return [((*tid, a, b), rows[i], cols[j], w[np.ix_(i, j)]) for a, i in enumerate(rb) for b, j in enumerate(cb)]
