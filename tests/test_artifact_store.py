"""The artifact store: history, latest pointer, concurrent writers, and writers killed mid-way."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bss2_calib.chipsim import Chip
from bss2_calib import calib
from bss2_calib.calib import ArtifactError, ArtifactStore, Options

REPO = Path(__file__).resolve().parents[1]
CLI = ["-c", "import sys; from cli.main import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def quick():
    """A fast calibration result (one knob step) of chip 0."""
    return calib.calibrate(Chip(0, "default", noise_seed=2), options=Options(stages=("reset",)))


def _env(store):
    env = dict(os.environ)
    env["BSS2_CALIB_STORE"] = str(store)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _all_visible_load(store):
    rows = store.list()
    for r in rows:
        assert r["error"] is None, r
        calib.load(r["path"])
    return rows


def test_store_layout_history_and_latest(quick, tmp_path):
    store = ArtifactStore(tmp_path)
    a = store.save(quick)
    assert a.path.parent == tmp_path / "chip=0"
    assert store.latest(0) == a.path
    assert store.resolve("chip-0") == a.path and store.resolve(str(a.path)) == a.path
    assert store.resolve(f"chip-0/{a.path.name}") == a.path
    b = store.save(calib.calibrate(Chip(0, "default", noise_seed=3), options=Options(stages=("reset",))))
    assert store.latest(0) == b.path
    hist = store.history(0)
    assert [h["name"] for h in hist] == sorted([a.path.name, b.path.name])
    assert [h["latest"] for h in hist] == [h["name"] == b.path.name for h in hist]
    assert store.chips() == [0]
    assert calib.load(store.latest(0)).chip_id == 0
    with pytest.raises(ArtifactError, match="no calibration of chip 5"):
        store.resolve("chip-5")


def test_latest_never_moves_back_to_an_older_artifact(quick, tmp_path):
    store = ArtifactStore(tmp_path)
    newer = calib.calibrate(Chip(0, "default", noise_seed=4), options=Options(stages=("reset",)))
    store.save(newer)
    older = store.save(quick)  # created earlier, saved later
    assert store.latest(0) != older.path
    assert calib.load(store.latest(0)).manifest["created_utc"] == newer.manifest["created_utc"]


def test_default_store_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BSS2_CALIB_STORE", str(tmp_path / "s"))
    assert calib.default_root() == tmp_path / "s"
    monkeypatch.delenv("BSS2_CALIB_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert calib.default_root() == tmp_path / "xdg" / "bss2-calib"


def test_threads_saving_at_once_all_complete(quick, tmp_path):
    store = ArtifactStore(tmp_path)
    errors = []

    def save():
        try:
            store.save(quick)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=save) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = _all_visible_load(store)
    assert len(rows) == 8 and sum(r["latest"] for r in rows) == 1
    assert not [p for p in (tmp_path / "chip=0").iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_two_concurrent_calibrations_of_one_chip_both_complete(tmp_path):
    env = _env(tmp_path)
    args = ["run", "--chip", "0", "--stages", "knobs,offsets", "--json"]
    procs = [subprocess.Popen([sys.executable, *CLI, *args, "--seed", str(s)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for s in (1, 2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
    store = ArtifactStore(tmp_path)
    rows = _all_visible_load(store)
    assert len(rows) == 2 and sum(r["latest"] for r in rows) == 1
    assert calib.load(store.latest(0)).ok


def _kill_run(store_dir, delay):
    p = subprocess.Popen([sys.executable, *CLI, "run", "--chip", "0", "--seed", "9"], env=_env(store_dir),
                         cwd=store_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)


@pytest.mark.parametrize("delay", [0.3, 1.2, 2.0, 2.6])
def test_a_killed_calibration_leaves_the_store_intact(quick, tmp_path, delay):
    store = ArtifactStore(tmp_path)
    prev = store.save(quick)
    _kill_run(tmp_path, delay)
    rows = _all_visible_load(store)  # every visible artifact is complete and loads
    assert prev.path.name in [r["name"] for r in rows]
    assert calib.load(store.latest(0)).chip_id == 0
    store.cleanup(0)  # leftovers of the dead writer go away
    assert not [p for p in (tmp_path / "chip=0").iterdir() if ".tmp-" in p.name]


WRITER = """
import os, sys, time
from bss2_calib import calib
import bss2_calib.calib.artifact as art
from bss2_calib.chipsim import Chip
res = calib.calibrate(Chip(0, "default", noise_seed=1), options=calib.Options(stages=("reset",)))
real = os.fsync
def slow(fd):
    print("writing", flush=True)
    time.sleep(0.5)
    real(fd)
art.os.fsync = slow
calib.ArtifactStore(sys.argv[1]).save(res)
"""


def test_killed_in_the_middle_of_writing(quick, tmp_path):
    store = ArtifactStore(tmp_path)
    prev = store.save(quick)
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], env=_env(tmp_path), cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    with p:
        assert p.stdout.readline().strip() == b"writing"  # inside write_artifact, between two table files
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    leftovers = [e for e in (tmp_path / "chip=0").iterdir() if ".tmp-" in e.name]
    assert leftovers  # the half-written directory exists, under a hidden temporary name ...
    for e in leftovers:
        with pytest.raises(ArtifactError):
            calib.load(e)  # ... that does not load (no manifest yet)
    rows = _all_visible_load(store)
    assert [r["name"] for r in rows] == [prev.path.name]
    assert store.latest(0) == prev.path
    assert store.cleanup(0) == len(leftovers)
