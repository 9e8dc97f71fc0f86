"""Tier 2: digital correction tables fitted from probe runs, one module per table stage.

Each module is named by what it fits. It measures and fits its stage (``run(session)``), hands the next
stages a typed result (a frozen dataclass it defines) as ``session.<stage name>``, and frames its tables
(``to_frame(session)``). Its entry in :data:`calib.stages.TABLE_STAGES` names it, lists the stages it
needs and declares its tables' schema; the pipeline imports the module from there.

| module | stage | result (``session.<stage name>``) | table |
|---|---|---|---|
| ``offsets`` | ``offsets`` | :class:`~calib.fits.offsets.ZeroOffsets` | |
| ``send_linearity`` | ``linearity`` | :class:`~calib.fits.send_linearity.SendLinearity` | (the manifest's conditions) |
| ``synapse_gain`` | ``synapses`` | :class:`~calib.fits.synapse_gain.SynapseFit` | ``synapse_gain`` |
| ``driver_transfer`` | ``transfer`` | :class:`~calib.fits.driver_transfer.DriverTransferFit` | ``driver_transfer`` |
| ``weight_transfer`` | ``weights`` | :class:`~calib.fits.weight_transfer.WeightTransferFit` | ``weight_transfer`` |
| ``neuron_correction`` | ``neuron_fit`` | :class:`~calib.fits.neuron_correction.NeuronFit` | ``neuron_correction`` |
"""
