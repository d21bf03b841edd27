"""Segment profiles from streamed, mergeable per-segment statistics of the raw features.

A :class:`ProfileAccumulator` is fed blocks of raw (untransformed) customer features with their
segment labels, in any number of blocks, processes or workers, and partial accumulators are merged
with :meth:`ProfileAccumulator.merge`. Everything it keeps is exact or has a stated error bound:

- counts per segment (int64, exact), and per segment and feature the mean and the centred sum of
  squares ``M2``, merged block by block with Chan et al.'s pairwise update in float64 (no
  ``sum(x^2) - n mean^2`` cancellation);
- the revenue per segment, the float64 sum of ``money_column``, when there is one;
- the number of ambiguous customers per segment, when labels come with the ``ambiguous`` flag
  (see :mod:`gpuseg.labels`);
- medians. While the accumulator has seen at most ``exact_rows`` rows it keeps them and medians
  are exact (``numpy.median``). Past that, and always when ``exact_rows=0``, medians come from a
  DDSketch per segment and feature (:mod:`gpuseg.ddsketch`), which merges exactly, so the result
  does not depend on how the rows were split into blocks or in which order partials were merged.
  The median it returns, the middle of the bucket holding the ``floor((n - 1) / 2)``-th smallest
  value ``x_lo``, is within ``alpha * |x_lo|`` of ``x_lo`` (within ``1e-9`` of 0 for the zero
  bucket); the default ``alpha = 0.005`` is 0.5%.

The profile reports, per segment ``j`` and feature ``f``::

    share[j]      = n_j / n
    revenue[j]    = sum of money_column over j / its sum over everyone
    lift[j, f]    = mean[j, f] / overall_mean[f] - 1          (NaN when overall_mean is 0, or
                                                               when feature f takes both signs)
    z[j, f]       = (mean[j, f] - overall_mean[f]) / overall_std[f]   (NaN when the std is 0)
    rank_z[j, f]  = sqrt(2) * Phi^-1(auc[j, f])

where the standard deviations are population ones (``ddof=0``) over all customers, ``Phi^-1`` is
the standard normal quantile function and ``auc[j, f]`` is the mean, over segment ``j``'s
customers, of the share of all customers below their value (ties count half): the probability
that one of the segment beats a customer drawn from everyone. ``rank_z`` is the shift, in
standard deviations, that gives that probability between two normal distributions, so for
normal features it reads like ``z``; unlike ``z`` it is not swamped by a long tail (a few big
spenders inflate the standard deviation of spend until no segment is "low spend"). It is
computed from the sketch, whose buckets tie values within ``alpha`` of each other; it is 0 for a
constant feature and NaN for an empty segment.

A lift is a ratio to the mean, so it is left out (NaN) for a feature with both negative and
positive values (``|x| < 1e-9`` counts as 0), such as a standardised score: there a mean near 0
turns small differences into thousands of percent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numba
import numpy as np
import pandas as pd

from gpuseg.ddsketch import DEFAULT_ALPHA, QuantileSketch

DEFAULT_EXACT_ROWS = 200_000


@numba.njit(cache=True, nogil=True)
def _block_moments(values, labels, n_clusters):
    """Per-segment row counts, means and M2 (sums of squared deviations) of one block.

    Two passes over the rows in order, each row added into its segment's float64 totals: the same
    sums, in the same order, as ``np.bincount(labels, weights=...)`` feature by feature, without
    a temporary array per feature. ``values`` is ``(n_rows, n_features)`` float64, ``labels``
    int64 in ``[0, n_clusters)``.
    """
    n_rows, n_features = values.shape
    counts = np.zeros(n_clusters, dtype=np.int64)
    means = np.zeros((n_clusters, n_features))
    for i in range(n_rows):
        counts[labels[i]] += 1
        for f in range(n_features):
            means[labels[i], f] += values[i, f]
    for j in range(n_clusters):
        for f in range(n_features):
            means[j, f] /= max(counts[j], 1)
    m2 = np.zeros((n_clusters, n_features))
    for i in range(n_rows):
        for f in range(n_features):
            centred = values[i, f] - means[labels[i], f]
            m2[labels[i], f] += centred * centred
    return counts, means, m2


def _chan_merge(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    """Pairwise merge of (count, mean, M2) summaries (Chan, Golub and LeVeque).

    Counts are int64 of shape ``(k,)``, means and M2 float64 of shape ``(k, n_features)``.
    """
    count = count_a + count_b
    safe = np.maximum(count, 1)[:, None]
    delta = mean_b - mean_a
    mean = mean_a + delta * (count_b[:, None] / safe)
    m2 = m2_a + m2_b + delta * delta * (count_a[:, None] * (count_b[:, None] / safe))
    return count, mean, m2


class ProfileAccumulator:
    """Streamed, mergeable per-segment statistics of raw features, turned into a profile.

    Parameters
    ----------
    feature_names : sequence of str
        Columns of the frames to profile, in this order.
    n_clusters : int
        Number of segments; labels are ``0 .. n_clusters - 1``.
    money_column : str, optional
        A column (a feature or not) whose total per segment gives the share of revenue.
    exact_rows : int, default 200_000
        Rows kept for exact medians; past this many rows medians come from the sketch.
    alpha : float, default 0.005
        Relative accuracy of the median sketch.

    Examples
    --------
    >>> frame = pd.DataFrame({"spend": [10.0, 20.0, 30.0, 100.0], "orders": [1, 1, 2, 8]})
    >>> acc = ProfileAccumulator(["spend", "orders"], n_clusters=2, money_column="spend")
    >>> acc.add(frame, np.array([0, 0, 0, 1]))
    >>> profile = acc.profile()
    >>> profile.sizes.tolist(), profile.revenue_share.round(3).tolist()
    ([3, 1], [0.375, 0.625])
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        n_clusters: int,
        money_column: str | None = None,
        *,
        exact_rows: int = DEFAULT_EXACT_ROWS,
        alpha: float = DEFAULT_ALPHA,
    ) -> None:
        if isinstance(feature_names, str) or len(feature_names) == 0:
            raise ValueError(
                f"feature_names={feature_names!r} should be a non-empty list of column names."
            )
        if not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
            raise ValueError(f"n_clusters={n_clusters!r} should be an integer >= 1.")
        if exact_rows < 0:
            raise ValueError(f"exact_rows={exact_rows!r} should be >= 0.")
        self.feature_names = list(feature_names)
        self.n_clusters = int(n_clusters)
        self.money_column = money_column
        self.exact_rows = int(exact_rows)
        n_features = len(self.feature_names)
        self.counts = np.zeros(self.n_clusters, dtype=np.int64)
        self.means = np.zeros((self.n_clusters, n_features))
        self.m2 = np.zeros((self.n_clusters, n_features))
        self.revenue = np.zeros(self.n_clusters)
        self.ambiguous = np.zeros(self.n_clusters, dtype=np.int64)
        self.has_ambiguous = False
        self.sketch = QuantileSketch(self.n_clusters * n_features, alpha)
        # Kept rows for exact medians, (labels, values); None once more than exact_rows were seen.
        self._kept: list[tuple[np.ndarray, np.ndarray]] | None = []

    @property
    def n_rows(self) -> int:
        """Rows added so far."""
        return int(self.counts.sum())

    def add(
        self, frame_block: pd.DataFrame, labels: np.ndarray, ambiguous: np.ndarray | None = None
    ) -> None:
        """Fold one block of customers into the statistics.

        Parameters
        ----------
        frame_block : pandas.DataFrame
            Raw features (and ``money_column``) of the block's customers; other columns ignored.
        labels : array-like of int, shape (n_rows,)
            Segment of every row.
        ambiguous : array-like of bool, shape (n_rows,), optional
            The ``ambiguous`` flag of the labels; give it for every block or for none.

        Examples
        --------
        >>> acc = ProfileAccumulator(["x"], 2)
        >>> acc.add(pd.DataFrame({"x": [1.0, 3.0]}), [0, 1], ambiguous=[False, True])
        >>> acc.counts.tolist(), acc.ambiguous.tolist()
        ([1, 1], [0, 1])
        """
        missing = [c for c in self._needed() if c not in frame_block.columns]
        if missing:
            raise ValueError(
                f"frame_block has no column {missing[0]!r}; it has {list(frame_block.columns)}."
            )
        labels = np.asarray(labels)
        if labels.shape != (len(frame_block),):
            raise ValueError(
                f"labels.shape == {labels.shape}, expected ({len(frame_block)},) "
                "(one per row of frame_block)."
            )
        labels = labels.astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_clusters):
            raise ValueError(
                f"labels should be in [0, {self.n_clusters}); got values from {labels.min()} "
                f"to {labels.max()}."
            )
        values = frame_block[self.feature_names].to_numpy(np.float64)
        if not np.isfinite(values).all():
            column = self.feature_names[int(np.nonzero(~np.isfinite(values).all(0))[0][0])]
            raise ValueError(f"column {column!r} has NaN or infinite values; profile finite data.")
        k, n_features = self.n_clusters, values.shape[1]
        counts, means, m2 = _block_moments(np.ascontiguousarray(values), labels, k)
        self.counts, self.means, self.m2 = _chan_merge(
            self.counts, self.means, self.m2, counts, means, m2
        )
        if self.money_column is not None:
            money = frame_block[self.money_column].to_numpy(np.float64)
            self.revenue += np.bincount(labels, weights=money, minlength=k)
        if ambiguous is not None:
            ambiguous = np.asarray(ambiguous, dtype=bool)
            self.ambiguous += np.bincount(labels[ambiguous], minlength=k)
            self.has_ambiguous = True
        groups = labels[:, None] * n_features + np.arange(n_features)
        self.sketch.add(groups.ravel(), values.ravel())
        if self._kept is not None:
            self._kept.append((labels, values))
            self._drop_kept_past_limit()

    def merge(self, other: ProfileAccumulator) -> None:
        """Fold another accumulator over the same features and segments into this one.

        Examples
        --------
        >>> a, b = ProfileAccumulator(["x"], 1), ProfileAccumulator(["x"], 1)
        >>> a.add(pd.DataFrame({"x": [1.0]}), [0]); b.add(pd.DataFrame({"x": [3.0]}), [0])
        >>> a.merge(b); float(a.means[0, 0])
        2.0
        """
        if other.feature_names != self.feature_names or other.n_clusters != self.n_clusters:
            raise ValueError(
                "cannot merge profile statistics of other features or another number of "
                f"segments: {other.feature_names} x {other.n_clusters} into "
                f"{self.feature_names} x {self.n_clusters}."
            )
        if other.money_column != self.money_column:
            raise ValueError(
                f"money_column={other.money_column!r} differs from {self.money_column!r}."
            )
        self.counts, self.means, self.m2 = _chan_merge(
            self.counts, self.means, self.m2, other.counts, other.means, other.m2
        )
        self.revenue += other.revenue
        self.ambiguous += other.ambiguous
        self.has_ambiguous |= other.has_ambiguous
        self.sketch.merge(other.sketch)
        if self._kept is not None and other._kept is not None:
            self._kept.extend(other._kept)
            self._drop_kept_past_limit()
        else:
            self._kept = None

    def _needed(self) -> list[str]:
        extra = [self.money_column] if self.money_column is not None else []
        return [*self.feature_names, *(c for c in extra if c not in self.feature_names)]

    def _drop_kept_past_limit(self) -> None:
        if self.n_rows > self.exact_rows:
            self._kept = None

    def medians(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """Medians per segment and overall, and whether they are exact.

        Returns
        -------
        segment_medians : ndarray of shape (n_clusters, n_features)
        overall_medians : ndarray of shape (n_features,)
        exact : bool
            False when they come from the sketch (relative error at most ``alpha``).

        Examples
        --------
        >>> acc = ProfileAccumulator(["x"], 1)
        >>> acc.add(pd.DataFrame({"x": [1.0, 2.0, 10.0]}), [0, 0, 0])
        >>> acc.medians()[1].tolist()
        [2.0]
        """
        return self._medians(None if self._kept is not None else self._everyone())

    def _medians(self, everyone: QuantileSketch | None) -> tuple[np.ndarray, np.ndarray, bool]:
        """:meth:`medians`, given :meth:`_everyone` (needed only past the exact rows)."""
        n_features = len(self.feature_names)
        if self._kept is not None:
            segment = np.full((self.n_clusters, n_features), np.nan)
            if not self._kept:
                return segment, np.full(n_features, np.nan), True
            labels = np.concatenate([kept[0] for kept in self._kept])
            values = np.concatenate([kept[1] for kept in self._kept])
            order = np.argsort(labels, kind="stable")
            bounds = np.searchsorted(labels[order], np.arange(self.n_clusters + 1))
            for j in range(self.n_clusters):
                if bounds[j + 1] > bounds[j]:
                    rows = order[bounds[j] : bounds[j + 1]]
                    segment[j] = np.median(values[rows], axis=0)
            return segment, np.median(values, axis=0), True
        segment = self.sketch.quantile(0.5).reshape(self.n_clusters, n_features)
        return segment, everyone.quantile(0.5), False

    def _feature_of_group(self) -> np.ndarray:
        """The feature of every sketch group (groups are ``segment * n_features + feature``)."""
        return np.tile(np.arange(len(self.feature_names)), self.n_clusters)

    def _everyone(self) -> QuantileSketch:
        """The sketch of every feature over all segments together (one group per feature)."""
        return self.sketch.regrouped(self._feature_of_group(), len(self.feature_names))

    def rank_z(self) -> np.ndarray:
        """``sqrt(2) Phi^-1(auc)`` per segment and feature (see the module docstring).

        Returns
        -------
        ndarray of shape (n_clusters, n_features); NaN for a segment with no customers.

        Examples
        --------
        >>> acc = ProfileAccumulator(["spend"], 2)
        >>> acc.add(pd.DataFrame({"spend": [1.0, 2, 3, 4, 5, 6, 7, 10_000]}), [0] * 4 + [1] * 4)
        >>> acc.rank_z().round(2).ravel().tolist(), acc.profile().z.round(2).ravel().tolist()
        ([-0.95, 0.95], [-0.38, 0.38])
        """
        return self._rank_z(self._everyone())

    def _rank_z(self, everyone: QuantileSketch) -> np.ndarray:
        """:meth:`rank_z`, given :meth:`_everyone`."""
        features = self._feature_of_group()
        auc = np.clip(self.sketch.mean_mid_rank(everyone, features), 1e-12, 1 - 1e-12)
        normal = NormalDist()
        rank_z = [math.sqrt(2.0) * normal.inv_cdf(a) if a == a else math.nan for a in auc]
        return np.asarray(rank_z).reshape(self.n_clusters, len(self.feature_names))

    def profile(self, names: Sequence[str] | None = None) -> SegmentProfile:
        """The profile of everything added so far.

        Parameters
        ----------
        names : sequence of str, optional
            A name per segment (see :mod:`gpuseg.naming`), shown in the outputs.

        Returns
        -------
        SegmentProfile

        Examples
        --------
        >>> acc = ProfileAccumulator(["x"], 2)
        >>> acc.add(pd.DataFrame({"x": [1.0, 3.0, 5.0]}), [0, 1, 1])
        >>> profile = acc.profile(names=["low", "high"])
        >>> profile.lift[:, 0].tolist(), profile.segment_name(1)
        ([-0.6666666666666667, 0.33333333333333326], 'high')
        """
        if self.n_rows == 0:
            raise ValueError("no rows were added; profile at least one row.")
        n = self.n_rows
        _, overall_mean, overall_m2 = _chan_merge_all(self.counts, self.means, self.m2)
        overall_std = np.sqrt(overall_m2 / n)
        present = self.counts > 0
        means = np.where(present[:, None], self.means, np.nan)
        stds = np.where(
            present[:, None], np.sqrt(self.m2 / np.maximum(self.counts, 1)[:, None]), np.nan
        )
        everyone = self._everyone()
        one_signed = ~((everyone.quantile(0.0) < 0) & (everyone.quantile(1.0) > 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = means / overall_mean - 1.0
            lift = np.where((overall_mean != 0) & one_signed, ratio, np.nan)
            z = np.where(overall_std > 0, (means - overall_mean) / overall_std, np.nan)
        segment_medians, overall_medians, exact = self._medians(everyone)
        revenue_share = None
        if self.money_column is not None:
            total = self.revenue.sum()
            revenue_share = self.revenue / total if total != 0 else np.full(self.n_clusters, np.nan)
        ambiguous_share = None
        if self.has_ambiguous:
            ambiguous_share = np.where(present, self.ambiguous / np.maximum(self.counts, 1), np.nan)
        return SegmentProfile(
            feature_names=list(self.feature_names),
            sizes=self.counts.copy(),
            shares=self.counts / n,
            means=means,
            stds=stds,
            medians=segment_medians,
            lift=lift,
            z=z,
            rank_z=self._rank_z(everyone),
            overall_mean=overall_mean,
            overall_std=overall_std,
            overall_median=overall_medians,
            medians_exact=exact,
            median_alpha=None if exact else self.sketch.alpha,
            revenue_share=revenue_share,
            ambiguous_share=ambiguous_share,
            money_column=self.money_column,
            names=None if names is None else list(names),
        )


def _chan_merge_all(counts: np.ndarray, means: np.ndarray, m2: np.ndarray):
    """Merge the per-segment summaries into one, segment after segment (a fixed order)."""
    count = np.zeros(1, dtype=np.int64)
    mean, total_m2 = np.zeros((1, means.shape[1])), np.zeros((1, means.shape[1]))
    for j in range(counts.shape[0]):
        count, mean, total_m2 = _chan_merge(
            count, mean, total_m2, counts[j : j + 1], means[j : j + 1], m2[j : j + 1]
        )
    return int(count[0]), mean[0], total_m2[0]


@dataclass
class SegmentProfile:
    """Per-segment sizes, shares and feature statistics, with JSON, Markdown and pandas views.

    Arrays are indexed ``[segment]`` or ``[segment, feature]``; a segment with no customers has
    NaN statistics. ``revenue_share`` is None without a money column and ``ambiguous_share``
    without ambiguity flags.
    """

    feature_names: list[str]
    sizes: np.ndarray
    shares: np.ndarray
    means: np.ndarray
    stds: np.ndarray
    medians: np.ndarray
    lift: np.ndarray
    z: np.ndarray
    rank_z: np.ndarray
    overall_mean: np.ndarray
    overall_std: np.ndarray
    overall_median: np.ndarray
    medians_exact: bool = True
    median_alpha: float | None = None
    revenue_share: np.ndarray | None = None
    ambiguous_share: np.ndarray | None = None
    money_column: str | None = None
    names: list[str] | None = field(default=None)

    @property
    def n_clusters(self) -> int:
        """Number of segments."""
        return int(self.sizes.shape[0])

    def segment_name(self, j: int) -> str:
        """The name of segment ``j``, or ``"segment j"`` when unnamed."""
        return self.names[j] if self.names else f"segment {j}"

    def to_frame(self) -> pd.DataFrame:
        """One row per segment: size, shares, then ``<feature>_mean/_median/_lift/_z`` columns.

        Examples
        --------
        >>> acc = ProfileAccumulator(["x"], 2)
        >>> acc.add(pd.DataFrame({"x": [1.0, 3.0]}), [0, 1])
        >>> acc.profile().to_frame()[["size", "x_mean", "x_z"]].to_dict("list")
        {'size': [1, 1], 'x_mean': [1.0, 3.0], 'x_z': [-1.0, 1.0]}
        """
        columns: dict[str, np.ndarray | list] = {}
        if self.names:
            columns["name"] = list(self.names)
        columns["size"] = self.sizes
        columns["share"] = self.shares
        if self.revenue_share is not None:
            columns["revenue_share"] = self.revenue_share
        if self.ambiguous_share is not None:
            columns["ambiguous_share"] = self.ambiguous_share
        for f, name in enumerate(self.feature_names):
            columns[f"{name}_mean"] = self.means[:, f]
            columns[f"{name}_median"] = self.medians[:, f]
            columns[f"{name}_lift"] = self.lift[:, f]
            columns[f"{name}_z"] = self.z[:, f]
            columns[f"{name}_rank_z"] = self.rank_z[:, f]
        frame = pd.DataFrame(columns)
        frame.index.name = "segment"
        return frame

    def to_dict(self) -> dict:
        """A JSON-safe dict (NaN becomes None): overall statistics and a list of segments.

        Examples
        --------
        >>> acc = ProfileAccumulator(["x"], 1)
        >>> acc.add(pd.DataFrame({"x": [2.0]}), [0])
        >>> acc.profile().to_dict()["segments"][0]["features"]["x"]["mean"]
        2.0
        """
        segments = []
        for j in range(self.n_clusters):
            entry = {
                "segment": j,
                "name": self.segment_name(j),
                "size": int(self.sizes[j]),
                "share": _num(self.shares[j]),
                "revenue_share": (
                    None if self.revenue_share is None else _num(self.revenue_share[j])
                ),
                "ambiguous_share": (
                    None if self.ambiguous_share is None else _num(self.ambiguous_share[j])
                ),
                "features": {
                    name: {
                        "mean": _num(self.means[j, f]),
                        "median": _num(self.medians[j, f]),
                        "std": _num(self.stds[j, f]),
                        "lift": _num(self.lift[j, f]),
                        "z": _num(self.z[j, f]),
                        "rank_z": _num(self.rank_z[j, f]),
                    }
                    for f, name in enumerate(self.feature_names)
                },
            }
            segments.append(entry)
        return {
            "n_customers": int(self.sizes.sum()),
            "n_segments": self.n_clusters,
            "money_column": self.money_column,
            "medians": "exact" if self.medians_exact else f"DDSketch, alpha={self.median_alpha}",
            "overall": {
                name: {
                    "mean": _num(self.overall_mean[f]),
                    "median": _num(self.overall_median[f]),
                    "std": _num(self.overall_std[f]),
                }
                for f, name in enumerate(self.feature_names)
            },
            "segments": segments,
        }

    def to_json(self, indent: int | None = 1) -> str:
        """``to_dict()`` as strict JSON text.

        Examples
        --------
        >>> acc = ProfileAccumulator(["x"], 2)
        >>> acc.add(pd.DataFrame({"x": [2.0]}), [0])
        >>> '"mean": null' in acc.profile().to_json()  # the empty segment
        True
        """
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_markdown(self, digits: int = 3) -> str:
        """Two Markdown tables: segments (size and shares), then feature means with their lift.

        Examples
        --------
        >>> acc = ProfileAccumulator(["x"], 1)
        >>> acc.add(pd.DataFrame({"x": [2.0]}), [0])
        >>> print(acc.profile().to_markdown().splitlines()[0])
        | segment | name | customers | share |
        """
        head = ["segment", "name", "customers", "share"]
        if self.revenue_share is not None:
            head.append("revenue share")
        if self.ambiguous_share is not None:
            head.append("ambiguous")
        rows = []
        for j in range(self.n_clusters):
            row = [str(j), self.segment_name(j), f"{int(self.sizes[j]):,}", _pct(self.shares[j])]
            if self.revenue_share is not None:
                row.append(_pct(self.revenue_share[j]))
            if self.ambiguous_share is not None:
                row.append(_pct(self.ambiguous_share[j]))
            rows.append(row)
        lines = _table(head, rows)
        feature_head = ["feature", "all", *(self.segment_name(j) for j in range(self.n_clusters))]
        feature_rows = []
        for f, name in enumerate(self.feature_names):
            cells = [name, _fmt(self.overall_mean[f], digits)]
            for j in range(self.n_clusters):
                lift = self.lift[j, f]
                shown = "" if not np.isfinite(lift) else f" ({lift:+.0%})"
                cells.append(f"{_fmt(self.means[j, f], digits)}{shown}")
            feature_rows.append(cells)
        note = (
            "Feature means per segment (lift against all customers in brackets; none for a "
            "feature with both negative and positive values)."
        )
        return "\n".join([*lines, "", note, "", *_table(feature_head, feature_rows)]) + "\n"


def profile_frame(
    frame: pd.DataFrame,
    labels: np.ndarray,
    feature_names: Sequence[str],
    n_clusters: int,
    *,
    money_column: str | None = None,
    ambiguous: np.ndarray | None = None,
    names: Sequence[str] | None = None,
) -> SegmentProfile:
    """Profile one in-memory frame (one block through a :class:`ProfileAccumulator`).

    Examples
    --------
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 9.0]})
    >>> profile_frame(frame, [0, 0, 1], ["x"], 2).means[:, 0].tolist()
    [1.5, 9.0]
    """
    acc = ProfileAccumulator(feature_names, n_clusters, money_column, exact_rows=len(frame))
    acc.add(frame, labels, ambiguous)
    return acc.profile(names)


def _num(value) -> float | None:
    """A float for JSON, None for NaN or infinity."""
    value = float(value)
    return value if math.isfinite(value) else None


def _pct(value: float) -> str:
    return "" if not np.isfinite(value) else f"{value:.1%}"


def _fmt(value: float, digits: int) -> str:
    return "" if not np.isfinite(value) else f"{value:.{digits}g}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    escape = [[cell.replace("|", "\\|") for cell in row] for row in [head, *rows]]
    lines = ["| " + " | ".join(row) + " |" for row in escape]
    lines.insert(1, "|" + "|".join("---" for _ in head) + "|")
    return lines
