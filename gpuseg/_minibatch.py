"""Mini-batch passes with per-centre learning rates."""

from __future__ import annotations

import logging

import numpy as np

from gpuseg._backend import CPUBackend
from gpuseg.batches import ArraySource

logger = logging.getLogger("gpuseg")

# Stop once the smoothed batch inertia has not improved for this many consecutive steps.
_MAX_NO_IMPROVEMENT = 10


def minibatch_step(
    centers: np.ndarray,
    counts: np.ndarray,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    backend: CPUBackend,
) -> float:
    """Move each centre towards the mean of its rows in the batch, in place.

    Centre ``j`` with cumulative weight ``counts[j]`` and batch weight ``b_j`` moves by a learning
    rate ``b_j / (counts[j] + b_j)``: its position stays the exact mean of every row ever assigned
    to it at assignment time. Returns the batch inertia per unit weight (before the move).
    """
    centers32 = np.ascontiguousarray(centers, dtype=np.float32)
    _, batch = backend.assign_accumulate(X, centers32, sample_weight, runner_up=False)
    hit = batch.weights > 0
    new_counts = counts + batch.weights
    centers[hit] = (centers[hit] * counts[hit, None] + batch.sums[hit]) / new_counts[hit, None]
    counts[:] = new_counts
    return batch.inertia / max(batch.weights.sum(), np.finfo(np.float64).tiny)


def minibatch(
    source: ArraySource,
    centers: np.ndarray,
    backend: CPUBackend,
    *,
    batch_size: int,
    max_epochs: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Mini-batch steps on rows drawn at random, for at most ``max_epochs`` epochs, stopping
    early once the exponentially smoothed batch inertia stops improving.

    Returns the centres and the number of epochs started.
    """
    centers = centers.copy()
    counts = np.zeros(centers.shape[0])
    steps_per_epoch = max(1, -(-source.n_samples // batch_size))
    alpha = min(1.0, 2.0 * batch_size / (source.n_samples + 1))
    smoothed, best, no_improvement = None, np.inf, 0
    for step in range(max_epochs * steps_per_epoch):
        rows = np.sort(rng.integers(0, source.n_samples, size=batch_size))
        weights = None if source.sample_weight is None else source.sample_weight[rows]
        batch_inertia = minibatch_step(
            centers, counts, np.ascontiguousarray(source.X[rows]), weights, backend
        )
        if smoothed is None:
            smoothed = batch_inertia
        smoothed += alpha * (batch_inertia - smoothed)
        if smoothed < best:
            best, no_improvement = smoothed, 0
        else:
            no_improvement += 1
        if no_improvement >= _MAX_NO_IMPROVEMENT:
            logger.info("mini-batch: no improvement for %d steps at step %d", no_improvement, step)
            return centers, step // steps_per_epoch + 1
    return centers, max_epochs
