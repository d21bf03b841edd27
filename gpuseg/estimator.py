"""``gpuseg.KMeans``: a scikit-learn estimator over gpuseg's engine."""

from __future__ import annotations

import logging
import numbers
import sys
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from gpuseg._backend import get_backend
from gpuseg._engine import ALGORITHMS, FitSettings, default_sample_rows, fit_source
from gpuseg._lloyd import nearest_labels, run_pass
from gpuseg._minibatch import minibatch_step
from gpuseg._seeding import kmeans_plusplus
from gpuseg.batches import ArraySource
from gpuseg.kernels.counts import label_counts
from gpuseg.kernels.types import LabelsOnly

logger = logging.getLogger("gpuseg")


def _auto_n_init(init, n_clusters: int) -> int:
    """The number of seeding tries ``n_init="auto"`` stands for."""
    if isinstance(init, np.ndarray) or init == "k-means||":
        return 1
    if init == "random":
        return 10
    return 3 if n_clusters <= 64 else 1


def is_batch_source(X) -> bool:
    """Whether ``X`` is a batch source (blocks and samples) rather than an array-like."""
    return hasattr(X, "batches") and hasattr(X, "sample") and hasattr(X, "n_features")


def _dask_source(X, sample_weight=None):
    """A :class:`gpuseg.distributed.DaskSource` over ``X`` when it is a Dask array or dataframe,
    else ``None`` (Dask is imported only when the caller has imported it already)."""
    if "dask" not in sys.modules:
        return None
    from gpuseg.distributed import DaskSource, is_dask_collection

    if not is_dask_collection(X):
        return None
    return DaskSource.from_dask(X, sample_weight)


def _as_float32(X: np.ndarray) -> np.ndarray:
    """C-contiguous float32 copy (or view) of validated input, refusing float32 overflow."""
    with np.errstate(over="ignore"):
        X32 = np.ascontiguousarray(X, dtype=np.float32)
    if X.dtype != np.float32 and X32.size and not np.isfinite(X32).all():
        largest = float(np.abs(X).max())
        raise ValueError(
            f"X has values too large for float32 (largest |value| = {largest:.3g}); gpuseg "
            "computes in float32 with float64 accumulation: rescale the data."
        )
    return X32


def _check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """Validated float32 weights, or ``None`` when every row weighs 1."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight.shape == {weights.shape}, expected ({n_samples},) (one per row of X)."
        )
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("sample_weight must be finite and >= 0; it has NaN, inf or negatives.")
    if weights.sum() <= 0:
        raise ValueError("sample_weight sums to zero: at least one row needs a positive weight.")
    return weights.astype(np.float32)


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means clustering for large customer tables, on numba CPU kernels.

    Seeds are drawn on a sample of ``sample_rows`` rows (``n_init`` tries, scored on the sample),
    then the centres are refined on all rows. Input of any float dtype is computed in float32 with
    float64 accumulation of the per-centre sums and of the inertia.

    Parameters
    ----------
    n_clusters : int, default 8
        Number of segments.
    init : {"k-means++", "random"} or ndarray of shape (n_clusters, n_features), default "k-means++"
        Seeding: greedy k-means++ on the sample, distinct random rows of the sample, or given
        centres.
    n_init : int or "auto", default "auto"
        Seeding tries; "auto" is 3 for k-means++ up to 64 clusters and 1 above (with many
        centres one seeding's luck averages out, and each try costs a refinement on the sample),
        10 for random, and 1 for given centres or k-means||.
    max_iter : int, default 300
        Most exact passes over all rows (``algorithm`` "auto"/"lloyd"), or most epochs
        (``"minibatch"``).
    tol : float, default 1e-4
        Lloyd stops after pass ``t`` when
        ``inertia[t-1] - inertia[t] <= tol * inertia[t-1]``, that is when the relative
        decrease of the exact inertia over one pass is at most ``tol``. ``tol=0`` runs until the
        inertia stops decreasing. Also used by the refinement of each try on the sample.
    batch_size : int, default 4096
        Rows per mini-batch step (``algorithm="minibatch"`` and ``partial_fit``).
    algorithm : {"auto", "minibatch", "lloyd"}, default "auto"
        "auto" refines every try by Lloyd on the sample and keeps the best, then runs exact
        Lloyd passes on all rows. "lloyd" scores the raw seeds on the sample, then runs Lloyd on
        all rows. "minibatch" runs mini-batch steps with per-centre learning rates, then one
        exact pass for labels and inertia.
    sample_rows : int or None, default None
        Rows drawn for seeding; ``None`` is ``max(100_000, 64 * n_clusters)``.
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where the kernels run; "auto" is the CPU in this build.
    random_state : int, RandomState instance or None, default None
        Seed of every random draw: the same seed gives bitwise-identical centres.
    verbose : int, default 0
        Log every pass at INFO level on the "gpuseg" logger (a stderr handler is added when the
        logger has none).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Centres, float64 for float64 input and float32 otherwise.
    labels_ : ndarray of int32, shape (n_samples,)
        Nearest centre of every training row.
    inertia_ : float
        Weighted sum of squared distances of the training rows to their nearest centre, exact
        (accumulated in float64) for ``cluster_centers_``.
    n_iter_ : int
        Exact passes over all rows run (epochs for "minibatch").
    cluster_sizes_ : ndarray of int64, shape (n_clusters,)
        Training rows per segment (for a batch source with a weight column: its weights per
        segment, rounded, as the passes sum them without keeping labels).
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from gpuseg import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=float)
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    >>> km.predict([[0, 0], [12, 3]]).tolist() == km.predict([[1, 2], [10, 2]]).tolist()
    True
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        batch_size: int = 4096,
        algorithm: str = "auto",
        sample_rows: int | None = None,
        device: str = "auto",
        random_state=None,
        verbose: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.algorithm = algorithm
        self.sample_rows = sample_rows
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- parameters -------------------------------------------------------------------------

    def _settings(self, n_samples: int, n_features: int) -> FitSettings:
        """Validate the parameters against the data and return them as engine settings."""
        k = self.n_clusters
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"n_clusters={k!r} should be an integer >= 1.")
        if n_samples < k:
            raise ValueError(f"n_samples={n_samples} should be >= n_clusters={k}.")
        init = self.init
        if isinstance(init, str):
            if init not in ("k-means++", "k-means||", "random"):
                raise ValueError(
                    f"init={init!r} should be 'k-means++', 'k-means||', 'random' or an array."
                )
        else:
            init = np.asarray(init, dtype=np.float64)
            if init.shape != (k, n_features):
                raise ValueError(
                    f"init has shape {init.shape}; expected (n_clusters, n_features) = "
                    f"({k}, {n_features})."
                )
            if not np.isfinite(init).all():
                raise ValueError("init contains NaN or infinity.")
        n_init = self.n_init
        if n_init == "auto":
            n_init = _auto_n_init(init, k)
        elif not isinstance(n_init, numbers.Integral) or n_init < 1:
            raise ValueError(f"n_init={n_init!r} should be an integer >= 1 or 'auto'.")
        elif isinstance(init, np.ndarray):
            n_init = 1
        for name in ("max_iter", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name}={value!r} should be an integer >= 1.")
        if not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise ValueError(f"tol={self.tol!r} should be a number >= 0.")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm={self.algorithm!r} is not one of {ALGORITHMS}.")
        sample_rows = self.sample_rows
        if sample_rows is None:
            sample_rows = default_sample_rows(k)
        elif not isinstance(sample_rows, numbers.Integral) or sample_rows < k:
            raise ValueError(f"sample_rows={sample_rows!r} should be an integer >= n_clusters={k}.")
        return FitSettings(
            n_clusters=k, init=init, n_init=int(n_init), max_iter=int(self.max_iter),
            tol=float(self.tol), batch_size=int(self.batch_size), algorithm=self.algorithm,
            sample_rows=int(sample_rows),
        )  # fmt: skip

    def _rng(self) -> np.random.Generator:
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        return np.random.default_rng(seed)

    def _validate(self, X, reset: bool) -> np.ndarray:
        X = validate_data(
            self, X, reset=reset, dtype=[np.float64, np.float32], order="C",
            accept_large_sparse=False,
        )  # fmt: skip
        return X

    def _log_passes(self) -> None:
        if self.verbose and not logger.handlers:
            logger.addHandler(logging.StreamHandler())
        logger.setLevel(logging.INFO if self.verbose else logging.WARNING)

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None) -> KMeans:
        """Compute the centres of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or a batch source
            Rows to cluster: a NumPy array or pandas DataFrame, or a source such as
            :class:`gpuseg.parquet.ParquetSource` streamed block by block (then ``labels_`` is not
            kept: write labels with :func:`gpuseg.pipeline.assign`, and weights come from the
            source).
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative row weights; a weight of 2 counts a row twice.

        Returns
        -------
        self
        """
        dask_source = _dask_source(X, sample_weight)
        if dask_source is not None:
            with dask_source:
                return self._fit_source(dask_source)
        if is_batch_source(X):
            if sample_weight is not None:
                raise ValueError("sample_weight must come from the source (its weight column).")
            return self._fit_source(X)
        X = self._validate(X, reset=True)
        settings = self._settings(*X.shape)
        weights = _check_sample_weight(sample_weight, X.shape[0])
        backend = get_backend(self.device)
        self._log_passes()
        X32 = _as_float32(X)
        assignment = LabelsOnly.empty(X.shape[0])
        result = fit_source(ArraySource(X32, weights), settings, self._rng(), backend, assignment)
        self._store_result(result, settings, X.dtype)
        self.labels_ = assignment.labels
        self.cluster_sizes_ = label_counts(assignment.labels, settings.n_clusters)
        return self

    def _fit_source(self, source) -> KMeans:
        """Fit on a batch source, streaming its blocks on every pass."""
        settings = self._settings(source.n_samples, source.n_features)
        settings.progress = bool(self.verbose)
        backend = get_backend(self.device)
        self._log_passes()
        result = fit_source(source, settings, self._rng(), backend)
        self._store_result(result, settings, np.dtype(np.float32))
        self.n_features_in_ = source.n_features
        self.feature_columns_ = list(getattr(source, "columns", range(source.n_features)))
        self.cluster_sizes_ = np.rint(result.cluster_sums.weights).astype(np.int64)
        if hasattr(self, "labels_"):
            del self.labels_
        return self

    def _store_result(self, result, settings: FitSettings, dtype: np.dtype) -> None:
        if not result.converged and settings.algorithm != "minibatch":
            warnings.warn(
                f"KMeans stopped at max_iter={settings.max_iter} passes before the relative "
                f"decrease of inertia reached tol={settings.tol}; raise max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.cluster_centers_ = result.centers.astype(dtype)
        self.inertia_ = float(result.inertia)
        self.n_iter_ = int(result.n_iter)
        self._counts = result.cluster_sums.weights.copy()
        self.n_steps_ = 0

    def partial_fit(self, X, y=None, sample_weight=None) -> KMeans:
        """Update the centres with one mini-batch ``X`` (per-centre learning rates).

        The first call seeds the centres from ``X`` by k-means++. ``labels_`` and ``inertia_``
        then describe ``X`` under the updated centres.

        Returns
        -------
        self
        """
        first_call = not hasattr(self, "cluster_centers_")
        X = self._validate(X, reset=first_call)
        weights = _check_sample_weight(sample_weight, X.shape[0])
        backend = get_backend(self.device)
        X32 = _as_float32(X)
        if first_call:
            settings = self._settings(*X.shape)
            centers = kmeans_plusplus(X32, weights, settings.n_clusters, self._rng(), backend)
            self._counts = np.zeros(settings.n_clusters)
            self.n_steps_ = 0
        else:
            centers = self.cluster_centers_.astype(np.float64)
        minibatch_step(centers, self._counts, X32, weights, backend)
        assignment, sums = backend.assign_accumulate(X32, centers.astype(np.float32), weights)
        self.cluster_centers_ = centers.astype(X.dtype)
        self.labels_ = assignment.labels
        self.inertia_ = float(sums.inertia)
        self.n_iter_ = 1
        self.cluster_sizes_ = label_counts(assignment.labels, centers.shape[0])
        self.n_steps_ += 1
        return self

    # -- using the centres ------------------------------------------------------------------

    def _rows(self, X, sample_weight=None) -> ArraySource:
        """``X`` (and weights) validated against the fit, as float32 blocks."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        weights = _check_sample_weight(sample_weight, X.shape[0])
        return ArraySource(_as_float32(X), weights)

    def predict(self, X) -> np.ndarray:
        """Index of the nearest centre of every row of ``X`` (int32)."""
        dask_source = _dask_source(X)
        if dask_source is not None:
            check_is_fitted(self)
            with dask_source:
                return dask_source.assign_labels(self.cluster_centers_, get_backend(self.device))
        return nearest_labels(self._rows(X), self.cluster_centers_, get_backend(self.device))

    def transform(self, X) -> np.ndarray:
        """Euclidean distance of every row to every centre, shape (n_samples, n_clusters)."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        backend = get_backend(self.device)
        squared = backend.squared_distances(_as_float32(X), self.cluster_centers_)
        return np.sqrt(squared, dtype=X.dtype)

    def score(self, X, y=None, sample_weight=None) -> float:
        """Opposite of the weighted inertia of ``X`` under the fitted centres."""
        rows = self._rows(X, sample_weight)
        return -float(run_pass(rows, self.cluster_centers_, get_backend(self.device)).inertia)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags
