"""Module dependencies flow one way: the artifact reader knows every kind without the characterization code, and
plot code (matplotlib) is imported only when a report is drawn."""
import ast
import subprocess
import sys
from pathlib import Path

from bss2_calib.calib import artifact, schema


def _loaded_after(code):
    """Names of the bss2_calib and matplotlib modules loaded by ``code`` in a fresh interpreter."""
    probe = (f"import sys\n{code}\n"
             "print('\\n'.join(m for m in sys.modules if m.startswith(('bss2_calib', 'matplotlib'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _imported_modules(module):
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_the_artifact_module_knows_every_kind_without_importing_the_characterization():
    for module in (artifact, schema):
        assert not [m for m in _imported_modules(module) if "characterize" in m], module.__name__
    loaded = _loaded_after("from bss2_calib.calib import artifact\n"
                           "assert artifact.artifact_schema('bss2-calib/characterization').what == "
                           "'a characterization'")
    assert not [m for m in loaded if m.startswith("bss2_calib.calib.characterize")]


def test_importing_calib_and_the_report_package_does_not_import_matplotlib():
    loaded = _loaded_after("import bss2_calib.calib, bss2_calib.calib.report, bss2_calib.calib.characterize, "
                           "bss2_calib.cli.cmd_report, bss2_calib.cli.cmd_characterize")
    assert "bss2_calib.calib.report" in loaded
    plot_modules = ("bss2_calib.calib.report.plots", "bss2_calib.calib.report.chip_plots")
    assert not [m for m in loaded if m.startswith("matplotlib") or m in plot_modules]
