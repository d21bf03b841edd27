"""RFM features, scores and segments against a straightforward per-customer pandas oracle."""

from __future__ import annotations

import datetime as dt
import itertools

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from gpuseg.rfm import (
    DEFAULT_RFM_RULES,
    RFMRule,
    compute_rfm,
    rfm_scores,
    segment_rfm,
)

START = pd.Timestamp("2024-01-01")


def make_log(seed: int, n_customers: int = 40, n_rows: int = 500) -> pd.DataFrame:
    """A random log with ties, a single-transaction customer, same-day orders, returns."""
    rng = np.random.default_rng(seed)
    customer = rng.integers(0, n_customers, n_rows)
    log = pd.DataFrame(
        {
            "customer_id": customer,
            "timestamp": START + pd.to_timedelta(rng.integers(0, 180 * 86400, n_rows), unit="s"),
            # Multiples of 0.25 sum exactly in any order, so partitioning cannot move a digit.
            "amount": rng.integers(0, 400, n_rows) * 0.25,
            "order_id": customer * 1000 + rng.integers(0, 12, n_rows),
            "category": rng.choice(["books", "food", "games", "toys"], n_rows),
            "channel": rng.choice(["web", "store"], n_rows),
            "quantity": rng.integers(1, 4, n_rows),
        }
    )
    is_return = rng.random(n_rows) < 0.12
    log.loc[is_return, "amount"] = -rng.integers(1, 80, is_return.sum()) * 0.25
    extra = pd.DataFrame(
        {
            # 900: one transaction; 901: two orders on one day; 902/903: equal spend (a tie);
            # 904: returns only; 905: a free (zero-amount) order.
            "customer_id": [900, 901, 901, 902, 903, 904, 904, 905, 905],
            "timestamp": pd.to_datetime(
                [
                    "2024-03-05 10:00",
                    "2024-04-01 09:00",
                    "2024-04-01 18:30",
                    "2024-02-02 12:00",
                    "2024-05-02 12:00",
                    "2024-02-10 08:00",
                    "2024-03-10 08:00",
                    "2024-01-03 08:00",
                    "2024-06-01 08:00",
                ]
            ),
            "amount": [12.5, 10.0, 20.0, 50.0, 50.0, -5.0, -7.5, 0.0, 4.0],
            "order_id": [9001, 9011, 9012, 9021, 9031, 9041, 9042, 9051, 9052],
            "category": ["books", "food", "toys", "games", "games", "food", "food", "toys", "toys"],
            "channel": ["web", "web", "store", "web", "web", "web", "web", "store", "store"],
            "quantity": [1, 2, 1, 1, 1, 1, 1, 1, 3],
        }
    )
    log = pd.concat([log, extra], ignore_index=True)
    return log.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def oracle(log, *, order=None, category=None, as_of=None, returns="separate"):
    """Per-customer loop in plain pandas and datetime.date arithmetic."""
    if as_of is None:
        as_of = log["timestamp"].max().date() + dt.timedelta(days=1)
    else:
        as_of = pd.Timestamp(as_of).date()
    log = log[log["timestamp"].dt.date < as_of]
    rows = {}
    for cid, rows_of in log.groupby("customer_id"):
        buys = rows_of[rows_of["amount"] >= 0]
        if buys.empty:
            continue
        if order is None:
            n_orders = len({t.date() for t in buys["timestamp"]})
        else:
            n_orders = len(set(buys[order]))
        gross = float(sum(buys["amount"]))
        returned = float(-sum(rows_of.loc[rows_of["amount"] < 0, "amount"]))
        monetary = gross - returned if returns == "net" else gross
        row = {
            "recency_days": (as_of - max(buys["timestamp"]).date()).days,
            "frequency": n_orders,
            "monetary_total": monetary,
            "monetary_avg": monetary / n_orders,
            "tenure_days": (as_of - min(buys["timestamp"]).date()).days,
        }
        if returns != "drop":
            row["returns_total"] = returned
            row["return_rate"] = returned / gross if returned > 0 else 0.0
        if category is not None:
            spend = buys.groupby(category)["amount"].sum()
            shares = spend[spend > 0] / spend.sum()
            row["n_categories"] = len(spend)
            row["category_entropy"] = (
                float(-(shares * np.log(shares)).sum()) if len(shares) > 1 else 0.0
            )
        rows[cid] = row
    expected = pd.DataFrame.from_dict(rows, orient="index")
    expected.index.name = "customer_id"
    return expected


def assert_features_equal(got, expected):
    pd.testing.assert_frame_equal(
        got, expected, check_dtype=False, check_index_type=False, rtol=1e-12
    )
    for column in ("recency_days", "frequency", "tenure_days"):
        assert got[column].dtype == np.int64


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("returns", ["separate", "net", "drop"])
@pytest.mark.parametrize("order", [None, "order_id"])
def test_features_match_pandas_oracle(seed, returns, order):
    log = make_log(seed)
    result = compute_rfm(log, order=order, category="category", returns=returns)
    expected = oracle(log, order=order, category="category", returns=returns)
    assert_features_equal(result.features, expected)
    assert list(result.return_only) == [904]
    assert result.returns == returns


def test_special_customers():
    log = make_log(3)
    no_order = compute_rfm(log, category="category").features
    with_order = compute_rfm(log, order="order_id", category="category").features
    as_of = log["timestamp"].max().normalize() + pd.Timedelta(days=1)

    single = no_order.loc[900]
    assert single["frequency"] == 1
    assert single["monetary_total"] == single["monetary_avg"] == 12.5
    days = (as_of - pd.Timestamp("2024-03-05")).days
    assert single["recency_days"] == single["tenure_days"] == days
    assert single["n_categories"] == 1 and single["category_entropy"] == 0.0

    assert no_order.loc[901, "frequency"] == 1  # two orders on one day: one purchase day
    assert with_order.loc[901, "frequency"] == 2
    assert with_order.loc[901, "monetary_avg"] == 15.0
    assert no_order.loc[901, "category_entropy"] == pytest.approx(
        -(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3)), rel=1e-14
    )
    assert no_order.loc[902, "monetary_total"] == no_order.loc[903, "monetary_total"]
    assert with_order.loc[905, "frequency"] == 2  # the free order counts
    assert 904 not in no_order.index


def test_returns_policies_explicit():
    log = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-09", "2024-01-05"]),
            "amount": [100.0, 60.0, -40.0, 10.0],
        }
    )
    separate = compute_rfm(log).features.loc[1]
    assert (separate["monetary_total"], separate["returns_total"]) == (160.0, 40.0)
    assert separate["return_rate"] == 0.25
    assert separate["frequency"] == 2  # the return is not an order
    assert separate["recency_days"] == 8  # nor does it move recency: as_of is 2024-01-10
    net = compute_rfm(log, returns="net").features.loc[1]
    assert (net["monetary_total"], net["monetary_avg"], net["returns_total"]) == (120.0, 60.0, 40.0)
    dropped = compute_rfm(log, returns="drop").features
    assert dropped.loc[1, "monetary_total"] == 160.0
    assert "returns_total" not in dropped.columns and "return_rate" not in dropped.columns


# dask's legacy Parquet reader calls reset_index(inplace=True), deprecated by pandas 3.1.
DASK_PARQUET_WARNING = "ignore:The inplace keyword in DataFrame.reset_index"


@pytest.mark.filterwarnings(DASK_PARQUET_WARNING)
@pytest.mark.parametrize("string_ids", [False, True])
def test_pandas_dask_and_parquet_inputs_give_identical_tables(tmp_path, string_ids):
    log = make_log(4)
    if string_ids:
        log["customer_id"] = "c" + log["customer_id"].astype(str)
    kwargs = dict(order="order_id", category="category", channel="channel", quantity="quantity")
    from_pandas = compute_rfm(log, **kwargs)
    from_dask = compute_rfm(dd.from_pandas(log, npartitions=3), **kwargs)
    dd.from_pandas(log, npartitions=3).to_parquet(tmp_path / "log", write_index=False)
    log.to_parquet(tmp_path / "one.parquet")
    from_dir = compute_rfm(str(tmp_path / "log"), **kwargs)
    from_glob = compute_rfm(str(tmp_path / "log" / "*.parquet"), **kwargs)
    from_file = compute_rfm(tmp_path / "one.parquet", **kwargs)
    for other in (from_dask, from_dir, from_glob, from_file):
        pd.testing.assert_frame_equal(other.features, from_pandas.features, rtol=1e-12)
        pd.testing.assert_frame_equal(other.scores, from_pandas.scores)
        pd.testing.assert_series_equal(other.segments, from_pandas.segments)
        assert other.as_of == from_pandas.as_of
    features = from_pandas.features
    assert list(features.columns)[-4:] == [
        "n_categories",
        "category_entropy",
        "n_channels",
        "units_total",
    ]
    buys = log[log["amount"] >= 0]
    expected_channels = buys.groupby("customer_id")["channel"].nunique()
    expected_units = buys.groupby("customer_id")["quantity"].sum()
    assert features["n_channels"].to_dict() == expected_channels.to_dict()
    assert features["units_total"].to_dict() == expected_units.to_dict()


def test_distributed_client_gives_the_same_table():
    distributed = pytest.importorskip("distributed")
    log = make_log(5)
    local = compute_rfm(log, order="order_id")
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as client:
        remote = compute_rfm(dd.from_pandas(log, npartitions=3), order="order_id", client=client)
    pd.testing.assert_frame_equal(remote.features, local.features)


def test_as_of_default_explicit_and_historical():
    log = make_log(6)
    default = compute_rfm(log, category="category")
    assert default.as_of == log["timestamp"].max().normalize() + pd.Timedelta(days=1)
    rerun = compute_rfm(log, category="category", as_of=default.as_of)
    pd.testing.assert_frame_equal(rerun.features, default.features)
    assert rerun.as_of == default.as_of

    later = compute_rfm(log, category="category", as_of="2025-01-01").features
    assert (later["recency_days"] > default.features["recency_days"]).all()

    # A longer log snapshotted at an earlier date: rows on and after as_of are left out.
    history = compute_rfm(log, category="category", as_of="2024-03-15")
    assert history.as_of == pd.Timestamp("2024-03-15")
    assert_features_equal(history.features, oracle(log, category="category", as_of="2024-03-15"))
    assert history.features["recency_days"].min() >= 1


def test_as_of_follows_the_timestamps_time_zone():
    log = make_log(7)
    log["timestamp"] = log["timestamp"].dt.tz_localize("Europe/Paris")
    result = compute_rfm(log, as_of="2024-05-01")
    assert result.as_of == pd.Timestamp("2024-05-01", tz="Europe/Paris")
    naive = log.assign(timestamp=log["timestamp"].dt.tz_localize(None))
    pd.testing.assert_frame_equal(result.features, compute_rfm(naive, as_of="2024-05-01").features)
    # The default as-of date is the next midnight on the calendar, even across a DST change.
    before_dst = log[log["timestamp"] < pd.Timestamp("2024-03-31", tz="Europe/Paris")]
    default = compute_rfm(before_dst)
    assert default.as_of == pd.Timestamp("2024-03-31", tz="Europe/Paris")
    assert default.features["recency_days"].min() == 1


def test_scores_never_split_ties_and_return_thresholds():
    rng = np.random.default_rng(8)
    features = pd.DataFrame(
        {
            "recency_days": rng.integers(1, 30, 500),
            "frequency": rng.geometric(0.5, 500),
            "monetary_total": rng.integers(0, 40, 500) * 2.5,
        }
    )
    scores, thresholds = rfm_scores(features)
    for column, score in [("recency_days", "R"), ("frequency", "F"), ("monetary_total", "M")]:
        per_value = scores[score].groupby(features[column]).nunique()
        assert (per_value == 1).all(), f"{column}: tied customers got different scores"
        assert scores[score].between(1, 5).all()
        values = np.sort(features[column].to_numpy(dtype=float))
        if score == "R":
            values = values[::-1]
            cuts = [values[int(np.ceil(q * len(values))) - 1] for q in (0.2, 0.4, 0.6, 0.8)]
            expected = 1 + (np.asarray(cuts)[None, :] > features[[column]].to_numpy()).sum(1)
        else:
            cuts = [values[int(np.ceil(q * len(values))) - 1] for q in (0.2, 0.4, 0.6, 0.8)]
            expected = 1 + (np.asarray(cuts)[None, :] < features[[column]].to_numpy()).sum(1)
        np.testing.assert_array_equal(thresholds[score], cuts)
        np.testing.assert_array_equal(scores[score], expected)
    order = np.argsort(features["frequency"].to_numpy(), kind="stable")
    assert (np.diff(scores["F"].to_numpy()[order]) >= 0).all()
    order = np.argsort(features["recency_days"].to_numpy(), kind="stable")
    assert (np.diff(scores["R"].to_numpy()[order]) <= 0).all()


def test_scores_are_exact_quintiles_for_distinct_values_and_shrink_with_few_values():
    features = pd.DataFrame(
        {
            "recency_days": np.arange(100, 0, -1),
            "frequency": np.arange(1, 101),
            "monetary_total": np.linspace(1.0, 2.0, 100),
        }
    )
    scores, _ = rfm_scores(features)
    for score in "RFM":
        assert scores[score].value_counts().to_dict() == dict.fromkeys(range(1, 6), 20)
    assert scores["R"].iloc[-1] == 5  # the most recent customer

    same = pd.DataFrame(
        {"recency_days": [7] * 6, "frequency": [1] * 4 + [2] * 2, "monetary_total": [3.0] * 6}
    )
    scores, thresholds = rfm_scores(same)
    assert set(scores["R"]) == {1} and set(scores["M"]) == {1}
    assert scores["F"].tolist() == [1, 1, 1, 1, 4, 4]  # scores 2 and 3 are skipped
    np.testing.assert_array_equal(thresholds["F"], [1.0, 1.0, 1.0, 2.0])


def test_rules_first_match_other_fallback_and_coverage():
    scores = pd.DataFrame(
        {"R": [5, 5, 4, 1, 3, 2], "F": [5, 1, 5, 5, 1, 4], "M": [5, 1, 4, 5, 2, 3]},
        index=pd.Index(list("abcdef"), name="customer_id"),
    )
    rules = [
        RFMRule("Best", R=(4, 5), F=(4, 5)),
        {"name": "Recent", "R": [4, 5]},  # would also match a and c: first match wins
        {"name": "Mid", "FM": (3, 4)},  # e: F=1, M=2 -> FM 2: no match; f: F=4, M=3 -> FM 4
        RFMRule("Best", R=(1, 1), M=(5, 5)),  # a second rectangle of the same segment
    ]
    segments, coverage = segment_rfm(scores, rules)
    assert segments.tolist() == ["Best", "Recent", "Best", "Best", "Other", "Mid"]
    assert list(segments.cat.categories) == ["Best", "Recent", "Mid", "Other"]
    assert segments.index.equals(scores.index)
    assert coverage["count"].tolist() == [3, 1, 1, 1]
    assert coverage["count"].sum() == len(scores)
    assert coverage["share"].sum() == pytest.approx(1.0)

    reordered, _ = segment_rfm(scores, [rules[1], rules[0]])
    assert reordered.tolist()[:3] == ["Recent", "Recent", "Recent"]


def test_default_rules_partition_the_grid():
    grid = pd.DataFrame(list(itertools.product(range(1, 6), repeat=3)), columns=["R", "F", "M"])
    segments, coverage = segment_rfm(grid)
    assert (segments != "Other").all()
    assert (coverage.drop(index="Other")["count"] > 0).all()
    assert list(coverage.index) == [rule.name for rule in DEFAULT_RFM_RULES] + ["Other"]
    names = dict(zip(map(tuple, grid.to_numpy()), segments, strict=True))
    assert names[(5, 5, 5)] == "Champions"
    assert names[(5, 1, 1)] == "New"
    assert names[(4, 1, 1)] == "Promising"
    assert names[(1, 1, 1)] == "Lost"
    assert names[(2, 1, 2)] == "Hibernating"  # FM = (1 + 2 + 1) // 2 = 2
    assert names[(1, 5, 5)] == "Can't Lose Them"
    assert names[(2, 3, 4)] == "At Risk"  # FM rounds 3.5 up to 4
    assert names[(3, 3, 3)] == "Need Attention"
    assert names[(3, 4, 5)] == "Loyal"
    # Every rule is reachable: the cells each rule claims are exactly its own.
    for rule in DEFAULT_RFM_RULES:
        assert (segments[rule.matches(grid)] == rule.name).all()


def test_compute_rfm_segments_cover_every_customer():
    result = compute_rfm(make_log(9), order="order_id")
    assert result.coverage["count"].sum() == len(result.features)
    assert result.segments.index.equals(result.features.index)
    table = result.to_frame()
    assert list(table.columns[-4:]) == ["R", "F", "M", "segment"]
    assert len(table) == len(result.features)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"order": "order_no"}, r"order='order_no' is not a column"),
        ({"customer": "client"}, r"customer='client' is not a column"),
        ({"category": "dept"}, r"category='dept' is not a column"),
        ({"timestamp": "category"}, r"Column 'category' \(timestamp=\) has dtype"),
        ({"amount": "category"}, r"Column 'category' \(amount=\) has dtype"),
        ({"returns": "ignore"}, r"returns='ignore' should be one of"),
        ({"as_of": "2024-03-01 12:00"}, r"as_of='2024-03-01 12:00' should be a date without"),
        ({"as_of": "yesterday-ish"}, r"as_of='yesterday-ish' is not a date"),
        ({"as_of": "2023-01-01"}, r"No purchase rows \(amount >= 0\) lie before as_of=2023-01-01"),
    ],
)
def test_compute_rfm_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compute_rfm(make_log(10, n_rows=50), **kwargs)


@pytest.mark.filterwarnings(DASK_PARQUET_WARNING)
def test_compute_rfm_input_errors(tmp_path):
    log = make_log(11, n_rows=50)
    log.to_parquet(tmp_path / "log.parquet")
    with pytest.raises(ValueError, match=r"order='order_no' is not a column"):
        compute_rfm(tmp_path / "log.parquet", order="order_no")
    with pytest.raises(ValueError, match=r"transactions should be a pandas or Dask DataFrame"):
        compute_rfm(42)
    with pytest.raises(ValueError, match=r"The transactions have no rows"):
        compute_rfm(log.iloc[:0])
    with pytest.raises(ValueError, match=r"rules\[0\]=3 should be an RFMRule or a mapping"):
        compute_rfm(log, rules=[3])
    with pytest.raises(ValueError, match=r"Column 'amount' has 1 missing values"):
        compute_rfm(log.assign(amount=log["amount"].where(log.index != 3)))
    with pytest.raises(ValueError, match=r"Column 'order_id' has 2 missing values"):
        compute_rfm(log.assign(order_id=log["order_id"].where(log.index > 1)), order="order_id")
    naive = log
    with pytest.raises(ValueError, match=r"has a time zone but the timestamps have none"):
        compute_rfm(naive, as_of=pd.Timestamp("2024-03-01", tz="UTC"))


def test_scores_and_rules_errors():
    features = pd.DataFrame(
        {"recency_days": [1, 2], "frequency": [1, 1], "monetary_total": [1.0, np.nan]}
    )
    with pytest.raises(ValueError, match=r"frequency='orders' is not a column of features"):
        rfm_scores(features, frequency="orders")
    with pytest.raises(ValueError, match=r"Column 'monetary_total' \(monetary=\) has 1 missing"):
        rfm_scores(features)
    with pytest.raises(ValueError, match=r"features has no rows"):
        rfm_scores(features.iloc[:0])
    with pytest.raises(ValueError, match=r"scores is missing the score columns \['M'\]"):
        segment_rfm(pd.DataFrame({"R": [1], "F": [1]}))
    with pytest.raises(ValueError, match=r"RFMRule 'X': R=\(0, 5\) should satisfy"):
        RFMRule("X", R=(0, 5))
    with pytest.raises(ValueError, match=r"RFMRule 'X': FM=\(3,\) should be a \(low, high\) pair"):
        RFMRule("X", FM=(3,))
    with pytest.raises(ValueError, match=r"RFMRule name='' should be a non-empty string"):
        RFMRule("")
    scores = pd.DataFrame({"R": [1], "F": [1], "M": [1]})
    with pytest.raises(ValueError, match=r"unknown keys: \['recency'\]"):
        segment_rfm(scores, [{"name": "A", "recency": (1, 2)}])
    with pytest.raises(ValueError, match=r"rules should be a sequence"):
        segment_rfm(scores, {"name": "A"})
    with pytest.raises(ValueError, match=r"rules\[0\]=3 should be an RFMRule or a mapping"):
        segment_rfm(scores, [3])
