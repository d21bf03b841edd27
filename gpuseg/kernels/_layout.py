"""How a block of rows is cut into chunks whose partial sums are reduced in a fixed order.

The layout depends only on the block's shape and the number of centres, never on the number of
threads, so the same block gives bitwise-identical totals on any machine and any thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Keeps every chunk's partial sums together under this many bytes, so large k x n_features does
# not multiply memory by the chunk count.
_PARTIALS_BUDGET_BYTES = 32 * 2**20
_MAX_CHUNKS = 256
_MIN_ROWS_PER_CHUNK = 2048

# Reassociation lets LLVM vectorise the distance loops; no-NaN/no-inf flags are left out on purpose
# so that an infinite distance compares as expected.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


def chunk_layout(n_samples: int, n_clusters: int, n_features: int) -> tuple[int, int]:
    """Return ``(n_chunks, rows_per_chunk)`` for a block of ``n_samples`` rows."""
    partial_bytes = 8 * n_clusters * (n_features + 1)
    max_chunks = max(1, min(_MAX_CHUNKS, _PARTIALS_BUDGET_BYTES // partial_bytes))
    rows_per_chunk = max(_MIN_ROWS_PER_CHUNK, math.ceil(n_samples / max_chunks))
    n_chunks = max(1, math.ceil(n_samples / rows_per_chunk))
    return n_chunks, rows_per_chunk


@numba.njit(inline="always")
def update_two_smallest(d, j, best_d, best_j, second_d, second_j):
    """Fold distance ``d`` of centre ``j`` into the running nearest and runner-up."""
    if d < best_d:
        return d, j, best_d, best_j
    if d < second_d:
        return best_d, best_j, d, j
    return best_d, best_j, second_d, second_j


def empty_partials(n_chunks: int, n_clusters: int, n_features: int):
    """Allocate the per-chunk float64 accumulators ``(sums, weights, inertia)``."""
    return (
        np.zeros((n_chunks, n_clusters, n_features), dtype=np.float64),
        np.zeros((n_chunks, n_clusters), dtype=np.float64),
        np.zeros(n_chunks, dtype=np.float64),
    )
