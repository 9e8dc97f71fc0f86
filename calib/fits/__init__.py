"""Tier 2: digital correction tables fitted from probe runs, one module per table stage."""
from . import linearity, neuron, offsets, synapses, transfer, weights  # noqa: F401
