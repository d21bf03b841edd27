"""One fit, whatever the batch source: seeding tries on a sample, then the chosen algorithm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpuseg._backend import CPUBackend
from gpuseg._lloyd import LloydResult, lloyd, run_pass
from gpuseg._minibatch import minibatch
from gpuseg._seeding import kmeans_plusplus, random_rows
from gpuseg.batches import ArraySource, BatchSource
from gpuseg.kernels.types import Assignment, LabelsOnly

ALGORITHMS = ("auto", "minibatch", "lloyd")
# Passes of the refinement that each "auto" try gets on the sample.
_SAMPLE_MAX_ITER = 100


def default_sample_rows(n_clusters: int) -> int:
    """Rows drawn for seeding and for scoring the ``n_init`` tries."""
    return max(100_000, 64 * n_clusters)


@dataclass
class FitSettings:
    """The estimator's parameters, validated, as the engine reads them."""

    n_clusters: int
    init: str | np.ndarray
    n_init: int
    max_iter: int
    tol: float
    batch_size: int
    algorithm: str
    sample_rows: int
    progress: bool = False


def seed(
    sample: ArraySource, settings: FitSettings, rng, backend, source: BatchSource | None = None
) -> np.ndarray:
    """Initial float64 centres from the sample, by the method ``settings.init`` names
    ("k-means||" seeds on all rows of ``source``, which must run it: a Dask source)."""
    if isinstance(settings.init, np.ndarray):
        return settings.init.astype(np.float64, copy=True)
    if settings.init == "k-means||":
        if not hasattr(source, "kmeans_parallel"):
            raise ValueError(
                "init='k-means||' seeds on a cluster and needs a gpuseg.distributed.DaskSource "
                f"(or a dask array or dataframe), not {type(source).__name__}; use "
                "init='k-means++', which seeds on a sample."
            )
        return source.kmeans_parallel(settings.n_clusters, rng, backend)
    if settings.init == "random":
        return random_rows(sample.X, settings.n_clusters, rng)
    return kmeans_plusplus(sample.X, sample.sample_weight, settings.n_clusters, rng, backend)


def best_try(
    sample: ArraySource, settings: FitSettings, rng, backend, source: BatchSource | None = None
) -> np.ndarray:
    """Run ``n_init`` seeding tries on the sample and return the centres scoring best on it.

    With ``algorithm="auto"`` each try is first refined by Lloyd passes on the sample, so the
    tries are compared as converged solutions rather than as raw seeds.
    """
    best_centers, best_inertia = None, np.inf
    for _ in range(settings.n_init):
        centers = seed(sample, settings, rng, backend, source)
        if settings.algorithm == "auto":
            refined = lloyd(
                sample, centers, backend,
                max_iter=_SAMPLE_MAX_ITER, tol=settings.tol, far_source=sample,
                name="sample pass",
            )  # fmt: skip
            centers, inertia = refined.centers, refined.inertia
        else:
            inertia = run_pass(sample, centers, backend).inertia
        if inertia < best_inertia:
            best_centers, best_inertia = centers, inertia
    return best_centers


def fit_source(
    source: BatchSource,
    settings: FitSettings,
    rng: np.random.Generator,
    backend: CPUBackend,
    assignment: Assignment | LabelsOnly | None = None,
) -> LloydResult:
    """Fit ``settings.n_clusters`` centres to the rows of ``source``.

    ``auto``: tries refined on a sample, then exact Lloyd passes on all rows until the relative
    decrease of inertia is at most ``tol``. ``lloyd``: tries scored as seeds, then Lloyd.
    ``minibatch``: tries scored as seeds, then mini-batch epochs with per-centre learning rates,
    then one exact pass for the labels and inertia. When ``assignment`` is given, the final
    labels of every row are written into it.
    """
    drawn = source.sample(settings.sample_rows, rng)
    sample = ArraySource(drawn.X, drawn.sample_weight, block_rows=drawn.X.shape[0])
    centers = best_try(sample, settings, rng, backend, source)
    if settings.algorithm == "minibatch":
        if not isinstance(source, ArraySource):
            raise ValueError("algorithm='minibatch' needs rows in memory; use 'auto' or 'lloyd'.")
        centers, n_epochs = minibatch(
            source, centers, backend,
            batch_size=settings.batch_size, max_epochs=settings.max_iter, rng=rng,
        )  # fmt: skip
        label = "final pass" if settings.progress else None
        cluster_sums = run_pass(source, centers, backend, assignment, label)
        return LloydResult(centers, cluster_sums, n_epochs, converged=n_epochs < settings.max_iter)
    return lloyd(
        source, centers, backend,
        max_iter=settings.max_iter, tol=settings.tol, far_source=sample, assignment=assignment,
        progress=settings.progress,
    )  # fmt: skip
