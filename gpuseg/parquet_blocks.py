"""Float32 blocks filled from Arrow data read out of Parquet files, validated as they are filled.

:class:`BlockFormat` says what a block holds (feature columns or a fitted plan, weights, ids);
:class:`BlockBuilder` fills one preallocated block, either from Arrow data in row order (``add``)
or by handing out row ranges (``claim``) that reader threads fill with :func:`fill_rows` in any
order. A NaN, infinite or null feature, or a bad weight, raises a :class:`gpuseg.errors.DataError`
naming the file, the column and the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuseg.batches import Batch
from gpuseg.errors import DataError
from gpuseg.kernels.interleave import interleave_columns

if TYPE_CHECKING:
    from gpuseg.plan import FeaturePlan

# Arrow data as it comes out of a file: a record batch of a scan, or a table of row groups.
ArrowData = pa.RecordBatch | pa.Table


@dataclass(frozen=True)
class BlockFormat:
    """What every block of a source holds.

    Attributes
    ----------
    files : list of str
        The source's files, named in errors by their index.
    columns : list of str
        Feature columns (with ``plan``, its input columns).
    n_features : int
        Columns of a block's ``X``.
    plan : FeaturePlan or None
        When given, a block's ``X`` is ``plan.transform`` of its rows.
    weight_column, id_column : str or None
        Columns read into ``Batch.sample_weight`` and ``Batch.ids``.
    """

    files: list[str]
    columns: list[str]
    n_features: int
    plan: FeaturePlan | None
    weight_column: str | None
    id_column: str | None


class BlockBuilder:
    """One preallocated float32 block of ``capacity`` rows (and weights), filled in row order."""

    def __init__(self, block_format: BlockFormat, capacity: int) -> None:
        self.block_format = block_format
        self.capacity = capacity
        self.X = np.empty((capacity, block_format.n_features), dtype=np.float32)
        self.weights = None
        if block_format.weight_column is not None:
            self.weights = np.empty(capacity, dtype=np.float32)
        self.ids: list[np.ndarray] = []
        self.size = 0

    @property
    def is_full(self) -> bool:
        """Whether every row of the block has been added or claimed."""
        return self.size == self.capacity

    def claim(self, n_rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Reserve the next ``n_rows`` rows: views of ``X`` and the weights for :func:`fill_rows`.

        The caller appends the ids of the claimed rows to ``ids`` in row order itself.
        """
        at = self.size
        self.size += n_rows
        weights = None if self.weights is None else self.weights[at : at + n_rows]
        return self.X[at : at + n_rows], weights

    def add(self, data: ArrowData, index: int, rows: int | np.ndarray) -> None:
        """Append ``data`` (rows of file ``index``; ``rows``: its first row number, or all)."""
        X, weights = self.claim(data.num_rows)
        ids = fill_rows(self.block_format, X, weights, data, index, rows)
        if ids is not None:
            self.ids.append(ids)

    def finish(self) -> Batch:
        """The block so far, trimmed to its rows (a copy when it is shorter than its buffer)."""
        X, weights = self.X, self.weights
        if self.size < len(X):
            X = X[: self.size].copy()
            weights = None if weights is None else weights[: self.size].copy()
        ids = None
        if self.block_format.id_column is not None:
            ids = self.ids[0] if len(self.ids) == 1 else np.concatenate(self.ids)
        return Batch(X, weights, ids)


def fill_rows(
    block_format: BlockFormat,
    X: np.ndarray,
    weights: np.ndarray | None,
    data: ArrowData,
    index: int,
    rows: int | np.ndarray,
) -> np.ndarray | None:
    """Write the features and weights of ``data`` (rows of file ``index``) into ``X``/``weights``.

    ``rows`` is the file row number of ``data``'s first row, or of every row; errors name it.
    Returns the ids of the rows when ``block_format`` has an id column, else None.
    """
    _fill_features(block_format, X, data, index, rows)
    if weights is not None:
        name = block_format.weight_column
        weights[:] = to_float32(data.column(name))
        bad = ~(np.isfinite(weights) & (weights >= 0))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise _bad_value(data, name, weights[r], r, index, rows, block_format.files, ">= 0 ")
    if block_format.id_column is None:
        return None
    return data.column(block_format.id_column).to_numpy(zero_copy_only=False)


def _fill_features(
    block_format: BlockFormat, out: np.ndarray, data: ArrowData, index: int, rows: int | np.ndarray
) -> None:
    """Write the float32 features of ``data`` into ``out``.

    Without a plan the feature columns are cast to float32 as they are; with one, ``out`` is
    ``plan.transform(data)``. Either way a bad value raises a DataError naming file and row.
    """
    if block_format.plan is not None:
        block_format.plan.transform(data, rows=rows, path=block_format.files[index], out=out)
        return
    interleave_columns(out, [to_float32(data.column(name)) for name in block_format.columns])
    if not np.isfinite(out).all():
        bad = ~np.isfinite(out)
        r = int(np.flatnonzero(bad.any(axis=1))[0])
        j = int(np.flatnonzero(bad[r])[0])
        column = block_format.columns[j]
        raise _bad_value(data, column, out[r, j], r, index, rows, block_format.files)


def _bad_value(
    data: ArrowData,
    column: str,
    value: float,
    r: int,
    index: int,
    rows: int | np.ndarray,
    files: list[str],
    bound: str = "",
) -> DataError:
    """The error for the first null, NaN, infinite (or negative weight) value of a column."""
    row = int(rows[r]) if isinstance(rows, np.ndarray) else rows + r
    what = "null" if not data.column(column)[r].is_valid else repr(float(value))
    return DataError(
        f"{what} at row {row}; expected finite {bound}numbers (drop or impute such rows first)",
        files[index],
        column,
    )


def to_float32(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric Arrow column as float32, nulls as NaN (ints beyond 2**24 round, as in NumPy)."""
    return pc.cast(values, pa.float32(), safe=False).to_numpy(zero_copy_only=False)
