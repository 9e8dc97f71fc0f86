"""Calibration, characterization, reports and inference use only the chip's observable interface.

Proven at run time (a chip whose truth accessors raise and from whose id and preset no second chip can
be built) and by a static check of every package but ``chipsim``.
"""
import ast
from pathlib import Path

import numpy as np
import pytest

from bss2_calib import calib, cli, infer
from bss2_calib.chipsim import Chip

#: every package but chipsim: calibration (characterization, reports and plots included), inference, CLI
PACKAGES = {p.__name__.rsplit(".", 1)[-1]: Path(p.__file__).resolve().parent for p in (calib, infer, cli)}


def _sources():
    for name, root in PACKAGES.items():
        for p in sorted(root.rglob("*.py")):
            yield name, root, p


class SecondChip(AssertionError):
    """Raised when code under test builds a chip's parameters again (a twin with readable truth)."""


def test_calibrate_characterize_report_infer_on_a_locked_chip(tmp_path, monkeypatch, calibrated_default):
    """The whole user path runs on one chip whose truth raises and which cannot be rebuilt from its id and preset.

    The calibration equals that of the same chip with truth access (the session's shared one): locking
    the truth changes nothing.
    """
    import bss2_calib.chipsim.chip as chip_module
    import bss2_calib.chipsim.params as params_module
    from bss2_calib.calib.characterize import CharacterizeOptions, characterize
    from bss2_calib.calib.report import write_report

    twin, twin_res = calibrated_default  # chip 0, noise seed 0, truth readable; calibrated once per session
    chip = Chip(twin.chip_id, twin.preset.name, noise_seed=0, truth_access=False)

    def refuse(*args, **kwargs):
        raise SecondChip("parameters of a chip were drawn again: something rebuilt a chip from its id and preset")

    for mod, name in ((chip_module, "draw_params"), (chip_module, "stream_rng"), (params_module, "draw_params"),
                      (params_module, "stream_rng")):
        monkeypatch.setattr(mod, name, refuse)
    with pytest.raises(SecondChip):
        Chip(twin.chip_id, "default")  # the lock holds
    with pytest.raises(Exception, match="truth"):
        chip.truth.faults()
    res = calib.calibrate(chip)
    assert res.ok and len(res.tables) == 8
    for name in res.tables:
        assert res.tables[name].equals(twin_res.tables[name]), name
    assert np.array_equal(chip.get_knob("v_reset"), twin.get_knob("v_reset"))
    art = res.save(tmp_path / "artifact")
    quick = CharacterizeOptions(rows=(0, 64), transfer_levels=16, transfer_repeats=4, zero_repeats=32,
                                map_repeats=4, stuck_repeats=4, measure_uncalibrated=False)
    char = characterize(chip, quick, artifact=art, artifact_path=art.path)
    assert char.save(tmp_path / "characterization").is_dir()
    assert write_report([art.path], tmp_path / "report", formats=("html",)).html.is_file()
    assert calib.verify(art, chip).valid
    engine = infer.Engine(chip, art, num_sends=2)
    rng = np.random.default_rng(0)
    x, w = rng.integers(0, 32, (16, 300)), rng.integers(-20, 21, (300, 40))
    y = engine.matmul(x, w)
    assert y.shape == (16, 40) and np.all(np.isfinite(y))
    assert engine.measure(n_vectors=32, repeats=2).gain == pytest.approx(0.002, rel=0.03)


def hidden_state_uses(source, filename="<src>"):
    """Lines where ``source`` touches chip.truth, another object's underscore attribute or chipsim internals."""
    tree = ast.parse(source, filename)
    own = _own_package_names(tree)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "truth":
                bad.append((node.lineno, "truth"))
            elif node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if not ((isinstance(owner, ast.Name) and owner.id in {"self", "cls"} | own)
                        or (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)
                            and owner.func.id == "super")):
                    bad.append((node.lineno, f"private attribute {node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module and _chipsim_internal(node.module):
            bad.append((node.lineno, f"import from {node.module}"))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _chipsim_internal(a.name):
                    bad.append((node.lineno, f"import {a.name}"))
    return bad


def _own_package_names(tree):
    """Names bound by imports from the project itself, chipsim excepted (their private helpers are the package's own)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod.split(".")[0] == "bss2_calib":
                mod = mod.partition(".")[2]
            elif node.level == 0:
                continue
            if mod.split(".")[0] != "chipsim":
                names.update(a.asname or a.name for a in node.names)
    return names


INTERNALS = {"truth", "params", "physics", "kernel", "noise"}


def _chipsim_internal(module):
    """True for ``[bss2_calib.]chipsim.<internal>[...]``."""
    parts = module.split(".")
    if parts[0] == "bss2_calib":
        parts = parts[1:]
    return len(parts) > 1 and parts[0] == "chipsim" and parts[1] in INTERNALS


def test_no_package_but_chipsim_touches_hidden_state():
    offenders, scanned = [], set()
    for name, root, p in _sources():
        scanned.add((name, p.relative_to(root).parts[0]))
        for lineno, what in hidden_state_uses(p.read_text(), str(p)):
            offenders.append(f"{name}/{p.relative_to(root)}:{lineno}: {what}")
    assert not offenders, "\n".join(offenders)
    # the scan reaches the modules that once were skipped
    assert {("calib", "characterize"), ("infer", "engine.py"), ("infer", "routing.py"), ("cli", "main.py")} <= scanned
    assert any(n == "calib" and part.startswith("report") for n, part in scanned)


def test_the_static_check_can_fail():
    assert hidden_state_uses("x = chip.truth.params()")
    assert hidden_state_uses("x = chip._state().baseline")
    assert hidden_state_uses("from chipsim.truth import Truth")
    assert hidden_state_uses("from bss2_calib.chipsim.truth import Truth")
    assert hidden_state_uses("import bss2_calib.chipsim.kernel")
    assert hidden_state_uses("from bss2_calib.chipsim import Chip\nChip._cache")
    assert hidden_state_uses("from ..chipsim import chip\nchip._state()")
    assert not hidden_state_uses("x = chip.truthful + self._cache + super()._derive()")
    assert not hidden_state_uses("from . import functional as F\nF._pair(3)")
    assert not hidden_state_uses('"""chip.truth in a docstring"""')
