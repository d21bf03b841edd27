"""Drift between runs: who moved where, how much the segment shares changed, how far centres moved.

- :func:`migration_matrix`: the labels of two runs over the same customers (say two months),
  joined on the customer id. Rows are old segments, columns new segments; customers only in the
  new run are counted in a ``"new"`` row and customers only in the old run in a ``"gone"``
  column, so each old segment's row sums to its size in the old run and each new segment's column
  to its size in the new run.
- :func:`psi`: the population stability index of the segment shares,
  ``PSI = sum_j (q_j - p_j) ln(q_j / p_j)`` with old shares ``p`` and new shares ``q``, each
  floored at ``eps``. It is 0 for identical shares. The usual reading (:func:`psi_level`):
  below 0.1 stable, 0.1 to 0.25 a moderate shift, 0.25 and above a major shift.
- :func:`centre_shift`: old and new centres (in original units, e.g. the per-segment means of
  two profiles) matched one to one by the Hungarian algorithm on their Euclidean distances
  (optionally after dividing each feature by ``scale``), and the shift ``new - old`` of each pair.
- :func:`spread_over`: how new rows spread over a model's segments (streamed), with the PSI
  against the shares the model was fitted on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy.optimize import linear_sum_assignment

from gpuseg._backend import get_backend
from gpuseg.choose_k import as_source
from gpuseg.estimator import KMeans
from gpuseg.kernels.types import ReusedBlock

NEW_ROW = "new"
GONE_COLUMN = "gone"
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25


def _labels_table(labels, id_column: str, segment_column: str, name: str) -> pa.Table:
    """Two columns (id, segment) of a labels frame, table or Parquet path, ids checked unique."""
    if isinstance(labels, (str, os.PathLike)):
        table = pq.read_table(labels, columns=[id_column, segment_column])
    elif isinstance(labels, pd.DataFrame):
        missing = [c for c in (id_column, segment_column) if c not in labels.columns]
        if missing:
            raise ValueError(f"{name} labels have no column {missing[0]!r}.")
        table = pa.Table.from_pandas(labels[[id_column, segment_column]], preserve_index=False)
    elif isinstance(labels, pa.Table):
        table = labels.select([id_column, segment_column])
    else:
        raise TypeError(f"{name} labels should be a DataFrame, a pyarrow Table or a Parquet path.")
    distinct = pc.count_distinct(table[id_column]).as_py()
    if distinct != table.num_rows:
        raise ValueError(
            f"{name} labels have {table.num_rows - distinct} duplicate {id_column} values; "
            "expected one row per customer."
        )
    return table.rename_columns([id_column, name])


def migration_matrix(
    old_labels,
    new_labels,
    *,
    id_column: str = "customer_id",
    segment_column: str = "segment",
    n_old: int | None = None,
    n_new: int | None = None,
) -> pd.DataFrame:
    """Customers per (old segment, new segment), with ``"new"`` and ``"gone"`` customers apart.

    Parameters
    ----------
    old_labels, new_labels : pandas.DataFrame, pyarrow.Table or path
        Labels of the two runs (a labels Parquet file or directory, see :mod:`gpuseg.labels`).
    id_column, segment_column : str
        Column names.
    n_old, n_new : int, optional
        Number of segments of each run, so that empty segments get a row or column of zeros.

    Returns
    -------
    pandas.DataFrame of int64
        Index: old segments then ``"new"``; columns: new segments then ``"gone"``.

    Examples
    --------
    >>> old = pd.DataFrame({"customer_id": [1, 2, 3, 4], "segment": [0, 0, 1, 1]})
    >>> new = pd.DataFrame({"customer_id": [2, 3, 4, 5], "segment": [1, 1, 0, 0]})
    >>> migration_matrix(old, new).to_dict("index")
    {0: {0: 0, 1: 1, 'gone': 1}, 1: {0: 1, 1: 1, 'gone': 0}, 'new': {0: 1, 1: 0, 'gone': 0}}
    """
    old = _labels_table(old_labels, id_column, segment_column, "old")
    new = _labels_table(new_labels, id_column, segment_column, "new")
    joined = old.join(new, keys=id_column, join_type="full outer")
    pairs = joined.group_by(["old", "new"]).aggregate([([], "count_all")]).to_pandas()
    old_ids = _segments(pairs["old"], n_old)
    new_ids = _segments(pairs["new"], n_new)
    matrix = pd.DataFrame(
        0, index=pd.Index([*old_ids, NEW_ROW]), columns=pd.Index([*new_ids, GONE_COLUMN])
    )
    for old_segment, new_segment, count in pairs.itertuples(index=False):
        row = NEW_ROW if pd.isna(old_segment) else int(old_segment)
        column = GONE_COLUMN if pd.isna(new_segment) else int(new_segment)
        matrix.loc[row, column] += int(count)
    return matrix.astype(np.int64)


def _segments(values: pd.Series, n: int | None) -> list[int]:
    observed = {int(v) for v in values.dropna()}
    if n is not None:
        beyond = [v for v in observed if not 0 <= v < n]
        if beyond:
            raise ValueError(f"segment {beyond[0]} is out of range for n={n} segments.")
        return list(range(n))
    return sorted(observed)


def segment_shares(labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Share of customers per segment.

    Examples
    --------
    >>> segment_shares(np.array([0, 0, 1, 2]), 4).tolist()
    [0.5, 0.25, 0.25, 0.0]
    """
    counts = np.bincount(np.asarray(labels), minlength=n_clusters)
    return counts / counts.sum()


def psi(old_shares: Sequence[float], new_shares: Sequence[float], eps: float = 1e-6) -> float:
    """Population stability index between two distributions over the same segments.

    Shares (or counts: each side is normalised to sum to 1) are floored at ``eps`` so that an
    empty segment on one side gives a large but finite index.

    Examples
    --------
    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> round(psi([0.5, 0.5], [0.6, 0.4]), 4)
    0.0405
    """
    p = np.asarray(old_shares, dtype=np.float64)
    q = np.asarray(new_shares, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(
            f"old_shares has shape {p.shape} and new_shares {q.shape}; expected equal."
        )
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("shares should be >= 0 with a positive sum on each side.")
    p = np.maximum(p / p.sum(), eps)
    q = np.maximum(q / q.sum(), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_level(value: float) -> str:
    """``"stable"`` below 0.1, ``"moderate shift"`` below 0.25, else ``"major shift"``.

    Examples
    --------
    >>> psi_level(0.02), psi_level(0.3)
    ('stable', 'major shift')
    """
    if value < PSI_MODERATE:
        return "stable"
    return "moderate shift" if value < PSI_MAJOR else "major shift"


@dataclass
class CentreShift:
    """Old centres matched to new ones and how far each moved.

    Attributes
    ----------
    old_to_new : ndarray of int, shape (n_old,)
        The new segment matched to each old one, -1 when there are fewer new segments.
    shift : ndarray of shape (n_old, n_features)
        ``new - old`` per matched pair, in the centres' units (NaN when unmatched).
    distance : ndarray of shape (n_old,)
        Euclidean length of the shift (after ``scale`` when one was given).
    feature_names : list of str or None
    """

    old_to_new: np.ndarray
    shift: np.ndarray
    distance: np.ndarray
    feature_names: list[str] | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row per old segment: its match, the distance and the shift per feature.

        Examples
        --------
        >>> old, new = np.array([[1.0, 2.0]]), np.array([[1.0, 5.0]])
        >>> centre_shift(old, new, feature_names=["a", "b"]).to_frame().to_dict("records")
        [{'new_segment': 0, 'distance': 3.0, 'a_shift': 0.0, 'b_shift': 3.0}]
        """
        names = self.feature_names or [f"feature_{f}" for f in range(self.shift.shape[1])]
        frame = pd.DataFrame(self.shift, columns=[f"{n}_shift" for n in names])
        frame.insert(0, "distance", self.distance)
        frame.insert(0, "new_segment", self.old_to_new)
        frame.index.name = "old_segment"
        return frame


def centre_shift(
    old_centers: np.ndarray,
    new_centers: np.ndarray,
    *,
    scale: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
) -> CentreShift:
    """Match old to new centres (Hungarian, on Euclidean distance) and measure each shift.

    Parameters
    ----------
    old_centers : ndarray of shape (n_old, n_features)
    new_centers : ndarray of shape (n_new, n_features)
        Centres in original units (e.g. ``SegmentProfile.means`` of each run).
    scale : ndarray of shape (n_features,), optional
        Divides each feature before matching and measuring ``distance`` (e.g. the overall
        standard deviations), so that large-unit features do not dominate; ``shift`` stays in
        original units.
    feature_names : sequence of str, optional

    Returns
    -------
    CentreShift

    Examples
    --------
    >>> old, new = np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[10.0, 1.0], [0.0, 0.0]])
    >>> result = centre_shift(old, new)
    >>> result.old_to_new.tolist(), result.distance.tolist()
    ([1, 0], [0.0, 1.0])
    """
    old = np.asarray(old_centers, dtype=np.float64)
    new = np.asarray(new_centers, dtype=np.float64)
    if old.ndim != 2 or new.ndim != 2 or old.shape[1] != new.shape[1]:
        raise ValueError(
            f"old_centers {old.shape} and new_centers {new.shape} should be 2-D with the same "
            "number of features."
        )
    divisor = np.ones(old.shape[1]) if scale is None else np.asarray(scale, dtype=np.float64)
    divisor = np.where(divisor > 0, divisor, 1.0)
    gaps = old[:, None, :] / divisor - new[None, :, :] / divisor
    cost = np.sqrt((gaps**2).sum(axis=2))
    rows, columns = linear_sum_assignment(cost)
    old_to_new = np.full(old.shape[0], -1, dtype=np.int64)
    old_to_new[rows] = columns
    shift = np.full(old.shape, np.nan)
    shift[rows] = new[columns] - old[rows]
    distance = np.full(old.shape[0], np.nan)
    distance[rows] = cost[rows, columns]
    names = None if feature_names is None else list(feature_names)
    return CentreShift(old_to_new, shift, distance, names)


@dataclass
class Spread:
    """How rows spread over a model's segments.

    Attributes
    ----------
    sizes : ndarray of shape (n_clusters,)
        Rows (total weight) nearest to each centre.
    shares : ndarray of shape (n_clusters,)
    mean_distance : ndarray of shape (n_clusters,)
        Mean Euclidean distance to the centre (NaN when empty), in model units: growing
        distances mean the new rows fit the old centres less well.
    psi : float or None
        Against the reference shares, when there are some.
    """

    sizes: np.ndarray
    shares: np.ndarray
    mean_distance: np.ndarray
    psi: float | None

    @property
    def psi_level(self) -> str | None:
        """:func:`psi_level` of ``psi``."""
        return None if self.psi is None else psi_level(self.psi)


def spread_over(
    model: KMeans | np.ndarray,
    X_new,
    *,
    reference_shares: Sequence[float] | None = None,
    device: str = "auto",
) -> Spread:
    """Spread new rows over the segments of a model, in one streamed pass.

    Parameters
    ----------
    model : KMeans or ndarray of shape (n_clusters, n_features)
        A fitted model, or its centres.
    X_new : array-like of shape (n_samples, n_features), or a batch source
        New rows, in model units (the model's feature plan applied).
    reference_shares : sequence of float, optional
        Shares to compare with; for a model, its training ``cluster_sizes_`` by default.
    device : {"auto", "cpu", "cuda"}, default "auto"

    Returns
    -------
    Spread

    Examples
    --------
    >>> centers = np.array([[0.0], [10.0]])
    >>> spread = spread_over(centers, np.array([[1.0], [9.0], [11.0]]), reference_shares=[0.5, 0.5])
    >>> spread.sizes.tolist(), spread.mean_distance.tolist(), spread.psi_level
    ([1.0, 2.0], [1.0, 1.0], 'moderate shift')
    """
    if isinstance(model, KMeans):
        centers = model.cluster_centers_
        if reference_shares is None and hasattr(model, "cluster_sizes_"):
            reference_shares = model.cluster_sizes_
    else:
        centers = model
    centers32 = np.ascontiguousarray(centers, dtype=np.float32)
    source = as_source(X_new)
    if source.n_features != centers32.shape[1]:
        raise ValueError(
            f"X_new has {source.n_features} features but the centres have {centers32.shape[1]}."
        )
    backend = get_backend(device)
    n_clusters = centers32.shape[0]
    sizes, distance = np.zeros(n_clusters), np.zeros(n_clusters)
    outputs = ReusedBlock()
    for batch in source.batches():
        out = outputs.view(0, batch.X.shape[0])
        assignment, sums = backend.assign_accumulate(
            batch.X, centers32, batch.sample_weight, out=out, runner_up=False
        )
        rooted = np.sqrt(assignment.distances.astype(np.float64))
        if batch.sample_weight is not None:
            rooted *= batch.sample_weight
        sizes += sums.weights
        distance += np.bincount(assignment.labels, weights=rooted, minlength=n_clusters)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_distance = np.where(sizes > 0, distance / sizes, np.nan)
    shares = sizes / sizes.sum()
    index = None if reference_shares is None else psi(reference_shares, shares)
    return Spread(sizes, shares, mean_distance, index)
