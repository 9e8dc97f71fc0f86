"""Measurements of a characterization, through the chip's observable interface only.

Every probe runs both hemispheres in parallel (``chip.run(x, "both")``) and
returns plain arrays; nothing here fits or judges. Global column index
``n = 256 * h + j`` (``chipsim.geometry``).
"""
import numpy as np

ROWS, COLS = 128, 256
ACT_MAX, W_MAX = 31, 63
CHUNK = 8192  # vectors per run call (bounds the memory of one call)


def _run_both(chip, x, num_sends, wait):
    """Run the same (batch, 128) inputs on both hemispheres; float64 (batch, 512)."""
    out = np.empty((len(x), 2 * COLS), dtype=np.float64)
    for start in range(0, len(x), CHUNK):
        xs = x[start:start + CHUNK]
        y = chip.run(np.stack([xs, xs]), "both", num_sends=num_sends, wait_between_events=wait)
        out[start:start + CHUNK, :COLS] = y[0]
        out[start:start + CHUNK, COLS:] = y[1]
    return out


def _set_weights(chip, w_cols):
    """Program every row of each hemisphere with one signed weight per column; w_cols (512,)."""
    w_cols = np.asarray(w_cols, dtype=np.int64)
    for h in (0, 1):
        chip.set_weights(np.broadcast_to(w_cols[h * COLS:(h + 1) * COLS], (ROWS, COLS)), h)


def measure_zero(chip, num_sends, repeats, wait):
    """Zero-input reads: offset and noise of every column.

    Returns
    -------
    mean, std : ndarray of shape (512,)
        Mean result (LSB) and its trial-to-trial std (LSB, ddof=1).
    """
    y = _run_both(chip, np.zeros((repeats, ROWS), dtype=np.int64), num_sends, wait)
    return y.mean(axis=0), y.std(axis=0, ddof=1)


def read_baseline(chip, repeats):
    """Mean raw CADC baseline read of every channel, shape (512,)."""
    return chip.read_baseline(None, n=repeats).astype(np.float64).mean(axis=0)


#: order in which the transfer sweep fills the rows: alternating between the two
#: quadrants of the hemisphere (rows i and 64 + i), so both driver ramps contribute alike
FILL_ORDER = np.stack([np.arange(64), 64 + np.arange(64)], axis=1).ravel()


def fill_order(last=()):
    """:data:`FILL_ORDER` with the rows in ``last`` moved to its end (e.g. rows with a dead driver)."""
    last = np.isin(FILL_ORDER, np.asarray(list(last), dtype=np.int64))
    return np.concatenate([FILL_ORDER[~last], FILL_ORDER[last]])


def fill_activation(total, order=FILL_ORDER):
    """Activations of the 128 rows that sum to ``total`` (0..3968): full rows first.

    Rows in ``order`` (default :data:`FILL_ORDER`) get activation 31 until the
    total is reached; the remainder goes to the next row. So at most one row
    carries a small activation, and the transfer curve shows the column
    (neuron, CADC), not the drivers' low-activation distortion (measured by
    the driver curves).
    """
    full, rem = divmod(int(total), ACT_MAX)
    x = np.zeros(ROWS, dtype=np.int64)
    x[order[:full]] = ACT_MAX
    if rem:
        x[order[full]] = rem
    return x


def measure_rows(chip, repeats, wait):
    """Every row alone at activation 31 through weight 63: mean result over each hemisphere's columns.

    Returns
    -------
    ndarray of shape (2, 128)
        Mean result (LSB, offsets not subtracted) per hemisphere and row.
    """
    _set_weights(chip, np.full(2 * COLS, W_MAX))
    y = _run_both(chip, _one_hot(np.arange(ROWS), [ACT_MAX], [repeats]), 1, wait)
    y = y.reshape(ROWS, repeats, 2 * COLS).mean(axis=1)
    return np.stack([y[:, :COLS].mean(axis=1), y[:, COLS:].mean(axis=1)])


def transfer_levels(n_levels):
    """Total activations of the sweep, 0..128*31, one sign; shape (n_levels + 1,)."""
    return np.unique(np.rint(np.linspace(0, ROWS * ACT_MAX, n_levels + 1)).astype(np.int64))


def measure_transfer(chip, n_levels, repeats, wait, order=FILL_ORDER):
    """Transfer curves of all columns: all weights +63, then all -63, activation swept.

    The rows are filled in ``order`` (see :func:`fill_activation`).

    Returns
    -------
    sum_xw : ndarray of int64, shape (k,)
        Programmed sum(x*w) per send at each level, ascending, negative to positive.
    mean, std : ndarray of shape (k, 512)
        Mean result and its std over ``repeats`` reads (LSB).
    """
    totals = transfer_levels(n_levels)
    x = np.repeat(np.stack([fill_activation(t, order) for t in totals]), repeats, axis=0)
    parts = []
    for sign in (+1, -1):
        _set_weights(chip, np.full(2 * COLS, sign * W_MAX))
        y = _run_both(chip, x, 1, wait).reshape(len(totals), repeats, 2 * COLS)
        s = sign * W_MAX * totals
        if sign < 0:  # level 0 is measured once (with the positive weights)
            y, s = y[1:], s[1:]
        parts.append((s, y.mean(axis=1), y.std(axis=1, ddof=1)))
    s = np.concatenate([p[0] for p in parts])
    order = np.argsort(s, kind="stable")
    mean = np.concatenate([p[1] for p in parts])[order]
    std = np.concatenate([p[2] for p in parts])[order]
    return s[order], mean, std


def _one_hot(rows, activations, repeats):
    """Inputs (len(rows) * sum(repeats), 128): for each row, each activation, its repeats."""
    n_vec = len(rows) * int(np.sum(repeats))
    x = np.zeros((n_vec, ROWS), dtype=np.int64)
    k = 0
    for r in rows:
        for a, rep in zip(activations, repeats):
            x[k:k + rep, r] = a
            k += rep
    return x


def measure_one_hot(chip, w_cols, rows, activations, repeats, num_sends, wait):
    """One-hot driver probes: each visited row alone at each activation; all columns read at once.

    Parameters
    ----------
    w_cols : array-like of int, shape (512,)
        Weight programmed into every row of each column (-63..63).
    rows : ndarray of int
        Rows (drivers of both hemispheres at once) to visit.
    activations, repeats : sequence of int
        Activation codes to send and how often each.

    Returns
    -------
    list of ndarray
        One array per activation, shape (len(rows), 512): mean result over the repeats (LSB).
    """
    _set_weights(chip, w_cols)
    repeats = [int(r) for r in repeats]
    y = _run_both(chip, _one_hot(rows, activations, repeats), num_sends, wait)
    y = y.reshape(len(rows), int(np.sum(repeats)), 2 * COLS)
    out, k = [], 0
    for rep in repeats:
        out.append(y[:, k:k + rep].mean(axis=1))
        k += rep
    return out
