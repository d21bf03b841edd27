"""GPU benchmark: ceilings, the fused pass against them, fits against GPU peers, Parquet end to end.

One script, one run on a GPU machine::

    pip install -e '.[gpu,bench]' torch flash-kmeans fast-pytorch-kmeans
    python benchmarks/bench_gpu.py                     # -> benchmarks/results/gpu-<device>.json
    python benchmarks/bench_gpu.py --dry-run --out /tmp/gpu.json   # CPU-only parts, tiny data

Sections (each recorded, or its error recorded, so one missing peer does not stop the run):

- ``machine``: gpuseg's machine info plus GPU name, driver, CUDA runtime, numba/CuPy/torch versions.
- ``ceilings``: device-to-device copy bandwidth (bytes read + written) and FP32 matmul rate, CuPy.
- ``fused_direct``: the direct kernel on device-resident ``--fused-rows`` x 16 float32, k=8:
  ms per pass and the percentage of the copy bandwidth reached counting the bytes of X read once.
- ``fused_gemm``: ``--gemm-rows`` x 32, k=1024 through cuBLAS + finish kernel, and the direct kernel
  on the same data: percentage of the measured matmul rate (2 n k d flops).
- ``fits``: fixed-iteration Lloyd fits from the same initial centres: gpuseg CUDA, flash-kmeans,
  fast-pytorch-kmeans, a plain torch loop (cdist, argmin, index_add), a CuPy loop, and gpuseg on
  this machine's CPU; time, passes and the final inertia recomputed in float64 here.
- ``parquet``: a fit from a ``--parquet-rows`` x 16 Parquet file, with the time split into reading,
  transfer and kernels.

Every timed GPU region ends with a device synchronisation; results are checked against the CPU
path (labels) before timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    out = Path(args.out) if args.out else RESULTS / f"gpu-{_slug(results['machine']['gpu'])}.json"
    write_results(results, out)
    print(json.dumps(summary(results), indent=2))
    print(f"wrote {out}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="JSON path (default benchmarks/results/gpu-<device>.json)")
    parser.add_argument("--dry-run", action="store_true", help="CPU-only parts on tiny data")
    parser.add_argument("--fused-rows", type=int, default=100_000_000)
    parser.add_argument("--gemm-rows", type=int, default=10_000_000)
    parser.add_argument("--fit-rows", type=int, default=10_000_000)
    parser.add_argument("--fit-features", type=int, default=16)
    parser.add_argument("--fit-clusters", type=int, default=64)
    parser.add_argument("--parquet-rows", type=int, default=100_000_000)
    parser.add_argument("--iterations", type=int, default=20, help="Lloyd passes of every fit")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip", nargs="*", default=[],
        choices=["ceilings", "fused_direct", "fused_gemm", "fits", "parquet"],
    )  # fmt: skip
    parser.add_argument(
        "--tools", nargs="*", default=list(FIT_TOOLS), choices=list(FIT_TOOLS),
        help="fit tools to run",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.dry_run:
        args.fused_rows = args.gemm_rows = args.fit_rows = args.parquet_rows = 2_000
        args.iterations, args.repeats = 3, 1
        args.skip = sorted({*args.skip, "ceilings", "fused_direct", "fused_gemm"})
        args.tools = ["gpuseg-cpu"]
    return args


def run(args: argparse.Namespace) -> dict:
    """Run every section not skipped; return the JSON-ready results."""
    results = {
        "machine": {**machine_info(), **gpu_info(args.dry_run)},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
    }
    sections = {
        "ceilings": lambda: ceilings(args),
        "fused_direct": lambda: fused_direct(args, results.get("ceilings", {})),
        "fused_gemm": lambda: fused_gemm(args, results.get("ceilings", {})),
        "fits": lambda: fits(args),
        "parquet": lambda: parquet_end_to_end(args),
    }
    for name, section in sections.items():
        if name in args.skip:
            continue
        _log(f"{name} ...")
        try:
            results[name] = section()
        except Exception as error:  # a section that fails is recorded, the run goes on
            results[name] = {"error": f"{type(error).__name__}: {error}",
                             "traceback": traceback.format_exc(limit=5)}  # fmt: skip
    return results


def write_results(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=_jsonable) + "\n")


def summary(results: dict) -> dict:
    """The headline numbers, for the end of the output."""
    keep = {
        "ceilings": ("copy_gb_per_s", "matmul_tflops"),
        "fused_direct": ("ms_per_pass", "pct_of_copy_bandwidth"),
        "fused_gemm": ("ms_per_pass", "pct_of_matmul_rate", "direct_ms_per_pass"),
        "parquet": ("seconds", "split"),
    }
    out = {"gpu": results["machine"].get("gpu")}
    for section, fields in keep.items():
        if section in results:
            out[section] = {f: results[section].get(f) for f in (*fields, "error") if
                            f in results[section]}  # fmt: skip
    if "fits" in results:
        out["fits"] = {
            tool: {k: r.get(k) for k in ("seconds", "n_iter", "inertia", "error") if k in r}
            for tool, r in results["fits"].items()
            if not tool.startswith("_")
        }
    return out


# ---------------------------------------------------------------------------------------------
# Machine.
# ---------------------------------------------------------------------------------------------


def gpu_info(dry_run: bool) -> dict:
    info = {"gpu": "dry-run" if dry_run else None, "versions_gpu": {}}
    for name in ("numba", "numba_cuda", "cupy", "torch", "flash_kmeans", "fast_pytorch_kmeans"):
        info["versions_gpu"][name] = _module_version(name)
    if dry_run:
        return info
    import cupy as cp

    props = cp.cuda.runtime.getDeviceProperties(0)
    info.update(
        gpu=props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        compute_capability=f"{props['major']}.{props['minor']}",
        multiprocessors=props["multiProcessorCount"],
        memory_gib=props["totalGlobalMem"] / 2**30,
        driver_version=cp.cuda.runtime.driverGetVersion(),
        cuda_runtime_version=cp.cuda.runtime.runtimeGetVersion(),
    )
    return info


# ---------------------------------------------------------------------------------------------
# Ceilings and kernels.
# ---------------------------------------------------------------------------------------------


def _sync():
    import cupy as cp

    cp.cuda.Device().synchronize()


def time_gpu(fn, repeats: int, warmup: int = 1) -> dict:
    """Median and best seconds of ``fn()``, synchronising the device around each call."""
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return {"median_s": float(np.median(times)), "best_s": float(min(times)), "repeats": repeats}


def ceilings(args) -> dict:
    import cupy as cp

    n = 2**28  # 1 GiB of float32 per buffer
    a = cp.random.random(n, dtype=cp.float32)
    b = cp.empty_like(a)
    copy = time_gpu(lambda: b.__setitem__(Ellipsis, a), args.repeats)
    size = 8192
    m1 = cp.random.random((size, size), dtype=cp.float32)
    m2 = cp.random.random((size, size), dtype=cp.float32)
    matmul = time_gpu(lambda: cp.matmul(m1, m2), args.repeats)
    return {
        "copy_bytes": 2 * a.nbytes,
        "copy_gb_per_s": 2 * a.nbytes / copy["median_s"] / 1e9,
        "copy": copy,
        "matmul_shape": [size, size, size],
        "matmul_tflops": 2 * size**3 / matmul["median_s"] / 1e12,
        "matmul": matmul,
        "tf32": bool(int(__import__("os").environ.get("CUPY_TF32", "0"))),
    }


def _device_data(n_rows: int, n_features: int, n_clusters: int, seed: int):
    """Asymmetric data made on the device in pieces, and centres drawn from its rows."""
    import cupy as cp

    rng = cp.random.default_rng(seed)
    scales = cp.asarray(np.random.default_rng(seed).uniform(0.5, 5.0, n_features), cp.float32)
    X = cp.empty((n_rows, n_features), dtype=cp.float32)
    step = 10_000_000
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        X[start:stop] = rng.standard_normal((stop - start, n_features), dtype=cp.float32) * scales
    rows = np.random.default_rng(seed).choice(n_rows, n_clusters, replace=False)
    return X, cp.asnumpy(X[cp.asarray(np.sort(rows))])


def _check_labels(X_dev, centers, labels_dev, n_check: int = 200_000) -> float:
    """Share of the first rows whose GPU label equals the CPU kernel's."""
    import cupy as cp

    from gpuseg.kernels import assign_accumulate

    X_head = cp.asnumpy(X_dev[:n_check])
    expected, _ = assign_accumulate(np.ascontiguousarray(X_head), centers)
    return float((cp.asnumpy(labels_dev[:n_check]) == expected.labels).mean())


def fused_direct(args, ceil: dict) -> dict:
    from gpuseg.kernels import cuda_fused as cf

    X, centers = _device_data(args.fused_rows, 16, 8, args.seed)
    out, _ = cf.assign_accumulate_cuda(X, centers)
    agreement = _check_labels(X, centers, out.labels)
    timing = time_gpu(lambda: cf.assign_accumulate_cuda(X, centers, out=out), args.repeats)
    bytes_read = X.nbytes
    bytes_written = 16 * X.shape[0]
    result = {
        "shape": list(X.shape), "n_clusters": 8, "labels_agree_with_cpu": agreement,
        "ms_per_pass": 1e3 * timing["median_s"], "timing": timing,
        "bytes_read": bytes_read, "bytes_written": bytes_written,
        "layout": _layout(cf, X, 8),
    }  # fmt: skip
    if "copy_gb_per_s" in ceil:
        rate = bytes_read / timing["median_s"] / 1e9
        result["gb_per_s_read"] = rate
        result["pct_of_copy_bandwidth"] = 100 * rate / ceil["copy_gb_per_s"]
        rate_rw = (bytes_read + bytes_written) / timing["median_s"] / 1e9
        result["pct_of_copy_bandwidth_read_and_written"] = 100 * rate_rw / ceil["copy_gb_per_s"]
    return result


def _layout(cf, X, n_clusters):
    layout = cf.plan_layout(X.shape[0], n_clusters, X.shape[1])
    return {k: getattr(layout, k) for k in layout.__dataclass_fields__}


def fused_gemm(args, ceil: dict) -> dict:
    from gpuseg.kernels import cuda_fused as cf
    from gpuseg.kernels import cuda_gemm

    n_clusters, n_features = 1024, 32
    X, centers = _device_data(args.gemm_rows, n_features, n_clusters, args.seed + 1)
    out, _ = cuda_gemm.assign_accumulate_gemm_cuda(X, centers)
    agreement = _check_labels(X, centers, out.labels, n_check=50_000)
    timing = time_gpu(
        lambda: cuda_gemm.assign_accumulate_gemm_cuda(X, centers, out=out), args.repeats
    )
    direct = time_gpu(
        lambda: cf.assign_accumulate_cuda(X, centers, out=out), max(1, args.repeats // 2)
    )
    flops = 2 * X.shape[0] * n_clusters * n_features
    result = {
        "shape": list(X.shape), "n_clusters": n_clusters, "labels_agree_with_cpu": agreement,
        "ms_per_pass": 1e3 * timing["median_s"], "timing": timing,
        "direct_ms_per_pass": 1e3 * direct["median_s"], "flops": flops,
        "tflops": flops / timing["median_s"] / 1e12,
        "uses_gemm_by_default": cuda_gemm.uses_gemm_cuda(n_clusters, n_features),
    }  # fmt: skip
    if "matmul_tflops" in ceil:
        result["pct_of_matmul_rate"] = 100 * result["tflops"] / ceil["matmul_tflops"]
    return result


# ---------------------------------------------------------------------------------------------
# Whole fits.
# ---------------------------------------------------------------------------------------------


def inertia_float64(X, centers, chunk: int = 1_000_000) -> float:
    """Sum of squared distances to the nearest centre, recomputed in float64 (host or device)."""
    try:
        import cupy as cp

        xp = cp.get_array_module(X)
    except ImportError:
        xp = np
    C = xp.asarray(centers, dtype=xp.float64)
    c_norms = (C * C).sum(1)
    total = 0.0
    for start in range(0, X.shape[0], chunk):
        block = xp.asarray(X[start : start + chunk], dtype=xp.float64)
        d2 = (block * block).sum(1)[:, None] - 2.0 * block @ C.T + c_norms[None, :]
        nearest = d2.argmin(1)
        diff = block - C[nearest]
        total += float((diff * diff).sum())
    return total


def fit_gpuseg(X_host, X_dev, init, iterations, device):
    from gpuseg import KMeans

    km = KMeans(n_clusters=init.shape[0], init=init, n_init=1, max_iter=iterations, tol=0.0,
                algorithm="lloyd", device=device)  # fmt: skip
    with _fixed_iterations():
        km.fit(X_host)
    return km.cluster_centers_, km.n_iter_


def fit_torch_plain(X_host, X_dev, init, iterations, device=None):
    import torch

    X = torch.as_tensor(X_dev, device="cuda")
    C = torch.as_tensor(init, device="cuda", dtype=torch.float32)
    k = C.shape[0]
    for _ in range(iterations):
        labels = torch.empty(X.shape[0], dtype=torch.long, device="cuda")
        for start in range(0, X.shape[0], 1_000_000):
            stop = start + 1_000_000
            labels[start:stop] = torch.cdist(X[start:stop], C).argmin(1)
        sums = torch.zeros_like(C).index_add_(0, labels, X)
        counts = torch.bincount(labels, minlength=k).clamp_min(1).to(C.dtype)
        C = sums / counts[:, None]
    torch.cuda.synchronize()
    return C.cpu().numpy(), iterations


def fit_cupy_plain(X_host, X_dev, init, iterations, device=None):
    import cupy as cp

    C = cp.asarray(init, dtype=cp.float32)
    k = C.shape[0]
    x_norms = (X_dev * X_dev).sum(1)
    for _ in range(iterations):
        d2 = x_norms[:, None] - 2.0 * X_dev @ C.T + (C * C).sum(1)[None, :]
        labels = d2.argmin(1)
        sums = cp.zeros((k, X_dev.shape[1]), dtype=cp.float32)
        cp.add.at(sums, labels, X_dev)
        counts = cp.maximum(cp.bincount(labels, minlength=k), 1).astype(cp.float32)
        C = sums / counts[:, None]
    _sync()
    return cp.asnumpy(C), iterations


def fit_flash(X_host, X_dev, init, iterations, device=None):
    import torch
    from flash_kmeans import batch_kmeans_Euclid

    X = torch.as_tensor(X_dev, device="cuda")[None]
    init_t = torch.as_tensor(init, device="cuda", dtype=torch.float32)[None]
    _, centers, *_ = batch_kmeans_Euclid(
        X, n_clusters=init.shape[0], max_iters=iterations, tol=0.0, init_centroids=init_t
    )
    torch.cuda.synchronize()
    return centers[0].float().cpu().numpy(), iterations


def fit_fast_pytorch(X_host, X_dev, init, iterations, device=None):
    import torch
    from fast_pytorch_kmeans import KMeans as FastKMeans

    X = torch.as_tensor(X_dev, device="cuda")
    km = FastKMeans(n_clusters=init.shape[0], mode="euclidean", max_iter=iterations, tol=-1)
    km.fit_predict(X, centroids=torch.as_tensor(init, device="cuda", dtype=torch.float32))
    torch.cuda.synchronize()
    return km.centroids.float().cpu().numpy(), iterations


FIT_TOOLS = {
    "gpuseg-cuda": lambda *a: fit_gpuseg(*a, device="cuda"),
    "flash-kmeans": fit_flash,
    "fast-pytorch-kmeans": fit_fast_pytorch,
    "torch-plain": fit_torch_plain,
    "cupy-plain": fit_cupy_plain,
    "gpuseg-cpu": lambda *a: fit_gpuseg(*a, device="cpu"),
}


def fits(args) -> dict:
    rng = np.random.default_rng(args.seed)
    n, d, k = args.fit_rows, args.fit_features, args.fit_clusters
    scales = rng.uniform(0.5, 5.0, d)
    X_host = (rng.standard_normal((n, d)) * scales).astype(np.float32)
    init = X_host[np.sort(rng.choice(n, k, replace=False))].astype(np.float64)
    X_dev = None
    if not args.dry_run:
        import cupy as cp

        X_dev = cp.asarray(X_host)
    results = {}
    for tool in args.tools:
        _log(f"  fit {tool}")
        try:
            start = time.perf_counter()
            centers, n_iter = FIT_TOOLS[tool](X_host, X_dev, init, args.iterations)
            if X_dev is not None:
                _sync()
            seconds = time.perf_counter() - start
            results[tool] = {"seconds": seconds, "n_iter": int(n_iter),
                             "inertia": inertia_float64(X_dev if X_dev is not None else X_host,
                                                        centers)}  # fmt: skip
        except Exception as error:
            results[tool] = {"error": f"{type(error).__name__}: {error}"}
    results["_data"] = {
        "shape": [n, d], "n_clusters": k, "iterations": args.iterations,
        "note": "same initial centres for every tool; inertia in float64",
    }  # fmt: skip
    return results


# ---------------------------------------------------------------------------------------------
# Parquet end to end.
# ---------------------------------------------------------------------------------------------


def parquet_end_to_end(args) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gpuseg import KMeans
    from gpuseg.parquet import ParquetSource

    n, d, k = args.parquet_rows, 16, 8
    device = "cpu" if args.dry_run else "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "customers.parquet"
        rng = np.random.default_rng(args.seed)
        scales = rng.uniform(0.5, 5.0, d)
        columns = [f"f{j}" for j in range(d)]
        step = 5_000_000
        writer = None
        for start in range(0, n, step):
            rows = min(step, n - start)
            block = (rng.standard_normal((rows, d)) * scales).astype(np.float32)
            table = pa.table({c: block[:, j] for j, c in enumerate(columns)})
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=1_000_000)
        writer.close()
        source = ParquetSource(path, columns=columns)
        start = time.perf_counter()
        n_read = sum(batch.X.shape[0] for batch in source.batches())
        read_s = time.perf_counter() - start
        transfer_s = None
        if not args.dry_run:
            from numba import cuda

            start = time.perf_counter()
            for batch in source.batches():
                cuda.to_device(batch.X)
            cuda.synchronize()
            transfer_s = time.perf_counter() - start - read_s
        init = next(iter(source.batches())).X[:k].astype(np.float64)
        km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=args.iterations, tol=0.0,
                    algorithm="lloyd", device=device)  # fmt: skip
        start = time.perf_counter()
        with _fixed_iterations():
            km.fit(source)
        fit_s = time.perf_counter() - start
    passes = km.n_iter_ + 1  # the Lloyd passes and the final scoring pass, roughly
    per_pass_io = read_s + (transfer_s or 0.0)
    return {
        "rows": n_read, "features": d, "n_clusters": k, "device": device, "seconds": fit_s,
        "n_iter": int(km.n_iter_), "inertia": float(km.inertia_),
        "split": {
            "reading_s_per_pass": read_s,
            "transfer_s_per_pass": transfer_s,
            "kernels_and_rest_s": max(0.0, fit_s - passes * per_pass_io),
        },
        "note": "reading and transfer timed on separate passes over the file; the rest of the "
                "fit time is kernels, reductions and the update",
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _fixed_iterations():
    """Fits here run a fixed number of passes on purpose: their convergence warning is noise."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _module_version(name: str) -> str | None:
    try:
        module = __import__(name)
    except Exception:
        return None
    return getattr(module, "__version__", "?")


def _slug(name) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(name or "unknown").lower()).strip("-")


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def _log(message: str) -> None:
    print(f"[bench_gpu {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
