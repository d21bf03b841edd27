"""Choosing the number of segments: exact streamed scores per k, and a documented recommendation.

For every ``k`` a :class:`gpuseg.KMeans` is fitted on all rows (arrays or any batch source), then
two streamed passes over the rows give, per segment ``j`` of the nearest-centre labels, its size
``n_j``, mean ``m_j``, within sum of squares ``W_j = sum ||x - m_j||^2`` and mean distance
``s_j = sum ||x - m_j|| / n_j`` (float64, exact up to the float32 rows). From these:

- inertia: the fit's exact sum of squared distances to the fitted centres;
- Calinski-Harabasz: ``[sum_j n_j ||m_j - m||^2 / (k - 1)] / [sum_j W_j / (n - k)]``;
- Davies-Bouldin: ``mean_i max_{j != i} (s_i + s_j) / ||m_i - m_j||``;
- silhouette: :func:`sklearn.metrics.silhouette_score` on one uniform sample of ``sample_size``
  rows (the same rows for every k; ``sample_size`` is reported), labelled by nearest centre;
- the smallest segment's share of the rows.

These equal :func:`sklearn.metrics.calinski_harabasz_score` and
:func:`sklearn.metrics.davies_bouldin_score` of the same labels (empty segments are left out, as
scikit-learn only sees the labels that occur). With a weight column every statistic but the
silhouette is weighted, a weight of 2 counting a row twice.

Recommendation
--------------
1. A ``k`` is eligible when its smallest segment holds at least ``min_share`` of the rows
   (default 2%): a smaller segment is not actionable.
2. Among eligible ``k``, the best Calinski-Harabasz score is found; the recommended ``k`` is the
   smallest eligible ``k`` scoring within ``tolerance`` (default 5%) of it, so fewer segments
   win when the scores are close.
3. With no eligible ``k``, nothing is recommended (``recommended`` is None) and the reason says
   which segments were too small.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from sklearn.metrics import silhouette_score

from gpuseg._backend import get_backend
from gpuseg._lloyd import run_pass
from gpuseg.batches import ArraySource, BatchSource
from gpuseg.estimator import KMeans, is_batch_source
from gpuseg.kernels.types import ReusedBlock

DEFAULT_SAMPLE_SIZE = 10_000
DEFAULT_MIN_SHARE = 0.02
DEFAULT_TOLERANCE = 0.05


def as_source(X, sample_weight: np.ndarray | None = None) -> BatchSource:
    """A batch source over ``X``: returned as is when it is one, else an :class:`ArraySource`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), pandas DataFrame, or a batch source
    sample_weight : array-like of shape (n_samples,), optional

    Examples
    --------
    >>> as_source(np.zeros((3, 2))).n_samples
    3
    """
    if is_batch_source(X):
        if sample_weight is not None:
            raise ValueError("sample_weight must come from the source (its weight column).")
        return X
    values = X.to_numpy(np.float32) if isinstance(X, pd.DataFrame) else np.asarray(X, np.float32)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"X has shape {values.shape}; expected (n_samples, n_features), n >= 1.")
    if not np.isfinite(values).all():
        raise ValueError("X contains NaN or infinity; clean or impute it first.")
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
    return ArraySource(np.ascontiguousarray(values), weights)


@dataclass
class ClusterStatistics:
    """Per-segment statistics of rows labelled by their nearest centre (float64, weighted).

    Attributes
    ----------
    sizes : ndarray of shape (n_clusters,)
        Rows (total weight) per segment.
    means : ndarray of shape (n_clusters, n_features)
        Mean of each segment's rows (NaN for an empty segment).
    within : ndarray of shape (n_clusters,)
        Sum of squared distances of a segment's rows to its mean.
    mean_distance : ndarray of shape (n_clusters,)
        Mean Euclidean distance of a segment's rows to its mean (0 when empty).
    inertia : float
        Sum of squared distances to the given centres.
    """

    sizes: np.ndarray
    means: np.ndarray
    within: np.ndarray
    mean_distance: np.ndarray
    inertia: float

    @property
    def n_samples(self) -> float:
        """Rows (total weight) seen."""
        return float(self.sizes.sum())


def cluster_statistics(source, centers: np.ndarray, *, device: str = "auto") -> ClusterStatistics:
    """Two streamed passes: sizes and means per nearest centre, then distances to those means.

    Parameters
    ----------
    source : batch source or array-like of shape (n_samples, n_features)
    centers : ndarray of shape (n_clusters, n_features)
    device : {"auto", "cpu", "cuda"}, default "auto"

    Returns
    -------
    ClusterStatistics

    Examples
    --------
    >>> X = np.array([[0.0], [2.0], [10.0], [12.0]])
    >>> stats = cluster_statistics(X, np.array([[1.0], [11.0]]))
    >>> stats.sizes.tolist(), stats.within.tolist(), stats.mean_distance.tolist()
    ([2.0, 2.0], [2.0, 2.0], [1.0, 1.0])
    """
    source = as_source(source)
    backend = get_backend(device)
    centers32 = np.ascontiguousarray(centers, dtype=np.float32)
    n_clusters = centers32.shape[0]
    totals = run_pass(source, centers32, backend)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = totals.sums / totals.weights[:, None]
    within = np.zeros(n_clusters)
    distance = np.zeros(n_clusters)
    outputs = ReusedBlock()
    for batch in source.batches():
        out = outputs.view(0, batch.X.shape[0])
        assignment, _ = backend.assign_accumulate(
            batch.X, centers32, accumulate=False, out=out, runner_up=False
        )
        labels = assignment.labels
        squared = ((batch.X.astype(np.float64) - means[labels]) ** 2).sum(axis=1)
        weights = None if batch.sample_weight is None else batch.sample_weight.astype(np.float64)
        rooted = np.sqrt(squared) if weights is None else np.sqrt(squared) * weights
        squared = squared if weights is None else squared * weights
        within += np.bincount(labels, weights=squared, minlength=n_clusters)
        distance += np.bincount(labels, weights=rooted, minlength=n_clusters)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_distance = np.where(totals.weights > 0, distance / totals.weights, 0.0)
    return ClusterStatistics(totals.weights, means, within, mean_distance, float(totals.inertia))


def calinski_harabasz(stats: ClusterStatistics) -> float:
    """Calinski-Harabasz score from per-segment statistics (non-empty segments only).

    Examples
    --------
    >>> X = np.array([[0.0], [2.0], [10.0], [12.0]])
    >>> calinski_harabasz(cluster_statistics(X, np.array([[1.0], [11.0]])))
    50.0
    """
    present = stats.sizes > 0
    k, n = int(present.sum()), stats.n_samples
    if not 1 < k < n:
        raise ValueError(f"Calinski-Harabasz needs 2 <= segments < rows; got {k} and {n:g}.")
    sizes, means = stats.sizes[present], stats.means[present]
    overall = (sizes[:, None] * means).sum(axis=0) / n
    between = float((sizes * ((means - overall) ** 2).sum(axis=1)).sum())
    within = float(stats.within[present].sum())
    return 1.0 if within == 0 else between * (n - k) / (within * (k - 1))


def davies_bouldin(stats: ClusterStatistics) -> float:
    """Davies-Bouldin score from per-segment statistics (non-empty segments only).

    Examples
    --------
    >>> X = np.array([[0.0], [2.0], [10.0], [12.0]])
    >>> davies_bouldin(cluster_statistics(X, np.array([[1.0], [11.0]])))
    0.2
    """
    present = stats.sizes > 0
    if present.sum() < 2:
        raise ValueError(
            f"Davies-Bouldin needs at least 2 non-empty segments; got {present.sum()}."
        )
    spread, means = stats.mean_distance[present], stats.means[present]
    gaps = cdist(means, means)
    if np.allclose(spread, 0) or np.allclose(gaps, 0):
        return 0.0
    gaps[gaps == 0] = np.inf
    return float(np.mean(np.max((spread[:, None] + spread[None, :]) / gaps, axis=1)))


@dataclass
class KScore:
    """Scores of one ``k``; ``model`` is the fitted estimator (not serialised)."""

    k: int
    inertia: float
    calinski_harabasz: float
    davies_bouldin: float
    silhouette: float
    smallest_share: float
    sizes: np.ndarray
    model: KMeans = field(repr=False)

    def to_dict(self) -> dict:
        """JSON-safe scores (no model)."""
        return {
            "k": self.k,
            "inertia": self.inertia,
            "calinski_harabasz": self.calinski_harabasz,
            "davies_bouldin": self.davies_bouldin,
            "silhouette": None if np.isnan(self.silhouette) else self.silhouette,
            "smallest_share": self.smallest_share,
            "sizes": [float(s) for s in self.sizes],
        }


@dataclass
class KSelection:
    """Scores for every ``k`` tried and the recommendation (see the module docstring).

    Attributes
    ----------
    scores : list of KScore
        In increasing ``k``.
    recommended : int or None
        The recommended ``k``; None when every ``k`` has a segment below ``min_share``.
    reason : str
        Why, in one sentence a report can print.
    sample_size : int
        Rows the silhouette was computed on.
    min_share, tolerance : float
        The rule's parameters.
    """

    scores: list[KScore]
    recommended: int | None
    reason: str
    sample_size: int
    min_share: float
    tolerance: float

    def __getitem__(self, k: int) -> KScore:
        """The scores of ``k``."""
        for score in self.scores:
            if score.k == k:
                return score
        raise KeyError(f"k={k} was not evaluated; tried {[s.k for s in self.scores]}.")

    def to_frame(self) -> pd.DataFrame:
        """One row per ``k`` with every score and whether it is eligible and recommended.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(c, 0.1, (50, 2)) for c in (0, 5)])
        >>> evaluate_k(X, [2, 3], random_state=0).to_frame()["recommended"].tolist()
        [True, False]
        """
        rows = [score.to_dict() for score in self.scores]
        frame = pd.DataFrame(rows).drop(columns="sizes").set_index("k")
        frame["eligible"] = frame["smallest_share"] >= self.min_share
        frame["recommended"] = frame.index == self.recommended
        return frame

    def to_dict(self) -> dict:
        """JSON-safe summary."""
        return {
            "recommended": self.recommended,
            "reason": self.reason,
            "silhouette_sample_size": self.sample_size,
            "min_share": self.min_share,
            "tolerance": self.tolerance,
            "scores": [score.to_dict() for score in self.scores],
        }


def recommend_k(
    scores: Sequence[KScore],
    min_share: float = DEFAULT_MIN_SHARE,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[int | None, str]:
    """Apply the recommendation rule of the module docstring to scored ``k``.

    Returns
    -------
    k : int or None
    reason : str

    Examples
    --------
    >>> def score(k, ch, share):
    ...     return KScore(k, 0.0, ch, 0.0, 0.0, share, np.ones(k), None)
    >>> recommend_k([score(2, 100, 0.4), score(3, 98, 0.3), score(4, 200, 0.01)])[0]
    2
    """
    eligible = [s for s in scores if s.smallest_share >= min_share]
    too_small = [s for s in scores if s.smallest_share < min_share]
    excluded = ""
    if too_small:
        listed = ", ".join(f"k={s.k} ({s.smallest_share:.1%})" for s in too_small)
        excluded = f"; excluded for a segment under {min_share:.1%} of customers: {listed}"
    if not eligible:
        return None, f"no k gives every segment at least {min_share:.1%} of customers{excluded}"
    best = max(eligible, key=lambda s: s.calinski_harabasz)
    floor = (1 - tolerance) * best.calinski_harabasz
    chosen = min((s for s in eligible if s.calinski_harabasz >= floor), key=lambda s: s.k)
    reason = (
        f"k={chosen.k}: highest Calinski-Harabasz ({chosen.calinski_harabasz:.4g}) among k with "
        f"every segment at least {min_share:.1%} of customers"
    )
    if chosen is not best:
        reason = (
            f"k={chosen.k}: the fewest segments within {tolerance:.0%} of the best "
            f"Calinski-Harabasz (k={best.k}: {best.calinski_harabasz:.4g}; "
            f"k={chosen.k}: {chosen.calinski_harabasz:.4g}) among k with every segment at least "
            f"{min_share:.1%} of customers"
        )
    return chosen.k, reason + excluded


def evaluate_k(
    X,
    ks: Iterable[int],
    *,
    random_state: int | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    min_share: float = DEFAULT_MIN_SHARE,
    tolerance: float = DEFAULT_TOLERANCE,
    kmeans_params: dict | None = None,
    device: str = "auto",
) -> KSelection:
    """Fit one model per ``k``, score each exactly (silhouette on a sample) and recommend one.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), DataFrame, or a batch source
        Rows in model units (the feature plan applied).
    ks : iterable of int
        Numbers of segments to try, each >= 2.
    random_state : int, optional
        Seed of every fit and of the silhouette sample.
    sample_size : int, default 10_000
        Rows of the silhouette sample.
    min_share : float, default 0.02
        Smallest acceptable share of a segment.
    tolerance : float, default 0.05
        Relative gap to the best Calinski-Harabasz within which fewer segments win.
    kmeans_params : dict, optional
        Other :class:`gpuseg.KMeans` parameters (``n_init``, ``max_iter``, ``tol``...).
    device : {"auto", "cpu", "cuda"}, default "auto"

    Returns
    -------
    KSelection

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(c, 0.1, (50, 2)) for c in (0, 5, 10)])
    >>> evaluate_k(X, [2, 3, 4], random_state=0).recommended
    3
    """
    ks = _check_ks(ks)
    if not isinstance(sample_size, numbers.Integral) or sample_size < 2:
        raise ValueError(f"sample_size={sample_size!r} should be an integer >= 2.")
    if not 0 <= min_share < 1:
        raise ValueError(f"min_share={min_share!r} should be in [0, 1).")
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance={tolerance!r} should be in [0, 1).")
    source = as_source(X)
    if ks[-1] > source.n_samples:
        raise ValueError(f"k={ks[-1]} should be <= n_samples={source.n_samples}.")
    backend = get_backend(device)
    sample = source.sample(sample_size, np.random.default_rng(random_state)).X
    scores = []
    for k in ks:
        params = {**(kmeans_params or {}), "random_state": random_state, "device": device}
        model = KMeans(k, **params).fit(source)
        stats = cluster_statistics(source, model.cluster_centers_, device=device)
        assignment, _ = backend.assign_accumulate(
            sample, np.ascontiguousarray(model.cluster_centers_, dtype=np.float32), accumulate=False
        )
        scores.append(
            KScore(
                k=k,
                inertia=float(model.inertia_),
                calinski_harabasz=calinski_harabasz(stats),
                davies_bouldin=davies_bouldin(stats),
                silhouette=_silhouette(sample, assignment.labels),
                smallest_share=float(stats.sizes.min() / stats.n_samples),
                sizes=stats.sizes,
                model=model,
            )
        )
    recommended, reason = recommend_k(scores, min_share, tolerance)
    return KSelection(scores, recommended, reason, int(sample.shape[0]), min_share, tolerance)


def _silhouette(sample: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette of a labelled sample, NaN when it has fewer than 2 or as many labels as rows."""
    n_labels = np.unique(labels).size
    if not 1 < n_labels < labels.shape[0]:
        return float("nan")
    return float(silhouette_score(sample.astype(np.float64), labels))


def _check_ks(ks: Iterable[int]) -> list[int]:
    """Sorted distinct ``k``, each an integer >= 2."""
    values = list(ks)
    if not values:
        raise ValueError("ks=[] should list at least one number of segments.")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
            raise ValueError(f"ks should hold integers >= 2; got {k!r}.")
    return sorted({int(k) for k in values})
