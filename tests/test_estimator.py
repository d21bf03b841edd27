"""gpuseg.KMeans against float64 NumPy oracles and scikit-learn, on fresh random data."""

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from gpuseg import KMeans


def asymmetric_data(rng, n_samples=3000, n_features=5, n_components=4):
    """Unequal, anisotropic clusters with n_features != n_clusters."""
    means = rng.uniform(-20, 20, (n_components, n_features))
    sizes = rng.multinomial(n_samples, rng.dirichlet(np.full(n_components, 2.0)))
    scales = rng.uniform(0.5, 3.0, (n_components, n_features))
    blocks = zip(means, scales, sizes, strict=True)
    return np.vstack([m + s * rng.standard_normal((c, n_features)) for m, s, c in blocks])


def squared_distances64(X, centers):
    X, centers = np.asarray(X, np.float64), np.asarray(centers, np.float64)
    return ((X[:, None, :] - centers[None]) ** 2).sum(-1)


def test_one_lloyd_iteration_matches_float64_oracle():
    rng = np.random.default_rng()
    X = asymmetric_data(rng)
    init = X[rng.choice(len(X), 6, replace=False)]
    labels = squared_distances64(X, init).argmin(1)
    expected = np.array([X[labels == j].mean(0) for j in range(6)])
    km = KMeans(6, init=init, algorithm="lloyd", max_iter=2, tol=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        km.fit(X)
    np.testing.assert_allclose(km.cluster_centers_, expected, rtol=1e-6, atol=1e-6)
    new_d2 = squared_distances64(X, km.cluster_centers_)
    np.testing.assert_array_equal(km.labels_, new_d2.argmin(1))
    np.testing.assert_allclose(km.inertia_, new_d2.min(1).sum(), rtol=1e-6)


def test_converged_lloyd_matches_scikit_learn_from_the_same_init():
    rng = np.random.default_rng()
    X = asymmetric_data(rng, n_samples=5000, n_features=7, n_components=5)
    init = X[rng.choice(len(X), 5, replace=False)]
    ours = KMeans(5, init=init, algorithm="lloyd", tol=0).fit(X)
    ref = SklearnKMeans(5, init=init, n_init=1, tol=0, max_iter=1000).fit(X)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-5)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)


@pytest.mark.parametrize("algorithm", ["auto", "lloyd", "minibatch"])
def test_inertia_close_to_scikit_learn_on_separated_mixture(algorithm):
    X, _ = make_blobs(4000, n_features=9, centers=6, cluster_std=1.5,
                      random_state=np.random.default_rng().integers(1 << 30))
    ours = KMeans(6, algorithm=algorithm, random_state=0, batch_size=512).fit(X)
    ref = SklearnKMeans(6, n_init=10, random_state=0).fit(X)
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=2e-3)
    recomputed = squared_distances64(X, ours.cluster_centers_).min(1).sum()
    np.testing.assert_allclose(ours.inertia_, recomputed, rtol=1e-6)


def test_same_seed_gives_identical_centres():
    X = asymmetric_data(np.random.default_rng(), n_samples=20_000)
    a = KMeans(7, random_state=42, sample_rows=5000).fit(X)
    b = KMeans(7, random_state=42, sample_rows=5000).fit(X)
    assert a.cluster_centers_.tobytes() == b.cluster_centers_.tobytes()
    assert a.inertia_ == b.inertia_


def test_weight_two_equals_duplicated_row():
    rng = np.random.default_rng()
    X = asymmetric_data(rng, n_samples=500)
    init = X[:4].copy()
    weights = np.ones(len(X))
    weights[7] = 2
    weighted = KMeans(4, init=init, tol=0).fit(X, sample_weight=weights)
    duplicated = KMeans(4, init=init, tol=0).fit(np.vstack([X, X[7:8]]))
    np.testing.assert_allclose(weighted.cluster_centers_, duplicated.cluster_centers_, rtol=1e-6)
    np.testing.assert_allclose(weighted.inertia_, duplicated.inertia_, rtol=1e-6)


def test_k_equals_n_gives_zero_inertia():
    X = np.random.default_rng().standard_normal((12, 3))
    km = KMeans(12, random_state=0).fit(X)
    assert km.inertia_ == 0
    assert sorted(km.labels_.tolist()) == list(range(12))


def test_k_one_is_the_weighted_mean():
    rng = np.random.default_rng()
    X, w = rng.standard_normal((300, 4)), rng.uniform(0.1, 3, 300)
    km = KMeans(1).fit(X, sample_weight=w)
    np.testing.assert_allclose(km.cluster_centers_[0], np.average(X, axis=0, weights=w),
                               rtol=1e-6, atol=1e-6)


def test_duplicate_rows_and_constant_column():
    rng = np.random.default_rng()
    base = rng.standard_normal((5, 3)) * 10
    X = np.repeat(base, 20, axis=0)
    X[:, 1] = 5.0
    km = KMeans(5, random_state=1).fit(X)
    assert km.inertia_ == pytest.approx(0, abs=1e-6)
    np.testing.assert_allclose(km.cluster_centers_[:, 1], 5.0)
    assert sorted(km.cluster_sizes_.tolist()) == [20] * 5


def test_single_row():
    km = KMeans(1).fit([[1.5, -2.0, 3.0]])
    np.testing.assert_allclose(km.cluster_centers_, [[1.5, -2.0, 3.0]])
    assert km.labels_.tolist() == [0]


def test_predict_transform_score_agree_with_float64():
    rng = np.random.default_rng()
    X = asymmetric_data(rng)
    km = KMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    Y = asymmetric_data(rng, n_samples=700)
    d2 = squared_distances64(Y, km.cluster_centers_)
    np.testing.assert_array_equal(km.predict(Y), d2.argmin(1))
    np.testing.assert_allclose(km.transform(Y), np.sqrt(d2), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(km.score(Y), -d2.min(1).sum(), rtol=1e-6)
    assert km.transform(Y).dtype == np.float64
    assert km.transform(Y.astype(np.float32)).dtype == np.float32


def test_partial_fit_with_one_centre_is_the_running_mean():
    rng = np.random.default_rng()
    X = rng.standard_normal((1000, 3)) + np.array([1.0, 2.0, 3.0])
    km = KMeans(1)
    for batch in np.array_split(X, 7):
        km.partial_fit(batch)
    np.testing.assert_allclose(km.cluster_centers_[0], X.mean(0), rtol=1e-6)
    assert km.n_steps_ == 7
    with pytest.raises(ValueError, match="X has 2 features, but KMeans is expecting 3"):
        km.partial_fit(X[:, :2])


def test_pandas_input_keeps_feature_names():
    rng = np.random.default_rng()
    frame = pd.DataFrame(rng.standard_normal((200, 3)), columns=["recency", "frequency", "spend"])
    km = KMeans(3, random_state=0).fit(frame)
    assert list(km.feature_names_in_) == ["recency", "frequency", "spend"]
    np.testing.assert_array_equal(km.predict(frame), km.labels_)


def test_max_iter_reached_warns():
    X = asymmetric_data(np.random.default_rng(), n_samples=5000)
    with pytest.warns(ConvergenceWarning, match="raise max_iter or tol"):
        KMeans(8, max_iter=1, random_state=0).fit(X)


@pytest.mark.parametrize(
    ("X", "params", "error", "match"),
    [
        ([[1.0, np.nan]], {"n_clusters": 1}, ValueError, "NaN"),
        ([[1.0, np.inf]], {"n_clusters": 1}, ValueError, "infinity"),
        ([["a", "b"]], {"n_clusters": 1}, ValueError, "could not convert string to float: 'a'"),
        ([1.0, 2.0, 3.0], {"n_clusters": 1}, ValueError, "Expected 2D array"),
        ([[1.0], [2.0]], {"n_clusters": 3}, ValueError, r"n_samples=2 should be >= n_clusters=3"),
        ([[1.0], [2.0]], {"n_clusters": 0}, ValueError, r"n_clusters=0 should be an integer >= 1"),
        (np.empty((0, 3)), {"n_clusters": 1}, ValueError, r"0 sample\(s\)"),
        ([[1e300, 1.0]], {"n_clusters": 1}, ValueError, "too large for float32"),
        ([[1.0]], {"n_clusters": 1, "device": "gpu"}, ValueError, "device='gpu' is not one of"),
        ([[1.0]], {"n_clusters": 1, "device": "cuda"}, ValueError, "device='cuda' was requested"),
        ([[1.0]], {"n_clusters": 1, "algorithm": "elkan"}, ValueError, "algorithm='elkan'"),
        ([[1.0]], {"n_clusters": 1, "tol": -1}, ValueError, "tol=-1 should be a number >= 0"),
        ([[1.0]], {"n_clusters": 1, "init": "kmeans"}, ValueError, "init='kmeans'"),
        ([[1.0]], {"n_clusters": 1, "init": [[1.0, 2.0]]}, ValueError, r"init has shape \(1, 2\)"),
    ],
)
def test_bad_input_names_the_value(X, params, error, match):
    with pytest.raises(error, match=match):
        KMeans(**params).fit(X)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([1.0, -1.0], "must be finite and >= 0"),
        ([1.0], r"sample_weight.shape == \(1,\), expected \(2,\)"),
        ([0.0, 0.0], "sums to zero"),
    ],
)
def test_bad_sample_weight(weights, match):
    with pytest.raises(ValueError, match=match):
        KMeans(1).fit([[1.0], [2.0]], sample_weight=weights)
