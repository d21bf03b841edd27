"""CUDA twins on a real GPU at full size (marker ``gpu``), and the GPU benchmark's dry run.

The ``gpu`` tests skip unless a real CUDA device is visible, the simulator is off and CuPy imports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from _blocks import make_block

from gpuseg._backend import _cuda_visible, _cupy_importable


def _real_gpu() -> bool:
    return _cuda_visible() and _cupy_importable()


requires_gpu = pytest.mark.skipif(not _real_gpu(), reason="needs a real CUDA GPU and CuPy")


def to_host(assignment):
    return {f: np.asarray(getattr(assignment, f).copy_to_host()) for f in
            ("labels", "distances", "second_labels", "second_distances")}  # fmt: skip


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize(
    ("n_samples", "n_features", "n_clusters", "weighted"),
    [(1_000_000, 16, 8, True), (1_000_000, 5, 7, False), (300_000, 40, 64, True),
     (200_000, 6, 1, True)],
)  # fmt: skip
def test_direct_kernel_matches_cpu_twin(n_samples, n_features, n_clusters, weighted):
    import cupy as cp

    from gpuseg.kernels.cuda_fused import assign_accumulate_cuda
    from gpuseg.kernels.fused import assign_accumulate

    X, centers, w = make_block(n_samples, n_features, n_clusters, seed=n_features)
    w = w if weighted else None
    expected, sums = assign_accumulate(X, centers, w)
    w_dev = None if w is None else cp.asarray(w)
    got, got_sums = assign_accumulate_cuda(cp.asarray(X), centers, w_dev)
    got = to_host(got)
    # FMA contraction may differ between the CPU and the GPU: a near-tie can flip, rarely.
    assert (got["labels"] == expected.labels).mean() >= 0.99999
    np.testing.assert_allclose(got["distances"], expected.distances, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_sums.weights, sums.weights, rtol=1e-4)
    np.testing.assert_allclose(got_sums.inertia, sums.inertia, rtol=1e-5)


@pytest.mark.gpu
@requires_gpu
def test_repeated_runs_are_bitwise_identical():
    import cupy as cp

    from gpuseg.kernels.cuda_fused import assign_accumulate_cuda
    from gpuseg.kernels.cuda_gemm import assign_accumulate_gemm_cuda

    X, centers, w = make_block(2_000_000, 16, 8, seed=1)
    X_dev, w_dev = cp.asarray(X), cp.asarray(w)
    for kernel, C in ((assign_accumulate_cuda, centers), (assign_accumulate_gemm_cuda, X[:512])):
        (a1, s1), (a2, s2) = kernel(X_dev, C, w_dev), kernel(X_dev, C, w_dev)
        np.testing.assert_array_equal(a1.labels.copy_to_host(), a2.labels.copy_to_host())
        assert s1.sums.tobytes() == s2.sums.tobytes() and s1.inertia == s2.inertia


@pytest.mark.gpu
@requires_gpu
def test_gemm_path_matches_cpu_gemm_path():
    import cupy as cp

    from gpuseg.kernels.cuda_gemm import assign_accumulate_gemm_cuda
    from gpuseg.kernels.gemm import assign_accumulate_gemm

    X, centers, w = make_block(200_000, 32, 1024, seed=2)
    expected, sums = assign_accumulate_gemm(X, centers, w)
    got, got_sums = assign_accumulate_gemm_cuda(cp.asarray(X), centers, cp.asarray(w))
    got = to_host(got)
    assert (got["labels"] == expected.labels).mean() >= 0.9999
    np.testing.assert_allclose(got_sums.weights.sum(), sums.weights.sum(), rtol=1e-9)
    np.testing.assert_allclose(got_sums.inertia, sums.inertia, rtol=1e-4)


@pytest.mark.gpu
@requires_gpu
def test_ten_million_rows_agree_with_the_cpu_from_the_same_centres():
    from gpuseg._backend import CPUBackend, CUDABackend

    X, centers, _ = make_block(10_000_000, 16, 8, seed=3)
    cpu_assignment, cpu_sums = CPUBackend().assign_accumulate(X, centers)
    gpu_assignment, gpu_sums = CUDABackend().assign_accumulate(X, centers)  # host path, batches
    assert (gpu_assignment.labels == cpu_assignment.labels).mean() >= 0.9999
    np.testing.assert_allclose(gpu_sums.sums, cpu_sums.sums, rtol=1e-5, atol=1e-3)


@pytest.mark.gpu
@requires_gpu
def test_backend_host_and_device_inputs_agree_and_seeding_distances_match():
    import cupy as cp

    from gpuseg._backend import CPUBackend, CUDABackend

    X, centers, w = make_block(500_000, 12, 16, seed=4)
    backend = CUDABackend()
    host, host_sums = backend.assign_accumulate(X, centers, w)
    device, device_sums = backend.assign_accumulate(cp.asarray(X), centers, cp.asarray(w))
    np.testing.assert_array_equal(host.labels, device.labels)
    np.testing.assert_allclose(host_sums.sums, device_sums.sums, rtol=1e-9)
    np.testing.assert_allclose(
        backend.squared_distances(X, centers[:3]),
        CPUBackend().squared_distances(X, centers[:3]),
        rtol=1e-4, atol=1e-4,
    )  # fmt: skip


@pytest.mark.gpu
@requires_gpu
def test_kmeans_fit_on_cuda_matches_cpu_fit():
    from sklearn.metrics import adjusted_rand_score

    from gpuseg import KMeans

    X, _, _ = make_block(300_000, 10, 12, seed=5)
    fits = {
        device: KMeans(n_clusters=12, random_state=0, n_init=1, device=device).fit(X)
        for device in ("cpu", "cuda")
    }
    assert adjusted_rand_score(fits["cpu"].labels_, fits["cuda"].labels_) >= 0.99
    np.testing.assert_allclose(fits["cuda"].inertia_, fits["cpu"].inertia_, rtol=1e-3)


@pytest.mark.gpu
@requires_gpu
def test_auto_picks_cuda_on_a_gpu_machine():
    from gpuseg._backend import get_backend

    assert get_backend("auto").name == "cuda"
    assert get_backend("cuda").name == "cuda"


def test_gpu_benchmark_dry_run_writes_json(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    args = bench_gpu.parse_args(["--dry-run", "--out", str(tmp_path / "gpu.json")])
    assert args.fit_rows == 2_000 and "fused_direct" in args.skip
    assert bench_gpu.main(["--dry-run", "--out", str(tmp_path / "gpu.json")]) == 0
    results = json.loads((tmp_path / "gpu.json").read_text())
    assert {"machine", "settings", "fits", "parquet"} <= set(results)
    assert results["fits"]["gpuseg-cpu"]["n_iter"] >= 1
    assert results["fits"]["gpuseg-cpu"]["inertia"] > 0
    assert results["parquet"]["rows"] == 2_000
    assert "versions_gpu" in results["machine"]
