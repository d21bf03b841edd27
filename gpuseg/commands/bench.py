"""``gpuseg bench``: gpuseg on CPU (and GPU) against its peers on the same generated data.

Every tool runs the same fixed number of Lloyd iterations (``tol=0``) from one seed after a small
untimed warm-up fit (numba compilation, thread pools), and its inertia is recomputed here in
float64 from its centres, so the times compare equal work and the results can be checked. The
full harness with subprocess isolation and time limits is ``benchmarks/bench_core.py``.
"""

from __future__ import annotations

import json
import platform
import time
from argparse import Namespace
from typing import Any

import numpy as np

from gpuseg.commands._common import CommandError, Console, atomic_output, check_output
from gpuseg.read_ahead import usable_cores

PEERS = ("sklearn", "minibatch", "faiss")
WARMUP_ROWS = 4_096


def run_bench(args: Namespace, console: Console) -> dict[str, Any]:
    """Generate the data, time every tool, print the table and write the JSON."""
    from gpuseg._backend import _cuda_visible
    from gpuseg.datasets import make_customers

    if args.rows < 2 * args.k or args.k < 1 or args.features < 2 or args.iterations < 1:
        raise CommandError(f"--rows {args.rows} -k {args.k} --features {args.features} "
                           f"--iterations {args.iterations}: expected k >= 1, rows >= 2k, "
                           "features >= 2 and iterations >= 1")  # fmt: skip
    target = check_output(args.output, args.overwrite) if args.output else None
    devices = args.devices if args.devices is not None else (
        ["cpu", "cuda"] if _cuda_visible() else ["cpu"])  # fmt: skip
    for device in devices:
        if device not in ("cpu", "cuda"):
            raise CommandError(f"--devices {device}: expected cpu or cuda")
    peers = list(PEERS) if args.peers is None else args.peers
    for peer in peers:
        if peer not in PEERS:
            raise CommandError(f"--peers {peer}: expected some of {', '.join(PEERS)}")
    with console.step("generate data", args.rows):
        X = make_customers(args.rows, args.features, random_state=args.seed)
    results = []
    for tool in [*(f"gpuseg-{d}" for d in devices), *peers]:
        console.log(f"bench: {tool} ...")
        results.append(_time_tool(tool, X, args))
    ok = [r for r in results if r["status"] == "ok"]
    reference = next((r for r in ok if r["tool"] == "sklearn"), None)
    best = min((r["inertia_f64"] for r in ok), default=None)
    for r in ok:
        r["time_vs_sklearn"] = r["seconds"] / reference["seconds"] if reference else None
        r["inertia_vs_best"] = r["inertia_f64"] / best - 1 if best else None
    document = {
        "benchmark": "gpuseg bench",
        "data": f"make_customers({args.rows}, {args.features}, random_state={args.seed})",
        "n_clusters": args.k,
        "iterations": args.iterations,
        "machine": _machine(),
        "results": results,
    }
    console.say(f"{args.rows:,} rows x {args.features} features, k={args.k}, "
                f"{args.iterations} Lloyd iterations (tol=0), warm fits")  # fmt: skip
    console.say(f"{'tool':<14} {'status':<12} {'fit (s)':>9} {'s/iter':>9} {'vs sklearn':>10} "
                f"{'inertia (f64)':>14} {'vs best':>8}")  # fmt: skip
    for r in results:
        if r["status"] != "ok":
            console.say(f"{r['tool']:<14} {r['status']:<12} {r.get('reason', '')}")
            continue
        vs = f"{r['time_vs_sklearn']:.2f}x" if r.get("time_vs_sklearn") else ""
        console.say(
            f"{r['tool']:<14} {'ok':<12} {r['seconds']:>9.3f} "
            f"{r['seconds'] / max(r['n_iter'] or 1, 1):>9.4f} {vs:>10} "
            f"{r['inertia_f64']:>14.6g} {100 * r['inertia_vs_best']:>+7.2f}%"
        )
    if target is not None:
        with atomic_output(target, args.overwrite) as temporary:
            temporary.write_text(json.dumps(document, indent=1) + "\n")
        console.say(f"results written to {target}")
    return document


def _time_tool(tool: str, X: np.ndarray, args: Namespace) -> dict[str, Any]:
    try:
        fit = _fitter(tool)
    except ImportError as exc:
        return {"tool": tool, "status": "unavailable", "reason": f"{exc}"}
    warm = X[: max(WARMUP_ROWS, 4 * args.k)]
    fit(warm, args)
    started = time.perf_counter()
    centers, n_iter = fit(X, args)
    seconds = time.perf_counter() - started
    return {"tool": tool, "status": "ok", "seconds": seconds, "n_iter": n_iter,
            "inertia_f64": inertia_f64(X, centers)}  # fmt: skip


def _fitter(tool: str):
    if tool.startswith("gpuseg-"):
        from gpuseg import KMeans

        device = tool.split("-", 1)[1]

        def fit_gpuseg(X, args):
            km = KMeans(args.k, n_init=1, max_iter=args.iterations, tol=0.0, algorithm="lloyd",
                        random_state=args.seed, device=device).fit(X)  # fmt: skip
            return km.cluster_centers_, km.n_iter_

        return fit_gpuseg
    if tool in ("sklearn", "minibatch"):
        from sklearn.cluster import KMeans, MiniBatchKMeans

        def fit_sklearn(X, args):
            if tool == "sklearn":
                km = KMeans(args.k, n_init=1, max_iter=args.iterations, tol=0.0,
                            algorithm="lloyd", random_state=args.seed).fit(X)  # fmt: skip
            else:
                km = MiniBatchKMeans(args.k, n_init=1, random_state=args.seed).fit(X)
            return km.cluster_centers_, km.n_iter_

        return fit_sklearn
    import faiss

    def fit_faiss(X, args):
        km = faiss.Kmeans(X.shape[1], args.k, niter=args.iterations, seed=args.seed,
                          max_points_per_centroid=X.shape[0] // args.k + 1)  # fmt: skip
        km.train(np.ascontiguousarray(X, dtype=np.float32))
        return km.centroids, args.iterations

    return fit_faiss


def inertia_f64(X: np.ndarray, centers: np.ndarray, chunk_rows: int = 16_384) -> float:
    """Sum of squared distances to the nearest centre, recomputed in float64 chunk by chunk."""
    centers = np.asarray(centers, dtype=np.float64)
    half_norms = 0.5 * np.einsum("ij,ij->i", centers, centers)
    total = 0.0
    for start in range(0, X.shape[0], chunk_rows):
        rows = X[start : start + chunk_rows].astype(np.float64)
        nearest = np.argmin(half_norms - rows @ centers.T, axis=1)
        diff = rows - centers[nearest]
        total += float(np.einsum("ij,ij->", diff, diff))
    return total


def _machine() -> dict[str, Any]:
    import numba
    import sklearn

    import gpuseg

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cores": usable_cores(),
        "python": platform.python_version(),
        "versions": {"gpuseg": gpuseg.__version__, "numpy": np.__version__,
                     "numba": numba.__version__, "scikit-learn": sklearn.__version__},
        "date": time.strftime("%Y-%m-%d"),
    }
