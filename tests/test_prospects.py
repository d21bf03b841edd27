"""Scoring new customers with a model; prospects' segments from descriptive columns."""

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from gpuseg import KMeans
from gpuseg.prospects import predict_prospects, score_customers, train_prospect_classifier


@pytest.fixture(autouse=True)
def one_openmp_thread():
    """Small boosting fits spend their time waiting on OpenMP threads on a busy 2-core runner."""
    with threadpool_limits(1, user_api="openmp"):
        yield


def test_score_customers_matches_predict_and_labels_columns():
    rng = np.random.default_rng()
    columns = ["recency", "frequency", "spend", "tenure", "basket"]
    train = pd.DataFrame(rng.standard_normal((600, 5)) * [1, 2, 3, 4, 5], columns=columns)
    model = KMeans(4, random_state=0).fit(train)
    new = train.sample(50, random_state=0)[columns[::-1]] + 0.1
    scored = score_customers(model, new, ids=new.index.to_numpy())
    assert list(scored.columns) == [
        "customer_id", "segment", "distance", "runner_up", "runner_up_distance", "margin",
        "ambiguous",
    ]  # fmt: skip
    np.testing.assert_array_equal(scored["segment"], model.predict(new[columns]))
    distances = np.sort(model.transform(new[columns]), axis=1)
    np.testing.assert_allclose(scored["distance"], distances[:, 0], rtol=1e-5)
    np.testing.assert_allclose(scored["margin"], 1 - distances[:, 0] / distances[:, 1], atol=1e-5)
    np.testing.assert_array_equal(scored["ambiguous"], scored["margin"] < 0.1)
    assert "customer_id" not in score_customers(model, new[columns].to_numpy()).columns
    with pytest.raises(ValueError, match="X has no column 'basket', which the model was fitted on"):
        score_customers(model, new.drop(columns="basket"))
    with pytest.raises(ValueError, match=r"X has shape \(50, 4\); expected \(n_samples, 5\)"):
        score_customers(model, new[columns[:4]].to_numpy())
    with pytest.raises(ValueError, match=r"ids.shape == \(2,\), expected \(50,\)"):
        score_customers(model, new, ids=[1, 2])


def customers(rng, n=1200):
    """Descriptive columns: region and age decide the segment (10% noise), channel is noise."""
    region = rng.choice(["north", "south", "east", "west"], n)
    age = rng.integers(18, 80, n).astype(float)
    segment = np.where(region == "north", 0, np.where(age > 50, 1, 2))
    noisy = rng.random(n) < 0.1
    segment[noisy] = rng.integers(0, 3, noisy.sum())
    age[rng.random(n) < 0.05] = np.nan
    frame = pd.DataFrame(
        {
            "region": pd.Categorical(region),
            "age": age,
            "channel": rng.choice(["web", "store"], n).astype(object),
            "newsletter": rng.random(n) < 0.5,
        }
    )
    return frame, segment


def test_classifier_beats_the_majority_baseline_held_out():
    rng = np.random.default_rng()
    frame, segment = customers(rng)
    clf = train_prospect_classifier(frame, segment, random_state=0, max_iter=50)
    assert clf.n_test == 300 and clf.n_train == 900 and clf.refitted
    assert clf.accuracy > 0.8 > clf.baseline_accuracy + 0.2
    assert 0 < clf.balanced_accuracy <= 1
    report = clf.report()
    assert report["held_out_accuracy"] == clf.accuracy and report["columns"] == list(frame.columns)
    # Prospects drawn by the same rule without its noise, some with a channel never seen in
    # training ("phone"), a missing age (only in the north, where age does not matter) and a
    # column the classifier does not use: most must land in their rule's segment. (One prospect
    # checked alone fails a few percent of the time: the training data are fresh and noisy.)
    n = 200
    region = rng.choice(["north", "south", "east", "west"], n)
    age = rng.integers(18, 80, n).astype(float)
    expected = np.where(region == "north", 0, np.where(age > 50, 1, 2))
    age[(region == "north") & (rng.random(n) < 0.3)] = np.nan
    prospects = pd.DataFrame(
        {
            "newsletter": rng.random(n) < 0.5,
            "channel": rng.choice(["web", "store", "phone"], n).astype(object),
            "age": age,
            "region": region,
            "extra": np.arange(n),
        },
        index=np.arange(10, 10 + n),
    )
    predicted = predict_prospects(clf, prospects)
    assert list(predicted.index) == list(prospects.index)
    assert (predicted["segment"].to_numpy() == expected).mean() > 0.85
    assert ((predicted["probability"] > 1 / 3) & (predicted["probability"] <= 1)).all()


def test_classifier_samples_rows_and_can_skip_the_refit():
    rng = np.random.default_rng()
    frame, segment = customers(rng, n=800)
    clf = train_prospect_classifier(
        frame, segment, random_state=1, max_rows=400, test_size=0.5, refit=False, max_iter=20
    )
    assert clf.n_train == 200 and clf.n_test == 200 and not clf.refitted


def test_classifier_errors():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match=r"labels.shape == \(3,\), expected \(4,\)"):
        train_prospect_classifier(frame, [0, 1, 0])
    with pytest.raises(ValueError, match="labels hold a single segment"):
        train_prospect_classifier(frame, [0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"test_size=1\.5 should be between 0 and 1"):
        train_prospect_classifier(frame, [0, 1, 0, 1], test_size=1.5)
    with pytest.raises(ValueError, match="descriptive_frame should be a pandas DataFrame"):
        train_prospect_classifier(frame.to_numpy(), [0, 1, 0, 1])
    rng = np.random.default_rng()
    clf = train_prospect_classifier(*customers(rng, n=200), random_state=0, max_iter=5)
    with pytest.raises(ValueError, match="prospects have no column 'region'"):
        predict_prospects(clf, pd.DataFrame({"age": [30.0]}))
