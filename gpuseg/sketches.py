"""Mergeable per-column statistics of a feature plan's fit pass: quantile sketches and moments.

Computed per table or Dask partition and merged in any grouping, so a plan is fitted in one
streamed pass (see :class:`gpuseg.plan.FeaturePlan`).

Per numeric column the pass keeps a quantile sketch: values grouped by key, with per group
the count, min, max, mean and M2 (merged with Chan's formulas). While a column has at most
``2**16`` distinct values every distinct value is its own group and everything is exact:
quantiles equal ``numpy.quantile`` (linear interpolation) and the clipped mean and std are
those of the clipped values. Beyond that, groups become buckets of ``2**-10`` relative width
(the float64 bits with 10 mantissa bits kept; about 1,024 buckets per power of two the
values span), a quantile is interpolated inside its bucket between the bucket's min and max
(so it is off by at most one bucket width, 0.1 % of its value), and the clipped moments are
exact except for the at most two buckets holding the clip bounds, whose rows are counted at
their mean clipped to the bounds. The buckets, counts, mins and maxs do not depend on how the
rows are split into tables or partitions; means and M2 only up to float64 rounding.
Columns that are neither clipped nor robust-scaled keep only count, mean and M2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

# Distinct values per column kept exactly in the sketch before it switches to buckets.
_EXACT_LIMIT = 1 << 16
# Mantissa bits kept in a bucket key: buckets of relative width 2**-10.
_BUCKET_BITS = 10
_EXACT, _BUCKETS, _MOMENTS = 0, 1, 2
_MAGNITUDE = np.int64(0x7FFF_FFFF_FFFF_FFFF)


@dataclass
class NumericStatistics:
    """Quantile sketch and moments of one numeric column (see the module docstring).

    Groups are sorted by key; every array has one entry per group.
    """

    resolution: int
    keys: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    m2s: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray

    @classmethod
    def of(
        cls,
        values: np.ndarray,
        sketch: bool,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> NumericStatistics:
        """Statistics of ``transform(values)`` (finite float64 ``values``; ``transform``, when
        given, increasing): a sketch, or one group when not ``sketch``.

        Integer values spanning fewer than ``2**16`` (counts, days, quantities) are counted
        rather than sorted, and only the distinct ones transformed; the groups are the same.
        """
        if sketch:
            counted = _count_integers(values)
            if counted is not None:
                distinct, counts = counted
                distinct = (distinct if transform is None else transform(distinct)) + 0.0
                keys = _keys(distinct, _EXACT)
                if len(keys) == 1 or (keys[1:] > keys[:-1]).all():  # no two values merged
                    return cls(
                        _EXACT, keys, counts, distinct.copy(), np.zeros(len(keys)),
                        distinct, distinct.copy(),
                    )  # fmt: skip
        if transform is not None:
            values = transform(values)
        values = values + 0.0  # -0.0 becomes 0.0, so that zeros share one key
        if not sketch:
            if len(values) == 0:
                return _empty(_MOMENTS)
            mean = values.mean()
            return cls(
                _MOMENTS, np.zeros(1, np.int64), np.array([len(values)], np.int64),
                np.array([mean]), np.array([np.sum((values - mean) ** 2)]),
                np.array([values.min()]), np.array([values.max()]),
            )  # fmt: skip
        ordered = np.sort(values)
        keys = _keys(ordered, _EXACT)
        starts = _run_starts(keys)
        resolution = _EXACT
        if len(starts) > _EXACT_LIMIT:
            resolution, keys = _BUCKETS, _keys(ordered, _BUCKETS)
            starts = _run_starts(keys)
        counts = np.diff(np.append(starts, len(ordered))).astype(np.int64)
        mins, maxs = ordered[starts], ordered[starts + counts - 1]
        if resolution == _EXACT:
            means, m2s = mins.copy(), np.zeros(len(starts))
        else:
            means = np.add.reduceat(ordered, starts) / counts
            deviations = ordered - np.repeat(means, counts)
            m2s = np.add.reduceat(deviations * deviations, starts)
        return cls(resolution, keys[starts], counts, means, m2s, mins, maxs)

    @property
    def count(self) -> int:
        """Values seen."""
        return int(self.counts.sum())

    def merge(self, other: NumericStatistics) -> NumericStatistics:
        """The statistics of both sets of values (neither is modified)."""
        resolution = max(self.resolution, other.resolution)
        a, b = self._at(resolution), other._at(resolution)
        return _combine(
            resolution,
            *(np.concatenate([x, y]) for x, y in zip(a._arrays(), b._arrays(), strict=True)),
        )

    def quantiles(self, qs: Sequence[float]) -> np.ndarray:
        """Quantiles by linear interpolation, as ``numpy.quantile`` (exact in exact mode)."""
        if self.resolution == _MOMENTS:
            raise RuntimeError("quantiles need a sketch; these statistics keep moments only.")
        ends = np.cumsum(self.counts)
        index = (ends[-1] - 1) * np.asarray(qs, dtype=np.float64)
        below = np.floor(index)
        gamma = index - below
        above = np.minimum(below + 1, ends[-1] - 1)
        return _lerp(self._value_at(below, ends), self._value_at(above, ends), gamma)

    def clipped_moments(self, low: float | None, high: float | None) -> tuple[int, float, float]:
        """Count, mean and M2 of the values clipped to ``[low, high]`` (None: no bound)."""
        low = -np.inf if low is None else low
        high = np.inf if high is None else high
        means = np.clip(self.means, low, high)
        inside = (self.mins >= low) & (self.maxs <= high)
        n = self.count
        mean = float(np.dot(self.counts, means) / n)
        m2 = float(np.where(inside, self.m2s, 0.0).sum() + np.dot(self.counts, (means - mean) ** 2))
        return n, mean, m2

    def _value_at(self, positions: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Estimated value at sorted positions: interpolated between a group's min and max."""
        group = np.searchsorted(ends, positions, side="right")
        counts = self.counts[group]
        start = ends[group] - counts
        share = np.where(counts > 1, (positions - start) / np.maximum(counts - 1, 1), 0.0)
        low, high = self.mins[group], self.maxs[group]
        return low + (high - low) * share

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self.keys, self.counts, self.means, self.m2s, self.mins, self.maxs

    def _at(self, resolution: int) -> NumericStatistics:
        """These statistics at a coarser resolution (exact values regrouped into buckets)."""
        if resolution == self.resolution:
            return self
        if (self.resolution, resolution) != (_EXACT, _BUCKETS):
            raise ValueError("cannot merge statistics of a sketch with moments-only statistics.")
        return _combine(_BUCKETS, _keys(self.mins, _BUCKETS), *self._arrays()[1:])


def _empty(resolution: int) -> NumericStatistics:
    ints, floats = np.zeros(0, np.int64), np.zeros(0)
    return NumericStatistics(resolution, ints, ints, floats, floats, floats, floats)


def _count_integers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Distinct values (ascending) and their counts, counted without a sort, when every value is
    an integer and they span fewer than ``_EXACT_LIMIT`` (counts, days, quantities); else None.

    The groups are the ones the sort finds: each distinct value its own exact group.
    """
    if len(values) == 0:
        return None
    low, high = values.min(), values.max()
    if not high - low < _EXACT_LIMIT:
        return None
    offsets = values - low  # exact: integers closer than 2**16
    as_ints = offsets.astype(np.int64)
    if not np.array_equal(as_ints, offsets):
        return None
    counts = np.bincount(as_ints)
    present = np.flatnonzero(counts)
    return present + low, counts[present].astype(np.int64)


def _keys(values: np.ndarray, resolution: int) -> np.ndarray:
    """Sort keys, monotone in the value: the float64 bits, cut to a bucket unless exact."""
    if resolution == _MOMENTS:
        return np.zeros(len(values), np.int64)
    bits = values.view(np.int64)
    shift = 0 if resolution == _EXACT else 52 - _BUCKET_BITS
    magnitude = (bits & _MAGNITUDE) >> shift
    return np.where(bits < 0, -magnitude - 1, magnitude)


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """Index of the first entry of every run of equal sorted keys."""
    if len(keys) == 0:
        return np.zeros(0, np.intp)
    return np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))


def _combine(resolution, keys, counts, means, m2s, mins, maxs) -> NumericStatistics:
    """Merge groups of equal key (Chan et al.: M2 = sum M2_i + sum n_i (mean_i - mean)^2)."""
    if len(keys) == 0:
        return _empty(resolution)
    order = np.argsort(keys, kind="stable")
    keys, counts, means, m2s, mins, maxs = (
        a[order] for a in (keys, counts, means, m2s, mins, maxs)
    )
    starts = _run_starts(keys)
    n = np.add.reduceat(counts, starts)
    mean = np.add.reduceat(counts * means, starts) / n
    sizes = np.diff(np.append(starts, len(keys)))
    spread = counts * (means - np.repeat(mean, sizes)) ** 2
    merged = NumericStatistics(
        resolution, keys[starts], n, mean,
        np.add.reduceat(m2s, starts) + np.add.reduceat(spread, starts),
        np.minimum.reduceat(mins, starts), np.maximum.reduceat(maxs, starts),
    )  # fmt: skip
    if resolution == _EXACT:
        merged.means, merged.m2s = merged.mins.copy(), np.zeros(len(starts))
        if len(starts) > _EXACT_LIMIT:
            return merged._at(_BUCKETS)
    return merged


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """NumPy's quantile interpolation, so that exact sketches give numpy.quantile's floats."""
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


@dataclass
class CategoryCounts:
    """Rows per value of one categorical column, and its nulls."""

    counts: dict[str, int] = field(default_factory=dict)
    nulls: int = 0

    def merge(self, other: CategoryCounts) -> CategoryCounts:
        """The counts of both (neither is modified)."""
        counts = dict(self.counts)
        for value, count in other.counts.items():
            counts[value] = counts.get(value, 0) + count
        return CategoryCounts(counts, self.nulls + other.nulls)


@dataclass
class PlanStatistics:
    """Mergeable statistics of every column of a plan over some rows.

    Compute one per table or Dask partition with :meth:`FeaturePlan.statistics`, fold them with
    :meth:`merge` (in any grouping), then :meth:`FeaturePlan.fit_statistics`.
    """

    n_rows: int
    columns: dict[str, NumericStatistics | CategoryCounts]
    input_types: dict[str, str]

    def merge(self, other: PlanStatistics) -> PlanStatistics:
        """The statistics of both sets of rows; column types are taken from ``self``."""
        if self.columns.keys() != other.columns.keys():
            raise ValueError(
                f"cannot merge statistics of columns {sorted(self.columns)} with "
                f"{sorted(other.columns)}; compute both with the same plan."
            )
        columns = {name: stats.merge(other.columns[name]) for name, stats in self.columns.items()}
        types = {**other.input_types, **self.input_types}
        return PlanStatistics(self.n_rows + other.n_rows, columns, types)
