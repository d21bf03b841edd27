"""What a Dask worker does with one partition: the task functions of :mod:`gpuseg.distributed`.

Module functions (so that workers import them by name) on one :class:`gpuseg.batches.Batch`:
read a Parquet file as one block, turn a Dask array or dataframe partition into a block, run the
fused pass and write labels, and the per-partition steps of k-means|| (nearest candidate, cost,
oversampling, candidate weights). None of them imports Dask; the graph around them is built in
:mod:`gpuseg.distributed`.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from gpuseg._backend import CPUBackend
from gpuseg.batches import Batch, concatenate
from gpuseg.errors import DataError
from gpuseg.kernels.types import Assignment, ClusterSums, ReusedBlock
from gpuseg.labels import write_labels_file
from gpuseg.parquet import ParquetSource
from gpuseg.plan import FeaturePlan


def file_rows(path: str, options: dict[str, Any]) -> int:
    """Rows of one Parquet file, from its footer."""
    import fsspec

    with fsspec.open(path, "rb", **options) as f:
        return pq.ParquetFile(f).metadata.num_rows


def read_file(
    path: str,
    columns: list[str],
    id_column: str | None,
    weight_column: str | None,
    options: dict[str, Any],
    plan: FeaturePlan | None = None,
) -> Batch:
    """One Parquet file as one block, validated as a local ParquetSource validates it."""
    source = ParquetSource(
        path, columns, id_column, weight_column,
        block_rows=sys.maxsize, read_ahead=0, storage_options=options, plan=plan,
        persist=False,
    )  # fmt: skip
    blocks = list(source.batches())
    if len(blocks) == 1:
        return blocks[0]
    return concatenate(blocks, source.n_features)


def dask_batch(block, weights, index: int, columns: list) -> Batch:
    """A partition of a Dask collection as a float32 block, refusing NaN, inf and bad weights."""
    ids = None
    if hasattr(block, "to_numpy"):  # a pandas DataFrame
        ids = np.asarray(block.index)
        block = block.to_numpy(dtype=np.float32, na_value=np.nan)
    X = np.ascontiguousarray(block, dtype=np.float32)
    where = f"partition {index}"
    if not np.isfinite(X).all():
        bad = ~np.isfinite(X)
        r = int(np.flatnonzero(bad.any(axis=1))[0])
        j = int(np.flatnonzero(bad[r])[0])
        raise DataError(
            f"{float(X[r, j])!r} at row {r} of {where}; expected finite numbers (drop or impute "
            "such rows first)",
            column=columns[j],
        )
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float32).reshape(-1)
        if weights.shape[0] != X.shape[0]:
            raise DataError(
                f"{where} has {X.shape[0]} rows but {weights.shape[0]} sample weights; expected "
                "sample_weight partitioned like X"
            )
        bad = ~(np.isfinite(weights) & (weights >= 0))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"sample_weight {float(weights[r])!r} at row {r} of {where}; expected finite "
                "numbers >= 0"
            )
    return Batch(X, weights, ids)


def n_rows(batch: Batch) -> int:
    """Rows of a partition."""
    return batch.X.shape[0]


# Each worker thread's block of per-row outputs for passes that keep none (see ReusedBlock): the
# passes of a fit then do not write fresh memory for every partition.
_thread_outputs = threading.local()


def _discarded_outputs(n_rows: int) -> Assignment:
    """An assignment of ``n_rows`` rows over this thread's reused block."""
    outputs = getattr(_thread_outputs, "block", None)
    if outputs is None:
        outputs = _thread_outputs.block = ReusedBlock()
    return outputs.view(0, n_rows)


def partition_sums(batch: Batch, centers: np.ndarray, backend: CPUBackend) -> ClusterSums:
    """The fused pass over one partition: its per-centre float64 sums only."""
    n_rows = batch.X.shape[0]
    if n_rows == 0:
        return ClusterSums.zeros(*centers.shape)
    out = _discarded_outputs(n_rows)
    _, sums = backend.assign_accumulate(
        batch.X, centers, batch.sample_weight, out=out, runner_up=False
    )
    return sums


def partition_labels(batch: Batch, centers: np.ndarray, backend: CPUBackend) -> np.ndarray:
    """Nearest centre of every row of one partition."""
    if batch.X.shape[0] == 0:
        return np.empty(0, dtype=np.int32)
    assignment, _ = backend.assign_accumulate(batch.X, centers, accumulate=False)
    return assignment.labels


def partition_write_labels(
    batch: Batch, target: Path, centers: np.ndarray, backend: CPUBackend, ambiguity: float
) -> int:
    """Write the labels file of one partition; return its rows."""

    def nearest_two(X: np.ndarray):
        assignment, _ = backend.assign_accumulate(X, centers, accumulate=False)
        return assignment

    return write_labels_file(target, [batch], nearest_two, ambiguity)


def row_weights(batch: Batch) -> np.ndarray:
    if batch.sample_weight is None:
        return np.ones(batch.X.shape[0])
    return batch.sample_weight.astype(np.float64)


def weight_total(batch: Batch) -> float:
    return float(row_weights(batch).sum())


def row_at_weight(batch: Batch, target: float) -> np.ndarray:
    """The row at which the cumulative weight of the partition first exceeds ``target``."""
    cumulative = np.cumsum(row_weights(batch))
    row = min(int(np.searchsorted(cumulative, target, side="right")), batch.X.shape[0] - 1)
    return batch.X[row : row + 1].copy()


def closest(
    batch: Batch,
    state: tuple[np.ndarray, np.ndarray] | None,
    new: np.ndarray,
    offset: int,
    backend: CPUBackend,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted squared distance of every row to its nearest candidate, and that candidate,
    updated with the candidates ``new`` (numbered from ``offset``)."""
    n_rows = batch.X.shape[0]
    if n_rows == 0:
        return np.empty(0), np.empty(0, dtype=np.int32)
    new32 = np.ascontiguousarray(new, dtype=np.float32)
    assignment, _ = backend.assign_accumulate(batch.X, new32, accumulate=False)
    cost = row_weights(batch) * assignment.distances.astype(np.float64)
    nearest = assignment.labels.astype(np.int32) + np.int32(offset)
    if state is None:
        return cost, nearest
    old_cost, old_nearest = state
    closer = cost < old_cost
    return np.where(closer, cost, old_cost), np.where(closer, nearest, old_nearest)


def state_cost(state: tuple[np.ndarray, np.ndarray]) -> float:
    """Total weighted squared distance of a partition's rows to their nearest candidate."""
    return float(state[0].sum())


def oversample(
    batch: Batch, state: tuple[np.ndarray, np.ndarray], index: int, factor: float, seed: int
) -> Batch:
    """Rows kept independently with probability ``min(1, factor * w d^2)``; the draws depend on
    the round's seed and the partition's index only, not on which worker runs the task."""
    rng = np.random.default_rng([seed, index])
    keep = rng.random(batch.X.shape[0]) < factor * state[0]
    return Batch(batch.X[keep].copy())


def candidate_weights(
    batch: Batch, state: tuple[np.ndarray, np.ndarray], n_candidates: int
) -> np.ndarray:
    """Total weight of the partition's rows nearest to each candidate."""
    return np.bincount(state[1], weights=row_weights(batch), minlength=n_candidates)
