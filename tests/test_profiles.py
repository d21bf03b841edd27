"""Segment profiles from streamed statistics, and the names generated from them."""

import itertools
import json
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from gpuseg.ddsketch import QuantileSketch
from gpuseg.naming import (
    TYPICAL,
    apply_names,
    describe_segments,
    feature_word,
    load_names,
    save_names,
)
from gpuseg.profiles import ProfileAccumulator, profile_frame

FEATURES = ["recency_days", "frequency", "monetary", "tenure"]


def make_frame(rng, n=3000, k=4):
    labels = rng.integers(0, k, n)
    frame = pd.DataFrame(
        {
            "recency_days": rng.exponential(60, n) * (1 + labels),
            "frequency": rng.poisson(3, n) + labels,
            "monetary": rng.lognormal(4, 1, n) * (k - labels),
            "tenure": rng.normal(500, 80, n) - 1000.0,
            "customer_id": np.arange(n),
        }
    )
    return frame, labels


def accumulate(frame, labels, k, cuts, **kwargs):
    """Two accumulators over a split of the rows, each fed in blocks, then merged."""
    first = ProfileAccumulator(FEATURES, k, "monetary", **kwargs)
    second = ProfileAccumulator(FEATURES, k, "monetary", **kwargs)
    bounds = [0, *cuts, len(frame)]
    for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
        target = first if index % 2 == 0 else second
        target.add(frame.iloc[start:stop], labels[start:stop])
    first.merge(second)
    return first


def test_streamed_statistics_match_pandas():
    rng = np.random.default_rng()
    frame, labels = make_frame(rng)
    profile = accumulate(frame, labels, 4, [100, 1100, 1111, 2500]).profile()
    groups = frame[FEATURES].groupby(labels)
    np.testing.assert_array_equal(profile.sizes, np.bincount(labels))
    np.testing.assert_allclose(profile.shares, np.bincount(labels) / len(frame))
    np.testing.assert_allclose(profile.means, groups.mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(profile.stds, groups.std(ddof=0).to_numpy(), rtol=1e-10)
    np.testing.assert_array_equal(profile.medians, groups.median().to_numpy())
    assert profile.medians_exact
    overall_mean = frame[FEATURES].mean().to_numpy()
    overall_std = frame[FEATURES].std(ddof=0).to_numpy()
    np.testing.assert_allclose(profile.overall_mean, overall_mean, rtol=1e-12)
    np.testing.assert_allclose(profile.overall_std, overall_std, rtol=1e-10)
    np.testing.assert_array_equal(profile.overall_median, frame[FEATURES].median().to_numpy())
    np.testing.assert_allclose(profile.lift, groups.mean().to_numpy() / overall_mean - 1)
    np.testing.assert_allclose(
        profile.z, (groups.mean().to_numpy() - overall_mean) / overall_std, rtol=1e-9
    )
    revenue = frame.groupby(labels)["monetary"].sum().to_numpy()
    np.testing.assert_allclose(profile.revenue_share, revenue / revenue.sum())


def test_rank_z_is_the_normal_shift_of_exact_mid_ranks():
    rng = np.random.default_rng()
    frame, labels = make_frame(rng)
    profile = accumulate(frame, labels, 4, [100, 1100, 1111, 2500]).profile()
    # Share of everyone below each customer, ties counted half, averaged per segment.
    share_below = (frame[FEATURES].rank(method="average").to_numpy() - 0.5) / len(frame)
    auc = pd.DataFrame(share_below).groupby(labels).mean().to_numpy()
    expected = np.sqrt(2) * np.vectorize(NormalDist().inv_cdf)(auc)
    # The sketch ties values within alpha (0.5 %) of each other; exact ranks do not.
    np.testing.assert_allclose(profile.rank_z, expected, atol=0.01)
    constant = profile_frame(pd.DataFrame({"c": [3.0] * 4}), np.array([0, 0, 1, 1]), ["c"], 3)
    assert constant.rank_z[:2].tolist() == [[0.0], [0.0]] and np.isnan(constant.rank_z[2, 0])


def test_names_see_through_a_long_tail():
    rng = np.random.default_rng()
    n = 500
    spend = np.concatenate([rng.uniform(10, 50, n), rng.uniform(60, 200, n)])
    spend[-1] = 1e7  # one customer spending a fortune
    frame = pd.DataFrame({"spend": spend, "recency_days": rng.uniform(1, 300, 2 * n)})
    profile = profile_frame(frame, np.repeat([0, 1], n), list(frame.columns), 2)
    assert abs(profile.z[0, 0]) < 0.1  # means and standard deviations see one outlier
    assert describe_segments(profile) == ["low spend", "high spend"]


def test_sketched_medians_within_alpha_and_independent_of_blocks():
    rng = np.random.default_rng()
    frame, labels = make_frame(rng, n=4000)
    frame["tenure"] -= frame["tenure"].median()  # values of both signs around 0
    one = accumulate(frame, labels, 4, [1000, 2000, 3000], exact_rows=0)
    other = accumulate(frame, labels, 4, [7, 3999], exact_rows=0)
    np.testing.assert_array_equal(one.sketch.keys, other.sketch.keys)
    np.testing.assert_array_equal(one.sketch.counts, other.sketch.counts)
    profile = one.profile()
    assert not profile.medians_exact and profile.median_alpha == 0.005
    for j in range(4):
        values = np.sort(frame[FEATURES].to_numpy()[labels == j], axis=0)
        lower = values[(len(values) - 1) // 2]
        np.testing.assert_array_less(np.abs(profile.medians[j] - lower), 0.005 * np.abs(lower))
    everything = np.sort(frame[FEATURES].to_numpy(), axis=0)
    lower = everything[(len(everything) - 1) // 2]
    np.testing.assert_array_less(np.abs(profile.overall_median - lower), 0.005 * np.abs(lower))


def test_exact_medians_give_way_to_the_sketch_past_exact_rows():
    rng = np.random.default_rng()
    frame, labels = make_frame(rng, n=500)
    acc = ProfileAccumulator(FEATURES, 4, exact_rows=300)
    acc.add(frame.iloc[:250], labels[:250])
    assert acc.medians()[2]
    acc.add(frame.iloc[250:], labels[250:])
    assert not acc.medians()[2]


def test_sketch_quantiles_of_small_groups():
    sketch = QuantileSketch(3, alpha=0.01)
    sketch.add(np.array([0, 0, 0, 2, 2]), np.array([-5.0, 0.0, 7.0, 3.0, 1e-12]))
    medians = sketch.quantile(0.5)
    assert medians[0] == 0.0 and np.isnan(medians[1]) and medians[2] == 0.0
    assert abs(sketch.quantile(0.0)[0] + 5.0) <= 0.05 and abs(sketch.quantile(1.0)[0] - 7) <= 0.07
    wide = np.array([1e-8, -3e-5, 2.0, 7e7, -1e12, 0.0, 2.0, 1e300])
    groups = np.array([0, 1, 2, 0, 1, 2, 2, 1])
    at_once, one_by_one = QuantileSketch(3, alpha=0.001), QuantileSketch(3, alpha=0.001)
    at_once.add(groups, wide)  # buckets too sparse to count densely: sorted instead
    for group, value in zip(groups, wide, strict=True):
        one_by_one.add(np.array([group]), np.array([value]))
    np.testing.assert_array_equal(at_once.keys, one_by_one.keys)
    np.testing.assert_array_equal(at_once.counts, one_by_one.counts)
    np.testing.assert_allclose(at_once.quantile(1.0), [7e7, 1e300, 2.0], rtol=0.001)
    with pytest.raises(ValueError, match=r"alpha=0\.5 should be between"):
        QuantileSketch(1, alpha=0.5)
    with pytest.raises(ValueError, match="cannot merge a sketch"):
        sketch.merge(QuantileSketch(2, alpha=0.01))


@pytest.mark.parametrize("alpha", [0.001, 0.005, 0.05])
def test_bucket_of_every_value_is_the_log_formula(alpha):
    # Every value's bucket is ceil(log|x| / log(gamma)) + offset with its sign, in NumPy's
    # logarithm, and 0 below 1e-9: across magnitudes, signs, the zero threshold and bucket edges.
    rng = np.random.default_rng()
    sketch = QuantileSketch(1, alpha=alpha)
    gamma = (1 + alpha) / (1 - alpha)
    edges = gamma ** np.arange(-200.0, 200.0)
    values = np.concatenate([
        rng.standard_normal(50_000) * 10.0 ** rng.uniform(-12, 12, 50_000),
        edges, -np.nextafter(edges, 0), np.nextafter(edges, np.inf),
        [0.0, -0.0, 1e-9, -1e-9, np.nextafter(1e-9, 0), 1.0, -1.0],
    ])  # fmt: skip
    magnitude = np.abs(values)
    index = np.ceil(np.log(np.where(magnitude < 1e-9, 1.0, magnitude)) / math.log(gamma))
    offset = 1 - math.ceil(math.log(1e-9) / math.log(gamma))
    expected = np.where(magnitude < 1e-9, 0, np.sign(values) * (index + offset))
    np.testing.assert_array_equal(sketch._bucket(values), expected.astype(np.int64))
    np.testing.assert_array_equal(sketch._bucket(values[:-1].reshape(-1, 2)).ravel(),
                                  expected[:-1].astype(np.int64))  # fmt: skip


def test_ambiguous_share_and_outputs():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "revenue": [0.0, 0, 0, 10, 30]})
    acc = ProfileAccumulator(["x"], 3, money_column="revenue")
    acc.add(frame.iloc[:2], [0, 0], ambiguous=[True, False])
    acc.add(frame.iloc[2:], [0, 1, 1], ambiguous=[False, True, True])
    profile = acc.profile(names=["low | x", "high x", "empty"])
    np.testing.assert_allclose(profile.ambiguous_share[:2], [1 / 3, 1.0])
    assert np.isnan(profile.ambiguous_share[2]) and np.isnan(profile.means[2, 0])
    np.testing.assert_allclose(profile.revenue_share, [0.0, 1.0, 0.0])
    data = json.loads(profile.to_json())
    assert data["segments"][2]["features"]["x"]["mean"] is None
    assert data["segments"][1]["ambiguous_share"] == 1.0
    assert data["medians"] == "exact"
    markdown = profile.to_markdown()
    assert "| 0 | low \\| x | 3 | 60.0% | 0.0% | 33.3% |" in markdown
    assert "4.5 (+50%)" in markdown
    table = profile.to_frame()
    assert list(table.columns[:5]) == ["name", "size", "share", "revenue_share", "ambiguous_share"]
    assert table.loc[1, "x_lift"] == pytest.approx(0.5)


def test_zero_mean_and_constant_features_give_nan_lift_and_z():
    frame = pd.DataFrame({"centred": [-1.0, 1.0, -2.0, 2.0], "constant": [3.0] * 4})
    profile = profile_frame(frame, np.array([0, 0, 1, 1]), ["centred", "constant"], 2)
    assert np.isnan(profile.lift[:, 0]).all() and np.isnan(profile.z[:, 1]).all()
    json.loads(profile.to_json())


def test_lift_is_left_out_for_a_feature_of_both_signs():
    rng = np.random.default_rng()
    n = 2000
    labels = rng.integers(0, 3, n)
    frame = pd.DataFrame(
        {
            "score": rng.normal(0.01, 1.0, n) + 0.5 * labels,  # both signs, mean near 0
            "spend": rng.lognormal(3, 1, n) * (1 + labels),  # positive
            "balance": -rng.lognormal(2, 1, n),  # negative only: a ratio still means something
        }
    )
    features = ["score", "spend", "balance"]
    profile = profile_frame(frame, labels, features, 3)
    assert np.isnan(profile.lift[:, 0]).all()
    means = frame.groupby(labels)[features[1:]].mean().to_numpy()
    np.testing.assert_allclose(
        profile.lift[:, 1:], means / frame[features[1:]].mean().to_numpy() - 1
    )
    score_row = next(
        line for line in profile.to_markdown().splitlines() if line.startswith("| score")
    )
    assert "%" not in score_row
    assert profile.to_dict()["segments"][0]["features"]["score"]["lift"] is None


def test_accumulator_errors():
    acc = ProfileAccumulator(["x"], 2)
    with pytest.raises(ValueError, match="frame_block has no column 'x'"):
        acc.add(pd.DataFrame({"y": [1.0]}), [0])
    with pytest.raises(ValueError, match=r"labels.shape == \(2,\), expected \(1,\)"):
        acc.add(pd.DataFrame({"x": [1.0]}), [0, 1])
    with pytest.raises(ValueError, match=r"labels should be in \[0, 2\); got values from 0 to 2"):
        acc.add(pd.DataFrame({"x": [1.0, 2.0]}), [0, 2])
    with pytest.raises(ValueError, match="column 'x' has NaN or infinite values"):
        acc.add(pd.DataFrame({"x": [np.nan]}), [0])
    with pytest.raises(ValueError, match="no rows were added"):
        acc.profile()
    with pytest.raises(ValueError, match="cannot merge profile statistics"):
        acc.merge(ProfileAccumulator(["x"], 3))
    with pytest.raises(ValueError, match="money_column='x' differs from None"):
        acc.merge(ProfileAccumulator(["x"], 2, money_column="x"))
    with pytest.raises(ValueError, match="feature_names='x' should be a non-empty list"):
        ProfileAccumulator("x", 2)
    with pytest.raises(ValueError, match="n_clusters=0 should be an integer >= 1"):
        ProfileAccumulator(["x"], 0)


# -- names ------------------------------------------------------------------------------------


def rfm_profile(rng):
    """Champions, lapsed one-time buyers, a middle group, and a near-copy of the champions."""
    n = 400
    frame = pd.DataFrame(
        {
            "recency_days": np.concatenate(
                [rng.uniform(1, 10, n), rng.uniform(300, 400, n), rng.uniform(90, 110, n)]
            ),
            "frequency": np.concatenate(
                [rng.integers(10, 20, n), np.ones(n), rng.integers(3, 6, n)]
            ),
            "monetary": np.concatenate(
                [rng.uniform(800, 900, n), rng.uniform(10, 30, n), rng.uniform(200, 400, n)]
            ),
        }
    )
    labels = np.repeat([0, 1, 2], n)
    return profile_frame(frame, labels, list(frame.columns), 3)


def test_names_are_plain_words_from_the_most_distinctive_features():
    profile = rfm_profile(np.random.default_rng())
    names = describe_segments(profile)
    assert set(names[0].split(", ")) == {"recent", "frequent", "high spend"}
    assert set(names[1].split(", ")) == {"lapsed", "one-time", "low spend"}
    assert names == describe_segments(profile)
    fallback = describe_segments(profile, min_z=10.0)
    assert len(set(fallback)) == 3 and all(", " not in name for name in fallback)
    profile.rank_z[:] = 0.05
    assert describe_segments(profile) == [TYPICAL, f"{TYPICAL} (2)", f"{TYPICAL} (3)"]


def test_duplicate_names_take_more_features_then_numbers():
    frame = pd.DataFrame({"spend": [1.0, 2, 3, 4, 5], "pages": [1.0, 2, 3, 4, 5]})
    profile = profile_frame(frame, np.arange(5), ["spend", "pages"], 5)
    profile.rank_z = np.array([[2.0, 1.0], [1.5, -0.6], [-1.0, 0.05], [-1.0, 0.0], [0.0, 0.0]])
    names = describe_segments(profile, max_terms=1)
    assert names == [
        "high spend, high pages",
        "high spend, low pages",
        "low spend",
        "low spend (2)",
        TYPICAL,
    ]


def test_feature_words():
    assert feature_word("days_since_last_order", 1.0) == "lapsed"
    assert feature_word("n_orders", 0.7, median=3.0) == "many orders"
    assert feature_word("n_orders", 0.7, median=1.0) == "one-time"
    assert feature_word("Tenure", -2.0) == "new"
    assert feature_word("sessions", 2.0) == "high sessions"


def test_names_file_round_trip_and_edits(tmp_path):
    path = tmp_path / "names.json"
    save_names(path, ["recent, frequent", "lapsed"])
    assert load_names(path, n_clusters=2) == {0: "recent, frequent", 1: "lapsed"}
    path.write_text(json.dumps({"1": "  win back  "}))
    assert apply_names(["a", "b", "c"], load_names(path)) == ["a", "win back", "c"]
    assert apply_names(["a", "b"], {1: "a"}) == ["a", "a (2)"]
    with pytest.raises(ValueError, match="segment 5 is out of range for 2 segments"):
        apply_names(["a", "b"], {5: "x"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"one": "x"}', "key 'one' should be a segment number"),
        ('{"3": "x"}', "segment 3 does not exist; the model has n_clusters=3"),
        ('{"0": " "}', "the name of segment 0 should be a non-empty string"),
        ('{"0": "x", "1": "x"}', "the name 'x' is given to more than one segment"),
    ],
)
def test_names_file_errors(tmp_path, text, message):
    path = tmp_path / "names.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_names(path, n_clusters=3)


def test_describe_segments_rejects_zero_terms():
    with pytest.raises(ValueError, match="max_terms=0 should be >= 1"):
        describe_segments(rfm_profile(np.random.default_rng()), max_terms=0)
