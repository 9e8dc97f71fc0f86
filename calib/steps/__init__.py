"""Tier 1: knob calibration steps, one module per step (one knob, or two coupled ones).

Each module's ``run(session)`` is registered in :data:`calib.stages.KNOB_STAGES`, where the pipeline
imports it from.
"""
