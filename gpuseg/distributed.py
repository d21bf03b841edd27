"""A batch source whose partitions live on a Dask cluster: every pass runs where the data is.

The only module of gpuseg that imports Dask: the command line gets its clients from
:func:`job_client`, and :mod:`gpuseg.rfm`, whose per-customer aggregation is written against the
dataframe API, gets its lazy frame from :func:`lazy_frame` and runs it with :func:`compute_lazy`.
Partitions are :class:`gpuseg.batches.Batch` objects made by tasks (read from Parquet, or
converted from the partitions of a Dask array or dataframe; the task functions, which need no
Dask, are in :mod:`gpuseg.partition_tasks`) and, by default, kept in worker memory
between passes. A pass maps the fused kernel over them as tasks with the centres as task arguments
and brings back only each partition's float64 :class:`ClusterSums`, folded on the client in
partition order, so a seed gives the same centres on any number of workers, and the same as a
local source whose blocks are the partitions.

Partitions are never scattered from the client: a worker that dies takes its partitions with it
and the scheduler recomputes them from their tasks (from the Parquet files), so a fit goes on.

Seeding on the cluster is k-means|| (Bahmani et al., "Scalable K-Means++", VLDB 2012), reached
through ``KMeans(init="k-means||")``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.delayed import Delayed
from distributed import Client, Future, LocalCluster, as_completed, default_client
from tqdm.auto import tqdm

from gpuseg import partition_tasks as tasks
from gpuseg._backend import CPUBackend
from gpuseg._lloyd import lloyd
from gpuseg._seeding import kmeans_plusplus
from gpuseg.batches import ArraySource, Batch, concatenate, take
from gpuseg.errors import DataError
from gpuseg.kernels.types import ClusterSums
from gpuseg.labels import output_name
from gpuseg.parquet import ParquetSource
from gpuseg.plan import FeaturePlan

__all__ = ["DaskSource", "is_dask_collection"]

# Rounds of oversampling of k-means||: the paper finds 5 rounds with l = 2k as good as O(log psi).
_KMEANS_PARALLEL_ROUNDS = 5
_OVERSAMPLING = 2.0
# Lloyd passes over the weighted candidates (a few thousand rows at most) in step 8.
_RECLUSTER_MAX_ITER = 300
# Seedings of the candidates in step 8, the cheapest kept: one k-means++ draw can put two centres
# in one cluster's candidates and none in another's, which the fit's passes over all rows then
# rarely undo (a test saw 3.8 times k-means++'s inertia); the candidates are few, tries cheap.
_RECLUSTER_TRIES = 10


def is_dask_collection(X: Any) -> bool:
    """Whether ``X`` is a Dask array, dataframe or series (checked without computing it)."""
    return dask.is_dask_collection(X) and isinstance(X, (da.Array, dd.DataFrame, dd.Series))


class DaskSource:
    """A batch source over partitions held by a Dask cluster.

    Build one with :meth:`from_parquet` or :meth:`from_dask`; the constructor takes ready
    partitions. Use it as a context manager (or call :meth:`close`) when it started its own
    cluster.

    Parameters
    ----------
    partitions : sequence of dask.delayed.Delayed
        Each computes one :class:`gpuseg.batches.Batch` (float32 C-contiguous ``X``, optional
        float32 weights and ids), all with the same number of columns; their order is the row
        order.
    columns : sequence
        Names of the feature columns.
    client : distributed.Client, str or None
        A client, a scheduler address to connect to, or ``None`` for the current default client,
        or when there is none a ``LocalCluster(processes=True, n_workers=2,
        threads_per_worker=1)`` owned (and closed) by this source.
    persist : bool, default True
        Compute the partitions once and keep them in worker memory between passes (a lost
        worker's partitions are recomputed from their tasks). ``False`` recomputes them on every
        pass, for data larger than the cluster's memory.

    Attributes
    ----------
    client : distributed.Client
    columns : list
    n_features : int
    n_samples : int
    partition_rows : ndarray of int64, shape (n_partitions,)
        Rows of every partition, in order.

    Examples
    --------
    >>> source = DaskSource.from_parquet("customers/", id_column="customer_id")  # doctest: +SKIP
    >>> with source:  # doctest: +SKIP
    ...     km = KMeans(8, init="k-means||", random_state=0).fit(source)
    """

    def __init__(
        self,
        partitions: Sequence[Delayed],
        columns: Sequence,
        client: Client | str | None = None,
        *,
        persist: bool = True,
    ) -> None:
        self.client, self._owned = _connect(client)
        try:
            self.columns = list(columns)
            self.n_features = len(self.columns)
            self.persist = persist
            self._delayed = list(partitions)
            if not self._delayed:
                raise ValueError("partitions=[] should hold at least one partition.")
            self._futures = self.client.compute(self._delayed) if persist else None
            parts = self._partitions()
            # Also raises the first error of the partitions (a NaN, a bad file) now, in order.
            self.partition_rows = np.array(self._map_gather(tasks.n_rows, parts), dtype=np.int64)
            del parts
            self.n_samples = int(self.partition_rows.sum())
            if self.n_samples == 0:
                raise DataError(f"{len(self._delayed)} partition(s) with no rows")
            self._starts = np.concatenate([[0], np.cumsum(self.partition_rows)])
        except BaseException:
            self.close()
            raise

    # -- constructors ---------------------------------------------------------------------------

    @classmethod
    def from_parquet(
        cls,
        path: str | os.PathLike | Sequence[str | os.PathLike],
        columns: Sequence[str] | None = None,
        id_column: str | None = None,
        weight_column: str | None = None,
        client: Client | str | None = None,
        storage_options: dict[str, Any] | None = None,
        persist: bool | str = "auto",
        plan: FeaturePlan | None = None,
    ) -> DaskSource:
        """One partition per Parquet file, read by a task on a worker.

        Paths, columns and schemas are checked on the client exactly as by
        :class:`gpuseg.parquet.ParquetSource` (same arguments, same errors); each worker then
        reads its files with a one-file ``ParquetSource``, so a NaN, infinite or null value
        raises the same :class:`~gpuseg.errors.DataError`, naming file, column and row.

        Parameters
        ----------
        path, columns, id_column, weight_column, storage_options
            As for :class:`gpuseg.parquet.ParquetSource`. The workers must reach ``path``
            (a shared filesystem or an object store URL).
        client
            As for :class:`DaskSource`.
        persist : bool or "auto", default "auto"
            As for :class:`DaskSource`; "auto" keeps the partitions in worker memory when their
            float32 blocks take at most half the workers' memory limits together, and re-reads
            them from Parquet on every pass otherwise.
        plan : gpuseg.plan.FeaturePlan, optional
            A fitted feature plan, applied by each worker to the files it reads (as
            ``ParquetSource(plan=...)`` does); then ``columns`` is not given.

        Returns
        -------
        DaskSource
            Partitions in sorted file order; files with no rows are skipped.

        Raises
        ------
        DataError
            Bad paths, files, columns or values.
        """
        options = dict(storage_options or {})
        layout = ParquetSource(
            path, columns, id_column, weight_column, storage_options=options, read_ahead=0,
            plan=plan,
        )  # fmt: skip
        read_columns = None if plan is not None else layout.columns
        feature_names = layout.columns if plan is None else list(plan.output_names)
        owner_client, owned = _connect(client)
        try:
            files = layout.files
            rows = owner_client.gather(owner_client.map(tasks.file_rows, files, options=options))
            parts = [
                dask.delayed(tasks.read_file, pure=False)(
                    file, read_columns, id_column, weight_column, options, plan
                )
                for file, n in zip(files, rows, strict=True)
                if n > 0
            ]
            if persist == "auto":
                row_bytes = 4 * len(feature_names) + 16  # float32 features, weight and id
                persist = _fits_in_memory(owner_client, sum(rows) * row_bytes)
            source = cls(parts, feature_names, owner_client, persist=persist)
        except BaseException:
            _close_owned(owner_client, owned)
            raise
        source._owned = owned
        source.files = [file for file, n in zip(files, rows, strict=True) if n > 0]
        return source

    @classmethod
    def from_dask(
        cls,
        X: da.Array | dd.DataFrame,
        sample_weight: da.Array | dd.Series | np.ndarray | None = None,
        client: Client | str | None = None,
        persist: bool | str = "auto",
    ) -> DaskSource:
        """One partition per row chunk of a 2-D Dask array, or per partition of a dataframe.

        Parameters
        ----------
        X : dask.array.Array of shape (n_samples, n_features) or dask.dataframe.DataFrame
            Numeric rows (a dataframe's columns become the feature columns). Column chunks of
            an array are merged first.
        sample_weight : dask array, dask Series or ndarray of shape (n_samples,), optional
            Non-negative row weights. A Dask one must have the partitions of ``X``; an ndarray
            is cut along the row chunks of an array ``X`` with known chunk sizes.
        client
            As for :class:`DaskSource`.
        persist : bool or "auto", default "auto"
            As for :meth:`from_parquet`; "auto" keeps the partitions unless the array's size is
            known and exceeds half the workers' memory limits.

        Returns
        -------
        DaskSource

        Raises
        ------
        DataError
            NaN, infinite or null values, negative weights, or weights not matching the rows
            (raised by the partitions' tasks, naming partition, column and row).
        """
        if isinstance(X, dd.DataFrame):
            columns = list(X.columns)
            blocks = list(X.to_delayed())
        elif isinstance(X, da.Array):
            if X.ndim != 2:
                raise ValueError(f"X.ndim == {X.ndim}; expected a 2-D dask array.")
            X = X.rechunk({1: -1})
            columns = list(range(X.shape[1]))
            blocks = [row[0] for row in X.to_delayed()]
        else:
            raise TypeError(f"X is a {type(X).__name__}; expected a dask array or dataframe.")
        weights = _weight_blocks(sample_weight, X, len(blocks))
        parts = [
            dask.delayed(tasks.dask_batch, pure=False)(block, w, i, columns)
            for i, (block, w) in enumerate(zip(blocks, weights, strict=True))
        ]
        if persist == "auto":  # unknown size or cluster: keep the partitions, as dask would
            probe = client if isinstance(client, Client) else _default_or_none()
            n_rows = X.shape[0] if isinstance(X, da.Array) else np.nan
            persist = bool(
                probe is None
                or np.isnan(n_rows)
                or _fits_in_memory(probe, int(n_rows) * (4 * len(columns) + 8))
            )
        return cls(parts, columns, client, persist=persist)

    # -- the source interface ---------------------------------------------------------------------

    def batches(self) -> Iterator[Batch]:
        """Yield the partitions in order, one at a time, fetched to the client (small data)."""
        parts = self._partitions()
        for part in parts:
            yield part.result()

    def sample(self, n_rows: int, rng: np.random.Generator) -> Batch:
        """Return ``min(n_rows, n_samples)`` distinct rows drawn uniformly, in ascending order.

        The rows are ``sort(rng.choice(n_samples, n_rows, replace=False))``, the rows
        :class:`gpuseg.batches.ArraySource` and :class:`gpuseg.parquet.ParquetSource` draw from
        the same ``rng``; each partition gathers its own on a worker.
        """
        if n_rows < 1:
            raise ValueError(f"n_rows={n_rows!r} should be >= 1.")
        if n_rows >= self.n_samples:
            rows = np.arange(self.n_samples, dtype=np.int64)
        else:
            rows = np.sort(rng.choice(self.n_samples, size=n_rows, replace=False))
        return self.take(rows)

    def take(self, rows: np.ndarray) -> Batch:
        """The given global rows (ascending row numbers), gathered from their partitions."""
        rows = np.asarray(rows, dtype=np.int64)
        bounds = np.searchsorted(rows, self._starts)
        wanted = [(p, lo, hi) for p, (lo, hi) in enumerate(itertools.pairwise(bounds)) if lo < hi]
        parts = self._partitions([p for p, _, _ in wanted])
        futures = [
            self.client.submit(take, part, rows[lo:hi] - self._starts[p], pure=False)
            for part, (p, lo, hi) in zip(parts, wanted, strict=True)
        ]
        pieces = self.client.gather(futures)
        return concatenate(pieces, self.n_features)

    def pass_sums(
        self, centers: np.ndarray, backend: CPUBackend, progress: str | None = None
    ) -> ClusterSums:
        """One fused pass on the workers: every partition's sums, folded in partition order.

        Parameters
        ----------
        centers : ndarray of shape (n_clusters, n_features)
            Sent to every task as an argument (cast to float32).
        backend : CPUBackend
            Runs the kernel on the workers.
        progress : str, optional
            Label of a progress bar over the rows of completed partitions.

        Returns
        -------
        ClusterSums
            Exactly what a local pass over the same blocks in the same order returns.
        """
        centers32 = np.ascontiguousarray(centers, dtype=np.float32)
        parts = self._partitions()
        futures = self.client.map(
            tasks.partition_sums, parts, centers=centers32, backend=backend, pure=False
        )
        index = {future.key: p for p, future in enumerate(futures)}
        with tqdm(
            total=self.n_samples, desc=progress, unit="rows", unit_scale=True,
            disable=progress is None, leave=False,
        ) as bar:  # fmt: skip
            for future in as_completed(futures):
                bar.update(int(self.partition_rows[index[future.key]]))
        total = ClusterSums.zeros(*centers.shape)
        for sums in self.client.gather(futures):
            total.add(sums)
        return total

    def assign_labels(self, centers: np.ndarray, backend: CPUBackend) -> np.ndarray:
        """Nearest centre (int32) of every row, in row order, brought back to the client."""
        centers32 = np.ascontiguousarray(centers, dtype=np.float32)
        futures = self.client.map(
            tasks.partition_labels, self._partitions(), centers=centers32, backend=backend,
            pure=False,
        )  # fmt: skip
        labels = self.client.gather(futures)
        return np.concatenate(labels) if labels else np.empty(0, dtype=np.int32)

    def write_labels(
        self, centers: np.ndarray, backend: CPUBackend, output_dir: Path, ambiguity: float
    ) -> list[tuple[str, int]]:
        """Write one labels file per partition from the workers (``output_dir`` must be shared
        with them); each file atomically, as :func:`gpuseg.labels.write_labels_file` does.

        Returns the ``(file name, rows)`` of every partition, in partition order.
        """
        centers32 = np.ascontiguousarray(centers, dtype=np.float32)
        files = getattr(self, "files", None) or []
        names = [
            output_name(files[p] if len(files) == len(self._delayed) else "partition", p)
            for p in range(len(self._delayed))
        ]
        rows = self._map_gather(
            tasks.partition_write_labels, self._partitions(), [output_dir / n for n in names],
            centers=centers32, backend=backend, ambiguity=ambiguity,
        )  # fmt: skip
        return list(zip(names, rows, strict=True))

    # -- k-means|| -----------------------------------------------------------------------------

    def kmeans_parallel(
        self,
        n_clusters: int,
        rng: np.random.Generator,
        backend: CPUBackend,
        *,
        n_rounds: int = _KMEANS_PARALLEL_ROUNDS,
        oversampling: float = _OVERSAMPLING,
    ) -> np.ndarray:
        """k-means|| seeding (Bahmani et al. 2012, Algorithm 2) on the cluster.

        Every round reads each partition once and computes distances to the new candidates
        only: each partition keeps, on its worker, its rows' weighted squared distance to the
        nearest candidate and that candidate's index. The candidates, weighted by the sample
        weight of the rows nearest to them, are then reduced to ``n_clusters`` centres on the
        client by weighted k-means++ and weighted Lloyd, the cheapest of 10 tries.

        Parameters
        ----------
        n_clusters : int
        rng : numpy.random.Generator
            Draws the first centre and the seed of every round; the same state gives the same
            centres whatever the number of workers.
        backend : CPUBackend
        n_rounds : int, default 5
            Oversampling rounds (the paper's O(log psi), 5 in its experiments).
        oversampling : float, default 2.0
            ``l / k``: each round draws about ``oversampling * n_clusters`` candidates.

        Returns
        -------
        ndarray of float64, shape (n_clusters, n_features)
        """
        client = self.client
        parts = self._partitions()
        # Step 1: C <- one row drawn with probability proportional to its weight.
        totals = np.array(self._map_gather(tasks.weight_total, parts))
        cumulative = np.cumsum(totals)
        if not cumulative[-1] > 0:
            raise DataError("sample weights sum to zero; expected at least one positive weight")
        target = rng.uniform() * cumulative[-1]
        p = min(int(np.searchsorted(cumulative, target, side="right")), len(parts) - 1)
        while totals[p] <= 0:  # a target on a boundary, past a weightless partition
            p -= 1
        local = target - (cumulative[p] - totals[p])
        candidates = [client.submit(tasks.row_at_weight, parts[p], local, pure=False).result()]
        # Step 2: psi <- phi_X(C), kept per row as (weighted distance, nearest candidate).
        states = client.map(
            tasks.closest, parts, [None] * len(parts), new=candidates[0], offset=0, backend=backend,
            pure=False,
        )  # fmt: skip
        cost = float(np.sum(self._map_gather(tasks.state_cost, states)))
        n_candidates = 1
        # Steps 3-6: a few rounds instead of O(log psi); each adds C' to C.
        for _ in range(n_rounds):
            if cost <= 0:  # every row coincides with a candidate
                break
            # Step 4: C' <- every row independently with probability l * w d^2(x, C) / phi_X(C).
            round_seed = int(rng.integers(np.iinfo(np.int64).max))
            picked = client.map(
                tasks.oversample, parts, states, range(len(parts)),
                factor=oversampling * n_clusters / cost, seed=round_seed, pure=False,
            )  # fmt: skip
            new = concatenate(client.gather(picked), self.n_features).X
            if new.shape[0] == 0:
                continue
            # Step 5: C <- C u C', and phi_X(C) updated with distances to C' only.
            states = client.map(
                tasks.closest, parts, states, new=new, offset=n_candidates, backend=backend,
                pure=False,
            )  # fmt: skip
            candidates.append(new)
            n_candidates += new.shape[0]
            cost = float(np.sum(self._map_gather(tasks.state_cost, states)))
        # Step 7: w_x <- weight of the rows closer to candidate x than to any other.
        counts = self._map_gather(tasks.candidate_weights, parts, states, n_candidates=n_candidates)
        del states, parts
        weights = np.sum(counts, axis=0)
        candidates_X = np.concatenate(candidates)
        kept = weights > 0
        candidates_X, weights = candidates_X[kept], weights[kept].astype(np.float32)
        # Step 8: recluster the weighted candidates into k centres.
        reduced = ArraySource(candidates_X, weights, block_rows=max(1, candidates_X.shape[0]))
        best = None
        for _ in range(_RECLUSTER_TRIES):
            centers = kmeans_plusplus(reduced.X, weights, n_clusters, rng, backend)
            result = lloyd(
                reduced, centers, backend, max_iter=_RECLUSTER_MAX_ITER, tol=0.0,
                far_source=reduced,
            )  # fmt: skip
            if best is None or result.inertia < best.inertia:
                best = result
        return best.centers

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the partitions; close the client and cluster if this source started them."""
        futures = getattr(self, "_futures", None)
        self._futures = None
        if futures and self.client.status == "running":
            self.client.cancel(futures)
        _close_owned(self.client, self._owned)
        self._owned = False

    def __enter__(self) -> DaskSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        """Say how many partitions and rows, on which scheduler."""
        return (
            f"DaskSource({len(self.partition_rows)} partition(s), n_samples={self.n_samples}, "
            f"n_features={self.n_features}, scheduler={self.client.scheduler.address!r})"
        )

    # -- helpers ----------------------------------------------------------------------------------

    def _partitions(self, which: Sequence[int] | None = None) -> list[Future]:
        """Futures of the partitions (all, or those numbered in ``which``): the persisted ones,
        or a fresh computation of them."""
        if which is None:
            which = range(len(self._delayed))
        if self._futures is not None:
            return [self._futures[p] for p in which]
        return self.client.compute([self._delayed[p] for p in which])

    def _map_gather(self, function, *iterables, **kwargs) -> list:
        """Map ``function`` over partitions as tasks and return the results in order."""
        return self.client.gather(self.client.map(function, *iterables, pure=False, **kwargs))


# -- the client ---------------------------------------------------------------------------------


@contextlib.contextmanager
def job_client(
    scheduler: str | None = None, n_workers: int | None = None
) -> Iterator[Client | None]:
    """The Dask client of a batch job: a running scheduler's, a new local cluster's, or none.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    n_workers : int, optional
        Start a :class:`distributed.LocalCluster` of this many single-threaded worker processes
        instead, closed when the block ends.

    Yields
    ------
    distributed.Client or None
        ``None`` when neither is given: the job runs in this process.

    Raises
    ------
    ValueError
        Both given, or ``n_workers < 1``.
    OSError
        The scheduler cannot be reached (within 10 s).
    """
    if scheduler and n_workers:
        raise ValueError("scheduler and n_workers exclude each other; give one of them.")
    if scheduler:
        with Client(scheduler, timeout="10s") as client:
            yield client
    elif n_workers is not None:
        if n_workers < 1:
            raise ValueError(f"n_workers={n_workers} should be an integer >= 1.")
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        with cluster, Client(cluster) as client:
            yield client
    else:
        yield None


def lazy_frame(table: Any, name: str = "table") -> dd.DataFrame:
    """A Dask dataframe over ``table``: a Dask frame as it is, a pandas frame as one partition,
    or a Parquet path, glob or list of paths opened lazily.

    Raises
    ------
    ValueError
        ``table`` is none of these; the message calls it ``name`` (the caller's parameter).
    """
    if isinstance(table, dd.DataFrame):
        return table
    if isinstance(table, pd.DataFrame):
        return dd.from_pandas(table, npartitions=1, sort=False)
    if isinstance(table, (str, os.PathLike)) or (
        isinstance(table, Sequence) and all(isinstance(p, str) for p in table)
    ):
        return dd.read_parquet(os.fspath(table) if isinstance(table, os.PathLike) else table)
    raise ValueError(
        f"{name} should be a pandas or Dask DataFrame or a Parquet path, glob or list of "
        f"paths, got {type(table).__name__}."
    )


def compute_lazy(lazy: dict[str, Any], client: Client | None = None) -> dict[str, Any]:
    """Compute a dict of Dask collections in one graph, on ``client`` or, when None, in this
    process; return the results under the same keys."""
    return dict(zip(lazy, dask.compute(*lazy.values(), scheduler=client), strict=True))


def local_progress_bar(show: bool) -> contextlib.AbstractContextManager:
    """Dask's progress bar (on stderr) over tasks run by the local scheduler, or a no-op."""
    if not show:
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(out=sys.stderr)


def planned_parquet_source(
    files: Sequence[str],
    plan: FeaturePlan,
    filters: Any,
    client: Client,
    persist: bool | str = "auto",
) -> DaskSource:
    """A :class:`DaskSource` of Parquet files read with ``filters`` and put through ``plan``.

    Each partition is read (only the plan's input columns, only the rows passing ``filters``) and
    transformed by the workers; the client only builds the graph. ``persist`` is as for
    :meth:`DaskSource.from_dask`.
    """
    frame = dd.read_parquet(list(files), columns=plan.input_columns, filters=filters)
    names = plan.output_names
    features = frame.map_partitions(
        lambda part: pd.DataFrame(plan.transform(part), columns=names, index=part.index),
        meta=pd.DataFrame({name: np.zeros(0, np.float32) for name in names}),
    )
    return DaskSource.from_dask(features, client=client, persist=persist)


def _connect(client: Client | str | None) -> tuple[Client, bool]:
    """The client to use and whether this source owns it (and so must close it)."""
    if isinstance(client, Client):
        return client, False
    if isinstance(client, str):
        return Client(client), True
    if client is not None:
        raise TypeError(
            f"client={client!r} should be a distributed.Client, a scheduler address or None."
        )
    try:
        return default_client(), False
    except ValueError:
        cluster = LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
        )
        return Client(cluster), True


def _default_or_none() -> Client | None:
    try:
        return default_client()
    except ValueError:
        return None


def _fits_in_memory(client: Client, nbytes: int) -> bool:
    """Whether ``nbytes`` take at most half of the workers' memory limits together (no limit
    set counts as fitting)."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    if not limits or 0 in limits:
        return True
    return nbytes <= 0.5 * sum(limits)


def _close_owned(client: Client, owned: bool) -> None:
    """Close ``client`` (and a LocalCluster it started) when this module opened it."""
    if not owned:
        return
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


def _weight_blocks(sample_weight, X, n_blocks: int) -> list:
    """``sample_weight`` cut into one piece (delayed or array) per partition of ``X``."""
    if sample_weight is None:
        return [None] * n_blocks
    if isinstance(sample_weight, (dd.Series, dd.DataFrame)):
        blocks = list(sample_weight.to_delayed())
    elif isinstance(sample_weight, da.Array):
        if isinstance(X, da.Array):
            sample_weight = sample_weight.rechunk((X.chunks[0],))
        blocks = list(sample_weight.to_delayed().ravel())
    else:
        weights = np.asarray(sample_weight)
        if not isinstance(X, da.Array) or np.isnan(X.shape[0]):
            raise ValueError(
                "sample_weight as an in-memory array needs X as a dask array with known chunk "
                "sizes; give a dask Series or array with the partitions of X instead."
            )
        if weights.shape != (X.shape[0],):
            raise ValueError(
                f"sample_weight.shape == {weights.shape}, expected ({X.shape[0]},) "
                "(one per row of X)."
            )
        stops = np.cumsum(X.chunks[0])
        blocks = [weights[stop - n : stop] for stop, n in zip(stops, X.chunks[0], strict=True)]
    if len(blocks) != n_blocks:
        raise ValueError(
            f"sample_weight has {len(blocks)} partitions; expected {n_blocks}, those of X."
        )
    return blocks
