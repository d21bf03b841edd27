"""What every command shares: user errors, the console, outputs written atomically, data checks."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from gpuseg.errors import DataError

NAN_POLICIES = ("error", "drop", "impute")


class CommandError(Exception):
    """A user error: the command stops with exit status 2 and this one-line message."""


@dataclass
class Console:
    """Where a command reports: results on stdout, progress and log lines on stderr.

    ``progress`` is true when stderr is a terminal: long passes then show tqdm bars with rows/s;
    otherwise each step logs one plain line when it ends.
    """

    quiet: bool = False
    progress: bool = False
    silent: bool = False

    def say(self, message: str = "") -> None:
        """A result line, on stdout (not when ``silent``: the demo reports for its steps)."""
        if not self.silent:
            print(message, flush=True)

    def log(self, message: str) -> None:
        """A progress line, on stderr (not with --quiet)."""
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def step(self, what: str, rows: int | None = None) -> Iterator[dict]:
        """Time a step and log ``what: N rows in S s (R rows/s)`` when it ends.

        The caller may set ``info["rows"]`` inside the block when the count is known only then.
        """
        info: dict[str, Any] = {"rows": rows}
        started = time.perf_counter()
        yield info
        seconds = time.perf_counter() - started
        rows = info["rows"]
        if rows:
            rate = rows / seconds if seconds > 0 else float("inf")
            self.log(f"{what}: {rows:,} rows in {seconds:.1f} s ({rate:,.0f} rows/s)")
        else:
            self.log(f"{what}: {seconds:.1f} s")


# -- outputs ---------------------------------------------------------------------------------------


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output (unless ``overwrite``) or one that cannot be written, up front.

    Called before any long work, so a job with a bad output fails in a second, not an hour.
    """
    target = Path(path)
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise CommandError(f"{target}: output already exists; pass --overwrite to replace it")
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{target.name}.probe-{uuid.uuid4().hex[:8]}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise CommandError(
            f"{target}: cannot write the output here ({exc.strerror or exc}); expected a "
            "writable directory"
        ) from None
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool, directory: bool = False):
    """Yield a temporary path beside ``path``; rename it to ``path`` only when the block succeeds.

    A failed or interrupted command leaves nothing under the final name (the temporary file or
    directory is removed), so an output that exists is complete.
    """
    target = check_output(path, overwrite)
    temporary = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    if directory:
        temporary.mkdir()
    try:
        yield temporary
        replace(temporary, target)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()


def replace(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, replacing a file or a whole directory that is there."""
    if target.is_dir() and not target.is_symlink():
        retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, retired)
        os.replace(source, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(source, target)


# -- data ------------------------------------------------------------------------------------------


def parse_columns(values: list[str] | str | None) -> list[str] | None:
    """Column lists from options: ``--columns a,b --columns c`` or a TOML list."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    names = [name.strip() for value in values for name in str(value).split(",") if name.strip()]
    return names or None


def nan_filter(columns: list[str], policy: str) -> ds.Expression | None:
    """The row filter of ``--nan drop`` (rows with a null, NaN or infinite feature are left out)."""
    if policy != "drop":
        return None
    expression = None
    for name in columns:
        finite = pc.is_finite(pc.field(name))
        expression = finite if expression is None else expression & finite
    return expression


def file_schema(files: list[str]) -> pa.Schema:
    """The Arrow schema of the first data file."""
    return ds.dataset(files[0], format="parquet").schema


def check_unique_ids(files: list[str], id_column: str, console: Console) -> int:
    """Raise a DataError naming the file and an id when ``id_column`` repeats; return the rows."""
    seen = 0
    parts = []
    for path in files:
        table = ds.dataset(path, format="parquet").to_table(columns=[id_column])
        parts.append(table.column(id_column))
        seen += table.num_rows
    if not parts:
        return 0
    ids = pa.chunked_array([c for part in parts for c in part.chunks], type=parts[0].type)
    repeats = _repeats(ids)
    if repeats is not None:
        value, n_repeated = repeats
        where = _file_of(files, parts, value)
        raise DataError(
            f"duplicated customer id {value!r} ({n_repeated:,} repeated ids in all); "
            "expected one row per customer",
            where,
            id_column,
        )
    return seen


def _repeats(ids: pa.ChunkedArray) -> tuple[Any, int] | None:
    """None when every id is distinct; else the first repeated id (in row order) and how many
    rows repeat an id seen before.

    Integer ids go through NumPy: one comparison when they ascend (as generated ids do), a sort
    otherwise; Arrow's hash count is several times slower on them. Other ids use Arrow's.
    """
    if pa.types.is_integer(ids.type) and ids.null_count == 0:
        values = ids.to_numpy()
        if len(values) < 2 or bool(np.all(values[1:] > values[:-1])):
            return None
        ordered = np.sort(values)
        again = ordered[1:] == ordered[:-1]
        if not again.any():
            return None
        repeated = np.unique(ordered[1:][again])
        first = int(np.flatnonzero(np.isin(values, repeated))[0])
        return values[first].item(), int(again.sum())
    distinct = pc.count_distinct(ids, mode="all").as_py()
    if distinct == len(ids):
        return None
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts, pc.greater(counts.field("counts"), 1))[0]
    return repeated["values"].as_py(), len(ids) - distinct


def _file_of(files: list[str], parts: list[pa.ChunkedArray], value: Any) -> str:
    """The first file holding a second copy of ``value`` (or the first copy's file)."""
    count = 0
    for path, part in zip(files, parts, strict=True):
        count += pc.sum(pc.equal(part, pa.scalar(value, part.type))).as_py() or 0
        if count > 1:
            return path
    return files[0]


def default_id_column(schema: pa.Schema, requested: str | None) -> str | None:
    """The id column: the one asked for, else ``customer_id`` when the data has it."""
    if requested:
        return requested
    return "customer_id" if "customer_id" in schema.names else None
