"""Choosing k: exact streamed scores against scikit-learn, the recommendation rule, stability."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)

from gpuseg import KMeans
from gpuseg.batches import ArraySource
from gpuseg.choose_k import (
    KScore,
    as_source,
    calinski_harabasz,
    cluster_statistics,
    davies_bouldin,
    evaluate_k,
    recommend_k,
)
from gpuseg.stability import stability


def mixture(rng, n_components, n_features=5, n=2400, spread=12.0, shares=None):
    """A well separated Gaussian mixture, asymmetric (unequal scales and shares), float32."""
    shares = np.full(n_components, 1 / n_components) if shares is None else np.asarray(shares)
    sizes = np.floor(shares * n).astype(int)
    means = rng.normal(0, spread, (n_components, n_features))
    scales = rng.uniform(0.5, 1.5, n_features)
    X = np.concatenate(
        [rng.normal(m, 1.0, (s, n_features)) * scales for m, s in zip(means, sizes, strict=True)]
    )
    return rng.permutation(X).astype(np.float32)


def test_streamed_scores_equal_sklearn_on_all_rows():
    rng = np.random.default_rng()
    # Five features throughout: the kernels are compiled once per number of features.
    X = rng.standard_normal((1500, 5)).astype(np.float32) * rng.uniform(0.5, 3, 5)
    with warnings.catch_warnings():  # stopped early on purpose: centres != means
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = KMeans(5, random_state=0, max_iter=2).fit(X)
    labels = model.predict(X)
    stats = cluster_statistics(ArraySource(X, block_rows=256), model.cluster_centers_)
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(calinski_harabasz(stats), calinski_harabasz_score(X64, labels), 1e-6)
    np.testing.assert_allclose(davies_bouldin(stats), davies_bouldin_score(X64, labels), 1e-6)
    np.testing.assert_allclose(stats.sizes, np.bincount(labels, minlength=5))
    np.testing.assert_allclose(stats.inertia, model.score(X) * -1, rtol=1e-6)


def test_weights_count_rows_as_duplicates():
    rng = np.random.default_rng()
    X = rng.standard_normal((400, 5)).astype(np.float32)
    repeats = rng.integers(1, 4, 400)
    centers = X[:4].astype(np.float64)
    weighted = cluster_statistics(as_source(X, repeats), centers)
    duplicated = cluster_statistics(np.repeat(X, repeats, axis=0), centers)
    assert calinski_harabasz(weighted) == pytest.approx(calinski_harabasz(duplicated), rel=1e-9)
    assert davies_bouldin(weighted) == pytest.approx(davies_bouldin(duplicated), rel=1e-9)


def test_evaluate_k_scores_and_silhouette_sample():
    rng = np.random.default_rng()
    X = mixture(rng, 3, n=1200)
    selection = evaluate_k(X, [4, 2, 3], random_state=7, sample_size=500)
    assert [s.k for s in selection.scores] == [2, 3, 4]
    assert selection.sample_size == 500
    sample = ArraySource(X).sample(500, np.random.default_rng(7)).X.astype(np.float64)
    X64 = X.astype(np.float64)  # scikit-learn computes in the input's dtype
    for score in selection.scores:
        labels = score.model.predict(X)
        assert score.inertia == pytest.approx(score.model.inertia_)
        assert score.calinski_harabasz == pytest.approx(calinski_harabasz_score(X64, labels), 1e-6)
        assert score.davies_bouldin == pytest.approx(davies_bouldin_score(X64, labels), 1e-6)
        expected = silhouette_score(sample, score.model.predict(sample))
        assert score.silhouette == pytest.approx(expected, rel=1e-9)
        assert score.smallest_share == np.bincount(labels).min() / len(X)
    frame = selection.to_frame()
    assert frame["recommended"].sum() == 1 and frame.loc[3, "recommended"]
    assert selection.to_dict()["silhouette_sample_size"] == 500


@pytest.mark.parametrize("n_components", [3, 5])
def test_recovers_the_number_of_components(n_components):
    rng = np.random.default_rng()
    X = mixture(rng, n_components, shares=rng.dirichlet(np.full(n_components, 8.0)))
    selection = evaluate_k(X, range(2, 8), random_state=0, sample_size=1000)
    assert selection.recommended == n_components, selection.reason


def test_refuses_segments_below_the_minimum_share():
    rng = np.random.default_rng()
    X = mixture(rng, 3, shares=[0.33, 0.33, 0.33], spread=20.0)
    # A fourth component of 1 % far from the rest: placed at random, it can sit so near a big one
    # that Calinski-Harabasz rightly prefers k=3 (about 2 % of draws), which says nothing here.
    direction = rng.normal(size=X.shape[1])
    far = X.mean(0) + 100.0 * direction / np.linalg.norm(direction)
    small = rng.normal(far, 1.0, (24, X.shape[1])).astype(np.float32)
    X = rng.permutation(np.concatenate([X, small]))
    selection = evaluate_k(X, range(2, 6), random_state=0, sample_size=500, min_share=0.02)
    assert selection[4].smallest_share < 0.02
    assert selection.recommended is not None and selection.recommended < 4
    assert selection[selection.recommended].smallest_share >= 0.02
    assert "k=4 (1.0%)" in selection.reason
    permissive = evaluate_k(X, range(2, 6), random_state=0, sample_size=500, min_share=0.005)
    assert permissive.recommended == 4


def score(k, ch, share):
    return KScore(k, 0.0, ch, 0.0, 0.0, share, np.ones(k), None)


def test_recommendation_prefers_fewer_segments_when_close():
    scores = [score(2, 90.0, 0.3), score(3, 96.0, 0.2), score(4, 100.0, 0.1), score(5, 300, 0.001)]
    assert recommend_k(scores, 0.02, 0.05) == (3, pytest.approx(recommend_k(scores)[1]))
    k, reason = recommend_k(scores, 0.02, 0.0)
    assert k == 4 and reason.startswith("k=4: highest Calinski-Harabasz (100)")
    assert recommend_k(scores, 0.02, 0.15)[0] == 2
    k, reason = recommend_k(scores, 0.5, 0.05)
    assert k is None and reason.startswith("no k gives every segment at least 50.0%")


def test_evaluate_k_errors():
    X = np.random.default_rng().standard_normal((20, 5))
    with pytest.raises(ValueError, match="ks should hold integers >= 2; got 1"):
        evaluate_k(X, [1, 2])
    with pytest.raises(ValueError, match=r"ks=\[\] should list at least one"):
        evaluate_k(X, [])
    with pytest.raises(ValueError, match="k=30 should be <= n_samples=20"):
        evaluate_k(X, [2, 30])
    with pytest.raises(ValueError, match="sample_size=1 should be an integer >= 2"):
        evaluate_k(X, [2], sample_size=1)
    with pytest.raises(ValueError, match=r"min_share=1\.5 should be in \[0, 1\)"):
        evaluate_k(X, [2], min_share=1.5)
    with pytest.raises(ValueError, match=r"tolerance=-0\.1 should be in \[0, 1\)"):
        evaluate_k(X, [2], tolerance=-0.1)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        as_source(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="sample_weight must come from the source"):
        as_source(ArraySource(X), np.ones(20))


def test_scores_need_two_segments():
    X = np.zeros((5, 5))
    stats = cluster_statistics(X, np.array([[0.0] * 5, [9.0] * 5]))
    with pytest.raises(ValueError, match="Calinski-Harabasz needs 2 <= segments < rows; got 1"):
        calinski_harabasz(stats)
    with pytest.raises(ValueError, match="Davies-Bouldin needs at least 2 non-empty segments"):
        davies_bouldin(stats)


# -- stability --------------------------------------------------------------------------------


def test_stability_is_perfect_on_separated_components_and_lower_when_over_split():
    rng = np.random.default_rng()
    X = mixture(rng, 3, n=900)
    report = stability(X, [3, 7], n_seeds=3, n_bootstrap=2, sample_size=300, random_state=1)
    assert report.loc[3, "seed_ari_min"] == 1.0 and report.loc[3, "bootstrap_ari_min"] == 1.0
    assert report.loc[7, "seed_ari_mean"] < 1.0
    assert (report["sample_size"] == 300).all()


def test_stability_ari_is_sklearns():
    rng = np.random.default_rng()
    X = rng.standard_normal((400, 5))
    report = stability(X, [4], n_seeds=2, n_bootstrap=0, sample_size=150, random_state=3)
    source_rng = np.random.default_rng(3)
    sample = ArraySource(X.astype(np.float32)).sample(150, source_rng).X
    seeds = source_rng.integers(np.iinfo(np.int32).max, size=2)
    a, b = (KMeans(4, random_state=int(s)).fit(X).predict(sample) for s in seeds)
    assert report.loc[4, "seed_ari_mean"] == adjusted_rand_score(a, b)
    assert np.isnan(report.loc[4, "bootstrap_ari_mean"])
    with pytest.raises(ValueError, match="n_seeds=0 should be an integer >= 1"):
        stability(X, [2], n_seeds=0)
