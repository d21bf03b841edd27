"""make_customers: shape, determinism, bounded memory and, above all, no clean blobs."""

import tracemalloc

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from gpuseg import datasets
from gpuseg.datasets import make_customers


def lloyd_iterations(X, n_clusters=8, seeds=(0, 1, 2)):
    """Iterations scikit-learn's Lloyd needs from a few k-means++ starts."""
    return [
        KMeans(n_clusters, n_init=1, algorithm="lloyd", random_state=s).fit(X).n_iter_
        for s in seeds
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_dtype_and_finite(dtype):
    X = make_customers(3000, 12, random_state=0, dtype=dtype)
    assert X.shape == (3000, 12)
    assert X.dtype == dtype
    assert X.flags.c_contiguous
    assert np.isfinite(X).all()


def test_same_seed_same_table_different_seed_different_table():
    a = make_customers(2000, 16, random_state=7)
    assert np.array_equal(a, make_customers(2000, 16, random_state=7))
    b = make_customers(2000, 16, random_state=8)
    assert not np.allclose(a, b)


def test_table_does_not_depend_on_thread_count(monkeypatch):
    n_samples = 3 * datasets._BLOCK_ROWS // 2
    many = make_customers(n_samples, 4, random_state=3)
    monkeypatch.setattr(datasets, "usable_cores", lambda: 1)
    assert np.array_equal(many, make_customers(n_samples, 4, random_state=3))


def test_columns_are_standardised_and_the_first_ones_skewed():
    X = make_customers(50_000, 16, random_state=0).astype(np.float64)
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(X.std(axis=0), 1.0, rtol=0.05)
    centred = X - X.mean(axis=0)
    skewness = (centred**3).mean(axis=0) / X.std(axis=0) ** 3
    assert (skewness[:4] > 1.0).all(), skewness  # two spend and two count columns
    assert np.unique(X[:, 2]).size < 500  # counts are discrete


def test_not_clean_blobs():
    # The check discriminates: well-separated blobs converge in two or three iterations...
    blobs, _ = make_blobs(20_000, 16, centers=8, random_state=0)
    assert max(lloyd_iterations(blobs)) <= 3
    # ...while the customer table, with more components than clusters, keeps Lloyd busy.
    assert min(lloyd_iterations(make_customers(20_000, 16, random_state=0))) > 5


def test_extra_memory_is_bounded(monkeypatch):
    # Scratch is a few blocks per thread: 2 threads here, as on the smallest CI runner.
    monkeypatch.setattr(datasets, "usable_cores", lambda: 2)
    tracemalloc.start()
    try:
        X = make_customers(1_000_000, 16, random_state=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - X.nbytes < 48 * 2**20, (peak - X.nbytes) / 2**20


def test_generator_random_state_is_accepted():
    X = make_customers(100, 4, random_state=np.random.default_rng(0))
    assert np.array_equal(X, make_customers(100, 4, random_state=np.random.default_rng(0)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 0}, r"n_samples=0 should be an integer >= 1\."),
        ({"n_samples": 10, "n_features": 1}, r"n_features=1 should be an integer >= 2\."),
        ({"n_samples": 10, "n_components": 0}, r"n_components=0 should be an integer >= 1\."),
        ({"n_samples": 10, "dtype": np.int32}, r"dtype=int32 should be float32 or float64\."),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_customers(**kwargs)
