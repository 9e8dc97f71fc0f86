"""The store as one dataset: a table of every chip, with the chip id as a column.

The store's chip folders are hive-style partitions (``chip=<id>/``, see
:mod:`calib.store`), so any Parquet reader can do this on its own, e.g. DuckDB::

    SELECT chip, median(gain_exc) FROM read_parquet('STORE/chip=*/[0-9]*/neuron_correction.parquet',
                                                    hive_partitioning = true) GROUP BY chip

That reads every artifact of every chip (the history too; the artifact folder's
name starts with its UTC creation time, and ``[0-9]*`` skips the hidden
temporary folders of unfinished writers, which DuckDB's ``*`` would match;
pyarrow.dataset skips names starting with ``.`` or ``_`` by itself). :func:`read_table` reads the latest
artifact of each chip only, with :mod:`pyarrow.dataset`. Artifacts are read
here without their checksums being verified (a query, not a load); use
:func:`calib.load` to trust one.
"""
import pyarrow as pa
import pyarrow.dataset as ds

from .errors import ArtifactError, CalibValueError
from .schema import TABLES

#: the partitioning of the store's chip folders
PARTITIONING = ds.partitioning(pa.schema([("chip", pa.int64())]), flavor="hive")


def _store(store):
    from .store import ArtifactStore

    return store if isinstance(store, ArtifactStore) else ArtifactStore(store)


def table_dataset(store, name, chips=None):
    """A :class:`pyarrow.dataset.Dataset` of table ``name`` from the latest artifact of every chip.

    Parameters
    ----------
    store : ArtifactStore or path-like
    name : str
        A table name (:data:`calib.TABLES`), e.g. ``"neuron_correction"``.
    chips : sequence of int or None, default=None
        None: every chip in the store. Chips without the table are left out.

    Returns
    -------
    pyarrow.dataset.Dataset
        The table's columns plus ``chip`` (int64).
    """
    if name not in TABLES:
        raise CalibValueError(f"unknown table {name!r}; known: {', '.join(sorted(TABLES))}")
    store = _store(store)
    files = []
    for c in (store.chips() if chips is None else chips):
        path = store.latest(c)
        if path is None:
            continue
        if path.parent.name != f"chip={c}":
            raise CalibValueError(f"{path.parent} is a legacy chip folder (no chip column for Parquet readers); "
                                  f"run `bss2-calib fleet migrate --store {store.root}` once")
        if (path / f"{name}.parquet").is_file():
            files.append(str(path / f"{name}.parquet"))
    if not files:
        raise ArtifactError(f"no chip in {store.root} has a {name} table")
    return ds.dataset(files, format="parquet", partitioning=PARTITIONING, partition_base_dir=str(store.root))


def read_table(store, name, chips=None):
    """:func:`table_dataset` as one pandas DataFrame (index levels as plain columns, ``chip`` first)."""
    df = table_dataset(store, name, chips).to_table().to_pandas()
    return df[["chip"] + [c for c in df.columns if c != "chip"]]
