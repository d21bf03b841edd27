"""FeaturePlan: mergeable statistics, exact transforms against NumPy, one-hot, weights, JSON."""

from __future__ import annotations

import functools
import itertools
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpuseg import KMeans, sketches
from gpuseg import columns as columns_module
from gpuseg.columns import signed_log1p
from gpuseg.errors import DataError
from gpuseg.parquet import ParquetSource
from gpuseg.plan import OTHER, ColumnSpec, FeaturePlan, default_rfm_plan
from gpuseg.sketches import CategoryCounts, NumericStatistics


@pytest.fixture
def rng():
    return np.random.default_rng()


def customers(n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Skewed money and counts, a roughly uniform recency, a signed column, two categoricals."""
    frequency = rng.geometric(0.3, n_rows)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n_rows),
            "monetary_total": rng.lognormal(4.0, 1.2, n_rows) * frequency,
            "frequency": frequency,
            "recency_days": rng.integers(0, 365, n_rows),
            "net": rng.standard_normal(n_rows) * 50.0,
            "channel": rng.choice(
                ["web", "shop", "app", "phone"], n_rows, p=[0.5, 0.3, 0.15, 0.05]
            ),
            "region": rng.choice([1, 2, 3], n_rows),
        }
    )


def full_plan(**overrides) -> FeaturePlan:
    specs = {
        "monetary_total": ColumnSpec("monetary_total", log1p=True, clip=(0.01, 0.99)),
        "frequency": ColumnSpec("frequency", log1p=True, scale="robust"),
        "recency_days": ColumnSpec("recency_days", clip=(0.05, 0.95), scale=None),
        "net": ColumnSpec("net", log1p=True),
        "channel": ColumnSpec("channel", kind="categorical", max_categories=3),
        "region": ColumnSpec("region", kind="categorical"),
    }
    specs.update(overrides)
    return FeaturePlan(list(specs.values()))


def assert_statistics_close(a, b):
    assert a.n_rows == b.n_rows
    assert a.columns.keys() == b.columns.keys()
    for name, x in a.columns.items():
        y = b.columns[name]
        if isinstance(x, CategoryCounts):
            assert x == y
            continue
        assert x.resolution == y.resolution
        for field in ("keys", "counts", "mins", "maxs"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=name)
        np.testing.assert_allclose(x.means, y.means, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(x.m2s, y.m2s, rtol=1e-12, atol=1e-9, err_msg=name)


def assert_params_close(a: FeaturePlan, b: FeaturePlan):
    assert a.output_names == b.output_names
    for name, p in a.params.items():
        q = b.params[name]
        for key, value in vars(p).items():
            if isinstance(value, float):
                np.testing.assert_allclose(value, getattr(q, key), rtol=1e-12, err_msg=key)
            else:
                assert value == getattr(q, key), (name, key)


# -- statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize("exact_limit", [1 << 16, 40])
def test_statistics_merged_over_partitions_equal_one_pass(rng, monkeypatch, exact_limit):
    monkeypatch.setattr(sketches, "_EXACT_LIMIT", exact_limit)
    frame = customers(3000, rng)
    plan = full_plan()
    cuts = [0, 700, 701, 3000]  # uneven, one partition of a single row
    parts = [frame.iloc[a:b] for a, b in itertools.pairwise(cuts)]
    whole = plan.statistics(frame)
    stats = [plan.statistics(p) for p in parts]
    assert_statistics_close(functools.reduce(lambda a, b: a.merge(b), stats), whole)
    assert_statistics_close(stats[0].merge(stats[1].merge(stats[2])), whole)
    if exact_limit < 100:
        assert whole.columns["monetary_total"].resolution == sketches._BUCKETS
        assert stats[1].columns["monetary_total"].resolution == sketches._EXACT

    one_pass = full_plan().fit(parts)  # streamed, as from a scanner
    assert_params_close(one_pass, full_plan().fit(frame))
    merged = stats[2].merge(stats[0]).merge(stats[1])
    assert_params_close(one_pass, full_plan().fit_statistics(merged))


def test_statistics_of_many_tables_on_threads_merge_in_order(rng):
    frame = customers(5000, rng)
    parts = [(frame.iloc[a : a + 250], None) for a in range(0, 5000, 250)]
    serial = full_plan().merged_statistics(iter(parts), threads=1)
    threaded = full_plan().merged_statistics(iter(parts), threads=3)
    assert threaded.n_rows == serial.n_rows == 5000
    for name, column in serial.columns.items():  # same merges in the same order: same bits
        for field, value in vars(column).items():
            np.testing.assert_array_equal(getattr(threaded.columns[name], field), value)
    assert full_plan().merged_statistics(iter([]), threads=3) is None
    # The first bad row in table order is raised, numbered within its path.
    bad = [
        (frame.iloc[:100], "a.parquet"),
        (frame.iloc[100:200].assign(net=np.nan), "a.parquet"),
        (frame.iloc[200:300].assign(frequency=np.inf), "b.parquet"),
    ]
    with pytest.raises(DataError, match=r"a\.parquet: column 'net': null at row 100"):
        full_plan().merged_statistics(iter(bad), threads=3)


def test_sketch_in_bucket_mode_is_within_one_bucket(rng, monkeypatch):
    monkeypatch.setattr(sketches, "_EXACT_LIMIT", 64)
    values = np.log1p(rng.lognormal(3.0, 1.5, 20_000))
    parts = np.array_split(values, 5)
    stats = functools.reduce(
        NumericStatistics.merge, [NumericStatistics.of(p, sketch=True) for p in parts]
    )
    assert stats.resolution == sketches._BUCKETS
    assert len(stats.keys) < 20_000 / 4
    qs = [0.01, 0.25, 0.5, 0.75, 0.99]
    np.testing.assert_allclose(stats.quantiles(qs), np.quantile(values, qs), rtol=2**-10)
    low, high = np.quantile(values, [0.01, 0.99])
    n, mean, m2 = stats.clipped_moments(low, high)
    clipped = np.clip(values, low, high)
    assert n == len(values)
    np.testing.assert_allclose(mean, clipped.mean(), rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(m2 / n), clipped.std(), rtol=1e-3)


# -- transforms against NumPy -------------------------------------------------------------


def test_standardised_columns_have_mean_0_std_1_on_fit_data(rng):
    frame = customers(2000, rng)
    plan = default_rfm_plan(frame).fit(frame)
    X = plan.transform(frame)
    assert X.dtype == np.float32 and X.flags.c_contiguous
    assert X.shape == (2000, plan.n_features)
    numeric = [plan.output_names.index(c) for c in ("monetary_total", "frequency", "recency_days")]
    np.testing.assert_allclose(X[:, numeric].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(X[:, numeric].astype(np.float64).std(axis=0), 1.0, rtol=1e-5)


def test_log1p_clip_and_scaling_match_numpy(rng):
    frame = customers(1001, rng)
    plan = full_plan().fit(frame)
    X = plan.transform(frame)

    y = np.log1p(frame["monetary_total"].to_numpy())
    low, high = np.quantile(y, [0.01, 0.99])
    clipped = np.clip(y, low, high)
    money = plan.params["monetary_total"]
    assert (money.clip_low, money.clip_high) == (low, high)  # exact sketch: numpy's floats
    np.testing.assert_allclose([money.center, money.scale], [clipped.mean(), clipped.std()], 1e-12)
    expected = ((clipped - clipped.mean()) / clipped.std()).astype(np.float32)
    np.testing.assert_allclose(X[:, 0], expected, rtol=1e-6, atol=1e-6)

    f = np.log1p(frame["frequency"].to_numpy().astype(float))
    q25, q50, q75 = np.quantile(f, [0.25, 0.5, 0.75])
    freq = plan.params["frequency"]
    assert (freq.center, freq.scale) == (q50, q75 - q25)
    np.testing.assert_array_equal(X[:, 1], ((f - q50) / (q75 - q25)).astype(np.float32))

    r = frame["recency_days"].to_numpy().astype(float)
    np.testing.assert_array_equal(X[:, 2], np.clip(r, *np.quantile(r, [0.05, 0.95])))

    net = frame["net"].to_numpy()
    signed = np.sign(net) * np.log1p(np.abs(net))
    np.testing.assert_allclose(X[:, 3], (signed - signed.mean()) / signed.std(), atol=1e-5)


def test_constant_column_maps_to_zero():
    frame = pd.DataFrame({"x": [3.0] * 5, "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    plan = FeaturePlan([ColumnSpec("x", scale="robust"), ColumnSpec("y")]).fit(frame)
    assert plan.params["x"].scale == 1.0
    np.testing.assert_array_equal(plan.transform(frame)[:, 0], 0.0)


def test_inverse_transform_undoes_weight_scale_and_log1p_but_not_clipping(rng):
    frame = customers(500, rng)
    plan = full_plan(
        monetary_total=ColumnSpec("monetary_total", log1p=True, clip=(0.01, 0.99), weight=3.0)
    ).fit(frame)
    X = plan.transform(frame).astype(np.float64)
    back = plan.inverse_transform_numeric(X)
    assert back.index.name == "segment"
    money = frame["monetary_total"].to_numpy()
    low, high = np.expm1(
        [plan.params["monetary_total"].clip_low, plan.params["monetary_total"].clip_high]
    )
    np.testing.assert_allclose(back["monetary_total"], np.clip(money, low, high), rtol=1e-5)
    np.testing.assert_allclose(back["net"], frame["net"], rtol=1e-4, atol=1e-4)
    shares = plan.inverse_transform_numeric(X.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(shares["channel=web"], (frame["channel"] == "web").mean())
    np.testing.assert_allclose(
        shares[f"channel={OTHER}"], frame["channel"].isin(["app", "phone"]).mean()
    )


# -- categoricals and weights -------------------------------------------------------------


def test_one_hot_vocabulary_other_unknown_and_null():
    fit = pa.table(
        {
            "channel": ["web", "shop", "web", "app", "phone", "shop", "web", None],
            "region": pa.array([2, 1, 2, 1, 3, 3, 2, 2], pa.int8()),
        }
    )
    plan = FeaturePlan(
        [
            ColumnSpec("channel", kind="categorical", max_categories=3),
            ColumnSpec("region", kind="categorical", weight=4.0),
        ]
    ).fit(fit)
    # Most frequent first, ties by value; the rest in <other>; ints compared as strings.
    assert plan.output_names == [
        "channel=web", "channel=shop", f"channel={OTHER}", "region=2", "region=1", "region=3",
    ]  # fmt: skip
    assert plan.params["channel"].counts == (3, 2, 2)
    assert plan.params["channel"].nulls == 1
    score = pd.DataFrame({"channel": ["shop", "fax", None], "region": [3, 9, 1]})
    X = plan.transform(score)
    np.testing.assert_array_equal(
        X,
        [
            [0, 1, 0, 0, 0, 2],  # sqrt(weight 4) = 2
            [0, 0, 1, 0, 0, 0],  # unknown channel -> <other>; unknown region (no other) -> 0
            [0, 0, 0, 0, 2, 0],  # null channel -> all zero
        ],
    )


def test_weights_scale_squared_distances(rng):
    frame = customers(300, rng)
    weights = {"monetary_total": 4.0, "net": 0.25, "channel": 9.0}
    plain = full_plan().fit(frame)
    weighted = full_plan(
        **{
            name: ColumnSpec(**{**spec.to_dict(), "clip": spec.clip, "weight": weights[name]})
            for name, spec in zip(plain.input_columns, plain.columns, strict=True)
            if name in weights
        }
    ).fit(frame)
    X1, Xw = plain.transform(frame).astype(float), weighted.transform(frame).astype(float)
    d1 = (X1[:, None, :] - X1[None, :50, :]) ** 2
    dw = (Xw[:, None, :] - Xw[None, :50, :]) ** 2
    factor = np.array([weights.get(n.split("=")[0], 1.0) for n in plain.output_names])
    np.testing.assert_allclose(dw, d1 * factor, rtol=1e-5, atol=1e-6)


# -- serialisation ------------------------------------------------------------------------


def test_to_dict_from_dict_round_trips_exactly_through_json(rng):
    frame = customers(800, rng)
    plan = full_plan().fit(frame)
    text = json.dumps(plan.to_dict(), allow_nan=False)
    again = FeaturePlan.from_dict(json.loads(text))
    assert again == plan
    assert again.params == plan.params
    assert again.input_types == {
        "monetary_total": "double", "frequency": "int64", "recency_days": "int64",
        "net": "double", "channel": "large_string", "region": "int64",
    }  # fmt: skip
    np.testing.assert_array_equal(again.transform(frame), plan.transform(frame))
    unfitted = FeaturePlan.from_dict(json.loads(json.dumps(full_plan().to_dict())))
    assert not unfitted.is_fitted and unfitted.columns == full_plan().columns


# -- defaults -----------------------------------------------------------------------------


def test_default_rfm_plan_columns_and_not_one_giant_cluster(rng):
    frame = customers(4000, rng).drop(columns=["net"])
    plan = default_rfm_plan([*frame.columns, "R", "segment"])
    assert plan.input_columns == [
        "monetary_total", "frequency", "recency_days", "channel", "region",
    ]  # fmt: skip
    money = plan.columns[0]
    assert (money.log1p, money.clip, money.scale) == (True, (0.01, 0.99), "standard")
    X = plan.fit(frame).transform(frame)
    labels = KMeans(n_clusters=4, random_state=0).fit_predict(X)
    assert np.bincount(labels).max() < 0.6 * len(frame)
    raw = frame[["monetary_total", "frequency", "recency_days"]].to_numpy(dtype=float)
    raw_labels = KMeans(n_clusters=4, random_state=0).fit_predict(raw)
    assert np.bincount(raw_labels).max() > np.bincount(labels).max()


def test_default_rfm_plan_needs_an_rfm_column():
    with pytest.raises(ValueError, match=r"none of the columns .* is an RFM feature"):
        default_rfm_plan(["customer_id", "age"])


# -- Parquet ------------------------------------------------------------------------------


def test_parquet_source_with_plan_yields_plan_transform_of_the_table(tmp_path, rng):
    frames = [customers(n, rng) for n in (211, 57, 390)]
    for i, frame in enumerate(frames):
        pq.write_table(
            pa.Table.from_pandas(frame), tmp_path / f"part-{i}.parquet", row_group_size=50
        )
    whole = pa.concat_tables(pq.read_table(tmp_path / f"part-{i}.parquet") for i in range(3))
    plan = full_plan().fit(whole)
    source = ParquetSource(tmp_path, plan=plan, id_column="customer_id", block_rows=64)
    assert source.n_features == plan.n_features == 10
    blocks = list(source.batches())
    assert all(len(b.X) == 64 for b in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate([b.X for b in blocks]), plan.transform(whole))
    np.testing.assert_array_equal(np.concatenate([b.ids for b in blocks]), whole["customer_id"])
    sample = source.sample(40, np.random.default_rng(1))
    rows = np.sort(np.random.default_rng(1).choice(len(whole), 40, replace=False))
    np.testing.assert_array_equal(sample.X, plan.transform(whole.take(rows)))


def test_transform_writes_into_out_when_given(rng):
    frame = customers(300, rng)
    plan = full_plan().fit(frame)
    block = np.full((400, plan.n_features), np.nan, dtype=np.float32)
    returned = plan.transform(frame, out=block[100:])
    assert returned.base is block
    np.testing.assert_array_equal(block[100:], plan.transform(frame))
    assert np.isnan(block[:100]).all()
    with pytest.raises(ValueError, match=r"out has shape \(299, 10\)"):
        plan.transform(frame, out=block[101:])


def test_parquet_source_with_plan_reports_file_column_and_row(tmp_path, rng):
    frame = customers(100, rng)
    plan = full_plan().fit(frame)
    frame.loc[17, "net"] = np.nan
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "a.parquet")
    source = ParquetSource(tmp_path / "a.parquet", plan=plan, block_rows=30)
    with pytest.raises(DataError, match=r"a\.parquet: column 'net': null at row 17"):
        list(source.batches())
    with pytest.raises(ValueError, match=r"columns=.* and plan were both given"):
        ParquetSource(tmp_path, columns=["net"], plan=plan)
    with pytest.raises(ValueError, match="plan is not fitted"):
        ParquetSource(tmp_path, plan=full_plan())
    frame = frame.drop(columns=["channel"])
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "a.parquet")
    with pytest.raises(DataError, match="column 'channel': requested column is missing"):
        ParquetSource(tmp_path, plan=plan)


# -- errors -------------------------------------------------------------------------------


def test_bad_data_raises_data_error_naming_column_and_row(rng):
    frame = customers(20, rng)
    plan = full_plan().fit(frame)
    with pytest.raises(DataError, match="column 'frequency': column is missing; the feature plan"):
        plan.transform(frame.drop(columns=["frequency"]))
    bad = frame.assign(net=frame["net"].where(frame.index != 3, np.inf))
    with pytest.raises(DataError, match="column 'net': inf at row 3; expected finite numbers"):
        plan.transform(bad)
    bad = frame.assign(net=frame["net"].where(frame.index != 5))
    with pytest.raises(DataError, match="column 'net': null at row 5"):
        plan.statistics(bad)
    with pytest.raises(DataError, match="column 'net': null at row 105"):
        plan.transform(bad, rows=100)
    with pytest.raises(
        DataError, match=r"'recency_days': has type (large_)?string; expected a numeric"
    ):
        plan.transform(frame.assign(recency_days="soon"))
    with pytest.raises(DataError, match="no rows to fit the feature plan on"):
        full_plan().fit(frame.iloc[:0])


def test_too_many_categories_is_a_data_error(monkeypatch):
    monkeypatch.setattr(columns_module, "_MAX_DISTINCT", 5)
    plan = FeaturePlan([ColumnSpec("id", kind="categorical")])
    with pytest.raises(DataError, match="column 'id': has more than 5 distinct values"):
        plan.fit(pd.DataFrame({"id": np.arange(6)}))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "text"}, "kind='text' of column 'x' is not one of"),
        ({"scale": "minmax"}, "scale='minmax' of column 'x' is not one of"),
        ({"clip": (0.9, 0.1)}, r"clip=\(0.9, 0.1\) of column 'x' should be two quantiles"),
        ({"weight": 0.0}, "weight=0.0 of column 'x' should be finite and > 0"),
        ({"kind": "categorical", "log1p": True}, "column 'x' is categorical; log1p, clip"),
        ({"kind": "categorical", "max_categories": 0}, "max_categories=0 of column 'x'"),
    ],
)
def test_column_spec_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ColumnSpec("x", **kwargs)


def test_plan_validation():
    with pytest.raises(ValueError, match=r"column\(s\) \['x'\] appear more than once"):
        FeaturePlan([ColumnSpec("x"), ColumnSpec("x", log1p=True)])
    with pytest.raises(ValueError, match=r"not fitted yet; call plan\.fit"):
        FeaturePlan([ColumnSpec("x")]).transform(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(ValueError, match="columns=\\[\\] should hold at least one"):
        FeaturePlan([])


@pytest.mark.parametrize("log", [False, True])
def test_integer_values_counted_give_the_groups_a_sort_gives(rng, monkeypatch, log):
    cases = [
        rng.integers(0, 3650, 70_000),  # days
        rng.integers(-500, 500, 999),
        2**40 + rng.integers(0, 1_000, 5_000),
        2**52 + np.arange(100),  # log1p merges neighbours: the sort must decide
        np.array([0.0, -0.0, 3.0, -0.0]),
        np.array([7.0]),
        rng.integers(0, 10**6, 5_000),  # too wide to count
        rng.integers(0, 100, 1_000) + 0.5,  # not integers
    ]
    transform = signed_log1p if log else None
    for raw in cases:
        values = np.asarray(raw, dtype=np.float64)
        counted = NumericStatistics.of(values, True, transform)
        with monkeypatch.context() as patch:
            patch.setattr(sketches, "_count_integers", lambda values: None)
            sorted_ = NumericStatistics.of(values, True, transform)
        assert counted.resolution == sorted_.resolution
        for got, want in zip(counted._arrays(), sorted_._arrays(), strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
