"""Tier 2: digital correction tables fitted from probe runs, one module per table stage.

Each module is named by what it fits, measures and fits its stage, and hands the next stages a typed
result (a frozen dataclass it defines) on the :class:`~calib.session.Session`:

| module | stage | result (``session.<attribute>``) |
|---|---|---|
| ``offsets`` | ``offsets`` | :class:`~calib.fits.offsets.ZeroOffsets` (``offsets``) |
| ``send_linearity`` | ``linearity`` | :class:`~calib.fits.send_linearity.SendLinearity` (``linearity``) |
| ``synapse_gain`` | ``synapses`` | :class:`~calib.fits.synapse_gain.SynapseFit` (``synapses``) |
| ``driver_transfer`` | ``transfer`` | :class:`~calib.fits.driver_transfer.DriverTransferFit` (``transfer``) |
| ``weight_transfer`` | ``weights`` | :class:`~calib.fits.weight_transfer.WeightTransferFit` (``weights``) |
| ``neuron_correction`` | ``neuron_fit`` | :class:`~calib.fits.neuron_correction.NeuronFit` (``neuron_fit``) |
"""
from . import driver_transfer, neuron_correction, offsets, send_linearity, synapse_gain, weight_transfer  # noqa: F401
