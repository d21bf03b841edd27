"""What a benchmark ran on: CPU, memory, OS, library versions, BLAS, and the memory read rate."""

from __future__ import annotations

import functools
import os
import platform
import resource
import subprocess
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

# Distribution names whose versions every result records.
LIBRARIES = ("numpy", "numba", "scikit-learn", "faiss-cpu", "dask", "dask-ml", "threadpoolctl")


def machine_info() -> dict:
    """Describe this machine and software stack as a JSON-ready dict."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {name: _version(name) for name in (*LIBRARIES, "gpuseg")},
        "gpuseg_commit": _git_commit(),
        "numba_threads": _numba_threads(),
        "thread_env": {
            name: os.environ[name]
            for name in (
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS",
            )
            if name in os.environ
        },
        "threadpools": _threadpools(),
    }


def cpu_model() -> str:
    """The CPU's marketing name, or the best the platform module knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    if platform.system() == "Darwin":
        out = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    return platform.processor() or platform.machine()


def read_seconds(X: np.ndarray) -> float:
    """Seconds one numba parallel sum takes to read ``X`` once (compiled beforehand).

    The memory read rate the fused pass is measured against: one read of the data per pass.
    """
    flat = np.ascontiguousarray(X).reshape(-1)
    kernel = _parallel_sum_kernel()
    kernel(flat[: min(flat.size, 4096)])  # compile outside the timer
    start = time.perf_counter()
    kernel(flat)
    return time.perf_counter() - start


@functools.cache
def _parallel_sum_kernel():
    """A numba parallel sum, compiled on first use so that importing this module stays cheap."""
    import numba

    @numba.njit(parallel=True, fastmath=True)
    def parallel_sum(flat):
        # A prange reduction with fastmath vectorises (about numpy's single-thread sum per core);
        # hand-written per-block loops did not, and measured the adder instead of the memory.
        total = flat.dtype.type(0)
        for i in numba.prange(flat.size):
            total += flat[i]
        return total

    return parallel_sum


def _physical_cores() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.cpu_count(logical=False)


def _memory_gib() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return round(psutil.virtual_memory().total / 2**30, 1)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    out = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=12"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent,
    )
    return out.stdout.strip() or None


def _numba_threads() -> int:
    try:
        import numba
    except ImportError:
        return os.cpu_count() or 1
    return numba.config.NUMBA_NUM_THREADS


def _threadpools() -> list[dict]:
    """BLAS and OpenMP pools loaded by numpy, scikit-learn and faiss (threadpoolctl's view)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    import sklearn.cluster  # noqa: F401  (loads scikit-learn's OpenMP runtime)

    try:
        import faiss  # noqa: F401
    except ImportError:
        pass
    keys = (
        "user_api",
        "internal_api",
        "prefix",
        "version",
        "num_threads",
        "architecture",
        "threading_layer",
        "filepath",
    )
    return [{key: pool[key] for key in keys if key in pool} for pool in threadpool_info()]


def own_peak_rss_gib() -> float:
    """This process's peak RSS since it started, in GiB.

    ``ru_maxrss`` of a child also counts its parent's peak before the fork, so Linux's ``VmHWM``
    (the high-water mark of this program's memory, reset by exec) is read where there is one.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
