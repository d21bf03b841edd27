"""CUDA twin of the matrix-product path (:mod:`gpuseg.kernels.gemm`), for large ``k x features``.

Same contract as :func:`gpuseg.kernels.cuda_fused.assign_accumulate_cuda`. The pass computes
``dots = C @ X.T`` in chunks through CuPy (cuBLAS), imported only when this path runs, and the
direct kernel of :mod:`gpuseg.kernels.cuda_fused`, compiled with ``with_dots``, scans
``|c_j|^2 - 2 dots[j, i]`` for the nearest two and recomputes their distances directly (no
cancellation error in the reported distances and inertia), exactly as the CPU twin does.
"""

from __future__ import annotations

from numba import cuda

from gpuseg.kernels.cuda_fused import (
    check_device_block,
    device_weights_argument,
    empty_assignment,
    fold_partials,
    launch_assign_accumulate,
    plan_layout,
    to_device_float32,
    zeros_partials,
)
from gpuseg.kernels.types import ClusterSums

# The matrix-product path holds ``n_clusters x chunk_rows`` float32 products at a time.
_DOTS_BUDGET_BYTES = 512 * 2**20

# From this many centre coordinates, with rows this wide, the pass goes through cuBLAS. A first
# guess from the arithmetic (the direct kernel spends a subtraction and an FMA per coordinate on the
# CUDA cores; cuBLAS sgemm runs near the FP32 peak): benchmarks/bench_gpu.py measures both paths
# at k=1024, d=32 and this should follow what it finds.
_GEMM_MIN_CENTER_VALUES = 16384
_GEMM_MIN_FEATURES = 16


def uses_gemm_cuda(n_clusters: int, n_features: int) -> bool:
    """Whether the CUDA pass for this size goes through the matrix-product path."""
    return n_clusters * n_features >= _GEMM_MIN_CENTER_VALUES and n_features >= _GEMM_MIN_FEATURES


def stream_pointer(stream) -> int:
    """The raw ``cudaStream_t`` of a numba stream (0 for the default stream), for CuPy."""
    if stream == 0 or stream is None:
        return 0
    handle = stream.handle
    return int(getattr(handle, "value", handle) or 0)


def dots_chunk_rows(n_clusters: int) -> int:
    """Rows per chunk of the matrix-product path: ``n_clusters x rows`` float32 products."""
    return max(1024, (_DOTS_BUDGET_BYTES // (4 * n_clusters)) // 1024 * 1024)


def finish_dots_cuda(
    X, centers, center_norms, dots, start, sample_weight=None, *,
    accumulate=True, out=None, partials=None, stream=0, layout=None,
):  # fmt: skip
    """Nearest two of rows ``start:start + dots.shape[1]`` from their products with the centres.

    ``dots`` is ``centers @ X[start:stop].T`` (float32, ``(n_clusters, stop - start)``, on the
    device), ``center_norms`` the centres' float32 squared norms. Per-row results go into ``out``
    (device, one row per row of ``X``) and block totals are added into ``partials`` (allocated
    and zeroed when omitted). Returns ``(out, partials, layout)``; the caller folds the partials
    with :func:`fold_partials` once every chunk is in. Used by :func:`assign_accumulate_gemm_cuda`
    and, with NumPy-computed products, by the simulator tests.
    """
    n_clusters, n_rows = dots.shape
    n_features = X.shape[1]
    layout = plan_layout(n_rows, n_clusters, n_features) if layout is None else layout
    out = empty_assignment(X.shape[0], stream) if out is None else out
    if partials is None:
        partials = zeros_partials(layout.n_blocks, n_clusters, n_features, stream)
    weights, weighted = device_weights_argument(sample_weight, stream)
    launch_assign_accumulate(
        X, to_device_float32(centers, stream), weights, weighted, accumulate, out, partials,
        layout, stream, dots=to_device_float32(dots, stream),
        center_norms=to_device_float32(center_norms, stream), start=start, stop=start + n_rows,
    )  # fmt: skip
    return out, partials, layout


def assign_accumulate_gemm_cuda(
    X, centers, sample_weight=None, *, accumulate=True, out=None, stream=0,
):  # fmt: skip
    """Fused pass through cuBLAS (``cupy.matmul``) and the finish kernel; same contract as
    :func:`assign_accumulate_cuda`. Needs CuPy and a real GPU (imported here, not at load)."""
    import cupy as cp

    check_device_block(X, centers, sample_weight)
    n_samples, n_features = X.shape
    n_clusters = centers.shape[0]
    out = empty_assignment(n_samples, stream) if out is None else out
    if n_samples == 0:
        return out, ClusterSums.zeros(n_clusters, n_features)
    chunk = min(dots_chunk_rows(n_clusters), n_samples)
    layout = plan_layout(chunk, n_clusters, n_features)
    partials = zeros_partials(layout.n_blocks if accumulate else 1, n_clusters, n_features, stream)
    weights, weighted = device_weights_argument(sample_weight, stream)
    with cp.cuda.ExternalStream(stream_pointer(stream)):
        X_cp = cp.asarray(X)
        centers_cp = cp.ascontiguousarray(cp.asarray(centers), dtype=cp.float32)
        center_norms = cp.einsum("ij,ij->i", centers_cp, centers_cp)
        for start in range(0, n_samples, chunk):
            stop = min(start + chunk, n_samples)
            dots = cp.matmul(centers_cp, X_cp[start:stop].T)
            launch_assign_accumulate(
                X, centers_cp, weights, weighted, accumulate, out, partials, layout, stream,
                dots=dots, center_norms=center_norms, start=start, stop=stop,
            )  # fmt: skip
    if not accumulate:
        if stream == 0:
            cuda.synchronize()
        else:
            stream.synchronize()
        return out, ClusterSums.zeros(n_clusters, n_features)
    return out, fold_partials(partials, stream=stream)
