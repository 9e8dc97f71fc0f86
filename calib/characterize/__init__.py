"""Characterization of a chip through its observable interface.

Measures per-column transfer curves (linear range, saturation), trial-to-trial
noise and its dependence on the output level, per-driver activation curves
(all 32 codes), the per-synapse gain map of both hemispheres, and the elements
that do not behave (dead or stuck synapses, dead or noisy neurons, dead
drivers) with the evidence for each. Optionally the chip is characterized
twice: as found, and with a calibration artifact applied.

Examples
--------
>>> from chipsim import Chip
>>> from calib.characterize import characterize, CharacterizeOptions
>>> res = characterize(Chip(0, noise_seed=1), CharacterizeOptions(rows=(0, 64)))
>>> sorted(res.tables)[:3]
['column_summary', 'column_transfer', 'driver_activation']
>>> res.manifest["kind"]
'bss2-calib/characterization'
"""
import datetime as _dt
import time

from .core import characterize_state
from .options import CharacterizeOptions
from .result import KIND, SCHEMA_VERSION, Characterization, quality
from .tables import TABLES, build_tables

__all__ = ["characterize", "CharacterizeOptions", "Characterization", "KIND", "SCHEMA_VERSION", "TABLES",
           "quality"]


def _package_version():
    from bss2_calib.chipsim import __version__

    return __version__


def _conditions_from(artifact):
    """wait_between_events and the num_sends range an artifact is valid for."""
    cond = (artifact.manifest or {}).get("conditions", {}) if artifact is not None else {}
    return cond


def _correction_from(artifact):
    """The artifact's correction model (:class:`calib.model.CorrectionModel`), or None without tables."""
    if artifact is None or "neuron_correction" not in artifact.tables:
        return None
    from ..model import CorrectionModel

    return CorrectionModel.from_artifact(artifact)


def _artifact_ref(artifact, path):
    m = artifact.manifest or {}
    return {"path": None if path is None else str(path), "kind": m.get("kind"), "chip_id": m.get("chip_id"),
            "created_utc": m.get("created_utc"), "schema_version": m.get("schema_version"),
            "preset": m.get("preset"), "conditions": m.get("conditions")}


def characterize(chip, options=None, *, artifact=None, artifact_path=None, progress=None):
    """Characterize a chip, optionally before and after applying a calibration.

    Uses only the chip's observable interface (knobs, weights, runs, raw
    baseline reads, clock); the chip's truth is never touched.

    Parameters
    ----------
    chip : chipsim.Chip
        The chip, configured as found. Its weights are overwritten by the
        probes; its knobs are left as found, or with ``artifact`` applied.
    options : CharacterizeOptions or None, default=None
        How to measure; None uses the defaults.
    artifact : calibration result or None, default=None
        A loaded calibration artifact (``calib.load(path)``) with
        ``apply_to(chip)``, ``manifest`` and ``tables``. It is applied before
        the "calibrated" pass (which refuses a chip or conditions the artifact
        was not made for); its ``wait_between_events`` and ``num_sends`` range
        bound the probes.
    artifact_path : path-like or None, default=None
        Where ``artifact`` was loaded from (recorded in the manifest).
    progress : callable(str) or None, default=None
        Called with a short message before every measurement step.

    Returns
    -------
    Characterization
        ``tables`` (dict of DataFrames, see :mod:`calib.characterize.tables`)
        and ``manifest`` (dict). Save it with :meth:`Characterization.save`.
    """
    opts = options if options is not None else CharacterizeOptions()
    if not isinstance(opts, CharacterizeOptions):
        raise TypeError(f"options must be CharacterizeOptions, got {type(opts).__name__}")
    t0 = time.perf_counter()
    hw0 = chip.hw_time_s
    cond = _conditions_from(artifact)
    wait = int(cond.get("wait_between_events", opts.wait_between_events))
    n_min = int(cond.get("num_sends_min", 1))
    n_max = int(min(opts.max_num_sends, cond.get("num_sends_max", opts.max_num_sends)))
    if artifact is not None and callable(getattr(artifact, "check", None)):
        artifact.check(chip)  # refuse a foreign chip before spending any measurement
    passes = []
    states = []
    if artifact is None or opts.measure_uncalibrated:
        r = characterize_state(chip, opts, wait=wait, n_min=n_min, n_max=n_max, state="uncalibrated",
                               progress=progress)
        passes.append(r)
        states.append({"name": "uncalibrated", "artifact": None, "num_sends_probe": r["num_sends"],
                       "transfer_rows_last": r["transfer_rows_last"]})
    if artifact is not None:
        if progress is not None:
            progress("applying the calibration artifact")
        artifact.apply_to(chip)
        r = characterize_state(chip, opts, wait=wait, n_min=n_min, n_max=n_max, state="calibrated",
                               progress=progress, correction=_correction_from(artifact))
        passes.append(r)
        states.append({"name": "calibrated", "artifact": _artifact_ref(artifact, artifact_path),
                       "num_sends_probe": r["num_sends"], "transfer_rows_last": r["transfer_rows_last"]})
    tables = build_tables(passes)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "package_version": _package_version(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "chip_id": int(chip.chip_id),
        "preset": {"name": chip.preset.name, "sha256": chip.preset.sha256},
        "conditions": {"wait_between_events": wait, "num_sends_transfer": 1,
                       "num_sends_probe": {s["name"]: s["num_sends_probe"] for s in states},
                       "temperature_c": float(chip.temperature_c),
                       "target_gain_lsb_per_unit": float(
                           ((artifact.manifest or {}).get("target") or {}).get("gain_lsb_per_unit", 0.002))
                       if artifact is not None else 0.002},
        "options": opts.to_dict(),
        "states": states,
        "steps": [s for p in passes for s in p["steps"]],
        "hw_time_s": chip.hw_time_s - hw0,
        "wall_time_s": time.perf_counter() - t0,
    }
    manifest["quality"] = quality(tables)
    return Characterization(tables=tables, manifest=manifest)
