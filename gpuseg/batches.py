"""Batch sources: what every pass of the algorithms reads, wherever the rows live.

A source yields contiguous float32 ``(rows, n_features)`` blocks in a fixed order, each with its
optional float32 weights and the ids of its rows. The fitting loops only see this interface, so the
same code runs on arrays in memory, a local Parquet scanner or a Dask cluster, and the same blocks
in the same order give the same centres.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

DEFAULT_BLOCK_ROWS = 1 << 20


@dataclass
class Batch:
    """One block of rows.

    Attributes
    ----------
    X : ndarray of float32, shape (n_rows, n_features)
        The rows, C-contiguous, with the feature plan already applied.
    sample_weight : ndarray of float32, shape (n_rows,), or None
        Row weights; ``None`` weighs every row 1.
    ids : ndarray, shape (n_rows,), or None
        Row identifiers (customer ids), when the source has them.
    """

    X: np.ndarray
    sample_weight: np.ndarray | None = None
    ids: np.ndarray | None = None


def take(batch: Batch, rows: np.ndarray) -> Batch:
    """The given rows of one block (weights and ids too)."""
    weights = None if batch.sample_weight is None else batch.sample_weight[rows]
    ids = None if batch.ids is None else batch.ids[rows]
    return Batch(np.ascontiguousarray(batch.X[rows]), weights, ids)


def concatenate(pieces: list[Batch], n_features: int) -> Batch:
    """Blocks laid end to end (weights and ids too, when every block has them)."""
    if not pieces:
        return Batch(np.empty((0, n_features), dtype=np.float32))
    if len(pieces) == 1:
        return pieces[0]
    X = np.concatenate([piece.X for piece in pieces])
    weights = ids = None
    if all(piece.sample_weight is not None for piece in pieces):
        weights = np.concatenate([piece.sample_weight for piece in pieces])
    if all(piece.ids is not None for piece in pieces):
        ids = np.concatenate([piece.ids for piece in pieces])
    return Batch(X, weights, ids)


class BatchSource(Protocol):
    """What the fitting loops read: a fixed sequence of blocks and a way to sample rows."""

    n_features: int

    def batches(self) -> Iterator[Batch]:
        """Yield the blocks, always in the same order."""
        ...

    def sample(self, n_rows: int, rng: np.random.Generator) -> Batch:
        """Return up to ``n_rows`` rows drawn uniformly without replacement."""
        ...


class ArraySource:
    """A source over an in-memory float32 array, cut into blocks of ``block_rows`` rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows; copied to C-contiguous float32 unless they already are.
    sample_weight : ndarray of float32, shape (n_samples,), optional
        Row weights.
    block_rows : int, default 1_048_576
        Rows per block.

    Examples
    --------
    >>> source = ArraySource(np.zeros((5, 2), dtype=np.float32), block_rows=2)
    >>> [b.X.shape[0] for b in source.batches()]
    [2, 2, 1]
    """

    def __init__(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray | None = None,
        block_rows: int = DEFAULT_BLOCK_ROWS,
    ) -> None:
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.sample_weight = sample_weight
        self.block_rows = block_rows
        self.n_samples, self.n_features = X.shape

    def batches(self) -> Iterator[Batch]:
        """Yield consecutive blocks as views of the array (no copies)."""
        for start in range(0, self.n_samples, self.block_rows):
            stop = min(start + self.block_rows, self.n_samples)
            weights = None if self.sample_weight is None else self.sample_weight[start:stop]
            yield Batch(self.X[start:stop], weights)

    def sample(self, n_rows: int, rng: np.random.Generator) -> Batch:
        """Return up to ``n_rows`` distinct rows, in ascending row order."""
        if n_rows >= self.n_samples:
            return Batch(self.X, self.sample_weight)
        rows = np.sort(rng.choice(self.n_samples, size=n_rows, replace=False))
        weights = None if self.sample_weight is None else self.sample_weight[rows]
        return Batch(np.ascontiguousarray(self.X[rows]), weights)
