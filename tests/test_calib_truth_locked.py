"""Calibration uses only the observable interface: proven at run time and by a static check."""
import ast
from pathlib import Path

import numpy as np

from bss2_calib.chipsim import Chip
from bss2_calib import calib

CALIB = Path(calib.__file__).resolve().parent
#: the reports engineer's modules live in calib/ too but are not the calibration
OTHERS = {"characterize", "report"}


def _calibration_sources():
    for p in sorted(CALIB.rglob("*.py")):
        rel = p.relative_to(CALIB)
        if rel.parts[0] in OTHERS:
            continue
        yield p


def test_calibration_runs_on_a_chip_whose_truth_is_locked(calibrated_default):
    twin, res2 = calibrated_default  # chip 0, noise seed 0, with truth access: calibrated once per session
    chip = Chip(twin.chip_id, twin.preset.name, noise_seed=0, truth_access=False)
    res = calib.calibrate(chip)
    assert res.ok
    assert len(res.tables) == 8
    # the same chip with truth access gives the identical calibration (truth access changes nothing)
    for name in res.tables:
        a, b = res.tables[name], res2.tables[name]
        assert a.equals(b), name
    assert np.array_equal(chip.get_knob("v_reset"), twin.get_knob("v_reset"))


def hidden_state_uses(source, filename="<src>"):
    """Lines where ``source`` touches chip.truth, another object's underscore attribute or chipsim internals."""
    tree = ast.parse(source, filename)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "truth":
                bad.append((node.lineno, "truth"))
            elif node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    bad.append((node.lineno, f"private attribute {node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module and _chipsim_internal(node.module):
            bad.append((node.lineno, f"import from {node.module}"))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _chipsim_internal(a.name):
                    bad.append((node.lineno, f"import {a.name}"))
    return bad


INTERNALS = {"truth", "params", "physics", "kernel", "noise"}


def _chipsim_internal(module):
    """True for ``[bss2_calib.]chipsim.<internal>[...]``."""
    parts = module.split(".")
    if parts[0] == "bss2_calib":
        parts = parts[1:]
    return len(parts) > 1 and parts[0] == "chipsim" and parts[1] in INTERNALS


def test_calibration_code_never_touches_hidden_state():
    offenders = []
    for p in _calibration_sources():
        for lineno, what in hidden_state_uses(p.read_text(), str(p)):
            offenders.append(f"{p.relative_to(CALIB)}:{lineno}: {what}")
    assert not offenders, "\n".join(offenders)


def test_the_static_check_can_fail():
    assert hidden_state_uses("x = chip.truth.params()")
    assert hidden_state_uses("x = chip._state().baseline")
    assert hidden_state_uses("from chipsim.truth import Truth")
    assert hidden_state_uses("from bss2_calib.chipsim.truth import Truth")
    assert hidden_state_uses("import bss2_calib.chipsim.kernel")
    assert not hidden_state_uses("x = chip.truthful + self._cache")
    assert not hidden_state_uses('"""chip.truth in a docstring"""')
