"""The state one calibration run carries from stage to stage.

A :class:`Session` holds the chip, the target and options, the prober, the
calibration's own random Generator, and what the stages produced so far (knob
results, table steps, and every stage's typed result). Stages read what they need from it
explicitly; nothing is global.
"""
import numpy as np

from .algorithms import make_algorithm
from .probes import Prober
from .stages import TABLE_STAGES


class Session:
    """One calibration run.

    Parameters
    ----------
    chip : chipsim.Chip
    target : Target
    options : Options
    """

    def __init__(self, chip, target, options):
        self.chip = chip
        self.target = target
        self.options = options
        self.prober = Prober(chip, options.conditions.wait_between_events)
        self.rng = np.random.default_rng(np.random.SeedSequence([0xCA11B, options.seed]))
        self.knob_results = []  # KnobResult, in order
        self.table_steps = []  # TableStep, in order
        self.live_drivers = None  # steps.driver_trim: bool (256,), drivers that respond
        # the typed result of every table stage, ``session.<stage name>`` (None: not run), a frozen dataclass
        # defined by the stage's module: offsets (fits.offsets.ZeroOffsets), linearity
        # (fits.send_linearity.SendLinearity), synapses (fits.synapse_gain.SynapseFit), transfer
        # (fits.driver_transfer.DriverTransferFit), weights (fits.weight_transfer.WeightTransferFit),
        # neuron_fit (fits.neuron_correction.NeuronFit)
        for stage in TABLE_STAGES:
            setattr(self, stage.name, None)

    @property
    def kappa(self):
        """The per-send gain decay the linearity stage measured (0 if it did not run)."""
        return 0.0 if self.linearity is None else self.linearity.kappa

    def algorithm(self, prefer=None):
        """The search algorithm for a knob step.

        With the default ``model`` option a step may ``prefer`` a cheaper
        algorithm that suits its knob (``linear`` for digital offsets);
        any other option value is used for every step.
        """
        k = self.options.knobs
        name = prefer if (k.algorithm == "model" and prefer) else k.algorithm
        return make_algorithm(name, refinements=k.refinements, seed=self.options.seed)
