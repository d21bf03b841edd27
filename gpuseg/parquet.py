"""A batch source over Parquet files, local or behind any fsspec URL.

Files are read in sorted path order, and their rows are cut and glued into float32 blocks of
exactly ``block_rows`` rows, so the blocks (and so the centres) do not depend on how the data
happens to be split into files or row groups. A reader thread makes the next ``read_ahead``
blocks while the caller computes on the current one. Without ``filters`` it has the row groups
read and decoded on several threads (up to 4, see :func:`gpuseg.read_ahead.default_threads`),
each written straight into the block rows it fills (the footers say where its rows go); with
``filters``, or a row group of more than 4M rows, the files are scanned in order instead. Blocks
that fit in memory are kept after the first complete pass and later passes read them from there
(``persist``, as a Dask cluster keeps its partitions); otherwise memory stays bounded by about
``block_rows * (read_ahead + 2)`` rows and ``2 * threads`` decoded row groups, whatever the size
of the data.

Bad data raises :class:`gpuseg.errors.DataError` naming the file, the column and, for NaN or
infinite values, the first bad row, while the blocks are read: a streamed pass needs no separate
validation pass.
"""

from __future__ import annotations

import collections
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from gpuseg.batches import DEFAULT_BLOCK_ROWS, Batch, concatenate, take
from gpuseg.errors import DataError
from gpuseg.parquet_blocks import BlockBuilder, BlockFormat, fill_rows
from gpuseg.parquet_files import (
    ARROW_DATA_ERRORS,
    as_expression,
    check_filter,
    check_schemas,
    describe_path,
    resolve_paths,
)
from gpuseg.read_ahead import default_threads, map_ahead, read_ahead

if TYPE_CHECKING:
    from gpuseg.plan import FeaturePlan

# Record batches are decoded at most this long; blocks are assembled from them.
_SCAN_BATCH_ROWS = 1 << 16
# Row groups longer than this are not decoded whole on reader threads (memory); the pass scans them.
_MAX_PARALLEL_GROUP_ROWS = 1 << 22
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
        Blocks made ahead by the reader thread; 0 reads in the calling thread, file after file.
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
        self._block_format = BlockFormat(
            self.files, self.columns, self.n_features, plan, weight_column, id_column
        )
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
        # Kept for the reads of single row groups: parsing a wide file's footer again for every
        # row group would cost more than reading it.
        self._footers = footers
        self._file_rows = np.array([footer.num_rows for footer in footers], dtype=np.int64)
        self._group_rows = [
            np.array([footer.row_group(g).num_rows for g in range(footer.num_row_groups)])
            for footer in footers
        ]
        # First row of every row group within its file, and the file's row count last.
        self._group_starts = [np.concatenate([[0], np.cumsum(rows)]) for rows in self._group_rows]
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
        block = BlockBuilder(self._block_format, len(rows))
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
        """The blocks of one pass, in order (what the read-ahead thread runs)."""
        if self._reads_row_groups_in_parallel():
            return self._blocks_by_row_group(default_threads())
        return self._blocks_scanned()

    def _reads_row_groups_in_parallel(self) -> bool:
        """Whether a pass decodes row groups on several threads: with read-ahead, without
        ``filters`` (a row group's place among the rows then comes from the footers), and with
        no row group so long that decoding it whole would hold too much memory."""
        if self._filter is not None or self.read_ahead == 0 or default_threads() < 2:
            return False
        longest = max((int(rows.max()) for rows in self._group_rows if len(rows)), default=0)
        return longest <= _MAX_PARALLEL_GROUP_ROWS

    def _blocks_by_row_group(self, threads: int) -> Iterator[Batch]:
        """The blocks of one pass, their row groups read and decoded on ``threads`` threads.

        Row groups are taken in file and row order, and each is given the rows of the blocks it
        fills before it is read, so that the threads write straight into the blocks; a block is
        handed over once every row group it holds has been read. At most ``2 * threads`` row
        groups are decoded ahead of the block being handed over.
        """
        total = self._metadata_rows
        capacity = min(self.block_rows, total)
        # (global end row, block) of the blocks given rows and not yet handed over, in order.
        open_blocks: collections.deque[tuple[int, BlockBuilder]] = collections.deque()

        def claim_rows(n_rows: int) -> list[_Target]:
            targets, done = [], 0
            while done < n_rows:
                if not open_blocks or open_blocks[-1][1].is_full:
                    start = open_blocks[-1][0] if open_blocks else 0
                    size = min(capacity, total - start)
                    open_blocks.append((start + size, BlockBuilder(self._block_format, size)))
                block = open_blocks[-1][1]
                take = min(n_rows - done, block.capacity - block.size)
                targets.append((block, done, *block.claim(take)))
                done += take
            return targets

        def claims() -> Iterator[_GroupClaim]:
            for index, group_rows in enumerate(self._group_rows):
                starts = self._group_starts[index].tolist()
                for group, n_rows in enumerate(group_rows.tolist()):
                    yield _GroupClaim(index, group, starts[group], n_rows, claim_rows(n_rows))

        read_rows = 0
        for claim, ids in map_ahead(self._read_group, claims(), threads):
            for (block, *_), block_ids in zip(claim.targets, ids, strict=True):
                if block_ids is not None:
                    block.ids.append(block_ids)
            read_rows += claim.n_rows
            while open_blocks and open_blocks[0][0] <= read_rows:
                yield open_blocks.popleft()[1].finish()

    def _read_group(self, claim: _GroupClaim) -> tuple[_GroupClaim, list[np.ndarray | None]]:
        """Read one row group into the block rows it was given; return the ids of each part."""
        index = claim.index
        table = self._read_row_group(index, claim.group, use_threads=False)
        if table.num_rows != claim.n_rows:
            raise DataError(
                f"row group {claim.group} has {table.num_rows} rows where its footer said "
                f"{claim.n_rows}; was the file changed while it was read?",
                self.files[index],
            )
        ids = []
        for _, offset, X, weights in claim.targets:
            part = table.slice(offset, len(X))
            rows = claim.file_row + offset
            ids.append(fill_rows(self._block_format, X, weights, part, index, rows))
        return claim, ids

    def _blocks_scanned(self) -> Iterator[Batch]:
        """Cut the record batches of all files, scanned in order, into blocks of ``block_rows``."""
        capacity = min(self.block_rows, self._metadata_rows)
        block = BlockBuilder(self._block_format, capacity)
        n_read = 0
        for index in range(len(self._paths)):
            file_row = 0
            for record_batch in self._scan(index):
                start, n = 0, record_batch.num_rows
                while start < n:
                    take = min(capacity - block.size, n - start)
                    block.add(record_batch.slice(start, take), index, file_row + start)
                    start += take
                    if block.is_full:
                        yield block.finish()
                        block = BlockBuilder(self._block_format, capacity)
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

    def _take_row_groups(self, rows: np.ndarray, block: BlockBuilder) -> None:
        """Add the given global rows to ``block``, reading only the row groups that hold them.

        With read-ahead, the row groups are read on several threads, each writing its rows
        straight into their place in ``block`` (claimed in row order beforehand).
        """
        threads = default_threads() if self.read_ahead else 1
        file_starts = np.concatenate([[0], np.cumsum(self._file_rows)])

        def claims() -> Iterator[tuple]:
            for index in range(len(self._paths)):
                lo, hi = np.searchsorted(rows, file_starts[index : index + 2])
                if lo == hi:
                    continue
                in_file = rows[lo:hi] - file_starts[index]
                group_starts = self._group_starts[index]
                groups = np.searchsorted(group_starts, in_file, side="right") - 1
                bounds = np.flatnonzero(np.diff(groups)) + 1  # where the next row group starts
                for at in np.split(np.arange(len(in_file)), bounds):
                    file_rows, group = in_file[at], int(groups[at[0]])
                    offsets = file_rows - group_starts[group]
                    yield index, group, offsets, file_rows, *block.claim(len(file_rows))

        def read(claim: tuple) -> np.ndarray | None:
            index, group, offsets, file_rows, X, weights = claim
            table = self._read_row_group(index, group, use_threads=threads == 1)
            part = table.take(pa.array(offsets))
            return fill_rows(self._block_format, X, weights, part, index, file_rows)

        for ids in map_ahead(read, claims(), threads):
            if ids is not None:
                block.ids.append(ids)

    def _take_scanned(self, rows: np.ndarray, block: BlockBuilder) -> None:
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

    def _read_row_group(self, index: int, group: int, use_threads: bool) -> pa.Table:
        """Row group ``group`` of file ``index`` (its footer reused, failed reads retried)."""
        return self._call(
            index, _read_row_groups, self._filesystem, self._paths[index], [group],
            self._read_columns, use_threads, self._footers[index],
        )  # fmt: skip

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


# Block rows a row group fills: (block, offset in the group, X rows, weight rows).
_Target = tuple[BlockBuilder, int, np.ndarray, np.ndarray | None]


class _GroupClaim(NamedTuple):
    """One row group of file ``index`` and the block rows it fills, one target per block."""

    index: int
    group: int
    file_row: int
    n_rows: int
    targets: list[_Target]


def _plan_columns(plan: FeaturePlan, columns: Sequence[str] | None) -> list[str]:
    """The columns a fitted plan reads; ValueError when ``columns`` is also given."""
    if columns is not None:
        raise ValueError(
            f"columns={columns!r} and plan were both given; the plan names its input columns."
        )
    if not plan.is_fitted:
        raise ValueError("plan is not fitted; call plan.fit(data) before passing it.")
    return plan.input_columns


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
    filesystem: pafs.FileSystem,
    path: str,
    groups: list[int],
    columns: list[str],
    use_threads: bool = True,
    footer: pq.FileMetaData | None = None,
) -> pa.Table:
    """The given row groups of one Parquet file, laid end to end (decoded on Arrow's threads
    unless ``use_threads`` is False; ``footer``, the file's metadata when already read)."""
    with filesystem.open_input_file(path) as f:
        parquet_file = pq.ParquetFile(f, metadata=footer)
        return parquet_file.read_row_groups(groups, columns=columns, use_threads=use_threads)


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
