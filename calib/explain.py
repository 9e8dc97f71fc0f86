"""One line per stage that explains the instances a calibration could not bring to target.

A healthy chip always leaves a few instances behind: a driver whose trim code
runs out of range, a neuron too weak to reach the common gain, a stuck
synapse. :func:`failure_notes` turns the step records of a manifest into one
line per stage with failures: what failed, whether that is within
:data:`TOLERATED_FRACTION`, what happens to those instances (the correction
table that fits them anyway, or the fault flag that makes the engine route
around them) and where to look. The per-instance indices are in the step
records (``failed``, ``range_limited``) and in the tables named.

Examples
--------
>>> steps = [{"name": "hagen_dac_offset", "stage": "drivers", "kind": "knob", "knob": "hagen_dac_offset",
...           "n_instances": 256, "n_failed": 2, "failed": [118, 248], "range_limited": [118, 248]},
...          {"name": "transfer", "stage": "transfer", "kind": "table", "instance": "driver",
...           "n_instances": 256, "n_failed": 0, "failed": []}]
>>> print(failure_notes({"steps": steps})[0])  # doctest: +ELLIPSIS
drivers: 2 of 256 drivers missed the hagen_dac_offset target (2 at the knob's range limit) - within tolerance \
(<= 5 %): the transfer table (driver_transfer) fits 2 of these 2. Detail: -v, table knob_steps
"""
from bss2_calib.chipsim import KNOBS

#: share of a step's instances that may fail on a healthy chip (the default and ideal presets stay below 1 %);
#: more points at a damaged chip or wrong conditions rather than at the calibration
TOLERATED_FRACTION = 0.05

#: knob stage -> the table stage whose per-instance fit absorbs what the knob left
CORRECTED_BY = {"cadc": "offsets", "reset": "offsets", "leak": "neuron_fit", "drivers": "transfer",
                "synapse_bias": "neuron_fit", "synin": "neuron_fit"}

#: table stage -> (table holding its success flags, what a failed instance is)
TABLE_OF = {"offsets": ("neuron_correction", "noisy neurons"),
            "neuron_fit": ("neuron_correction", "dead, noisy or weak neurons, or fits that did not converge"),
            "synapses": ("synapse_gain", "stuck synapses and synapses of dead drivers or neurons"),
            "transfer": ("driver_transfer", "dead drivers"),
            "weights": ("weight_transfer", "weight magnitudes without a monotone fit"),
            "linearity": (None, "num_sends points off the linear model")}

_PLURAL = {"neuron": "neurons", "driver": "drivers", "quadrant": "quadrants"}


def failure_notes(manifest):
    """One line per stage with failed instances (list of str, empty when nothing failed).

    Parameters
    ----------
    manifest : dict
        A calibration manifest (``CalibrationResult.manifest``); only its
        ``steps`` records are read.

    Returns
    -------
    list of str
        In stage order. Stages that failed outright or were skipped are not
        explained here (the run's summary names them and their error).
    """
    steps = [s for s in manifest.get("steps", []) if s.get("kind") in ("knob", "table")]
    failed_in = {s.get("stage", s["name"]): set(s.get("failed", [])) for s in steps if s.get("kind") == "table"}
    by_stage = {}
    for s in steps:
        if s.get("n_failed"):
            by_stage.setdefault(s.get("stage", s["name"]), []).append(s)
    return [_note(stage, group, failed_in) for stage, group in by_stage.items()]


def _note(stage, group, failed_in):
    what, fractions = [], []
    for s in group:
        n, total = s["n_failed"], s["n_instances"]
        fractions.append(n / total if total else 1.0)
        if s["kind"] == "knob":
            limited = len(s.get("range_limited") or [])
            what.append(f"{n} of {total} {_kind(s)}s missed the {s['name']} target"
                        + (f" ({limited} at the knob's range limit)" if limited else ""))
        else:
            what.append(f"{n} of {total} {_kind(s)}s flagged")
    tol = f"{100 * TOLERATED_FRACTION:g} %"
    verdict = (f"within tolerance (<= {tol})" if max(fractions) <= TOLERATED_FRACTION
               else f"ABOVE the {tol} a healthy chip leaves, check the chip (bss2-calib characterize)")
    if group[0]["kind"] == "knob":
        consequence, where = _knob_consequence(stage, group, failed_in), "knob_steps"
    else:
        table, meaning = TABLE_OF.get(stage, (None, "failed fits"))
        where = table or "manifest steps"
        consequence = f"{meaning}, " + (f"success=False in {table}, " if table else "") + \
            "the engine routes around them"
    return f"{stage}: {', '.join(what)} - {verdict}: {consequence}. Detail: -v, table {where}"


def _kind(step):
    """What one instance of a step is: neuron, driver, quadrant, synapse, ..."""
    if step["kind"] == "knob":
        return KNOBS[step["knob"]].granularity if step.get("knob") in KNOBS else "instance"
    return step.get("instance", "instance").split(",")[0].split(" ")[0]


def _knob_consequence(stage, group, failed_in):
    fixer = CORRECTED_BY.get(stage)
    if fixer is None or fixer not in failed_in:
        return "no later table corrects them in this run"
    table = TABLE_OF[fixer][0]
    missed = set().union(*(s["failed"] for s in group if _kind(s) in ("neuron", "driver")))
    if not missed:  # quadrant knobs: the table fits every neuron or driver of the quadrant
        return f"the {fixer} table ({table}) corrects the residual per element"
    flagged = len(missed & failed_in[fixer])
    return f"the {fixer} table ({table}) fits {len(missed) - flagged} of these {len(missed)}" + \
        (f", {flagged} are faults it flags" if flagged else "")


__all__ = ["failure_notes", "TOLERATED_FRACTION", "CORRECTED_BY"]
