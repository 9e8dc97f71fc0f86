"""Routing around faults: the engine uses the artifact's fault masks to avoid, compensate or report them."""
import json

import numpy as np
import pytest

from bss2_calib import calib
from bss2_calib.chipsim import Chip
from bss2_calib.infer import CorrectionOptions, Corrections, Engine, InferValueError
from bss2_calib.infer.corrections import Faults
from bss2_calib.infer.routing import KINDS, FaultReport, Hemisphere, place, program


G = 0.002
FAULTS = {"stuck_zero_synapses": 0.01, "stuck_max_synapses": 0.005, "dead_neurons": 0.02, "noisy_neurons": 0.01,
          "dead_drivers": 0.02}
CHIP = 0  # the session's shared default calibration is the fault-free twin (tests/conftest.py)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, calibrated_default):
    """A default chip with injected faults, its fault-free twin (same mismatch), and their calibrations."""
    path = tmp_path_factory.mktemp("presets") / "faulty.json"
    path.write_text(json.dumps({"name": "faulty", "base": "default", "faults": FAULTS}))
    art = calib.calibrate(Chip(CHIP, path, noise_seed=CHIP))
    twin = calibrated_default[1]
    assert twin.chip_id == CHIP
    return {"preset": path, "artifact": art, "twin": twin}


def _problem(n_in, n_out, seed=0, batch=400):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 32, (batch, n_in)) * (rng.random((batch, n_in)) < 0.5)
    w = rng.integers(-10, 11, (n_in, n_out))  # num_sends 8: outputs stay within the linear range
    return x, w, G * 8 * (x @ w).astype(np.float64)


def _run(preset, artifact, x, w, options=CorrectionOptions(), seed=11):
    # truth locked: routing may only use the artifact's masks
    engine = Engine(Chip(CHIP, preset, noise_seed=seed, truth_access=False), artifact, correction=options)
    return engine.matmul(x, w, num_sends=8), engine


def _rms(y, ideal):
    return float(np.sqrt(np.mean((y - ideal) ** 2)))


def test_a_layer_with_room_is_as_good_as_on_the_fault_free_chip(faulty):
    x, w, ideal = _problem(96, 200)
    y_twin, _ = _run("default", faulty["twin"], x, w)
    y_remap, engine = _run(faulty["preset"], faulty["artifact"], x, w)
    y_place, engine_off = _run(faulty["preset"], faulty["artifact"], x, w, CorrectionOptions(remap=False, spill=False))
    twin, remap, in_place = _rms(y_twin, ideal), _rms(y_remap, ideal), _rms(y_place, ideal)
    # the twin's error is the trial-to-trial noise (1.8 LSB) plus calibration residuals
    assert twin < 2.2
    assert remap < 1.05 * twin + 0.05, (remap, twin)
    assert in_place > 1.3 * twin, (in_place, twin)  # without routing the faults cost clearly more
    rep = engine.fault_report()
    total = rep.total()
    for kind in ("dead_driver", "dead_neuron", "stuck_zero", "stuck_max"):
        assert total[kind]["met"] > 0, kind  # the layer did meet every kind of fault...
    assert rep.lost == 0  # ...and avoided or compensated all of them
    off = engine_off.fault_report().total()
    assert off["dead_neuron"]["lost"] == total["dead_neuron"]["met"] > 0
    # in place, a stuck-at-zero row drops its weight (only |w| = 1 stays within one weight step)
    assert off["stuck_zero"]["lost"] >= 0.8 * total["stuck_zero"]["met"]
    # no column of the result misses by more than the noise allows
    col = np.sqrt(np.mean((y_remap - ideal) ** 2, axis=0))
    assert col.max() < 3.0


def test_without_room_the_loss_is_reported_and_spare_rows_and_columns_remove_it(faulty):
    x, w, ideal = _problem(128, 256, seed=1)
    y, engine = _run(faulty["preset"], faulty["artifact"], x, w, CorrectionOptions(spill=False))  # see test_spill
    rep = engine.fault_report()
    assert len(rep.layers) == 1 and rep.layers[0]["shape"] == (128, 256)
    t = rep.total()
    assert t["dead_neuron"]["lost"] == t["dead_neuron"]["met"] > 0  # a full tile has no spare column
    assert t["dead_driver"]["lost"] > 0 and rep.lost > 0
    assert engine.report()["faults"]["lost"] == rep.lost
    assert "lost" in str(rep) and "dead_neuron" in str(rep)
    # the dead columns read 0: the loss is visible, not noise around an offset
    dead_cols = np.flatnonzero(np.all(y == 0, axis=0))
    assert len(dead_cols) >= t["dead_neuron"]["lost"]
    y_spare, spare = _run(faulty["preset"], faulty["artifact"], x, w,
                          CorrectionOptions(spare_rows="auto", spare_columns="auto", spill=False))
    ts = spare.fault_report().total()
    assert spare.tile_rows < 128 and spare.tile_cols < 256
    assert ts["dead_neuron"]["lost"] == ts["dead_driver"]["lost"] == ts["noisy_neuron"]["lost"] == 0
    assert spare.stats["tile_runs"] > engine.stats["tile_runs"]  # room costs tiles
    assert _rms(y_spare, ideal) < _rms(y, ideal)


def test_a_chip_without_recorded_faults_is_used_exactly_as_before(faulty):
    x, w, _ = _problem(100, 20, seed=2)
    y_on, engine = _run("default", faulty["twin"], x, w)
    y_off, _ = _run("default", faulty["twin"], x, w, CorrectionOptions(remap=False))
    np.testing.assert_array_equal(y_on, y_off)  # same noise seed: same placement, same result
    assert all(c["met"] == 0 for c in engine.fault_report().total().values())
    assert all(p.identity for p in engine._placements.values())


def _masked(chip):
    """Identity tables for a healthy noiseless chip whose masks claim faults (plumbing tests)."""
    sz = np.zeros((2, 2, 128, 256), bool)
    sz[0, 0, 10, 11] = True  # excitatory row of driver 10 at column 11 "stuck at zero"
    sz[1, 0, 12, 13] = True
    dd = np.zeros(256, bool)
    dd[3] = True
    nd, nn = np.zeros(512, bool), np.zeros(512, bool)
    nd[5], nn[6] = True, True
    ident = Corrections.identity(chip)
    ok_d, ok_n = ~dd, ~(nd | nn)
    return Corrections(pulse_steps=ident.pulse_steps, gain_exc=ident.gain_exc, gain_inh=ident.gain_inh,
                       offset_lsb=ident.offset_lsb, synapse_exc=ident.synapse_exc, synapse_inh=ident.synapse_inh,
                       driver_ok=ok_d, neuron_ok=ok_n,
                       faults=Faults(driver_dead=dd, neuron_dead=nd, neuron_noisy=nn, stuck_zero=sz),
                       chip_id=chip.chip_id, preset_name=chip.preset.name, preset_sha256=chip.preset.sha256)


def test_masked_elements_carry_nothing_and_results_stay_exact():
    chip = Chip(0, "noiseless")
    corr = _masked(chip)
    rng = np.random.default_rng(4)
    w = rng.integers(-63, 64, (100, 200))
    w[10, 11], w[12, 13] = 40, -40  # the masked signs are needed at the identity places
    x = rng.integers(0, 32, (50, 100))
    engine = Engine(chip, corr)
    y = engine.matmul(x, w)
    exact = np.clip(np.rint(G * (x @ w)), -128, 127)
    assert np.max(np.abs(y - exact)) <= 1  # float32 rounding ties only
    prog = chip.get_weights(0)
    assert not prog[3].any()  # the dead driver's row is unused
    assert not prog[:, 5].any() and not prog[:, 6].any()  # dead and noisy columns are unused
    assert prog[10, 11] <= 0 and prog[12, 13] >= 0  # the masked rows carry nothing
    t = engine.fault_report().total()
    assert t["dead_driver"]["met"] == 1 and t["dead_neuron"]["met"] == 1 and t["noisy_neuron"]["met"] == 1
    assert t["stuck_zero"]["met"] == 2 and engine.fault_report().lost == 0


def test_partner_rows_split_weights_that_one_row_cannot_carry():
    chip = Chip(0, "noiseless")
    ident = Corrections.identity(chip)
    sz, sm = np.zeros((2, 2, 128, 256), bool), np.zeros((2, 2, 128, 256), bool)
    sz[0, 0, 0, 0] = True  # excitatory row of driver 0 at column 0 passes nothing
    sm[0, 0, 1, 1] = True  # excitatory row of driver 1 at column 1 passes the full current
    corr = Corrections(pulse_steps=ident.pulse_steps, gain_exc=ident.gain_exc, gain_inh=ident.gain_inh,
                       offset_lsb=ident.offset_lsb, synapse_exc=ident.synapse_exc, synapse_inh=ident.synapse_inh,
                       faults=Faults(stuck_zero=sz, stuck_max=sm))
    hs = Hemisphere(corr, 0)
    assert (hs.lo[0, 0], hs.hi[0, 0]) == (-63, 0)  # stuck at zero: only the other sign is left
    assert (hs.lo[1, 1], hs.hi[1, 1]) == (0, 63)  # stuck at max, compensable down to 0 but not below
    w = np.zeros((2, 2), int)
    w[0, 0], w[1, 1] = 30, -40
    alone = program(hs, w, np.arange(2), np.arange(2), [], CorrectionOptions())
    assert alone["err"][0, 0] == 30 and alone["err"][1, 1] == 40 and alone["dropped"] == 1
    pair = program(hs, w, np.arange(2), np.arange(2), [(0, 100), (1, 101)], CorrectionOptions())
    np.testing.assert_array_equal(pair["rows"], [0, 1, 100, 101])
    np.testing.assert_array_equal(pair["src"], [0, 1, 0, 1])
    codes = pair["codes"]
    assert codes[0, 0] == 0 and codes[2, 0] == 30  # the partner carries the positive weight
    assert codes[1, 1] == -63 and codes[3, 1] == -40  # the stuck row is cancelled, the partner carries w
    assert pair["err"].max() < 0.5
    # place() finds such partners itself when the rows leave room and columns do not
    wide = np.zeros((2, 256), int)
    wide[0, :] = 30
    wide[1, :] = -40
    p = place(corr, 0, wide, CorrectionOptions())
    assert p.counts["stuck_zero"]["met"] == 1 and p.counts["stuck_zero"]["lost"] == 0
    assert p.counts["stuck_max"]["lost"] == 0


def test_fault_report_is_per_layer_and_serialisable(faulty):
    engine = Engine(Chip(CHIP, faulty["preset"], noise_seed=1), faulty["artifact"])
    rng = np.random.default_rng(5)
    for shape, name in (((100, 20), "conv"), ((500, 128), "fc1"), ((128, 10), None)):
        engine.matmul(rng.integers(0, 32, (8, shape[0])), rng.integers(-20, 21, shape), name=name)
    rep = engine.fault_report()
    assert [layer["name"] for layer in rep.layers] == ["conv", "fc1", "matrix 128x10"]
    assert rep.layers[1]["tiles"] == rep.layers[1]["placed_tiles"] == 4
    d = json.loads(json.dumps(rep.to_dict()))
    assert set(d["total"]) == set(KINDS) and d["lost"] == rep.lost
    assert isinstance(rep, FaultReport)
    with pytest.raises(InferValueError, match="name"):
        engine.matmul(np.zeros((1, 3), int), np.zeros((3, 2), int), name=3)


def test_uncalibrated_engines_report_nothing():
    engine = Engine(Chip(0, "harsh"))
    engine.matmul(np.ones((2, 10), int), np.ones((10, 3), int))
    assert engine.fault_report().layers == () and engine.fault_report().lost == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"spare_rows": -1}, "spare_rows"),
    ({"spare_rows": 121}, "spare_rows"),
    ({"spare_columns": "all"}, "spare_columns"),
    ({"spare_columns": 2.0}, "spare_columns"),
    ({"spare_rows": True}, "spare_rows"),
    ({"remap": "yes"}, "remap"),
    ({"spill": 1}, "spill"),
])
def test_bad_routing_options_are_refused(kwargs, message):
    with pytest.raises(InferValueError, match=message):
        CorrectionOptions(**kwargs)


def test_spare_rows_and_columns_shape_the_tiles():
    chip = Chip(0, "noiseless")
    engine = Engine(chip, Corrections.identity(chip), correction=CorrectionOptions(spare_rows=28, spare_columns=56))
    assert (engine.tile_rows, engine.tile_cols) == (100, 200)
    assert engine.plan(250, 300) == [(0, 100, 0, 200), (100, 200, 0, 200), (200, 250, 0, 200),
                                     (0, 100, 200, 300), (100, 200, 200, 300), (200, 250, 200, 300)]
    auto = Engine(Chip(0, "noiseless"), Corrections.identity(chip),
                  correction=CorrectionOptions(spare_rows="auto", spare_columns="auto"))
    assert (auto.tile_rows, auto.tile_cols) == (128, 256)  # nothing recorded: nothing to keep free
    rng = np.random.default_rng(0)
    x, w = rng.integers(0, 32, (5, 250)), rng.integers(-63, 64, (250, 300))
    # each tile of 100 rows is clipped before the digital sum, as on the real system
    tiles = [np.clip(np.rint(G * (x[:, r:r + 100] @ w[r:r + 100])), -128, 127) for r in (0, 100, 200)]
    exact = np.clip(sum(tiles), -128, 127)
    assert np.max(np.abs(engine.matmul(x, w) - exact)) <= 1  # float32 rounding ties only
