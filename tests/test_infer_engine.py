"""The inference engine: partitioning, corrections, artifact checks, caching, validation."""
import types
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bss2_calib.chipsim import Chip
from bss2_calib.infer import (ArtifactMismatchWarning, CorrectionOptions, Corrections, CorrectionTableError, Engine,
                   IncompatibleArtifact, InferValueError)
from bss2_calib.infer.corrections import Faults

G = 0.002


def truth_corrections(chip, *, num_sends=1, wait=5, gain_target=G, faults=False):
    """Correction tables as a perfect calibration would measure them (truth: tests only)."""
    t = chip.truth
    T = np.concatenate([t.pulse_table(h, wait) for h in (0, 1)])
    sg = np.stack([t.synapse_gain(h, num_sends=num_sends, wait_between_events=wait) for h in (0, 1)]) / gain_target
    gexc, ginh = np.median(sg[:, 0], axis=1), np.median(sg[:, 1], axis=1)
    gexc, ginh = np.where(gexc > 0, gexc, 1.0), np.where(ginh > 0, ginh, 1.0)  # dead neurons read 0
    off = np.concatenate([t.neuron_offset(h, num_sends=num_sends, wait_between_events=wait) for h in (0, 1)])
    beta = chip.preset["nonideal"]["dac_nonlinearity"] if chip.preset["model"] != "linear" else 0.0
    c = np.arange(64.0)
    fl = None
    if faults:
        f = t.faults()
        fl = Faults(driver_dead=f["dead_driver"], neuron_dead=f["dead_neuron"], neuron_noisy=f["noisy_neuron"],
                    stuck_zero=f["stuck_zero"].transpose(1, 0, 2, 3), stuck_max=f["stuck_max"].transpose(1, 0, 2, 3))
    return Corrections(pulse_steps=T, gain_exc=gexc.ravel(), gain_inh=ginh.ravel(), offset_lsb=off,
                       synapse_exc=sg[:, 0] / gexc[:, None, :], synapse_inh=sg[:, 1] / ginh[:, None, :],
                       weight_transfer=c * (1 + beta * (c - 63) / 63), gain_target=gain_target, faults=fl,
                       chip_id=chip.chip_id, preset_name=chip.preset.name, preset_sha256=chip.preset.sha256,
                       conditions={"wait_between_events": wait, "num_sends_min": 1, "num_sends_max": 16,
                                   "temperature_c": 25.0, "temperature_tolerance_k": 5.0})


def column_fit(y, ideal):
    """Per-column slope and intercept of y against the ideal product."""
    xm, ym = ideal - ideal.mean(0), y - y.mean(0)
    slope = (xm * ym).sum(0) / (xm * xm).sum(0)
    return slope, y.mean(0) - slope * ideal.mean(0)


def tiled_reference(x, w, tile_fn):
    """Saturating sum over row tiles of clipped tile results; tile_fn(x_tile, w_tile, tile_index)."""
    n_in, n_out = w.shape
    out = np.zeros((x.shape[0], n_out))
    t = 0
    for c0 in range(0, n_out, 256):
        for r0 in range(0, n_in, 128):
            xt = np.zeros((x.shape[0], 128), dtype=np.int64)
            wt = np.zeros((128, 256), dtype=np.int64)
            xr, wr = x[:, r0:r0 + 128], w[r0:r0 + 128, c0:c0 + 256]
            xt[:, :xr.shape[1]] = xr
            wt[:wr.shape[0], :wr.shape[1]] = wr
            out[:, c0:c0 + wr.shape[1]] += np.clip(tile_fn(xt, wt, t)[:, :wr.shape[1]], -128, 127)
            t += 1
    return np.clip(out, -128, 127)


def random_problem(rng, batch, n_in, n_out, wmax=63):
    x = rng.integers(0, 32, (batch, n_in))
    return x, rng.integers(-wmax, wmax + 1, (n_in, n_out))


# ----------------------------------------------------------------- partitioning
def test_partitioning_matches_tile_by_tile_vmm_with_the_same_noise():
    rng = np.random.default_rng(0)
    x, w = random_problem(rng, 40, 300, 600, wmax=20)
    engine = Engine(Chip(3, "default", noise_seed=11))
    ref_chip = Chip(3, "default", noise_seed=11)
    # one chip: tiles run in rounds of two, tile 2k on hemisphere 0 and 2k+1 on hemisphere 1
    ref = tiled_reference(x, w, lambda xt, wt, t: ref_chip.vmm(xt, wt, hemisphere=t % 2))
    y = engine.matmul(x, w)
    np.testing.assert_array_equal(y, ref)
    assert engine.stats["tile_runs"] == 9
    assert y.dtype == np.float64 and y.shape == (40, 600)


def test_partitioning_over_two_chips_runs_rounds_of_four_tiles():
    rng = np.random.default_rng(1)
    x, w = random_problem(rng, 16, 520, 300, wmax=15)  # 5 row blocks x 2 column blocks = 10 tiles
    engine = Engine([Chip(1, "default", noise_seed=5), Chip(2, "default", noise_seed=6)])
    refs = [Chip(1, "default", noise_seed=5), Chip(2, "default", noise_seed=6)]
    ref = tiled_reference(x, w, lambda xt, wt, t: refs[(t % 4) // 2].vmm(xt, wt, hemisphere=t % 2))
    np.testing.assert_array_equal(engine.matmul(x, w), ref)


def test_parallel_chips_take_less_hardware_time():
    rng = np.random.default_rng(2)
    x, w = random_problem(rng, 64, 512, 512, wmax=10)
    one, two = Engine(Chip(0, "noiseless")), Engine([Chip(0, "noiseless"), Chip(1, "noiseless")])
    np.testing.assert_array_equal(one.matmul(x, w), two.matmul(x, w))
    assert two.stats["hw_time_s"] < 0.6 * one.stats["hw_time_s"]


def test_batches_are_split_without_changing_results():
    rng = np.random.default_rng(3)
    x, w = random_problem(rng, 50, 200, 40)
    a, b = Engine(Chip(0, "noiseless")), Engine(Chip(0, "noiseless"), max_batch=7)
    np.testing.assert_array_equal(a.matmul(x, w), b.matmul(x, w))


def exact_product(x, w, num_sends, nudge=0.0):
    """round(0.002 * num_sends * x.W) per tile of 128 rows, clipped, summed, clipped (float64).

    ``nudge`` shifts every tile value before rounding, to bracket exact .5 ties.
    """
    return tiled_reference(x, w, lambda xt, wt, t: np.rint(G * num_sends * (xt @ wt).astype(np.float64) + nudge))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 400), st.integers(1, 300), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_identity_artifact_on_noiseless_chip_is_the_exact_quantized_product(batch, n_in, n_out, sends, seed):
    rng = np.random.default_rng(seed)
    x, w = random_problem(rng, batch, n_in, n_out)
    chip = Chip(0, "noiseless")
    y = Engine(chip, Corrections.identity(chip), num_sends=sends).matmul(x, w)
    # the chip rounds in float32: an exact .5 tie may go either way, nowhere else may it differ
    lo, hi = exact_product(x, w, sends, -1e-6), exact_product(x, w, sends, 1e-6)
    assert np.all((lo <= y) & (y <= hi))


def test_single_vector_and_empty_batch():
    engine = Engine(Chip(0, "noiseless"))
    w = np.full((10, 3), 50)
    assert engine.matmul(np.full(10, 31), w).shape == (3,)
    assert engine.matmul(np.zeros((0, 10), dtype=int), w).shape == (0, 3)


# ------------------------------------------------------------------ corrections
def _spread(engine, x, w, num_sends=1):
    ideal = G * num_sends * (x @ w).astype(np.float64)
    y = engine.matmul(x, w, num_sends=num_sends)
    slope, icpt = column_fit(y, ideal)
    return np.std(slope) / np.mean(slope), np.std(icpt), np.mean(slope)


def test_truth_derived_corrections_bring_a_default_chip_close_to_the_ideal_chip():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 32, (600, 128)) * (rng.random((600, 128)) < 0.5)
    w = rng.integers(-40, 41, (128, 256))
    raw = _spread(Engine(Chip(5, "default", noise_seed=1)), x, w)
    ideal = _spread(Engine(Chip(5, "ideal", noise_seed=1)), x, w)
    chip = Chip(5, "default", noise_seed=1, truth_access=True)
    corr = truth_corrections(chip)
    locked = Chip(5, "default", noise_seed=1, truth_access=False)  # the engine never needs the truth
    fixed = _spread(Engine(locked, corr), x, w)
    assert raw[0] > 0.05 and raw[1] > 2.0  # uncalibrated: 10 % gain and several LSB offset spread
    assert fixed[0] < 1.3 * ideal[0] + 0.003  # gain spread as on an ideal chip (noise-limited, ~1 %)
    assert fixed[1] < 1.3 * ideal[1] + 0.05  # offset spread likewise
    assert abs(fixed[2] - 1) < 0.02  # output in LSB at the target gain


def test_corrections_survive_the_table_round_trip():
    chip = Chip(6, "default", noise_seed=2)
    corr = truth_corrections(chip)
    tables = corr.to_tables()
    assert tables["synapse_gain"].index.names == ["hemisphere", "row", "column"]
    manifest = {"chip_id": 6, "preset": {"name": "default", "sha256": chip.preset.sha256},
                "conditions": dict(corr.conditions), "target": {"gain_lsb_per_unit": G}}
    again = Corrections.from_artifact(types.SimpleNamespace(tables=tables, manifest=manifest))
    for name in ("pulse_steps", "gain_exc", "offset_lsb", "synapse_inh", "weight_transfer", "input_lut",
                 "effective_gain"):
        np.testing.assert_allclose(getattr(again, name), getattr(corr, name))


def test_failed_table_rows_fall_back_to_nominal_values():
    corr = Corrections.identity()
    tables = corr.to_tables()
    nc = tables["neuron_correction"].copy()
    nc.loc[3, ["gain_exc", "offset_lsb", "success"]] = [np.nan, np.nan, False]
    tables["neuron_correction"] = nc
    again = Corrections.from_tables(tables, {})
    assert again.summary()["neurons_not_calibrated"] == 1
    assert again.offset[3] == 0 and again.effective_gain[0, 0, 0, 3] == 1


def test_missing_tables_mean_identity():
    tables = truth_corrections(Chip(2, "default")).to_tables()
    for name in ("synapse_gain", "driver_transfer", "neuron_correction", "weight_transfer"):
        tables.pop(name)
    corr = Corrections.from_tables(tables, {})
    ident = Corrections.identity()
    for name in ("input_lut", "effective_gain", "offset", "weight_transfer"):
        np.testing.assert_array_equal(getattr(corr, name), getattr(ident, name))


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.update(neuron_correction=t["neuron_correction"].drop(columns="gain_inh")), "gain_inh"),
    (lambda t: t.update(driver_transfer=t["driver_transfer"].iloc[:-1]), "rows"),
    (lambda t: t.update(neuron_correction=t["neuron_correction"].rename_axis("column")), "index levels"),
])
def test_malformed_tables_are_refused(mutate, message):
    tables = Corrections.identity().to_tables()
    mutate(tables)
    with pytest.raises(CorrectionTableError, match=message):
        Corrections.from_tables(tables, {})


def test_weight_predistortion_stays_in_range_and_uses_headroom():
    chip = Chip(7, "default", noise_seed=0)
    corr = truth_corrections(chip)
    w = np.full((128, 256), 63)
    w[:, ::2] = -63
    codes, scale, clipped, dropped = corr.predistort(w, 0, np.arange(128), np.arange(256))
    assert np.abs(codes).max() <= 63 and np.all(np.sign(codes) == np.sign(w))
    assert np.all((scale >= 0.5) & (scale <= 1.0)) and dropped == 0
    codes, scale, *_ = corr.predistort(w // 4, 0, np.arange(128), np.arange(256))
    assert np.all(scale == 1.0)  # small weights leave room: the target gain is kept
    with pytest.raises(InferValueError):
        CorrectionOptions(max_scale=0.4, min_scale=0.5)


# ----------------------------------------------------------- artifact refusals
def test_a_foreign_artifact_is_refused_naming_the_field():
    corr = truth_corrections(Chip(1, "default"))
    with pytest.raises(IncompatibleArtifact, match="chip 1, not chip 2") as err:
        Engine(Chip(2, "default"), corr)
    assert err.value.field == "chip_id"
    with pytest.raises(IncompatibleArtifact) as err:
        Engine(Chip(1, "harsh"), corr)
    assert err.value.field == "preset.sha256" and "harsh" in str(err.value)
    with pytest.raises(IncompatibleArtifact) as err:
        Engine(Chip(1, "default"), corr, wait_between_events=8)
    assert err.value.field == "conditions.wait_between_events"
    engine = Engine(Chip(1, "default"), corr)
    with pytest.raises(IncompatibleArtifact) as err:
        engine.matmul(np.ones((1, 4), int), np.ones((4, 2), int), num_sends=20)
    assert err.value.field == "conditions.num_sends"
    engine.chips[0].advance(temperature_c=40.0)
    with pytest.raises(IncompatibleArtifact) as err:
        engine.matmul(np.ones((1, 4), int), np.ones((4, 2), int))
    assert err.value.field == "conditions.temperature_c"
    assert "\n" not in str(err.value)


def test_allow_mismatch_warns_and_runs():
    corr = truth_corrections(Chip(1, "default"))
    with pytest.warns(ArtifactMismatchWarning, match="chip_id"):
        engine = Engine(Chip(2, "default", noise_seed=0), corr, allow_mismatch=True)
    assert engine.matmul(np.ones((2, 4), int), np.ones((4, 3), int)).shape == (2, 3)


def test_artifact_knobs_are_written_once_and_restored_if_changed():
    chip = Chip(0, "default")
    knobs = {"i_bias_leak": np.zeros(512, np.int64), "v_reset": np.full(512, 480)}
    corr = Corrections(**{k: getattr(Corrections.identity(chip), k) for k in (
        "pulse_steps", "gain_exc", "gain_inh", "offset_lsb", "synapse_exc", "synapse_inh")},
        chip_id=0, preset_sha256=chip.preset.sha256, knobs=knobs)
    engine = Engine(chip, corr)
    assert np.all(chip.get_knob("i_bias_leak") == 0) and chip.counters["reconfigurations"] == 1
    engine.matmul(np.ones((1, 4), int), np.ones((4, 2), int))
    assert chip.counters["reconfigurations"] == 1
    chip.set_knob("v_reset", 500)
    engine.matmul(np.ones((1, 4), int), np.ones((4, 2), int))
    assert np.all(chip.get_knob("v_reset") == 480)


def test_artifact_objects_are_applied_through_apply_to():
    chip = Chip(0, "noiseless")
    calls = []
    corr = Corrections.identity(chip)
    art = types.SimpleNamespace(tables=corr.to_tables(), manifest={"chip_id": 0},
                                apply_to=lambda c: calls.append(c))
    Engine(chip, art)
    assert calls == [chip]


# --------------------------------------------------------------------- caching
def test_programmed_weights_are_cached_between_calls():
    chip = Chip(0, "noiseless")
    engine = Engine(chip, Corrections.identity(chip))
    rng = np.random.default_rng(0)
    x, w = random_problem(rng, 5, 200, 300)  # 4 tiles: two rounds on one chip, rewritten every call
    x2, w2 = random_problem(rng, 5, 100, 50)  # 1 tile
    engine.matmul(x2, w2)
    writes = chip.counters["weight_writes"]
    y = engine.matmul(x2, w2)
    assert chip.counters["weight_writes"] == writes
    engine.matmul(x2, w2 + (w2 < 63))  # different weights: rewritten
    assert chip.counters["weight_writes"] == writes + 1
    chip.set_weights(np.zeros((128, 256), int), 0)  # someone else wrote the chip
    np.testing.assert_array_equal(engine.matmul(x2, w2), y)
    two = Engine([Chip(0, "noiseless"), Chip(1, "noiseless")])
    two.matmul(x, w)
    before = two.stats["weight_writes"]
    two.matmul(x2, w2)  # one tile: written once into the least recently used slot ...
    two.matmul(x2, w2)  # ... and found there again
    assert two.stats["weight_writes"] == before + 1
    two.matmul(x, w)  # three of the big matrix's four tiles are still resident
    assert two.stats["weight_writes"] == before + 2


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("x, w, message", [
    (np.full((1, 4), np.nan), np.ones((4, 2)), "NaN"),
    (np.full((1, 4), 1.5), np.ones((4, 2)), "integers"),
    (np.full((1, 4), 32), np.ones((4, 2)), "outside 0..31"),
    (np.full((1, 4), -1), np.ones((4, 2)), "outside 0..31"),
    (np.ones((1, 4)), np.full((4, 2), 64), "outside -63..63"),
    (np.ones((1, 4)), np.full((4, 2), np.inf), "NaN or inf"),
    (np.ones((1, 4), bool), np.ones((4, 2)), "booleans"),
    (np.array([["a"] * 4]), np.ones((4, 2)), "numeric"),
    (np.ones((1, 4)), np.ones((5, 2)), "4 inputs but weights have 5 rows"),
    (np.ones((1, 1, 4)), np.ones((4, 2)), "shape"),
    (np.ones((1, 4)), np.ones(4), "shape"),
    (np.ones((1, 0)), np.ones((0, 2)), "at least one row"),
])
def test_bad_inputs_are_refused_in_one_line(x, w, message):
    engine = Engine(Chip(0, "noiseless"))
    with pytest.raises(InferValueError, match=message) as err:
        engine.matmul(x, w)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs", [{"num_sends": 0}, {"num_sends": 1.0}, {"wait_between_events": 256},
                                    {"max_batch": 0}, {"correction": {}}])
def test_bad_engine_options_are_refused(kwargs):
    with pytest.raises(InferValueError):
        Engine(Chip(0, "noiseless"), **kwargs)


def test_bad_chip_lists_are_refused():
    chip = Chip(0, "noiseless")
    for chips, arts in [([], None), ([chip, chip], None), ([chip], [None, None]), (["chip"], None)]:
        with pytest.raises(InferValueError):
            Engine(chips, arts)


def test_inputs_are_never_modified():
    chip = Chip(0, "default", noise_seed=0)
    rng = np.random.default_rng(5)
    x, w = random_problem(rng, 20, 300, 70)
    x_ro, w_ro = x.copy(), w.copy()
    x_ro.flags.writeable = False
    w_ro.flags.writeable = False
    corr = truth_corrections(chip)
    Engine(chip, corr).matmul(x_ro, w_ro)
    np.testing.assert_array_equal(x_ro, x)
    np.testing.assert_array_equal(w_ro, w)
    xf, wf = x.astype(np.float32), w.astype(np.float64)
    Engine(Chip(0, "noiseless")).matmul(xf, wf)
    np.testing.assert_array_equal(xf, x)
    np.testing.assert_array_equal(wf, w)


# ------------------------------------------------------------------- measuring
def test_measured_gain_and_noise():
    m = Engine(Chip(0, "noiseless")).measure()
    assert m.gain == pytest.approx(G, rel=0.01) and m.noise_std == 0.0
    chip = Chip(8, "default", noise_seed=3)
    engine = Engine(chip, truth_corrections(chip))
    m = engine.measure()
    assert m.gain == pytest.approx(G, rel=0.03)
    assert 1.5 < m.noise_std < 2.3
    assert engine.measure() is m  # cached
    # at default knobs the leak lowers the per-send gain of longer integrations: tables for num_sends=4
    m4 = Engine(chip, truth_corrections(chip, num_sends=4)).measure(num_sends=4)
    assert m4.num_sends == 4 and m4.gain == pytest.approx(G, rel=0.03)


def test_report_counts():
    chip = Chip(0, "noiseless")
    engine = Engine(chip, Corrections.identity(chip))
    engine.matmul(np.ones((3, 10), int), np.ones((10, 4), int))
    rep = engine.report()
    assert rep["stats"]["vectors"] == 3 and rep["chips"][0]["calibrated"]
    assert "Engine(chips=[0*]" in repr(engine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Engine(Chip(0, "noiseless")).calibrated is False


# ----------------------------------------------------------------------- faults
def test_recorded_faults_are_compensated_or_dropped(tmp_path):
    preset = tmp_path / "stuck.json"
    preset.write_text('{"name": "stuck", "base": "default", "faults": {"stuck_max_synapses": 0.02, '
                      '"stuck_zero_synapses": 0.02, "dead_neurons": 0.01, "dead_drivers": 0.01}}')
    rng = np.random.default_rng(0)
    x = rng.integers(0, 32, (400, 128)) * (rng.random((400, 128)) < 0.5)
    w = rng.integers(-40, 41, (128, 512))
    ideal = G * (x @ w)
    err = {}
    for known in (False, True):
        chip = Chip(3, preset, noise_seed=1)
        corr = truth_corrections(chip, faults=known)
        engine = Engine(chip, corr, correction=CorrectionOptions(spill=False))  # in place; spill: test_spill.py
        y = engine.matmul(x, w)
        dead = chip.truth.faults()["dead_neuron"]
        err[known] = np.sqrt(np.mean((y - ideal)[:, ~dead] ** 2))
        if known:
            np.testing.assert_array_equal(y[:, dead], 0)  # dead columns read 0, not noise around an offset
            counts = corr.summary()
            n_dead = chip.truth.faults()["dead_driver"].sum()
            assert counts["stuck_max_synapses"] > 1000 and counts["dead_drivers"] == n_dead > 0
            assert engine.stats["dropped_weights"] > 0  # dead drivers' rows and stuck-at-zero synapses
    # stuck-at-max synapses compensated through their partner rows: clearly smaller errors
    assert err[True] < 0.75 * err[False]
