"""Matrix-product path of the fused pass, for large ``n_clusters x n_features``.

Same contract as :func:`gpuseg.kernels.fused.assign_accumulate`. Rows are processed in tiles: BLAS
computes ``dots = C @ X_tile.T`` in float32, laid out ``(n_clusters, tile_rows)`` so that the scan
for the nearest and runner-up centre of ``|c_j|^2 - 2 dots[j, t]`` (the row's own norm does not
change the order) runs over the tile's rows and vectorises. The two winners' distances are then
recomputed directly as sums of squared differences, so reported distances and inertia carry no
cancellation error. Tile ``t`` belongs to lane ``t % 16``; each lane is worked through by one thread
with single-threaded BLAS (so BLAS threads never spin against the lanes), and the lanes' float64
partials are reduced in lane order: results do not depend on the thread count.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from gpuseg.kernels._layout import (
    FASTMATH,
    accumulate_row,
    empty_partials,
    first_distance,
    fold_distance,
)
from gpuseg.kernels.fused import check_block, reduce_partials, weights_argument
from gpuseg.kernels.types import Assignment, ClusterSums

# Rows per BLAS call: small enough that the tile's rows and its (n_clusters, TILE_ROWS) products
# stay in L2 for the finish step (k=256, d=32: 256-512 rows ~7% faster than 1024, 2048 slower).
TILE_ROWS = 512
_LANES = 16


@numba.njit(inline="always")
def squared_distance(X, i, centers, j):
    """Return ``||X[i] - centers[j]||^2`` in float32."""
    row = X[i]
    center = centers[j]
    acc = np.float32(0.0)
    for f in range(row.shape[0]):
        diff = row[f] - center[f]
        acc += diff * diff
    return acc


@numba.njit(nogil=True, fastmath=FASTMATH, cache=True)
def _finish_tile_cpu(
    X,  # IN (n_samples, n_features) float32
    sample_weight,  # IN (n_samples,), or (1,) when not weighted
    centers,  # IN (n_clusters, n_features) float32
    center_norms,  # IN (n_clusters,) float32
    dots,  # IN (n_clusters, tile_rows) float32, centers @ X[start:stop].T
    start,  # IN int, first row of the tile
    weighted,  # IN bool
    accumulate,  # IN bool
    labels,  # OUT (n_samples,) int32
    distances,  # OUT (n_samples,) float32
    second_labels,  # OUT (n_samples,) int32
    second_distances,  # OUT (n_samples,) float32
    sums,  # IN/OUT (n_clusters, n_features) float64, added to
    weights,  # IN/OUT (n_clusters,) float64, added to
    tile_d,  # SCRATCH (2, tile_rows) float32
    tile_j,  # SCRATCH (2, tile_rows) int32
):
    n_clusters, n_rows = dots.shape
    for j in range(n_clusters):
        norm = center_norms[j]
        for t in range(n_rows):
            d = norm - 2.0 * dots[j, t]
            if j == 0:
                first_distance(d, t, tile_d, tile_j)
            else:
                fold_distance(d, j, t, tile_d, tile_j)
    inertia = 0.0
    for t in range(n_rows):
        i = start + t
        best_j = tile_j[0, t]
        second_j = tile_j[1, t]
        best_d = squared_distance(X, i, centers, best_j)
        second_d = squared_distance(X, i, centers, second_j) if second_j >= 0 else np.inf
        if not second_d < np.inf:
            # A runner-up only at a finite distance, as the direct kernel reports it.
            second_d = np.inf
            second_j = -1
        labels[i] = best_j
        distances[i] = best_d
        second_labels[i] = second_j
        second_distances[i] = second_d
        if accumulate:
            w = sample_weight[i] if weighted else 1.0
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
    center_norms = np.einsum("ij,ij->i", centers32, centers32)
    sums_p, weights_p, inertia_p = empty_partials(_LANES, n_clusters, n_features)
    weights_in, weighted = weights_argument(sample_weight)
    tile_starts = range(0, n_samples, TILE_ROWS)

    def run_lane(lane: int) -> None:
        tile_rows = min(TILE_ROWS, n_samples)
        dots_full = np.empty((n_clusters, tile_rows), dtype=np.float32)
        tile_d = np.empty((2, tile_rows), dtype=np.float32)
        tile_j = np.empty((2, tile_rows), dtype=np.int32)
        for start in tile_starts[lane::_LANES]:
            stop = min(start + TILE_ROWS, n_samples)
            dots = (
                dots_full
                if stop - start == tile_rows
                else np.empty((n_clusters, stop - start), dtype=np.float32)
            )
            np.matmul(centers32, X[start:stop].T, out=dots)
            inertia_p[lane] += _finish_tile_cpu(
                X, weights_in, centers32, center_norms, dots, start, weighted, accumulate,
                out.labels, out.distances, out.second_labels, out.second_distances,
                sums_p[lane], weights_p[lane], tile_d, tile_j,
            )  # fmt: skip

    n_threads = max(1, min(numba.get_num_threads(), _LANES, len(tile_starts)))
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(run_lane, range(_LANES)))
    return out, reduce_partials(sums_p, weights_p, inertia_p, n_clusters)
