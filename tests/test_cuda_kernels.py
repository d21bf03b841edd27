"""CUDA twins against the CPU kernels, run under numba's CUDA simulator on a few hundred rows.

The simulator must be switched on before ``numba.cuda`` is first imported, which in a whole-suite
run has usually happened already. So the CUDA side of every case runs once, in one subprocess
started with ``NUMBA_ENABLE_CUDASIM=1`` (this file run as a script), and the tests compare its
saved results with the CPU kernels here. Run with the simulator already on
(``NUMBA_ENABLE_CUDASIM=1 pytest tests/test_cuda_kernels.py``), the cases run in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _blocks import make_block

pytestmark = pytest.mark.cudasim

FIELDS = ("labels", "distances", "second_labels", "second_distances")


# name: (n_samples, n_features, n_clusters, seed, options). Layout keywords make a few hundred
# rows span several blocks and tiles; accumulator_bytes=0 sends the owners to global memory.
SMALL = {"threads": 32, "rows_per_block": 64}
CASES = {
    "default_weighted": (250, 5, 7, 0, {"weighted": True}),
    "blocks_weighted": (300, 5, 7, 1, {"weighted": True, "layout": SMALL}),
    "global_accumulators": (
        300, 5, 7, 2, {"weighted": True, "layout": {**SMALL, "accumulator_bytes": 0}},
    ),
    "classes_unweighted": (
        257, 5, 3, 3, {"layout": {"threads": 64, "rows_per_block": 128, "accumulator_bytes": 200}},
    ),
    "float64_weights": (200, 5, 4, 4, {"weighted": "float64", "layout": SMALL}),
    "one_cluster": (200, 5, 1, 5, {"layout": SMALL}),
    "assign_only": (300, 5, 7, 6, {"accumulate": False, "layout": SMALL}),
    "dots": (300, 9, 11, 7, {"weighted": True, "dots": True}),
    "dots_chunks": (300, 9, 11, 8, {"weighted": True, "dots": True, "layout": SMALL}),
    "backend_host": (200, 5, 7, 9, {"weighted": True, "backend": "host"}),
    "backend_device": (200, 5, 4, 10, {"backend": "device"}),
    "seeding": (300, 7, 4, 11, {"seeding": True}),
    "overflow": (40, 5, 3, 12, {"accumulate": False, "overflow": True}),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The CUDA side: runs where the simulator is on (a subprocess, or this process when it already is).
# ---------------------------------------------------------------------------------------------


def _run_case(X, centers, w, options):
    """Run one case on the (simulated) device; return a dict of NumPy results."""
    from numba import cuda

    from gpuseg._backend import CUDABackend
    from gpuseg.kernels import cuda_fused as cf
    from gpuseg.kernels import cuda_gemm
    from gpuseg.kernels.cuda_seeding import squared_distances_cuda

    n_samples, n_features = X.shape
    n_clusters = centers.shape[0]
    weighted = options.get("weighted")
    weights = None if not weighted else w.astype(np.float64 if weighted == "float64" else w.dtype)
    accumulate = options.get("accumulate", True)
    layout_options = options.get("layout")
    if options.get("seeding"):
        return {"distances": squared_distances_cuda(cuda.to_device(X), centers[:3])}
    if options.get("backend"):
        backend = CUDABackend(simulator_ok=True, batch_rows=128)
        X_in = X if options["backend"] == "host" else cuda.to_device(X)
        a, s = backend.assign_accumulate(X_in, centers, weights)
        a_only, _ = backend.assign_accumulate(X_in, centers, weights, accumulate=False)
        seeds = backend.squared_distances(X, centers[:2])
        seeds_again = backend.squared_distances(X, centers[2:4])
        result = {f: getattr(a, f) for f in FIELDS}
        result.update(sums=s.sums, weights=s.weights, inertia=np.float64(s.inertia))
        result.update(labels_only=a_only.labels, seeds=seeds, seeds_again=seeds_again)
        return result
    X_dev = cuda.to_device(X)
    if options.get("dots"):
        centers32 = np.ascontiguousarray(centers, dtype=np.float32)
        norms = np.einsum("ij,ij->i", centers32, centers32)
        out, partials = None, None
        chunk = 160 if layout_options else n_samples
        for start in range(0, n_samples, chunk):
            stop = min(start + chunk, n_samples)
            layout = cf.plan_layout(chunk, n_clusters, n_features, **(layout_options or {}))
            dots = centers32 @ X[start:stop].T
            w_dev = None if weights is None else cuda.to_device(weights)
            out, partials, _ = cuda_gemm.finish_dots_cuda(
                X_dev, centers32, norms, dots, start, w_dev,
                out=out, partials=partials, layout=layout,
            )  # fmt: skip
        sums = cf.fold_partials(partials)
        runs = [(out, sums)]
    else:
        layout = None
        if layout_options:
            layout = cf.plan_layout(n_samples, n_clusters, n_features, **layout_options)
        runs = [
            cf.assign_accumulate_cuda(X_dev, centers, weights, accumulate=accumulate, layout=layout)
            for _ in range(2 if options.get("layout") == SMALL else 1)
        ]
    result = {}
    for index, (a, s) in enumerate(runs):
        suffix = "" if index == 0 else f"_{index}"
        result.update({f + suffix: getattr(a, f).copy_to_host() for f in FIELDS})
        result.update(
            {"sums" + suffix: s.sums, "weights" + suffix: s.weights,
             "inertia" + suffix: np.float64(s.inertia)}
        )  # fmt: skip
    return result


def _run_all(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run every case on the simulator; results keyed ``"case/field"``."""
    from numba import config

    assert config.ENABLE_CUDASIM, "the CUDA side must run under NUMBA_ENABLE_CUDASIM=1"
    results = {}
    for name, (*_, options) in CASES.items():
        X, centers, w = (inputs[f"{name}/{k}"] for k in ("X", "centers", "w"))
        for field, value in _run_case(X, centers, w, options).items():
            results[f"{name}/{field}"] = np.asarray(value)
    from gpuseg._backend import CUDABackend

    try:
        CUDABackend()
    except ValueError as error:
        results["errors/simulator_refused"] = np.array(str(error))
    empty = {}
    from numba import cuda

    from gpuseg.kernels.cuda_fused import assign_accumulate_cuda

    a, s = assign_accumulate_cuda(cuda.to_device(np.zeros((0, 4), np.float32)), np.ones((3, 4)))
    empty.update(n_rows=np.int64(len(a)), inertia=np.float64(s.inertia), weights=s.weights)
    results.update({f"empty/{k}": v for k, v in empty.items()})
    return results


@pytest.fixture(scope="module")
def inputs():
    arrays = {}
    for name, (n_samples, n_features, n_clusters, seed, _) in CASES.items():
        X, centers, w = make_block(n_samples, n_features, n_clusters, seed)
        if CASES[name][-1].get("overflow"):
            # Centre 0's and 2's float32 distances overflow to inf; centre 1 is every row's own.
            X[:] = 1e19
            centers = np.array([[-1e19] * 5, [1e19] * 5, [0.0] * 5], dtype=np.float32)
        arrays.update({f"{name}/X": X, f"{name}/centers": centers, f"{name}/w": w})
    return arrays


@pytest.fixture(scope="module")
def cuda_results(inputs, tmp_path_factory):
    from numba import config

    if config.ENABLE_CUDASIM:
        return _run_all(inputs)
    folder = tmp_path_factory.mktemp("cudasim")
    np.savez(folder / "inputs.npz", **inputs)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(folder)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    with np.load(folder / "results.npz") as saved:
        return {key: saved[key] for key in saved.files}


def case(inputs, name):
    """Return ``(X, centers, weights or None, options)`` of a case as the CUDA side saw them."""
    options = CASES[name][-1]
    w = inputs[f"{name}/w"]
    weighted = options.get("weighted")
    weights = None if not weighted else w.astype(np.float64 if weighted == "float64" else w.dtype)
    return inputs[f"{name}/X"], inputs[f"{name}/centers"], weights, options


def assert_twins_agree(got, name, assignment, sums, accumulate=True, suffix=""):
    """Labels exactly, distances and sums to float32 and float64 rounding."""
    np.testing.assert_array_equal(got[f"{name}/labels{suffix}"], assignment.labels)
    np.testing.assert_array_equal(got[f"{name}/second_labels{suffix}"], assignment.second_labels)
    np.testing.assert_allclose(got[f"{name}/distances{suffix}"], assignment.distances, rtol=1e-5)
    np.testing.assert_allclose(
        got[f"{name}/second_distances{suffix}"], assignment.second_distances, rtol=1e-5
    )
    if not accumulate:
        assert not got[f"{name}/sums{suffix}"].any() and not got[f"{name}/weights{suffix}"].any()
        assert float(got[f"{name}/inertia{suffix}"]) == 0.0
        return
    np.testing.assert_allclose(got[f"{name}/sums{suffix}"], sums.sums, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got[f"{name}/weights{suffix}"], sums.weights, rtol=1e-12)
    np.testing.assert_allclose(float(got[f"{name}/inertia{suffix}"]), sums.inertia, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# The tests: CPU twins here, CUDA results from the simulator.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["default_weighted", "blocks_weighted", "global_accumulators", "classes_unweighted",
     "float64_weights", "one_cluster", "assign_only", "overflow"],
)  # fmt: skip
def test_direct_kernel_matches_cpu_twin(inputs, cuda_results, name):
    from gpuseg.kernels.fused import assign_accumulate
    from gpuseg.kernels.types import ClusterSums

    X, centers, weights, options = case(inputs, name)
    accumulate = options.get("accumulate", True)
    if weights is not None and weights.dtype == np.float64:
        # The CPU twin would compile again for float64 weights: sum them here instead.
        assignment, _ = assign_accumulate(X, centers)
        sums = ClusterSums.zeros(*centers.shape)
        np.add.at(sums.sums, assignment.labels, weights[:, None] * X.astype(np.float64))
        sums.weights = np.bincount(assignment.labels, weights, minlength=len(centers))
        sums.inertia = float(weights @ assignment.distances.astype(np.float64))
    else:
        assignment, sums = assign_accumulate(X, centers, weights, accumulate=accumulate)
    assert_twins_agree(cuda_results, name, assignment, sums, accumulate)
    if centers.shape[0] == 1 or options.get("overflow"):
        assert (cuda_results[f"{name}/second_labels"] == -1).all()
        assert np.isinf(cuda_results[f"{name}/second_distances"]).all()
    if options.get("overflow"):
        assert (cuda_results[f"{name}/labels"] == 1).all()


@pytest.mark.parametrize("name", ["dots", "dots_chunks"])
def test_finish_kernel_on_numpy_products_matches_cpu_gemm_path(inputs, cuda_results, name):
    from gpuseg.kernels.gemm import assign_accumulate_gemm

    X, centers, weights, _ = case(inputs, name)
    assignment, sums = assign_accumulate_gemm(X, centers, weights)
    assert_twins_agree(cuda_results, name, assignment, sums)


@pytest.mark.parametrize("name", ["blocks_weighted", "one_cluster", "float64_weights"])
def test_repeated_runs_are_bitwise_identical(cuda_results, name):
    for field in (*FIELDS, "sums", "weights", "inertia"):
        first, second = cuda_results[f"{name}/{field}"], cuda_results[f"{name}/{field}_1"]
        assert first.tobytes() == second.tobytes(), field


def test_blocks_and_owners_do_not_change_the_labels(cuda_results):
    # The same rows through one block with shared replicas and through five blocks whose owners
    # add straight into global memory: the labels agree exactly, the totals to rounding.
    from gpuseg.kernels.fused import assign_accumulate

    X, centers, w = make_block(300, 5, 7, 2)
    assignment, sums = assign_accumulate(X, centers, w)
    assert_twins_agree(cuda_results, "global_accumulators", assignment, sums)


@pytest.mark.parametrize("name", ["backend_host", "backend_device"])
def test_cuda_backend_returns_host_results_like_the_cpu_backend(inputs, cuda_results, name):
    from gpuseg._backend import CPUBackend

    X, centers, weights, _ = case(inputs, name)
    cpu = CPUBackend()
    assignment, sums = cpu.assign_accumulate(X, centers, weights)
    assert_twins_agree(cuda_results, name, assignment, sums)
    np.testing.assert_array_equal(cuda_results[f"{name}/labels_only"], assignment.labels)
    np.testing.assert_allclose(
        cuda_results[f"{name}/seeds"], cpu.squared_distances(X, centers[:2]), rtol=1e-5
    )
    np.testing.assert_allclose(
        cuda_results[f"{name}/seeds_again"], cpu.squared_distances(X, centers[2:4]), rtol=1e-5
    )


def test_seeding_distances_match_cpu_twin(inputs, cuda_results):
    from gpuseg.kernels.seeding import squared_distances

    X, centers, _, _ = case(inputs, "seeding")
    expected = squared_distances(X, centers[:3])
    got = cuda_results["seeding/distances"]
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_empty_block_gives_empty_results(cuda_results):
    assert int(cuda_results["empty/n_rows"]) == 0
    assert float(cuda_results["empty/inertia"]) == 0.0
    assert not cuda_results["empty/weights"].any()


def test_simulator_backend_needs_opting_in(cuda_results):
    assert "simulator_ok=True" in str(cuda_results["errors/simulator_refused"])


# ---------------------------------------------------------------------------------------------
# Host-side pieces, no device needed.
# ---------------------------------------------------------------------------------------------


def test_helpers_compiled_for_the_cpu_agree_with_their_python_bodies():
    from gpuseg.kernels import cuda_fused as cf

    X, centers, _ = make_block(50, 6, 5, 12)
    for i in range(len(X)):
        assert cf.nearest_two_cpu(X, i, centers, 5, 6) == cf._make_nearest_two(
            cf._squared_distance, cf._fold_top2
        )(X, i, centers, 5, 6)
    assert cf.fold_top2_cpu(np.float32(1.0), 3, np.float32(1.0), 0, np.float32(2.0), 1) == (
        1.0, 0, 1.0, 3,
    )  # fmt: skip


def test_layout_depends_only_on_the_shape():
    from gpuseg.kernels.cuda_fused import plan_layout

    small = plan_layout(100_000_000, 8, 16)
    assert (small.threads, small.stage_rows, small.replicas) == (256, True, 10)
    assert small.n_blocks * small.rows_per_block >= 100_000_000
    big = plan_layout(10_000_000, 1024, 32)
    assert big.replicas == 0 and big.classes * big.lanes <= big.threads
    assert big.n_blocks * 1024 * 34 * 8 <= 256 * 2**20
    assert plan_layout(0, 3, 4).n_blocks == 1


def test_dispatch_picks_the_matrix_product_path_by_size():
    from gpuseg.kernels.cuda_gemm import uses_gemm_cuda

    assert not uses_gemm_cuda(8, 16)
    assert uses_gemm_cuda(1024, 32)
    assert not uses_gemm_cuda(4096, 8)


@pytest.mark.parametrize(
    ("X", "centers", "match"),
    [
        (np.zeros((4, 3), np.float32), np.zeros((2, 3), np.float32), "2-D float32 device array"),
    ],
)
def test_device_entry_point_names_the_bad_argument(X, centers, match):
    from gpuseg.kernels.cuda_fused import check_device_block

    with pytest.raises(ValueError, match=match):
        check_device_block(X, centers, None)


def test_cuda_backend_without_a_device_says_so():
    from numba import config

    from gpuseg._backend import CUDABackend, _cuda_visible

    if config.ENABLE_CUDASIM or _cuda_visible():
        pytest.skip("a CUDA device (or the simulator) is visible")
    with pytest.raises(ValueError, match="no CUDA device is visible; use device='cpu' or 'auto'"):
        CUDABackend()


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    with np.load(folder / "inputs.npz") as saved:
        loaded = {key: saved[key] for key in saved.files}
    np.savez(folder / "results.npz", **_run_all(loaded))
    print(json.dumps({"cases": len(CASES)}))
