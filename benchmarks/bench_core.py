"""Core benchmark (issue 2): gpuseg K-means against its peers on the same data, in one run.

Every tool fits the same customer-shaped table (:func:`gpuseg.datasets.make_customers`), each in
its own subprocess with a time limit, after one small untimed warm-up fit in that process (numba
compilation, thread pools). For every fit the harness records the wall time, the iterations the
tool reports, and the inertia recomputed here in float64 from the tool's centres (nearest centre of
every row; NumPy only, never gpuseg code). Next to the fits it measures the machine's memory read
rate and gpuseg's fused pass alone, the floor and the kernel that a Lloyd iteration is made of.

Usage::

    python benchmarks/bench_core.py --sizes small          # smoke test, under a minute
    python benchmarks/bench_core.py --sizes full           # issue 2's sizes, about 15 minutes
    python benchmarks/bench_core.py --table-from benchmarks/results/core-full.json

Results go to ``benchmarks/results/core-<sizes>.json`` (``--out`` to change) and the Markdown
table is printed; ``--table-from`` re-renders it from a JSON file for the README.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TOOLS = {
    "gpuseg": "gpuseg KMeans",
    "sklearn": "scikit-learn KMeans (lloyd)",
    "minibatch": "scikit-learn MiniBatchKMeans",
    "faiss": "faiss Kmeans",
    "dask-ml": "dask-ml KMeans",
}
PROBE = "fused"  # the memory read rate and gpuseg's fused pass alone
# Tools that run Lloyd iterations over all rows, for which seconds per iteration means something.
LLOYD_TOOLS = ("gpuseg", "sklearn", "faiss", "dask-ml")
WARMUP_ROWS = 4096


@dataclass(frozen=True)
class Case:
    """One data size: rows, columns and the number of clusters fitted."""

    n_samples: int
    n_features: int
    n_clusters: int

    @property
    def label(self) -> str:
        return f"{_count(self.n_samples)} x {self.n_features}, k={self.n_clusters}"


SIZES = {
    "small": (Case(200_000, 16, 8), Case(50_000, 32, 64)),
    "full": (Case(10_000_000, 16, 8), Case(1_000_000, 32, 256)),
}


# ---------------------------------------------------------------- parent: orchestration


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or a worker, or re-render a table) and return the exit status."""
    args = _parse_args(argv)
    if args.worker:
        return run_worker(Path(args.worker))
    if args.table_from:
        print(render_markdown(json.loads(Path(args.table_from).read_text())))
        return 0
    out = Path(args.out) if args.out else RESULTS_DIR / f"core-{args.sizes}.json"
    results = run_benchmark(args, out)
    print(render_markdown(results))
    print(f"\nResults written to {out}", file=sys.stderr)
    return 0


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", choices=sorted(SIZES), default="small")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/core-<sizes>.json)")
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=[*TOOLS, PROBE],
        metavar="PEER",
        help=f"tools to leave out: {', '.join([*TOOLS, PROBE])}",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds each tool may take per size, warm-up and inertia included (default 900)",
    )
    parser.add_argument(
        "--mode",
        choices=("converge", "fixed"),
        default="converge",
        help="converge: every tool stops by its own criterion (max_iter/tol below; faiss, which "
        "has no tolerance, runs --faiss-niter). fixed: tol=0 and exactly --iterations for the "
        "Lloyd tools, to compare time per iteration",
    )
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--iterations", type=int, default=20, help="iterations in --mode fixed")
    parser.add_argument("--faiss-niter", type=int, default=25, help="faiss iterations (converge)")
    parser.add_argument("--n-init", type=int, default=1, help="n_init of gpuseg and scikit-learn")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of every tool")
    parser.add_argument("--table-from", metavar="JSON", help="print the table of a results file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def fit_settings(args) -> dict:
    """Per-run settings every worker receives."""
    fixed = args.mode == "fixed"
    return {
        "mode": args.mode,
        "max_iter": args.iterations if fixed else args.max_iter,
        "tol": 0.0 if fixed else args.tol,
        "faiss_niter": args.iterations if fixed else args.faiss_niter,
        "n_init": args.n_init,
        "seed": args.seed,
    }


def run_benchmark(args, out: Path) -> dict:
    """Fit every tool on every size, write the JSON after each size and return the results."""
    import _machine

    from gpuseg.datasets import make_customers

    settings = fit_settings(args)
    results = {
        "benchmark": "core",
        "sizes": args.sizes,
        "settings": {**settings, "timeout_s": args.timeout, "skipped": args.skip},
        "machine": _machine.machine_info(),
        "cases": [],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpuseg-bench-") as tmp:
        for case in SIZES[args.sizes]:
            _log(f"== {case.label}: generating data")
            start = time.perf_counter()
            X = make_customers(case.n_samples, case.n_features, random_state=args.seed)
            generate_s = time.perf_counter() - start
            data = Path(tmp) / "X.npy"
            np.save(data, X)
            del X
            record = {
                **asdict(case),
                "label": case.label,
                "generate_seconds": generate_s,
                "data": f"make_customers({case.n_samples}, {case.n_features}, "
                f"random_state={args.seed})",
                "fused": None,
                "tools": {},
            }
            for tool in (PROBE, *TOOLS):
                if tool in args.skip:
                    result = {"status": "skipped", "reason": "--skip"}
                else:
                    _log(f"   {tool} ...")
                    spec = {
                        "tool": tool,
                        "data": str(data),
                        "n_clusters": case.n_clusters,
                        "settings": settings,
                    }
                    result = run_in_subprocess(spec, Path(tmp), args.timeout)
                    _log(f"   {tool}: {_summary(result)}")
                if tool == PROBE:
                    record["fused"] = result
                else:
                    record["tools"][tool] = result
            add_comparisons(record["tools"])
            results["cases"].append(record)
            out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def run_in_subprocess(spec: dict, tmp: Path, timeout: float) -> dict:
    """Run one worker in its own process group; a timeout or crash becomes a recorded reason."""
    spec_path, result_path = tmp / "spec.json", tmp / "result.json"
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({**spec, "result": str(result_path)}))
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # The whole group: dask and faiss may have started helpers of their own.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "timeout", "reason": f"did not finish within --timeout={timeout:g} s"}
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not result_path.exists():
        tail = " | ".join(output.strip().splitlines()[-3:])
        return {"status": "error", "reason": f"worker exited with {proc.returncode}: {tail}"}
    result = json.loads(result_path.read_text())
    result["process_seconds"] = wall
    return result


def add_comparisons(tools: dict) -> None:
    """Add time relative to scikit-learn KMeans and inertia relative to the best peer."""
    ok = {name: r for name, r in tools.items() if r.get("status") == "ok"}
    sklearn_s = ok["sklearn"]["seconds"] if "sklearn" in ok else None
    peers = [r["inertia_f64"] for name, r in ok.items() if name != "gpuseg"]
    best_peer = min(peers) if peers else None
    for r in ok.values():
        r["time_vs_sklearn"] = r["seconds"] / sklearn_s if sklearn_s else None
        r["inertia_vs_best_peer"] = r["inertia_f64"] / best_peer - 1.0 if best_peer else None


def _summary(result: dict) -> str:
    if result.get("status") != "ok":
        return f"{result.get('status')}: {result.get('reason')}"
    if "seconds" in result:
        return f"{result['seconds']:.3f} s, n_iter={result.get('n_iter')}"
    return json.dumps({key: result[key] for key in ("read", "pass") if key in result})


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- worker: one tool, one size


def run_worker(spec_path: Path) -> int:
    """Load the data, run one tool and write its result JSON where the spec says."""
    spec = json.loads(spec_path.read_text())
    X = np.load(spec["data"])  # fully in memory, so no fit pays for page faults
    try:
        if spec["tool"] == PROBE:
            result = probe_fused(X, spec["n_clusters"], spec["settings"])
        else:
            result = time_fit(spec["tool"], X, spec["n_clusters"], spec["settings"])
    except ImportError as exc:
        result = {"status": "unavailable", "reason": f"{type(exc).__name__}: {exc}"}
    Path(spec["result"]).write_text(json.dumps(result, indent=2))
    return 0


def time_fit(tool: str, X: np.ndarray, n_clusters: int, settings: dict) -> dict:
    """Warm up on a few rows, time one fit on all of them, and recompute its inertia."""
    fit = FITTERS[tool]
    start = time.perf_counter()
    fit(X[: max(WARMUP_ROWS, 4 * n_clusters)], n_clusters, settings)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    fitted = fit(X, n_clusters, settings)
    seconds = time.perf_counter() - start
    return {
        "status": "ok",
        "seconds": seconds,
        "warmup_seconds": warmup_s,
        "n_iter": fitted["n_iter"],
        "inertia_reported": fitted["inertia"],
        "inertia_f64": inertia_f64(X, fitted["centers"]),
        "params": fitted["params"],
        "notes": fitted.get("notes", ""),
    }


def fit_gpuseg(X, n_clusters, settings):
    try:
        from gpuseg import KMeans
    except ImportError as exc:
        raise ImportError(
            f"gpuseg.KMeans is not available yet ({exc}); the harness runs the peers without it"
        ) from exc
    km = KMeans(
        n_clusters=n_clusters,
        random_state=settings["seed"],
        n_init=settings["n_init"],
        max_iter=settings["max_iter"],
        tol=settings["tol"],
        algorithm="auto",
    ).fit(X)
    return _fitted(km.cluster_centers_, km.n_iter_, km.inertia_, km.get_params())


def fit_sklearn(X, n_clusters, settings):
    from sklearn.cluster import KMeans

    km = KMeans(
        n_clusters=n_clusters,
        algorithm="lloyd",
        n_init=settings["n_init"],
        max_iter=settings["max_iter"],
        tol=settings["tol"],
        random_state=settings["seed"],
    ).fit(X)
    return _fitted(km.cluster_centers_, km.n_iter_, km.inertia_, km.get_params())


def fit_minibatch(X, n_clusters, settings):
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=n_clusters, random_state=settings["seed"]).fit(X)
    notes = f"{km.n_steps_} steps of {km.batch_size} rows; defaults, not Lloyd iterations"
    return _fitted(km.cluster_centers_, km.n_iter_, km.inertia_, km.get_params(), notes)


def fit_faiss(X, n_clusters, settings):
    import faiss

    n_samples, n_features = X.shape
    km = faiss.Kmeans(
        n_features,
        n_clusters,
        niter=settings["faiss_niter"],
        seed=settings["seed"],
        # faiss trains on a sample of k * max_points_per_centroid rows; this keeps every row.
        max_points_per_centroid=math.ceil(n_samples / n_clusters) + 1,
        verbose=False,
    )
    km.train(np.ascontiguousarray(X, dtype=np.float32))
    params = {
        "niter": km.cp.niter,
        "seed": km.cp.seed,
        "nredo": km.cp.nredo,
        "max_points_per_centroid": km.cp.max_points_per_centroid,
    }
    notes = "random init, fixed iterations (faiss has no tolerance)"
    return _fitted(km.centroids, km.cp.niter, float(km.obj[-1]), params, notes)


def fit_dask_ml(X, n_clusters, settings):
    import dask.array as da
    from dask_ml.cluster import KMeans

    chunk_rows = min(1_000_000, max(10_000, math.ceil(X.shape[0] / (os.cpu_count() or 1))))
    X_dask = da.from_array(X, chunks=(chunk_rows, X.shape[1]))
    km = KMeans(
        n_clusters=n_clusters,
        random_state=settings["seed"],
        max_iter=settings["max_iter"],
        tol=settings["tol"],
    ).fit(X_dask)
    params = {**km.get_params(), "chunk_rows": chunk_rows}
    return _fitted(km.cluster_centers_, km.n_iter_, km.inertia_, params, "k-means|| init")


FITTERS = {
    "gpuseg": fit_gpuseg,
    "sklearn": fit_sklearn,
    "minibatch": fit_minibatch,
    "faiss": fit_faiss,
    "dask-ml": fit_dask_ml,
}


def _fitted(centers, n_iter, inertia, params, notes=""):
    return {
        "centers": np.asarray(centers),
        "n_iter": None if n_iter is None else int(n_iter),
        "inertia": None if inertia is None else float(inertia),
        "params": json.loads(json.dumps(params, default=repr)),
        "notes": notes,
    }


def probe_fused(X: np.ndarray, n_clusters: int, settings: dict, rounds: int = 21) -> dict:
    """The memory read rate of ``X`` and gpuseg's fused pass alone, in GB/s of ``X`` read.

    Each round reads ``X`` once with a parallel sum and then runs one pass, so that both see the
    same machine: on a shared host the read rate moves from one second to the next (14-57 GB/s
    within an hour on the 2-core VM), hence 21 rounds. The headline is the median over rounds of
    pass rate / read rate; best against best is recorded too.
    """
    import _machine

    from gpuseg.kernels import assign_accumulate, uses_gemm
    from gpuseg.kernels.types import Assignment

    rng = np.random.default_rng(settings["seed"])
    centers = X[np.sort(rng.choice(X.shape[0], n_clusters, replace=False))]
    out = Assignment.empty(X.shape[0])  # the fit loop reuses its buffers; so does the probe
    start = time.perf_counter()
    assign_accumulate(X, centers, out=out)
    warmup_s = time.perf_counter() - start
    read_times, pass_times = [], []
    for _ in range(rounds):
        read_times.append(_machine.read_seconds(X))
        start = time.perf_counter()
        assign_accumulate(X, centers, out=out)
        pass_times.append(time.perf_counter() - start)
    read_s, pass_s = np.array(read_times), np.array(pass_times)
    return {
        "status": "ok",
        "read": {
            "seconds": float(np.median(read_s)),
            "gb_per_s": X.nbytes / float(np.median(read_s)) / 1e9,
            "best_gb_per_s": X.nbytes / float(read_s.min()) / 1e9,
            "rounds": rounds,
        },
        "pass": {
            "seconds": float(np.median(pass_s)),
            "gb_per_s": X.nbytes / float(np.median(pass_s)) / 1e9,
            "best_seconds": float(pass_s.min()),
            "of_read_rate": float(np.median(read_s / pass_s)),
            "best_of_best_read_rate": float(read_s.min() / pass_s.min()),
            "path": "gemm" if uses_gemm(n_clusters, X.shape[1]) else "direct",
            "warmup_seconds": warmup_s,
            "rounds": rounds,
            "read_seconds_by_round": read_times,
            "pass_seconds_by_round": pass_times,
        },
    }


def inertia_f64(X: np.ndarray, centers: np.ndarray, chunk_rows: int = 16_384) -> float:
    """Sum over rows of the squared distance to the nearest centre, in float64, chunk by chunk.

    The nearest centre comes from the expanded form ``|x|^2 - 2 x.c + |c|^2``; the distance
    added is then computed directly, so no cancellation reaches the total.
    """
    centers = np.asarray(centers, dtype=np.float64)
    half_sq_norms = 0.5 * np.einsum("ij,ij->i", centers, centers)
    total = 0.0
    for start in range(0, X.shape[0], chunk_rows):
        rows = X[start : start + chunk_rows].astype(np.float64)
        nearest = np.argmin(half_sq_norms - rows @ centers.T, axis=1)
        diff = rows - centers[nearest]
        total += float(np.einsum("ij,ij->", diff, diff))
    return total


# ---------------------------------------------------------------- rendering


def render_markdown(results: dict) -> str:
    """Render a results dict (as written by this script) as Markdown tables."""
    machine = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    settings = results["settings"]
    lines = [
        f"{machine['cpu']}, {machine['usable_cores']} cores, {machine['memory_gib']} GiB, "
        f"{machine['os']}, {machine['python']}; {versions}; {machine['date']}.",
        f"Mode `{settings['mode']}`: max_iter={settings['max_iter']}, tol={settings['tol']:g}, "
        f"n_init={settings['n_init']}, faiss niter={settings['faiss_niter']}, "
        f"seed={settings['seed']}. Warm fits (a small untimed fit first in the same process); "
        "inertia recomputed in float64 from each tool's centres.",
        "",
        "| data | tool | fit (s) | vs scikit-learn | iterations | s / iteration "
        "| inertia (float64) | vs best peer | notes |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for case in results["cases"]:
        for tool, r in case["tools"].items():
            lines.append(_tool_row(case["label"], tool, r))
    lines += [
        "",
        "Fused pass alone: rounds of one parallel-sum read of the data then one pass; medians "
        "over rounds (of read rate: the median of the per-round ratios; best: fastest pass "
        "against fastest read).",
        "",
        "| data | memory read (GB/s) | fused pass (s) | fused pass (GB/s) | of read rate "
        "| best vs best | path | gpuseg warm-up (s) |",
        "|---|--:|--:|--:|--:|--:|---|--:|",
    ]
    for case in results["cases"]:
        lines.append(_fused_row(case))
    return "\n".join(lines)


def _tool_row(label: str, tool: str, r: dict) -> str:
    name = TOOLS.get(tool, tool)
    if r.get("status") != "ok":
        return f"| {label} | {name} | {r.get('status')} | | | | | | {r.get('reason', '')} |"
    per_iter = _num(r["seconds"] / r["n_iter"]) if tool in LLOYD_TOOLS and r.get("n_iter") else ""
    vs_sklearn = f"{r['time_vs_sklearn']:.2f}x" if r.get("time_vs_sklearn") else ""
    vs_best = r.get("inertia_vs_best_peer")
    vs_best = f"{100 * vs_best:+.2f} %" if vs_best is not None else ""
    return (
        f"| {label} | {name} | {_num(r['seconds'])} | {vs_sklearn} | {r.get('n_iter', '')} "
        f"| {per_iter} | {r['inertia_f64']:.6g} | {vs_best} | {r.get('notes', '')} |"
    )


def _fused_row(case: dict) -> str:
    probe = case.get("fused") or {}
    gpuseg = case["tools"].get("gpuseg", {})
    warmup = _num(gpuseg["warmup_seconds"]) if gpuseg.get("status") == "ok" else ""
    read = probe.get("read")
    read_rate = f"{read['gb_per_s']:.1f}" if read else probe.get("status", "")
    fused = probe.get("pass")
    if not fused:
        reason = probe.get("reason", "") if probe.get("status") != "ok" else ""
        return f"| {case['label']} | {read_rate} | {reason} | | | | | {warmup} |"
    best = fused.get("best_of_best_read_rate")
    best = f"{100 * best:.0f} %" if best is not None else ""
    return (
        f"| {case['label']} | {read_rate} | {_num(fused['seconds'])} "
        f"| {fused['gb_per_s']:.1f} | {100 * fused['of_read_rate']:.0f} % | {best} "
        f"| {fused['path']} | {warmup} |"
    )


def _num(seconds: float) -> str:
    return f"{seconds:.3g}" if seconds < 100 else f"{seconds:.0f}"


def _count(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{unit}"
    return str(n)


if __name__ == "__main__":
    sys.exit(main())
