"""bss2_calib: calibration and characterization for analog in-memory computing (BrainScaleS-2 VMM mode).

The subpackages live in the repository's top-level folders and are mapped
into this namespace by ``setup.cfg`` (``package_dir``)::

    from bss2_calib import calib, chipsim, infer

- :mod:`bss2_calib.chipsim`: the simulated chip (observable and truth interfaces);
- :mod:`bss2_calib.calib`: calibration, artifacts, characterization and reports;
- :mod:`bss2_calib.infer`: the inference engine, layers and applications;
- :mod:`bss2_calib.cli`: the ``bss2-calib`` command;
- :mod:`bss2_calib.data`: package data (chip presets, shipped models).

Subpackages are imported on first use, so ``import bss2_calib`` stays cheap.
"""
import importlib

from ._version import __version__

__all__ = ["__version__", "calib", "chipsim", "infer", "cli"]


def __getattr__(name):
    if name in ("calib", "chipsim", "infer", "cli"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
