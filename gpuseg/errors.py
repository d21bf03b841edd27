"""Errors gpuseg raises about the data it is given, as opposed to the parameters it is called with.

The CLI prints ``str(error)`` on one line and exits with status 2, so every message says where the
problem is (file, column, row) and what was expected.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: a missing or unreadable file, a missing or non-numeric column, NaN...

    Parameters
    ----------
    problem : str
        What is wrong and what was expected, e.g.
        ``"NaN at row 17; expected finite numbers (drop or impute missing values first)"``.
    path : str, optional
        The file (or path, glob, URL) the problem is in.
    column : str, optional
        The column the problem is in.

    Attributes
    ----------
    problem : str
        The message without the location prefix.
    path : str or None
        The file the problem is in, when there is one.
    column : str or None
        The column the problem is in, when there is one.

    Examples
    --------
    >>> str(DataError("has type string; expected a numeric column", path="a.parquet", column="x"))
    "a.parquet: column 'x': has type string; expected a numeric column"
    """

    def __init__(self, problem: str, path: str | None = None, column: str | None = None) -> None:
        self.problem = " ".join(str(problem).split())
        self.path = None if path is None else str(path)
        self.column = None if column is None else str(column)
        super().__init__(_format(self.problem, self.path, self.column))

    def __reduce__(self):
        """Rebuild from the parts, so path and column survive pickling (Dask ships errors)."""
        return (type(self), (self.problem, self.path, self.column))


def _format(problem: str, path: str | None, column: str | None) -> str:
    """Join the location and the problem into the one-line message."""
    where = []
    if path is not None:
        where.append(path)
    if column is not None:
        where.append(f"column {column!r}")
    return ": ".join([*where, problem])
