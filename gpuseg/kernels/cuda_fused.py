"""CUDA twin of the fused pass (direct kernel and matrix-product finish), numba ``cuda.jit``.

Same contract as :func:`gpuseg.kernels.fused.assign_accumulate`: for a block ``X`` of shape
``(n_samples, n_features)`` (float32, C-contiguous, on the device, read), weights ``w`` of shape
``(n_samples,)`` (read) and centres ``C`` of shape ``(n_clusters, n_features)`` (float32, read)::

    labels[i]           = argmin_j ||x_i - c_j||^2                    (int32, written)
    distances[i]        = min_j ||x_i - c_j||^2                       (float32, written)
    second_labels[i]    = the runner-up centre, -1 when none          (int32, written)
    second_distances[i] = its squared distance, inf when none         (float32, written)
    sums[j], weights[j], inertia                                      (float64 totals)

Distances are sums of squared differences in float32; ties go to the lower centre index, and a
runner-up is reported only at a finite distance (none when ``n_clusters == 1``).

Layout of a launch. Block ``b`` works through the consecutive rows
``start + b * rows_per_block ...`` in tiles of ``threads`` rows, one row per thread: the tile is
copied into shared memory with coalesced loads (row stride padded to an odd number of floats, so
that a thread reading its own row never shares a bank with another), every thread finds its row's
nearest and runner-up centre, and then the block adds the tile into per-block float64
accumulators. Accumulators are float64 in shared memory (not float32): a block sums up to
``rows_per_block`` (~10^5) rows, where float32 would lose the centres' low digits, and float64 keeps
the CUDA totals within rounding of the CPU twin's. No atomics are used anywhere: accumulator
element ``(replica r, centre j, feature f)`` is owned by one thread (the one whose feature lane is
``f % lanes``, whose replica is ``r`` and whose class is ``j % classes``), which adds the tile's
rows ``r, r + replicas, ...`` labelled ``j`` in row order. At the end the block adds its replicas,
in replica order, into its own slice ``partials[b]`` of a ``(n_blocks, n_clusters, n_features +
2)`` float64 array (columns: sums, weight, inertia), and a second small kernel folds the blocks in
block order. The grid depends only on the shapes, never on the device, so one input gives
bitwise-identical totals run after run. When even one replica does not fit in shared memory
(large ``n_clusters x n_features``) the owners add straight into ``partials[b]`` in global memory.

The matrix-product path lives in :mod:`gpuseg.kernels.cuda_gemm`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import cuda, float32, float64, int32

from gpuseg.kernels.types import Assignment, ClusterSums

# Shared-memory budgets per block (static shared memory is capped at 48 KB): the staged tile, the
# centres of the direct kernel, and the accumulator replicas.
_TILE_BYTES = 20 * 1024
_CENTER_BYTES = 16 * 1024
_ACCUMULATOR_BYTES = 12 * 1024
_MAX_THREADS = 256
_MIN_THREADS = 32
# Rows this short are copied into registers (a local array indexed by unrolled loops) before the
# distance loop, so each centre coordinate costs one shared-memory broadcast and one FMA.
_REGISTER_ROW_FEATURES = 32
# Per-block partials stay under this many bytes in all; the block count never depends on the
# device, so the fold order (and the totals' bits) do not either.
_PARTIALS_BUDGET_BYTES = 256 * 2**20
_MAX_BLOCKS = 4096


# ---------------------------------------------------------------------------------------------
# Helpers: plain-Python bodies, compiled for the device below (and for the CPU as ``*_cpu``).
# ---------------------------------------------------------------------------------------------


def _squared_distance(x, i, c, j, n_features):
    """Return ``||x[i] - c[j]||^2`` over the first ``n_features`` columns, in float32."""
    acc = np.float32(0.0)
    for f in range(n_features):
        diff = x[i, f] - c[j, f]
        acc += diff * diff
    return acc


def _fold_top2(d, j, best_d, best_j, second_d, second_j):
    """Fold distance ``d`` of centre ``j`` (visited in increasing order) into the nearest two.

    Returns the new ``(best_d, best_j, second_d, second_j)``; distances are stored as float32 but
    ``d`` is compared as given, so ties keep the lower index and a NaN is never picked.
    """
    if d < best_d:
        return np.float32(d), j, best_d, best_j
    if d < second_d:
        return best_d, best_j, np.float32(d), j
    return best_d, best_j, second_d, second_j


def _dot_distance(norm, dot):
    """``|c|^2 - 2 x.c`` in float64 from float32 operands (the row's own norm does not matter)."""
    return np.float64(norm) - 2.0 * np.float64(dot)


def _make_nearest_two(squared_distance, fold_top2):
    """Compose the nearest-two scan from compiled leaf helpers (compiled by the caller)."""

    def nearest_two(x, i, c, n_clusters, n_features):
        """Return ``(best_d, best_j, second_d, second_j)`` of row ``x[i]`` over ``c``'s centres."""
        best_d = squared_distance(x, i, c, 0, n_features)
        best_j = 0
        second_d = np.float32(np.inf)
        second_j = -1
        for j in range(1, n_clusters):
            d = squared_distance(x, i, c, j, n_features)
            best_d, best_j, second_d, second_j = fold_top2(d, j, best_d, best_j, second_d, second_j)
        return best_d, best_j, second_d, second_j

    return nearest_two


def _make_nearest_two_dots(dot_distance, fold_top2):
    """Compose the scan of a column of products for the nearest two (compiled by the caller)."""

    def nearest_two_dots(dots, t, center_norms, n_clusters):
        """Return the nearest two of column ``t`` of ``dots`` by ``|c_j|^2 - 2 dots[j, t]``."""
        best_d = np.float32(dot_distance(center_norms[0], dots[0, t]))
        best_j = 0
        second_d = np.float32(np.inf)
        second_j = -1
        for j in range(1, n_clusters):
            d = dot_distance(center_norms[j], dots[j, t])
            best_d, best_j, second_d, second_j = fold_top2(d, j, best_d, best_j, second_d, second_j)
        return best_d, best_j, second_d, second_j

    return nearest_two_dots


def _add_tile_rows(
    target,  # IN/OUT (n_slots, n_clusters, n_features + 2) float64, added to
    slot,  # IN int, the first index of target this thread adds into
    x,  # IN rows: the staged tile, or X itself
    x_row0,  # IN int, row of x holding the tile's first row
    n_rows,  # IN int, rows in the tile
    tile_label,  # IN (threads,) int32
    tile_w,  # IN (threads,) float64
    tile_d,  # IN (threads,) float32
    replica,  # IN int, this thread adds rows replica, replica + n_replicas, ...
    n_replicas,  # IN int
    cls,  # IN int, ... labelled j with j % n_classes == cls
    n_classes,  # IN int
    lane,  # IN int, ... features lane, lane + n_lanes, ...
    n_lanes,  # IN int
    n_features,  # IN int
):
    """Add the tile's rows owned by this thread into ``target[slot]``, in row order."""
    for t in range(replica, n_rows, n_replicas):
        j = tile_label[t]
        if j % n_classes == cls:
            w = tile_w[t]
            for f in range(lane, n_features, n_lanes):
                target[slot, j, f] += w * np.float64(x[x_row0 + t, f])
            if lane == 0:
                target[slot, j, n_features] += w
                target[slot, j, n_features + 1] += w * np.float64(tile_d[t])


squared_distance_cuda = cuda.jit(device=True)(_squared_distance)
fold_top2_cuda = cuda.jit(device=True)(_fold_top2)
dot_distance_cuda = cuda.jit(device=True)(_dot_distance)
nearest_two_cuda = cuda.jit(device=True)(_make_nearest_two(squared_distance_cuda, fold_top2_cuda))
nearest_two_dots_cuda = cuda.jit(device=True)(
    _make_nearest_two_dots(dot_distance_cuda, fold_top2_cuda)
)
add_tile_rows_cuda = cuda.jit(device=True)(_add_tile_rows)

squared_distance_cpu = numba.njit(inline="always")(_squared_distance)
fold_top2_cpu = numba.njit(inline="always")(_fold_top2)
dot_distance_cpu = numba.njit(inline="always")(_dot_distance)
nearest_two_cpu = numba.njit(inline="always")(
    _make_nearest_two(squared_distance_cpu, fold_top2_cpu)
)


# ---------------------------------------------------------------------------------------------
# Layout: how a launch is cut into blocks, tiles and accumulator owners.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Shape of one launch of the fused kernel (a function of the sizes only, never the device).

    Attributes
    ----------
    threads : int
        Threads per block, and rows per tile (one row per thread).
    stage_rows : bool
        Whether tiles are copied into shared memory (rows up to ~150 features).
    lanes : int
        Feature lanes of the accumulation: thread ``t`` adds features ``t % lanes + k * lanes``.
    replicas : int
        Accumulator copies in shared memory; 0 when they go straight to global memory.
    classes : int
        Centre classes: a thread adds only rows whose label is in its class (label % classes).
    rows_per_block : int
        Consecutive rows each block works through, a multiple of ``threads``.
    n_blocks : int
        Blocks of the launch, and slots of the partials array.
    """

    threads: int
    stage_rows: bool
    lanes: int
    replicas: int
    classes: int
    rows_per_block: int
    n_blocks: int


def plan_layout(
    n_samples: int,
    n_clusters: int,
    n_features: int,
    *,
    threads: int | None = None,
    rows_per_block: int | None = None,
    accumulator_bytes: int = _ACCUMULATOR_BYTES,
) -> Layout:
    """Return the launch layout for a block of ``n_samples`` rows (keywords: tests and tuning)."""
    stride = n_features | 1
    if threads is None:
        threads = _MAX_THREADS
        while threads > _MIN_THREADS and threads * stride * 4 > _TILE_BYTES:
            threads //= 2
    stage_rows = threads * stride * 4 <= _TILE_BYTES
    lanes = min(n_features, threads)
    slots = threads // lanes
    replica_bytes = 8 * n_clusters * (n_features + 2)
    replicas = min(slots, accumulator_bytes // replica_bytes)
    classes = slots // max(replicas, 1)
    if rows_per_block is None:
        max_blocks = max(1, min(_MAX_BLOCKS, _PARTIALS_BUDGET_BYTES // replica_bytes))
        rows_per_block = math.ceil(max(n_samples, 1) / max_blocks)
    rows_per_block = max(threads, math.ceil(rows_per_block / threads) * threads)
    n_blocks = max(1, math.ceil(n_samples / rows_per_block))
    return Layout(threads, stage_rows, lanes, replicas, classes, rows_per_block, n_blocks)


# ---------------------------------------------------------------------------------------------
# Kernels.
# ---------------------------------------------------------------------------------------------

_KERNELS: dict[tuple, object] = {}


def _make_assign_accumulate_cuda(n_clusters: int, n_features: int, layout: Layout, with_dots: bool):
    """Compile the fused kernel for one shape; sizes and layout are compile-time constants."""
    K, D, T = n_clusters, n_features, layout.threads
    W = D + 2
    STAGE = layout.stage_rows
    TILE_SHAPE = (T, D | 1) if STAGE else (1, 1)
    CENTERS_SHARED = not with_dots and K * D * 4 <= _CENTER_BYTES
    CEN_SHAPE = (K, D) if CENTERS_SHARED else (1, 1)
    ROW_IN_REGISTERS = STAGE and not with_dots and D <= _REGISTER_ROW_FEATURES
    ROW_SHAPE = (1, D) if ROW_IN_REGISTERS else (1, 1)
    LANES, CLASSES = layout.lanes, layout.classes
    REPLICAS = max(layout.replicas, 1)
    ACC_SHARED = layout.replicas > 0
    ACC_SHAPE = (REPLICAS, K, W) if ACC_SHARED else (1, 1, 1)
    OWNERS = LANES * REPLICAS * CLASSES

    @cuda.jit
    def _assign_accumulate_cuda(
        X,  # IN (n_samples, n_features) float32
        sample_weight,  # IN (n_samples,), or (1,) when not weighted
        centers,  # IN (n_clusters, n_features) float32
        center_norms,  # IN (n_clusters,) float32 (with_dots only)
        dots,  # IN (n_clusters, stop - start) float32, centers @ X[start:stop].T (with_dots only)
        start,  # IN int, first row of the launch
        stop,  # IN int, end of the launch's rows
        rows_per_block,  # IN int
        weighted,  # IN bool
        accumulate,  # IN bool
        labels,  # OUT (n_samples,) int32
        distances,  # OUT (n_samples,) float32
        second_labels,  # OUT (n_samples,) int32
        second_distances,  # OUT (n_samples,) float32
        partials,  # IN/OUT (n_blocks, n_clusters, n_features + 2) float64, added to
    ):
        tid = cuda.threadIdx.x
        block = cuda.blockIdx.x
        tile = cuda.shared.array(TILE_SHAPE, float32)
        cen = cuda.shared.array(CEN_SHAPE, float32)
        tile_label = cuda.shared.array(T, int32)
        tile_w = cuda.shared.array(T, float64)
        tile_d = cuda.shared.array(T, float32)
        acc = cuda.shared.array(ACC_SHAPE, float64)
        row = cuda.local.array(ROW_SHAPE, float32)
        lane = tid % LANES
        replica = (tid // LANES) % REPLICAS
        cls = tid // (LANES * REPLICAS)
        first = start + block * rows_per_block
        last = min(first + rows_per_block, stop)
        if CENTERS_SHARED:
            for idx in range(tid, K * D, T):
                cen[idx // D, idx % D] = centers[idx // D, idx % D]
        if ACC_SHARED and accumulate:
            for idx in range(tid, REPLICAS * K * W, T):
                acc[idx // (K * W), (idx // W) % K, idx % W] = 0.0
        cuda.syncthreads()
        for tile_start in range(first, last, T):
            n_rows = min(T, last - tile_start)
            if STAGE:
                for idx in range(tid, n_rows * D, T):
                    tile[idx // D, idx % D] = X[tile_start + idx // D, idx % D]
                cuda.syncthreads()
            if tid < n_rows:
                i = tile_start + tid
                if with_dots:
                    best_d, best_j, second_d, second_j = nearest_two_dots_cuda(
                        dots, i - start, center_norms, K
                    )
                    if STAGE:
                        best_d = squared_distance_cuda(tile, tid, centers, best_j, D)
                        if second_j >= 0:
                            second_d = squared_distance_cuda(tile, tid, centers, second_j, D)
                    else:
                        best_d = squared_distance_cuda(X, i, centers, best_j, D)
                        if second_j >= 0:
                            second_d = squared_distance_cuda(X, i, centers, second_j, D)
                elif ROW_IN_REGISTERS:
                    for f in range(D):
                        row[0, f] = tile[tid, f]
                    if CENTERS_SHARED:
                        best_d, best_j, second_d, second_j = nearest_two_cuda(row, 0, cen, K, D)
                    else:
                        best_d, best_j, second_d, second_j = nearest_two_cuda(row, 0, centers, K, D)
                elif STAGE:
                    if CENTERS_SHARED:
                        best_d, best_j, second_d, second_j = nearest_two_cuda(tile, tid, cen, K, D)
                    else:
                        best_d, best_j, second_d, second_j = nearest_two_cuda(
                            tile, tid, centers, K, D
                        )
                else:
                    best_d, best_j, second_d, second_j = nearest_two_cuda(X, i, centers, K, D)
                if not second_d < np.inf:
                    # A runner-up only at a finite distance, as the CPU kernels report it.
                    second_d = np.float32(np.inf)
                    second_j = -1
                labels[i] = best_j
                distances[i] = best_d
                second_labels[i] = second_j
                second_distances[i] = second_d
                tile_label[tid] = best_j
                tile_d[tid] = best_d
                tile_w[tid] = np.float64(sample_weight[i]) if weighted else 1.0
            cuda.syncthreads()
            if accumulate and tid < OWNERS:
                if ACC_SHARED:
                    if STAGE:
                        add_tile_rows_cuda(
                            acc, replica, tile, 0, n_rows, tile_label, tile_w, tile_d,
                            replica, REPLICAS, cls, CLASSES, lane, LANES, D,
                        )  # fmt: skip
                    else:
                        add_tile_rows_cuda(
                            acc, replica, X, tile_start, n_rows, tile_label, tile_w, tile_d,
                            replica, REPLICAS, cls, CLASSES, lane, LANES, D,
                        )  # fmt: skip
                elif STAGE:
                    add_tile_rows_cuda(
                        partials, block, tile, 0, n_rows, tile_label, tile_w, tile_d,
                        0, 1, cls, CLASSES, lane, LANES, D,
                    )  # fmt: skip
                else:
                    add_tile_rows_cuda(
                        partials, block, X, tile_start, n_rows, tile_label, tile_w, tile_d,
                        0, 1, cls, CLASSES, lane, LANES, D,
                    )  # fmt: skip
            cuda.syncthreads()
        if ACC_SHARED and accumulate:
            for idx in range(tid, K * W, T):
                j = idx // W
                f = idx % W
                total = partials[block, j, f]
                for r in range(REPLICAS):
                    total += acc[r, j, f]
                partials[block, j, f] = total

    return _assign_accumulate_cuda


def get_kernel(n_clusters: int, n_features: int, layout: Layout, with_dots: bool = False):
    """Return the fused CUDA kernel for this shape and layout, building it on first use."""
    key = (
        n_clusters, n_features, layout.threads, layout.stage_rows, layout.lanes,
        layout.replicas, layout.classes, with_dots,
    )  # fmt: skip
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_assign_accumulate_cuda(
            n_clusters, n_features, layout, with_dots
        )
    return kernel


@cuda.jit
def _zero_cuda(a):  # OUT (n,) float64
    i = cuda.grid(1)
    if i < a.shape[0]:
        a[i] = 0.0


@cuda.jit
def _fold_partials_cuda(
    partials,  # IN (n_blocks, n_clusters, n_features + 2) float64
    n_blocks,  # IN int, leading blocks to fold
    totals,  # OUT (n_clusters, n_features + 2) float64
):
    idx = cuda.grid(1)
    n_columns = totals.shape[1]
    if idx < totals.shape[0] * n_columns:
        j = idx // n_columns
        f = idx % n_columns
        total = 0.0
        for b in range(n_blocks):
            total += partials[b, j, f]
        totals[j, f] = total


# ---------------------------------------------------------------------------------------------
# Entry points.
# ---------------------------------------------------------------------------------------------


def is_device_array(a) -> bool:
    """Whether ``a`` lives on the device (CuPy, numba, or the simulator's stand-in)."""
    if isinstance(a, np.ndarray):
        return False
    return hasattr(a, "__cuda_array_interface__") or hasattr(a, "copy_to_host")


def _is_c_contiguous(a) -> bool:
    flags = getattr(a, "flags", None)
    if flags is not None:
        return bool(flags["C_CONTIGUOUS"] if isinstance(flags, dict) else flags.c_contiguous)
    return bool(a.is_c_contiguous())


def check_device_block(X, centers, sample_weight) -> None:
    """Raise ``ValueError`` unless the device block, centres and weights fit the contract."""
    if not is_device_array(X) or np.dtype(X.dtype) != np.float32 or X.ndim != 2:
        raise ValueError(
            f"X must be a 2-D float32 device array; got {type(X).__name__} with "
            f"ndim={getattr(X, 'ndim', None)}, dtype={getattr(X, 'dtype', None)}."
        )
    if not _is_c_contiguous(X):
        raise ValueError("X must be C-contiguous; pass cupy.ascontiguousarray(X).")
    if centers.ndim != 2 or centers.shape[1] != X.shape[1] or centers.shape[0] < 1:
        raise ValueError(
            f"centers must have shape (n_clusters >= 1, {X.shape[1]}); got {centers.shape}."
        )
    if sample_weight is not None and tuple(sample_weight.shape) != (X.shape[0],):
        raise ValueError(
            f"sample_weight must have shape ({X.shape[0]},); got {sample_weight.shape}."
        )


def to_device_float32(a, stream=0):
    """Return ``a`` as a C-contiguous float32 device array (copied from the host if needed)."""
    if is_device_array(a):
        return a
    return cuda.to_device(np.ascontiguousarray(a, dtype=np.float32), stream=stream)


def empty_assignment(n_samples: int, stream=0) -> Assignment:
    """Allocate a device :class:`Assignment` for ``n_samples`` rows."""
    return Assignment(
        labels=cuda.device_array(n_samples, dtype=np.int32, stream=stream),
        distances=cuda.device_array(n_samples, dtype=np.float32, stream=stream),
        second_labels=cuda.device_array(n_samples, dtype=np.int32, stream=stream),
        second_distances=cuda.device_array(n_samples, dtype=np.float32, stream=stream),
    )


def zeros_partials(n_blocks: int, n_clusters: int, n_features: int, stream=0):
    """Allocate zeroed ``(n_blocks, n_clusters, n_features + 2)`` float64 partials on the device."""
    flat = cuda.device_array(n_blocks * n_clusters * (n_features + 2), np.float64, stream=stream)
    _zero_cuda[max(1, math.ceil(flat.shape[0] / 256)), 256, stream](flat)
    return flat.reshape((n_blocks, n_clusters, n_features + 2))


def fold_partials(partials, n_blocks: int | None = None, stream=0) -> ClusterSums:
    """Fold the first ``n_blocks`` block partials on the device in block order; return host sums."""
    n_slots, n_clusters, n_columns = partials.shape
    n_blocks = n_slots if n_blocks is None else n_blocks
    totals = cuda.device_array((n_clusters, n_columns), np.float64, stream=stream)
    grid = max(1, math.ceil(n_clusters * n_columns / 128))
    _fold_partials_cuda[grid, 128, stream](partials, n_blocks, totals)
    host = totals.copy_to_host(stream=stream)
    if stream != 0:
        stream.synchronize()
    return ClusterSums(
        sums=np.ascontiguousarray(host[:, :-2]),
        weights=np.ascontiguousarray(host[:, -2]),
        inertia=float(host[:, -1].sum()),
    )


def device_weights_argument(sample_weight, stream=0):
    """The weights array the kernel reads (on the device) and whether it is used."""
    if sample_weight is None:
        return cuda.to_device(np.ones(1, dtype=np.float32), stream=stream), False
    if is_device_array(sample_weight):
        return sample_weight, True
    return cuda.to_device(np.ascontiguousarray(sample_weight), stream=stream), True


def launch_assign_accumulate(
    X, centers, weights, weighted, accumulate, out, partials, layout, stream=0, *,
    dots=None, center_norms=None, start=0, stop=None,
):  # fmt: skip
    """Launch the fused kernel on rows ``start:stop`` of device ``X``, adding into ``partials``.

    Nothing is checked or synchronised: callers check once and own every buffer. Block ``b`` adds
    into ``partials[b]``, so launches on one stream fold in launch order.
    """
    stop = X.shape[0] if stop is None else stop
    if stop <= start:
        return
    n_clusters, n_features = centers.shape
    with_dots = dots is not None
    if not with_dots:  # unused by the direct kernel; arrays of the right ranks keep typing simple
        dots, center_norms = centers, centers.reshape(-1)
    kernel = get_kernel(n_clusters, n_features, layout, with_dots)
    n_blocks = math.ceil((stop - start) / layout.rows_per_block)
    kernel[n_blocks, layout.threads, stream](
        X, weights, centers, center_norms, dots, start, stop, layout.rows_per_block,
        weighted, accumulate,
        out.labels, out.distances, out.second_labels, out.second_distances, partials,
    )  # fmt: skip


def assign_accumulate_cuda(
    X,
    centers,
    sample_weight=None,
    *,
    accumulate: bool = True,
    out: Assignment | None = None,
    stream=0,
    layout: Layout | None = None,
) -> tuple[Assignment, ClusterSums]:
    """Fused pass on the device through the direct kernel.

    Parameters
    ----------
    X : device array of float32, shape (n_samples, n_features)
        The block, C-contiguous (CuPy or numba device array).
    centers : array, shape (n_clusters, n_features)
        The centres, on the host or the device; cast to float32.
    sample_weight : array of shape (n_samples,), optional
        Row weights (host or device); ``None`` weighs every row 1.
    accumulate : bool, default True
        Whether to compute the per-centre sums (``False`` serves ``predict``).
    out : Assignment of device arrays, optional
        Buffers for the per-row results; allocated on the device when omitted.
    stream : numba stream, optional
        Stream to launch on; the call returns once the totals are on the host.
    layout : Layout, optional
        Launch layout; :func:`plan_layout` of the block's shape when omitted.

    Returns
    -------
    assignment : Assignment
        Per-row results as device arrays.
    cluster_sums : ClusterSums
        Float64 per-centre sums, weights and inertia on the host (zeros when not accumulating).

    Examples
    --------
    >>> X = cuda.to_device(np.array([[0, 0], [0, 1], [9, 9]], dtype=np.float32))  # doctest: +SKIP
    >>> a, s = assign_accumulate_cuda(X, np.array([[0, 0], [9, 9]], np.float32))  # doctest: +SKIP
    >>> a.labels.copy_to_host().tolist(), s.weights.tolist()  # doctest: +SKIP
    ([0, 0, 1], [2.0, 1.0])
    """
    check_device_block(X, centers, sample_weight)
    n_samples, n_features = X.shape
    n_clusters = centers.shape[0]
    layout = plan_layout(n_samples, n_clusters, n_features) if layout is None else layout
    out = empty_assignment(n_samples, stream) if out is None else out
    if not accumulate or n_samples == 0:
        partials = None
    else:
        partials = zeros_partials(layout.n_blocks, n_clusters, n_features, stream)
    weights, weighted = device_weights_argument(sample_weight, stream)
    centers_dev = to_device_float32(centers, stream)
    launch_assign_accumulate(
        X, centers_dev, weights, weighted, accumulate, out,
        partials if partials is not None else _dummy_partials(stream), layout, stream,
    )  # fmt: skip
    if partials is None:
        if stream != 0:
            stream.synchronize()
        return out, ClusterSums.zeros(n_clusters, n_features)
    return out, fold_partials(partials, stream=stream)


def _dummy_partials(stream=0):
    return cuda.device_array((1, 1, 1), np.float64, stream=stream)
