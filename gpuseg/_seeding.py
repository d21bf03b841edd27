"""Initial centres: greedy k-means++ (weighted), random rows, or centres given by the user."""

from __future__ import annotations

import math

import numpy as np

from gpuseg._backend import CPUBackend


def kmeans_plusplus(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    n_clusters: int,
    rng: np.random.Generator,
    backend: CPUBackend,
) -> np.ndarray:
    """Greedy k-means++: each centre is the best of ``2 + log(k)`` candidates drawn by D^2 weight.

    Returns float64 centres of shape ``(n_clusters, n_features)``.
    """
    n_samples = X.shape[0]
    weights = np.ones(n_samples) if sample_weight is None else sample_weight.astype(np.float64)
    n_trials = 2 + int(math.log(n_clusters))
    centers = np.empty((n_clusters, X.shape[1]), dtype=np.float64)
    first = rng.choice(n_samples, p=weights / weights.sum())
    centers[0] = X[first]
    closest = backend.squared_distances(X, X[first : first + 1])[:, 0].astype(np.float64)
    for c in range(1, n_clusters):
        cumulative = np.cumsum(weights * closest)
        potential = cumulative[-1]
        if potential > 0:
            draws = rng.uniform(size=n_trials) * potential
            candidates = np.minimum(np.searchsorted(cumulative, draws), n_samples - 1)
        else:  # every row coincides with a centre already: any row will do
            candidates = rng.choice(n_samples, size=n_trials)
        dist = np.minimum(closest[:, None], backend.squared_distances(X, X[candidates]))
        potentials = weights @ dist
        best = int(np.argmin(potentials))
        closest = dist[:, best]
        centers[c] = X[candidates[best]]
    return centers


def random_rows(X: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``n_clusters`` distinct rows of ``X`` chosen uniformly, as float64 centres."""
    rows = rng.choice(X.shape[0], size=n_clusters, replace=False)
    return X[np.sort(rows)].astype(np.float64)
