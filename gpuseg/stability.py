"""Stability of a segmentation: do other seeds and other samples give the same segments?

For every ``k``, agreement is the adjusted Rand index (:func:`sklearn.metrics.adjusted_rand_score`:
1 for identical partitions up to renumbering, about 0 for chance agreement) of the labels two
models give the rows of one evaluation sample of ``sample_size`` rows drawn uniformly from the data
(the same rows for every comparison, so the ARI costs ``O(sample_size)`` whatever the data size):

- across seeds: ``n_seeds`` models fitted on all rows with different seeds, every pair compared;
- on bootstrap samples: ``n_bootstrap`` models each fitted on a bootstrap resample (drawn with
  replacement) of the evaluation sample, each compared with the first seed's model.

A common reading: mean ARI above 0.9 is stable, below 0.75 the segments depend on chance.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from gpuseg.choose_k import DEFAULT_SAMPLE_SIZE, as_source
from gpuseg.estimator import KMeans


@dataclass
class StabilityScore:
    """Agreement of the fits of one ``k`` (ARI means and minima)."""

    k: int
    seed_ari_mean: float
    seed_ari_min: float
    bootstrap_ari_mean: float
    bootstrap_ari_min: float
    n_seeds: int
    n_bootstrap: int
    sample_size: int


def stability(
    X,
    ks: Iterable[int],
    *,
    n_seeds: int = 3,
    n_bootstrap: int = 3,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    random_state: int | None = None,
    kmeans_params: dict | None = None,
) -> pd.DataFrame:
    """Adjusted Rand index between fits with different seeds and on bootstrap samples, per ``k``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), DataFrame, or a batch source
    ks : iterable of int
        Numbers of segments, each >= 2.
    n_seeds : int, default 3
        Fits on all rows with different seeds (``n_seeds * (n_seeds - 1) / 2`` pairs); >= 1.
    n_bootstrap : int, default 3
        Fits on bootstrap resamples of the evaluation sample; >= 0.
    sample_size : int, default 10_000
        Rows of the evaluation sample (and of each bootstrap resample).
    random_state : int, optional
        Seed of the sample, the resamples and the seeds of the fits.
    kmeans_params : dict, optional
        Other :class:`gpuseg.KMeans` parameters.

    Returns
    -------
    pandas.DataFrame
        One row per ``k`` (the fields of :class:`StabilityScore`), indexed by ``k``; a mean or
        minimum over no pair is NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(c, 0.2, (100, 2)) for c in (0, 5, 10)])
    >>> stability(X, [3], random_state=0).loc[3, ["seed_ari_min", "bootstrap_ari_min"]].tolist()
    [1.0, 1.0]
    """
    for name, value, low in (("n_seeds", n_seeds, 1), ("n_bootstrap", n_bootstrap, 0)):
        if not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name}={value!r} should be an integer >= {low}.")
    if not isinstance(sample_size, numbers.Integral) or sample_size < 2:
        raise ValueError(f"sample_size={sample_size!r} should be an integer >= 2.")
    source = as_source(X)
    rng = np.random.default_rng(random_state)
    sample = source.sample(sample_size, rng).X
    params = dict(kmeans_params or {})
    rows = []
    for k in sorted({int(k) for k in ks}):
        seeds = rng.integers(np.iinfo(np.int32).max, size=n_seeds + n_bootstrap)
        runs = [
            KMeans(k, random_state=int(seed), **params).fit(source).predict(sample)
            for seed in seeds[:n_seeds]
        ]
        seed_ari = [adjusted_rand_score(a, b) for a, b in itertools.combinations(runs, 2)]
        boot_ari = []
        for seed in seeds[n_seeds:]:
            rows_drawn = rng.integers(sample.shape[0], size=sample.shape[0])
            model = KMeans(k, random_state=int(seed), **params).fit(sample[rows_drawn])
            boot_ari.append(adjusted_rand_score(runs[0], model.predict(sample)))
        rows.append(
            StabilityScore(
                k=k,
                seed_ari_mean=_mean(seed_ari),
                seed_ari_min=_min(seed_ari),
                bootstrap_ari_mean=_mean(boot_ari),
                bootstrap_ari_min=_min(boot_ari),
                n_seeds=n_seeds,
                n_bootstrap=n_bootstrap,
                sample_size=int(sample.shape[0]),
            ).__dict__
        )
    return pd.DataFrame(rows).set_index("k")


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _min(values: list[float]) -> float:
    return float(np.min(values)) if values else float("nan")
