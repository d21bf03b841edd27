"""Exact Lloyd passes over a batch source, and the shared building blocks of every fitting loop."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from gpuseg._backend import CPUBackend
from gpuseg.batches import ArraySource, BatchSource
from gpuseg.kernels.types import Assignment, ClusterSums, LabelsOnly, ReusedBlock

logger = logging.getLogger("gpuseg")


@dataclass
class LloydResult:
    """Outcome of a Lloyd run: ``centers`` are the ones whose assignment and inertia are given."""

    centers: np.ndarray
    cluster_sums: ClusterSums
    n_iter: int
    converged: bool

    @property
    def inertia(self) -> float:
        """Exact float64 inertia of ``centers``."""
        return self.cluster_sums.inertia


def run_pass(
    source: BatchSource,
    centers: np.ndarray,
    backend: CPUBackend,
    assignment: Assignment | LabelsOnly | None = None,
    progress: str | None = None,
) -> ClusterSums:
    """Map the fused pass over the source's blocks and fold their sums in block order.

    A source that runs the pass where its data lives (a Dask cluster) does so through its own
    ``pass_sums``. When ``assignment`` is given (one row per source row), the labels of every
    block are written into it (an :class:`Assignment` keeps every per-row output, a
    :class:`LabelsOnly` the labels); without it they go to one :class:`ReusedBlock`, so a pass
    writes no fresh memory per block. ``progress`` is the label of a progress bar (rows and
    rows/s) on stderr, or ``None`` for none.
    """
    if hasattr(source, "pass_sums"):
        return source.pass_sums(centers, backend, progress=progress)
    centers32 = np.ascontiguousarray(centers, dtype=np.float32)
    total = ClusterSums.zeros(*centers.shape)
    outputs = ReusedBlock() if assignment is None else assignment
    runner_up = isinstance(assignment, Assignment)  # the others keep no runner-up
    offset = 0
    with tqdm(
        total=getattr(source, "n_samples", None), desc=progress, unit="rows", unit_scale=True,
        disable=progress is None, leave=False,
    ) as bar:  # fmt: skip
        for batch in source.batches():
            n_rows = batch.X.shape[0]
            out = outputs.view(offset, offset + n_rows)
            _, sums = backend.assign_accumulate(
                batch.X, centers32, batch.sample_weight, out=out, runner_up=runner_up
            )
            total.add(sums)
            offset += n_rows
            bar.update(n_rows)
    return total


def nearest_labels(source: ArraySource, centers: np.ndarray, backend: CPUBackend) -> np.ndarray:
    """Index of the nearest centre of every row of ``source`` (int32), block by block.

    Only the labels are kept (:class:`LabelsOnly`) and no sums are computed, so labelling ``n``
    rows writes fresh memory for ``n`` labels and one block of scratch.
    """
    centers32 = np.ascontiguousarray(centers, dtype=np.float32)
    labels = LabelsOnly.empty(source.n_samples)
    offset = 0
    for batch in source.batches():
        n_rows = batch.X.shape[0]
        out = labels.view(offset, offset + n_rows)
        backend.assign_accumulate(batch.X, centers32, accumulate=False, out=out, runner_up=False)
        offset += n_rows
    return labels.labels


def relocate_empty_clusters(
    centers: np.ndarray, weights: np.ndarray, far_source: ArraySource, backend: CPUBackend
) -> int:
    """Move every centre that received no weight onto the rows of ``far_source`` farthest from
    their nearest centre; return how many were moved."""
    empty = np.flatnonzero(weights <= 0)
    if empty.size == 0:
        return 0
    centers32 = np.ascontiguousarray(centers, dtype=np.float32)
    assignment, _ = backend.assign_accumulate(far_source.X, centers32, accumulate=False)
    farthest = np.argsort(-assignment.distances, kind="stable")[: empty.size]
    farthest = farthest[assignment.distances[farthest] > 0]
    centers[empty[: farthest.size]] = far_source.X[farthest]
    return int(farthest.size)


def updated_centers(
    centers: np.ndarray, cluster_sums: ClusterSums, far_source: ArraySource, backend: CPUBackend
) -> tuple[np.ndarray, int]:
    """Means of the assigned rows; empty clusters re-seeded from far rows. Returns the new centres
    and how many were re-seeded."""
    new_centers = centers.copy()
    filled = cluster_sums.weights > 0
    new_centers[filled] = cluster_sums.sums[filled] / cluster_sums.weights[filled, None]
    moved = relocate_empty_clusters(new_centers, cluster_sums.weights, far_source, backend)
    return new_centers, moved


def lloyd(
    source: BatchSource,
    centers: np.ndarray,
    backend: CPUBackend,
    *,
    max_iter: int,
    tol: float,
    far_source: ArraySource,
    assignment: Assignment | LabelsOnly | None = None,
    progress: bool = False,
    name: str = "lloyd pass",
) -> LloydResult:
    """Exact Lloyd passes from ``centers`` until pass ``t`` gives
    ``inertia[t-1] - inertia[t] <= tol * inertia[t-1]`` or ``max_iter`` passes have run.

    The returned centres are those of the last pass, so that its assignment and inertia are
    exactly theirs (the last update is not applied). ``name`` labels the passes in the log and
    on the progress bar.
    """
    previous_inertia = np.inf
    just_relocated = True
    for n_iter in range(1, max_iter + 1):
        label = f"{name} {n_iter}" if progress else None
        cluster_sums = run_pass(source, centers, backend, assignment, label)
        inertia = cluster_sums.inertia
        logger.info("%s %d: inertia %.8g", name, n_iter, inertia)
        if not just_relocated and previous_inertia - inertia <= tol * previous_inertia:
            return LloydResult(centers, cluster_sums, n_iter, converged=True)
        if n_iter == max_iter:
            break
        previous_inertia = inertia
        centers, moved = updated_centers(centers, cluster_sums, far_source, backend)
        just_relocated = moved > 0
    return LloydResult(centers, cluster_sums, max_iter, converged=False)
