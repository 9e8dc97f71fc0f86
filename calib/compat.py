"""Is a calibration artifact valid for this chip and these run conditions? The one compatibility check.

:meth:`CalibrationResult.check <calib.result.CalibrationResult.check>`,
:meth:`CorrectionModel.check <calib.model.CorrectionModel.check>` and the
inference engine all call :func:`mismatches`; every refusal is a
:class:`~calib.errors.IncompatibleArtifact` whose ``field`` names what differs.
"""
import math

import numpy as np

from .errors import CalibValueError, IncompatibleArtifact

__all__ = ["check", "mismatches"]


def _int_or_none(name, v):
    if v is not None and (isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))):
        raise CalibValueError(f"{name} must be an integer, got {v!r}")


def mismatches(chip_id, preset, conditions, chip=None, *, num_sends=None, wait_between_events=None,
               temperature_c=None):
    """Fields in which a chip and run conditions differ from what an artifact was made for.

    Parameters
    ----------
    chip_id : int or None
        The artifact's chip id (None: not checked).
    preset : dict
        The artifact's ``{"name": ..., "sha256": ...}`` (a missing hash is not checked).
    conditions : mapping
        The artifact's conditions; missing keys are not checked.
    chip : chipsim.Chip or None, default=None
        Checked for chip id, preset hash and (unless ``temperature_c`` is given) temperature.
    num_sends : int or None, default=None
        Must lie in ``num_sends_min..num_sends_max``.
    wait_between_events : int or None, default=None
        Must equal the artifact's spacing.
    temperature_c : float or None, default=None
        Overrides the chip's temperature sensor.

    Returns
    -------
    list of (str, str)
        ``(field, one-line explanation)``, in the order chip id, preset, temperature,
        num_sends, wait_between_events; empty when everything matches.

    Raises
    ------
    CalibValueError
        For arguments of the wrong type.
    """
    _int_or_none("num_sends", num_sends)
    _int_or_none("wait_between_events", wait_between_events)
    if temperature_c is not None and (isinstance(temperature_c, bool)
                                      or not isinstance(temperature_c, (int, float, np.number))):
        raise CalibValueError(f"temperature_c must be a number, got {temperature_c!r}")
    preset, c = dict(preset or {}), dict(conditions or {})
    out = []
    if chip is not None:
        for a in ("chip_id", "preset", "temperature_c", "set_knobs"):
            if not hasattr(chip, a):
                raise CalibValueError(f"expected a chip, got {type(chip).__name__}")
        if chip_id is not None and int(chip_id) != chip.chip_id:
            out.append(("chip_id", f"artifact was made for chip {chip_id}, not chip {chip.chip_id} "
                                   f"(chip_id differs)"))
        sha = preset.get("sha256")
        if sha is not None and sha != chip.preset.sha256:
            out.append(("preset.sha256", f"artifact was made for preset {preset.get('name')!r} ({sha[:12]}), "
                                         f"chip {chip.chip_id} runs {chip.preset.name!r} "
                                         f"({chip.preset.sha256[:12]}) (preset.sha256 differs)"))
        if temperature_c is None:
            temperature_c = chip.temperature_c
    t0, tol = c.get("temperature_c"), c.get("temperature_tolerance_k")
    if temperature_c is not None and t0 is not None and tol is not None:
        t = float(temperature_c)
        if not math.isfinite(t) or abs(t - t0) > tol:
            out.append(("conditions.temperature_c", f"temperature {t:.1f} C is outside the artifact's {t0:.1f} "
                                                    f"+- {tol:g} C (conditions.temperature_c differs)"))
    if num_sends is not None:
        lo, hi = c.get("num_sends_min"), c.get("num_sends_max")
        if (lo is not None and num_sends < lo) or (hi is not None and num_sends > hi):
            out.append(("conditions.num_sends", f"num_sends {num_sends} is outside the verified range {lo}..{hi} "
                                                f"(conditions.num_sends differs)"))
    wait = c.get("wait_between_events")
    if wait_between_events is not None and wait is not None and int(wait) != wait_between_events:
        out.append(("conditions.wait_between_events",
                    f"wait_between_events {wait_between_events} differs from the artifact's {wait} "
                    f"(conditions.wait_between_events differs)"))
    return out


def check(chip_id, preset, conditions, chip=None, **run):
    """Raise :class:`~calib.errors.IncompatibleArtifact` for the first of :func:`mismatches`, if any."""
    found = mismatches(chip_id, preset, conditions, chip, **run)
    if found:
        field, why = found[0]
        raise IncompatibleArtifact(why, field)
