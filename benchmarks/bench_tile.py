"""Time the direct kernel's work on one 16-row tile, with the data in cache, on one thread.

Run ``python benchmarks/bench_tile.py [--features 4 8 12 16 32] [--clusters 8]``. For each row
width it loops, inside one compiled function, over the tiles of a 2,048-row block (small enough
to stay in L2) and reports the best nanoseconds per tile of 16 rows, over ``--repeats`` timings:

- ``nearest``: the transposition, the distances to every centre and the nearest and runner-up
  (:func:`gpuseg.kernels._simd.nearest_in_tile`);
- ``nearest_and_sums``: the same, then the tile's rows added to their centres' float64 sums
  (:func:`gpuseg.kernels._simd.accumulate_tile`), into as many copies of the sums as the
  fused kernel keeps for that many centres.

This is the kernel's arithmetic without memory, Python calls or threads: the figure to compare
kernel variants by, where a whole pass over 10M rows moves with everything else the host runs.
The sums and the tile's scratch start on 64-byte boundaries, as in the kernel (a misaligned float64
sums array alone makes the second figure swing by a third from one process to the next). Results
go to ``benchmarks/results/tile.json`` with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numba
import numpy as np

from gpuseg.kernels._layout import FASTMATH, aligned_zeros, empty_partials
from gpuseg.kernels._simd import LANES, accumulate_tile, nearest_in_tile
from gpuseg.kernels.fused import CENTER_BLOCK, padded_centers_t, sum_groups

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ROWS = 2048


def _make_loop(n_features: int):
    """A compiled loop over a block's tiles, ``reps`` times, with the sums or without."""

    @numba.njit(fastmath=FASTMATH)
    def loop(
        X, centers_t, reps, with_sums, tile_x, tile_d, tile_j, sums, weights, inertia, group_stride
    ):  # fmt: skip
        n_tiles = X.shape[0] // LANES
        unit_weight = np.ones(1, dtype=np.float32)
        check = 0
        for _ in range(reps):
            for tile in range(n_tiles):
                nearest_in_tile(
                    X, tile * LANES, centers_t, tile_x, tile_d, tile_j, n_features, CENTER_BLOCK,
                    True,
                )  # fmt: skip
                if with_sums:
                    accumulate_tile(
                        X, unit_weight, tile * LANES, tile_d, tile_j,
                        sums, weights, inertia, group_stride, n_features, False,
                    )  # fmt: skip
                check += tile_j[0, 3]
        return check

    return loop


def time_tile(n_features: int, n_clusters: int, repeats: int, seed: int) -> dict:
    """Best nanoseconds per tile, with and without the float64 sums, for one row width."""
    rng = np.random.default_rng(seed)
    X = aligned_zeros((ROWS, n_features), np.float32)
    X[:] = rng.standard_normal((ROWS, n_features))
    centers = X[rng.choice(ROWS, n_clusters, replace=False)] + np.float32(0.1)
    centers_t = padded_centers_t(centers)
    tile_x = aligned_zeros((n_features, LANES), np.float32)
    tile_d = aligned_zeros((2, LANES), np.float32)
    tile_j = aligned_zeros((2, LANES), np.int32)
    inertia = aligned_zeros((LANES,), np.float64)
    n_groups = sum_groups(n_clusters)  # copies of the sums, as the fused kernel keeps them
    sums, weights, _ = empty_partials(1, n_groups * n_clusters, n_features)
    group_stride = n_clusters if n_groups > 1 else 0
    loop = _make_loop(n_features)
    reps = max(1, 4_000_000 // (ROWS * max(n_features, 8)))
    result = {"n_features": n_features, "n_clusters": n_clusters}
    for name, with_sums in (("nearest", False), ("nearest_and_sums", True)):
        args = (
            X, centers_t, reps, with_sums, tile_x, tile_d, tile_j,
            sums[0], weights[0], inertia, group_stride,
        )  # fmt: skip
        loop(*args[:2], 1, *args[3:])  # compile outside the timer
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            loop(*args)
            best = min(best, time.perf_counter() - start)
        result[f"{name}_ns_per_tile"] = best / (reps * (ROWS // LANES)) * 1e9
    return result


def main(argv: list[str] | None = None) -> int:
    """Time every row width, print one line each, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, nargs="+", default=[4, 8, 12, 16, 32])
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "tile.json")
    args = parser.parse_args(argv)

    from _machine import machine_info

    results = []
    for n_features in args.features:
        result = time_tile(n_features, args.clusters, args.repeats, args.seed)
        results.append(result)
        print(
            f"{n_features:3d} features, {args.clusters} centres: "
            f"{result['nearest_ns_per_tile']:7.1f} ns per tile without the sums, "
            f"{result['nearest_and_sums_ns_per_tile']:7.1f} with"
        )
    about = {
        "machine": machine_info(),
        "rows": ROWS,
        "threads": 1,
        "repeats": args.repeats,
        "results": results,
    }
    args.out.write_text(json.dumps(about, indent=1))
    print(f"Results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
