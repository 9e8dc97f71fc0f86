"""Characterization: measurements against the simulator's truth, fault detection, artifacts.

The characterization itself runs on a proxy that exposes only the chip's
observable interface; the tests score it with the truth of the chip behind it.
"""
import json

import numpy as np
import pandas as pd
import pytest

from bss2_calib.chipsim import Chip
from bss2_calib.calib.characterize import TABLES, CharacterizeOptions, characterize, quality
from bss2_calib.calib.characterize import analysis, probes
from bss2_calib.calib.characterize.io import load
from bss2_calib.calib.characterize.result import SUMMARY_SPEC, state_tables, table_stat
from bss2_calib.calib.config import CalibWarning
from bss2_calib.calib.errors import ArtifactCorrupt, ArtifactExists, ArtifactVersionError, CalibValueError

OBSERVABLE = {"chip_id", "preset", "get_knob", "knob_values", "set_knob", "set_knobs", "set_weights", "get_weights",
              "run", "vmm", "read_baseline", "read_cadc_reference", "temperature_c", "hw_time_s", "counters"}


class ObservableChip:
    """Only what real hardware offers; anything else (truth, internals, advance) raises."""

    def __init__(self, chip):
        object.__setattr__(self, "_chip", chip)

    def __getattr__(self, name):
        if name not in OBSERVABLE:
            raise AttributeError(f"characterization touched {name!r}, which is not observable")
        return getattr(object.__getattribute__(self, "_chip"), name)

    def __setattr__(self, name, value):
        raise AttributeError(f"characterization tried to set {name!r} on the chip")


def _observable(chip_id, preset, seed):
    chip = Chip(chip_id, preset, noise_seed=seed)
    return chip, ObservableChip(chip)


@pytest.fixture(scope="module")
def harsh():
    chip, obs = _observable(0, "harsh", 1)
    return chip, characterize(obs)


@pytest.fixture(scope="module")
def default():
    chip, obs = _observable(0, "default", 2)
    return chip, characterize(obs)


def _u(res, table):
    return res.tables[table].xs("uncalibrated", level="state")


# ------------------------------------------------------------------ options
@pytest.mark.parametrize("kw", [dict(transfer_levels=4), dict(map_repeats=0), dict(z_threshold=2.0),
                                dict(rows=(0, 0)), dict(rows=(128,)), dict(rows=()), dict(probe_target_lsb=float("nan")),
                                dict(wait_between_events=True), dict(max_num_sends=1.5)])
def test_options_refuse_bad_values(kw):
    with pytest.raises(CalibValueError):
        CharacterizeOptions(**kw)


def test_options_normalise_rows_and_warn_on_low_threshold():
    assert CharacterizeOptions(rows=[5, 1, 64]).rows == (1, 5, 64)
    with pytest.warns(CalibWarning, match="false alarms"):
        CharacterizeOptions(z_threshold=4.0)


def test_characterize_refuses_other_option_types():
    with pytest.raises(TypeError):
        characterize(Chip(0), {"rows": (0,)})


# --------------------------------------------------------- observable only
def test_runs_on_a_chip_whose_truth_is_locked():
    chip = Chip(3, "default", noise_seed=0, truth_access=False)
    res = characterize(ObservableChip(chip), CharacterizeOptions(rows=(0, 127), transfer_levels=16))
    assert set(res.tables) == set(TABLES)
    assert res.manifest["chip_id"] == 3 and res.states == ["uncalibrated"]
    assert res.manifest["hw_time_s"] > 0 and res.manifest["steps"]


def test_probes_send_only_legal_inputs():
    x = np.stack([probes.fill_activation(t) for t in probes.transfer_levels(128)])
    assert x.min() == 0 and x.max() == 31
    assert np.array_equal(x.sum(axis=1), probes.transfer_levels(128))
    assert (x < 31).sum(axis=1).max() <= 128 and ((x > 0) & (x < 31)).sum(axis=1).max() <= 1


# ------------------------------------------------------------- faults
def _score(chip, res, state="uncalibrated"):
    """Recall and false alarms per fault kind against the truth (synapses on dead drivers/neurons excluded)."""
    f = chip.truth.faults()
    fl = res.tables["faults"]
    fl = fl.xs(state, level="state") if len(fl) else fl
    n_elem = {"dead_neuron": 512, "noisy_neuron": 512, "dead_driver": 256,
              "stuck_zero_synapse": 2 * 2 * 128 * 256, "stuck_max_synapse": 2 * 2 * 128 * 256}
    truth = {"dead_neuron": set(np.flatnonzero(f["dead_neuron"])),
             "noisy_neuron": set(np.flatnonzero(f["noisy_neuron"])),
             "dead_driver": set(np.flatnonzero(f["dead_driver"]))}
    for kind, key in (("stuck_zero_synapse", "stuck_zero"), ("stuck_max_synapse", "stuck_max")):
        truth[kind] = {(int(h), "exc" if s == 0 else "inh", int(r), int(j)) for h, s, r, j in zip(*np.nonzero(f[key]))
                       if not f["dead_driver"][128 * h + r] and not f["dead_neuron"][256 * h + j]}
    out = {}
    for kind in n_elem:
        sub = fl[fl["kind"] == kind] if len(fl) else fl
        if kind.endswith("neuron"):
            found = set(sub["neuron"].astype(int)) if len(sub) else set()
        elif kind == "dead_driver":
            found = set(sub["driver"].astype(int)) if len(sub) else set()
        else:
            found = set(zip(sub["hemisphere"].astype(int), sub["sign"], sub["row"].astype(int),
                            sub["column"].astype(int))) if len(sub) else set()
        tp = len(found & truth[kind])
        out[kind] = {"truth": len(truth[kind]), "found": len(found), "recall": tp / max(len(truth[kind]), 1),
                     "false_alarms": len(found - truth[kind]), "fa_rate": len(found - truth[kind]) / n_elem[kind]}
    return out


def test_finds_the_faults_injected_into_a_harsh_chip(harsh):
    chip, res = harsh
    score = _score(chip, res)
    assert all(s["truth"] > 0 for s in score.values())  # the chip has every kind of fault
    for kind in ("dead_neuron", "noisy_neuron", "dead_driver"):
        assert score[kind]["recall"] == 1.0 and score[kind]["false_alarms"] == 0, (kind, score[kind])
    for kind in ("stuck_zero_synapse", "stuck_max_synapse"):
        assert score[kind]["recall"] >= 0.98, (kind, score[kind])
        assert score[kind]["fa_rate"] <= 1e-4, (kind, score[kind])


def test_every_fault_comes_with_its_evidence(harsh):
    _, res = harsh
    fl = _u(res, "faults")
    z = res.manifest["options"]["z_threshold"]
    assert len(fl) > 100
    assert fl[["measured", "expected", "threshold", "z_score"]].notna().all().all()
    assert (fl["z_score"].abs() >= z).all()
    assert fl["evidence"].str.len().min() > 20 and fl["unit"].notna().all()
    low = fl[fl["kind"].isin(["stuck_zero_synapse", "dead_neuron", "dead_driver"])]
    assert (low["measured"] < low["threshold"]).all() and (low["measured"] < low["expected"]).all()
    high = fl[fl["kind"].isin(["stuck_max_synapse", "noisy_neuron"])]
    assert (high["measured"] > high["threshold"]).all()
    cs = _u(res, "column_summary")
    assert set(cs.index[cs["dead"]]) == set(fl.loc[fl["kind"] == "dead_neuron", "neuron"].astype(int))
    sg = _u(res, "synapse_gain")
    n_stuck = int(sg[["stuck_zero_exc", "stuck_zero_inh", "stuck_max_exc", "stuck_max_inh"]].to_numpy().sum())
    assert n_stuck == int(fl["kind"].isin(["stuck_zero_synapse", "stuck_max_synapse"]).sum())


def test_a_chip_without_faults_shows_none(default):
    chip, res = default
    assert not any(v.any() for v in chip.truth.faults().values())
    assert len(res.tables["faults"]) == 0
    cs = _u(res, "column_summary")
    assert cs["success"].all() and _u(res, "driver_summary")["success"].all()


# ------------------------------------------------------------ against the truth
def test_gain_map_agrees_with_the_truth_within_the_noise(harsh):
    chip, res = harsh
    n = res.manifest["conditions"]["num_sends_probe"]["uncalibrated"]
    sg = _u(res, "synapse_gain")
    for h in (0, 1):
        sub = sg.xs(h, level="hemisphere")
        truth = chip.truth.synapse_gain(h, num_sends=n)
        pulse31 = chip.truth.pulse_table(h)[:, 31:32] / 31
        for k, sign in enumerate(("exc", "inh")):
            ok = sub["success"].to_numpy().reshape(128, 256)
            meas = sub[f"gain_{sign}_lsb_per_unit"].to_numpy(float).reshape(128, 256)[ok]
            sem = sub[f"gain_{sign}_sem"].to_numpy(float).reshape(128, 256)[ok]
            true = (truth[k] * pulse31)[ok]
            ratio = meas / true
            noise = np.sqrt(np.mean((sem / true) ** 2))
            assert abs(np.median(ratio) - 1) < 0.005, (h, sign)
            assert ratio.std() < 1.3 * noise, (h, sign, ratio.std(), noise)


def test_synapse_deviation_map_recovers_the_synapse_mismatch(harsh):
    chip, res = harsh
    d1 = chip.truth.params()["synapse_d1"]
    sg = _u(res, "synapse_gain")
    for h in (0, 1):
        sub = sg.xs(h, level="hemisphere")
        ok = sub["success"].to_numpy().reshape(128, 256)
        rel = sub["rel_exc"].to_numpy(float).reshape(128, 256)[ok]
        true = 1 + d1[h, 0][ok]
        assert np.corrcoef(rel, true)[0, 1] > 0.95
        assert abs(rel.std() / true.std() - 1) < 0.1


def test_transfer_curves_agree_with_the_truth(default):
    chip, res = default
    tr = _u(res, "column_transfer")
    cs = _u(res, "column_summary")
    s = tr.index.get_level_values("sum_xw").unique().to_numpy()
    x = np.stack([probes.fill_activation(abs(v) // 63) for v in s])
    reps = res.manifest["options"]["transfer_repeats"]
    for h in (0, 1):
        exp = np.empty((len(s), 256))
        for sign in (1, -1):
            chip.set_weights(np.full((128, 256), 63 * sign), h)
            e = chip.truth.expected(x, h)
            sel = (s > 0) if sign > 0 else (s < 0)
            exp[sel] = e[sel]
            if sign > 0:
                exp[s == 0] = e[s == 0]
        meas = tr["output_mean_lsb"].to_numpy().reshape(512, len(s))[256 * h:256 * (h + 1)].T
        inside = (exp > -80) & (exp < 95)
        err = (meas - exp)[inside]
        assert np.abs(err).max() < 6 * 1.8 / np.sqrt(reps) + 0.3
        # the fitted gains and linear ranges are those of the noise-free curve, within the noise
        off = cs["offset_lsb"].to_numpy()[256 * h:256 * (h + 1)]
        fit_true = analysis.fit_transfer(s, exp, exp[s == 0][0])
        for key in ("gain_exc", "gain_inh"):
            g = cs[f"{key}_lsb_per_unit"].to_numpy()[256 * h:256 * (h + 1)]
            sem = cs[f"{key}_sem"].to_numpy()[256 * h:256 * (h + 1)]
            # the measured offset (256 zero-input reads) sets the line's anchor: its error tilts the slope
            slack = 3 * 1.8 / np.sqrt(res.manifest["options"]["zero_repeats"]) / 40 * fit_true[key]
            assert (np.abs(g - fit_true[key]) < 5 * sem + slack + 0.002 * fit_true[key]).all(), key
            assert np.isfinite(off).all()
        width_true = fit_true["linear_hi_lsb"] - fit_true["linear_lo_lsb"]
        width = (cs["linear_hi_lsb"] - cs["linear_lo_lsb"]).to_numpy()[256 * h:256 * (h + 1)]
        assert np.median(np.abs(width - width_true)) < 10


def test_linear_range_saturation_and_noise_follow_the_published_chip(default):
    _, res = default
    q = res.manifest["quality"]["uncalibrated"]
    assert 0.0017 < q["gain_exc_median_lsb_per_unit"] < 0.0022  # 0.002 less ~4 % leak and timing
    assert 0.08 < q["gain_exc_spread_rel"] < 0.25  # uncalibrated: 10-20 % per column
    assert 70 < q["linear_hi_median_lsb"] < 120 and -100 < q["linear_lo_median_lsb"] < -60
    assert q["sat_hi_median_lsb"] > 120  # positive outputs clip at +127 ...
    assert -125 < q["sat_lo_median_lsb"] < -95  # ... negative ones level off earlier (baseline near 120)
    assert 1.75 < q["noise_median_lsb"] < 1.9  # 1.8 LSB plus rounding
    nl = _u(res, "noise_level")
    levels = nl.index.to_numpy()
    central = nl["noise_median_lsb"][(levels > -60) & (levels < 60)]
    assert central.between(1.6, 2.0).all()
    assert nl["noise_median_lsb"][levels > 120].max() < 1.0  # clipped outputs do not fluctuate


def test_driver_curves_have_the_truths_shape(harsh):
    chip, res = harsh
    da = _u(res, "driver_activation")
    ds = _u(res, "driver_summary")
    for h in (0, 1):
        pt = chip.truth.pulse_table(h)
        drivers = np.arange(128 * h, 128 * (h + 1))
        dead = ds.loc[drivers, "dead"].to_numpy()
        pulse = da.loc[drivers, "pulse_steps"].to_numpy().reshape(128, 32)
        shape = pulse[~dead] / pulse[~dead, 31:32]
        true = pt[~dead] / pt[~dead, 31:32]
        assert np.abs(shape - true).max() < 0.03
        assert np.abs(pulse[dead]).max() < 0.5 if dead.any() else True
        off = ds.loc[drivers[~dead], "offset_steps"].to_numpy()
        true_off = chip.truth.state()["driver_offset"][drivers[~dead]]
        assert np.corrcoef(off, true_off)[0, 1] > 0.95


def test_quality_and_summary_spec_agree(harsh):
    _, res = harsh
    st = state_tables(res.tables, "uncalibrated")
    q = quality(res.tables)["uncalibrated"]
    for key, _, table, col, stat, subset, _ in SUMMARY_SPEC:
        assert q[key] == table_stat(st[table], col, stat, subset)
    cs = st["column_summary"]
    assert q["gain_exc_median_lsb_per_unit"] == cs.loc[cs["success"], "gain_exc_lsb_per_unit"].median()
    assert q["faults_dead_driver"] == int((st["faults"]["kind"] == "dead_driver").sum())


def test_full_characterization_is_fast(harsh):
    chip, res = harsh
    # simulated hardware time, from the chip's own clock (never the host's wall time)
    assert 0.1 < res.manifest["hw_time_s"] < 5
    assert res.manifest["hw_time_s"] <= chip.hw_time_s


# ------------------------------------------------------------ artifacts
def test_save_load_round_trip_is_exact(harsh, tmp_path):
    _, res = harsh
    path = res.save(tmp_path / "char")
    again = load(path)
    assert again.manifest["kind"] == "bss2-calib/characterization"
    assert set(again.manifest["files"]) == {f"{t}.parquet" for t in TABLES}
    for name in TABLES:
        pd.testing.assert_frame_equal(res.tables[name], again.tables[name])
    assert again.manifest["quality"] == json.loads(json.dumps(res.manifest["quality"]))
    with pytest.raises(ArtifactExists):
        res.save(path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    chip, obs = _observable(5, "default", 0)
    res = characterize(obs, CharacterizeOptions(rows=(0, 64), transfer_levels=16, transfer_repeats=4,
                                                zero_repeats=32, map_repeats=4, stuck_repeats=4))
    return res.save(tmp_path_factory.mktemp("c") / "char")


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_load_refuses_tampered_truncated_and_foreign_artifacts(saved, tmp_path):
    p = _copy(saved, tmp_path / "a")
    f = p / "faults.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorrupt, match="checksum"):
        load(p)
    p = _copy(saved, tmp_path / "b")
    (p / "column_summary.parquet").write_bytes((p / "column_summary.parquet").read_bytes()[:100])
    with pytest.raises(ArtifactCorrupt, match="bytes"):
        load(p)
    for field, value, err in (("kind", "bss2-calib/calibration", ArtifactVersionError),
                              ("schema_version", 99, ArtifactVersionError)):
        p = _copy(saved, tmp_path / f"k-{field}")
        m = json.loads((p / "manifest.json").read_text())
        m[field] = value
        (p / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(err):
            load(p)
    p = _copy(saved, tmp_path / "outside")
    m = json.loads((p / "manifest.json").read_text())
    m["files"]["../evil.parquet"] = m["files"].pop("faults.parquet")
    (p / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactCorrupt, match="outside"):
        load(p)
    with pytest.raises(ArtifactCorrupt):
        load(tmp_path / "nothing-here")


# ------------------------------------------------------- with an artifact
class FakeCalibration:
    """A calibration made from a characterization: per-neuron offset and gain, knobs unchanged."""

    def __init__(self, res, chip_id):
        cs = _u(res, "column_summary")
        nc = pd.DataFrame({"gain_exc": cs["gain_exc_lsb_per_unit"] / 0.002, "gain_inh": cs["gain_inh_lsb_per_unit"]
                           / 0.002, "offset_lsb": cs["offset_lsb"], "success": cs["success"]})
        self.tables = {"neuron_correction": nc}
        self.manifest = {"kind": "bss2-calib/calibration", "chip_id": chip_id, "created_utc": "2026-01-01T00:00:00Z",
                         "target": {"gain_lsb_per_unit": 0.002},
                         "conditions": {"wait_between_events": 5, "num_sends_min": 1, "num_sends_max": 12,
                                        "num_sends_ref": 1, "send_decay_per_send": 0.0}}
        self.applied = []

    def apply_to(self, chip):
        self.applied.append(chip)


def test_with_an_artifact_both_states_are_measured_and_corrected(default):
    chip0, res0 = default
    fake = FakeCalibration(res0, 0)
    chip, obs = _observable(0, "default", 7)
    opts = CharacterizeOptions(rows=tuple(range(0, 128, 16)))
    res = characterize(obs, opts, artifact=fake, artifact_path="fake/path")
    assert fake.applied == [obs]
    assert res.states == ["uncalibrated", "calibrated"]
    assert res.manifest["states"][1]["artifact"]["path"] == "fake/path"
    assert max(res.manifest["conditions"]["num_sends_probe"].values()) <= 12
    tr = res.tables["column_transfer"]
    assert tr.xs("uncalibrated", level="state")["corrected_lsb"].isna().all()
    cal = tr.xs("calibrated", level="state")
    s = cal.index.get_level_values("sum_xw").to_numpy(float)
    ideal = 0.002 * s
    inside = np.abs(ideal) < 60
    raw = (cal["output_mean_lsb"].to_numpy() - ideal)[inside]
    corr = (cal["corrected_lsb"].to_numpy() - ideal)[inside]
    corr = corr[np.isfinite(corr)]
    assert np.sqrt(np.mean(corr ** 2)) < 1.0 < np.sqrt(np.mean(raw ** 2)) / 3


def test_a_real_calibration_narrows_the_gain_spread(calibrated_default):
    from bss2_calib import calib

    art = calibrated_default[1]  # calibrated once per session
    chip, obs = _observable(art.chip_id, "default", 4)
    res = characterize(obs, CharacterizeOptions(rows=tuple(range(0, 128, 8))), artifact=art)
    q = res.manifest["quality"]
    assert q["calibrated"]["gain_exc_spread_rel"] < q["uncalibrated"]["gain_exc_spread_rel"] / 2
    assert q["calibrated"]["driver_offset_spread_steps"] < q["uncalibrated"]["driver_offset_spread_steps"] / 2
    with pytest.raises(calib.IncompatibleArtifact, match="chip_id"):
        characterize(Chip(2, "default", noise_seed=0), CharacterizeOptions(measure_uncalibrated=False),
                     artifact=art)


# ------------------------------------------------------------------ CLI
def test_cli_characterize_writes_an_artifact_and_prints_json(tmp_path):
    from click.testing import CliRunner

    from bss2_calib.cli.main import main

    out = tmp_path / "char"
    r = CliRunner().invoke(main, ["characterize", "--chip", "4", "--preset", "harsh", "--quick", "--seed", "1",
                                  "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["path"] == str(out) and info["states"] == ["uncalibrated"]
    q = info["quality"]["uncalibrated"]
    assert q["faults_dead_neuron"] + q["faults_noisy_neuron"] > 0 and q["drivers"] == 2 * 16
    again = load(out)
    assert again.manifest["chip_id"] == 4 and again.manifest["preset"]["name"] == "harsh"
    assert "characterize: uncalibrated: transfer curves" in r.stderr  # progress on stderr
    # text output, and never over an existing artifact
    r = CliRunner().invoke(main, ["characterize", "--chip", "4", "--quick", "--out", str(out)])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "exists" in r.output
    r = CliRunner().invoke(main, ["-q", "characterize", "--rows", "0:128:32", "--out", str(tmp_path / "t")])
    assert r.exit_code == 0 and "faults" in r.stdout and not r.stderr
    assert len(load(tmp_path / "t").tables["driver_summary"]) == 8


@pytest.mark.parametrize("args, code, text", [
    (["--rows", "a:b"], 2, "START:STOP"), (["--rows", "0,200"], 1, "rows"), (["--preset", "nope"], 1, "preset"),
    (["--z-threshold", "1"], 2, "z-threshold"), (["--chip", "-1"], 2, "chip")])
def test_cli_characterize_refuses_bad_input_in_one_line(tmp_path, args, code, text):
    from click.testing import CliRunner

    from bss2_calib.cli.main import main

    r = CliRunner().invoke(main, ["characterize", "--out", str(tmp_path / "x"), *args])
    assert r.exit_code == code, r.output
    assert text in r.output
    if code == 1:
        assert r.output.count("\n") == 1 and r.output.startswith("Error:")
    assert not (tmp_path / "x").exists()


def test_cli_characterize_with_a_calibration_artifact(tmp_path, default_store):
    from click.testing import CliRunner

    from bss2_calib.cli.main import main

    art = default_store.latest(0)  # chip 0, calibrated once per session
    r = CliRunner().invoke(main, ["characterize", "--chip", "0", "--quick", "--artifact", "chip-0", "--store",
                                  str(default_store.root), "--out", str(tmp_path / "c"), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["states"] == ["uncalibrated", "calibrated"]
    assert info["quality"]["calibrated"]["gain_exc_spread_rel"] < info["quality"]["uncalibrated"]["gain_exc_spread_rel"]
    r = CliRunner().invoke(main, ["characterize", "--chip", "7", "--quick", "--artifact", str(art),
                                  "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "chip_id" in r.output and r.output.count("\n") == 1
