"""Time the CPU fused pass (direct kernel and BLAS path) against the machine's memory read rate.

Run ``python benchmarks/bench_kernels.py [--repeats N] [--sizes 10000000,16,8 ...]``. For each size
it checks both paths against each other on a slice, then prints the median milliseconds per pass and
the rate at which the pass reads ``X`` (GB/s), with output buffers reused between passes as the
estimator's loop does. The reference is a numba parallel sum over the first size's array: the rate
a pass that only reads the data once could reach on this machine. Each line also gives the median
CPU time per pass (all threads together), which other jobs on a shared machine disturb less than
wall time; ``NUMBA_NUM_THREADS=1`` gives the single-thread figure.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from gpuseg.kernels import assign_accumulate_direct, assign_accumulate_gemm, uses_gemm
from gpuseg.kernels.types import Assignment

DEFAULT_SIZES = [
    (10_000_000, 16, 8),
    (2_000_000, 16, 32),
    (1_000_000, 32, 64),
    (1_000_000, 32, 256),
    (200_000, 64, 1024),
]


@numba.njit(parallel=True, fastmath=True)
def _parallel_sum(X):
    n_chunks = 256
    rows = (X.shape[0] + n_chunks - 1) // n_chunks
    partial = np.zeros(n_chunks)
    for chunk in numba.prange(n_chunks):
        acc = np.float32(0.0)
        for i in range(chunk * rows, min(X.shape[0], (chunk + 1) * rows)):
            for f in range(X.shape[1]):
                acc += X[i, f]
        partial[chunk] = acc
    return partial.sum()


def median_ms(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU time of ``fn()`` in milliseconds, after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return 1e3 * float(np.median(wall)), 1e3 * float(np.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", nargs="*", default=None, help="n,d,k triples")
    parser.add_argument("--skip-slow", action="store_true", help="skip a path over 2 s per pass")
    args = parser.parse_args()
    sizes = [tuple(map(int, s.split(","))) for s in args.sizes] if args.sizes else DEFAULT_SIZES
    rng = np.random.default_rng(0)
    print(f"threads={numba.get_num_threads()}")

    start = time.perf_counter()
    assign_accumulate_direct(np.zeros((4, 3), np.float32), np.ones((2, 3), np.float32))
    elapsed = time.perf_counter() - start
    print(f"direct kernel first call (compile, or load from cache): {elapsed:.1f} s")

    for index, (n, d, k) in enumerate(sizes):
        X = (rng.standard_normal((n, d)) * rng.uniform(0.5, 4.0, d)).astype(np.float32)
        centers = X[rng.choice(n, k, replace=False)].copy()
        if index == 0:
            ms, cpu_ms = median_ms(lambda X=X: _parallel_sum(X), args.repeats)
            rate = X.nbytes / ms / 1e6
            print(
                f"memory read (numba parallel sum, {n}x{d}): {ms:7.1f} ms {rate:6.1f} GB/s "
                f"(cpu {cpu_ms:.1f} ms)"
            )
        check = slice(0, min(n, 50_000))
        a_direct, _ = assign_accumulate_direct(X[check], centers)
        a_gemm, _ = assign_accumulate_gemm(X[check], centers)
        agree = np.mean(a_direct.labels == a_gemm.labels)
        out = Assignment.empty(n)
        chosen = "gemm" if uses_gemm(k, d) else "direct"
        paths = (("direct", assign_accumulate_direct), ("gemm", assign_accumulate_gemm))
        for name, kernel in paths:
            if args.skip_slow:
                start = time.perf_counter()
                kernel(X, centers, out=out)
                if time.perf_counter() - start > 2.0:
                    print(f"n={n:>9} d={d:>3} k={k:>5} {name:>6}: skipped (> 2 s)")
                    continue
            ms, cpu_ms = median_ms(
                lambda kernel=kernel, X=X, centers=centers, out=out: kernel(X, centers, out=out),
                args.repeats,
            )
            mark = "*" if name == chosen else " "
            print(
                f"n={n:>9} d={d:>3} k={k:>5} {name:>6}{mark}: {ms:8.1f} ms/pass "
                f"{X.nbytes / ms / 1e6:6.2f} GB/s  cpu {cpu_ms:8.1f} ms  (labels agree {agree:.5f})"
            )
    print("* = path chosen by uses_gemm")


if __name__ == "__main__":
    main()
