"""One row per chip: what the store holds about the fleet, as a pandas table and a Parquet file.

The fleet's own files live in ``<store>/_fleet/`` (a leading underscore, so
Parquet dataset readers that scan the store skip it): ``summary.parquet``
(written by :func:`write_summary`) and ``verify.parquet`` (the last
:func:`calib.fleet.verify`, one row per chip).
"""
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ArtifactError

FLEET_DIR = "_fleet"
SUMMARY_FILE = "summary.parquet"
VERIFY_FILE = "verify.parquet"
#: quality figure reported as the chip's residual: rms deviation of held-out probes from the fitted model
RESIDUAL = "neuron_fit.heldout_residual_rms_lsb"
#: fixed columns of the summary, in order (per-step spreads follow as ``<step>.spread_before/after``)
COLUMNS = ("chip", "preset", "artifact", "created_utc", "ok", "failed_stages", "failed_instances", "dead_neurons",
           "noisy_neurons", "weak_neurons", "dead_drivers", "stuck_synapses", "residual_rms_lsb", "link_retries",
           "wall_time_s", "hw_time_s", "verify", "verify_reason", "gain_deviation_rms", "offset_deviation_rms_lsb")


def _store(store):
    from ..store import ArtifactStore

    return store if isinstance(store, ArtifactStore) else ArtifactStore(store)


def _count(tables, name, columns):
    if name not in tables:
        return np.nan
    df = tables[name]
    if name == "driver_transfer":  # the dead flag is repeated on the driver's 32 rows
        df = df.groupby(level="driver").first()
    return int(sum(int(df[c].sum()) for c in columns if c in df.columns))


def chip_row(result):
    """The summary row (dict) of one loaded calibration."""
    m, t = result.manifest, result.tables
    totals = m.get("totals", {})
    row = {
        "chip": int(m["chip_id"]), "preset": m["preset"]["name"], "artifact": result.path.name if result.path else "",
        "created_utc": m.get("created_utc"), "ok": not m.get("failed_stages"),
        "failed_stages": ",".join(m.get("failed_stages", [])),
        "failed_instances": int(sum(s.get("n_failed", 0) for s in m.get("steps", []))),
        "dead_neurons": _count(t, "neuron_correction", ["dead"]),
        "noisy_neurons": _count(t, "neuron_correction", ["noisy"]),
        "weak_neurons": _count(t, "neuron_correction", ["weak"]),
        "dead_drivers": _count(t, "driver_transfer", ["dead"]),
        "stuck_synapses": _count(t, "synapse_gain", ["stuck_zero_exc", "stuck_max_exc", "stuck_zero_inh",
                                                     "stuck_max_inh"]),
        "residual_rms_lsb": m.get("quality", {}).get(RESIDUAL),
        "link_retries": int(totals.get("link_retries", 0)),
        "wall_time_s": totals.get("wall_time_s"), "hw_time_s": totals.get("hw_time_s"),
    }
    for s in m.get("steps", []):
        if s.get("kind") == "knob" or "spread_after" in s:
            row[f"{s['name']}.spread_before"] = s.get("spread_before")
            row[f"{s['name']}.spread_after"] = s.get("spread_after")
    return row


def summary(store, chips=None):
    """One row per chip with a latest artifact (see :data:`COLUMNS`), sorted by chip.

    A chip whose latest artifact cannot be loaded gets a row with ``ok`` False
    and the error in ``failed_stages``. The verify columns come from the
    store's last fleet verification of that very artifact (``"-"`` if none).

    Returns
    -------
    pandas.DataFrame
    """
    from ..result import load

    store = _store(store)
    rows = []
    for c in (store.chips() if chips is None else chips):
        try:
            path = store.latest(c)
            if path is None:
                continue
            rows.append(chip_row(load(path)))
        except ArtifactError as err:
            rows.append({"chip": c, "ok": False, "failed_stages": f"unreadable: {err}"})
    df = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = pd.Series(dtype=object if col in ("preset", "artifact", "created_utc") else float)
    ver = read_verify(store)
    df["verify"], df["verify_reason"] = "-", ""
    df["gain_deviation_rms"] = df["offset_deviation_rms_lsb"] = np.nan
    if ver is not None and len(df):
        v = ver.set_index("chip")
        for i, r in df.iterrows():
            if r["chip"] in v.index and v.at[r["chip"], "artifact"] == r["artifact"]:
                vr = v.loc[r["chip"]]
                df.at[i, "verify"] = vr["status"]
                df.at[i, "verify_reason"] = vr["reason"]
                df.at[i, "gain_deviation_rms"] = vr["gain_deviation_rms"]
                df.at[i, "offset_deviation_rms_lsb"] = vr["offset_deviation_rms_lsb"]
    rest = sorted(c for c in df.columns if c not in COLUMNS)
    df = df[list(COLUMNS) + rest]
    return df.sort_values("chip", kind="stable").reset_index(drop=True)


def _write_parquet(df, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    return path


def write_summary(store, df, path=None):
    """Write the summary table as Parquet (default ``<store>/_fleet/summary.parquet``); returns the path."""
    store = _store(store)
    return _write_parquet(df, path or store.root / FLEET_DIR / SUMMARY_FILE)


def verify_state(outcome):
    """``(state, detail)`` of one chip's verification outcome.

    state is ``valid``, ``stale``, ``recalibrated`` (was stale, a new artifact
    is stored), ``recalibration-failed`` (was stale, the new calibration has a
    failed stage) or ``error`` (the task failed; detail is the reason).
    """
    r = outcome.record or {}
    if outcome.status == "failed":
        return "error", outcome.reason
    if r.get("recalibrated"):
        return ("recalibrated" if r.get("recalibrated_ok") else "recalibration-failed"), r.get("reason", "")
    return ("valid" if r.get("valid") else "stale"), r.get("reason", "")


def write_verify(store, outcomes):
    """Record a fleet verification (list of ChipOutcome) in ``<store>/_fleet/verify.parquet``.

    Chips not in ``outcomes`` keep their previous row.
    """
    store = _store(store)
    rows = []
    for o in outcomes:
        r = o.record or {}
        status, reason = verify_state(o)
        rows.append({"chip": o.chip_id, "artifact": Path(r.get("recalibrated") or r.get("artifact") or "").name,
                     "status": status, "reason": reason,
                     "gain_deviation_rms": r.get("gain_deviation_rms", np.nan),
                     "offset_deviation_rms_lsb": r.get("offset_deviation_rms_lsb", np.nan)})
    new = pd.DataFrame(rows, columns=["chip", "artifact", "status", "reason", "gain_deviation_rms",
                                      "offset_deviation_rms_lsb"])
    old = read_verify(store)
    if old is not None:
        new = pd.concat([old[~old["chip"].isin(new["chip"])], new], ignore_index=True)
    new = new.astype({"chip": "int64", "gain_deviation_rms": "float64", "offset_deviation_rms_lsb": "float64"})
    return _write_parquet(new.sort_values("chip").reset_index(drop=True), store.root / FLEET_DIR / VERIFY_FILE)


def read_verify(store):
    """The last fleet verification (DataFrame, one row per chip) or None."""
    p = _store(store).root / FLEET_DIR / VERIFY_FILE
    return pd.read_parquet(p) if p.is_file() else None
