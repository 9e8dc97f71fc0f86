"""``calibrate``: run the selected stages in dependency order and assemble the result.

Tier 1 (knobs) then tier 2 (tables); see :data:`calib.config.STAGES`. A stage
that raises a calibration error (a fit that did not converge), or whose every
instance failed, *failed outright*: it is recorded with its error, stages that
need it are skipped, and the result's ``failed_stages`` lists it.
"""
import datetime
import logging

from bss2_calib.chipsim import __version__ as package_version
from bss2_calib.chipsim.interface import ObservableChip, missing_members

from .config import STAGE_REQUIRES, Options, Target
from .errors import CalibError, CalibValueError
from .link import RetryPolicy, Retrying
from .problem import KnobResult, Meter
from .result import CalibrationResult
from .schema import KIND, SCHEMA_VERSION
from .session import Session
from .stages import KNOB_STAGES, TABLE_STAGES
from .tables import knob_steps_table, knob_tables

log = logging.getLogger("bss2.calib")

#: ``run(session)`` of every stage (:mod:`calib.stages`), by name
RUNNERS = {s.name: s.load().run for s in KNOB_STAGES + TABLE_STAGES}
#: ``to_frame(session)`` of every table stage that declares tables
FRAMERS = {s.name: s.load().to_frame for s in TABLE_STAGES if s.tables}


def correction_tables(session):
    """The correction tables every table stage frames from the session's typed results.

    Each stage's ``to_frame`` frames its declared tables from what the stages that ran left on the
    session (a table whose inputs are missing is left out).

    Raises
    ------
    RuntimeError
        A stage framed a table it does not declare (a half-registered stage).
    """
    out = {}
    for stage in TABLE_STAGES:
        if not stage.tables:
            continue
        framed = FRAMERS[stage.name](session)
        stray = sorted(set(framed) - set(stage.tables))
        if stray:
            raise RuntimeError(f"stage {stage.name} framed table {stray[0]!r}, which calib.stages does not declare")
        out.update(framed)
    return out


def calibrate(chip, target=None, options=None, *, progress=None, retry=RetryPolicy()):
    """Calibrate ``chip``: tune its knobs, fit its correction tables.

    Uses the chip's observable interface only. The chip is left at the
    calibrated knob codes (its weights hold the last probe pattern).

    Parameters
    ----------
    chip : ObservableChip
        A :class:`chipsim.Chip` or any object with the observable interface
        (:class:`chipsim.interface.ObservableChip`), e.g. a hardware backend.
    target : Target or None, default=None
        None: ``Target()`` (gain 0.002 LSB per unit per send, baseline 120).
    options : Options or None, default=None
        None: ``Options()`` (every stage, model-based search).
    progress : callable or None, default=None
        ``progress(stage, index, n_stages, event)`` with event ``"start"``,
        ``"done"``, ``"failed"`` or ``"skipped"``: called before and after
        every stage (the library itself never prints; the command line turns
        these into a progress bar or lines on stderr).
    retry : RetryPolicy, default=RetryPolicy()
        How transient link failures (:class:`chipsim.errors.TransientLinkError`)
        are retried; the manifest's ``totals.link_retries`` counts the repeats.

    Returns
    -------
    CalibrationResult
        Not yet saved (``path`` is None); see :meth:`CalibrationResult.save`.

    Raises
    ------
    ChipUnreachable
        The link to the chip failed for good (a permanent error, or a transient
        one that outlasted ``retry.attempts``); nothing is returned.
    """
    target = Target() if target is None else target
    options = Options() if options is None else options
    if not isinstance(target, Target):
        raise CalibValueError(f"target must be a calib.Target, got {type(target).__name__}")
    if not isinstance(options, Options):
        raise CalibValueError(f"options must be a calib.Options, got {type(options).__name__}")
    check_chip(chip)
    if progress is not None and not callable(progress):
        raise CalibValueError("progress must be callable or None")
    if not isinstance(retry, RetryPolicy):
        raise CalibValueError(f"retry must be a calib.RetryPolicy, got {type(retry).__name__}")
    chip = Retrying(chip, retry)
    session = Session(chip, target, options)
    total = Meter(chip)
    temperature = float(chip.temperature_c)
    records, failed, skipped = [], [], []
    n = len(options.stages)

    def note(stage, i, event):
        if progress is not None:
            progress(stage, i, n, event)

    for i, stage in enumerate(options.stages):
        missing = [r for r in STAGE_REQUIRES.get(stage, ()) if r in failed or r in skipped]
        if missing:
            skipped.append(stage)
            records.append({"name": stage, "kind": "skipped", "stage": stage,
                            "error": f"skipped: stage {missing[0]} failed"})
            note(stage, i, "skipped")
            continue
        note(stage, i, "start")
        meter = Meter(chip)
        try:
            out = RUNNERS[stage](session)
        except CalibError as err:
            log.error("stage %s failed: %s", stage, err)
            failed.append(stage)
            records.append({"name": stage, "kind": "failed", "stage": stage, "error": str(err), **meter.read()})
            note(stage, i, "failed")
            continue
        items = out if isinstance(out, list) else [out]
        outright = False
        for r in items:
            rec = r.record()
            rec["stage"] = stage
            records.append(rec)
            outright |= rec["n_instances"] > 0 and rec["n_failed"] == rec["n_instances"]
            if isinstance(r, KnobResult):
                session.knob_results.append(r)
            else:
                session.table_steps.append(r)
        if outright:
            failed.append(stage)
            note(stage, i, "failed")
        else:
            note(stage, i, "done")
    tables = knob_tables(chip.knob_values(), session.knob_results)
    tables["knob_steps"] = knob_steps_table(session.knob_results)
    tables.update(correction_tables(session))
    lin = session.linearity
    c = options.conditions
    conditions = {
        "wait_between_events": c.wait_between_events, "num_sends_ref": c.num_sends_ref,
        "num_sends_min": lin.num_sends_min if lin else c.num_sends_ref,
        "num_sends_max": lin.num_sends_max if lin else c.num_sends_ref,
        "send_decay_per_send": lin.kappa if lin else 0.0,
        "temperature_c": temperature, "temperature_tolerance_k": c.temperature_tolerance_k,
    }
    cost = total.read()
    manifest = {
        "schema_version": SCHEMA_VERSION, "kind": KIND, "package_version": package_version,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "chip_id": int(chip.chip_id), "preset": {"name": chip.preset.name, "sha256": chip.preset.sha256},
        "conditions": conditions, "target": target.to_dict(), "options": options.to_dict(),
        "steps": records, "failed_stages": failed, "skipped_stages": skipped,
        "totals": {**cost, "knob_rounds": sum(r.rounds for r in session.knob_results), "link_retries": chip.retries},
        "quality": _quality(session),
    }
    return CalibrationResult(manifest, tables)


def check_chip(chip):
    """Raise :class:`CalibValueError` unless ``chip`` offers the observable interface (:class:`ObservableChip`)."""
    if not isinstance(chip, ObservableChip):
        raise CalibValueError(f"expected a chip with the observable interface (chipsim.interface.ObservableChip), "
                              f"got {type(chip).__name__} (no {missing_members(chip)[0]!r})")


def _quality(session):
    q = {}
    for r in session.knob_results:
        q[f"{r.name}_residual_rms"] = r.record()["residual_rms"]
    for s in session.table_steps:
        for k, v in s.quality.items():
            if isinstance(v, (int, float)) or v is None:
                q[f"{s.name}.{k}"] = v
    return q


__all__ = ["calibrate", "check_chip", "correction_tables", "RUNNERS", "FRAMERS"]
