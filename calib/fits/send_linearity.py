"""Send linearity: how the gain per send depends on num_sends (leak off).

With the leak off the membrane is an almost pure integrator: the gain per send
falls slowly with num_sends (``g(n) ~ g(1) (1 - kappa (n - 1))``). A chain of
patterns measures ``g(2n) / g(n)`` for n = 1, 2, 4, ... with amplitudes of about
30 and 60 LSB, so every link stays in the linear range. The stage records the
global ``kappa`` (the per-send decay) and the verified num_sends range: where
the gain per send stays within ``send_linearity_tolerance`` of its value at
``num_sends_ref``.
"""
from dataclasses import dataclass

import numpy as np

from bss2_calib.chipsim import COLS, ROWS

from ..problem import Meter, TableStep
from ..probes import flat

AMPLITUDE_LSB = 30.0  #: nominal amplitude of each link's lower point


def chain(num_sends_max):
    """num_sends values probed: 1, 2, 4, ... up to num_sends_max (the last link ends there)."""
    ns = [1]
    while ns[-1] * 2 <= num_sends_max:
        ns.append(ns[-1] * 2)
    return ns


def pattern(n, gain):
    """Rows and weight whose nominal amplitude at n sends is AMPLITUDE_LSB."""
    units = AMPLITUDE_LSB / (gain * n * 31)  # rows x weight
    k = int(np.clip(2 ** np.floor(np.log2(max(units / 30.0, 1.0))), 1, ROWS))
    w = int(np.clip(round(units / k), 1, 63))
    return np.arange(0, ROWS, ROWS // k)[:k], w


@dataclass(frozen=True, eq=False)
class SendLinearity:
    """Per-send gain decay ``kappa`` and the verified num_sends range (ints)."""

    kappa: float
    num_sends_min: int
    num_sends_max: int


def run(session):
    meter = Meter(session.chip)
    o = session.options.conditions
    gain = session.target.gain_lsb_per_unit
    off = session.offsets
    alive = ~off.noisy
    repeats = 64
    ns = chain(o.num_sends_max)
    links = []
    for n in ns[:-1]:
        rows, w = pattern(n, gain)
        weights = np.zeros((2, ROWS, COLS), dtype=np.int64)
        weights[:, rows] = w
        session.prober.set_weights(weights)
        x = np.zeros((2, ROWS), dtype=np.int64)
        x[0, rows] = 31
        per_send = []
        for m in (n, 2 * n):
            mean, _ = session.prober.mean_response(x, repeats, m)
            per_send.append(flat(mean[:, 0] - mean[:, 1]) / m)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = per_send[1] / per_send[0]
        ok = alive & np.isfinite(rho) & (per_send[0] * n > 0.3 * AMPLITUDE_LSB) & (per_send[1] * 2 * n < 90)
        links.append((n, float(np.median(rho[ok])) if ok.any() else np.nan, int(ok.sum())))
    # relative gain per send G(n), G(1) = 1, along the chain
    g = [1.0]
    for _, rho, _ in links:
        g.append(g[-1] * rho)
    g = np.array(g)
    n_arr = np.array(ns, dtype=np.float64)
    fin = np.isfinite(g)
    kappa = float(-np.polyfit(n_arr[fin] - 1, g[fin], 1)[0] / np.polyfit(n_arr[fin] - 1, g[fin], 1)[1]) \
        if fin.sum() >= 2 else 0.0
    g_ref = 1 - kappa * (o.num_sends_ref - 1)
    dev = np.abs((1 - kappa * (n_arr - 1)) / g_ref - 1)
    meas_dev = np.abs(g / np.interp(o.num_sends_ref, n_arr[fin], g[fin]) - 1)
    ok_n = (dev <= o.send_linearity_tolerance) & (meas_dev <= o.send_linearity_tolerance + 0.002)
    # the verified range: contiguous around num_sends_ref, bounded by the model's tolerance crossing
    lo_n, hi_n = 1, int(ns[-1])
    if kappa > 0:
        hi_n = min(hi_n, int(np.floor(o.num_sends_ref + o.send_linearity_tolerance * g_ref / kappa)))
        lo_n = max(1, int(np.ceil(o.num_sends_ref - o.send_linearity_tolerance * g_ref / kappa)))
    bad = [int(n) for n, good in zip(ns, ok_n) if not good and lo_n <= n <= hi_n]
    if bad:  # a measured point inside the model's range disagrees: shrink the range below it
        hi_n = max(min(bad) - 1, o.num_sends_ref)
    hi_n = max(hi_n, o.num_sends_ref)
    lo_n = min(lo_n, o.num_sends_ref)
    session.linearity = SendLinearity(kappa=kappa, num_sends_min=lo_n, num_sends_max=hi_n)
    quality = {"send_decay_per_send": kappa, "num_sends_min": lo_n, "num_sends_max": hi_n,
               "gain_per_send_relative": {str(int(n)): float(v) for n, v in zip(ns, g)},
               "columns_used": [c for _, _, c in links]}
    return TableStep(
        name="linearity", algorithm="chained num_sends ratios, linear decay fit", quantity="gain per send",
        unit="relative", n_instances=len(ns), failed=[i for i, v in enumerate(g) if not np.isfinite(v)],
        instance="num_sends point", spread_before=float(np.nanmax(meas_dev)),
        spread_after=float(np.nanmax(np.abs(g - (1 - kappa * (n_arr - 1))))), cost=meter.read(), quality=quality)
