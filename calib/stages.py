"""The registry of calibration stages: the one list that the options, the pipeline and the schema read.

A *knob stage* (tier 1) is a module of :mod:`calib.steps` with ``run(session)``. A *table stage*
(tier 2) is a module of :mod:`calib.fits` that measures and fits (``run(session)``, which puts its
typed result on the session as ``session.<stage name>``) and frames its tables
(``to_frame(session)``, a dict of DataFrames built with :func:`calib.schema.frame_table`). Its entry
here declares what the artifact side must know without importing the fitting code: its name, the
stages it needs, and the schema of every table it frames (:class:`TableSpec`).

Adding a table stage therefore takes one module in ``fits/`` and one :class:`TableStage` entry in
:data:`TABLE_STAGES`; :mod:`calib.config` (stage names, requirements), :mod:`calib.session` (the
result slot), :mod:`calib.pipeline` (running, framing) and :mod:`calib.schema` (the tables the loader
accepts) all derive from it (``tests/test_stage_registry.py`` checks that they agree).

This module is pure data (numpy and pandas only): the schema, and through it the artifact reader and
the inference engine, import it without the fitting code; a stage's module is imported only when
the pipeline runs it.
"""
import importlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bss2_calib.chipsim import COLS, N_DRIVERS, N_NEURONS, ROWS, W_MAX


@dataclass(frozen=True)
class TableSpec:
    """Shape of one table.

    Attributes
    ----------
    index : tuple of str
        Index level names, outermost first.
    columns : dict of str to str
        Required columns and their dtypes (``int64``, ``float64``, ``bool``, ``str``), in the order a
        framed table has them.
    levels : tuple of ndarray or None
        The exact values of each index level (the index is their product, in
        order); None for tables of variable length.
    since : dict of str to int
        Columns added after schema version 1, with the version that added
        them: absent in artifacts of older versions, so not required (their
        dtype is checked when present).
    """

    index: tuple
    columns: dict
    levels: tuple = None
    since: dict = None

    @property
    def n_rows(self):
        return None if self.levels is None else int(np.prod([len(v) for v in self.levels]))

    def make_index(self):
        if len(self.levels) == 1:
            return pd.Index(self.levels[0], name=self.index[0], dtype=np.int64)
        return pd.MultiIndex.from_product(self.levels, names=list(self.index))


def int_range(n):
    """The index level 0..n-1 (int64)."""
    return np.arange(n, dtype=np.int64)


#: column dtypes of a :class:`TableSpec`
FLOAT, INT, BOOL, STR = "float64", "int64", "bool", "str"
_F, _B, _r = FLOAT, BOOL, int_range


@dataclass(frozen=True)
class KnobStage:
    """A tier-1 stage: ``calib.steps.<module>.run(session)`` tunes one knob (or two coupled ones)."""

    name: str
    module: str

    def load(self):
        """The stage's module (imports the fitting code)."""
        return importlib.import_module(f"{__package__}.steps.{self.module}")


@dataclass(frozen=True)
class TableStage:
    """A tier-2 stage: one module of :mod:`calib.fits` that measures, fits and frames its tables.

    Attributes
    ----------
    name : str
        Stage name (in ``Options.stages``, the manifest's steps, ``session.<name>``: its typed result).
    module : str
        Module in :mod:`calib.fits`, named by what it fits; it defines ``run(session)`` and, when
        ``tables`` is not empty, ``to_frame(session)``.
    requires : tuple of str, default=()
        Earlier table stages that must run in the same calibration.
    tables : dict of str to TableSpec, default={}
        The artifact tables the stage frames, with their schema (schema version 2).
    """

    name: str
    module: str
    requires: tuple = ()
    tables: dict = field(default_factory=dict)

    def load(self):
        """The stage's module (imports the fitting code, scipy included)."""
        return importlib.import_module(f"{__package__}.fits.{self.module}")


#: Tier 1: knob calibration, in dependency order.
KNOB_STAGES = (
    KnobStage("cadc", "cadc"), KnobStage("leak", "leak"), KnobStage("reset", "reset"),
    KnobStage("drivers", "driver_trim"), KnobStage("synapse_bias", "synapse_bias"), KnobStage("synin", "synin"),
)

#: Tier 2: digital correction tables, in dependency order.
TABLE_STAGES = (
    TableStage("offsets", "offsets"),
    TableStage("linearity", "send_linearity", requires=("offsets",)),
    TableStage("synapses", "synapse_gain", requires=("offsets",), tables={
        "synapse_gain": TableSpec(("hemisphere", "row", "column"), {
            "gain_exc": _F, "gain_exc_std": _F, "gain_inh": _F, "gain_inh_std": _F, "stuck_zero_exc": _B,
            "stuck_max_exc": _B, "stuck_zero_inh": _B, "stuck_max_inh": _B, "zero_weight_lsb": _F, "success": _B},
            (_r(2), _r(ROWS), _r(COLS)))}),
    TableStage("transfer", "driver_transfer", requires=("synapses",), tables={
        "driver_transfer": TableSpec(("driver", "activation"), {
            "pulse_steps": _F, "pulse_steps_std": _F, "dead": _B, "success": _B}, (_r(N_DRIVERS), _r(32)))}),
    TableStage("weights", "weight_transfer", requires=("synapses",), tables={
        "weight_transfer": TableSpec(("weight",), {
            "effective_weight": _F, "effective_weight_std": _F, "effective_weight_exc": _F,
            "effective_weight_inh": _F, "success": _B}, (_r(W_MAX + 1),))}),
    # the neuron_correction table is framed from the one-hot gains of `synapses` when this stage did not run
    TableStage("neuron_fit", "neuron_correction", requires=("synapses", "transfer"), tables={
        "neuron_correction": TableSpec(("neuron",), {
            "gain_exc": _F, "gain_exc_std": _F, "gain_inh": _F, "gain_inh_std": _F, "offset_lsb": _F,
            "offset_std_lsb": _F, "noise_lsb": _F, "dead": _B, "noisy": _B, "weak": _B, "success": _B},
            (_r(N_NEURONS),), since={"weak": 2})}),
)

#: every stage by name
BY_NAME = {s.name: s for s in KNOB_STAGES + TABLE_STAGES}
