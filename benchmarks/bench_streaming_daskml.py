"""dask-ml KMeans on the streaming benchmark's 100M x 16 Parquet files (issue 4), for comparison.

Reads the files written by ``bench_streaming.py``, persists them in memory (default threaded
scheduler), fits ``dask_ml.cluster.KMeans(8)`` and recomputes its inertia in float64; prints one
JSON line. Usage: ``python benchmarks/bench_streaming_daskml.py [DATA_DIR]``.
"""

import json
import resource
import sys
import time

import dask.dataframe as dd
import numpy as np
from dask_ml.cluster import KMeans


def main(path: str) -> dict:
    """Load, persist, fit and score; return the figures."""
    columns = [f"f{j:02d}" for j in range(16)]
    started = time.perf_counter()
    X = dd.read_parquet(path, columns=columns).to_dask_array(lengths=True).astype(np.float32)
    X = X.persist()
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    km = KMeans(n_clusters=8, random_state=0, max_iter=300, tol=1e-4).fit(X)
    fit_seconds = time.perf_counter() - started
    centers = km.cluster_centers_.astype(np.float64)
    center_norms = (centers**2).sum(1)

    def block_inertia(block):
        block = block.astype(np.float64)
        d2 = (block**2).sum(1)[:, None] - 2 * block @ centers.T + center_norms
        return np.array([np.maximum(d2.min(1), 0).sum()])

    per_block = X.map_blocks(block_inertia, chunks=(1,), drop_axis=1, dtype=np.float64)
    return {
        "tool": "dask-ml KMeans",
        "load_and_persist_seconds": load_seconds,
        "fit_seconds": fit_seconds,
        "n_iter": int(getattr(km, "n_iter_", -1)),
        "inertia_f64": float(per_block.sum().compute()),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "scheduler": "dask threaded (default), 2 cores",
        "init": "k-means||",
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "data/customers-100m")))
