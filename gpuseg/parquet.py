"""A batch source over Parquet files, local or behind any fsspec URL.

Files are read one after another in sorted path order, and their record batches are cut and glued
into float32 blocks of exactly ``block_rows`` rows, so the blocks (and so the centres) do not
depend on how the files happen to be split into files or row groups. A reader thread decodes the
next ``read_ahead`` blocks while the caller computes on the current one. Blocks that fit in
memory are kept after the first complete pass and later passes read them from there (``persist``,
as a Dask cluster keeps its partitions); otherwise memory stays bounded by about
``block_rows * (read_ahead + 2)`` rows, whatever the size of the data.

Bad data raises :class:`gpuseg.errors.DataError` naming the file, the column and, for NaN or
infinite values, the first bad row, while the blocks are read: a streamed pass needs no separate
validation pass.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from gpuseg.batches import DEFAULT_BLOCK_ROWS, Batch, concatenate, take
from gpuseg.errors import DataError
from gpuseg.parquet_files import (
    ARROW_DATA_ERRORS,
    as_expression,
    check_filter,
    check_schemas,
    describe_path,
    resolve_paths,
)
from gpuseg.read_ahead import read_ahead

if TYPE_CHECKING:
    from gpuseg.plan import FeaturePlan

# Record batches are decoded at most this long; blocks are assembled from them.
_SCAN_BATCH_ROWS = 1 << 16
# First pause before a retry, doubled after each failure (object stores throttle).
_RETRY_DELAY_S = 0.05


class ParquetSource:
    """Float32 blocks read from Parquet files, with ids and weights, and row samples.

    Parameters
    ----------
    path : str, path-like or list of these
        A file, a directory (read recursively, skipping names that start with ``.`` or ``_``), a
        glob, or an fsspec URL of any of these (``file://``, ``s3://``...). Every path must be on
        the same filesystem.
    columns : list of str, optional
        Feature columns, in this order. ``None`` takes every integer, float and bool column of the
        first file except ``id_column`` and ``weight_column``.
    id_column : str, optional
        Column returned as ``Batch.ids`` (any type; duplicates are not checked).
    weight_column : str, optional
        Numeric column returned as ``Batch.sample_weight``; must be finite and >= 0.
    filters : pyarrow.dataset.Expression or list, optional
        Rows to keep: an expression such as ``pc.field("country") == "FR"`` or the DNF list form
        of :func:`pyarrow.parquet.read_table` (``[("spend", ">", 0)]``).
    block_rows : int, default 1_048_576
        Rows per block; every block but the last has exactly this many.
    read_ahead : int, default 2
        Blocks decoded ahead by the reader thread; 0 reads in the calling thread.
    storage_options : dict, optional
        Passed to fsspec for URLs (credentials, endpoint...).
    retries : int, default 2
        How many times a read failing with ``OSError`` is tried again before a ``DataError``.
    plan : gpuseg.plan.FeaturePlan, optional
        A fitted feature plan: its input columns are read (categorical ones may be strings) and
        every block is ``plan.transform`` of its rows. Not with ``columns``.
    persist : bool or "auto", default "auto"
        Keep the blocks of the first complete pass in memory and give every later pass from
        there, without reading and decoding the files again (a fit makes several passes).
        ``"auto"`` keeps them when they take at most half the memory available when the first
        pass starts (and stops keeping, freeing what it held, as soon as they pass that);
        ``False`` reads the files on every pass. The files must not change while the source is
        in use.

    Attributes
    ----------
    files : list of str
        The data files, sorted; URLs keep their protocol.
    columns : list of str
        The feature columns (with ``plan``, its input columns).
    n_features : int
        ``len(columns)`` (with ``plan``, ``plan.n_features``).
    n_samples : int
        Rows in all files (from the Parquet footers; with ``filters``, counted on first use).
    persisted : bool
        Whether the blocks are held in memory (after a first complete pass).

    Raises
    ------
    DataError
        When a path matches no file, a file is empty or not Parquet, a column is missing or not
        numeric, or two files disagree on a column's type.

    Examples
    --------
    >>> source = ParquetSource("customers/", id_column="customer_id")  # doctest: +SKIP
    >>> for batch in source.batches():  # doctest: +SKIP
    ...     partial = fused_pass(batch.X, centers, batch.sample_weight)
    """

    def __init__(
        self,
        path: str | os.PathLike | Sequence[str | os.PathLike],
        columns: Sequence[str] | None = None,
        id_column: str | None = None,
        weight_column: str | None = None,
        *,
        filters: ds.Expression | list | None = None,
        block_rows: int = DEFAULT_BLOCK_ROWS,
        read_ahead: int = 2,
        storage_options: dict[str, Any] | None = None,
        retries: int = 2,
        plan: FeaturePlan | None = None,
        persist: bool | str = "auto",
    ) -> None:
        _check_int("block_rows", block_rows, 1)
        if persist not in (True, False, "auto"):
            raise ValueError(f"persist={persist!r} should be True, False or 'auto'.")
        _check_int("read_ahead", read_ahead, 0)
        _check_int("retries", retries, 0)
        if plan is not None:
            columns = _plan_columns(plan, columns)
        if isinstance(columns, str):
            raise ValueError(f"columns={columns!r} should be a list of column names, not a str.")
        if columns is not None:
            columns = list(columns)
            if not columns:
                raise ValueError("columns=[] should name at least one feature column.")
            for name in (id_column, weight_column):
                if name is not None and name in columns:
                    raise ValueError(
                        f"column {name!r} is both a feature and the id or weight column."
                    )
        self.block_rows = block_rows
        self.read_ahead = read_ahead
        self.retries = retries
        self.id_column = id_column
        self.weight_column = weight_column
        self.filters = filters
        self.plan = plan
        self.storage_options = storage_options
        self.persist = persist
        self._kept: list[Batch] | None = None
        self._keep_budget: float | None = None  # bytes; None until the first pass decides
        self._filter = as_expression(filters)

        self._filesystem, self._paths, self.files = resolve_paths(path, storage_options or {})
        footers = []
        for index, file_path in enumerate(self._paths):
            footer = self._call(
                index,
                _read_metadata,
                self._filesystem,
                file_path,
                problem="cannot be read as Parquet (corrupt or not a Parquet file)",
            )
            if footer is None:
                raise DataError("is empty (0 bytes); expected a Parquet file", self.files[index])
            footers.append(footer)
        schemas = [footer.schema.to_arrow_schema() for footer in footers]
        categorical = [] if plan is None else [s.name for s in plan.columns if s.kind != "numeric"]
        self.columns = check_schemas(
            self.files, schemas, columns, id_column, weight_column, categorical
        )
        self.n_features = len(self.columns) if plan is None else plan.n_features
        if self._filter is not None:
            check_filter(self._filter, schemas[0], self.files[0])
        self._read_columns = list(
            dict.fromkeys([*self.columns, *(c for c in (id_column, weight_column) if c)])
        )
        # Bytes an id takes in a block: its width when fixed, a guess for strings and objects.
        self._id_bytes = 0
        if id_column is not None:
            id_type = schemas[0].field(id_column).type
            fixed = pa.types.is_integer(id_type) or pa.types.is_floating(id_type)
            self._id_bytes = id_type.bit_width // 8 if fixed else 64
        self._file_rows = np.array([footer.num_rows for footer in footers], dtype=np.int64)
        self._group_rows = [
            np.array([footer.row_group(g).num_rows for g in range(footer.num_row_groups)])
            for footer in footers
        ]
        self._metadata_rows = int(self._file_rows.sum())
        if self._metadata_rows == 0:
            where = self.files[0] if len(self.files) == 1 else describe_path(path)
            raise DataError(
                f"{len(self.files)} file(s) with no rows; expected at least one row", where
            )
        self._n_samples = None if self._filter is not None else self._metadata_rows

    def __repr__(self) -> str:
        """Say what is read, from how many files."""
        return (
            f"ParquetSource({len(self.files)} file(s), n_features={self.n_features}, "
            f"block_rows={self.block_rows})"
        )

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the source without the blocks it keeps (a copy reads the files again)."""
        state = self.__dict__.copy()
        state["_kept"] = None
        return state

    @property
    def n_samples(self) -> int:
        """Rows to be read: from the footers, or counted once through ``filters``."""
        if self._n_samples is None:
            counts = [
                self._call(i, _count_rows, self._filesystem, p, self._filter)
                for i, p in enumerate(self._paths)
            ]
            if sum(counts) == 0:
                raise self._no_rows_error()
            self._n_samples = int(sum(counts))
        return self._n_samples

    def batches(self) -> Iterator[Batch]:
        """Yield the blocks in file and row order, decoded ahead in a thread.

        Yields
        ------
        Batch
            ``X`` float32 C-contiguous ``(block_rows, n_features)`` (fewer rows in the last),
            ``sample_weight`` float32 or None, ``ids`` or None.

        Raises
        ------
        DataError
            On the first NaN/inf/null feature or weight, or a file that cannot be read, as soon
            as the reader reaches it (errors of the reader thread are raised here).
        """
        if self._kept is not None:
            yield from self._kept
            return
        if self.read_ahead == 0:
            blocks = self._blocks()
        else:
            blocks = read_ahead(self._blocks, self.read_ahead, name="gpuseg-parquet-reader")
        budget = self._budget()
        if budget <= 0:
            yield from blocks
            return
        kept: list[Batch] | None = []
        held = 0
        for batch in blocks:
            if kept is not None:
                held += batch_nbytes(batch)
                if held <= budget:
                    kept.append(batch)
                else:
                    kept, self._keep_budget = None, 0  # too large: stream every pass
            yield batch
        if kept is not None:
            self._kept = kept

    @property
    def persisted(self) -> bool:
        """Whether the blocks are held in memory (see ``persist``)."""
        return self._kept is not None

    def sample(self, n_rows: int, rng: np.random.Generator) -> Batch:
        """Return ``min(n_rows, n_samples)`` distinct rows drawn uniformly, in ascending row order.

        The rows are ``sort(rng.choice(n_samples, n_rows, replace=False))``, the same as
        :class:`gpuseg.batches.ArraySource` draws. They are taken from the blocks kept in memory
        (see ``persist``); when the blocks are not kept yet but would be, a first complete pass
        keeps them (a sample touches most row groups of a large table anyway). Otherwise only
        the row groups holding the rows are read (with ``filters``, every row passing them is
        scanned once).

        Parameters
        ----------
        n_rows : int
            Rows wanted, >= 1.
        rng : numpy.random.Generator
            Drawn from once; the same state gives the same rows.

        Returns
        -------
        Batch
        """
        _check_int("n_rows", n_rows, 1)
        n_samples = self.n_samples
        if n_rows >= n_samples:
            rows = np.arange(n_samples, dtype=np.int64)
        else:
            rows = np.sort(rng.choice(n_samples, size=n_rows, replace=False))
        if self._kept is None and self._would_keep():
            for _ in self.batches():
                pass
        if self._kept is not None:
            return self._take_kept(self._kept, rows)
        block = _BlockBuilder(self, len(rows))
        if self._filter is None:
            self._take_row_groups(rows, block)
        else:
            self._take_scanned(rows, block)
        return block.finish()

    def _budget(self) -> float:
        """Bytes of blocks this source may keep, decided when it is first needed."""
        if self._keep_budget is None:
            self._keep_budget = _keep_budget(self.persist)
        return self._keep_budget

    def _would_keep(self) -> bool:
        """Whether a first pass is expected to keep the blocks (estimated from the row count)."""
        row_bytes = 4 * self.n_features + self._id_bytes
        row_bytes += 4 if self.weight_column is not None else 0
        return self.n_samples * row_bytes <= self._budget()

    def _take_kept(self, kept: list[Batch], rows: np.ndarray) -> Batch:
        """The given rows (ascending) from the blocks kept in memory."""
        starts = np.arange(len(kept) + 1) * self.block_rows
        bounds = np.searchsorted(rows, starts)
        pieces = [
            take(kept[b], rows[lo:hi] - starts[b])
            for b, (lo, hi) in enumerate(itertools.pairwise(bounds))
            if lo < hi
        ]
        return concatenate(pieces, self.n_features)

    # -- reading ------------------------------------------------------------------------------

    def _blocks(self) -> Iterator[Batch]:
        """Cut the record batches of all files into blocks of ``block_rows`` (no read-ahead)."""
        capacity = min(self.block_rows, self._metadata_rows)
        block = _BlockBuilder(self, capacity)
        n_read = 0
        for index in range(len(self._paths)):
            file_row = 0
            for record_batch in self._scan(index):
                start, n = 0, record_batch.num_rows
                while start < n:
                    take = min(capacity - block.size, n - start)
                    block.add(record_batch.slice(start, take), index, file_row + start)
                    start += take
                    if block.size == capacity:
                        yield block.finish()
                        block = _BlockBuilder(self, capacity)
                file_row += n
                n_read += n
        if block.size:
            yield block.finish()
        if n_read == 0:
            raise self._no_rows_error()

    def _scan(self, index: int) -> Iterator[pa.RecordBatch]:
        """Record batches of one file, resuming after the rows already given when a read fails."""
        given, failures = 0, 0
        while True:
            skip = given
            try:
                for record_batch in _scan_file(
                    self._filesystem,
                    self._paths[index],
                    self._read_columns,
                    self._filter,
                    _SCAN_BATCH_ROWS,
                ):
                    if skip >= record_batch.num_rows:
                        skip -= record_batch.num_rows
                        continue
                    given += record_batch.num_rows - skip
                    yield record_batch.slice(skip)
                    skip = 0
                return
            except OSError as exc:
                failures += 1
                self._after_failure(index, exc, failures)
            except ARROW_DATA_ERRORS as exc:
                raise DataError(f"could not be read: {exc}", self.files[index]) from exc

    def _take_row_groups(self, rows: np.ndarray, block: _BlockBuilder) -> None:
        """Add the given global rows to ``block``, reading only the row groups that hold them."""
        file_starts = np.concatenate([[0], np.cumsum(self._file_rows)])
        for index in range(len(self._paths)):
            lo, hi = np.searchsorted(rows, file_starts[index : index + 2])
            if lo == hi:
                continue
            in_file = rows[lo:hi] - file_starts[index]
            group_starts = np.concatenate([[0], np.cumsum(self._group_rows[index])])
            groups = np.searchsorted(group_starts, in_file, side="right") - 1
            wanted = np.unique(groups)
            # Offsets of the rows inside the table of the wanted groups laid end to end.
            read_starts = np.concatenate([[0], np.cumsum(self._group_rows[index][wanted])])
            offsets = in_file - group_starts[groups] + read_starts[np.searchsorted(wanted, groups)]
            table = self._call(
                index,
                _read_row_groups,
                self._filesystem,
                self._paths[index],
                wanted.tolist(),
                self._read_columns,
            )
            block.add(table.take(pa.array(offsets)), index, in_file)

    def _take_scanned(self, rows: np.ndarray, block: _BlockBuilder) -> None:
        """Add the given rows (numbered among the rows passing ``filters``) to ``block``."""
        seen = 0
        for index in range(len(self._paths)):
            file_row = 0
            for record_batch in self._scan(index):
                n = record_batch.num_rows
                lo, hi = np.searchsorted(rows, [seen, seen + n])
                if lo < hi:
                    local = rows[lo:hi] - seen
                    block.add(record_batch.take(pa.array(local)), index, file_row + local)
                seen += n
                file_row += n
                if hi == len(rows):
                    return

    def _call(
        self, index: int, read: Callable[..., Any], *args: Any, problem: str = "could not be read"
    ) -> Any:
        """Run one read of file ``index``, trying again on ``OSError`` up to ``retries`` times."""
        failures = 0
        while True:
            try:
                return read(*args)
            except OSError as exc:  # noqa: PERF203 (a retry loop: the try is the point)
                failures += 1
                self._after_failure(index, exc, failures)
            except ARROW_DATA_ERRORS as exc:
                raise DataError(f"{problem}: {exc}", self.files[index]) from exc

    def _after_failure(self, index: int, exc: OSError, failures: int) -> None:
        """Wait before the next try, or give up with a DataError after ``retries`` retries."""
        if failures > self.retries:
            raise DataError(
                f"could not be read after {failures} attempt(s): {exc}", self.files[index]
            ) from exc
        time.sleep(_RETRY_DELAY_S * 2 ** (failures - 1))

    def _no_rows_error(self) -> DataError:
        """The error for data where no row is left to read."""
        where = self.files[0] if len(self.files) == 1 else f"{len(self.files)} files"
        return DataError(f"no row passes filters {self._filter}; expected at least one row", where)


class _BlockBuilder:
    """Fills one preallocated float32 block from Arrow record batches or tables, validating them."""

    def __init__(self, source: ParquetSource, capacity: int) -> None:
        self.source = source
        self.X = np.empty((capacity, source.n_features), dtype=np.float32)
        self.weights = None
        if source.weight_column is not None:
            self.weights = np.empty(capacity, dtype=np.float32)
        self.ids: list[np.ndarray] = []
        self.size = 0

    def add(self, data: pa.RecordBatch | pa.Table, index: int, rows: int | np.ndarray) -> None:
        """Append ``data`` (rows of file ``index``; ``rows``: its first row number, or all)."""
        source, n, at = self.source, data.num_rows, self.size
        _fill_features(self.X[at : at + n], data, source, index, rows)
        if self.weights is not None:
            name = source.weight_column
            weights = self.weights[at : at + n]
            weights[:] = _to_float32(data.column(name))
            bad = ~(np.isfinite(weights) & (weights >= 0))
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise _bad_value(data, name, weights[r], r, index, rows, source.files, ">= 0 ")
        if source.id_column is not None:
            self.ids.append(data.column(source.id_column).to_numpy(zero_copy_only=False))
        self.size += n

    def finish(self) -> Batch:
        """The block so far, trimmed to its rows (a copy when it is shorter than its buffer)."""
        X, weights = self.X, self.weights
        if self.size < len(X):
            X = X[: self.size].copy()
            weights = None if weights is None else weights[: self.size].copy()
        ids = None
        if self.source.id_column is not None:
            ids = self.ids[0] if len(self.ids) == 1 else np.concatenate(self.ids)
        return Batch(X, weights, ids)


def _fill_features(
    out: np.ndarray,
    data: pa.RecordBatch | pa.Table,
    source: ParquetSource,
    index: int,
    rows: int | np.ndarray,
) -> None:
    """Write the float32 features of ``data`` (rows of file ``index``) into ``out``.

    Without a plan the feature columns are cast to float32 as they are; with one, ``out`` is
    ``plan.transform(data)``. Either way a bad value raises a DataError naming file and row.
    """
    if source.plan is not None:
        out[:] = source.plan.transform(data, rows=rows, path=source.files[index])
        return
    for j, name in enumerate(source.columns):
        out[:, j] = _to_float32(data.column(name))
    if not np.isfinite(out).all():
        bad = ~np.isfinite(out)
        r = int(np.flatnonzero(bad.any(axis=1))[0])
        j = int(np.flatnonzero(bad[r])[0])
        raise _bad_value(data, source.columns[j], out[r, j], r, index, rows, source.files)


def _plan_columns(plan: FeaturePlan, columns: Sequence[str] | None) -> list[str]:
    """The columns a fitted plan reads; ValueError when ``columns`` is also given."""
    if columns is not None:
        raise ValueError(
            f"columns={columns!r} and plan were both given; the plan names its input columns."
        )
    if not plan.is_fitted:
        raise ValueError("plan is not fitted; call plan.fit(data) before passing it.")
    return plan.input_columns


def _bad_value(
    data: pa.RecordBatch | pa.Table,
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


def _to_float32(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric Arrow column as float32, nulls as NaN (ints beyond 2**24 round, as in NumPy)."""
    return pc.cast(values, pa.float32(), safe=False).to_numpy(zero_copy_only=False)


# -- reads: module functions, so that tests can make them fail -------------------------------------


def _scan_file(
    filesystem: pafs.FileSystem,
    path: str,
    columns: list[str],
    filter: ds.Expression | None,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """Record batches of one Parquet file, in row order, filtered."""
    dataset = ds.dataset(path, filesystem=filesystem, format="parquet")
    # Little read-ahead inside pyarrow: the reader thread already overlaps decoding and compute.
    yield from dataset.to_batches(
        columns=columns,
        filter=filter,
        batch_size=batch_rows,
        batch_readahead=1,
        fragment_readahead=1,
    )


def _read_row_groups(
    filesystem: pafs.FileSystem, path: str, groups: list[int], columns: list[str]
) -> pa.Table:
    """The given row groups of one Parquet file, laid end to end."""
    with filesystem.open_input_file(path) as f:
        return pq.ParquetFile(f).read_row_groups(groups, columns=columns)


def _read_metadata(filesystem: pafs.FileSystem, path: str) -> pq.FileMetaData | None:
    """The footer of one Parquet file (no data read), or None for a file of 0 bytes."""
    with filesystem.open_input_file(path) as f:
        if f.size() == 0:
            return None
        return pq.read_metadata(f)


def _count_rows(filesystem: pafs.FileSystem, path: str, filter: ds.Expression) -> int:
    """Rows of one Parquet file passing ``filter`` (reads only the filtered columns)."""
    return ds.dataset(path, filesystem=filesystem, format="parquet").count_rows(filter=filter)


def batch_nbytes(batch: Batch) -> int:
    """Bytes a block holds: its arrays, and for object ids (strings) their Python objects too."""
    total = batch.X.nbytes
    if batch.sample_weight is not None:
        total += batch.sample_weight.nbytes
    if batch.ids is not None:
        total += batch.ids.nbytes
        if batch.ids.dtype == object and len(batch.ids):
            some = batch.ids[:: max(1, len(batch.ids) // 1024)]
            total += len(batch.ids) * sum(map(sys.getsizeof, some)) // len(some)
    return total


def _keep_budget(persist: bool | str) -> float:
    """Bytes of blocks a source may keep: none, all, or half the memory available now."""
    if persist == "auto":
        return 0.5 * available_memory()
    return float("inf") if persist else 0.0


def available_memory() -> int:
    """Bytes of memory available to start new work: ``MemAvailable`` of ``/proc/meminfo`` on
    Linux, else the physical memory, else 0 (unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


def _check_int(name: str, value: Any, low: int) -> None:
    """Raise ValueError unless ``value`` is an int >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} should be an integer >= {low}.")
