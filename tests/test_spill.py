"""Spill tiles: what routing cannot save on a full tile is run again as smaller tiles and combined digitally."""
import numpy as np
import pytest

from bss2_calib.chipsim import COLS, ROWS, Chip
from bss2_calib.infer import CorrectionOptions, Corrections, Engine
from bss2_calib.infer.corrections import Faults
from bss2_calib.infer.routing import place
from bss2_calib.infer.spill import spill_tiles

G = 0.002
ON, OFF = CorrectionOptions(), CorrectionOptions(spill=False)


def _column_rms(y, target, limit=70.0):
    """Every column's rms error over the targets within the linear range."""
    inside = np.abs(target) <= limit
    return np.sqrt(np.where(inside, (y - target) ** 2, 0).sum(axis=0) / inside.sum(axis=0))


def test_spill_is_on_by_default():
    assert CorrectionOptions().spill is True


def test_full_tiles_on_a_harsh_chip_leave_no_column_behind(calibrated_harsh):
    chip0, result = calibrated_harsh
    corr = Corrections.from_artifact(result)
    f = corr.faults
    assert f.driver_dead.reshape(2, ROWS).any(axis=1).all()  # both hemispheres: dead drivers, no free row
    # the read-out noise of one run, as the artifact measured it on the live neurons
    sigma = float(np.median(corr.noise_lsb[~(f.neuron_dead | f.neuron_noisy)]))
    assert sigma == pytest.approx(1.8, rel=0.1)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 32, (256, ROWS))
    w = rng.integers(-20, 21, (ROWS, 2 * COLS))  # two full tiles; num_sends 8 keeps the targets within +-70
    target = G * 8 * (x @ w)
    runs = {}
    for name, opts in (("off", OFF), ("on", ON)):
        engine = Engine(Chip(chip0.chip_id, "harsh", noise_seed=21), result, num_sends=8, correction=opts)
        runs[name] = (_column_rms(engine.matmul(x, w), target), engine)
    col_off, off = runs["off"]
    col, on = runs["on"]
    # without spill: weights on dead drivers and whole columns on dead or noisy neurons are lost
    assert col_off.max() > 5 * sigma and off.fault_report().lost > 0 and off.stats["spill_runs"] == 0
    # with spill: every column is read-out noise of at most two runs (sqrt(2) sigma) plus calibration
    # residuals; the criterion is 3x the floor (sigma)
    assert col.max() < 3 * sigma, (col.max(), sigma)
    # nearly every column adds a row spill's read-out to its tile's: about sqrt(2) sigma, not sigma
    assert 1.2 * sigma < np.median(col) < 1.8 * sigma, (np.median(col), sigma)
    rep = on.fault_report()
    t = rep.total()
    assert rep.lost == 0
    for kind in ("dead_driver", "dead_neuron", "noisy_neuron"):
        assert t[kind]["spilled"] == off.fault_report().total()[kind]["lost"] > 0, kind
    # the spill runs are counted: runs, tiles in the report, hardware time
    s = on.stats
    assert s["spill_runs"] == rep.layers[0]["spill_tiles"] > 0
    assert s["tile_runs"] == off.stats["tile_runs"] + s["spill_runs"]
    assert s["hw_time_s"] == pytest.approx(off.stats["hw_time_s"] + s["spill_hw_time_s"], rel=1e-6)
    assert "spill tiles" in str(rep) and "spilled" in str(rep)


def _claimed(chip, dead_driver, dead, noisy, weak):
    """Identity tables of a healthy noiseless chip whose artifact claims faults and a weak neuron (gain 0.3)."""
    ident = Corrections.identity(chip)
    dd, nd, nn = np.zeros(256, bool), np.zeros(512, bool), np.zeros(512, bool)
    dd[dead_driver], nd[dead], nn[noisy] = True, True, True
    gain = ident.gain_exc.copy()
    gain[weak] = 0.3
    return Corrections(pulse_steps=ident.pulse_steps, gain_exc=gain, gain_inh=gain.copy(),
                       offset_lsb=ident.offset_lsb, synapse_exc=ident.synapse_exc, synapse_inh=ident.synapse_inh,
                       driver_ok=~dd, neuron_ok=~(nd | nn),
                       faults=Faults(driver_dead=dd, neuron_dead=nd, neuron_noisy=nn),
                       chip_id=chip.chip_id, preset_name=chip.preset.name, preset_sha256=chip.preset.sha256)


def test_nothing_changes_where_nothing_is_lost(calibrated_default):
    """No recorded fault, or faults with room to route around them: spill on == off, bit for bit, same runs."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 32, (64, 300))
    w = rng.integers(-20, 21, (300, 300))
    w[:, 7] = 63  # the claimed weak column's weights are out of its reach: routed away where there is room
    noiseless = Chip(0, "noiseless")
    cases = [("default", calibrated_default[1], x, w),  # nothing recorded
             ("noiseless", _claimed(noiseless, 3, 5, 6, 7), x[:, :100], w[:100, :200])]  # faults, and room
    for preset, artifact, xc, wc in cases:
        out = {}
        for spill in (False, True):
            engine = Engine(Chip(0, preset, noise_seed=5), artifact, num_sends=4,
                            correction=CorrectionOptions(spill=spill))
            out[spill] = engine.matmul(xc, wc), engine.stats, engine.fault_report()
        np.testing.assert_array_equal(out[True][0], out[False][0])
        assert out[True][1] == out[False][1] and out[True][1]["spill_runs"] == 0, preset
        assert out[False][2].lost == 0 and all(c["spilled"] == 0 for c in out[True][2].total().values())
    assert sum(c["met"] for c in out[True][2].total().values()) == 4  # the claimed faults were met


def test_spilled_columns_replace_the_tiles_output_and_lost_rows_add():
    """On a noiseless chip every result is exact once what the artifact calls lost is run again."""
    dead_driver, dead, noisy, weak = 3, 5, 6, 7
    rng = np.random.default_rng(6)
    x = rng.integers(0, 32, (40, ROWS))
    w = rng.integers(-63, 64, (ROWS, COLS))  # one full tile: no room to route
    w[:, weak] = 40 * rng.choice([-1, 1], ROWS)  # beyond the weak column's reach (63 x 0.3)
    exact = np.clip(np.rint(G * (x @ w)), -128, 127)
    y = {}
    for spill in (False, True):
        chip = Chip(0, "noiseless")
        corr = _claimed(chip, dead_driver, dead, noisy, weak)
        assert corr.neuron_weak[weak]
        engine = Engine(chip, corr, correction=CorrectionOptions(spill=spill))
        y[spill] = engine.matmul(x, w)
        t = engine.fault_report().total()
        if spill:
            assert engine.stats["spill_runs"] >= 1 and engine.fault_report().lost == 0
            assert [t[k]["spilled"] for k in ("dead_driver", "dead_neuron", "noisy_neuron", "weak_neuron")] == [1] * 4
    off, on = y[False], y[True]
    assert np.all(off[:, dead] == 0)  # without spill: the dead column reads 0...
    assert np.max(np.abs(off[:, weak] - exact[:, weak])) > 10  # ...the weak one misses (clipped codes)...
    others = np.setdiff1d(np.arange(COLS), [dead, noisy, weak])
    i = int(np.flatnonzero(place(corr, 0, w, OFF).rows == dead_driver)[0])  # the logical row routing put there
    without_i = np.clip(np.rint(G * (x @ np.where(np.arange(ROWS)[:, None] == i, 0, w))), -128, 127)
    assert np.max(np.abs(off[:, others] - without_i[:, others])) <= 1  # ...and that row's input is missing
    # with spill: exact everywhere but for the rounding of two read-outs (each within 1 LSB of its part, as a
    # single tile is, float32 ties included); the noisy column (healthy here) is replaced, not doubled
    assert np.max(np.abs(on - G * (x @ w))) < 2
    assert np.abs(exact[:, noisy]).mean() > 5


def test_spill_tiles_carry_every_lost_weight_once_and_leave_room():
    rng = np.random.default_rng(7)
    wa = rng.integers(-63, 64, (300, 600))
    tile = (128, 256, 256, 512)  # a full tile of wa
    lost_rows, lost_cols = np.array([3, 60, 100]), np.array([5, 6, 200])
    residual = rng.integers(-63, 64, (3, 256))
    residual[:, lost_cols] = 0  # (the placement leaves the lost columns to the column spill)
    residual[:, 10:30] = 0  # nothing missed there
    room = (125, 250)  # the worst hemisphere has 3 dead drivers and 6 dead, noisy or weak neurons
    jobs = spill_tiles(wa, tile, ("spill", 1), lost_rows, residual, lost_cols, room)
    assert len(jobs) == 2  # the 128 rows in two halves, each also carrying half of the residual's columns
    total = np.zeros((128, 256), dtype=np.int64)
    for tid, rows, cols, w in jobs:
        assert tid[:2] == ("spill", 1) and w.shape == (rows.size, cols.size)
        assert rows.size <= room[0] and cols.size <= room[1]
        np.add.at(total, np.ix_(rows - 128, cols - 256), w)
    expected = np.zeros((128, 256), dtype=np.int64)
    expected[:, lost_cols] = wa[128:256, 256 + lost_cols]
    expected[lost_rows] += residual
    np.testing.assert_array_equal(total, expected)


def test_many_lost_rows_and_columns_spill_in_blocks_and_stay_exact():
    """More dead drivers and neurons than half a spill tile's room: the spill is cut into blocks, still exact."""
    rng = np.random.default_rng(8)
    dd, dn = rng.choice(ROWS, 70, replace=False), rng.choice(COLS, 140, replace=False)
    x = rng.integers(0, 32, (40, ROWS))
    w = rng.integers(-20, 21, (ROWS, COLS))
    chip = Chip(0, "noiseless")
    ident = Corrections.identity(chip)
    dead_d, dead_n = np.zeros(2 * ROWS, bool), np.zeros(2 * COLS, bool)
    dead_d[np.r_[dd, dd + ROWS]], dead_n[np.r_[dn, dn + COLS]] = True, True  # the same on both hemispheres
    corr = Corrections(pulse_steps=ident.pulse_steps, gain_exc=ident.gain_exc, gain_inh=ident.gain_inh,
                       offset_lsb=ident.offset_lsb, synapse_exc=ident.synapse_exc, synapse_inh=ident.synapse_inh,
                       driver_ok=~dead_d, neuron_ok=~dead_n, faults=Faults(driver_dead=dead_d, neuron_dead=dead_n),
                       chip_id=chip.chip_id, preset_name=chip.preset.name, preset_sha256=chip.preset.sha256)
    engine = Engine(chip, corr)
    y = engine.matmul(x, w)
    # a noiseless chip reads each part within 1 LSB; a column is the sum of up to three parts here
    assert np.max(np.abs(y - G * (x @ w))) < 3
    assert engine.stats["spill_runs"] > 2 and engine.fault_report().lost == 0


def test_row_spills_carry_their_residual_at_the_columns_scale(calibrated_harsh):
    """Full-range weights on a harsh chip: columns whose headroom scale is below 1 must get their residual as
    a weight at that scale (a residual in raw steps would miss by the scale's factor)."""
    chip0, result = calibrated_harsh
    rng = np.random.default_rng(9)
    x = rng.integers(0, 32, (256, ROWS))
    w = rng.integers(-63, 64, (ROWS, COLS))
    engine = Engine(Chip(chip0.chip_id, "harsh", noise_seed=22), result, num_sends=1)
    col = _column_rms(engine.matmul(x, w), G * (x @ w))
    sigma = float(np.median(engine.corrections[0].noise_lsb))
    assert engine.stats["spill_runs"] > 0 and engine.fault_report().lost == 0
    assert col.max() < 3 * sigma, (col.max(), sigma)


def test_the_fault_report_counts_the_spill_tiles_of_the_last_placement():
    """After calls with other weights in between, the report counts the spill tiles the last call ran, once."""
    rng = np.random.default_rng(10)
    x = rng.integers(0, 32, (16, 300))
    w, w2 = rng.integers(-20, 21, (300, 700)), rng.integers(-20, 21, (300, 700))
    chips = [Chip(0, "noiseless"), Chip(1, "noiseless")]
    arts = [_claimed(chips[0], [3, 50, 130], [5, 260, 300], [6], []),
            _claimed(chips[1], [1, 2, 200], [10, 11, 270], [12, 280], [])]  # lists: several of each kind
    engine = Engine(chips, arts, max_batch=7)
    for wc in (w, w2, w, w2, w):
        runs = engine.stats["spill_runs"]
        y = engine.matmul(x, wc)
        assert np.max(np.abs(y - G * (x @ wc))) < 3
    layer = [entry for entry in engine.fault_report().layers if entry["shape"] == (300, 700)][0]
    assert layer["spill_tiles"] == engine.stats["spill_runs"] - runs > 0


def test_a_residual_beyond_one_weight_stays_counted_as_lost():
    """A stuck-at-max synapse on a column scaled down to 0.2: the 6-bit spill weight can carry only part of
    what it misses, so the element stays lost (it is not called spilled)."""
    chip = Chip(0, "noiseless")
    ident = Corrections.identity(chip)
    stuck = np.zeros((2, 2, ROWS, COLS), bool)
    stuck[0, 0, 10, 20] = True  # row 10's excitatory synapse on column 20 passes full current
    syn_e, syn_i = ident.synapse_exc.copy(), ident.synapse_inh.copy()
    syn_e[0, :, 20] *= 0.2
    syn_i[0, :, 20] *= 0.2  # column 20's synapses are weak: its headroom scale falls to about 0.2
    syn_e[0, 10, 20] = ident.synapse_exc[0, 10, 20]
    dead = np.zeros(2 * ROWS, bool)
    dead[3] = True  # a dead driver: the full tile spills, and the stuck synapse's miss rides along
    corr = Corrections(pulse_steps=ident.pulse_steps, gain_exc=ident.gain_exc, gain_inh=ident.gain_inh,
                       offset_lsb=ident.offset_lsb, synapse_exc=syn_e, synapse_inh=syn_i, driver_ok=~dead,
                       neuron_ok=np.ones(2 * COLS, bool), faults=Faults(driver_dead=dead, stuck_max=stuck),
                       chip_id=chip.chip_id, preset_name=chip.preset.name, preset_sha256=chip.preset.sha256)
    w = np.random.default_rng(11).integers(-20, 21, (ROWS, COLS))
    w[:, 20], w[10, 20] = -40, 0
    p = place(corr, 0, w, CorrectionOptions(remap=False))
    col = int(np.flatnonzero(p.cols == 20)[0])
    row = int(np.flatnonzero(p.spill_rows == p.src[np.flatnonzero(p.rows == 10)[0]])[0])
    assert p.spill_weights[row, col] == -63  # the miss is beyond 63 steps at the column's scale
    assert p.counts["stuck_max"]["lost"] == 1 and p.counts["stuck_max"]["spilled"] == 0
    assert p.counts["dead_driver"]["spilled"] == 1 and p.counts["dead_driver"]["lost"] == 0


def test_spill_tiles_are_routed_even_without_remap():
    """remap=False places the tiles in place; their spill tiles, placed in place too, would start on the same
    dead drivers and neurons (rows and columns 0, 1) and lose them again."""
    rng = np.random.default_rng(12)
    x = rng.integers(0, 32, (40, ROWS))
    w = rng.integers(-20, 21, (ROWS, COLS))
    chip = Chip(0, "noiseless")
    engine = Engine(chip, _claimed(chip, [0, 1, 3], [0, 5], [1], []), correction=CorrectionOptions(remap=False))
    y = engine.matmul(x, w)
    assert engine.stats["spill_runs"] > 0 and engine.fault_report().lost == 0
    assert np.max(np.abs(y - G * (x @ w))) < 3
