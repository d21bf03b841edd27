"""Streaming benchmark (issue 4): fit k=8 on a Parquet dataset larger than comfortable in memory.

Generates once a customer-shaped dataset (:func:`gpuseg.datasets.make_customers`) as many Parquet
files, then, each in its own process so that peak memory is its own:

- ``single``: ``KMeans(8).fit(ParquetSource(dir, persist=False))``, every pass streamed block by
  block from the files in one process;
- ``single_kept``: the same with ``ParquetSource``'s default ``persist="auto"``: the first pass
  keeps the decoded blocks in memory (when they take at most half the available memory) and the
  later passes read them from there;
- ``cluster``: the same fit on a ``LocalCluster`` of 2 single-threaded worker processes through
  :class:`gpuseg.distributed.DaskSource` (partitions loaded by tasks, kept in worker memory);

and reports wall time, full passes, rows/s and the peak RSS of every process.

Usage::

    python benchmarks/bench_streaming.py --rows 100_000_000 --data data/customers-100m
    python benchmarks/bench_streaming.py --rows 2_000_000 --data /tmp/c2m --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def generate(data: Path, rows: int, n_features: int, rows_per_file: int, seed: int) -> None:
    """Write the dataset unless a complete copy of it is there (a marker file is written last);
    a folder holding data made with other settings stops the run."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from _datasets import existing_copy

    from gpuseg.datasets import make_customers

    marker = data / "_COMPLETE"
    wanted = {"rows": rows, "n_features": n_features, "rows_per_file": rows_per_file, "seed": seed}
    if existing_copy(marker, wanted) is not None:
        return
    data.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    X = make_customers(rows, n_features, random_state=seed)
    names = [f"f{j:02d}" for j in range(n_features)]
    for index, start in enumerate(range(0, rows, rows_per_file)):
        block = X[start : start + rows_per_file]
        columns = {"customer_id": np.arange(start, start + len(block), dtype=np.int64)}
        columns.update({name: block[:, j] for j, name in enumerate(names)})
        target = data / f"part-{index:05d}.parquet"
        pq.write_table(pa.table(columns), target, row_group_size=1 << 18)
    marker.write_text(json.dumps(wanted))
    print(f"generated {rows:,} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def run_single(data: Path, n_clusters: int, seed: int, persist: bool | str) -> dict:
    """Fit in this process from a ``ParquetSource(data, persist=persist)``."""
    import numpy as np
    from _machine import own_peak_rss_gib

    from gpuseg import KMeans
    from gpuseg.parquet import ParquetSource

    # Compile the kernels on a sample read by another source: the timed source starts cold.
    warm_rows = ParquetSource(data, persist=False).sample(20_000, np.random.default_rng(0)).X
    KMeans(n_clusters, random_state=seed, sample_rows=20_000).fit(warm_rows)
    started = time.perf_counter()
    source = ParquetSource(data, id_column="customer_id", persist=persist)
    km = KMeans(n_clusters, random_state=seed).fit(source)
    seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "passes": km.n_iter_,
        "inertia": km.inertia_,
        "rows_per_s": source.n_samples * km.n_iter_ / seconds,
        "peak_rss_gib": {"main": own_peak_rss_gib()},
        "persist": persist,
        "persisted": source.persisted,
    }
    if source.persisted:  # a second fit on the same source (another seed) reads only memory
        started = time.perf_counter()
        again = KMeans(n_clusters, random_state=seed + 1).fit(source)
        result["second_fit"] = {
            "seconds": time.perf_counter() - started, "passes": again.n_iter_,
            "inertia": again.inertia_, "random_state": seed + 1,
        }  # fmt: skip
    return result


def run_cluster(data: Path, n_clusters: int, seed: int, workers: int) -> dict:
    """The same fit on a LocalCluster of single-threaded worker processes."""
    import _machine
    import cloudpickle
    from _machine import own_peak_rss_gib
    from distributed import Client, LocalCluster

    from gpuseg import KMeans
    from gpuseg.distributed import DaskSource

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        started = time.perf_counter()
        source = DaskSource.from_parquet(data, id_column="customer_id", client=client)
        km = KMeans(n_clusters, random_state=seed).fit(source)
        seconds = time.perf_counter() - started
        cloudpickle.register_pickle_by_value(_machine)  # the workers cannot import it
        worker_rss = client.run(own_peak_rss_gib)
        return {
            "seconds": seconds,
            "passes": km.n_iter_,
            "inertia": km.inertia_,
            "rows_per_s": source.n_samples * km.n_iter_ / seconds,
            "peak_rss_gib": {"main": own_peak_rss_gib(), **worker_rss},
            "note": "time includes loading the partitions into worker memory",
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=100_000_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=Path("data/customers-100m"))
    parser.add_argument("-k", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["single", "single_kept", "cluster"])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "streaming.json")
    parser.add_argument("--run", choices=["single", "single_kept", "cluster"],
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.run in ("single", "single_kept"):
        persist = "auto" if args.run == "single_kept" else False
        print(json.dumps(run_single(args.data, args.k, args.seed, persist)))
        return 0
    if args.run == "cluster":
        print(json.dumps(run_cluster(args.data, args.k, args.seed, args.workers)))
        return 0
    from _machine import machine_info

    generate(args.data, args.rows, args.features, args.rows_per_file, args.seed)
    results = {"machine": machine_info(), "rows": args.rows, "n_features": args.features,
               "n_clusters": args.k, "files": len(list(args.data.glob("*.parquet")))}
    if args.out.exists():  # bench_streaming_daskml.py's figures are merged in by hand; keep them
        previous = json.loads(args.out.read_text())
        results.update({k: previous[k] for k in ("dask_ml",) if k in previous})
    for mode in args.modes:
        command = [sys.executable, __file__, "--run", mode, "--data", str(args.data),
                   "-k", str(args.k), "--seed", str(args.seed), "--workers", str(args.workers)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            results[mode] = {"error": done.stderr.strip().splitlines()[-1:]}
        else:
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(mode, json.dumps(results[mode]), file=sys.stderr)
    for mode in ("single_kept", "cluster"):
        if "seconds" in results.get("single", {}) and "seconds" in results.get(mode, {}):
            results[f"{mode}_over_single"] = results[mode]["seconds"] / results["single"]["seconds"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
