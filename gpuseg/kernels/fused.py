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
cancellation). Each chunk of rows is worked through in tiles of ``TILE_ROWS`` rows: the tile is
transposed into a ``(n_features, TILE_ROWS)`` scratch array and every centre's distances are
computed for the whole tile at once, vectorised across rows, with the loop over features unrolled
(the kernel is compiled once per ``n_features``, which it holds as a constant). Totals are
accumulated in float64 per chunk and the chunks are reduced in chunk order, so results do not
depend on the thread count. Ties go to the lower centre index.
"""

from __future__ import annotations

import numba
import numpy as np

from gpuseg.kernels._layout import (
    FASTMATH,
    TILE_ROWS,
    add_scaled_row,
    chunk_layout,
    empty_partials,
    feature_group,
    first_distance,
    fold_distance,
    grouped_rows,
    store_tile,
)
from gpuseg.kernels.types import Assignment, ClusterSums

_KERNELS: dict[int, numba.core.registry.CPUDispatcher] = {}

# Features summed per pass over a tile: LLVM fully unrolls a loop of this many (its trip count is a
# constant), which leaves the loop over the tile's rows innermost, so it vectorises; a longer loop
# is not unrolled and the whole distance computation would stay scalar.
FEATURE_BLOCK = 32


@numba.njit(inline="always")
def squared_distance_t(tile_x, t, centers_t, j, start, n_features):
    """Return the sum over ``f`` in ``start:start + n_features`` of ``(x[f, t] - c[f, j])^2``."""
    d = np.float32(0.0)
    for f in range(start, start + n_features):
        diff = tile_x[f, t] - centers_t[f, j]
        d += diff * diff
    return d


def _make_assign_accumulate_cpu(n_features: int):
    """Compile the fused kernel with ``n_features`` a constant: its loops over features unroll."""
    group = feature_group(n_features)
    n_groups = n_features // group
    group_dtype = {4: np.complex128, 2: np.float64, 1: np.float32}[group]
    tail = n_features % FEATURE_BLOCK if n_features > FEATURE_BLOCK else 0

    @numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
    def _assign_accumulate_cpu(
        X,  # IN (n_samples, n_features) float32
        X_groups,  # IN (n_samples, n_features // group), X's rows viewed as wider values
        sample_weight,  # IN (n_samples,), or (1,) when not weighted
        centers_t,  # IN (n_features, n_clusters) float32, transposed: a centre's column is read
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
        n_samples = X.shape[0]
        n_clusters = centers_t.shape[1]
        n_chunks = inertia_partial.shape[0]
        for chunk in numba.prange(n_chunks):
            chunk_start = chunk * rows_per_chunk
            chunk_stop = min(chunk_start + rows_per_chunk, n_samples)
            tile_x = np.empty((n_features, TILE_ROWS), dtype=np.float32)
            tile_groups = np.empty((n_groups, TILE_ROWS), dtype=group_dtype)
            tile_groups_x = tile_groups.view(np.float32)
            tile_acc = np.empty(TILE_ROWS, dtype=np.float32)
            tile_d = np.empty((2, TILE_ROWS), dtype=np.float32)
            tile_j = np.empty((2, TILE_ROWS), dtype=np.int32)
            sums = sums_partial[chunk]
            weights = weights_partial[chunk]
            inertia = 0.0
            for start in range(chunk_start, chunk_stop, TILE_ROWS):
                n_rows = min(TILE_ROWS, chunk_stop - start)
                X_tile = X[start : start + n_rows]
                # Transpose in two steps: a scalar copy moves `group` features at a time, then a
                # loop that vectorises splits the groups; twice as fast as float-by-float.
                X_tile_groups = X_groups[start : start + n_rows]
                for t in range(n_rows):
                    for g in range(n_groups):
                        tile_groups[g, t] = X_tile_groups[t, g]
                for g in range(n_groups):
                    for t in range(n_rows):
                        for r in range(group):
                            tile_x[group * g + r, t] = tile_groups_x[g, group * t + r]
                for j in range(n_clusters):
                    if n_features <= FEATURE_BLOCK:
                        for t in range(n_rows):
                            tile_acc[t] = squared_distance_t(tile_x, t, centers_t, j, 0, n_features)
                    else:
                        for t in range(n_rows):
                            tile_acc[t] = squared_distance_t(
                                tile_x, t, centers_t, j, 0, FEATURE_BLOCK
                            )
                        for block_start in range(FEATURE_BLOCK, n_features - tail, FEATURE_BLOCK):
                            for t in range(n_rows):
                                tile_acc[t] += squared_distance_t(
                                    tile_x, t, centers_t, j, block_start, FEATURE_BLOCK
                                )
                        if tail:
                            for t in range(n_rows):
                                tile_acc[t] += squared_distance_t(
                                    tile_x, t, centers_t, j, n_features - tail, tail
                                )
                    if j == 0:
                        for t in range(n_rows):
                            first_distance(tile_acc[t], t, tile_d, tile_j)
                    else:
                        for t in range(n_rows):
                            fold_distance(tile_acc[t], j, t, tile_d, tile_j)
                store_tile(
                    start, n_rows, tile_d, tile_j,
                    labels, distances, second_labels, second_distances,
                )  # fmt: skip
                if accumulate:
                    for t in range(n_rows):
                        w = np.float64(sample_weight[start + t]) if weighted else 1.0
                        label = tile_j[0, t]
                        weights[label] += w
                        inertia += w * tile_d[0, t]
                        add_scaled_row(sums[label], X_tile[t], w, n_features)
            inertia_partial[chunk] = inertia

    return _assign_accumulate_cpu


def get_kernel(n_features: int):
    """Return the fused CPU kernel for ``n_features``, compiling it on first use."""
    kernel = _KERNELS.get(n_features)
    if kernel is None:
        kernel = _KERNELS[n_features] = _make_assign_accumulate_cpu(n_features)
    return kernel


def check_block(X: np.ndarray, centers: np.ndarray, sample_weight: np.ndarray | None) -> None:
    """Raise ``ValueError`` unless the block, centres and weights fit the kernels' contract."""
    if not isinstance(X, np.ndarray) or X.dtype != np.float32 or X.ndim != 2:
        raise ValueError(
            f"X must be a 2-D float32 NumPy array; got {type(X).__name__} with "
            f"ndim={getattr(X, 'ndim', None)}, dtype={getattr(X, 'dtype', None)}."
        )
    if not X.flags.c_contiguous:
        raise ValueError("X must be C-contiguous; pass np.ascontiguousarray(X).")
    if centers.ndim != 2 or centers.shape[1] != X.shape[1] or centers.shape[0] < 1:
        raise ValueError(
            f"centers must have shape (n_clusters >= 1, {X.shape[1]}); got {centers.shape}."
        )
    if sample_weight is not None and sample_weight.shape != (X.shape[0],):
        raise ValueError(
            f"sample_weight must have shape ({X.shape[0]},); got {sample_weight.shape}."
        )


def weights_argument(sample_weight: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """Return the weights array the kernels read and whether it is used."""
    if sample_weight is None:
        return np.ones(1, dtype=np.float32), False
    return np.ascontiguousarray(sample_weight), True


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

    Notes
    -----
    The kernel is compiled once per ``n_features`` (cached on disk), a few seconds the first time.

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
    weights_in, weighted = weights_argument(sample_weight)
    centers_t = np.ascontiguousarray(centers.T, dtype=np.float32)
    get_kernel(n_features)(
        X, grouped_rows(X), weights_in, centers_t, rows_per_chunk, weighted, accumulate,
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
