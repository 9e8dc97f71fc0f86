"""Package data of bss2_calib: chip presets (``presets/*.json``) and shipped models (``models/``).

Read through :func:`importlib.resources.files`, never through a path relative to the repository.
"""
from importlib.resources import files


def models_dir():
    """The folder of the shipped models (a Traversable; a plain path in a normal install)."""
    return files(__name__) / "models"
