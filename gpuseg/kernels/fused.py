"""Fused pass: nearest and runner-up centre of every row, and per-centre float64 sums, in one read.

For a block ``X`` of shape ``(n_samples, n_features)`` (float32, C-contiguous, read), weights ``w``
of shape ``(n_samples,)`` (float32, read) and centres ``C`` of shape ``(n_clusters, n_features)``
(read), the pass writes::

    labels[i]           = argmin_j ||x_i - c_j||^2                    (int32)
    distances[i]        = min_j ||x_i - c_j||^2                       (float32)
    second_labels[i]    = the runner-up centre, -1 when n_clusters==1 (int32)
    second_distances[i] = its squared distance, inf when n_clusters==1 (float32)

and, when accumulating, the float64 totals::

    sums[j]    = sum_{i: labels[i]=j} w_i x_i
    weights[j] = sum_{i: labels[i]=j} w_i
    inertia    = sum_i w_i distances[i]

Distances are computed directly as sums of squared differences in float32 (no ``|x|^2 - 2x.c``
cancellation), vectorised across centres; totals are accumulated in float64 per chunk of rows and
the chunks are reduced in chunk order, so results do not depend on the thread count. Ties go to the
lower centre index.
"""

from __future__ import annotations

import numba
import numpy as np

from gpuseg.kernels._layout import FASTMATH, chunk_layout, empty_partials, update_two_smallest
from gpuseg.kernels.types import Assignment, ClusterSums


@numba.njit(inline="always")
def accumulate_row(X, i, w, label, dist, sums, weights):
    """Add row ``i`` with weight ``w`` to centre ``label``'s float64 sums; return ``w * dist``."""
    wf = np.float64(w)
    weights[label] += wf
    for f in range(X.shape[1]):
        sums[label, f] += wf * X[i, f]
    return wf * dist


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def _assign_accumulate_cpu(
    X,  # IN (n_samples, n_features) float32
    sample_weight,  # IN (n_samples,) float32, or (1,) when not weighted
    centers_t,  # IN (n_features, n_clusters) float32, transposed for vectorising over centres
    rows_per_chunk,  # IN int
    weighted,  # IN bool
    accumulate,  # IN bool
    labels,  # OUT (n_samples,) int32
    distances,  # OUT (n_samples,) float32
    second_labels,  # OUT (n_samples,) int32
    second_distances,  # OUT (n_samples,) float32
    sums_partial,  # OUT (n_chunks, n_clusters, n_features) float64
    weights_partial,  # OUT (n_chunks, n_clusters) float64
    inertia_partial,  # OUT (n_chunks,) float64
):
    n_samples, n_features = X.shape
    n_clusters = centers_t.shape[1]
    n_chunks = inertia_partial.shape[0]
    for chunk in numba.prange(n_chunks):
        start = chunk * rows_per_chunk
        stop = min(start + rows_per_chunk, n_samples)
        row_dist = np.empty(n_clusters, dtype=np.float32)
        sums = sums_partial[chunk]
        weights = weights_partial[chunk]
        inertia = 0.0
        for i in range(start, stop):
            for j in range(n_clusters):
                row_dist[j] = 0.0
            for f in range(n_features):
                x = X[i, f]
                for j in range(n_clusters):
                    diff = x - centers_t[f, j]
                    row_dist[j] += diff * diff
            best_d, best_j = row_dist[0], 0
            second_d, second_j = np.float32(np.inf), -1
            for j in range(1, n_clusters):
                best_d, best_j, second_d, second_j = update_two_smallest(
                    row_dist[j], j, best_d, best_j, second_d, second_j
                )
            labels[i] = best_j
            distances[i] = best_d
            second_labels[i] = second_j
            second_distances[i] = second_d
            if accumulate:
                w = sample_weight[i] if weighted else np.float32(1.0)
                inertia += accumulate_row(X, i, w, best_j, best_d, sums, weights)
        inertia_partial[chunk] = inertia


def check_block(X: np.ndarray, centers: np.ndarray, sample_weight: np.ndarray | None) -> None:
    """Raise ``ValueError`` unless the block, centres and weights fit the kernels' contract."""
    if X.dtype != np.float32 or X.ndim != 2 or not X.flags.c_contiguous:
        raise ValueError(
            f"X must be a C-contiguous 2-D float32 array; got ndim={X.ndim}, dtype={X.dtype}."
        )
    if centers.ndim != 2 or centers.shape[1] != X.shape[1] or centers.shape[0] < 1:
        raise ValueError(
            f"centers must have shape (n_clusters >= 1, {X.shape[1]}); got {centers.shape}."
        )
    if sample_weight is not None and sample_weight.shape != (X.shape[0],):
        raise ValueError(
            f"sample_weight must have shape ({X.shape[0]},); got {sample_weight.shape}."
        )


def assign_accumulate(
    X: np.ndarray,
    centers: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    accumulate: bool = True,
    out: Assignment | None = None,
) -> tuple[Assignment, ClusterSums]:
    """Assign every row to its nearest and runner-up centre and sum the rows per centre.

    Parameters
    ----------
    X : ndarray of float32, shape (n_samples, n_features)
        The block, C-contiguous.
    centers : ndarray, shape (n_clusters, n_features)
        The centres; cast to float32 for the distances.
    sample_weight : ndarray of float32, shape (n_samples,), optional
        Row weights; ``None`` weighs every row 1.
    accumulate : bool, default True
        Whether to compute the per-centre sums (``False`` serves ``predict``).
    out : Assignment, optional
        Buffers to write the per-row results into; allocated when omitted.

    Returns
    -------
    assignment : Assignment
        Per-row nearest and runner-up centres and squared distances.
    cluster_sums : ClusterSums
        Float64 per-centre sums, weights and inertia (zeros when ``accumulate=False``).

    Examples
    --------
    >>> X = np.array([[0, 0], [0, 1], [9, 9]], dtype=np.float32)
    >>> a, s = assign_accumulate(X, np.array([[0, 0], [9, 9]], dtype=np.float32))
    >>> a.labels.tolist(), s.weights.tolist(), s.inertia
    ([0, 0, 1], [2.0, 1.0], 1.0)
    """
    check_block(X, centers, sample_weight)
    n_samples, n_features = X.shape
    n_clusters = centers.shape[0]
    out = Assignment.empty(n_samples) if out is None else out
    n_chunks, rows_per_chunk = chunk_layout(n_samples, n_clusters, n_features)
    sums_p, weights_p, inertia_p = empty_partials(n_chunks, n_clusters, n_features)
    weighted = sample_weight is not None
    weights_in = sample_weight if weighted else np.ones(1, dtype=np.float32)
    centers_t = np.ascontiguousarray(centers.T, dtype=np.float32)
    _assign_accumulate_cpu(
        X, weights_in, centers_t, rows_per_chunk, weighted, accumulate,
        out.labels, out.distances, out.second_labels, out.second_distances,
        sums_p, weights_p, inertia_p,
    )  # fmt: skip
    return out, reduce_partials(sums_p, weights_p, inertia_p)


def reduce_partials(sums_p: np.ndarray, weights_p: np.ndarray, inertia_p: np.ndarray):
    """Fold per-chunk partials in chunk order into one :class:`ClusterSums`."""
    total = ClusterSums.zeros(sums_p.shape[1], sums_p.shape[2])
    for chunk in range(inertia_p.shape[0]):
        total.sums += sums_p[chunk]
        total.weights += weights_p[chunk]
        total.inertia += float(inertia_p[chunk])
    return total
