"""Weighted Ward linkage of micro-centres against SciPy, and the micro to macro merge."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import dendrogram, fcluster, is_valid_linkage, ward
from sklearn.metrics import adjusted_rand_score

from gpuseg.hierarchy import (
    cut_linkage,
    fit_micro_macro,
    merge_segments,
    merge_weights,
    ward_linkage,
)


def test_unit_weights_equal_scipy_ward():
    rng = np.random.default_rng()
    centers = rng.standard_normal((60, 5)) * rng.uniform(0.5, 2.0, 5)
    ours, scipys = ward_linkage(centers), ward(centers)
    np.testing.assert_array_equal(ours[:, [0, 1, 3]], scipys[:, [0, 1, 3]])
    np.testing.assert_allclose(ours[:, 2], scipys[:, 2], rtol=1e-10)
    assert is_valid_linkage(ours)


def test_integer_weights_equal_duplicated_points():
    rng = np.random.default_rng()
    centers = rng.standard_normal((25, 5))
    counts = rng.integers(1, 5, 25)
    ours = ward_linkage(centers, counts)
    duplicated = ward(np.repeat(centers, counts, axis=0))
    n_zero = counts.sum() - 25
    np.testing.assert_allclose(duplicated[:n_zero, 2], 0.0, atol=1e-12)
    np.testing.assert_allclose(ours[:, 2], duplicated[n_zero:, 2], rtol=1e-10)
    np.testing.assert_allclose(merge_weights(ours, counts), duplicated[n_zero:, 3])
    owner = np.repeat(np.arange(25), counts)
    for n_macro in (2, 4, 7):
        flat = fcluster(duplicated, n_macro, criterion="maxclust")
        ours_per_point = cut_linkage(ours, counts, n_macro)[owner]
        assert adjusted_rand_score(flat, ours_per_point) == 1.0


def test_zero_weights_and_one_centre():
    centers = np.array([[0.0, 0.0], [5.0, 0.0], [0.1, 0.0]])
    linkage = ward_linkage(centers, np.array([3.0, 2.0, 0.0]))
    assert linkage[0, 2] == 0.0 and np.isfinite(linkage).all()
    assert ward_linkage(np.zeros((1, 3))).shape == (0, 4)
    single = merge_segments(np.ones((1, 3)), np.array([4]), 1)
    assert single.micro_to_macro.tolist() == [0] and single.dendrogram_data()["leaves"] == [0]


def test_macro_segments_are_weighted_and_numbered_by_size():
    rng = np.random.default_rng()
    groups = np.array([[0.0] * 5, [30.0] * 5, [-30.0] * 5])
    micro = np.concatenate([g + rng.standard_normal((10, 5)) for g in groups])
    counts = np.concatenate([np.full(10, 5), np.full(10, 50), np.full(10, 20)])
    hierarchy = merge_segments(micro, counts, 3)
    np.testing.assert_array_equal(hierarchy.micro_to_macro, np.repeat([2, 0, 1], 10))
    np.testing.assert_array_equal(hierarchy.macro_weights, [500, 200, 50])
    expected = micro[10:20].mean(axis=0)  # equal counts within a group: the plain mean
    np.testing.assert_allclose(hierarchy.macro_centers[0], expected)
    micro_labels = rng.integers(0, 30, 100)
    np.testing.assert_array_equal(
        hierarchy.macro_labels(micro_labels), hierarchy.micro_to_macro[micro_labels]
    )
    frame = hierarchy.with_macro(
        pd.DataFrame({"customer_id": np.arange(100), "segment": micro_labels})
    )
    assert list(frame.columns) == ["customer_id", "segment", "macro_segment"]
    # The small middle group costs Ward less to join the -30 group (200) than the +30 one (500).
    assert hierarchy.cut(2).micro_to_macro.tolist() == [1] * 10 + [0] * 10 + [1] * 10
    data = json.loads(json.dumps(hierarchy.dendrogram_data()))
    assert sorted(data["leaves"]) == list(range(30))
    assert data["merge_weights"][-1] == counts.sum()
    drawn = dendrogram(np.array(data["linkage"]), no_plot=True)
    assert drawn["leaves"] == data["leaves"]


def test_fit_micro_macro_recovers_components():
    rng = np.random.default_rng()
    means = rng.normal(0, 25, (3, 5))
    X = np.concatenate([rng.normal(m, 1.0, (300, 5)) for m in means])
    model, hierarchy = fit_micro_macro(X, 40, 3, random_state=0)
    macro = hierarchy.macro_labels(model.labels_)
    assert adjusted_rand_score(np.repeat([0, 1, 2], 300), macro) == 1.0
    assert hierarchy.macro_weights.sum() == 900


def test_errors():
    with pytest.raises(ValueError, match=r"centers has shape \(3,\); expected \(m, n_features\)"):
        ward_linkage(np.zeros(3))
    with pytest.raises(ValueError, match=r"weights.shape == \(2,\), expected \(3,\)"):
        ward_linkage(np.zeros((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="weights >= 0"):
        ward_linkage(np.zeros((3, 2)), np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="n_macro=4 should be between 1 and the 3 micro-segments"):
        merge_segments(np.zeros((3, 2)), np.ones(3), 4)
