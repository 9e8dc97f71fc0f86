"""chipsim: identity, argument checking, purity, hardware time, presets, truth lock."""
import doctest
import json

import numpy as np
import pytest

from bss2_calib import chipsim
import bss2_calib.chipsim.chip
from bss2_calib.chipsim import Chip, ChipValueError, PresetError, TruthAccessError, load_preset
from bss2_calib.chipsim.chip import CADC_READ_S, RECONFIG_S, VECTOR_OVERHEAD_S, WEIGHT_WRITE_S


def test_docstring_example_runs():
    result = doctest.testmod(bss2_calib.chipsim.chip, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0


# ------------------------------------------------------------------ identity
def _same_params(a, b):
    pa, pb = a.truth.params(), b.truth.params()
    return pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_same_id_same_chip_other_id_other_chip():
    assert _same_params(Chip(7), Chip(7))
    assert not _same_params(Chip(7), Chip(8))
    p7, p8 = Chip(7).truth.params(), Chip(8).truth.params()
    for key in ("reset_offset_lsb", "synapse_d1", "driver_offset_steps", "gm_exc_d1"):
        assert not np.array_equal(p7[key], p8[key]), key


def test_pinned_fixed_pattern_values_of_chip_7():
    # Pinned: a change of the random streams (SeedSequence layout, draw order) must be deliberate.
    p = Chip(7).truth.params()
    np.testing.assert_allclose(p["reset_offset_lsb"][:3], [-3.7372564, 1.68957036, -3.43936565], rtol=1e-6)
    np.testing.assert_allclose(p["driver_offset_steps"][:3], [-0.44245203, -0.16124359, -1.29356959], rtol=1e-6)
    np.testing.assert_allclose(p["cadc_channel_offset_lsb"][:3], [-3.45191371, -1.48565076, 1.77566949], rtol=1e-6)
    np.testing.assert_allclose(p["synapse_d1"][0, 0, 0, :3], [0.11451039, -0.00239503, 0.05640773], rtol=1e-5)
    np.testing.assert_allclose(p["reference_dac_d1"], -0.00293687, rtol=1e-5)


def test_harsh_is_the_same_chip_with_doubled_deviations():
    d, h = Chip(7).truth.params(), Chip(7, "harsh").truth.params()
    np.testing.assert_allclose(h["reset_offset_lsb"], 2 * d["reset_offset_lsb"])
    np.testing.assert_allclose(h["driver_offset_steps"], 2 * d["driver_offset_steps"])


def test_ideal_has_no_mismatch():
    p = Chip(3, "ideal").truth.params()
    for key in ("reset_offset_lsb", "synapse_d1", "driver_offset_steps", "gm_exc_d1", "cadc_channel_offset_lsb"):
        assert not np.any(p[key]), key


# ----------------------------------------------------------- argument checks
@pytest.fixture
def chip():
    return Chip(0, "default", noise_seed=1)


@pytest.mark.parametrize("x, match", [
    (np.full((2, 128), 32), r"activations value 32 outside 0\.\.31"),
    (np.full((2, 128), -1), r"activations value -1 outside 0\.\.31"),
    (np.full((2, 128), np.nan), r"activations contains NaN"),
    (np.full((2, 128), 1.5), r"activations must hold integers"),
    (np.full((2, 128), True), r"activations must hold integers, got booleans"),
    (np.full((2, 127), 1), r"x must have shape \(batch, 128\)"),
    (np.full(128, 1), r"x must have shape \(batch, 128\)"),
    (np.full((2, 2, 128), 1), r"x must have shape \(batch, 128\)"),
    (np.array([["a"] * 128]), r"activations must hold integers"),
    (np.array([[1, None] * 64], dtype=object), r"activations must be a numeric array"),
])
def test_bad_activations_are_refused(chip, x, match):
    with pytest.raises(ValueError, match=match):
        chip.run(x, 0)


def test_activations_of_every_integer_dtype_and_integral_floats_are_accepted(chip):
    x = np.arange(128) % 32
    ref = Chip(0, "noiseless").vmm(x[None], np.full((128, 256), 5))
    c = Chip(0, "noiseless")
    c.set_weights(np.full((128, 256), 5), 0)
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float32,
                  np.float64):
        np.testing.assert_array_equal(c.run(x[None].astype(dtype), 0), ref, err_msg=str(dtype))
    np.testing.assert_array_equal(c.run(x[None].tolist(), 0), ref)


@pytest.mark.parametrize("w, match", [
    (np.full((128, 256), 64), r"weights value 64 outside -63\.\.63"),
    (np.full((128, 256), -64), r"weights value -64 outside -63\.\.63"),
    (np.full((128, 256), np.nan), r"weights contains NaN or inf"),
    (np.full((128, 256), 0.5), r"weights must hold integers"),
    (np.zeros((128, 255)), r"weights must have shape \(128, 256\)"),
    (np.zeros((256, 128)), r"weights must have shape \(128, 256\)"),
])
def test_bad_weights_are_refused(chip, w, match):
    with pytest.raises(ValueError, match=match):
        chip.set_weights(w, 0)


@pytest.mark.parametrize("hemisphere", [2, -1, "left", "Both", True, 1.0, None])
def test_bad_hemisphere_is_refused(chip, hemisphere):
    with pytest.raises(ValueError, match="hemisphere"):
        chip.run(np.zeros((1, 128), int), hemisphere)
    if not isinstance(hemisphere, str):
        with pytest.raises(ValueError, match="hemisphere"):
            chip.set_weights(np.zeros((128, 256), int), hemisphere)


def test_both_hemispheres_need_two_inputs(chip):
    with pytest.raises(ValueError, match=r"hemisphere='both', x must have shape \(2, batch, 128\)"):
        chip.run(np.zeros((3, 1, 128), int), "both")
    with pytest.raises(ValueError, match=r"hemisphere='both'"):
        chip.run(np.zeros((1, 128), int), "both")


@pytest.mark.parametrize("kw, match", [
    (dict(num_sends=0), r"num_sends must be in 1\.\.255, got 0"),
    (dict(num_sends=256), r"num_sends must be in 1\.\.255"),
    (dict(num_sends=1.5), r"num_sends must be an integer"),
    (dict(num_sends=True), r"num_sends must be an integer"),
    (dict(num_sends="2"), r"num_sends must be an integer"),
    (dict(wait_between_events=0), r"wait_between_events must be in 1\.\.255"),
    (dict(wait_between_events=300), r"wait_between_events must be in 1\.\.255"),
])
def test_bad_run_parameters_are_refused(chip, kw, match):
    with pytest.raises(ValueError, match=match):
        chip.run(np.zeros((1, 128), int), 0, **kw)


def test_numpy_integer_run_parameters_are_accepted(chip):
    chip.run(np.zeros((1, 128), int), np.int64(1), num_sends=np.int32(3), wait_between_events=np.uint8(4))


@pytest.mark.parametrize("name, values, match", [
    ("no_such_knob", 1, r"unknown knob 'no_such_knob'"),
    ("v_reset", 1023, r"knob v_reset: value 1023 outside the legal range 0\.\.1022"),
    ("v_reset", -1, r"knob v_reset: value -1 outside"),
    ("cadc_channel_offset", 128, r"knob cadc_channel_offset: value 128 outside the legal range -128\.\.127"),
    ("hagen_dac_offset", 64, r"knob hagen_dac_offset: value 64 outside the legal range 0\.\.63"),
    ("v_reset", 1.5, r"knob v_reset: values must be integers"),
    ("v_reset", np.nan, r"knob v_reset: values must be finite"),
    ("v_reset", True, r"knob v_reset: values must be integers"),
    ("syn_i_bias_dac", np.zeros(5, int), r"knob syn_i_bias_dac: \(5,\) values do not fit \(4,\)"),
])
def test_bad_knobs_are_refused_and_nothing_is_written(chip, name, values, match):
    before = chip.knob_values()
    t0 = chip.hw_time_s
    with pytest.raises(ValueError, match=match):
        chip.set_knob(name, values)
    after = chip.knob_values()
    assert all(np.array_equal(before[k], after[k]) for k in before) and chip.hw_time_s == t0


def test_set_knobs_validates_everything_before_writing(chip):
    with pytest.raises(ValueError, match="v_reset"):
        chip.set_knobs({"i_bias_leak": 0, "v_reset": 5000})
    assert np.all(chip.get_knob("i_bias_leak") == 300)


def test_knob_index_and_copies(chip):
    chip.set_knob("v_reset", 600, index=[3, 5])
    v = chip.get_knob("v_reset")
    assert v[3] == v[5] == 600 and v[4] == 500 and v.shape == (512,)
    v[:] = 0  # a copy: the chip is unchanged
    assert chip.get_knob("v_reset")[3] == 600
    with pytest.raises(ValueError, match="bad index"):
        chip.set_knob("v_reset", 1, index=600)


@pytest.mark.parametrize("kwargs, match", [
    (dict(chip_id=-1), "chip_id"), (dict(chip_id=1.0), "chip_id"), (dict(chip_id=True), "chip_id"),
    (dict(noise_seed=1.5), "noise_seed"), (dict(preset=5), "preset"), (dict(preset="nope"), "unknown preset"),
])
def test_bad_chip_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Chip(**kwargs)


# -------------------------------------------------------------------- purity
def test_vmm_and_run_do_not_modify_their_inputs(rng):
    chip = Chip(1, "default", noise_seed=2)
    x = rng.integers(0, 32, (300, 128))
    w = rng.integers(-63, 64, (128, 256))
    x2 = rng.integers(0, 32, (2, 700, 128)).astype(np.int32)
    copies = x.copy(), w.copy(), x2.copy()
    chip.vmm(x, w, hemisphere=1, num_sends=2)
    chip.run(x2, "both")
    chip.run(x2[:, :5], "both")
    for a, b in zip((x, w, x2), copies):
        np.testing.assert_array_equal(a, b)
    w[0, 0] = 7  # the chip keeps its own copy
    assert chip.get_weights(1)[0, 0] == copies[1][0, 0]


def test_output_types_and_shapes(rng):
    chip = Chip(0, "default", noise_seed=0)
    y = chip.run(rng.integers(0, 32, (5, 128)), 1)
    assert y.dtype == np.int8 and y.shape == (5, 256)
    y2 = chip.run(rng.integers(0, 32, (2, 3, 128)), "both")
    assert y2.dtype == np.int8 and y2.shape == (2, 3, 256)
    assert chip.run(np.zeros((0, 128), int), 0).shape == (0, 256)
    assert chip.read_baseline().shape == (1, 512) and chip.read_baseline(0, n=4).shape == (4, 256)
    assert chip.read_baseline().dtype == np.uint8
    assert chip.read_cadc_reference(500, n=2).shape == (2, 512)


# ------------------------------------------------------------ hardware time
def test_hardware_time_accounting():
    chip = Chip(0, "ideal", noise_seed=0)
    assert chip.hw_time_s == 0
    chip.set_knob("v_reset", 510)
    assert chip.hw_time_s == pytest.approx(RECONFIG_S) and RECONFIG_S == pytest.approx(20e-3)
    chip.set_knobs({"v_reset": 500, "i_bias_leak": 0, "stp_i_ramp": (700, 1)})  # one settle for a batch
    assert chip.hw_time_s == pytest.approx(2 * RECONFIG_S)
    t = chip.hw_time_s
    chip.set_weights(np.ones((128, 256), int), 0)
    assert chip.hw_time_s - t == pytest.approx(WEIGHT_WRITE_S) and WEIGHT_WRITE_S == pytest.approx(0.5e-3)
    x = np.zeros((3, 128), int)
    x[0, :10] = 5  # 10 events
    x[1, :100] = 1  # 100 events
    t = chip.hw_time_s
    chip.run(x, 0, num_sends=2, wait_between_events=4)
    expected = 3 * 40e-6 + (10 + 100) * 2 * 4 * 8e-9
    assert chip.hw_time_s - t == pytest.approx(expected) and VECTOR_OVERHEAD_S == pytest.approx(40e-6)
    # both hemispheres in parallel: the slower one of each vector counts
    x2 = np.zeros((2, 2, 128), int)
    x2[0, 0, :30] = 1
    x2[1, 0, :20] = 1
    x2[1, 1, :50] = 1
    t = chip.hw_time_s
    chip.run(x2, "both")
    assert chip.hw_time_s - t == pytest.approx(2 * 40e-6 + (30 + 50) * 5 * 8e-9)
    assert chip.counters["runs"] == 2 and chip.counters["vectors"] == 5
    assert chip.counters["events"] == 110 * 2 + 100
    assert chip.counters["reconfigurations"] == 2 and chip.counters["weight_writes"] == 1
    t = chip.hw_time_s
    chip.read_baseline(n=3)
    assert chip.hw_time_s - t == pytest.approx(3 * CADC_READ_S)
    t = chip.hw_time_s
    chip.read_cadc_reference(400, n=2)  # a new reference code settles
    chip.read_cadc_reference(400, n=2)  # the same code does not
    assert chip.hw_time_s - t == pytest.approx(RECONFIG_S + 4 * CADC_READ_S)
    t = chip.hw_time_s
    chip.advance(hours=10)  # the environment costs no hardware time
    assert chip.hw_time_s == t


def test_large_runs_count_events_exactly_with_dead_drivers(rng):
    chip = Chip(4, "harsh", noise_seed=0)
    x = rng.integers(0, 32, (2, 1500, 128)) * (rng.random((2, 1500, 128)) < 0.7)
    t = chip.hw_time_s
    chip.run(x, "both", wait_between_events=3)
    per_vector = np.maximum(np.count_nonzero(x[0], axis=1), np.count_nonzero(x[1], axis=1))
    assert chip.hw_time_s - t == pytest.approx(1500 * 40e-6 + per_vector.sum() * 3 * 8e-9)
    assert chip.counters["events"] == np.count_nonzero(x)
    assert chip.truth.faults()["dead_driver"].any()


# ---------------------------------------------------------------- presets
def test_builtin_presets_and_their_hashes_are_stable():
    assert set(chipsim.list_presets()) >= {"default", "ideal", "noiseless", "hxtorch-mock", "harsh"}
    # Pinned: a preset's content identifies it in calibration artifacts; change these on purpose only.
    assert load_preset("default").sha256 == "f5cdd920f8a2b029fbeba4d42383371fd110b80f6992c2141b248a6cd5c6663a"
    assert load_preset("harsh").sha256 == "f71c9955c937db5d683c8034554825b98621576bb3767a20df74133cda3b17d4"
    assert load_preset("ideal").sha256 == load_preset("ideal").sha256 != load_preset("default").sha256
    assert Chip(0).preset.name == "default"


def test_user_preset_with_base(tmp_path):
    path = tmp_path / "quiet.json"
    path.write_text(json.dumps({"name": "quiet", "base": "default", "noise": {"result_std_lsb": 0.9},
                                "mismatch": {"gm_rel": 0.05}}))
    p = load_preset(path)
    assert p.name == "quiet" and p["noise"]["result_std_lsb"] == 0.9 and p["mismatch"]["gm_rel"] == 0.05
    assert p["noise"]["method"] == "fast" and p["mismatch"]["synapse_rel"] == 0.04  # inherited
    assert load_preset(str(path)).sha256 == p.sha256
    chip = Chip(2, str(path), noise_seed=0)
    assert chip.truth.noise_std()[0] == pytest.approx(0.9)


@pytest.mark.parametrize("content, match", [
    ({"base": "default", "colour": "red"}, r"unknown key 'colour'"),
    ({"base": "default", "noise": {"loudness": 1}}, r"unknown key noise\.'loudness'"),
    ({"base": "default", "noise": {"method": "pink"}}, r"bad value 'pink' for noise\.method"),
    ({"base": "default", "gain_nominal": -1}, r"gain_nominal must be >= 0"),
    ({"base": "default", "faults": {"dead_neurons": 0.9}}, r"fault fraction"),
    ({"base": "default", "nonideal": {"leak": 1}}, r"must be true or false"),
    ({"base": "nope"}, r"unknown preset 'nope'"),
    ({"name": "partial", "gain_nominal": 0.002}, r"missing key"),
])
def test_bad_user_presets_are_refused(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(PresetError, match=match):
        load_preset(path)


def test_malformed_preset_files_are_refused(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"base": "default", "noise": ')
    with pytest.raises(ValueError, match="not valid JSON"):
        Chip(0, str(path))
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        load_preset(path)
    with pytest.raises(ValueError, match="cannot read preset file"):
        load_preset(tmp_path / "missing.json")


# ------------------------------------------------------------------ truth
def test_truth_can_be_locked(rng):
    chip = Chip(0, "default", truth_access=False, noise_seed=0)
    with pytest.raises(TruthAccessError, match="locked"):
        chip.truth.params()
    chip.set_weights(rng.integers(-5, 6, (128, 256)), 0)
    chip.run(rng.integers(0, 32, (4, 128)), 0)  # the observable interface still works


def test_reads_are_near_the_baseline_with_read_noise():
    chip = Chip(0, "ideal", noise_seed=3)
    reads = chip.read_baseline(n=400).astype(float)
    assert abs(reads.mean() - 120) < 0.2
    assert 1.8 / np.sqrt(2) * 0.9 < reads.std(axis=0).mean() < 1.8 / np.sqrt(2) * 1.1
    ref = chip.read_cadc_reference(600, n=200).astype(float).mean(axis=0)  # 0.70 V reads about 160
    assert np.all(np.abs(ref - (20 + 400 * (600 * 1.2 / 1022 - 0.35))) < 1.0)
    with pytest.raises(ValueError, match="reference code"):
        chip.read_cadc_reference(1023)
    with pytest.raises(ValueError, match=r"n must be an integer"):
        chip.read_baseline(n=0)


def test_hardware_time_categories_advance_by_the_analytic_cost_and_sum_to_the_clock():
    from bss2_calib.chipsim.chip import HW_TIME_CATEGORIES, VECTOR_FIXED_S

    chip = Chip(2, "noiseless")
    assert set(chip.hw_time_split) == set(HW_TIME_CATEGORIES) and chip.hw_time_s == 0
    assert VECTOR_FIXED_S + 2 * CADC_READ_S == pytest.approx(VECTOR_OVERHEAD_S)
    chip.set_knobs({"v_reset": 400})
    chip.set_weights(np.ones((128, 256), int), 1)
    before = chip.hw_time_split
    x = np.zeros((1, 128), int)
    x[0, :7] = 3  # one vector of 7 events, sent 3 times at a spacing of 4 cycles
    chip.run(x, 1, num_sends=3, wait_between_events=4)
    step = {k: chip.hw_time_split[k] - before[k] for k in HW_TIME_CATEGORIES}
    assert step == pytest.approx({"knobs": 0.0, "weights": 0.0, "events": 7 * 3 * 4 * 8e-9,
                                  "vector_fixed": 20e-6, "readout": 20e-6}, abs=1e-15)
    chip.read_baseline(n=2)
    chip.read_cadc_reference(100)
    split = chip.hw_time_split
    assert split["knobs"] == pytest.approx(2 * RECONFIG_S)
    assert split["weights"] == pytest.approx(WEIGHT_WRITE_S)
    assert split["readout"] == pytest.approx(20e-6 + 3 * CADC_READ_S)
    assert sum(split.values()) == pytest.approx(chip.hw_time_s, rel=1e-12)
    split["knobs"] = -1.0  # a copy: the chip's clock is not writable through it
    assert chip.hw_time_split["knobs"] == pytest.approx(2 * RECONFIG_S)
