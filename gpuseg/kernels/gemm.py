"""Matrix-product path of the fused pass, for large ``n_clusters x n_features``.

Same contract as :func:`gpuseg.kernels.fused.assign_accumulate`. Rows are processed in tiles: BLAS
computes ``dots = X_tile @ C.T`` in float32, the nearest and runner-up centres are found from
``|c_j|^2 - 2 dots[i, j]`` (the row's own norm does not change the order), and their distances are
then recomputed directly as sums of squared differences, so reported distances and inertia carry
no cancellation error. Tile ``t`` belongs to lane ``t % 16``; each lane is worked through by one
thread with single-threaded BLAS (so BLAS threads never spin against the lanes), and the lanes'
float64 partials are reduced in lane order: results do not depend on the thread count.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from gpuseg.kernels._layout import FASTMATH, empty_partials, update_two_smallest
from gpuseg.kernels.fused import accumulate_row, check_block, reduce_partials
from gpuseg.kernels.types import Assignment, ClusterSums

TILE_ROWS = 4096
_LANES = 16


@numba.njit(inline="always")
def squared_distance(X, i, centers, j):
    """Return ``||X[i] - centers[j]||^2`` in float32."""
    acc = np.float32(0.0)
    for f in range(X.shape[1]):
        diff = X[i, f] - centers[j, f]
        acc += diff * diff
    return acc


@numba.njit(nogil=True, fastmath=FASTMATH, cache=True)
def _finish_tile_cpu(
    X,  # IN (n_samples, n_features) float32
    sample_weight,  # IN (n_samples,) float32, or (1,) when not weighted
    centers,  # IN (n_clusters, n_features) float32
    center_norms,  # IN (n_clusters,) float32
    dots,  # IN (tile_rows, n_clusters) float32, X[start:stop] @ centers.T
    start,  # IN int, first row of the tile
    weighted,  # IN bool
    accumulate,  # IN bool
    labels,  # OUT (n_samples,) int32
    distances,  # OUT (n_samples,) float32
    second_labels,  # OUT (n_samples,) int32
    second_distances,  # OUT (n_samples,) float32
    sums,  # IN/OUT (n_clusters, n_features) float64, added to
    weights,  # IN/OUT (n_clusters,) float64, added to
):
    n_clusters = centers.shape[0]
    inertia = 0.0
    for r in range(dots.shape[0]):
        best_d, best_j = np.float32(np.inf), -1
        second_d, second_j = np.float32(np.inf), -1
        for j in range(n_clusters):
            best_d, best_j, second_d, second_j = update_two_smallest(
                center_norms[j] - 2.0 * dots[r, j], j, best_d, best_j, second_d, second_j
            )
        i = start + r
        best_d = squared_distance(X, i, centers, best_j)
        if second_j >= 0:
            second_d = squared_distance(X, i, centers, second_j)
        labels[i] = best_j
        distances[i] = best_d
        second_labels[i] = second_j
        second_distances[i] = second_d
        if accumulate:
            w = sample_weight[i] if weighted else np.float32(1.0)
            inertia += accumulate_row(X, i, w, best_j, best_d, sums, weights)
    return inertia


def assign_accumulate_gemm(
    X: np.ndarray,
    centers: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    accumulate: bool = True,
    out: Assignment | None = None,
) -> tuple[Assignment, ClusterSums]:
    """Fused pass through BLAS; same parameters and returns as ``assign_accumulate``.

    Examples
    --------
    >>> X = np.array([[0, 0], [0, 1], [9, 9]], dtype=np.float32)
    >>> a, s = assign_accumulate_gemm(X, np.array([[0, 0], [9, 9]], dtype=np.float32))
    >>> a.labels.tolist(), s.weights.tolist(), s.inertia
    ([0, 0, 1], [2.0, 1.0], 1.0)
    """
    check_block(X, centers, sample_weight)
    n_samples, n_features = X.shape
    n_clusters = centers.shape[0]
    out = Assignment.empty(n_samples) if out is None else out
    centers32 = np.ascontiguousarray(centers, dtype=np.float32)
    centers_t = np.ascontiguousarray(centers32.T)
    center_norms = np.einsum("ij,ij->i", centers32, centers32)
    sums_p, weights_p, inertia_p = empty_partials(_LANES, n_clusters, n_features)
    weighted = sample_weight is not None
    weights_in = sample_weight if weighted else np.ones(1, dtype=np.float32)
    tile_starts = range(0, n_samples, TILE_ROWS)

    def run_lane(lane: int) -> None:
        dots = np.empty((min(TILE_ROWS, n_samples), n_clusters), dtype=np.float32)
        for start in tile_starts[lane::_LANES]:
            stop = min(start + TILE_ROWS, n_samples)
            tile_dots = dots[: stop - start]
            np.matmul(X[start:stop], centers_t, out=tile_dots)
            inertia_p[lane] += _finish_tile_cpu(
                X, weights_in, centers32, center_norms, tile_dots, start, weighted, accumulate,
                out.labels, out.distances, out.second_labels, out.second_distances,
                sums_p[lane], weights_p[lane],
            )  # fmt: skip

    n_threads = min(numba.get_num_threads(), _LANES, len(tile_starts))
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(run_lane, range(_LANES)))
    return out, reduce_partials(sums_p, weights_p, inertia_p)
