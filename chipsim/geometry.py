"""Geometry of one BrainScaleS-2 chip in VMM mode and its index conventions.

Global indices used everywhere in the project:

* hemisphere ``h`` in ``{0, 1}``;
* driver (input row pair) ``d = 128 * h + i`` with ``i`` the row of the signed
  128 x 256 matrix of hemisphere ``h``;
* neuron (output column, CADC channel) ``n = 256 * h + j`` with ``j`` the
  column within the hemisphere;
* CapMem quadrant ``q = 2 * h + side``; a neuron's side is ``j >= 128``, a
  driver's side is ``i >= 64``. Each quadrant holds 128 neurons and 64 drivers.
"""
import numpy as np

N_HEMISPHERES = 2
ROWS = 128  #: signed input rows (synapse drivers) per hemisphere
COLS = 256  #: output columns (neurons) per hemisphere
N_DRIVERS = N_HEMISPHERES * ROWS  #: 256
N_NEURONS = N_HEMISPHERES * COLS  #: 512
N_QUADRANTS = 4
ACT_MAX = 31  #: largest 5-bit input activation
W_MAX = 63  #: largest 6-bit weight magnitude
CLOCK_NS = 8.0  #: FPGA clock period in ns (125 MHz)

#: quadrant of every neuron, shape (512,)
NEURON_QUADRANT = (
    2 * (np.arange(N_NEURONS) // COLS) + ((np.arange(N_NEURONS) % COLS) >= COLS // 2)
).astype(np.int64)
#: quadrant of every driver, shape (256,)
DRIVER_QUADRANT = (
    2 * (np.arange(N_DRIVERS) // ROWS) + ((np.arange(N_DRIVERS) % ROWS) >= ROWS // 2)
).astype(np.int64)


def check_hemisphere(hemisphere):
    """Return ``hemisphere`` as an int after checking it is 0 or 1."""
    from .errors import ChipValueError

    if isinstance(hemisphere, (bool, np.bool_)) or not isinstance(hemisphere, (int, np.integer)):
        raise ChipValueError(f"hemisphere must be 0 or 1, got {hemisphere!r}")
    if hemisphere not in (0, 1):
        raise ChipValueError(f"hemisphere must be 0 or 1, got {hemisphere}")
    return int(hemisphere)
