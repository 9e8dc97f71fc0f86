"""The store as one Parquet dataset: hive-style chip=N folders, legacy chip-N stores, the dataset readers."""
import json
import shutil
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from bss2_calib import calib
from bss2_calib.calib.dataset import read_table, table_dataset

V2 = Path(__file__).parent / "data" / "artifacts" / "v2-noiseless-chip0"


def _relabel(result, chip_id):
    """The shipped artifact as if made for another chip (the tables do not depend on the id)."""
    m = dict(result.manifest, chip_id=chip_id)
    return calib.CalibrationResult(m, {k: result.tables[k] for k in result.tables})


@pytest.fixture(scope="module")
def art():
    return calib.load(V2)


def test_new_store_uses_hive_folders_and_any_parquet_reader_sees_the_chip(tmp_path, art):
    store = calib.ArtifactStore(tmp_path)
    for c in (0, 3, 11):
        store.save(_relabel(art, c))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chip=0", "chip=11", "chip=3"]
    # plain pyarrow.dataset over the files, hive partitioning inferred from the folder names
    files = sorted(str(p) for p in tmp_path.glob("chip=*/*/neuron_correction.parquet"))
    table = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(tmp_path)).to_table()
    df = table.to_pandas()
    assert sorted(df["chip"].unique()) == [0, 3, 11]
    assert (df.groupby("chip").size() == 512).all()
    ref = art.tables["neuron_correction"]
    got = df[df["chip"] == 3].set_index("neuron")["gain_exc"]
    assert (got.to_numpy() == ref["gain_exc"].to_numpy()).all()
    # the library's view: latest artifact per chip, chip first
    nc = read_table(store, "neuron_correction")
    assert list(nc.columns[:2]) == ["chip", "neuron"] and len(nc) == 3 * 512
    assert table_dataset(store, "knobs_quadrant", chips=[11]).count_rows() == 4


def test_a_legacy_store_is_read_in_place_and_migrated(tmp_path, art):
    legacy = tmp_path / "chip-0"
    name = "20260101T000000Z-noiseless-0000aaaa"
    shutil.copytree(V2, legacy / name)
    (legacy / "latest.json").write_text(json.dumps({"artifact": name, "created_utc": "2026-01-01", "chip_id": 0}))
    store = calib.ArtifactStore(tmp_path)
    assert store.chips() == [0] and store.latest(0) == legacy / name
    assert store.resolve("chip=0") == store.resolve("chip-0") == legacy / name
    store.save(_relabel(art, 0))  # a chip keeps the folder it has
    assert len(store.history(0)) == 2 and not (tmp_path / "chip=0").exists()
    with pytest.raises(calib.CalibValueError, match="legacy chip folder.*fleet migrate"):
        read_table(store, "neuron_correction")
    assert store.migrate() == [0]
    assert not legacy.exists() and len(store.history(0)) == 2
    calib.load(store.latest(0))  # the pointer still resolves, checksums hold
    assert list(read_table(store, "neuron_correction")["chip"].unique()) == [0]


def test_dataset_refuses_unknown_tables_and_empty_stores(tmp_path):
    with pytest.raises(calib.CalibValueError, match="unknown table"):
        read_table(tmp_path, "nope")
    with pytest.raises(calib.ArtifactError, match="no chip"):
        read_table(tmp_path, "neuron_correction")
