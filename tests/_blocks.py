"""Test data shared by the kernel twin tests (CPU/simulator and real GPU)."""

import numpy as np


def make_block(n_samples, n_features, n_clusters, seed):
    """Asymmetric data: per-feature scales and offsets differ, centres drawn from the rows."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 5.0, n_features)
    offsets = rng.uniform(-3.0, 3.0, n_features)
    X = (rng.standard_normal((n_samples, n_features)) * scales + offsets).astype(np.float32)
    centers = X[rng.choice(n_samples, n_clusters, replace=False)].copy()
    weights = rng.uniform(0.5, 2.0, n_samples).astype(np.float32)
    return X, centers, weights
