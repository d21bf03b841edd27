"""The model directory: save/load round trip, scoring next month's table, clear errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from gpuseg import KMeans
from gpuseg import model as model_module
from gpuseg.errors import DataError
from gpuseg.model import FORMAT_VERSION, SegmentationModel, load
from gpuseg.plan import ColumnSpec, FeaturePlan, default_rfm_plan

N_CLUSTERS = 5
SEED = 7


@pytest.fixture
def rng():
    return np.random.default_rng()


def month(n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """An RFM customer table with a categorical channel."""
    frequency = rng.geometric(0.25, n_rows)
    return pd.DataFrame(
        {
            "customer_id": rng.permutation(n_rows) + 1000,
            "recency_days": rng.integers(0, 400, n_rows),
            "frequency": frequency,
            "monetary_total": rng.lognormal(3.5, 1.0, n_rows) * frequency,
            "tenure_days": rng.integers(0, 1500, n_rows),
            "channel": rng.choice(["web", "shop", "app"], n_rows, p=[0.6, 0.3, 0.1]),
        }
    )


def fitted_model(frame: pd.DataFrame, tol: float = 1e-4) -> tuple[SegmentationModel, KMeans]:
    plan = default_rfm_plan(frame).fit(frame)
    kmeans = KMeans(n_clusters=N_CLUSTERS, random_state=SEED, tol=tol).fit(plan.transform(frame))
    model = SegmentationModel.from_estimator(
        plan, kmeans, as_of=pd.Timestamp("2024-07-01"), id_column="customer_id"
    )
    return model, kmeans


def test_save_load_round_trip_is_identical(tmp_path, rng):
    frame = month(1500, rng)
    model, kmeans = fitted_model(frame)
    path = model.save(tmp_path / "models" / "2024-07")
    assert sorted(os.listdir(path)) == ["centers.npz", "model.json"]
    assert os.listdir(tmp_path / "models") == ["2024-07"]  # no temporary left behind
    loaded = load(path)

    np.testing.assert_array_equal(loaded.centers, model.centers)
    assert loaded.centers.dtype == np.float64
    assert loaded.plan == model.plan
    np.testing.assert_array_equal(loaded.transform_features(frame), model.transform_features(frame))
    np.testing.assert_array_equal(loaded.predict(frame), kmeans.labels_)
    assert loaded.predict(frame).dtype == np.int32
    assert (loaded.as_of, loaded.seed, loaded.id_column) == (
        "2024-07-01T00:00:00",
        SEED,
        "customer_id",
    )
    assert loaded.inertia == kmeans.inertia_
    np.testing.assert_array_equal(loaded.cluster_sizes, np.bincount(kmeans.labels_))
    assert loaded.created == model.created and loaded.gpuseg_version == model.gpuseg_version
    pd.testing.assert_frame_equal(loaded.centers_original(), model.centers_original())


def test_next_month_labels_equal_refitting_by_hand(tmp_path, rng):
    june, july = month(2000, rng), month(1200, rng)
    model, _ = fitted_model(june)
    loaded = load(model.save(tmp_path / "model"))

    # Refit the plan-free pipeline by hand from the model's own matrix.
    X = loaded.transform_features(june)
    by_hand = KMeans(n_clusters=N_CLUSTERS, random_state=loaded.seed).fit(X)
    np.testing.assert_array_equal(by_hand.cluster_centers_, loaded.centers.astype(np.float32))
    np.testing.assert_array_equal(by_hand.labels_, loaded.predict(june))

    expected = by_hand.predict(loaded.plan.transform(july))
    np.testing.assert_array_equal(loaded.predict(july), expected)
    # Column order and extra columns of the scored table do not matter.
    shuffled = july[list(reversed(july.columns))].assign(extra="x")
    np.testing.assert_array_equal(loaded.predict(shuffled), expected)


def test_centers_in_transformed_and_original_units(rng):
    frame = month(1000, rng)
    # tol=0 runs Lloyd until no label moves, so each centre is the mean of its segment's rows.
    model, kmeans = fitted_model(frame, tol=0)
    transformed = model.centers_transformed()
    assert list(transformed.columns) == model.plan.output_names
    np.testing.assert_array_equal(transformed.to_numpy(), kmeans.cluster_centers_)
    original = model.centers_original()
    assert list(original.columns[:4]) == [
        "recency_days",
        "frequency",
        "monetary_total",
        "tenure_days",
    ]
    # One-hot shares of a Lloyd centre are the segment's shares of each channel.
    labels = kmeans.labels_
    web = (frame["channel"] == "web").groupby(labels).mean().to_numpy()
    np.testing.assert_allclose(original["channel=web"], web, atol=1e-5)
    # log1p undone: a centre of log spend is a geometric-like mean, inside the data's range.
    spend = frame["monetary_total"]
    assert (
        (original["monetary_total"] > spend.min()) & (original["monetary_total"] < spend.max())
    ).all()


def test_files_hold_no_pickle(tmp_path, rng):
    model, _ = fitted_model(month(300, rng))
    path = model.save(tmp_path / "m")
    metadata = json.loads((path / "model.json").read_text())
    assert metadata["format_version"] == FORMAT_VERSION == 1
    assert metadata["n_clusters"] == N_CLUSTERS
    assert [c["name"] for c in metadata["feature_schema"]] == model.plan.input_columns
    assert metadata["feature_schema"][-1] == {
        "name": "channel",
        "kind": "categorical",
        "type": "large_string",
    }
    with np.load(path / "centers.npz", allow_pickle=False) as npz:
        assert npz.files == ["centers"]
        assert npz["centers"].dtype == np.float64
    assert b"pickle" not in (path / "centers.npz").read_bytes()


# -- errors -------------------------------------------------------------------------------


def test_save_refuses_to_overwrite_unless_asked(tmp_path, rng):
    model, _ = fitted_model(month(300, rng))
    path = model.save(tmp_path / "m")
    with pytest.raises(FileExistsError, match=r"m already exists; pass overwrite=True"):
        model.save(path)
    other = SegmentationModel(model.plan, model.centers[:2], seed=1)
    other.save(path, overwrite=True)
    assert load(path).n_clusters == 2
    assert os.listdir(tmp_path) == ["m"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not a model directory"):
        model.save(tmp_path / "file", overwrite=True)


def test_failed_save_leaves_nothing(tmp_path, rng, monkeypatch):
    model, _ = fitted_model(month(300, rng))

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model_module.json, "dump", fail)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "m")
    assert os.listdir(tmp_path) == []


def test_newer_format_version_is_refused(tmp_path, rng):
    path = fitted_model(month(300, rng))[0].save(tmp_path / "m")
    metadata = json.loads((path / "model.json").read_text())
    metadata["format_version"] = 2
    (path / "model.json").write_text(json.dumps(metadata))
    with pytest.raises(
        ValueError, match=r"model format version 2 is newer than this gpuseg \(1\); upgrade gpuseg"
    ):
        load(path)


def test_missing_directory_or_file(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match=r"no model at .*nowhere: it does not exist"):
        load(tmp_path / "nowhere")
    path = fitted_model(month(300, rng))[0].save(tmp_path / "m")
    (path / "centers.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"centers\.npz is missing"):
        load(path)


def test_centers_not_matching_the_metadata(tmp_path, rng):
    path = fitted_model(month(300, rng))[0].save(tmp_path / "m")
    np.savez(path / "centers.npz", centers=np.zeros((N_CLUSTERS, 3)))
    with pytest.raises(ValueError, match=r"does not match .*model\.json \(checksum differs\)"):
        load(path)
    metadata = json.loads((path / "model.json").read_text())
    del metadata["centers_sha256"]
    (path / "model.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=r"centers of shape \(5, 3\) .* expects float64 \(5, 7\)"):
        load(path)


def test_data_missing_a_schema_column(tmp_path, rng):
    loaded = load(fitted_model(month(300, rng))[0].save(tmp_path / "m"))
    with pytest.raises(DataError, match="column 'tenure_days': column is missing; the model's"):
        loaded.predict(month(50, rng).drop(columns=["tenure_days"]))


def test_constructor_validation(rng):
    frame = month(100, rng)
    plan = FeaturePlan([ColumnSpec("recency_days")])
    with pytest.raises(ValueError, match="plan should be a fitted FeaturePlan"):
        SegmentationModel(plan, np.zeros((2, 1)))
    plan.fit(frame)
    with pytest.raises(ValueError, match=r"centers has shape \(2, 3\); expected \(n_clusters, 1\)"):
        SegmentationModel(plan, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="kmeans is not fitted"):
        SegmentationModel.from_estimator(plan, KMeans())
