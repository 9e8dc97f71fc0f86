"""A stage is registered in one place (:mod:`calib.stages`), and everything that lists stages agrees with it.

What a new table stage needs: a module in ``calib/fits/`` with ``run(session)`` (its typed result set as
``session.<stage name>``) and, if it makes tables, ``to_frame(session)``; and one ``TableStage`` entry in
``calib.stages.TABLE_STAGES`` naming it, the stages it needs and its tables' schema. These tests fail when
one of the two is missing or they disagree (a half-registered stage).
"""
import ast
import pkgutil
from pathlib import Path

import pandas as pd
import pytest

from bss2_calib.calib import config, fits, schema, stages, steps
from bss2_calib.calib import pipeline
from bss2_calib.calib.config import Options, Target
from bss2_calib.calib.session import Session


def _modules_with_run(package):
    """Modules of ``package`` that define a top-level ``run`` (read from the source, not imported)."""
    out = set()
    for info in pkgutil.iter_modules(package.__path__):
        tree = ast.parse(Path(package.__path__[0], f"{info.name}.py").read_text(encoding="utf-8"))
        if any(isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body):
            out.add(info.name)
    return out


def test_the_options_and_the_pipeline_list_the_registered_stages_in_order():
    assert config.KNOB_STAGES == tuple(s.name for s in stages.KNOB_STAGES)
    assert config.TABLE_STAGES == tuple(s.name for s in stages.TABLE_STAGES)
    assert tuple(pipeline.RUNNERS) == config.STAGES == Options().stages
    assert set(pipeline.FRAMERS) == {s.name for s in stages.TABLE_STAGES if s.tables}
    assert config.STAGE_REQUIRES == {s.name: s.requires for s in stages.TABLE_STAGES if s.requires}
    assert len(set(config.STAGES)) == len(config.STAGES)


def test_a_stage_needs_only_earlier_table_stages():
    seen = set()
    for s in stages.TABLE_STAGES:
        assert set(s.requires) <= seen, f"{s.name} needs a later or unknown stage: {s.requires}"
        seen.add(s.name)


def test_every_module_with_a_run_is_registered_and_every_registered_module_has_one():
    assert _modules_with_run(fits) == {s.module for s in stages.TABLE_STAGES}
    assert _modules_with_run(steps) == {s.module for s in stages.KNOB_STAGES}
    for s in stages.KNOB_STAGES + stages.TABLE_STAGES:
        assert callable(s.load().run), s.name


def test_a_stage_frames_if_and_only_if_it_declares_tables():
    for s in stages.TABLE_STAGES:
        assert hasattr(s.load(), "to_frame") == bool(s.tables), s.name


def test_the_schema_holds_the_knob_tables_and_every_declared_table_once():
    declared = [name for s in stages.TABLE_STAGES for name in s.tables]
    assert len(declared) == len(set(declared)) and not set(declared) & set(schema.KNOB_TABLES)
    assert set(schema.TABLES) == set(schema.KNOB_TABLES) | set(declared)
    for s in stages.TABLE_STAGES:
        for name, spec in s.tables.items():
            assert schema.TABLES[name] is spec


def test_a_fresh_session_has_an_empty_result_slot_per_table_stage():
    session = Session(object(), Target(), Options())
    for s in stages.TABLE_STAGES:
        assert getattr(session, s.name) is None


def test_a_calibration_has_exactly_the_declared_tables_in_their_declared_shape(calibrated_default):
    _, res = calibrated_default
    declared = {name: spec for s in stages.TABLE_STAGES for name, spec in s.tables.items()}
    assert set(res.tables) == set(schema.KNOB_TABLES) | set(declared)
    for name, spec in declared.items():
        df = res.tables[name]
        assert list(df.columns) == list(spec.columns) and list(df.index.names) == list(spec.index)
        assert len(df) == spec.n_rows


def test_a_stage_that_frames_an_undeclared_table_is_refused(monkeypatch):
    session = Session(object(), Target(), Options())
    assert pipeline.correction_tables(session) == {}  # nothing ran: nothing to frame
    monkeypatch.setitem(pipeline.FRAMERS, "transfer", lambda s: {"bogus": pd.DataFrame()})
    with pytest.raises(RuntimeError, match="stage transfer framed table 'bogus'"):
        pipeline.correction_tables(session)

