"""Distance update for k-means++ seeding: squared distances of every row to a few candidates.

For ``X`` of shape ``(n_samples, n_features)`` (float32, read) and ``candidates`` of shape
``(n_candidates, n_features)`` (float32, read), writes ``out[i, t] = ||x_i - candidate_t||^2``
(float32, shape ``(n_samples, n_candidates)``). Seeding folds these into the running minimum
distances and the candidates' potentials; it calls this once per chosen centre with the
``2 + log(k)`` candidates drawn for it, so ``n_candidates`` is small.
"""

from __future__ import annotations

import numba
import numpy as np

from gpuseg.kernels._layout import FASTMATH


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def _squared_distances_cpu(
    X,  # IN (n_samples, n_features) float32
    candidates,  # IN (n_candidates, n_features) float32
    out,  # OUT (n_samples, n_candidates) float32
):
    n_samples, n_features = X.shape
    for i in numba.prange(n_samples):
        for t in range(candidates.shape[0]):
            acc = np.float32(0.0)
            for f in range(n_features):
                diff = X[i, f] - candidates[t, f]
                acc += diff * diff
            out[i, t] = acc


def squared_distances(X: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Return the squared Euclidean distances of every row of ``X`` to every candidate.

    Parameters
    ----------
    X : ndarray of float32, shape (n_samples, n_features)
        Rows, C-contiguous.
    candidates : ndarray, shape (n_candidates, n_features)
        Candidate centres; cast to float32.

    Returns
    -------
    ndarray of float32, shape (n_samples, n_candidates)

    Examples
    --------
    >>> squared_distances(np.ones((2, 3), np.float32), np.zeros((1, 3))).tolist()
    [[3.0], [3.0]]
    """
    if X.dtype != np.float32 or X.ndim != 2:
        raise ValueError(f"X must be a 2-D float32 array; got ndim={X.ndim}, dtype={X.dtype}.")
    candidates = np.ascontiguousarray(candidates, dtype=np.float32).reshape(-1, X.shape[1])
    out = np.empty((X.shape[0], candidates.shape[0]), dtype=np.float32)
    _squared_distances_cpu(np.ascontiguousarray(X), candidates, out)
    return out
