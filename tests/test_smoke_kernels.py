"""Fused pass and its matrix-product path against a float64 NumPy oracle."""

import numpy as np
import pytest

from gpuseg.kernels.fused import assign_accumulate
from gpuseg.kernels.gemm import assign_accumulate_gemm


@pytest.mark.parametrize("kernel", [assign_accumulate, assign_accumulate_gemm])
@pytest.mark.parametrize("n_clusters", [1, 7])
def test_pass_matches_float64_oracle(kernel, n_clusters):
    rng = np.random.default_rng()
    X = rng.standard_normal((3001, 5)).astype(np.float32) * [1, 2, 3, 4, 5]
    X = X.astype(np.float32)
    w = rng.uniform(0.5, 2.0, 3001).astype(np.float32)
    centers = X[rng.choice(3001, n_clusters, replace=False)].copy()
    assignment, sums = kernel(X, centers, w)
    d2 = ((X[:, None, :].astype(np.float64) - centers[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(assignment.labels, d2.argmin(1))
    np.testing.assert_allclose(assignment.distances, d2.min(1), rtol=1e-5, atol=1e-5)
    expected_sums = np.zeros((n_clusters, 5))
    np.add.at(expected_sums, d2.argmin(1), w[:, None].astype(np.float64) * X)
    np.testing.assert_allclose(sums.sums, expected_sums, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(sums.inertia, (w * d2.min(1)).sum(), rtol=1e-6)
    if n_clusters == 1:
        assert (assignment.second_labels == -1).all()
    else:
        np.testing.assert_array_equal(assignment.second_labels, np.argsort(d2, 1)[:, 1])
