"""Drift between two runs: migration matrix, PSI of the shares, centre shift, spread."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from gpuseg import KMeans
from gpuseg.batches import ArraySource
from gpuseg.drift import (
    GONE_COLUMN,
    NEW_ROW,
    centre_shift,
    migration_matrix,
    psi,
    psi_level,
    segment_shares,
    spread_over,
)


def labels_frame(ids, segments):
    return pd.DataFrame({"customer_id": ids, "segment": np.asarray(segments, dtype=np.int32)})


def test_a_run_against_itself_does_not_drift():
    rng = np.random.default_rng()
    labels = labels_frame(rng.permutation(500) * 7, rng.integers(0, 5, 500))
    shuffled = labels.sample(frac=1.0, random_state=1)
    matrix = migration_matrix(labels, shuffled)
    sizes = np.bincount(labels["segment"], minlength=5)
    np.testing.assert_array_equal(matrix.loc[range(5), range(5)].to_numpy(), np.diag(sizes))
    assert matrix.loc[NEW_ROW].sum() == 0 and matrix[GONE_COLUMN].sum() == 0
    shares = segment_shares(labels["segment"], 5)
    assert psi(shares, shares) == 0.0
    centers = rng.standard_normal((5, 3))
    shift = centre_shift(centers, centers)
    np.testing.assert_array_equal(shift.old_to_new, np.arange(5))
    np.testing.assert_array_equal(shift.distance, 0.0)
    np.testing.assert_array_equal(shift.shift, 0.0)


def test_migration_rows_sum_to_old_sizes_and_columns_to_new_sizes():
    rng = np.random.default_rng()
    old = labels_frame(np.arange(0, 1000), rng.integers(0, 4, 1000))
    new = labels_frame(np.arange(200, 1300), rng.integers(0, 6, 1100))
    matrix = migration_matrix(old, pa.Table.from_pandas(new), n_old=5)
    assert list(matrix.index) == [0, 1, 2, 3, 4, NEW_ROW]
    assert list(matrix.columns) == [0, 1, 2, 3, 4, 5, GONE_COLUMN]
    old_sizes = np.bincount(old["segment"], minlength=5)
    np.testing.assert_array_equal(matrix.loc[range(5)].sum(axis=1), old_sizes)
    np.testing.assert_array_equal(
        matrix[range(6)].sum(axis=0), np.bincount(new["segment"], minlength=6)
    )
    assert matrix.loc[NEW_ROW].sum() == 300 and matrix[GONE_COLUMN].sum() == 200
    both = old.merge(new, on="customer_id", suffixes=("_old", "_new"))
    expected = pd.crosstab(both["segment_old"], both["segment_new"])
    np.testing.assert_array_equal(matrix.loc[range(4), range(6)].to_numpy(), expected.to_numpy())
    assert matrix.loc[4].sum() == 0


def test_migration_reads_labels_parquet(tmp_path):
    rng = np.random.default_rng()
    old = labels_frame(np.arange(300), rng.integers(0, 3, 300))
    directory = tmp_path / "labels"
    directory.mkdir()
    old.iloc[:100].to_parquet(directory / "part-00000.parquet")
    old.iloc[100:].to_parquet(directory / "part-00001.parquet")
    (directory / "_SUCCESS").write_text("{}")
    matrix = migration_matrix(directory, old)
    np.testing.assert_array_equal(
        np.diag(matrix.loc[range(3), range(3)]), np.bincount(old["segment"])
    )


def test_migration_errors():
    old = labels_frame([1, 1, 2], [0, 1, 0])
    with pytest.raises(ValueError, match="old labels have 1 duplicate customer_id values"):
        migration_matrix(old, old.iloc[:1])
    with pytest.raises(ValueError, match="new labels have no column 'segment'"):
        migration_matrix(old.iloc[1:], pd.DataFrame({"customer_id": [1]}))
    with pytest.raises(ValueError, match="segment 1 is out of range for n=1 segments"):
        migration_matrix(old.iloc[1:], old.iloc[1:], n_old=1)
    with pytest.raises(TypeError, match="old labels should be a DataFrame"):
        migration_matrix([1, 2], old)


def test_psi_against_the_formula():
    rng = np.random.default_rng()
    p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    assert psi(p, q) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    assert psi(p * 1000, q * 7) == pytest.approx(psi(p, q), rel=1e-12)
    assert psi(p, q) == pytest.approx(psi(q, p), rel=1e-12)
    empty = psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2])
    assert np.isfinite(empty) and psi_level(empty) == "major shift"
    assert psi_level(0.05) == "stable" and psi_level(0.1) == "moderate shift"
    with pytest.raises(ValueError, match=r"old_shares has shape \(2,\) and new_shares \(3,\)"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="shares should be >= 0 with a positive sum"):
        psi([0.0, 0.0], [0.5, 0.5])


def test_centre_shift_matches_permuted_moved_centres():
    rng = np.random.default_rng()
    old = rng.normal(0, 10, (6, 4))
    moves = rng.normal(0, 0.5, (6, 4))
    order = rng.permutation(6)
    new = (old + moves)[order]
    result = centre_shift(old, new, feature_names=["a", "b", "c", "d"])
    np.testing.assert_array_equal(order[result.old_to_new], np.arange(6))
    np.testing.assert_allclose(result.shift, moves, atol=1e-12)
    np.testing.assert_allclose(result.distance, np.linalg.norm(moves, axis=1))
    frame = result.to_frame()
    assert list(frame.columns) == [
        "new_segment",
        "distance",
        "a_shift",
        "b_shift",
        "c_shift",
        "d_shift",
    ]
    scaled = centre_shift(old, new, scale=np.array([2.0, 2.0, 2.0, 2.0]))
    np.testing.assert_allclose(scaled.distance, result.distance / 2)
    fewer = centre_shift(old, new[:4])
    assert (fewer.old_to_new == -1).sum() == 2 and np.isnan(fewer.shift).any(axis=1).sum() == 2
    with pytest.raises(ValueError, match="should be 2-D with the same number of features"):
        centre_shift(old, new[:, :3])


def test_spread_over_a_model():
    rng = np.random.default_rng()
    X = rng.standard_normal((1200, 5)).astype(np.float32) + rng.integers(0, 3, (1200, 1)) * 6
    model = KMeans(3, random_state=0).fit(X)
    same = spread_over(model, ArraySource(X, block_rows=100))
    np.testing.assert_array_equal(same.sizes, np.bincount(model.predict(X), minlength=3))
    assert same.psi == pytest.approx(0.0, abs=1e-12) and same.psi_level == "stable"
    distances = model.transform(X).min(axis=1).astype(np.float64)
    expected = np.bincount(model.predict(X), weights=distances) / same.sizes
    np.testing.assert_allclose(same.mean_distance, expected, rtol=1e-5)
    shifted = X[model.predict(X) != 0]
    moved = spread_over(model, shifted)
    assert moved.sizes[0] == 0 and np.isnan(moved.mean_distance[0])
    assert moved.psi_level == "major shift"
    plain = spread_over(model.cluster_centers_, shifted)
    assert plain.psi is None
    with pytest.raises(ValueError, match="X_new has 4 features but the centres have 5"):
        spread_over(model, X[:, :4])
