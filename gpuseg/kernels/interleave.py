"""Columns interleaved into the rows of a float32 block, as a Parquet reader fills its blocks.

``interleave_columns(out, columns)`` writes ``out[:, j] = columns[j]``. Copying column by column
writes every row's cache line once per column; here tiles of 16 rows by 16 columns are transposed
in registers (:func:`gpuseg.kernels._simd.interleave_tile`), so each value is read once and
written once. The kernel is compiled once per column count and releases the GIL, so reader
threads fill their blocks at the same time. CPU only: it serves the host side of every device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from gpuseg.kernels._simd import LANES, interleave_tile, source_digest

_KERNELS: dict[int, numba.core.registry.CPUDispatcher] = {}

_INLINED_SOURCE_DIGEST = source_digest("_simd.py")


def _make_interleave(n_columns: int):
    """Compile the interleave of ``n_columns`` columns (a constant of the compiled code)."""
    inlined_source = _INLINED_SOURCE_DIGEST

    @numba.njit(nogil=True, cache=True)
    def _interleave(out, addresses):
        inlined_source  # noqa: B018  (a closure cell: part of numba's cache key)
        for tile in range(out.shape[0] // LANES):
            interleave_tile(out, addresses, tile * LANES, n_columns)

    return _interleave


def interleave_columns(out: np.ndarray, columns: Sequence[np.ndarray]) -> None:
    """Write ``columns[j]`` into ``out[:, j]`` for every column.

    Parameters
    ----------
    out : ndarray of float32, shape (n_rows, n_columns)
        The block, C-contiguous; written.
    columns : sequence of ndarray of float32, each of shape (n_rows,)
        The columns, each contiguous (any alignment).

    Examples
    --------
    >>> out = np.empty((3, 2), dtype=np.float32)
    >>> interleave_columns(out, [np.arange(3, dtype=np.float32), np.ones(3, dtype=np.float32)])
    >>> out.tolist()
    [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]
    """
    n_rows, n_columns = out.shape
    if out.dtype != np.float32 or not out.flags.c_contiguous or len(columns) != n_columns:
        raise ValueError(
            f"out must be a C-contiguous float32 array with one column per input; got "
            f"{out.dtype} {out.shape} for {len(columns)} column(s)."
        )
    for j, column in enumerate(columns):
        if column.dtype != np.float32 or column.shape != (n_rows,) or not column.flags.c_contiguous:
            raise ValueError(
                f"columns[{j}] must be a contiguous float32 array of shape ({n_rows},); got "
                f"{column.dtype} {column.shape}."
            )
    n_tiled = n_rows - n_rows % LANES
    if n_tiled:
        kernel = _KERNELS.get(n_columns)
        if kernel is None:
            kernel = _KERNELS[n_columns] = _make_interleave(n_columns)
        # The columns stay referenced by ``columns`` while the kernel reads their addresses.
        kernel(out, np.array([column.ctypes.data for column in columns], dtype=np.int64))
    for j, column in enumerate(columns):
        out[n_tiled:, j] = column[n_tiled:]
