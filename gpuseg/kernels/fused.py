"""Fused pass: nearest and runner-up centre of every row, and per-centre float64 sums, in one read.

For a block ``X`` of shape ``(n_samples, n_features)`` (float32, C-contiguous, read), weights ``w``
of shape ``(n_samples,)`` (float32, read) and centres ``C`` of shape ``(n_clusters, n_features)``
(read), the pass writes::

    labels[i]           = argmin_j ||x_i - c_j||^2                    (int32)
    distances[i]        = min_j ||x_i - c_j||^2                       (float32)
    second_labels[i]    = the runner-up centre, -1 when none          (int32)
    second_distances[i] = its squared distance, inf when none         (float32)

and, when accumulating, the float64 totals::

    sums[j]    = sum_{i: labels[i]=j} w_i x_i
    weights[j] = sum_{i: labels[i]=j} w_i
    inertia    = sum_i w_i distances[i]

Distances are computed directly as sums of squared differences in float32 (no ``|x|^2 - 2x.c``
cancellation), features summed in increasing order, each term added by a fused multiply-add.
Each chunk of rows is worked through in tiles of 16 rows, one row per lane of a 16-float vector
(see :mod:`gpuseg.kernels._simd`): the tile is transposed in registers into one vector per
feature, then the centres are taken in blocks of ``CENTER_BLOCK``, each centre's 16 distances held
in a register while each feature vector is reused across the block, and folded into the rows'
nearest and runner-up (or the nearest alone, for passes that keep no runner-up). The kernel is
compiled once per ``n_features`` and runner-up choice, which it holds as constants; weights and
sums are run-time flags (a missing weight is a 1).
Totals are accumulated in float64 per chunk, one row at a time in row order (the inertia one
total per lane); with at most ``CENTER_BLOCK`` centres, into ``SUM_GROUPS`` copies of the sums
and weights by each row's place in its tile. The chunks, and each chunk's copies, are reduced in
order, so results do not depend on the thread count. Ties go to the lower centre index; a
runner-up is reported only at a finite distance, so there is none when ``n_clusters == 1`` or
every other centre's distance overflows.
The per-row outputs of long blocks are written with non-temporal stores, which skip reading their
cache lines in first, and the rows of each tile are prefetched into L2 many tiles ahead and into
L1 a few tiles ahead.
"""

from __future__ import annotations

import numba
import numpy as np

from gpuseg.kernels._layout import (
    FASTMATH,
    chunk_layout,
    empty_partials,
    store_tile,
    streams_outputs,
)
from gpuseg.kernels._simd import (
    LANES,
    SUM_GROUPS,
    accumulate_tile,
    add_scaled_row,
    nearest_in_tile,
    prefetch_tile,
    source_digest,
    store_fence,
    store_tile_lanes,
)
from gpuseg.kernels.types import Assignment, ClusterSums

_KERNELS: dict[tuple[int, bool], numba.core.registry.CPUDispatcher] = {}

# Centres whose distances are computed together, each in its own register, so that a tile's feature
# row is loaded once per block rather than once per centre; ``centers_t`` is padded to a multiple.
CENTER_BLOCK = 8

# Tiles ahead of the one being computed whose rows are prefetched into L1. Measured on 10M x 16,
# k=8 (two threads, one process, alternating): none 43.9 ms, 2 tiles 41.1, 3 tiles 40.4, 4 tiles
# 41.3, and 5 tiles 53.9 (more lines in flight than L1 tracks at once).
PREFETCH_TILES = 3
# Tiles ahead whose rows are prefetched into L2 only, which tracks more lines in flight: with both
# cores reading, a line takes longer to arrive than three tiles' arithmetic. Measured on 10M x 16,
# k=8, two threads, median of 20 passes alternating in one process, three processes: none 47.3,
# 49.4, 49.9 ms; 16 tiles 42.7, 44.4, 43.3; 32 tiles 42.5, 44.3, 43.0 (one thread: no change).
PREFETCH_L2_TILES = 24


_INLINED_SOURCE_DIGEST = source_digest("_layout.py", "_simd.py")


def _make_assign_accumulate_cpu(n_features: int, runner_up: bool):
    """Compile the fused kernel for one ``n_features``, a constant of the compiled code (its
    loops over features unroll), with or without the runner-up (a constant too). Weights and
    sums are run-time flags: one kernel per feature count serves ``fit``, weighted fits and
    ``predict``.
    """
    inlined_source = _INLINED_SOURCE_DIGEST

    @numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
    def _assign_accumulate_cpu(
        X,  # IN (n_samples, n_features) float32
        sample_weight,  # IN (n_samples,), or (1,) holding 1 when not weighted
        weighted,  # IN bool: whether sample_weight has one weight per row
        accumulate,  # IN bool: whether to compute the sums (False serves predict)
        centers_t,  # IN (n_features, n_padded) float32, transposed, padded with +inf centres
        rows_per_chunk,  # IN int
        streaming,  # IN bool: non-temporal stores of whole tiles (outputs 64-byte aligned)
        labels,  # OUT (n_samples,) int32
        distances,  # OUT (n_samples,) float32
        second_labels,  # OUT (n_samples,) int32
        second_distances,  # OUT (n_samples,) float32
        sums_partial,  # OUT (n_chunks, n_groups * n_clusters, n_features) float64
        weights_partial,  # OUT (n_chunks, n_groups * n_clusters) float64
        inertia_partial,  # OUT (n_chunks,) float64
        group_stride,  # IN int: n_clusters with SUM_GROUPS copies of the totals, 0 with one
    ):
        inlined_source  # noqa: B018  (a closure cell: part of numba's cache key)
        n_samples = X.shape[0]
        n_chunks = inertia_partial.shape[0]
        for chunk in numba.prange(n_chunks):
            chunk_start = chunk * rows_per_chunk
            chunk_stop = min(chunk_start + rows_per_chunk, n_samples)
            tile_x = np.empty((n_features, LANES), dtype=np.float32)
            tile_rows = np.zeros((LANES, n_features), dtype=np.float32)
            tile_d = np.empty((2, LANES), dtype=np.float32)
            tile_j = np.empty((2, LANES), dtype=np.int32)
            inertia_lanes = np.zeros(LANES)
            sums = sums_partial[chunk]
            weights = weights_partial[chunk]
            n_tiles = (chunk_stop - chunk_start) // LANES
            for tile in range(n_tiles):
                start = chunk_start + tile * LANES
                if accumulate and tile > 0:
                    # The tile before is added here, just before this tile's distances, so that
                    # its stores overlap their arithmetic. Rows are still added in order.
                    accumulate_tile_of(
                        X, sample_weight, weighted, start - LANES, tile_d, tile_j,
                        sums, weights, inertia_lanes, group_stride, n_features,
                    )  # fmt: skip
                prefetch_tile(X, start + PREFETCH_TILES * LANES, n_features, 1)
                prefetch_tile(X, start + PREFETCH_L2_TILES * LANES, n_features, 2)
                nearest_in_tile(
                    X, start, centers_t, tile_x, tile_d, tile_j, n_features, CENTER_BLOCK,
                    runner_up,
                )  # fmt: skip
                store_tile_lanes(
                    start, tile_d, tile_j,
                    labels, distances, second_labels, second_distances, streaming, runner_up,
                )  # fmt: skip
            if accumulate and n_tiles > 0:
                accumulate_tile_of(
                    X, sample_weight, weighted, chunk_start + (n_tiles - 1) * LANES, tile_d,
                    tile_j, sums, weights, inertia_lanes, group_stride, n_features,
                )  # fmt: skip
            start = chunk_start + n_tiles * LANES
            n_rows = chunk_stop - start
            if n_rows > 0:
                # The transpose always reads 16 rows: a chunk's short last tile is copied out.
                tile_rows[:n_rows] = X[start:chunk_stop]
                nearest_in_tile(
                    tile_rows, 0, centers_t, tile_x, tile_d, tile_j, n_features, CENTER_BLOCK,
                    runner_up,
                )  # fmt: skip
                store_tile(
                    start, n_rows, tile_d, tile_j,
                    labels, distances, second_labels, second_distances, runner_up,
                )  # fmt: skip
                if accumulate:
                    accumulate_rows(
                        X, sample_weight, weighted, start, n_rows, tile_d, tile_j,
                        sums, weights, inertia_lanes, group_stride, n_features,
                    )  # fmt: skip
            inertia = 0.0
            for t in range(LANES):
                inertia += inertia_lanes[t]
            inertia_partial[chunk] = inertia
            if streaming:
                store_fence()

    return _assign_accumulate_cpu


@numba.njit(inline="always")
def accumulate_tile_of(
    X, sample_weight, weighted, start, tile_d, tile_j, sums, weights, inertia_lanes,
    group_stride, n_features,
):  # fmt: skip
    """:func:`~gpuseg.kernels._simd.accumulate_tile` with ``weighted`` a run-time flag: both
    variants are compiled into the kernel, so the unweighted one still adds rows unmultiplied."""
    if weighted:
        accumulate_tile(
            X, sample_weight, start, tile_d, tile_j,
            sums, weights, inertia_lanes, group_stride, n_features, True,
        )  # fmt: skip
    else:
        accumulate_tile(
            X, sample_weight, start, tile_d, tile_j,
            sums, weights, inertia_lanes, group_stride, n_features, False,
        )  # fmt: skip


@numba.njit(inline="always")
def accumulate_rows(
    X, sample_weight, weighted, start, n_rows, tile_d, tile_j, sums, weights, inertia_lanes,
    group_stride, n_features,
):  # fmt: skip
    """:func:`~gpuseg.kernels._simd.accumulate_tile` for a chunk's last ``n_rows < 16`` rows."""
    for t in range(n_rows):
        w = np.float64(sample_weight[start + t if weighted else 0])
        label = tile_j[0, t] + (t % SUM_GROUPS) * group_stride
        weights[label] += w
        inertia_lanes[t] += w * tile_d[0, t]
        add_scaled_row(sums[label], X[start + t], w, n_features)


def padded_centers_t(centers: np.ndarray) -> np.ndarray:
    """Centres transposed to ``(n_features, n_padded)`` float32, padded with +inf centres.

    A +inf centre is at +inf (or NaN) distance from every row, which the strict comparisons never
    pick as nearest or runner-up, so the kernel can always work in whole blocks of centres.
    """
    n_clusters, n_features = centers.shape
    n_padded = -(-n_clusters // CENTER_BLOCK) * CENTER_BLOCK
    centers_t = np.full((n_features, n_padded), np.inf, dtype=np.float32)
    centers_t[:, :n_clusters] = centers.T
    return centers_t


def get_kernel(n_features: int, runner_up: bool = True):
    """Return the fused CPU kernel for ``n_features`` (with or without the runner-up),
    compiling it on first use."""
    kernel = _KERNELS.get((n_features, runner_up))
    if kernel is None:
        kernel = _make_assign_accumulate_cpu(n_features, runner_up)
        _KERNELS[n_features, runner_up] = kernel
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
    runner_up: bool = True,
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
    runner_up : bool, default True
        Whether to find the runner-up; without it ``second_labels`` and ``second_distances``
        are left as they were (a pass that keeps only labels and totals, which are the same).

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
    n_groups = sum_groups(n_clusters)
    n_chunks, rows_per_chunk = chunk_layout(n_samples, n_clusters, n_features, n_groups)
    sums_p, weights_p, inertia_p = empty_partials(n_chunks, n_groups * n_clusters, n_features)
    weights_in, weighted = weights_argument(sample_weight)
    outputs = (out.labels, out.distances, out.second_labels, out.second_distances)
    get_kernel(n_features, runner_up)(
        X, weights_in, weighted, accumulate, padded_centers_t(centers), rows_per_chunk,
        streams_outputs(outputs), *outputs, sums_p, weights_p, inertia_p,
        n_clusters if n_groups > 1 else 0,
    )  # fmt: skip
    return out, reduce_partials(sums_p, weights_p, inertia_p, n_clusters)


def sum_groups(n_clusters: int) -> int:
    """How many copies of the totals the direct kernel adds a block's rows into.

    ``SUM_GROUPS`` when all centres fit one block of ``CENTER_BLOCK``, where a row's centre is
    often that of a row a few before it (see :data:`gpuseg.kernels._simd.SUM_GROUPS`); one
    otherwise.
    """
    return SUM_GROUPS if n_clusters <= CENTER_BLOCK else 1


def reduce_partials(
    sums_p: np.ndarray, weights_p: np.ndarray, inertia_p: np.ndarray, n_clusters: int
) -> ClusterSums:
    """Fold per-chunk partials into one :class:`ClusterSums`, chunk by chunk in order and, inside
    each chunk, copy by copy (``sums_p`` is ``(n_chunks, n_groups * n_clusters, n_features)``)."""
    n_chunks, n_rows, n_features = sums_p.shape
    n_groups = n_rows // n_clusters
    total = ClusterSums.zeros(n_clusters, n_features)
    total.inertia = _fold_chunks(
        sums_p.reshape(n_chunks * n_groups, n_clusters, n_features),
        weights_p.reshape(n_chunks * n_groups, n_clusters),
        inertia_p,
        total.sums,
        total.weights,
    )
    return total


@numba.njit(cache=True)
def _fold_chunks(sums_p, weights_p, inertia_p, sums, weights):
    """Add the partials into ``sums`` and ``weights`` in order; return the total inertia."""
    for part in range(sums_p.shape[0]):
        sums += sums_p[part]
        weights += weights_p[part]
    inertia = 0.0
    for chunk in range(inertia_p.shape[0]):
        inertia += inertia_p[chunk]
    return inertia
