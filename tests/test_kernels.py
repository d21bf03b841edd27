"""CPU fused pass (direct kernel and matrix-product path) against a float64 NumPy oracle."""

import sys

import numba
import numpy as np
import pytest

from gpuseg.kernels import assign_accumulate, fused, uses_gemm
from gpuseg.kernels._layout import STREAMING_MIN_ROWS
from gpuseg.kernels.fused import assign_accumulate as assign_accumulate_direct
from gpuseg.kernels.gemm import assign_accumulate_gemm
from gpuseg.kernels.types import Assignment

KERNELS = [assign_accumulate_direct, assign_accumulate_gemm]

# The direct kernel compiles once per n_features (a few seconds each). The tests share a few: rows
# narrower than one 16-float vector (5, 6), exactly one (16), one and a part (21) and wider than
# the unrolled limit (70), and 8 and 12, which (with 16) are transposed from 128-bit loads;
# centre counts that are not a multiple of fused.CENTER_BLOCK, and row counts that are not a
# multiple of the 16-row tile.


def make_block(n_samples, n_features, n_clusters, seed=None):
    """Asymmetric data: per-feature scales and offsets differ, centres drawn from the rows."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 5.0, n_features)
    offsets = rng.uniform(-3.0, 3.0, n_features)
    X = (rng.standard_normal((n_samples, n_features)) * scales + offsets).astype(np.float32)
    if n_samples >= n_clusters:
        centers = X[rng.choice(n_samples, n_clusters, replace=False)].copy()
    else:
        centers = (rng.standard_normal((n_clusters, n_features)) * scales).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, n_samples).astype(np.float32)
    return X, centers, weights


def squared_distances(X, centers):
    """Float64 squared distances, ``(n_samples, n_clusters)``."""
    return ((X[:, None, :].astype(np.float64) - centers[None].astype(np.float64)) ** 2).sum(-1)


def oracle(X, centers, weights, labels=None):
    """Float64 NumPy pass: labels, runner-up labels, distances, sums, weight totals, inertia.

    With ``labels``, the distances and totals are those of the rows assigned that way.
    """
    d2 = squared_distances(X, centers)
    order = np.argsort(d2, axis=1, kind="stable")
    labels = order[:, 0] if labels is None else np.asarray(labels)
    w = np.ones(len(X)) if weights is None else weights.astype(np.float64)
    sums = np.zeros(centers.shape)
    np.add.at(sums, labels, w[:, None] * X.astype(np.float64))
    totals = np.bincount(labels, weights=w, minlength=len(centers))
    best = d2[np.arange(len(X)), labels]
    return labels, order[:, 1] if len(centers) > 1 else None, best, sums, totals, (w * best).sum()


def assert_choices_match(chosen, wanted, X, centers):
    """Assert every row's chosen centre is the float64 oracle's, or a near-tie of it.

    The kernels decide in float32 (the matrix-product path on ``|c|^2 - 2 x.c``), so a centre
    whose float64 distance lies within that arithmetic's rounding of the oracle's choice, about
    ``1e-5 * (1 + |x|^2 + |c|^2)``, may be taken instead; any other difference fails.
    """
    d2 = squared_distances(X, centers)
    rows = np.flatnonzero(chosen != wanted)
    scale = 1.0 + (X[rows].astype(np.float64) ** 2).sum(1)
    scale += (centers.astype(np.float64) ** 2).sum(1).max()
    gap = np.abs(d2[rows, chosen[rows]] - d2[rows, wanted[rows]])
    assert (gap <= 1e-5 * scale).all(), f"rows {rows[gap > 1e-5 * scale][:10]} differ"


def assert_matches_oracle(X, centers, weights, assignment, cluster_sums):
    """Assert that a pass's per-row results are the float64 oracle's (up to near-ties, see
    :func:`assert_choices_match`) and its totals are those of its own labels, in float64."""
    labels, second, *_ = oracle(X, centers, weights)
    assert_choices_match(assignment.labels, labels, X, centers)
    _, _, best, sums, totals, inertia = oracle(X, centers, weights, labels=assignment.labels)
    np.testing.assert_allclose(assignment.distances, best, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cluster_sums.sums, sums, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cluster_sums.weights, totals, rtol=1e-12)
    np.testing.assert_allclose(cluster_sums.inertia, inertia, rtol=1e-6)
    if len(centers) == 1:
        assert (assignment.second_labels == -1).all()
        assert np.isinf(assignment.second_distances).all()
    else:
        assert_choices_match(assignment.second_labels, second, X, centers)
        assert (assignment.second_labels != assignment.labels).all()
        d2 = squared_distances(X, centers)[np.arange(len(X)), assignment.second_labels]
        np.testing.assert_allclose(assignment.second_distances, d2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    ("n_samples", "n_features", "n_clusters"),
    [
        (3001, 5, 7),
        (2500, 16, 3),
        (700, 6, 40),
        (1000, 5, 1),
        (1, 6, 4),
        (517, 21, 13),
        (300, 70, 9),
        (2000, 16, 16),
        (1203, 12, 6),
        (900, 8, 11),
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_pass_matches_float64_oracle(kernel, n_samples, n_features, n_clusters, weighted):
    X, centers, w = make_block(n_samples, n_features, n_clusters)
    w = w if weighted else None
    assignment, cluster_sums = kernel(X, centers, w)
    assert_matches_oracle(X, centers, w, assignment, cluster_sums)


@pytest.mark.parametrize("kernel", KERNELS)
def test_empty_block_gives_empty_results(kernel):
    assignment, cluster_sums = kernel(np.zeros((0, 5), np.float32), np.ones((3, 5), np.float32))
    assert len(assignment) == 0
    assert cluster_sums.inertia == 0.0 and not cluster_sums.weights.any()


@pytest.mark.parametrize("kernel", KERNELS)
def test_ties_go_to_the_lower_index(kernel):
    X = np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32)
    centers = np.array([[5, 5, 5, 5, 5], [0, 0, 0, 0, 0], [2, 0, 0, 0, 0]], dtype=np.float32)
    assignment, _ = kernel(X, centers)
    assert assignment.labels.tolist() == [1, 1]
    assert assignment.second_labels.tolist() == [2, 2]


@pytest.mark.parametrize("n_features", [5, 16])
@pytest.mark.parametrize("n_clusters", [2, 3, 8, 9, 17, 40])
def test_ties_everywhere_match_a_stable_sort(n_features, n_clusters):
    # Small integers: every distance is exact in float32 and most rows tie between several
    # centres, some of them repeated, within a block of centres and across blocks.
    rng = np.random.default_rng()
    X = rng.integers(0, 3, (3001, n_features)).astype(np.float32)
    centers = rng.integers(0, 3, (n_clusters, n_features)).astype(np.float32)
    centers[-1] = centers[0]
    labels, second, *_ = oracle(X, centers, None)
    assignment, _ = assign_accumulate_direct(X, centers, accumulate=False)
    np.testing.assert_array_equal(assignment.labels, labels)
    np.testing.assert_array_equal(assignment.second_labels, second)


@pytest.mark.parametrize("kernel", KERNELS)
def test_predict_only_fills_labels_and_leaves_sums_zero(kernel):
    X, centers, _ = make_block(2000, 6, 9)
    labels, second, *_ = oracle(X, centers, None)
    out = Assignment.empty(len(X))
    assignment, cluster_sums = kernel(X, centers, accumulate=False, out=out)
    assert assignment is out
    assert_choices_match(out.labels, labels, X, centers)
    assert_choices_match(out.second_labels, second, X, centers)
    assert not cluster_sums.sums.any() and not cluster_sums.weights.any()
    assert cluster_sums.inertia == 0.0


@pytest.mark.parametrize("kernel", KERNELS)
def test_results_do_not_depend_on_the_thread_count(kernel):
    X, centers, w = make_block(40_000, 16, 5, seed=1)
    runs = []
    default = numba.get_num_threads()
    try:
        for n_threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(n_threads)
            runs.append(kernel(X, centers, w))
    finally:
        numba.set_num_threads(default)
    (a1, s1), (a2, s2) = runs
    for field in ("labels", "distances", "second_labels", "second_distances"):
        np.testing.assert_array_equal(getattr(a1, field), getattr(a2, field))
    assert s1.sums.tobytes() == s2.sums.tobytes()
    assert s1.weights.tobytes() == s2.weights.tobytes()
    assert s1.inertia == s2.inertia


def test_chunks_of_any_length_match_the_oracle(monkeypatch):
    X, centers, w = make_block(5000, 16, 11, seed=3)
    labels, second, best, sums, totals, inertia = oracle(X, centers, w)
    # 1001-row chunks: every chunk but the last ends in a short tile, copied out before transposing.
    monkeypatch.setattr(fused, "chunk_layout", lambda n_samples, *_: (-(-n_samples // 1001), 1001))
    assignment, cluster_sums = assign_accumulate_direct(X, centers, w)
    np.testing.assert_array_equal(assignment.labels, labels)
    np.testing.assert_array_equal(assignment.second_labels, second)
    np.testing.assert_allclose(assignment.distances, best, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cluster_sums.sums, sums, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cluster_sums.weights, totals, rtol=1e-12)
    np.testing.assert_allclose(cluster_sums.inertia, inertia, rtol=1e-6)


@pytest.mark.parametrize("n_clusters", [1, 5, 8])
@pytest.mark.parametrize("weighted", [False, True])
def test_few_centres_add_into_copies_of_the_totals_and_match_the_oracle(
    monkeypatch, n_clusters, weighted
):
    X, centers, w = make_block(5000, 16, n_clusters, seed=n_clusters)
    w = w if weighted else None
    labels, _, best, sums, totals, inertia = oracle(X, centers, w)
    assert fused.sum_groups(n_clusters) > 1
    # 1001-row chunks: the short last tile of each chunk goes through accumulate_rows.
    monkeypatch.setattr(fused, "chunk_layout", lambda n_samples, *_: (-(-n_samples // 1001), 1001))
    assignment, cluster_sums = assign_accumulate_direct(X, centers, w)
    np.testing.assert_array_equal(assignment.labels, labels)
    np.testing.assert_allclose(assignment.distances, best, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cluster_sums.sums, sums, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cluster_sums.weights, totals, rtol=1e-12)
    np.testing.assert_allclose(cluster_sums.inertia, inertia, rtol=1e-6)


def test_partials_are_folded_chunk_by_chunk_and_copy_by_copy():
    rng = np.random.default_rng()
    n_chunks, n_groups, n_clusters, n_features = 3, 4, 5, 6
    sums_p = rng.standard_normal((n_chunks, n_groups * n_clusters, n_features))
    weights_p = rng.uniform(0, 1, (n_chunks, n_groups * n_clusters))
    inertia_p = rng.uniform(0, 1, n_chunks)
    total = fused.reduce_partials(sums_p, weights_p, inertia_p, n_clusters)
    expected_sums = np.zeros((n_clusters, n_features))
    expected_weights = np.zeros(n_clusters)
    for chunk in range(n_chunks):
        for group in range(n_groups):
            rows = slice(group * n_clusters, (group + 1) * n_clusters)
            expected_sums += sums_p[chunk, rows]
            expected_weights += weights_p[chunk, rows]
    np.testing.assert_array_equal(total.sums, expected_sums)
    np.testing.assert_array_equal(total.weights, expected_weights)
    assert total.inertia == inertia_p[0] + inertia_p[1] + inertia_p[2]


def test_padding_centres_are_never_picked():
    # Rows far from every real centre: their distances overflow to inf, as a +inf padding centre's
    # do; the strict comparisons keep centre 0 and no runner-up rather than a padding index.
    X = np.full((3, 16), 1e30, dtype=np.float32)
    centers = np.zeros((3, 16), dtype=np.float32)
    assignment, _ = assign_accumulate_direct(X, centers, accumulate=False)
    assert assignment.labels.tolist() == [0, 0, 0]
    assert assignment.second_labels.tolist() == [-1, -1, -1]


def test_a_runner_up_at_infinity_is_none():
    # Centre 0's distance overflows to inf and centre 1 is the nearest: no runner-up is reported
    # at +inf, whichever centre it would have been.
    X = np.full((2, 16), 1e30, dtype=np.float32)
    centers = np.stack([np.full(16, -1e30), np.full(16, 1e30)]).astype(np.float32)
    assignment, _ = assign_accumulate_direct(X, centers, accumulate=False)
    assert assignment.labels.tolist() == [1, 1]
    assert assignment.second_labels.tolist() == [-1, -1]
    assert np.isinf(assignment.second_distances).all()
    # The matrix-product path orders on |c|^2 - 2x.c, finite here, then recomputes the winners'
    # distances, which overflow: its runner-up is none as well.
    X = np.full((2, 5), 1e19, dtype=np.float32)
    centers = np.array([[1.0] * 5, [2.0] * 5], dtype=np.float32)
    assignment, _ = assign_accumulate_gemm(X, centers, accumulate=False)
    assert assignment.labels.tolist() == [1, 1]
    assert assignment.second_labels.tolist() == [-1, -1]
    assert np.isinf(assignment.second_distances).all()


@pytest.mark.parametrize("kernel", KERNELS)
def test_repeated_runs_are_bitwise_identical(kernel):
    X, centers, w = make_block(30_000, 5, 11, seed=2)
    (a1, s1), (a2, s2) = kernel(X, centers, w), kernel(X, centers, w)
    np.testing.assert_array_equal(a1.labels, a2.labels)
    assert s1.sums.tobytes() == s2.sums.tobytes() and s1.inertia == s2.inertia


def test_dispatch_picks_the_path_by_size():
    assert not uses_gemm(8, 16)
    assert not uses_gemm(1024, 64)
    assert not uses_gemm(256, 256)
    assert uses_gemm(1024, 128)
    assert uses_gemm(4096, 256)
    X, centers, _ = make_block(500, 5, 3)
    assignment, _ = assign_accumulate(X, centers)
    assert_choices_match(assignment.labels, oracle(X, centers, None)[0], X, centers)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    ("X", "centers", "weights", "match"),
    [
        (np.zeros((4, 3)), np.zeros((2, 3), np.float32), None, "X must be a 2-D float32"),
        (np.zeros(4, np.float32), np.zeros((2, 3), np.float32), None, "X must be a 2-D float32"),
        (np.zeros((3, 4), np.float32).T, np.zeros((2, 3), np.float32), None, "X must be C-contig"),
        (np.zeros((4, 3), np.float32), np.zeros((2, 5), np.float32), None, r"centers must have"),
        (np.zeros((4, 3), np.float32), np.zeros((0, 3), np.float32), None, r"centers must have"),
        (np.zeros((4, 3), np.float32), np.zeros((2, 3), np.float32), np.ones(5), "sample_weight"),
    ],
)
def test_bad_shapes_and_dtypes_name_the_argument(kernel, X, centers, weights, match):
    with pytest.raises(ValueError, match=match):
        kernel(X, centers, weights)


def test_streamed_outputs_equal_cached_ones():
    # Long blocks write their per-row outputs with non-temporal stores when the outputs start on a
    # 64-byte boundary; misaligned outputs take the ordinary stores. Both must agree, and with
    # the oracle.
    X, centers, w = make_block(STREAMING_MIN_ROWS + 37, 6, 7, seed=4)
    aligned = Assignment.empty(len(X))
    buffers = [np.empty(len(X) + 1, dtype=a.dtype) for a in vars(aligned).values()]
    misaligned = Assignment(*(b[1:] if b.ctypes.data % 64 == 0 else b[:-1] for b in buffers))
    assert fused.streams_outputs(tuple(vars(aligned).values()))
    assert not fused.streams_outputs(tuple(vars(misaligned).values()))
    streamed, s1 = assign_accumulate_direct(X, centers, w, out=aligned)
    cached, s2 = assign_accumulate_direct(X, centers, w, out=misaligned)
    for field in ("labels", "distances", "second_labels", "second_distances"):
        np.testing.assert_array_equal(getattr(streamed, field), getattr(cached, field))
    assert s1.sums.tobytes() == s2.sums.tobytes() and s1.inertia == s2.inertia
    rows = slice(0, 20_000)
    labels, second, best, *_ = oracle(X[rows], centers, w[rows])
    np.testing.assert_array_equal(streamed.labels[rows], labels)
    np.testing.assert_array_equal(streamed.second_labels[rows], second)
    np.testing.assert_allclose(streamed.distances[rows], best, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(sys.platform != "linux", reason="mprotect through libc")
@pytest.mark.parametrize("n_features", [5, 12, 16, 21])
@pytest.mark.parametrize("weighted", [False, True])
def test_rows_ending_on_an_unreadable_page(n_features, weighted):
    # The direct kernel prefetches rows a few tiles ahead of the one it computes, past the end of
    # the block at its last tiles, and loads rows in vectors. A block whose last row ends where an
    # unreadable page begins must still give the oracle's answer, not a fault.
    import mmap

    n_samples = 16 * 5 + 3
    n_bytes = n_samples * n_features * 4
    page = mmap.PAGESIZE
    n_pages = -(-n_bytes // page) + 1
    buffer = mmap.mmap(-1, n_pages * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    start = (n_pages - 1) * page - n_bytes
    X = np.frombuffer(buffer, np.float32, n_samples * n_features, start)
    X = X.reshape(n_samples, n_features)
    source, centers, w = make_block(n_samples, n_features, 4, seed=6)
    w = w if weighted else None
    X[:] = source
    guard = np.frombuffer(buffer, np.uint8, page, (n_pages - 1) * page)
    _protect(guard.ctypes.data, page)
    try:
        assignment, cluster_sums = assign_accumulate_direct(X, centers, w)
        assert_matches_oracle(source, centers, w, assignment, cluster_sums)
    finally:
        _protect(guard.ctypes.data, page, writable=True)
        del X, guard
        buffer.close()


def _protect(address: int, size: int, writable: bool = False) -> None:
    """``mprotect`` a page: no access, or read and write again."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    prot = mmap.PROT_READ | mmap.PROT_WRITE if writable else 0  # PROT_NONE
    if libc.mprotect(ctypes.c_void_p(address), ctypes.c_size_t(size), prot) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")


@pytest.mark.parametrize(
    ("n_samples", "n_features", "n_clusters", "weighted"),
    [(5000, 16, 8, False), (3001, 5, 13, True), (2000, 8, 70, False), (999, 3, 1, True),
     (1500, 70, 9, False)],
)  # fmt: skip
def test_nearest_only_pass_gives_the_same_labels_distances_and_totals(
    n_samples, n_features, n_clusters, weighted
):
    rng = np.random.default_rng()
    X = np.round(rng.standard_normal((n_samples, n_features)) * 2).astype(np.float32)  # ties
    weights = rng.uniform(0.5, 2.0, n_samples).astype(np.float32) if weighted else None
    centers = X[rng.choice(n_samples, n_clusters, replace=False)]
    full, full_sums = assign_accumulate_direct(X, centers, weights)
    out = Assignment.empty(n_samples)
    out.second_labels[:] = 7
    out.second_distances[:] = 7.0
    nearest, sums = assign_accumulate_direct(X, centers, weights, out=out, runner_up=False)
    np.testing.assert_array_equal(nearest.labels, full.labels)
    np.testing.assert_array_equal(nearest.distances, full.distances)
    np.testing.assert_array_equal(sums.sums, full_sums.sums)
    np.testing.assert_array_equal(sums.weights, full_sums.weights)
    assert sums.inertia == full_sums.inertia
    assert (nearest.second_labels == 7).all() and (nearest.second_distances == 7.0).all()
