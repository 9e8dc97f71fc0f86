"""Tier 1: knob calibration steps, one module per step (one knob, or two coupled ones)."""
from . import cadc, driver_trim, leak, reset, synapse_bias, synin  # noqa: F401
