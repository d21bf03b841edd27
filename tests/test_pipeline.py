"""Streaming fit from Parquet and labels written per input file, atomically."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from gpuseg import KMeans
from gpuseg.batches import ArraySource
from gpuseg.labels import MANIFEST
from gpuseg.parquet import ParquetSource
from gpuseg.pipeline import assign

FEATURES = ["recency", "frequency", "spend", "tenure", "basket"]


def write_customers(directory, rng, n_files=3, rows_per_file=2000):
    directory.mkdir()
    frames = []
    for index in range(n_files):
        values = rng.standard_normal((rows_per_file, len(FEATURES))) * [1, 3, 10, 2, 5]
        values += rng.integers(0, 3, (rows_per_file, 1)) * 8.0
        frame = pd.DataFrame(values, columns=FEATURES)
        frame.insert(0, "customer_id", np.arange(rows_per_file) + index * rows_per_file)
        frame.to_parquet(directory / f"part-{index}.parquet", index=False)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("persist", [False, True])
def test_streamed_fit_equals_in_memory_fit(tmp_path, persist):
    rng = np.random.default_rng()
    frame = write_customers(tmp_path / "customers", rng)
    source = ParquetSource(
        tmp_path / "customers", FEATURES, "customer_id", block_rows=2000, persist=persist
    )
    X = frame[FEATURES].to_numpy(np.float32)
    streamed = KMeans(4, random_state=3, sample_rows=1000).fit(source)
    in_memory = KMeans(4, random_state=3, sample_rows=1000)._fit_source(
        ArraySource(X, block_rows=2000)
    )
    np.testing.assert_array_equal(streamed.cluster_centers_, in_memory.cluster_centers_)
    assert streamed.inertia_ == in_memory.inertia_
    assert streamed.feature_columns_ == FEATURES
    assert streamed.cluster_sizes_.sum() == len(frame)
    assert source.persisted == persist  # later passes read the blocks kept by the first


def test_labels_per_input_file_match_predict(tmp_path):
    rng = np.random.default_rng()
    frame = write_customers(tmp_path / "customers", rng)
    source = ParquetSource(tmp_path / "customers", FEATURES, "customer_id", block_rows=700)
    km = KMeans(3, random_state=0).fit(source)
    report = assign(km, source, tmp_path / "labels")
    assert report.n_rows == len(frame)
    written = sorted(p.name for p in (tmp_path / "labels").iterdir())
    assert written == sorted([*report.files, MANIFEST])
    labels = pd.concat(pq.read_table(tmp_path / "labels" / f).to_pandas() for f in report.files)
    np.testing.assert_array_equal(labels["customer_id"], frame["customer_id"])
    X = frame[FEATURES].to_numpy(np.float64)
    d2 = ((X[:, None, :] - km.cluster_centers_.astype(np.float64)[None]) ** 2).sum(-1)
    order = np.argsort(d2, axis=1)
    np.testing.assert_array_equal(labels["segment"], order[:, 0])
    np.testing.assert_array_equal(labels["runner_up"], order[:, 1])
    nearest = np.sqrt(np.take_along_axis(d2, order[:, :2], 1))
    np.testing.assert_allclose(labels["distance"], nearest[:, 0], rtol=1e-4, atol=1e-4)
    margin = 1 - nearest[:, 0] / nearest[:, 1]
    np.testing.assert_allclose(labels["margin"], margin, rtol=1e-3, atol=1e-4)
    confident = np.abs(margin - 0.1) > 1e-3
    np.testing.assert_array_equal(labels["ambiguous"][confident], (margin < 0.1)[confident])
    manifest = json.loads((tmp_path / "labels" / MANIFEST).read_text())
    assert manifest["n_rows"] == len(frame)
    chunks = pq.read_metadata(tmp_path / "labels" / report.files[0]).row_group(0)
    dictionary = {chunks.column(i).path_in_schema: chunks.column(i).has_dictionary_page
                  for i in range(chunks.num_columns)}  # fmt: skip
    assert [name for name, has in dictionary.items() if has] == ["segment", "runner_up"]


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    rng = np.random.default_rng()
    write_customers(tmp_path / "customers", rng, n_files=1, rows_per_file=50)
    source = ParquetSource(tmp_path / "customers", FEATURES, "customer_id")
    km = KMeans(2, random_state=0).fit(source)
    assign(km, source, tmp_path / "labels")
    with pytest.raises(FileExistsError, match="labels: output already exists"):
        assign(km, source, tmp_path / "labels")
    assert assign(km, source, tmp_path / "labels", overwrite=True).n_rows == 50


def test_interrupted_assign_leaves_no_complete_looking_file(tmp_path, monkeypatch):
    rng = np.random.default_rng()
    write_customers(tmp_path / "customers", rng, n_files=3, rows_per_file=600)
    source = ParquetSource(tmp_path / "customers", FEATURES, "customer_id", block_rows=200)
    km = KMeans(3, random_state=0).fit(source)
    from gpuseg import labels as labels_module

    real_label_table = labels_module.label_table
    calls = {"n": 0}

    def failing_label_table(*args):
        calls["n"] += 1
        if calls["n"] == 5:  # the second block of the second file
            raise KeyboardInterrupt("stopped by the operator")
        return real_label_table(*args)

    monkeypatch.setattr(labels_module, "label_table", failing_label_table)
    with pytest.raises(KeyboardInterrupt):
        assign(km, source, tmp_path / "labels")
    written = sorted(p.name for p in (tmp_path / "labels").iterdir())
    assert written == ["part-00000-part-0.parquet"]
    assert pq.read_table(tmp_path / "labels" / written[0]).num_rows == 600


def test_feature_count_mismatch(tmp_path):
    rng = np.random.default_rng()
    write_customers(tmp_path / "customers", rng, n_files=1, rows_per_file=50)
    km = KMeans(2, random_state=0).fit(ParquetSource(tmp_path / "customers", FEATURES[:3]))
    with pytest.raises(ValueError, match="source has 5 features but the model was fitted on 3"):
        assign(km, ParquetSource(tmp_path / "customers", FEATURES), tmp_path / "labels")
