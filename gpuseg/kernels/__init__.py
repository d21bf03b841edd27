"""numba kernels: each primitive has a CPU twin and (where built) a CUDA twin of one contract.

Entry points
------------
assign_accumulate(X, centers, sample_weight=None, *, accumulate=True, out=None)
    The fused pass, through the direct kernel or the matrix-product path, chosen by size.
"""

from __future__ import annotations

import numpy as np

from gpuseg.kernels.fused import assign_accumulate as assign_accumulate_direct
from gpuseg.kernels.gemm import assign_accumulate_gemm
from gpuseg.kernels.types import Assignment, ClusterSums

__all__ = [
    "Assignment",
    "ClusterSums",
    "assign_accumulate",
    "assign_accumulate_direct",
    "assign_accumulate_gemm",
    "uses_gemm",
]

# From this many centre coordinates, with rows this wide, BLAS beats the direct kernel (measured on
# an AVX-512 Zen 4 core with OpenBLAS: k=256, d=32 about 8% faster, k=1024, d=64 about 2x faster;
# k=64, d=32 and k=1024, d=16 still faster direct). On narrower rows sgemm's inner dimension is too
# short to pay for the extra pass over the products. benchmarks/bench_kernels.py reproduces this.
_GEMM_MIN_CENTER_VALUES = 8192
_GEMM_MIN_FEATURES = 32


def uses_gemm(n_clusters: int, n_features: int) -> bool:
    """Whether the fused pass goes through the matrix-product path for this size."""
    return n_clusters * n_features >= _GEMM_MIN_CENTER_VALUES and n_features >= _GEMM_MIN_FEATURES


def assign_accumulate(
    X: np.ndarray,
    centers: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    accumulate: bool = True,
    out: Assignment | None = None,
) -> tuple[Assignment, ClusterSums]:
    """Fused pass on the CPU, through the kernel that suits ``centers``' size.

    See :func:`gpuseg.kernels.fused.assign_accumulate` for parameters and returns.
    """
    kernel = assign_accumulate_gemm if uses_gemm(*centers.shape) else assign_accumulate_direct
    return kernel(X, centers, sample_weight, accumulate=accumulate, out=out)
