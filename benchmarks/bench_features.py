"""Feature-table benchmark (issue 5): transaction log to RFM table out-of-core, fit, next month.

Generates once a retail transaction log (:mod:`gpuseg.retail`) as many Parquet files, then runs
each step in its own process (the generation too), so that its peak memory is its own:

1. ``rfm_month1``: :func:`gpuseg.rfm.compute_rfm` on the Parquet glob, out-of-core through Dask
   (local threaded scheduler), with the as-of date one month before the end of the log; the
   customer table is written as Parquet (``features-month1/``);
2. ``fit``: :func:`gpuseg.plan.default_rfm_plan` fitted in one streamed pass over that table,
   ``KMeans(6)`` fitted through ``ParquetSource(plan=...)``, saved as a
   :class:`gpuseg.model.SegmentationModel`;
3. ``rfm_month2``: the same on the whole log, one month later (``features-month2/``);
4. ``predict``: the saved model loaded and ``model.predict`` on next month's table;
5. ``check``: the plan-free pipeline by hand from the model's own matrix,
   ``KMeans(6, same seed).fit(model.transform_features(month1)).predict(plan.transform(month2))``,
   compared label by label with step 4 (``identical`` and the number of differing labels).

Every step reports its wall seconds (process start included) and the seconds of its parts, and
three peaks: ``peak_rss_gib``, the step process's own high-water mark (``VmHWM``; ``ru_maxrss``
would also count the parent's memory before the fork); ``peak_tree_rss_gib``, the largest sum of
the RSS of the parent and all its children, sampled every 0.5 s by psutil while the step ran (and
``peak_children_rss_gib``, the children alone); and ``rusage_children_max_gib``,
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after the step: the largest child so far.

The log
-------
``make_transactions`` builds its whole log in memory, so the log is generated file by file: file
``i`` holds every transaction of ``--customers-per-file`` customers, drawn with their own seed,
their customer ids shifted to the range ``[100_000 + i * customers_per_file, ...)`` and their order
ids by ``i * 10**9`` (so ids stay unique and each customer lives in one file). The generator's
rows per customer grow with the length of the log, so the length (``days``) is calibrated on two
small pilot logs to give ``--transactions / --customers`` rows per customer (about three years for
20), then rounded so that the log ends at the start of a month. The actual number of rows is
reported. Generation is skipped when a complete copy (its ``_COMPLETE`` marker, written last) with
the same parameters is there.

Usage::

    python benchmarks/bench_features.py
    python benchmarks/bench_features.py --transactions 200_000 --customers 10_000 \\
        --data /tmp/retail-small --out /tmp/features.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

START = "2023-01-01"
ID = "customer_id"
N_CLUSTERS = 6
ROLES = {"order": "order_id", "category": "category", "channel": "channel",
         "quantity": "quantity"}  # fmt: skip
# Customers of each pilot log calibrating the length of the log.
_PILOT_CUSTOMERS = 20_000
_PILOT_DAYS = (730, 1460)
# Rows per file of the customer (feature) tables.
_TABLE_ROWS_PER_FILE = 1_000_000
_SAMPLE_S = 0.5


def _int(text: str) -> int:
    return int(text.replace("_", ""))


# -- the log ---------------------------------------------------------------------------------------


def log_calendar(transactions: int, customers: int, seed: int) -> dict:
    """Length of the log giving ``transactions / customers`` rows per customer, and the as-of dates.

    Rows per customer are close to linear in the length: measured on two pilot logs, interpolated,
    and the end moved to the nearest first of a month.
    """
    import pandas as pd

    from gpuseg.retail import make_transactions

    ratios = [
        len(make_transactions(_PILOT_CUSTOMERS, days=days, random_state=seed)) / _PILOT_CUSTOMERS
        for days in _PILOT_DAYS
    ]
    slope = (ratios[1] - ratios[0]) / (_PILOT_DAYS[1] - _PILOT_DAYS[0])
    days = _PILOT_DAYS[0] + (transactions / customers - ratios[0]) / slope
    start = pd.Timestamp(START)
    exact = start + pd.Timedelta(days=max(days, 62))
    first = exact.to_period("M").to_timestamp()  # the first of its month
    after = first + pd.DateOffset(months=1)
    end = first if exact - first <= after - exact else after
    return {
        "start": START,
        "days": int((end - start).days),
        "as_of_month1": (end - pd.DateOffset(months=1)).date().isoformat(),
        "as_of_month2": end.date().isoformat(),
        "pilot_rows_per_customer": dict(zip(map(str, _PILOT_DAYS), ratios, strict=True)),
    }


def generate(data: Path, transactions: int, customers: int, per_file: int, seed: int) -> dict:
    """Write the log as one Parquet file per range of customers, unless a complete copy is there."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from _datasets import existing_copy

    from gpuseg.retail import make_transactions

    log_dir = data / "log"
    marker = log_dir / "_COMPLETE"
    wanted = {"transactions": transactions, "customers": customers,
              "customers_per_file": per_file, "seed": seed}  # fmt: skip
    about = existing_copy(marker, wanted)
    if about is not None:
        return {**about, "skipped": True}
    started = time.perf_counter()
    calendar = log_calendar(transactions, customers, seed)
    if log_dir.exists():
        shutil.rmtree(log_dir)
    log_dir.mkdir(parents=True)
    seeds = np.random.SeedSequence(seed).generate_state((customers + per_file - 1) // per_file)
    rows = 0
    for index, start in enumerate(range(0, customers, per_file)):
        n = min(per_file, customers - start)
        log = make_transactions(n, start=START, days=calendar["days"],
                                random_state=int(seeds[index]))  # fmt: skip
        log["customer_id"] += start
        log["order_id"] += index * 10**9
        target = log_dir / f"part-{index:05d}.parquet"
        pq.write_table(pa.Table.from_pandas(log, preserve_index=False), target,
                       row_group_size=1 << 20)  # fmt: skip
        rows += len(log)
    about = {**wanted, **calendar, "rows": rows, "files": index + 1,
             "seconds": time.perf_counter() - started}  # fmt: skip
    marker.write_text(json.dumps(about, indent=1))
    return {**about, "skipped": False}


# -- steps, each run in its own process ------------------------------------------------------------


def step_rfm(data: Path, month: int) -> dict:
    """compute_rfm on the log glob at the month's as-of date; write the customer table."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gpuseg.rfm import compute_rfm

    about = json.loads((data / "log" / "_COMPLETE").read_text())
    as_of = about[f"as_of_month{month}"]
    started = time.perf_counter()
    result = compute_rfm(str(data / "log" / "*.parquet"), as_of=as_of, **ROLES)
    rfm_seconds = time.perf_counter() - started

    started = time.perf_counter()
    frame = result.to_frame().reset_index()
    frame["segment"] = frame["segment"].astype(str)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    target = data / f"features-month{month}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    bounds = [*range(0, table.num_rows, _TABLE_ROWS_PER_FILE), table.num_rows]
    for index, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        pq.write_table(table.slice(lo, hi - lo), target / f"part-{index:05d}.parquet",
                       row_group_size=1 << 18)  # fmt: skip
    write_seconds = time.perf_counter() - started
    coverage = result.coverage["share"]
    return {
        "seconds": {"rfm": rfm_seconds, "write": write_seconds},
        "as_of": as_of,
        "customers": int(table.num_rows),
        "columns": table.num_columns,
        "files": len(bounds) - 1,
        "log_rows_per_s": about["rows"] / rfm_seconds,
        "return_only_customers": len(result.return_only),
        "rfm_segment_shares": {str(k): float(v) for k, v in coverage.items() if v > 0},
        "monetary_total_mean": float(np.mean(frame["monetary_total"])),
    }


def step_fit(data: Path, seed: int) -> dict:
    """Fit the default RFM plan (one streamed pass) and KMeans(6) through ParquetSource; save."""
    import numpy as np
    import pyarrow.dataset as ds

    from gpuseg import KMeans
    from gpuseg.model import SegmentationModel
    from gpuseg.parquet import ParquetSource
    from gpuseg.plan import default_rfm_plan

    table_dir = data / "features-month1"
    files = sorted(str(p) for p in table_dir.glob("*.parquet"))
    dataset = ds.dataset(files, format="parquet")
    started = time.perf_counter()
    plan = default_rfm_plan([n for n in dataset.schema.names if n != ID])
    plan.fit(dataset.to_batches(columns=plan.input_columns))
    plan_seconds = time.perf_counter() - started

    # Compiles the kernels outside the timer, on rows read by a source of their own: the timed
    # source starts cold (its first pass decodes the files, and keeps the blocks for the next).
    warm_source = ParquetSource(files, id_column=ID, plan=plan, persist=False)
    warm = warm_source.sample(20_000, np.random.default_rng(seed)).X
    KMeans(N_CLUSTERS, random_state=seed).fit(warm)
    started = time.perf_counter()
    source = ParquetSource(files, id_column=ID, plan=plan)
    km = KMeans(N_CLUSTERS, random_state=seed).fit(source)
    fit_seconds = time.perf_counter() - started
    as_of = json.loads((data / "log" / "_COMPLETE").read_text())["as_of_month1"]
    model = SegmentationModel.from_estimator(plan, km, as_of=as_of, id_column=ID)
    model.save(data / "model", overwrite=True)
    return {
        "seconds": {"plan": plan_seconds, "kmeans": fit_seconds},
        "rows": source.n_samples,
        "features": plan.output_names,
        "passes": km.n_iter_,
        "inertia": km.inertia_,
        "rows_per_s": source.n_samples * km.n_iter_ / fit_seconds,
        "cluster_sizes": np.asarray(km.cluster_sizes_).tolist(),
    }


def step_predict(data: Path) -> dict:
    """Load the saved model and predict next month's table."""
    import numpy as np
    import pyarrow.parquet as pq

    from gpuseg.model import load

    started = time.perf_counter()
    model = load(data / "model")
    table = pq.read_table(data / "features-month2")
    read_seconds = time.perf_counter() - started
    model.predict(table.slice(0, 1000))  # compiles the kernel outside the timer
    started = time.perf_counter()
    labels = model.predict(table)
    predict_seconds = time.perf_counter() - started
    np.save(data / "labels-month2.npy", labels)
    return {
        "seconds": {"load_and_read": read_seconds, "predict": predict_seconds},
        "rows": table.num_rows,
        "rows_per_s": table.num_rows / predict_seconds,
        "segment_sizes": np.bincount(labels, minlength=model.n_clusters).tolist(),
    }


def step_check(data: Path, seed: int) -> dict:
    """Refit the plan-free pipeline by hand from the model's matrix; compare with the prediction."""
    import numpy as np
    import pyarrow.parquet as pq

    from gpuseg import KMeans
    from gpuseg.model import load

    model = load(data / "model")
    month1 = pq.read_table(data / "features-month1")
    month2 = pq.read_table(data / "features-month2")
    started = time.perf_counter()
    X1 = model.transform_features(month1)
    km = KMeans(N_CLUSTERS, random_state=seed).fit(X1)
    by_hand = km.predict(model.plan.transform(month2))
    seconds = time.perf_counter() - started
    predicted = np.load(data / "labels-month2.npy")
    differing = int(np.count_nonzero(by_hand != predicted))
    return {
        "seconds": {"refit_and_predict": seconds},
        "identical": bool(differing == 0 and len(by_hand) == len(predicted)),
        "differing_labels": differing,
        "rows": len(by_hand),
        "centers_max_abs_diff": float(np.max(np.abs(km.cluster_centers_ - model.centers))),
    }


def run_step(args: argparse.Namespace) -> dict:
    """Run one step in this (child) process and add its own peak RSS."""
    if args.run == "generate":
        result = generate(args.data, args.transactions, args.customers, args.customers_per_file,
                          args.seed)  # fmt: skip
    elif args.run in ("rfm_month1", "rfm_month2"):
        result = step_rfm(args.data, int(args.run[-1]))
    elif args.run == "fit":
        result = step_fit(args.data, args.seed)
    elif args.run == "predict":
        result = step_predict(args.data)
    else:
        result = step_check(args.data, args.seed)
    from _machine import own_peak_rss_gib

    result["peak_rss_gib"] = own_peak_rss_gib()
    return result


# -- the parent: one process per step, with an RSS sampler -----------------------------------------


def in_child(args: argparse.Namespace, step: str) -> dict:
    """Run ``step`` in a child process; sample the RSS of this process tree every 0.5 s."""
    import psutil

    command = [sys.executable, __file__, "--run", step, "--data", str(args.data),
               "--seed", str(args.seed), "--transactions", str(args.transactions),
               "--customers", str(args.customers),
               "--customers-per-file", str(args.customers_per_file)]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"tree": 0, "children": 0}
    done = threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not done.is_set():
            try:
                children = sum(p.memory_info().rss for p in me.children(recursive=True))
                total = me.memory_info().rss + children
            except psutil.Error:  # a child ended between listing and reading
                children = total = 0
            peak["tree"] = max(peak["tree"], total)
            peak["children"] = max(peak["children"], children)
            done.wait(_SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = child.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if child.returncode != 0:
        return {"error": stderr.strip().splitlines()[-3:], "wall_seconds": wall}
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    result["peak_tree_rss_gib"] = peak["tree"] / 2**30
    result["peak_children_rss_gib"] = peak["children"] / 2**30
    result["rusage_children_max_gib"] = (
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    )
    return result


STEPS = ("generate", "rfm_month1", "fit", "rfm_month2", "predict", "check")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=_int, default=100_000_000)
    parser.add_argument("--customers", type=_int, default=5_000_000)
    parser.add_argument("--customers-per-file", type=_int, default=100_000)
    parser.add_argument("--data", type=Path, default=Path("data/retail-100m"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "features.json")
    parser.add_argument("--run", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(run_step(args)))
        return 0
    steps = {}
    for step in STEPS:
        steps[step] = in_child(args, step)
        print(step, json.dumps(steps[step]), file=sys.stderr)
        if "error" in steps[step] and step in ("generate", "rfm_month1", "fit"):
            break  # every later step reads what this one writes
    from _machine import machine_info  # after the steps: the parent stays small while they run

    log = steps["generate"]
    results = {
        "machine": machine_info(),
        "transactions": log.get("rows"),
        "transactions_requested": args.transactions,
        "customers": args.customers,
        "n_clusters": N_CLUSTERS,
        "seed": args.seed,
        "data": str(args.data),
        "seconds": {name: step.get("wall_seconds") for name, step in steps.items()},
        "peak_rss_gib": {name: step.get("peak_rss_gib") for name, step in steps.items()},
        "peak_tree_rss_gib": {name: step.get("peak_tree_rss_gib") for name, step in steps.items()},
        "steps": steps,
    }
    if "identical" in steps.get("check", {}):
        results["identical"] = steps["check"]["identical"]
        results["differing_labels"] = steps["check"]["differing_labels"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
