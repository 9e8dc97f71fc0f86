"""chipsim: a simulated BrainScaleS-2 chip in vector-matrix-multiplication mode.

The observable interface (:class:`Chip`) is what real hardware offers; the
hidden truth (:attr:`Chip.truth`) is for tests and benchmarks only.
"""
from bss2_calib._version import __version__
from .chip import Chip
from .errors import ChipError, ChipValueError, PresetError, TruthAccessError
from .geometry import (ACT_MAX, COLS, DRIVER_QUADRANT, N_DRIVERS, N_HEMISPHERES, N_NEURONS, N_QUADRANTS,
                       NEURON_QUADRANT, ROWS, W_MAX)
from .knobs import KNOBS, KnobSpec
from .preset import Preset, list_presets, load_preset

__all__ = [
    "__version__", "Chip", "ChipError", "ChipValueError", "PresetError", "TruthAccessError", "KNOBS", "KnobSpec",
    "Preset", "list_presets", "load_preset", "ACT_MAX", "COLS", "ROWS", "W_MAX", "N_DRIVERS", "N_HEMISPHERES",
    "N_NEURONS", "N_QUADRANTS", "NEURON_QUADRANT", "DRIVER_QUADRANT",
]
