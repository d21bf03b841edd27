"""Device dispatch, done once per fit: a backend holds the array module and the chosen kernels."""

from __future__ import annotations

import numpy as np

from gpuseg import kernels
from gpuseg.kernels.seeding import squared_distances
from gpuseg.kernels.types import Assignment, ClusterSums

DEVICES = ("auto", "cpu", "cuda")


class CPUBackend:
    """Runs the kernels' CPU twins (numba ``parallel=True`` and BLAS) on NumPy arrays."""

    name = "cpu"
    xp = np

    def assign_accumulate(
        self,
        X: np.ndarray,
        centers: np.ndarray,
        sample_weight: np.ndarray | None = None,
        *,
        accumulate: bool = True,
        out: Assignment | None = None,
    ) -> tuple[Assignment, ClusterSums]:
        """The fused pass over one block (see :func:`gpuseg.kernels.assign_accumulate`)."""
        return kernels.assign_accumulate(
            X, centers, sample_weight, accumulate=accumulate, out=out
        )

    def squared_distances(self, X: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Squared distances of every row to a few candidate centres (k-means++ seeding)."""
        return squared_distances(X, candidates)


def _cuda_visible() -> bool:
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba always ships numba.cuda or numba-cuda
        return False
    from numba import config

    return bool(cuda.is_available()) and not config.ENABLE_CUDASIM


def get_backend(device: str) -> CPUBackend:
    """Return the backend for ``device`` ("auto", "cpu" or "cuda").

    Examples
    --------
    >>> get_backend("cpu").name
    'cpu'
    """
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is not one of {', '.join(map(repr, DEVICES))}.")
    if device == "cuda":
        if not _cuda_visible():
            raise ValueError(
                "device='cuda' was requested but no CUDA device is visible; "
                "use device='cpu' or 'auto'."
            )
        raise ValueError(
            "device='cuda' was requested but this gpuseg build has no CUDA kernels yet; "
            "use device='cpu' or 'auto'."
        )
    return CPUBackend()
