"""The files of a Parquet dataset, local or behind any fsspec URL, and checks of their schemas.

A path is a file, a directory (every file under it but bookkeeping such as ``_SUCCESS``, ``.crc``
files and hidden folders, as pyarrow.dataset skips them), a glob, or a list of those, all on one
filesystem; files are taken in sorted order. Every file must hold the feature columns, numeric
and of one type across files; errors are :class:`gpuseg.errors.DataError` naming the file and
the column.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from gpuseg.errors import DataError

_GLOB_CHARS = "*?["
# Like pyarrow.dataset: _SUCCESS, _metadata, .crc files and hidden folders are not data.
_IGNORED_PREFIXES = (".", "_")
_EXPECTED_NUMERIC = "expected a numeric column (integer, float or bool)"
ARROW_DATA_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def resolve_paths(
    path: str | os.PathLike | Sequence[str | os.PathLike], storage_options: dict[str, Any]
) -> tuple[pafs.FileSystem, list[str], list[str]]:
    """The pyarrow filesystem, the sorted data file paths on it, and their names to show."""
    entries = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not entries:
        raise DataError("no path given; expected a file, a directory, a glob or a URL")
    fs = None
    found: set[str] = set()
    for entry in entries:
        entry = os.fspath(entry)
        entry_fs, root = fsspec.core.url_to_fs(entry, **storage_options)
        if fs is None:
            fs = entry_fs
        elif entry_fs != fs:
            raise ValueError(
                f"path={entry!r} is on another filesystem than {entries[0]!r}; "
                "expected all paths on one filesystem."
            )
        found.update(_expand(fs, entry, root))
    paths = sorted(found)
    if isinstance(fs, LocalFileSystem):
        return pafs.LocalFileSystem(), paths, paths
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), paths, [fs.unstrip_protocol(p) for p in paths]


def _expand(fs: fsspec.AbstractFileSystem, entry: str, root: str) -> list[str]:
    """The data files a file, directory or glob stands for."""
    if fs.isfile(root):
        return [root]
    if fs.isdir(root):
        files = [p for p in fs.find(root) if not _ignored(p[len(root) :])]
        if not files:
            raise DataError("directory holds no data files; expected Parquet files", entry)
        return files
    if any(c in root for c in _GLOB_CHARS):
        files = [p for p, info in fs.glob(root, detail=True).items() if info["type"] == "file"]
        if not files:
            raise DataError("glob matches no file; expected at least one Parquet file", entry)
        return files
    raise DataError("no such file or directory; expected a Parquet file, directory or glob", entry)


def _ignored(relative: str) -> bool:
    """Whether a path under a directory is bookkeeping (``_SUCCESS``, ``.crc``...), not data."""
    return any(part.startswith(_IGNORED_PREFIXES) for part in relative.split("/") if part)


def check_schemas(
    files: list[str],
    schemas: list[pa.Schema],
    columns: list[str] | None,
    id_column: str | None,
    weight_column: str | None,
    categorical: Sequence[str] = (),
) -> list[str]:
    """The feature columns, after checking that every file has them, numeric, of one type.

    Columns in ``categorical`` (one-hot inputs of a feature plan) may have any type.
    """
    first, reference = files[0], schemas[0]
    special = [c for c in (id_column, weight_column) if c is not None]
    if columns is None:
        features = [f.name for f in reference if is_numeric(f.type) and f.name not in special]
        if not features:
            raise DataError(f"has no numeric feature column; {_EXPECTED_NUMERIC}", first)
    else:
        features = columns
    needed = [*features, *special]
    for name in needed:
        if reference.get_field_index(name) < 0:
            raise DataError(
                f"requested column is missing; the file has {shorten(reference.names)}",
                first,
                name,
            )
    for name in [*features, *([weight_column] if weight_column is not None else [])]:
        if name in categorical:
            continue
        kind = reference.field(name).type
        if not is_numeric(kind):
            raise DataError(f"has type {kind}; {_EXPECTED_NUMERIC}", first, name)
    for path, schema in zip(files[1:], schemas[1:], strict=True):
        for name in needed:
            if schema.get_field_index(name) < 0:
                if columns is None and name in features:
                    problem = f"schemas differ: column is in {first} but not in this file"
                else:
                    problem = f"requested column is missing (it is in {first})"
                raise DataError(problem, path, name)
            kind, expected = schema.field(name).type, reference.field(name).type
            if kind != expected:
                raise DataError(
                    f"schemas differ: type {kind} here but {expected} in {first}", path, name
                )
        if columns is None:
            for field in schema:
                if is_numeric(field.type) and field.name not in needed:
                    raise DataError(
                        f"schemas differ: numeric column is in this file but not in {first}",
                        path,
                        field.name,
                    )
    return list(features)


def check_filter(expression: ds.Expression, schema: pa.Schema, path: str) -> None:
    """Raise DataError unless ``expression`` applies to ``schema`` (checked on no rows)."""
    try:
        ds.dataset(schema.empty_table()).scanner(filter=expression, columns=[]).count_rows()
    except ARROW_DATA_ERRORS as exc:
        reason = str(exc).splitlines()[0]
        raise DataError(
            f"filters {expression} do not apply to the file's columns "
            f"{shorten(schema.names)}: {reason}",
            path,
        ) from exc


def is_numeric(kind: pa.DataType) -> bool:
    """Whether a column can be a feature: integers, floats and bools."""
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def as_expression(filters: ds.Expression | list | None) -> ds.Expression | None:
    """A pyarrow expression from an expression or the DNF list form."""
    if filters is None or isinstance(filters, ds.Expression):
        return filters
    if isinstance(filters, (list, tuple)):
        return pq.filters_to_expression(list(filters))
    raise TypeError(
        f"filters={filters!r} should be a pyarrow.dataset.Expression or a list of "
        "(column, op, value) tuples."
    )


def shorten(names: list[str], limit: int = 8) -> str:
    """A readable list of column names, cut after ``limit``."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]"


def describe_path(path: Any) -> str:
    """The ``path`` argument as it should appear in a message."""
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    return ", ".join(os.fspath(p) for p in path)
