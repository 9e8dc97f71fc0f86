"""chipsim: a simulated BrainScaleS-2 chip in vector-matrix-multiplication mode.

The observable interface (the Protocol :class:`ObservableChip`, implemented by
:class:`Chip`) is what real hardware offers; the hidden truth
(:attr:`Chip.truth`) is for tests and benchmarks only.
:class:`chipsim.flaky.FlakyChip` is a backend of its own (a link with latency
and transient failures in front of any chip).
"""
from bss2_calib._version import __version__
from .chip import Chip
from .errors import (ChipError, ChipValueError, LinkError, PermanentLinkError, PresetError, TransientLinkError,
                     TruthAccessError)
from .geometry import (ACT_MAX, COLS, DRIVER_QUADRANT, N_DRIVERS, N_HEMISPHERES, N_NEURONS, N_QUADRANTS,
                       NEURON_QUADRANT, ROWS, W_MAX)
from .interface import ObservableChip
from .knobs import KNOBS, KnobSpec
from .preset import Preset, list_presets, load_preset

__all__ = [
    "__version__", "Chip", "ObservableChip", "ChipError", "ChipValueError", "PresetError", "TruthAccessError",
    "LinkError", "TransientLinkError", "PermanentLinkError", "KNOBS", "KnobSpec",
    "Preset", "list_presets", "load_preset", "ACT_MAX", "COLS", "ROWS", "W_MAX", "N_DRIVERS", "N_HEMISPHERES",
    "N_NEURONS", "N_QUADRANTS", "NEURON_QUADRANT", "DRIVER_QUADRANT",
]
