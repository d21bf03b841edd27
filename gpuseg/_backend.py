"""Device dispatch, done once per fit: a backend holds the array module and the chosen kernels."""

from __future__ import annotations

import ctypes.util
import glob
import os
import weakref

import numpy as np

from gpuseg import kernels
from gpuseg.kernels.fused import check_block
from gpuseg.kernels.seeding import squared_distances
from gpuseg.kernels.types import Assignment, ClusterSums

DEVICES = ("auto", "cpu", "cuda")

# Rows of a NumPy block are moved to the device in batches of about this many bytes, through two
# pinned buffers on two streams: one batch is copied in while the previous one is worked on.
_BATCH_BYTES = 16 * 2**20


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
        runner_up: bool = True,
    ) -> tuple[Assignment, ClusterSums]:
        """The fused pass over one block (see :func:`gpuseg.kernels.assign_accumulate`)."""
        return kernels.assign_accumulate(
            X, centers, sample_weight, accumulate=accumulate, out=out, runner_up=runner_up
        )

    def squared_distances(self, X: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Squared distances of every row to a few candidate centres (k-means++ seeding)."""
        return squared_distances(X, candidates)


class CUDABackend:
    """Runs the kernels' CUDA twins (numba ``cuda.jit``, cuBLAS through CuPy) on one GPU.

    Accepts NumPy blocks (moved to the device in batches, copies overlapping the kernels) and
    CuPy or numba device arrays (worked on where they are). Results come back as NumPy arrays.

    Parameters
    ----------
    simulator_ok : bool, default False
        Allow numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``); for tests only. Under the
        simulator CuPy is not used, so the matrix-product path is never chosen.
    batch_rows : int, optional
        Rows per host-to-device batch; by default about 16 MB of rows.
    """

    name = "cuda"

    def __init__(self, *, simulator_ok: bool = False, batch_rows: int | None = None):
        from numba import config, cuda

        self.simulated = bool(config.ENABLE_CUDASIM)
        if self.simulated and not simulator_ok:
            raise ValueError(
                "CUDABackend under NUMBA_ENABLE_CUDASIM=1 needs simulator_ok=True (tests only)."
            )
        if not self.simulated and not cuda.is_available():
            raise ValueError(_NO_DEVICE)
        self._cupy = None if self.simulated else _import_cupy()
        self.xp = np if self._cupy is None else self._cupy
        self.batch_rows = batch_rows
        self._x_cache: tuple[weakref.ref, object] | None = None

    # -- the fused pass ---------------------------------------------------------------------

    def uses_gemm(self, n_clusters: int, n_features: int) -> bool:
        """Whether the pass for this size goes through cuBLAS (never under the simulator)."""
        from gpuseg.kernels.cuda_gemm import uses_gemm_cuda

        return self._cupy is not None and uses_gemm_cuda(n_clusters, n_features)

    def assign_accumulate(
        self,
        X,
        centers: np.ndarray,
        sample_weight=None,
        *,
        accumulate: bool = True,
        out: Assignment | None = None,
        runner_up: bool = True,
    ) -> tuple[Assignment, ClusterSums]:
        """The fused pass over one block (NumPy, CuPy or numba device array); host results.

        Same contract as :func:`gpuseg.kernels.assign_accumulate`; ``out`` holds NumPy arrays.
        The CUDA kernels find the runner-up whatever ``runner_up`` says.
        """
        from gpuseg.kernels import cuda_fused

        centers = np.asarray(centers) if not cuda_fused.is_device_array(centers) else centers
        if cuda_fused.is_device_array(X):
            return self._assign_device(X, centers, sample_weight, accumulate, out)
        check_block(X, centers, sample_weight)
        return self._assign_host(X, centers, sample_weight, accumulate, out)

    def _assign_device(self, X, centers, sample_weight, accumulate, out):
        from gpuseg.kernels import cuda_fused
        from gpuseg.kernels.cuda_gemm import assign_accumulate_gemm_cuda

        cuda_fused.check_device_block(X, centers, sample_weight)
        kernel = (
            assign_accumulate_gemm_cuda
            if self.uses_gemm(*centers.shape)
            else cuda_fused.assign_accumulate_cuda
        )
        assignment, sums = kernel(X, centers, sample_weight, accumulate=accumulate)
        out = Assignment.empty(X.shape[0]) if out is None else out
        for field in ("labels", "distances", "second_labels", "second_distances"):
            getattr(assignment, field).copy_to_host(getattr(out, field))
        return out, sums

    def _assign_host(self, X, centers, sample_weight, accumulate, out):
        """Batches through two pinned buffers and two streams; kernels chained in batch order."""
        from numba import cuda

        from gpuseg.kernels import cuda_fused as cf
        from gpuseg.kernels import cuda_gemm

        n_samples, n_features = X.shape
        n_clusters = centers.shape[0]
        out = Assignment.empty(n_samples) if out is None else out
        if n_samples == 0:
            return out, ClusterSums.zeros(n_clusters, n_features)
        batch = self.batch_rows or max(4096, _BATCH_BYTES // (4 * n_features))
        batch = min(batch, n_samples)
        gemm = self.uses_gemm(n_clusters, n_features)
        centers_dev = cf.to_device_float32(np.ascontiguousarray(centers, dtype=np.float32))
        if gemm:
            cp = self._cupy
            centers_cp = cp.asarray(centers_dev)
            center_norms = cp.einsum("ij,ij->i", centers_cp, centers_cp)
            chunk = min(cuda_gemm.dots_chunk_rows(n_clusters), batch)
            layout = cf.plan_layout(chunk, n_clusters, n_features)
            n_slots = layout.n_blocks
        else:
            sizes = {batch, n_samples % batch or batch}
            n_slots = max(cf.plan_layout(m, n_clusters, n_features).n_blocks for m in sizes)
        partials = cf.zeros_partials(n_slots if accumulate else 1, n_clusters, n_features)
        weighted = sample_weight is not None
        w_dtype = np.asarray(sample_weight).dtype if weighted else np.float32
        streams = [cuda.stream(), cuda.stream()]
        slots = [_Slot(batch, n_features, w_dtype, weighted) for _ in streams]
        ones = cuda.to_device(np.ones(1, dtype=np.float32))
        pending: list[tuple[int, int] | None] = [None, None]
        previous_kernel = None
        cuda.synchronize()  # centres and partials are ready before the streams use them
        for index, start in enumerate(range(0, n_samples, batch)):
            s = index % 2
            stream, slot = streams[s], slots[s]
            if pending[s] is not None:
                stream.synchronize()
                slot.drain(out, *pending[s])
            m = min(batch, n_samples - start)
            slot.X_pin[:m] = X[start : start + m]
            X_dev = slot.X_dev[:m]
            X_dev.copy_to_device(slot.X_pin[:m], stream=stream)
            if weighted:
                slot.w_pin[:m] = sample_weight[start : start + m]
                slot.w_dev[:m].copy_to_device(slot.w_pin[:m], stream=stream)
            weights = slot.w_dev[:m] if weighted else ones
            if previous_kernel is not None:
                previous_kernel.wait(stream)
            dev_out = slot.out_dev.view(0, m)
            if gemm:
                self._enqueue_gemm(
                    X_dev, centers_cp, center_norms, weights, weighted, accumulate, dev_out,
                    partials, layout, chunk, stream,
                )  # fmt: skip
            else:
                cf.launch_assign_accumulate(
                    X_dev, centers_dev, weights, weighted, accumulate, dev_out, partials,
                    cf.plan_layout(m, n_clusters, n_features), stream,
                )  # fmt: skip
            previous_kernel = cuda.event()
            previous_kernel.record(stream)
            slot.fetch(m, stream)
            pending[s] = (start, m)
        for s in (0, 1):
            if pending[s] is not None:
                streams[s].synchronize()
                slots[s].drain(out, *pending[s])
        if not accumulate:
            return out, ClusterSums.zeros(n_clusters, n_features)
        return out, cf.fold_partials(partials)

    def _enqueue_gemm(
        self, X_dev, centers_cp, center_norms, weights, weighted, accumulate, out, partials,
        layout, chunk, stream,
    ):  # fmt: skip
        from gpuseg.kernels import cuda_fused as cf
        from gpuseg.kernels import cuda_gemm

        cp = self._cupy
        n_rows = X_dev.shape[0]
        with cp.cuda.ExternalStream(cuda_gemm.stream_pointer(stream)):
            X_cp = cp.asarray(X_dev)
            for start in range(0, n_rows, chunk):
                stop = min(start + chunk, n_rows)
                dots = cp.matmul(centers_cp, X_cp[start:stop].T)
                cf.launch_assign_accumulate(
                    X_dev, centers_cp, weights, weighted, accumulate, out, partials, layout,
                    stream, dots=dots, center_norms=center_norms, start=start, stop=stop,
                )  # fmt: skip

    # -- seeding ----------------------------------------------------------------------------

    def squared_distances(self, X, candidates: np.ndarray) -> np.ndarray:
        """Squared distances of every row to a few candidate centres (k-means++ seeding).

        A NumPy ``X`` is moved to the device once and kept while the same array is passed again
        (seeding calls this once per centre with the same rows).
        """
        from gpuseg.kernels import cuda_fused
        from gpuseg.kernels.cuda_seeding import squared_distances_cuda

        if not cuda_fused.is_device_array(X):
            cached = self._x_cache
            if cached is not None and cached[0]() is X:
                X = cached[1]
            else:
                X_host = X
                X = cuda_fused.to_device_float32(X_host)
                self._x_cache = (weakref.ref(X_host), X)
        return squared_distances_cuda(X, candidates)


class _Slot:
    """One side of the host-to-device pipeline: pinned host buffers and device buffers."""

    def __init__(self, rows: int, n_features: int, w_dtype, weighted: bool):
        from numba import cuda

        from gpuseg.kernels.cuda_fused import empty_assignment

        self.X_pin = cuda.pinned_array((rows, n_features), dtype=np.float32)
        self.X_dev = cuda.device_array((rows, n_features), dtype=np.float32)
        w_rows = rows if weighted else 1
        self.w_pin = cuda.pinned_array(w_rows, dtype=w_dtype)
        self.w_dev = cuda.device_array(w_rows, dtype=w_dtype)
        self.out_dev = empty_assignment(rows)
        self.out_pin = Assignment(
            labels=cuda.pinned_array(rows, dtype=np.int32),
            distances=cuda.pinned_array(rows, dtype=np.float32),
            second_labels=cuda.pinned_array(rows, dtype=np.int32),
            second_distances=cuda.pinned_array(rows, dtype=np.float32),
        )

    def fetch(self, n_rows: int, stream) -> None:
        """Queue the copies of the batch's per-row results into the pinned buffers."""
        for field in ("labels", "distances", "second_labels", "second_distances"):
            device = getattr(self.out_dev, field)[:n_rows]
            device.copy_to_host(getattr(self.out_pin, field)[:n_rows], stream=stream)

    def drain(self, out: Assignment, start: int, n_rows: int) -> None:
        """Copy a finished batch's results from the pinned buffers into ``out``."""
        for field in ("labels", "distances", "second_labels", "second_distances"):
            getattr(out, field)[start : start + n_rows] = getattr(self.out_pin, field)[:n_rows]


_NO_DEVICE = (
    "device='cuda' was requested but no CUDA device is visible; use device='cpu' or 'auto'."
)
_NO_CUPY = (
    "device='cuda' was requested but CuPy is not installed; "
    "pip install 'gpuseg[gpu]' or use device='cpu' or 'auto'."
)


def _import_cupy():
    try:
        import cupy
    except ImportError as error:
        raise ValueError(_NO_CUPY) from error
    return cupy


def _cupy_importable() -> bool:
    try:
        _import_cupy()
    except ValueError:
        return False
    return True


def _driver_present() -> bool:
    """Cheap look for a CUDA driver first, so CPU-only runs skip importing numba.cuda (~1 s)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") or glob.glob("/dev/nvidia[0-9]*"):
        return True
    if glob.glob("/dev/dxg"):  # WSL
        return True
    return any(ctypes.util.find_library(name) is not None for name in ("cuda", "nvcuda"))


def _cuda_visible() -> bool:
    """Whether a real CUDA device is visible (the simulator does not count)."""
    if not _driver_present():
        return False
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba always ships numba.cuda or numba-cuda
        return False
    from numba import config

    return not config.ENABLE_CUDASIM and bool(cuda.is_available())


def get_backend(device: str) -> CPUBackend | CUDABackend:
    """Return the backend for ``device`` ("auto", "cpu" or "cuda").

    "auto" picks CUDA when a real GPU is visible and CuPy imports, else the CPU.

    Examples
    --------
    >>> get_backend("cpu").name
    'cpu'
    """
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is not one of {', '.join(map(repr, DEVICES))}.")
    if device == "cuda":
        if not _cuda_visible():
            raise ValueError(_NO_DEVICE)
        return CUDABackend()
    if device == "auto" and _cuda_visible() and _cupy_importable():
        return CUDABackend()
    return CPUBackend()
