"""Lloyd passes that keep only the labels, and counting rows per label."""

import numpy as np
import pytest

from gpuseg import KMeans
from gpuseg._backend import CPUBackend
from gpuseg._lloyd import nearest_labels, run_pass
from gpuseg.batches import ArraySource
from gpuseg.kernels.counts import label_counts
from gpuseg.kernels.types import Assignment, LabelsOnly, ReusedBlock


def _nearest_f64(X, centers):
    d = ((X.astype(np.float64)[:, None, :] - centers.astype(np.float64)[None]) ** 2).sum(-1)
    return d.argmin(axis=1)


@pytest.mark.parametrize("block_rows", [777, 1024, 5000])
def test_labels_only_pass_writes_every_blocks_labels(block_rows):
    rng = np.random.default_rng()
    X = rng.standard_normal((5000, 6)).astype(np.float32)
    centers = rng.standard_normal((7, 6)).astype(np.float32)
    source = ArraySource(X, None, block_rows=block_rows)
    full, labels_only = Assignment.empty(len(X)), LabelsOnly.empty(len(X))
    full.labels[:] = labels_only.labels[:] = -1
    sums_full = run_pass(source, centers, CPUBackend(), full)
    sums_labels = run_pass(source, centers, CPUBackend(), labels_only)
    np.testing.assert_array_equal(labels_only.labels, full.labels)
    np.testing.assert_array_equal(labels_only.labels, _nearest_f64(X, centers))
    np.testing.assert_array_equal(sums_labels.sums, sums_full.sums)
    assert sums_labels.inertia == sums_full.inertia


def test_nearest_labels_of_every_block():
    rng = np.random.default_rng()
    X = rng.standard_normal((2000, 3)).astype(np.float32)
    centers = rng.standard_normal((5, 3))
    labels = nearest_labels(ArraySource(X, block_rows=333), centers, CPUBackend())
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, _nearest_f64(X, centers))


def test_score_is_minus_the_fit_inertia_on_the_same_rows():
    rng = np.random.default_rng()
    X = rng.standard_normal((3000, 4))
    weights = rng.uniform(0.5, 2.0, len(X))
    km = KMeans(n_clusters=4, random_state=int(rng.integers(1000))).fit(X, sample_weight=weights)
    assert km.score(X, sample_weight=weights) == -km.inertia_


def test_labels_only_views_share_one_scratch_block():
    labels_only = LabelsOnly.empty(100)
    first, second = labels_only.view(0, 40), labels_only.view(40, 70)
    assert np.shares_memory(first.labels, labels_only.labels[:40])
    assert np.shares_memory(second.labels, labels_only.labels[40:70])
    assert np.shares_memory(first.distances, second.distances)
    assert len(second.second_distances) == 30 and len(first.second_labels) == 40


def test_reused_block_grows_for_a_longer_block_and_keeps_its_memory():
    outputs = ReusedBlock()
    short, longer, again = outputs.view(0, 10), outputs.view(10, 50), outputs.view(50, 60)
    assert len(short) == 10 and len(longer) == 40 and len(again) == 10
    assert not np.shares_memory(short.labels, longer.labels)
    assert np.shares_memory(longer.labels, again.labels)
    assert np.shares_memory(longer.second_distances, again.second_distances)


def test_pass_without_outputs_matches_one_with_every_row():
    rng = np.random.default_rng()
    X = rng.standard_normal((4000, 5)).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, len(X)).astype(np.float32)
    centers = rng.standard_normal((6, 5)).astype(np.float32)
    source = ArraySource(X, weights, block_rows=900)
    kept = run_pass(source, centers, CPUBackend(), Assignment.empty(len(X)))
    reused = run_pass(source, centers, CPUBackend())
    np.testing.assert_array_equal(reused.sums, kept.sums)
    np.testing.assert_array_equal(reused.weights, kept.weights)
    assert reused.inertia == kept.inertia
    labels = _nearest_f64(X, centers)
    np.testing.assert_allclose(kept.weights, np.bincount(labels, weights=weights, minlength=6))


def test_label_counts_matches_bincount():
    rng = np.random.default_rng()
    labels = rng.integers(0, 11, 10_001).astype(np.int32)
    np.testing.assert_array_equal(label_counts(labels, 13), np.bincount(labels, minlength=13))
    assert label_counts(labels[:0], 3).tolist() == [0, 0, 0]


@pytest.mark.parametrize("bad", [-1, 11])
def test_label_counts_rejects_a_label_out_of_range(bad):
    labels = np.array([0, 3, bad, 2], dtype=np.int32)
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        label_counts(labels, 11)


def test_fit_cluster_sizes_count_the_labels():
    rng = np.random.default_rng()
    X = rng.standard_normal((3000, 4))
    km = KMeans(n_clusters=5, random_state=int(rng.integers(1000))).fit(X)
    np.testing.assert_array_equal(km.cluster_sizes_, np.bincount(km.labels_, minlength=5))
    np.testing.assert_array_equal(km.labels_, km.predict(X))


def test_partition_sums_through_a_reused_block_match_a_fresh_pass():
    from gpuseg.batches import Batch
    from gpuseg.kernels import assign_accumulate
    from gpuseg.partition_tasks import partition_sums

    rng = np.random.default_rng()
    centers = rng.standard_normal((5, 4)).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, 1200).astype(np.float32)
    for n_rows in (300, 1200, 50, 800, 1200, 7):  # the block grows, then serves shorter ones
        X = rng.standard_normal((n_rows, 4)).astype(np.float32)
        got = partition_sums(Batch(X, weights[:n_rows]), centers, CPUBackend())
        _, expected = assign_accumulate(X, centers, weights[:n_rows])
        np.testing.assert_array_equal(got.sums, expected.sums)
        np.testing.assert_array_equal(got.weights, expected.weights)
        assert got.inertia == expected.inertia
