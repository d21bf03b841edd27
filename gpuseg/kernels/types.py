"""Containers the kernels fill: per-row assignments and per-centre float64 sums."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def empty_aligned(shape: int | tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array whose data starts on a 64-byte boundary (a cache line, an AVX-512
    vector)."""
    size, itemsize = math.prod(np.atleast_1d(shape)), np.dtype(dtype).itemsize
    buffer = np.empty(size + 64 // itemsize, dtype=dtype)
    skip = (-buffer.ctypes.data % 64) // itemsize
    return buffer[skip : skip + size].reshape(shape)


@dataclass
class Assignment:
    """Nearest and runner-up centre of every row of a block.

    Attributes
    ----------
    labels : ndarray of int32, shape (n_samples,)
        Index of the nearest centre.
    distances : ndarray of float32, shape (n_samples,)
        Squared Euclidean distance to the nearest centre.
    second_labels : ndarray of int32, shape (n_samples,)
        Index of the runner-up centre, ``-1`` when there is a single centre.
    second_distances : ndarray of float32, shape (n_samples,)
        Squared distance to the runner-up centre, ``inf`` when there is a single centre.
    """

    labels: np.ndarray
    distances: np.ndarray
    second_labels: np.ndarray
    second_distances: np.ndarray

    @classmethod
    def empty(cls, n_samples: int) -> Assignment:
        """Allocate an assignment for ``n_samples`` rows, each array on a 64-byte boundary."""
        return cls(
            labels=empty_aligned(n_samples, np.int32),
            distances=empty_aligned(n_samples, np.float32),
            second_labels=empty_aligned(n_samples, np.int32),
            second_distances=empty_aligned(n_samples, np.float32),
        )

    def __len__(self) -> int:
        return self.labels.shape[0]

    def view(self, start: int, stop: int) -> Assignment:
        """Return the rows ``start:stop`` as views, for a kernel to write a block into."""
        return Assignment(
            self.labels[start:stop],
            self.distances[start:stop],
            self.second_labels[start:stop],
            self.second_distances[start:stop],
        )


class ReusedBlock:
    """Per-row outputs of passes whose caller keeps none of them (only the sums).

    :meth:`view` gives an :class:`Assignment` over one block of scratch, the same memory for
    every view, grown when a longer block comes. Allocating fresh outputs for every block instead
    made a pass over 10M rows in blocks of 1M take 115-170 ms against 44-46 ms: freed blocks that
    large go back to the system, and the first write to fresh memory costs a page fault per 4
    KiB (0.8-4.8 ms per MB on a virtual machine). Views share the memory: use one before taking
    the next.
    """

    def __init__(self) -> None:
        self._block: Assignment | None = None

    def view(self, start: int, stop: int) -> Assignment:
        """Return an assignment of ``stop - start`` rows over the reused block."""
        n_rows = stop - start
        if self._block is None or len(self._block) < n_rows:
            self._block = Assignment.empty(n_rows)
        return self._block.view(0, n_rows)


@dataclass
class LabelsOnly:
    """Per-row outputs of passes whose caller keeps only the labels (a fit's ``labels_``).

    :meth:`view` gives an :class:`Assignment` whose labels are rows of :attr:`labels` and whose
    distances and runner-ups go to a :class:`ReusedBlock`: a pass over ``n`` rows then writes
    fresh memory for ``n`` labels and one block, not four arrays of ``n`` rows. Views share the
    block: use one before taking the next.
    """

    labels: np.ndarray
    _scratch: ReusedBlock = field(default_factory=ReusedBlock)

    @classmethod
    def empty(cls, n_samples: int) -> LabelsOnly:
        """Allocate the labels of ``n_samples`` rows on a 64-byte boundary."""
        return cls(empty_aligned(n_samples, np.int32))

    def __len__(self) -> int:
        return self.labels.shape[0]

    def view(self, start: int, stop: int) -> Assignment:
        """Return an assignment for rows ``start:stop``: their labels, and the scratch."""
        scratch = self._scratch.view(start, stop)
        return Assignment(
            self.labels[start:stop],
            scratch.distances,
            scratch.second_labels,
            scratch.second_distances,
        )


@dataclass
class ClusterSums:
    """Per-centre weighted sums of a block or of a whole pass, in float64.

    Attributes
    ----------
    sums : ndarray of float64, shape (n_clusters, n_features)
        Weighted sum of the rows assigned to each centre.
    weights : ndarray of float64, shape (n_clusters,)
        Total sample weight assigned to each centre.
    inertia : float
        Weighted sum of squared distances of the rows to their nearest centre.
    """

    sums: np.ndarray
    weights: np.ndarray
    inertia: float

    @classmethod
    def zeros(cls, n_clusters: int, n_features: int) -> ClusterSums:
        """Return empty sums to fold blocks into."""
        return cls(np.zeros((n_clusters, n_features)), np.zeros(n_clusters), 0.0)

    def add(self, other: ClusterSums) -> None:
        """Fold ``other`` into these sums in place (callers fold blocks in a fixed order)."""
        self.sums += other.sums
        self.weights += other.weights
        self.inertia += other.inertia
