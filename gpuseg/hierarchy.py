"""Micro to macro: many micro-segments merged into a few macro segments by weighted Ward linkage.

A large-``k`` fit (hundreds to thousands of micro-centres, the matrix-product kernel path) is
summarised by its centres ``c_i`` and their customer counts ``n_i``. Ward's method merges, at each
step, the two clusters ``A`` and ``B`` whose union raises the within sum of squares least, at the
height (SciPy's convention)::

    d(A, B) = sqrt(2 n_A n_B / (n_A + n_B)) * ||mean_A - mean_B||

where sizes are total customer counts and means are count-weighted means of the micro-centres.
With unit counts this is exactly :func:`scipy.cluster.hierarchy.ward`; with integer counts it is
Ward on the customers of each micro-segment all placed at their centre (each micro-segment
duplicated ``n_i`` times), without ever building that data. The merges are found by the
nearest-neighbour chain algorithm (Ward is reducible), in ``O(m^2 n_features)`` time and
``O(m n_features)`` memory for ``m`` micro-centres, with SciPy's tie-breaking.

The linkage matrix has SciPy's format, so :func:`scipy.cluster.hierarchy.dendrogram` and
``fcluster`` read it: row ``t`` merges clusters ``Z[t, 0] < Z[t, 1]`` at height ``Z[t, 2]`` into
cluster ``m + t`` holding ``Z[t, 3]`` micro-segments (their customer counts are in
``merge_weights``). Macro segments are numbered by decreasing customer count (ties: the smallest
micro-segment first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list

from gpuseg.estimator import KMeans


def ward_linkage(centers: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Ward linkage of weighted points, in SciPy's linkage format.

    Parameters
    ----------
    centers : ndarray of shape (m, n_features)
        Micro-centres.
    weights : ndarray of shape (m,), optional
        Non-negative customer counts (or weights); ``None`` is 1 each.

    Returns
    -------
    ndarray of float64, shape (m - 1, 4)

    Examples
    --------
    >>> Z = ward_linkage(np.array([[0.0], [1.0], [10.0]]), np.array([1.0, 1.0, 2.0]))
    >>> Z[:, :2].tolist(), Z[:, 2].round(3).tolist()
    ([[0.0, 1.0], [2.0, 3.0]], [1.0, 13.435])
    """
    points = np.asarray(centers, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] == 0:
        raise ValueError(f"centers has shape {points.shape}; expected (m, n_features), m >= 1.")
    m = points.shape[0]
    sizes = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64).copy()
    if sizes.shape != (m,):
        raise ValueError(f"weights.shape == {sizes.shape}, expected ({m},) (one per centre).")
    if not np.isfinite(points).all() or not np.isfinite(sizes).all() or (sizes < 0).any():
        raise ValueError("centers and weights must be finite, and weights >= 0.")
    merges = _nn_chain(points.copy(), sizes)
    return _relabel(merges, m)


def _nn_chain(means: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Merges ``(x, y, height)`` in the order found; the union lives on in slot ``y > x``."""
    m = means.shape[0]
    active = np.ones(m, dtype=bool)
    merges = np.empty((m - 1, 3))
    chain: list[int] = []
    for step in range(m - 1):
        if not chain:
            chain.append(int(np.argmax(active)))
        while True:
            x = chain[-1]
            distances = _ward_distances(means, sizes, x)
            distances[~active] = np.inf
            distances[x] = np.inf
            y = int(np.argmin(distances))
            if len(chain) > 1 and distances[chain[-2]] <= distances[y]:
                y = chain[-2]
            if len(chain) > 1 and y == chain[-2]:
                break
            chain.append(y)
        del chain[-2:]
        height = distances[y]
        x, y = min(x, y), max(x, y)
        total = sizes[x] + sizes[y]
        if total > 0:
            means[y] = (sizes[x] * means[x] + sizes[y] * means[y]) / total
        sizes[y] = total
        active[x] = False
        merges[step] = (x, y, height)
    return merges


def _ward_distances(means: np.ndarray, sizes: np.ndarray, x: int) -> np.ndarray:
    """Ward height from cluster ``x`` to every slot."""
    total = sizes + sizes[x]
    factor = np.divide(2.0 * sizes * sizes[x], total, out=np.zeros_like(total), where=total > 0)
    return np.sqrt(factor * ((means - means[x]) ** 2).sum(axis=1))


def _relabel(merges: np.ndarray, m: int) -> np.ndarray:
    """Sort merges by height (stably) and name clusters as SciPy does (union-find)."""
    order = np.argsort(merges[:, 2], kind="mergesort")
    parent = np.arange(2 * m - 1)
    members = np.concatenate([np.ones(m), np.zeros(m - 1)])
    linkage = np.empty((m - 1, 4))

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    for t, (x, y, height) in enumerate(merges[order]):
        a, b = sorted((find(int(x)), find(int(y))))
        parent[a] = parent[b] = m + t
        members[m + t] = members[a] + members[b]
        linkage[t] = (a, b, height, members[m + t])
    return linkage


def cut_linkage(linkage: np.ndarray, weights: np.ndarray, n_macro: int) -> np.ndarray:
    """Macro segment of every micro-segment when the tree is cut into ``n_macro`` clusters.

    Macro segments are numbered by decreasing total weight, ties by their smallest member.

    Examples
    --------
    >>> Z = ward_linkage(np.array([[0.0], [1.0], [10.0]]))
    >>> cut_linkage(Z, np.array([1.0, 1.0, 5.0]), 2).tolist()
    [1, 1, 0]
    """
    m = linkage.shape[0] + 1
    if not 1 <= n_macro <= m:
        raise ValueError(f"n_macro={n_macro!r} should be between 1 and the {m} micro-segments.")
    root = np.arange(2 * m - 1)
    for t in range(m - n_macro):
        root[int(linkage[t, 0])] = root[int(linkage[t, 1])] = m + t
    for node in range(2 * m - 2, -1, -1):
        if root[node] != node:
            root[node] = root[root[node]]
    groups = root[:m]
    unique, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    totals = np.bincount(inverse, weights=np.asarray(weights, dtype=np.float64))
    ranking = np.lexsort((first, -totals))
    number = np.empty(unique.size, dtype=np.int64)
    number[ranking] = np.arange(unique.size)
    return number[inverse].astype(np.int32)


@dataclass
class SegmentHierarchy:
    """Micro-segments, their Ward tree and its cut into macro segments.

    Attributes
    ----------
    micro_centers : ndarray of shape (m, n_features)
    micro_weights : ndarray of shape (m,)
        Customers per micro-segment.
    linkage : ndarray of shape (m - 1, 4)
        SciPy linkage matrix (see the module docstring).
    micro_to_macro : ndarray of int32, shape (m,)
        Macro segment of every micro-segment.
    macro_centers : ndarray of shape (n_macro, n_features)
        Count-weighted means of the micro-centres of each macro segment.
    macro_weights : ndarray of shape (n_macro,)
        Customers per macro segment.
    """

    micro_centers: np.ndarray
    micro_weights: np.ndarray
    linkage: np.ndarray
    micro_to_macro: np.ndarray
    macro_centers: np.ndarray
    macro_weights: np.ndarray

    @property
    def n_macro(self) -> int:
        """Number of macro segments."""
        return int(self.macro_weights.shape[0])

    def macro_labels(self, micro_labels: np.ndarray) -> np.ndarray:
        """Macro segment of every customer from its micro segment.

        Examples
        --------
        >>> h = merge_segments(np.array([[0.0], [1.0], [10.0]]), np.array([1, 1, 5]), 2)
        >>> h.macro_labels(np.array([2, 0, 1])).tolist()
        [0, 1, 1]
        """
        return self.micro_to_macro[np.asarray(micro_labels)]

    def with_macro(
        self, labels: pd.DataFrame, column: str = "macro_segment", segment_column: str = "segment"
    ) -> pd.DataFrame:
        """A copy of a labels frame with the macro segment beside the micro one.

        Examples
        --------
        >>> h = merge_segments(np.array([[0.0], [1.0], [10.0]]), np.array([1, 1, 5]), 2)
        >>> h.with_macro(pd.DataFrame({"segment": [0, 2]}))["macro_segment"].tolist()
        [1, 0]
        """
        frame = labels.copy()
        frame[column] = self.macro_labels(frame[segment_column].to_numpy())
        return frame

    def cut(self, n_macro: int) -> SegmentHierarchy:
        """The same tree cut into another number of macro segments.

        Examples
        --------
        >>> h = merge_segments(np.array([[0.0], [1.0], [10.0]]), np.array([1, 1, 5]), 2)
        >>> h.cut(1).micro_to_macro.tolist()
        [0, 0, 0]
        """
        return _hierarchy(self.micro_centers, self.micro_weights, self.linkage, n_macro)

    def dendrogram_data(self) -> dict:
        """JSON-safe tree for a report: linkage rows, merge weights and the leaf order.

        Examples
        --------
        >>> h = merge_segments(np.array([[0.0], [1.0], [10.0]]), np.array([1, 1, 5]), 2)
        >>> h.dendrogram_data()["leaves"]
        [2, 0, 1]
        """
        return {
            "linkage": self.linkage.tolist(),
            "merge_weights": merge_weights(self.linkage, self.micro_weights).tolist(),
            "micro_weights": self.micro_weights.tolist(),
            "micro_to_macro": self.micro_to_macro.tolist(),
            "leaves": leaves_list(self.linkage).tolist() if self.linkage.size else [0],
        }


def merge_weights(linkage: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Customers in the cluster each linkage row creates.

    Examples
    --------
    >>> merge_weights(ward_linkage(np.array([[0.0], [1.0], [9.0]])), np.array([2, 3, 4])).tolist()
    [5.0, 9.0]
    """
    m = linkage.shape[0] + 1
    totals = np.concatenate([np.asarray(weights, dtype=np.float64), np.zeros(m - 1)])
    for t in range(m - 1):
        totals[m + t] = totals[int(linkage[t, 0])] + totals[int(linkage[t, 1])]
    return totals[m:]


def _hierarchy(centers, weights, linkage, n_macro: int) -> SegmentHierarchy:
    micro_to_macro = cut_linkage(linkage, weights, n_macro)
    macro_weights = np.bincount(micro_to_macro, weights=weights, minlength=n_macro)
    sums = np.zeros((n_macro, centers.shape[1]))
    np.add.at(sums, micro_to_macro, weights[:, None] * centers)
    with np.errstate(divide="ignore", invalid="ignore"):
        macro_centers = np.where(macro_weights[:, None] > 0, sums / macro_weights[:, None], np.nan)
    return SegmentHierarchy(centers, weights, linkage, micro_to_macro, macro_centers, macro_weights)


def merge_segments(centers: np.ndarray, counts: np.ndarray, n_macro: int) -> SegmentHierarchy:
    """Merge count-weighted micro-centres into ``n_macro`` macro segments by Ward linkage.

    Parameters
    ----------
    centers : ndarray of shape (m, n_features)
        Micro-centres, in model units.
    counts : ndarray of shape (m,)
        Customers per micro-segment (``KMeans.cluster_sizes_``).
    n_macro : int
        Macro segments wanted, ``1 <= n_macro <= m``.

    Returns
    -------
    SegmentHierarchy

    Examples
    --------
    >>> h = merge_segments(np.array([[0.0], [1.0], [10.0], [11.0]]), np.array([1, 1, 5, 5]), 2)
    >>> h.micro_to_macro.tolist(), h.macro_centers.ravel().tolist()
    ([1, 1, 0, 0], [10.5, 0.5])
    """
    centers = np.asarray(centers, dtype=np.float64)
    weights = np.asarray(counts, dtype=np.float64)
    return _hierarchy(centers, weights, ward_linkage(centers, weights), n_macro)


def fit_micro_macro(
    X,
    n_micro: int,
    n_macro: int,
    *,
    random_state: int | None = None,
    kmeans_params: dict | None = None,
) -> tuple[KMeans, SegmentHierarchy]:
    """Fit ``n_micro`` micro-segments on all rows, then merge them into ``n_macro``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), or a batch source
    n_micro : int
        Micro-segments (hundreds to thousands).
    n_macro : int
        Macro segments.
    random_state : int, optional
    kmeans_params : dict, optional
        Other :class:`gpuseg.KMeans` parameters.

    Returns
    -------
    model : KMeans
        The micro-segment model.
    hierarchy : SegmentHierarchy

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(c, 1.0, (200, 3)) for c in (0, 20)])
    >>> model, h = fit_micro_macro(X, 20, 2, random_state=0)
    >>> np.bincount(h.macro_labels(model.labels_)).tolist()
    [200, 200]
    """
    model = KMeans(n_micro, random_state=random_state, **(kmeans_params or {})).fit(X)
    return model, merge_segments(model.cluster_centers_, model.cluster_sizes_, n_macro)
