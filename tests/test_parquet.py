"""ParquetSource: blocks equal the data written, sampling, read-ahead thread, retries, bad data."""

from __future__ import annotations

import datetime
import pickle
import re
import sys
import threading

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpuseg import parquet
from gpuseg.errors import DataError
from gpuseg.parquet import ParquetSource

FEATURES = ["spend", "visits", "member", "tenure"]


def make_table(n_rows: int, rng: np.random.Generator, first_id: int = 0) -> pa.Table:
    """Customers: an id, float/int/bool features, a weight and a string column."""
    return pa.table(
        {
            "customer_id": pa.array(np.arange(first_id, first_id + n_rows), pa.int64()),
            "spend": rng.lognormal(3.0, 1.0, n_rows),
            "visits": pa.array(rng.integers(0, 50, n_rows), pa.int32()),
            "member": rng.random(n_rows) < 0.3,
            "country": rng.choice(["FR", "DE", "US"], n_rows),
            "tenure": rng.standard_normal(n_rows).astype(np.float32),
            "weight": rng.uniform(0.5, 2.0, n_rows),
        }
    )


def write_files(folder, sizes, rng, row_group_size=97) -> list[pa.Table]:
    """Write one file per size (names sort in the order written) and return the tables."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = []
    for i, n_rows in enumerate(sizes):
        table = make_table(n_rows, rng, first_id=10_000 * i)
        pq.write_table(table, folder / f"part-{i:03d}.parquet", row_group_size=row_group_size)
        tables.append(table)
    return tables


def features_of(table: pa.Table, columns=FEATURES) -> np.ndarray:
    """The expected block content: the columns as float32, row order kept."""
    return np.column_stack([table.column(c).to_numpy().astype(np.float32) for c in columns]).astype(
        np.float32
    )


def read_all(source: ParquetSource):
    """Every block of a pass, and X, weights and ids concatenated."""
    blocks = list(source.batches())
    X = np.concatenate([b.X for b in blocks])
    weights = (
        None
        if blocks[0].sample_weight is None
        else np.concatenate([b.sample_weight for b in blocks])
    )
    ids = None if blocks[0].ids is None else np.concatenate([b.ids for b in blocks])
    return blocks, X, weights, ids


@pytest.fixture
def rng():
    return np.random.default_rng()


@pytest.fixture
def dataset(tmp_path, rng):
    """Three files of uneven sizes in ``tmp_path/data`` and their concatenated table."""
    tables = write_files(tmp_path / "data", [311, 57, 502], rng)
    return tmp_path / "data", pa.concat_tables(tables)


@pytest.mark.parametrize("form", ["directory", "glob", "file_url", "list"])
def test_blocks_concatenated_equal_data_written(dataset, form):
    folder, table = dataset
    path = {
        "directory": str(folder),
        "glob": str(folder / "part-*.parquet"),
        "file_url": f"file://{folder}",
        "list": [
            folder / "part-002.parquet",
            folder / "part-000.parquet",
            folder / "part-001.parquet",
        ],
    }[form]
    source = ParquetSource(
        path, FEATURES, id_column="customer_id", weight_column="weight", block_rows=200
    )
    assert [f.rsplit("/", 1)[-1] for f in source.files] == [
        "part-000.parquet",
        "part-001.parquet",
        "part-002.parquet",
    ]
    assert source.n_samples == table.num_rows == 870
    assert source.n_features == len(FEATURES)
    blocks, X, weights, ids = read_all(source)
    assert [len(b.X) for b in blocks] == [200, 200, 200, 200, 70]
    for b in blocks:
        assert b.X.dtype == np.float32 and b.X.flags.c_contiguous
        assert b.sample_weight.dtype == np.float32
    np.testing.assert_array_equal(X, features_of(table))
    np.testing.assert_array_equal(weights, table.column("weight").to_numpy().astype(np.float32))
    np.testing.assert_array_equal(ids, table.column("customer_id").to_numpy())


@pytest.mark.parametrize(("block_rows", "read_ahead"), [(1, 2), (64, 0), (64, 1), (10_000, 3)])
def test_block_sizes_do_not_depend_on_files_or_row_groups(dataset, block_rows, read_ahead):
    folder, table = dataset
    source = ParquetSource(folder, FEATURES, block_rows=block_rows, read_ahead=read_ahead)
    blocks, X, weights, ids = read_all(source)
    sizes = [len(b.X) for b in blocks]
    assert all(s == block_rows for s in sizes[:-1])
    assert 0 < sizes[-1] <= block_rows and sum(sizes) == 870
    assert weights is None and ids is None
    np.testing.assert_array_equal(X, features_of(table))


def test_default_columns_are_numeric_ones_but_id_and_weight(dataset):
    folder, table = dataset
    source = ParquetSource(folder, id_column="customer_id", weight_column="weight")
    assert source.columns == ["spend", "visits", "member", "tenure"]
    _, X, _, _ = read_all(source)
    np.testing.assert_array_equal(X, features_of(table))
    reordered = ParquetSource(folder, ["tenure", "member"])
    _, X, _, _ = read_all(reordered)
    np.testing.assert_array_equal(X, features_of(table, ["tenure", "member"]))


def test_n_samples_comes_from_footers_without_reading_data(dataset, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("data read")

    monkeypatch.setattr(parquet, "_scan_file", fail)
    monkeypatch.setattr(parquet, "_read_row_groups", fail)
    assert ParquetSource(dataset[0]).n_samples == 870


@pytest.mark.parametrize(
    "filters",
    [
        (pc.field("country") == "FR") & (pc.field("visits") > 10),
        [("country", "=", "FR"), ("visits", ">", 10)],
    ],
    ids=["expression", "dnf"],
)
def test_filters_keep_matching_rows_in_order(dataset, filters):
    folder, table = dataset
    expected = table.filter((pc.field("country") == "FR") & (pc.field("visits") > 10))
    source = ParquetSource(folder, FEATURES, "customer_id", filters=filters, block_rows=50)
    assert source.n_samples == expected.num_rows
    _, X, _, ids = read_all(source)
    np.testing.assert_array_equal(X, features_of(expected))
    np.testing.assert_array_equal(ids, expected.column("customer_id").to_numpy())
    sample = source.sample(20, np.random.default_rng(3))
    rows = np.sort(np.random.default_rng(3).choice(expected.num_rows, 20, replace=False))
    np.testing.assert_array_equal(sample.ids, ids[rows])
    np.testing.assert_array_equal(sample.X, X[rows])


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("persist", [False, True])
def test_sample_is_deterministic_sorted_and_reads_the_right_rows(
    dataset, rng, monkeypatch, persist, threads
):
    monkeypatch.setattr(parquet, "default_threads", lambda: threads)
    folder, table = dataset
    source = ParquetSource(folder, FEATURES, "customer_id", "weight", block_rows=128,
                           persist=persist)  # fmt: skip
    seed = int(rng.integers(1 << 30))
    sample = source.sample(100, np.random.default_rng(seed))
    again = source.sample(100, np.random.default_rng(seed))
    rows = np.sort(np.random.default_rng(seed).choice(870, 100, replace=False))
    np.testing.assert_array_equal(sample.X, again.X)
    np.testing.assert_array_equal(sample.X, features_of(table)[rows])
    np.testing.assert_array_equal(sample.ids, table.column("customer_id").to_numpy()[rows])
    np.testing.assert_array_equal(
        sample.sample_weight, table.column("weight").to_numpy().astype(np.float32)[rows]
    )
    assert sample.X.dtype == np.float32 and sample.X.flags.c_contiguous
    everything = source.sample(10_000, rng)
    np.testing.assert_array_equal(everything.X, features_of(table))
    assert source.persisted == persist  # taken from the kept blocks, or from the row groups


def test_sample_is_uniform(tmp_path, rng):
    write_files(tmp_path, [70, 30, 100], rng, row_group_size=16)
    source = ParquetSource(tmp_path, ["spend"], "customer_id")
    counts = np.zeros(200, dtype=np.int64)
    position = {
        cid: i
        for i, cid in enumerate(
            np.concatenate([np.arange(70), 10_000 + np.arange(30), 20_000 + np.arange(100)])
        )
    }
    for _ in range(400):
        ids = source.sample(20, rng).ids
        assert len(set(ids.tolist())) == 20 and np.all(np.diff(ids) > 0)
        counts[[position[i] for i in ids]] += 1
    # Each row is drawn with probability 0.1: 40 +- 6 times; 5 standard deviations either side.
    assert counts.min() >= 10 and counts.max() <= 70
    assert abs(counts[:100].sum() - counts[100:].sum()) < 600  # 4000 +- 30 per half


def test_closing_the_generator_early_stops_the_reader_threads(dataset):
    source = ParquetSource(dataset[0], FEATURES, block_rows=10, read_ahead=3)
    before = threading.active_count()
    blocks = source.batches()
    next(blocks)
    assert "gpuseg-parquet-reader" in {thread.name for thread in threading.enumerate()}
    blocks.close()
    assert threading.active_count() == before
    for _ in source.batches():
        break
    assert threading.active_count() == before


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_persisted_blocks_serve_later_passes_without_the_files(tmp_path, rng, read_ahead):
    folder = tmp_path / "data"
    table = pa.concat_tables(write_files(folder, [311, 57, 502], rng))
    kept = ParquetSource(folder, FEATURES, "customer_id", "weight", block_rows=100,
                         read_ahead=read_ahead, persist=True)  # fmt: skip
    streamed = ParquetSource(folder, FEATURES, "customer_id", "weight", block_rows=100,
                             read_ahead=read_ahead, persist=False)  # fmt: skip
    for _ in kept.batches():  # an interrupted pass keeps nothing
        break
    assert not kept.persisted
    first = read_all(kept)
    list(streamed.batches())
    assert kept.persisted and not streamed.persisted
    for path in folder.iterdir():
        path.unlink()
    again = read_all(kept)
    assert [len(b.X) for b in again[0]] == [100] * 8 + [70]
    for got, want in zip(again[1:], first[1:], strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(again[1], features_of(table))
    with pytest.raises(DataError, match=r"part-000\.parquet"):
        list(streamed.batches())
    assert not pickle.loads(pickle.dumps(kept)).persisted  # copies do not carry the blocks


def test_persist_auto_streams_data_over_half_the_available_memory(dataset, monkeypatch):
    block_bytes = 100 * len(FEATURES) * 4
    monkeypatch.setattr(parquet, "available_memory", lambda: 2 * 5 * block_bytes)
    small = ParquetSource(dataset[0], FEATURES, block_rows=100, persist="auto")
    list(small.batches())
    assert not small.persisted  # 9 blocks over a budget of 5
    monkeypatch.setattr(parquet, "available_memory", lambda: 2 * 9 * block_bytes)
    roomy = ParquetSource(dataset[0], FEATURES, block_rows=100)
    list(roomy.batches())
    assert roomy.persisted


def test_batch_nbytes_counts_string_ids():
    ids = np.array([f"customer-{i:06d}" for i in range(3000)], dtype=object)
    batch = parquet.Batch(np.zeros((3000, 2), np.float32), None, ids)
    exact = batch.X.nbytes + ids.nbytes + sum(map(sys.getsizeof, ids))
    assert parquet.batch_nbytes(batch) == pytest.approx(exact, rel=0.01)


def test_reader_thread_errors_reach_the_consumer(tmp_path, rng):
    tables = write_files(tmp_path, [300, 300], rng)
    spend = tables[1].column("spend").to_numpy().copy()
    spend[123] = np.nan
    bad = tables[1].set_column(1, "spend", pa.array(spend))
    pq.write_table(bad, tmp_path / "part-001.parquet", row_group_size=50)
    source = ParquetSource(tmp_path, FEATURES, block_rows=100, read_ahead=2)
    before = threading.active_count()
    seen = 0
    with pytest.raises(DataError, match=r"part-001\.parquet: column 'spend': nan at row 123;"):
        for batch in source.batches():
            seen += len(batch.X)
    assert seen == 400  # the blocks before the bad one arrived
    assert threading.active_count() == before


def test_failed_scans_are_retried_and_resume_where_they_stopped(dataset, monkeypatch):
    folder, table = dataset
    real_scan = parquet._scan_file
    calls = {"n": 0}

    def flaky_scan(*args, **kwargs):
        calls["n"] += 1
        for i, record_batch in enumerate(real_scan(*args, **kwargs)):
            if calls["n"] <= 2 and i == 1:
                raise OSError("connection reset")
            yield record_batch

    monkeypatch.setattr(parquet, "_scan_file", flaky_scan)
    monkeypatch.setattr(parquet, "_RETRY_DELAY_S", 0.0)
    monkeypatch.setattr(parquet, "_SCAN_BATCH_ROWS", 40)
    # No read-ahead: the files are scanned in order in the calling thread.
    source = ParquetSource(folder, FEATURES, "customer_id", block_rows=128, retries=2, read_ahead=0)
    _, X, _, ids = read_all(source)
    assert calls["n"] == 3 + 2  # part-000 three times, then one each for the others
    np.testing.assert_array_equal(X, features_of(table))
    np.testing.assert_array_equal(ids, table.column("customer_id").to_numpy())


def test_failed_row_group_reads_of_a_pass_are_retried(dataset, monkeypatch):
    folder, table = dataset
    real_read = parquet._read_row_groups
    failures = []

    def flaky_read(*args):
        if args[2] == [1] and len(failures) < 2:  # the second row group of every file, twice
            failures.append(args[1])
            raise OSError("timeout")
        return real_read(*args)

    monkeypatch.setattr(parquet, "_read_row_groups", flaky_read)
    monkeypatch.setattr(parquet, "_RETRY_DELAY_S", 0.0)
    monkeypatch.setattr(parquet, "default_threads", lambda: 3)
    source = ParquetSource(folder, FEATURES, "customer_id", block_rows=128, persist=False)
    _, X, _, ids = read_all(source)
    assert len(failures) == 2
    np.testing.assert_array_equal(X, features_of(table))
    np.testing.assert_array_equal(ids, table.column("customer_id").to_numpy())


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_without_retries_a_failed_read_is_a_data_error_naming_the_file(
    dataset, monkeypatch, read_ahead
):
    def failing_scan(*args, **kwargs):
        raise OSError("connection reset")
        yield

    def failing_read(*args):
        raise OSError("connection reset")

    monkeypatch.setattr(parquet, "_scan_file", failing_scan)
    monkeypatch.setattr(parquet, "_read_row_groups", failing_read)
    source = ParquetSource(dataset[0], FEATURES, retries=0, read_ahead=read_ahead)
    with pytest.raises(DataError, match=r"part-000\.parquet: could not be read after 1 attempt"):
        list(source.batches())


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("block_rows", [1, 40, 97, 300, 10_000])
def test_row_groups_read_on_threads_give_the_blocks_of_an_ordered_scan(
    tmp_path, rng, monkeypatch, threads, block_rows
):
    files = [pa.concat_tables(write_files(tmp_path / "a", [230, 31], rng, row_group_size=50))]
    files.append(pa.concat_tables(write_files(tmp_path / "b", [13, 400], rng, row_group_size=7)))
    monkeypatch.setattr(parquet, "default_threads", lambda: threads)
    for folder in (tmp_path / "a", tmp_path / "b"):
        options = {"block_rows": block_rows, "persist": False}
        read = (None, "customer_id", "weight")
        threaded = ParquetSource(folder, *read, read_ahead=2, **options)
        assert threaded._reads_row_groups_in_parallel()
        scanned = ParquetSource(folder, *read, read_ahead=0, **options)
        for got, want in zip(threaded.batches(), scanned.batches(), strict=True):
            np.testing.assert_array_equal(got.X, want.X)
            np.testing.assert_array_equal(got.sample_weight, want.sample_weight)
            np.testing.assert_array_equal(got.ids, want.ids)
            assert got.X.flags.c_contiguous and len(got.X) == len(want.X)


def test_long_row_groups_and_filters_are_scanned(dataset, monkeypatch):
    def fail(*args):
        raise AssertionError("row groups read whole")

    monkeypatch.setattr(parquet, "default_threads", lambda: 2)
    monkeypatch.setattr(parquet, "_read_row_groups", fail)
    monkeypatch.setattr(parquet, "_MAX_PARALLEL_GROUP_ROWS", 96)  # the files' groups hold 97
    folder, table = dataset
    _, X, _, _ = read_all(ParquetSource(folder, FEATURES, persist=False))
    np.testing.assert_array_equal(X, features_of(table))
    monkeypatch.setattr(parquet, "_MAX_PARALLEL_GROUP_ROWS", 1 << 22)
    filtered = ParquetSource(folder, FEATURES, filters=[("visits", ">", 10)], persist=False)
    _, X, _, _ = read_all(filtered)
    np.testing.assert_array_equal(X, features_of(table.filter(pc.field("visits") > 10)))


def test_failed_row_group_reads_are_retried_for_samples(dataset, monkeypatch):
    folder, table = dataset
    real_read = parquet._read_row_groups
    failures = []

    def flaky_read(*args):
        if len(failures) < 2:
            failures.append(args[1])
            raise OSError("timeout")
        return real_read(*args)

    monkeypatch.setattr(parquet, "_read_row_groups", flaky_read)
    monkeypatch.setattr(parquet, "_RETRY_DELAY_S", 0.0)
    source = ParquetSource(folder, FEATURES, persist=False)  # rows read from their row groups
    sample = source.sample(1000, np.random.default_rng())
    np.testing.assert_array_equal(sample.X, features_of(table))
    assert len(failures) == 2


def test_fsspec_url_of_another_filesystem(rng):
    fs = fsspec.filesystem("memory")
    folder = f"/gpuseg-test-{rng.integers(1 << 30)}"
    table = make_table(130, rng)
    try:
        with fs.open(f"{folder}/b.parquet", "wb") as f:
            pq.write_table(table.slice(50), f, row_group_size=20)
        with fs.open(f"{folder}/a.parquet", "wb") as f:
            pq.write_table(table.slice(0, 50), f, row_group_size=20)
        source = ParquetSource(
            f"memory://{folder}/*.parquet", FEATURES, "customer_id", block_rows=60
        )
        assert source.files == [f"memory://{folder}/a.parquet", f"memory://{folder}/b.parquet"]
        blocks, X, _, ids = read_all(source)
        assert [len(b.X) for b in blocks] == [60, 60, 10]
        np.testing.assert_array_equal(X, features_of(table))
        sample = source.sample(30, np.random.default_rng(5))
        rows = np.sort(np.random.default_rng(5).choice(130, 30, replace=False))
        np.testing.assert_array_equal(sample.ids, ids[rows])
    finally:
        fs.rm(folder, recursive=True)


# -- bad input: one DataError per case ----------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.parquet: no such file or directory"):
        ParquetSource(tmp_path / "nowhere.parquet")


def test_glob_matching_nothing(dataset):
    with pytest.raises(DataError, match=r"\*\.csv: glob matches no file"):
        ParquetSource(dataset[0] / "*.csv")


def test_directory_without_data_files(tmp_path):
    (tmp_path / "_SUCCESS").touch()
    with pytest.raises(DataError, match="directory holds no data files"):
        ParquetSource(tmp_path)


def test_requested_column_missing_in_one_file(dataset):
    folder, table = dataset
    pq.write_table(table.drop_columns(["visits"]), folder / "part-001.parquet")
    with pytest.raises(DataError, match=r"part-001\.parquet: column 'visits': requested column"):
        ParquetSource(folder, FEATURES)


def test_requested_column_missing_everywhere(dataset):
    with pytest.raises(DataError, match=r"part-000\.parquet: column 'age': requested column is"):
        ParquetSource(dataset[0], ["spend", "age"])


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["a", "b"], "string"),
        ([datetime.date(2024, 1, 1), datetime.date(2024, 2, 1)], "date32"),
    ],
)
def test_non_numeric_feature_column(tmp_path, values, kind):
    pq.write_table(pa.table({"x": [1.0, 2.0], "bad": values}), tmp_path / "c.parquet")
    with pytest.raises(
        DataError, match=rf"c\.parquet: column 'bad': has type {kind}.*; expected a numeric column"
    ):
        ParquetSource(tmp_path / "c.parquet", ["x", "bad"])


def test_no_numeric_column_to_infer(tmp_path):
    pq.write_table(pa.table({"name": ["a", "b"]}), tmp_path / "c.parquet")
    with pytest.raises(DataError, match=r"c\.parquet: has no numeric feature column"):
        ParquetSource(tmp_path / "c.parquet")


@pytest.mark.parametrize(
    ("value", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf"), (None, "null")]
)
def test_non_finite_feature_names_file_column_and_row(tmp_path, rng, value, shown):
    tables = write_files(tmp_path, [40, 300], rng)
    tenure = tables[1].column("tenure").to_pylist()
    tenure[211] = value
    tenure[250] = value
    bad = tables[1].set_column(5, "tenure", pa.array(tenure, pa.float32()))
    pq.write_table(bad, tmp_path / "part-001.parquet", row_group_size=64)
    source = ParquetSource(tmp_path, FEATURES, block_rows=50)
    with pytest.raises(
        DataError, match=rf"part-001\.parquet: column 'tenure': {shown} at row 211; expected finite"
    ):
        list(source.batches())
    with pytest.raises(DataError, match=r"part-001\.parquet: column 'tenure'.* at row 211"):
        source.sample(1000, rng)


def test_negative_weight(tmp_path, rng):
    table = make_table(30, rng)
    weight = table.column("weight").to_numpy().copy()
    weight[7] = -1.0
    pq.write_table(table.set_column(6, "weight", pa.array(weight)), tmp_path / "w.parquet")
    source = ParquetSource(tmp_path, FEATURES, weight_column="weight")
    with pytest.raises(DataError, match=r"w\.parquet: column 'weight': -1\.0 at row 7; expected"):
        list(source.batches())


def test_empty_file(dataset):
    folder, _ = dataset
    (folder / "part-001.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=r"part-001\.parquet: is empty \(0 bytes\)"):
        ParquetSource(folder)


def test_no_rows_at_all(tmp_path, rng):
    pq.write_table(make_table(0, rng), tmp_path / "none.parquet")
    with pytest.raises(DataError, match=r"none\.parquet: 1 file\(s\) with no rows"):
        ParquetSource(tmp_path / "none.parquet")


def test_no_rows_pass_the_filters(dataset):
    source = ParquetSource(dataset[0], FEATURES, filters=[("visits", ">", 1000)])
    with pytest.raises(DataError, match=r"3 files: no row passes filters"):
        list(source.batches())
    for _ in range(2):
        with pytest.raises(DataError, match=r"no row passes filters \(visits > 1000\)"):
            source.n_samples  # noqa: B018


@pytest.mark.parametrize(
    ("filters", "reason"),
    [([("age", ">", 3)], "No match for FieldRef"), ([("country", ">", 3)], "no kernel")],
)
def test_filters_that_do_not_apply(dataset, filters, reason):
    with pytest.raises(DataError, match=rf"part-000\.parquet: filters .* do not apply.*{reason}"):
        ParquetSource(dataset[0], filters=filters)


def test_corrupt_file(dataset):
    folder, _ = dataset
    (folder / "part-002.parquet").write_bytes(b"id,spend\n1,2\n" * 20)
    with pytest.raises(DataError, match=r"part-002\.parquet: cannot be read as Parquet"):
        ParquetSource(folder)


def test_schemas_differ_in_a_column_type(dataset):
    folder, table = dataset
    visits = table.column("visits").cast(pa.float64())
    pq.write_table(table.set_column(2, "visits", visits), folder / "part-002.parquet")
    with pytest.raises(
        DataError,
        match=r"part-002\.parquet: column 'visits': schemas differ: type double here but "
        r"int32 in .*part-000\.parquet",
    ):
        ParquetSource(folder)


def test_schemas_differ_in_inferred_columns(dataset):
    folder, table = dataset
    pq.write_table(table.drop_columns(["member"]), folder / "part-001.parquet")
    with pytest.raises(
        DataError,
        match=r"part-001\.parquet: column 'member': schemas differ: column is in "
        r".*part-000\.parquet but not in this file",
    ):
        ParquetSource(folder)
    extra = table.append_column("age", pa.array(np.ones(table.num_rows)))
    pq.write_table(extra, folder / "part-001.parquet")
    pq.write_table(table, folder / "part-000.parquet")
    with pytest.raises(DataError, match=r"part-001\.parquet: column 'age': schemas differ"):
        ParquetSource(folder)


# -- parameters and the error type ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block_rows": 0}, "block_rows=0 should be an integer >= 1."),
        ({"read_ahead": -1}, "read_ahead=-1 should be an integer >= 0."),
        ({"retries": 1.5}, "retries=1.5 should be an integer >= 0."),
        ({"columns": "spend"}, "columns='spend' should be a list of column names, not a str."),
        ({"columns": ["spend"], "weight_column": "spend"}, "column 'spend' is both a feature"),
        ({"persist": "yes"}, "persist='yes' should be True, False or 'auto'."),
    ],
)
def test_bad_parameters(dataset, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ParquetSource(dataset[0], **kwargs)


def test_data_error_message_attributes_and_pickling():
    error = DataError("nan at row 3;\n expected finite numbers", path="a.parquet", column="x")
    assert str(error) == "a.parquet: column 'x': nan at row 3; expected finite numbers"
    assert (error.path, error.column) == ("a.parquet", "x")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.path, copy.column) == (str(error), "a.parquet", "x")
    assert str(DataError("no path given")) == "no path given"


def test_row_group_reads_reuse_the_footers_read_once(dataset, monkeypatch):
    # A wide file's footer can take longer to parse than a row group takes to read.
    real_parquet_file = pq.ParquetFile
    opened = []

    def parquet_file(source, metadata=None, **kwargs):
        opened.append(metadata)
        return real_parquet_file(source, metadata=metadata, **kwargs)

    folder, table = dataset
    source = ParquetSource(folder, FEATURES, persist=False)
    monkeypatch.setattr(parquet.pq, "ParquetFile", parquet_file)
    monkeypatch.setattr(parquet, "default_threads", lambda: 2)
    _, X, _, _ = read_all(source)
    assert len(opened) == 4 + 1 + 6  # 311, 57 and 502 rows in row groups of 97
    sample = source.sample(500, np.random.default_rng())
    assert len(opened) == 2 * 11  # 500 of 870 rows: every row group holds some
    assert all(footer is not None for footer in opened)
    np.testing.assert_array_equal(X, features_of(table))
    assert len(sample.X) == 500
