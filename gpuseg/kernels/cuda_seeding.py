"""CUDA twin of the k-means++ distance update (:mod:`gpuseg.kernels.seeding`).

For ``X`` of shape ``(n_samples, n_features)`` (float32, on the device, read) and ``candidates`` of
shape ``(n_candidates, n_features)`` (float32, read), writes ``out[i, t] = ||x_i - candidate_t||^2``
(float32, shape ``(n_samples, n_candidates)``, written), one thread per row. ``n_candidates`` is
small (``2 + log(k)``), so the candidates are read through the cache rather than staged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from gpuseg.kernels.cuda_fused import is_device_array, squared_distance_cuda, to_device_float32

_THREADS = 128


@cuda.jit
def _squared_distances_cuda(
    X,  # IN (n_samples, n_features) float32
    candidates,  # IN (n_candidates, n_features) float32
    out,  # OUT (n_samples, n_candidates) float32
):
    i = cuda.grid(1)
    if i < X.shape[0]:
        for t in range(candidates.shape[0]):
            out[i, t] = squared_distance_cuda(X, i, candidates, t, X.shape[1])


def squared_distances_cuda(X, candidates, *, stream=0, to_host: bool = True):
    """Return the squared Euclidean distances of every row of ``X`` to every candidate.

    Parameters
    ----------
    X : array of float32, shape (n_samples, n_features)
        Rows, on the device (or on the host: copied over).
    candidates : array, shape (n_candidates, n_features)
        Candidate centres (host or device); cast to float32.
    to_host : bool, default True
        Return a NumPy array; ``False`` leaves the result on the device.

    Returns
    -------
    array of float32, shape (n_samples, n_candidates)
    """
    if np.dtype(X.dtype) != np.float32 or X.ndim != 2:
        raise ValueError(f"X must be a 2-D float32 array; got ndim={X.ndim}, dtype={X.dtype}.")
    if not is_device_array(candidates):
        candidates = np.ascontiguousarray(candidates, dtype=np.float32).reshape(-1, X.shape[1])
    X_dev = to_device_float32(X, stream)
    candidates_dev = to_device_float32(candidates, stream)
    n_samples = X.shape[0]
    out = cuda.device_array((n_samples, candidates.shape[0]), np.float32, stream=stream)
    if n_samples:
        grid = math.ceil(n_samples / _THREADS)
        _squared_distances_cuda[grid, _THREADS, stream](X_dev, candidates_dev, out)
    return out.copy_to_host(stream=stream) if to_host else out
