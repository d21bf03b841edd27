"""How a block of rows is cut into chunks, and the per-row helpers both CPU paths share.

The layout depends only on the block's shape and the number of centres, never on the number of
threads, so the same block gives bitwise-identical totals on any machine and any thread count.
Inside a chunk, the kernels keep a tile's running nearest and runner-up centre in small scratch
arrays laid out ``(2, tile_rows)`` (distances and labels), rows innermost, so that updating them
vectorises across rows (numba leaves the SLP vectoriser off, so loops over a handful of centres or
features would otherwise stay scalar).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gpuseg.kernels.types import empty_aligned

# Keeps every chunk's partial sums together under this many bytes, so large k x n_features does
# not multiply memory by the chunk count.
_PARTIALS_BUDGET_BYTES = 32 * 2**20
_MAX_CHUNKS = 256
_MIN_ROWS_PER_CHUNK = 2048
# Chunks start on a multiple of this many rows, so that a tile of 16 int32/float32 outputs fills
# one 64-byte line when the output starts on one.
_CHUNK_ROW_MULTIPLE = 16
# Per-row outputs of blocks at least this long are written with non-temporal stores: they would
# not stay in cache anyway, and streaming them skips reading their lines in before writing.
STREAMING_MIN_ROWS = 1 << 18

# Reassociation lets LLVM vectorise the distance loops; no-NaN/no-inf flags are left out on purpose
# so that an infinite distance compares as expected.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


def chunk_layout(
    n_samples: int, n_clusters: int, n_features: int, n_groups: int = 1
) -> tuple[int, int]:
    """Return ``(n_chunks, rows_per_chunk)`` for a block of ``n_samples`` rows whose chunks each
    keep ``n_groups`` copies of the per-centre totals."""
    partial_bytes = 8 * n_groups * n_clusters * (n_features + 1)
    max_chunks = max(1, min(_MAX_CHUNKS, _PARTIALS_BUDGET_BYTES // partial_bytes))
    rows_per_chunk = max(_MIN_ROWS_PER_CHUNK, math.ceil(n_samples / max_chunks))
    rows_per_chunk = -(-rows_per_chunk // _CHUNK_ROW_MULTIPLE) * _CHUNK_ROW_MULTIPLE
    n_chunks = max(1, math.ceil(n_samples / rows_per_chunk))
    return n_chunks, rows_per_chunk


def streams_outputs(outputs: tuple[np.ndarray, ...]) -> bool:
    """Whether a kernel writes these per-row outputs with non-temporal stores.

    Only long outputs that all start on a 64-byte boundary (as :meth:`Assignment.empty` allocates
    them), so that each tile's stores fill whole cache lines.
    """
    return len(outputs[0]) >= STREAMING_MIN_ROWS and all(a.ctypes.data % 64 == 0 for a in outputs)


@numba.njit(inline="always")
def first_distance(d, t, tile_d, tile_j):
    """Start row ``t``'s nearest (``[0]``) at centre 0 and its runner-up (``[1]``) at none."""
    tile_d[0, t] = d
    tile_j[0, t] = 0
    tile_d[1, t] = np.inf
    tile_j[1, t] = -1


@numba.njit(inline="always")
def fold_distance(d, j, t, tile_d, tile_j):
    """Fold distance ``d`` of centre ``j >= 1`` into row ``t``'s running nearest and runner-up.

    Branch-free, so the loop over a tile's rows vectorises. Centres are folded in increasing ``j``,
    so ties keep the lower index; a NaN distance never compares below and is never picked.
    """
    best_d = tile_d[0, t]
    best_j = tile_j[0, t]
    second_d = tile_d[1, t]
    second_j = tile_j[1, t]
    below_best = d < best_d
    below_second = d < second_d
    tile_d[1, t] = best_d if below_best else (d if below_second else second_d)
    tile_j[1, t] = best_j if below_best else (j if below_second else second_j)
    tile_d[0, t] = d if below_best else best_d
    tile_j[0, t] = j if below_best else best_j


@numba.njit(inline="always")
def store_tile(
    start, n_rows, tile_d, tile_j, labels, distances, second_labels, second_distances, runner_up
):  # fmt: skip
    """Copy a tile's nearest (and runner-up, when kept) into rows ``start:start + n_rows``."""
    labels_out = labels[start : start + n_rows]
    distances_out = distances[start : start + n_rows]
    second_labels_out = second_labels[start : start + n_rows]
    second_distances_out = second_distances[start : start + n_rows]
    for t in range(n_rows):
        labels_out[t] = tile_j[0, t]
        distances_out[t] = tile_d[0, t]
        if runner_up:
            second_labels_out[t] = tile_j[1, t]
            second_distances_out[t] = tile_d[1, t]


@numba.njit(inline="always")
def accumulate_row(X, i, w, label, dist, sums, weights):
    """Add row ``i`` with weight ``w`` to centre ``label``'s float64 sums; return ``w * dist``."""
    wf = np.float64(w)
    weights[label] += wf
    row = X[i]
    sums_row = sums[label]
    for f in range(row.shape[0]):
        sums_row[f] += wf * row[f]
    return wf * dist


def aligned_zeros(shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """Zeros whose data starts on a 64-byte boundary (a cache line, an AVX-512 vector)."""
    array = empty_aligned(shape, dtype)
    array.fill(0)
    return array


def empty_partials(n_chunks: int, n_clusters: int, n_features: int):
    """Allocate the per-chunk float64 accumulators ``(sums, weights, inertia)``, 64-byte aligned."""
    return (
        aligned_zeros((n_chunks, n_clusters, n_features)),
        aligned_zeros((n_chunks, n_clusters)),
        aligned_zeros((n_chunks,)),
    )
