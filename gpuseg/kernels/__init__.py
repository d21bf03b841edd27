"""numba kernels: each primitive has a CPU twin and (where built) a CUDA twin of one contract.

Entry points
------------
assign_accumulate(X, centers, sample_weight=None, *, accumulate=True, out=None, runner_up=True)
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

# From this many centres, with rows this wide, BLAS beats the direct kernel (2 Zen 4 cores with
# OpenBLAS, ms per pass direct / gemm: k=1024, d=128 368 / 340; k=4096, d=128 419 / 373;
# k=1024, d=256 383 / 320; still faster direct: k=512, d=128 182 / 187; k=256, d=256 166 / 184;
# k=4096, d=64 323 / 387; k=256, d=32 112 / 176). The direct kernel runs at a steady ~72e9
# row-centre-feature terms/s; sgemm needs both a long inner dimension and many centres to pass it,
# and pays an extra pass over the products. `benchmarks/bench_kernels.py --sizes n,d,k ...`
# reproduces these.
_GEMM_MIN_CLUSTERS = 1024
_GEMM_MIN_FEATURES = 128


def uses_gemm(n_clusters: int, n_features: int) -> bool:
    """Whether the fused pass goes through the matrix-product path for this size."""
    return n_clusters >= _GEMM_MIN_CLUSTERS and n_features >= _GEMM_MIN_FEATURES


def assign_accumulate(
    X: np.ndarray,
    centers: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    accumulate: bool = True,
    out: Assignment | None = None,
    runner_up: bool = True,
) -> tuple[Assignment, ClusterSums]:
    """Fused pass on the CPU, through the kernel that suits ``centers``' size.

    See :func:`gpuseg.kernels.fused.assign_accumulate` for parameters and returns (the
    matrix-product path finds the runner-up whatever ``runner_up`` says).
    """
    if uses_gemm(*centers.shape):
        return assign_accumulate_gemm(X, centers, sample_weight, accumulate=accumulate, out=out)
    return assign_accumulate_direct(
        X, centers, sample_weight, accumulate=accumulate, out=out, runner_up=runner_up
    )
