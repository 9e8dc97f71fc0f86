"""The runtime-overhead analysis: infer.profile and ``bss2-calib profile``."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from bss2_calib.chipsim import Chip
from bss2_calib.chipsim.chip import CADC_READ_S, VECTOR_FIXED_S, WEIGHT_WRITE_S
from bss2_calib.cli.main import main
from bss2_calib.infer import Corrections, Engine
from bss2_calib.infer import profile as prof


@pytest.fixture
def needs_mnist():
    """Skip unless the MNIST files and the shipped model are installed."""
    try:
        prof.get_workload("mnist", batch_size=1)
    except prof.ProfileUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture
def tiny(monkeypatch):
    """A known one-layer workload: 3 vectors, every input non-zero, a 200 x 300 matrix (4 tiles, 2 rounds)."""
    x = np.full((3, 200), 7)
    w = np.ones((200, 300), dtype=int)

    def factory(batch_size, train):
        return prof.Workload("tiny", ("dense",), x[:batch_size], np.zeros(batch_size, int),
                             lambda engine, xs: engine.matmul(xs, w))

    monkeypatch.setitem(prof.WORKLOADS, "tiny", factory)
    return x, w


def test_engine_stage_counters_add_up_within_the_call():
    engine = Engine(Chip(0, "noiseless"))
    engine.matmul(np.full((5, 300), 3), np.ones((300, 40), dtype=int))
    h = engine.host_time
    assert h["simulation"] > 0 and h["partition"] > 0 and h["corrections"] > 0
    assert h["partition"] + h["corrections"] + h["simulation"] <= h["matmul"]


@pytest.mark.parametrize("calibrated", [False, True])
def test_a_known_workload_costs_the_analytic_time_and_every_chip_second_is_attributed(tiny, calibrated):
    chips = []

    def factory():
        chips.append(Chip(1, "noiseless"))
        corr = Corrections.identity(chips[-1]) if calibrated else None
        return Engine(chips[-1], corr, num_sends=2, wait_between_events=3)

    p = prof.profile(factory, "tiny", batch_size=3, warmup=1)
    dense, output = p.rows
    assert dense.name == "dense" and dense.shape == (200, 300) and dense.vectors == 3
    assert dense.host["simulation"] > 0 and dense.host["corrections"] > 0 and dense.host["partition"] > 0
    assert dense.ops == 200 * 300 * 3
    # rounds of two tiles: (128 rows, 72 rows) twice; the slower hemisphere has 128 events per vector
    expected = {"knobs": 0.0, "weights": 4 * WEIGHT_WRITE_S, "events": 2 * 3 * 128 * 2 * 3 * 8e-9,
                "vector_fixed": 2 * 3 * VECTOR_FIXED_S, "readout": 2 * 3 * 2 * CADC_READ_S}
    assert dense.hw == pytest.approx(expected, abs=1e-12)
    assert prof.analytic_time(Engine(Chip(1, "noiseless")).plan(200, 300), 3, num_sends=2,
                              wait_between_events=3) == pytest.approx(expected, abs=1e-12)
    assert dense.counts == {"weight_writes": 4, "tile_runs": 4, "events": 3 * 200 * 2 * 2,
                            "reconfigurations": 0}  # every input once per column block and send
    assert output.hw_s == 0 and output.ops == 0
    # categories sum to the totals, and the rows with the setup account for the whole chip clock
    total = p.total
    for cat in prof.HW_CATEGORIES:
        assert total.hw[cat] == pytest.approx(dense.hw[cat] + output.hw[cat])
    assert total.hw_s == pytest.approx(sum(total.hw.values()))
    assert total.hw_s + p.setup.hw_s == pytest.approx(chips[0].hw_time_s, rel=1e-12)
    assert p.to_dict()["total"]["mops_per_s_hw"] == pytest.approx(200 * 300 * 3 / total.hw_s / 1e6)


def test_resident_weights_cost_nothing_after_the_warm_up_and_several_chips_report_the_slowest(tiny):
    p = prof.profile(lambda: Engine([Chip(1, "noiseless"), Chip(2, "noiseless")]), "tiny", batch_size=2)
    dense = p.rows[0]
    # four tiles on four slots: the warm-up wrote them (two per chip, chips in parallel), then they stay
    assert p.setup.hw["weights"] == pytest.approx(2 * WEIGHT_WRITE_S) and p.setup.hw["knobs"] == 0
    assert dense.hw["weights"] == 0 and dense.counts["weight_writes"] == 0
    # one round: each chip runs its two tiles for 2 vectors at once
    assert dense.hw["vector_fixed"] == pytest.approx(2 * VECTOR_FIXED_S)
    assert dense.counts["tile_runs"] == 4


def test_sweep_matches_the_time_model(rng):
    pts = prof.sweep(Engine(Chip(3, "noiseless")), shapes=((100, 20), (256, 256)), batches=(1, 16), rng=rng)
    assert [(p.n_in, p.batch) for p in pts] == [(100, 1), (100, 16), (256, 1), (256, 16)]
    for p in pts:
        # the model counts the expected events; the slower of two hemispheres has a few more (< 1 % of the time)
        assert sum(p.measured.values()) == pytest.approx(sum(p.model.values()), rel=0.01)
        assert p.measured["weights"] == p.model["weights"]
    limits = prof.design_limits()
    assert limits["fixed_cost"] == pytest.approx(2 * 128 * 256 / 40e-6 / 1e6)
    assert limits["vector"] < limits["fixed_cost"] < limits["event_rate"]


def test_unknown_models_bad_batches_and_missing_training_steps_are_refused(tiny, monkeypatch):
    monkeypatch.setattr(prof, "_have_torch", lambda: True)
    with pytest.raises(prof.ProfileUnavailable, match="'tiny' has no hardware-in-the-loop training step"):
        prof.profile(lambda: Engine(Chip(0, "noiseless")), "tiny", batch_size=1, train=True)
    with pytest.raises(prof.ProfileUnavailable, match="unknown model 'cifar'"):
        prof.get_workload("cifar")
    with pytest.raises(ValueError, match="batch_size"):
        prof.get_workload("mnist", batch_size=0)


# ------------------------------------------------------------------ CLI
def _one_line(res, message):
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and message in res.stderr
    assert res.stderr.startswith("Error: ") and res.stderr.count("\n") == 1, res.stderr


def test_cli_bad_model_is_one_line():
    _one_line(CliRunner().invoke(main, ["profile", "--model", "cifar", "--no-sweep"]), "unknown model 'cifar'")


def test_cli_train_without_torch_is_one_line(monkeypatch):
    monkeypatch.setattr(prof, "_have_torch", lambda: False)
    _one_line(CliRunner().invoke(main, ["profile", "--model", "mnist", "--train", "--no-sweep"]), "needs PyTorch")


def test_cli_json_parses_and_out_writes_the_figures(tmp_path, needs_mnist, monkeypatch):
    monkeypatch.setattr(prof, "SWEEP_SHAPES", ((100, 20), (256, 256)))  # a small sweep keeps the test short
    monkeypatch.setattr(prof, "SWEEP_BATCHES", (1, 8))
    res = CliRunner().invoke(main, ["profile", "--model", "mnist", "--batch-size", "4", "--json", "--out",
                                    str(tmp_path / "figs")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    (p,) = out["profiles"]
    assert [r["name"] for r in p["rows"]] == ["conv", "fc1", "fc2", "output"]
    assert [r["shape"] for r in p["rows"][:3]] == [[100, 20], [500, 128], [128, 10]]
    assert p["rows"][0]["vectors"] == 4 * 25 and p["rows"][1]["vectors"] == 4
    for key, cats in (("hw", prof.HW_CATEGORIES), ("host", prof.HOST_CATEGORIES)):
        for cat in cats:
            assert p["total"][key][cat] == pytest.approx(sum(r[key][cat] for r in p["rows"]))
    assert p["total"]["hw_configuration_s"] == pytest.approx(6 * 0.5e-3)  # six tiles, two slots: all rewritten
    # conv: one 100 x 20 tile on one hemisphere, 100 vectors of 40 us
    assert p["rows"][0]["hw"]["vector_fixed"] + p["rows"][0]["hw"]["readout"] == pytest.approx(100 * 40e-6)
    assert [(s["n_in"], s["batch"]) for s in out["sweep"]] == [(100, 1), (100, 8), (256, 1), (256, 8)]
    for name in ("profile_mnist.png", "sweep.png"):
        assert (tmp_path / "figs" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(out["figures"]) == sorted(str(tmp_path / "figs" / n) for n in ("profile_mnist.png", "sweep.png"))


@pytest.mark.torch
@pytest.mark.slow
def test_cli_train_profiles_one_hil_step(needs_mnist):
    pytest.importorskip("torch")
    res = CliRunner().invoke(main, ["profile", "--model", "mnist", "--train", "--batch-size", "4", "--no-sweep"])
    assert res.exit_code == 0, res.output
    assert "mnist train, batch 4" in res.stdout and "backward + update" in res.stdout
