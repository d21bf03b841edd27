"""Job files: the options of a ``gpuseg`` command in TOML, for scheduled jobs.

A job file holds the same options as the command line, spelled as their long names with dashes or
underscores. Keys at the top level are shared: each command takes those it has and ignores the
rest. A table named after a command applies to that command only (an option it does not have is an
error) and wins over the top level; options given on the command line win over both::

    # job.toml
    seed = 7
    overwrite = true

    [rfm]
    transactions = "s3://shop/log/2024-06/"
    output = "features/2024-06.parquet"
    as-of = "2024-07-01"

    [fit]
    data = "features/2024-06.parquet"
    k = 6
    output = "models/2024-06"
    columns = ["recency_days", "frequency", "monetary_total"]

Positional arguments (``data``, ``model``...) may be given by name too, so that a scheduled job is
one line: ``gpuseg fit --config job.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gpuseg.errors import DataError

try:  # Python 3.11+
    import tomllib as _toml
except ImportError:  # pragma: no cover - Python 3.10 with the tomli backport installed
    try:
        import tomli as _toml
    except ImportError:
        _toml = None


def load_config(path: str | os.PathLike, command: str) -> dict[str, Any]:
    """Read a job file and return the options for ``command``, keys with underscores.

    Parameters
    ----------
    path : path
        The TOML file.
    command : str
        The command being run (``"fit"``, ``"choose-k"``...); its table's keys override the
        top-level keys.

    Returns
    -------
    dict
        Option names (dashes turned into underscores) to values, as TOML typed them.

    Raises
    ------
    DataError
        If the file is missing, is not valid TOML, or TOML cannot be read on this Python.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> job = pathlib.Path(tempfile.mkdtemp()) / "job.toml"
    >>> _ = job.write_text('seed = 1\\n[fit]\\nk = 4\\nseed = 2\\n[assign]\\nk = 9\\n')
    >>> load_config(job, "fit")
    {'seed': 2, 'k': 4}
    """
    path = Path(path)
    if _toml is None:  # pragma: no cover - only on Python 3.10 without tomli
        raise DataError(
            "cannot read TOML on this Python; expected Python >= 3.11 or the 'tomli' package "
            "(pip install tomli)",
            str(path),
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataError("no such job file; expected a TOML file", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot be read as a UTF-8 TOML file: {exc}", str(path)) from None
    try:
        document = _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        raise DataError(f"is not valid TOML: {exc}", str(path)) from None
    shared, own = _split(document, command)
    return {**shared, **own}


def load_job(path: str | os.PathLike, command: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a job file and return ``(shared, own)`` options for ``command``.

    ``shared`` are the top-level keys, meant for every command (a command ignores those it does
    not take); ``own`` are the keys of the command's table, which must all be its options.
    Errors are those of :func:`load_config`.
    """
    load_config(path, command)  # validates the file and reports its errors
    document = _toml.loads(Path(path).read_bytes().decode("utf-8"))
    return _split(document, command)


def _split(document: dict[str, Any], command: str) -> tuple[dict[str, Any], dict[str, Any]]:
    shared = {_option_name(k): v for k, v in document.items() if not isinstance(v, dict)}
    section = document.get(command, document.get(command.replace("-", "_"), {}))
    if not isinstance(section, dict):
        section = {}
    return shared, {_option_name(key): value for key, value in section.items()}


def _option_name(key: str) -> str:
    """The argparse destination of a key: ``as-of`` and ``as_of`` are both ``as_of``."""
    return key.strip().lstrip("-").replace("-", "_")
