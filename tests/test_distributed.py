"""DaskSource on a two-process LocalCluster: same centres as the local sources, a worker killed
mid-fit, k-means|| seeding, bad data through Dask."""

from __future__ import annotations

import os
import signal
import threading
import time

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster

from gpuseg import KMeans
from gpuseg._backend import CPUBackend
from gpuseg._engine import FitSettings, fit_source
from gpuseg.batches import ArraySource
from gpuseg.distributed import DaskSource, _connect, job_client
from gpuseg.errors import DataError
from gpuseg.parquet import ParquetSource

FEATURES = ["spend", "visits", "tenure", "basket", "returns"]
FILE_ROWS = 700
N_FILES = 6
N_CLUSTERS = 6


def mixture(rng, n_samples, n_features=5, n_components=N_CLUSTERS):
    """Unequal, anisotropic, well separated clusters (n_features != n_clusters), shuffled."""
    means = rng.uniform(-30, 30, (n_components, n_features))
    sizes = rng.multinomial(n_samples, rng.dirichlet(np.full(n_components, 4.0)))
    scales = rng.uniform(0.5, 2.0, (n_components, n_features))
    X = np.vstack([
        m + s * rng.standard_normal((c, n_features))
        for m, s, c in zip(means, scales, sizes, strict=True)
    ])  # fmt: skip
    return X[rng.permutation(n_samples)]


def write_parts(folder, X, weights=None, file_rows=FILE_ROWS):
    """One Parquet file of ``file_rows`` rows after another, with ids (and weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, len(X), file_rows)):
        rows = slice(start, start + file_rows)
        columns = {"customer_id": np.arange(len(X))[rows]}
        columns.update({name: X[rows, j] for j, name in enumerate(FEATURES)})
        if weights is not None:
            columns["weight"] = weights[rows]
        pq.write_table(pa.table(columns), folder / f"part-{i:03d}.parquet", row_group_size=256)
    return folder


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Fresh weighted mixture, in memory and as Parquet files."""
    rng = np.random.default_rng()
    X = mixture(rng, FILE_ROWS * N_FILES)
    weights = rng.uniform(0.5, 2.0, len(X))
    folder = write_parts(tmp_path_factory.mktemp("customers"), X, weights)
    return X, weights, folder


def settings(init="k-means++", **overrides):
    values = dict(
        n_clusters=N_CLUSTERS, init=init, n_init=2, max_iter=50, tol=0.0, batch_size=256,
        algorithm="auto", sample_rows=1000,
    )  # fmt: skip
    values.update(overrides)
    return FitSettings(**values)


def local_sources(X, weights, folder):
    X32, w32 = X.astype(np.float32), weights.astype(np.float32)
    return {
        "array": ArraySource(X32, w32, block_rows=FILE_ROWS),
        "parquet": ParquetSource(folder, FEATURES, "customer_id", "weight", block_rows=FILE_ROWS),
    }


# -- the same centres as local sources ---------------------------------------------------------


@pytest.mark.parametrize("init", ["k-means++", "given"])
def test_dask_source_gives_the_centres_of_local_sources(client, data, init):
    X, weights, folder = data
    if init == "given":
        init = X[np.random.default_rng().choice(len(X), N_CLUSTERS, replace=False)]
    sources = local_sources(X, weights, folder)
    with DaskSource.from_parquet(folder, FEATURES, "customer_id", "weight", client) as source:
        sources["dask"] = source
        results = {
            name: fit_source(s, settings(init), np.random.default_rng(7), CPUBackend())
            for name, s in sources.items()
        }
    expected = results["array"]
    assert expected.n_iter > 1
    for name in ("parquet", "dask"):
        np.testing.assert_array_equal(results[name].centers, expected.centers, err_msg=name)
        assert results[name].inertia == expected.inertia
        np.testing.assert_array_equal(results[name].cluster_sums.weights,
                                      expected.cluster_sums.weights)  # fmt: skip


def test_sample_draws_the_rows_local_sources_draw(client, data):
    X, weights, folder = data
    local = local_sources(X, weights, folder)
    with DaskSource.from_parquet(folder, FEATURES, "customer_id", "weight", client) as source:
        assert (source.n_samples, source.n_features) == (len(X), len(FEATURES))
        assert len(source.files) == N_FILES
        np.testing.assert_array_equal(source.partition_rows, [FILE_ROWS] * N_FILES)
        ours = source.sample(333, np.random.default_rng(5))
        everything = source.sample(10**9, np.random.default_rng(5))
        blocks = list(source.batches())
    for other in local.values():
        theirs = other.sample(333, np.random.default_rng(5))
        np.testing.assert_array_equal(ours.X, theirs.X)
        np.testing.assert_array_equal(ours.sample_weight, theirs.sample_weight)
    np.testing.assert_array_equal(
        ours.ids, local["parquet"].sample(333, np.random.default_rng(5)).ids
    )
    np.testing.assert_array_equal(everything.X, X.astype(np.float32))
    np.testing.assert_array_equal(everything.ids, np.arange(len(X)))
    assert [b.X.shape[0] for b in blocks] == [FILE_ROWS] * N_FILES


def test_estimator_fits_and_predicts_dask_arrays_and_dataframes(client, data):
    X, weights, _ = data
    weighted = ArraySource(X, weights.astype(np.float32), block_rows=FILE_ROWS)
    expected = KMeans(N_CLUSTERS, random_state=3).fit(weighted)
    X_dask = da.from_array(X, chunks=(FILE_ROWS, 2))
    w_dask = da.from_array(weights, chunks=FILE_ROWS)
    frame = dd.from_pandas(pd.DataFrame(X, columns=FEATURES), npartitions=N_FILES, sort=False)
    for w in (w_dask, weights):
        km = KMeans(N_CLUSTERS, random_state=3).fit(X_dask, sample_weight=w)
        np.testing.assert_array_equal(km.cluster_centers_, expected.cluster_centers_)
    unweighted = KMeans(N_CLUSTERS, random_state=3).fit(ArraySource(X, block_rows=FILE_ROWS))
    km = KMeans(N_CLUSTERS, random_state=3).fit(frame)
    assert frame.npartitions == N_FILES
    np.testing.assert_array_equal(km.cluster_centers_, unweighted.cluster_centers_)
    assert km.feature_columns_ == FEATURES
    np.testing.assert_array_equal(km.predict(X_dask), km.predict(X.astype(np.float32)))


# -- a worker lost in the middle of a fit --------------------------------------------------------


def test_fit_survives_a_worker_killed_mid_fit(client, data):
    class SlowBackend(CPUBackend):
        """Makes a pass last long enough for the kill to land inside one."""

        def assign_accumulate(self, *args, **kwargs):
            time.sleep(0.05)
            return super().assign_accumulate(*args, **kwargs)

    _, _, folder = data
    client.wait_for_workers(2, timeout=60)
    backend = SlowBackend()
    run = settings(algorithm="lloyd", max_iter=6)
    with DaskSource.from_parquet(folder, FEATURES, client=client) as source:
        undisturbed = fit_source(source, run, np.random.default_rng(11), backend)
        holders = client.who_has(source._partitions())
        per_worker = pd.Series([w for ws in holders.values() for w in ws]).value_counts()
        victim = per_worker.index[0]
        victim_pid = client.run(os.getpid)[victim]
        passes, killed = [], threading.Event()
        original = source.pass_sums

        def kill_soon():
            time.sleep(0.05)
            os.kill(victim_pid, signal.SIGKILL)
            killed.set()

        def pass_sums(centers, backend, progress=None):
            passes.append(len(passes) + 1)
            if len(passes) == 2:  # the first pass is over: kill during the second
                threading.Thread(target=kill_soon, daemon=True).start()
            return original(centers, backend, progress=progress)

        source.pass_sums = pass_sums
        disturbed = fit_source(source, run, np.random.default_rng(11), backend)
    assert killed.is_set() and len(passes) == undisturbed.n_iter >= 2
    np.testing.assert_array_equal(disturbed.centers, undisturbed.centers)
    assert disturbed.inertia == undisturbed.inertia
    # The nanny starts a new worker process in place of the killed one.
    client.wait_for_workers(2, timeout=60)
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and victim_pid not in pids


# -- k-means|| --------------------------------------------------------------------------------


def test_kmeans_parallel_follows_random_state(client, data):
    X, weights, folder = data
    backend = CPUBackend()
    with DaskSource.from_parquet(folder, FEATURES, weight_column="weight", client=client) as source:
        first = source.kmeans_parallel(N_CLUSTERS, np.random.default_rng(0), backend)
        again = source.kmeans_parallel(N_CLUSTERS, np.random.default_rng(0), backend)
        other = source.kmeans_parallel(N_CLUSTERS, np.random.default_rng(1), backend)
        parallel = KMeans(N_CLUSTERS, init="k-means||", random_state=0).fit(source)
        repeat = KMeans(N_CLUSTERS, init="k-means||", random_state=0).fit(source)
        plusplus = KMeans(N_CLUSTERS, init="k-means++", random_state=0).fit(source)
    assert first.shape == (N_CLUSTERS, len(FEATURES)) and first.dtype == np.float64
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(parallel.cluster_centers_, repeat.cluster_centers_)
    np.testing.assert_allclose(parallel.inertia_, plusplus.inertia_, rtol=0.03)
    # The seeds alone already sit in the clusters: each cluster mean is near one seed.
    seeds_cost = ((X[:, None] - first[None]) ** 2).sum(-1).min(1) @ weights
    assert seeds_cost < 2.0 * plusplus.inertia_


def test_kmeans_parallel_needs_a_cluster_source(data):
    X, _, _ = data
    with pytest.raises(ValueError, match=r"init='k-means\|\|' seeds on a cluster .* not "
                                         r"ArraySource; use init='k-means\+\+'"):  # fmt: skip
        KMeans(N_CLUSTERS, init="k-means||").fit(X)
    with pytest.raises(ValueError, match=r"should be 'k-means\+\+', 'k-means\|\|', 'random'"):
        KMeans(N_CLUSTERS, init="k-means").fit(X)


# -- bad data through Dask -----------------------------------------------------------------------


def test_missing_column_names_file_and_column(client, data):
    _, _, folder = data
    with pytest.raises(DataError, match=r"part-000\.parquet: column 'age': requested column is"):
        DaskSource.from_parquet(folder, [*FEATURES, "age"], client=client)


@pytest.mark.parametrize("persist", [True, False])
def test_nan_in_a_file_names_file_column_and_row(client, tmp_path, persist):
    X = np.random.default_rng().standard_normal((3 * 50, len(FEATURES)))
    X[50 + 17, 2] = np.nan
    folder = write_parts(tmp_path / "bad", X, file_rows=50)
    with pytest.raises(DataError, match=r"part-001\.parquet: column 'tenure': nan at row 17;"):
        DaskSource.from_parquet(folder, client=client, persist=persist)


def test_bad_values_in_dask_collections_name_partition_and_column(client):
    X = np.random.default_rng().standard_normal((90, 3))
    X[40, 1] = np.inf
    with pytest.raises(DataError, match=r"column '1': inf at row 10 of partition 1; expected"):
        DaskSource.from_dask(da.from_array(X, chunks=(30, 3)), client=client)
    frame = dd.from_pandas(pd.DataFrame(X, columns=["a", "b", "c"]), npartitions=3, sort=False)
    with pytest.raises(DataError, match=r"column 'b': inf at row 10 of partition 1"):
        DaskSource.from_dask(frame, client=client)
    weights = np.ones(90)
    weights[5] = -1.0
    with pytest.raises(DataError, match=r"sample_weight -1\.0 at row 5 of partition 0"):
        DaskSource.from_dask(da.from_array(np.abs(X[:, :1]), chunks=30), weights, client=client)


# -- clients -----------------------------------------------------------------------------------


def test_client_argument(client, data):
    _, _, folder = data
    assert _connect(None) == (client, False)
    with DaskSource.from_parquet(folder, FEATURES, client=client.scheduler.address) as source:
        own = source.client
        assert own is not client and source.n_samples == FILE_ROWS * N_FILES
    assert own.status == "closed" and client.status == "running"
    with pytest.raises(TypeError, match=r"client=3 should be a distributed\.Client"):
        DaskSource.from_parquet(folder, FEATURES, client=3)


def test_labels_written_from_the_workers_match_the_local_ones(client, tmp_path):
    from gpuseg.pipeline import assign

    rng = np.random.default_rng()
    directory = tmp_path / "customers"
    directory.mkdir()
    for index in range(3):
        frame = pd.DataFrame(rng.standard_normal((500, 4)), columns=list("abcd"))
        frame.insert(0, "customer_id", np.arange(500) + 500 * index)
        frame.to_parquet(directory / f"part-{index}.parquet", index=False)
    local = ParquetSource(directory, id_column="customer_id")
    km = KMeans(3, random_state=0).fit(local)
    local_report = assign(km, local, tmp_path / "local")
    with DaskSource.from_parquet(directory, id_column="customer_id", client=client) as source:
        cluster_report = assign(km, source, tmp_path / "cluster")
    assert cluster_report.rows == local_report.rows == [500, 500, 500]
    read = lambda root, files: pd.concat(pd.read_parquet(root / f) for f in files)  # noqa: E731
    pd.testing.assert_frame_equal(
        read(tmp_path / "local", local_report.files).reset_index(drop=True),
        read(tmp_path / "cluster", cluster_report.files).reset_index(drop=True),
    )
    assert (tmp_path / "cluster" / "_SUCCESS").exists()


def test_plan_is_applied_by_the_workers(client, tmp_path):
    from gpuseg.plan import ColumnSpec, FeaturePlan

    rng = np.random.default_rng()
    directory = tmp_path / "customers"
    directory.mkdir()
    frames = []
    for index in range(2):
        frame = pd.DataFrame({
            "spend": rng.lognormal(3, 1, 400),
            "orders": rng.integers(1, 20, 400).astype(float),
            "channel": rng.choice(["web", "store", "app"], 400),
        })
        frame.to_parquet(directory / f"part-{index}.parquet", index=False)
        frames.append(frame)
    whole = pd.concat(frames, ignore_index=True)
    plan = FeaturePlan([
        ColumnSpec("spend", log1p=True, clip=(0.01, 0.99)),
        ColumnSpec("orders"),
        ColumnSpec("channel", kind="categorical"),
    ]).fit(whole)
    local = ParquetSource(directory, plan=plan)
    with DaskSource.from_parquet(directory, client=client, plan=plan) as source:
        assert source.n_features == plan.n_features == local.n_features
        gathered = np.vstack([batch.X for batch in source.batches()])
    np.testing.assert_array_equal(gathered, plan.transform(whole))


def test_partitions_are_kept_in_memory_only_when_they_fit(client, data, monkeypatch):
    import gpuseg.distributed as distributed

    fits = distributed._fits_in_memory
    limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
    assert fits(client, int(0.4 * sum(limits))) and not fits(client, sum(limits))
    _, _, folder = data
    with DaskSource.from_parquet(folder, client=client) as source:
        assert source.persist is True  # a few MB against the workers' limits
    monkeypatch.setattr(distributed, "_fits_in_memory", lambda client, nbytes: False)
    with DaskSource.from_parquet(folder, client=client) as source:
        assert source.persist is False
        assert source.n_samples == FILE_ROWS * N_FILES  # re-read from Parquet on each pass


def test_job_client_checks_its_arguments():
    with job_client() as client:
        assert client is None
    with pytest.raises(ValueError, match="exclude each other"), job_client("tcp://x:1", 2):
        pass
    with pytest.raises(ValueError, match="n_workers=0"), job_client(n_workers=0):
        pass
