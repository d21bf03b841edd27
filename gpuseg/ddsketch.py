"""A mergeable relative-error quantile sketch per group: DDSketch (Masson, Rim and Lee, VLDB 2019).

Values are counted in logarithmic buckets ``ceil(log_gamma |x|)`` with
``gamma = (1 + alpha) / (1 - alpha)``, separately for each sign, and values with ``|x| < 1e-9`` in
a zero bucket, one set of buckets per group. Bucket counts add, so sketches merge exactly and a
result does not depend on how the values were split into blocks or in which order partial
sketches were merged. A quantile is the middle of the bucket holding the wanted rank, within
``alpha * |x|`` of the true value ``x`` (within ``1e-9`` of 0 for the zero bucket).

Besides quantiles, the sketch gives each group's mean mid-rank share within a reference sketch
(:meth:`QuantileSketch.mean_mid_rank`), with values in one bucket counted as ties. The segment
profiles of :mod:`gpuseg.profiles` keep one group per (segment, feature).
"""

from __future__ import annotations

import math

import numba
import numpy as np

DEFAULT_ALPHA = 0.005
# Values nearer 0 than this share the zero bucket of the sketch.
_ZERO = 1e-9
# The bucket index of a value is stored with its sign in 22 bits, under the group
# (at alpha=0.001 the largest float64 has index about 365,000, far below 2**21).
_KEY_BITS = 22
_BUCKET_MASK = (1 << _KEY_BITS) - 1


class QuantileSketch:
    """A DDSketch of many ``(group, value)`` pairs: relative-error quantiles per group, mergeable.

    Parameters
    ----------
    n_groups : int
        Number of groups (one per segment and feature in a profile).
    alpha : float, default 0.005
        Relative accuracy, between 0.001 and 0.1.

    Examples
    --------
    >>> sketch = QuantileSketch(1, alpha=0.01)
    >>> sketch.add(np.zeros(5, dtype=np.int64), np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    >>> abs(float(sketch.quantile(0.5)[0]) - 3.0) <= 0.01 * 3.0
    True
    """

    def __init__(self, n_groups: int, alpha: float = DEFAULT_ALPHA) -> None:
        if not 0.001 <= alpha <= 0.1:
            raise ValueError(f"alpha={alpha!r} should be between 0.001 and 0.1.")
        self.n_groups = int(n_groups)
        self.alpha = float(alpha)
        self._log_gamma = math.log((1 + alpha) / (1 - alpha))
        # Shifts bucket indices so that the bucket of _ZERO is 1: signed indices stay compact.
        self._offset = 1 - math.ceil(math.log(_ZERO) / self._log_gamma)
        self.keys = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)

    def _bucket(self, values: np.ndarray) -> np.ndarray:
        """Ordered bucket index of every value: 0 for the zero bucket, signed otherwise."""
        flat = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        # NumPy's logarithm, which every sketch so far was built with (another log could put a
        # value on a bucket edge one bucket over); the zero bucket's logs are never used.
        logs = np.abs(flat)
        np.maximum(logs, _ZERO, out=logs)
        np.log(logs, out=logs)
        return _signed_buckets(flat, logs, self._log_gamma, self._offset).reshape(np.shape(values))

    def add(self, groups: np.ndarray, values: np.ndarray) -> None:
        """Count ``values`` (finite float) into their ``groups`` (int, ``0 <= g < n_groups``)."""
        groups = np.asarray(groups, dtype=np.int64)
        ordered = self._bucket(np.asarray(values, dtype=np.float64))
        if ordered.size == 0:
            return
        low_group, low_bucket = int(groups.min()), int(ordered.min())
        width = int(ordered.max()) - low_bucket + 1
        span = (int(groups.max()) - low_group + 1) * width
        if span <= 4 * ordered.size + 4096:  # counting beats sorting when the buckets are dense
            dense = np.bincount(
                (groups - low_group) * width + (ordered - low_bucket), minlength=span
            )
            cells = np.flatnonzero(dense)
            groups, ordered = cells // width + low_group, cells % width + low_bucket
            counts = dense[cells]
        else:
            keys, counts = np.unique(self._key(groups, ordered), return_counts=True)
            self._fold(keys, counts)
            return
        self._fold(self._key(groups, ordered), counts.astype(np.int64))

    @staticmethod
    def _key(groups: np.ndarray, ordered: np.ndarray) -> np.ndarray:
        """One sortable int64 per (group, bucket): group first, then bucket in value order."""
        return (groups << _KEY_BITS) + (ordered + (1 << (_KEY_BITS - 1)))

    def merge(self, other: QuantileSketch) -> None:
        """Add the counts of ``other`` (same ``n_groups`` and ``alpha``) into this sketch."""
        if other.n_groups != self.n_groups or other.alpha != self.alpha:
            raise ValueError(
                f"cannot merge a sketch of n_groups={other.n_groups}, alpha={other.alpha} into "
                f"one of n_groups={self.n_groups}, alpha={self.alpha}."
            )
        self._fold(other.keys, other.counts)

    def _fold(self, keys: np.ndarray, counts: np.ndarray) -> None:
        unique, inverse = np.unique(np.concatenate([self.keys, keys]), return_inverse=True)
        total = np.bincount(inverse, weights=np.concatenate([self.counts, counts]))
        self.keys, self.counts = unique, np.rint(total).astype(np.int64)

    def _value(self, ordered: np.ndarray) -> np.ndarray:
        """The value a bucket stands for: ``2 gamma^i / (gamma + 1)``, signed; 0 for zero."""
        index = np.abs(ordered) - self._offset
        gamma = (1 + self.alpha) / (1 - self.alpha)
        value = 2.0 * np.exp(index * self._log_gamma) / (gamma + 1.0)
        return np.where(ordered == 0, 0.0, np.sign(ordered) * value)

    def quantile(self, q: float) -> np.ndarray:
        """The ``q``-quantile of every group (the ``floor(q (n - 1))``-th smallest), NaN if empty.

        Returns
        -------
        ndarray of float64, shape (n_groups,)
        """
        result = np.full(self.n_groups, np.nan)
        if self.keys.size == 0:
            return result
        groups = self.keys >> _KEY_BITS
        ordered = (self.keys & ((1 << _KEY_BITS) - 1)) - (1 << (_KEY_BITS - 1))
        starts = np.searchsorted(groups, np.arange(self.n_groups + 1))
        cumulative = np.cumsum(self.counts)
        before = np.concatenate([[0], cumulative])[starts[:-1]]
        totals = np.concatenate([[0], cumulative])[starts[1:]] - before
        present = totals > 0
        rank = np.floor(q * (totals[present] - 1)).astype(np.int64)
        position = np.searchsorted(cumulative, before[present] + rank, side="right")
        result[present] = self._value(ordered[position])
        return result

    def regrouped(self, groups: np.ndarray, n_groups: int) -> QuantileSketch:
        """A sketch whose group ``groups[g]`` holds the buckets of every group ``g`` of this one.

        Examples
        --------
        >>> sketch = QuantileSketch(2)
        >>> sketch.add(np.array([0, 0, 1]), np.array([1.0, 5.0, 3.0]))
        >>> round(float(sketch.regrouped(np.array([0, 0]), 1).quantile(0.5)[0]), 1)
        3.0
        """
        merged = QuantileSketch(n_groups, self.alpha)
        mapped = np.asarray(groups, dtype=np.int64)[self.keys >> _KEY_BITS]
        merged._fold((mapped << _KEY_BITS) + (self.keys & _BUCKET_MASK), self.counts)
        return merged

    def mean_mid_rank(self, reference: QuantileSketch, groups: np.ndarray) -> np.ndarray:
        """Per group ``g``, the mean over its values of the share of group ``groups[g]`` of
        ``reference`` below each value, values in the same bucket counting half: for two groups of
        values, the probability that one of ``g`` exceeds one drawn from the reference group.

        Every bucket of this sketch must be in ``reference`` (for instance when ``reference`` is
        :meth:`regrouped` from it). NaN for an empty group.

        Examples
        --------
        >>> sketch = QuantileSketch(2)
        >>> sketch.add(np.array([0, 0, 1, 1]), np.array([1.0, 2.0, 3.0, 4.0]))
        >>> everyone = sketch.regrouped(np.array([0, 0]), 1)
        >>> sketch.mean_mid_rank(everyone, np.array([0, 0])).tolist()
        [0.25, 0.75]
        """
        result = np.full(self.n_groups, np.nan)
        if self.keys.size == 0:
            return result
        # Mid-rank share of every reference bucket: values below it, plus half of those in it.
        reference_groups = reference.keys >> _KEY_BITS
        cumulative = np.concatenate([[0], np.cumsum(reference.counts)])
        starts = np.searchsorted(reference_groups, np.arange(reference.n_groups + 1))
        totals = cumulative[starts[1:]] - cumulative[starts[:-1]]
        below = cumulative[:-1] - cumulative[starts[:-1]][reference_groups]
        share_below = (below + 0.5 * reference.counts) / totals[reference_groups]
        own_groups = self.keys >> _KEY_BITS
        targets = np.asarray(groups, dtype=np.int64)[own_groups]
        own_buckets = self.keys & _BUCKET_MASK
        bucket = np.searchsorted(reference.keys, (targets << _KEY_BITS) + own_buckets)
        weight = np.bincount(own_groups, weights=self.counts, minlength=self.n_groups)
        total = np.bincount(
            own_groups, weights=self.counts * share_below[bucket], minlength=self.n_groups
        )
        present = weight > 0
        result[present] = total[present] / weight[present]
        return result


@numba.njit(cache=True, nogil=True)
def _signed_buckets(values, logs, log_gamma, offset):
    """``ceil(logs / log_gamma) + offset`` with the sign of each value, and 0 where ``|value|``
    is below ``_ZERO`` (or NaN): one pass where NumPy needs masks, gathers and scatters."""
    ordered = np.empty(values.shape[0], dtype=np.int64)
    for i in range(values.shape[0]):
        if not abs(values[i]) >= _ZERO:
            ordered[i] = 0
        else:
            index = np.int64(math.ceil(logs[i] / log_gamma)) + offset
            ordered[i] = -index if values[i] < 0 else index
    return ordered
