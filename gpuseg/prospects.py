"""Segments for people who are not (yet) in the fitted data: new customers and prospects.

- New customers with purchase features: :func:`score_customers` scores them with the saved model,
  with the same columns as the labels Parquet (see :mod:`gpuseg.labels`).
- Prospects with only descriptive attributes (region, channel, age band... no purchases yet):
  :func:`train_prospect_classifier` learns, on the existing customers, to predict their segment
  from their descriptive columns, and reports its accuracy on held-out customers next to the
  accuracy of always guessing the largest segment; :func:`predict_prospects` applies it.

The classifier is scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier`.
Text, category and bool columns are ordinal-encoded and treated as native categoricals (at most
250 categories each, rarer ones grouped; categories unseen in training and missing values go to
the missing-value branch); numeric columns are used as they are, NaN allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from sklearn.utils.validation import check_is_fitted

from gpuseg._backend import get_backend
from gpuseg.estimator import KMeans
from gpuseg.labels import DEFAULT_AMBIGUITY, label_table

DEFAULT_MAX_ROWS = 200_000
# HistGradientBoosting bins categoricals into at most 255 bins, one kept for missing values.
_MAX_CATEGORIES = 250


def score_customers(
    model: KMeans, X, ids: np.ndarray | None = None, *, ambiguity: float = DEFAULT_AMBIGUITY
) -> pd.DataFrame:
    """Segment, distances, runner-up, margin and ambiguous flag of new customers.

    Parameters
    ----------
    model : KMeans
        A fitted (or loaded) model.
    X : pandas.DataFrame or array-like of shape (n_samples, n_features)
        Features in model units (the model's feature plan applied); a frame is read by the
        model's column names when it has them.
    ids : array-like of shape (n_samples,), optional
        Customer ids, put first as ``customer_id``.
    ambiguity : float, default 0.1
        Margin below which a customer is flagged ambiguous.

    Returns
    -------
    pandas.DataFrame
        The columns of the labels Parquet.

    Examples
    --------
    >>> model = KMeans(2, random_state=0).fit(np.array([[0.0], [1.0], [10.0], [11.0]]))
    >>> scored = score_customers(model, np.array([[0.5], [5.4]]), ids=[7, 8])
    >>> scored["customer_id"].tolist(), scored["ambiguous"].tolist()
    ([7, 8], [False, True])
    """
    check_is_fitted(model)
    if isinstance(X, pd.DataFrame):
        columns = getattr(model, "feature_columns_", getattr(model, "feature_names_in_", None))
        if columns is not None:
            missing = [c for c in columns if c not in X.columns]
            if missing:
                raise ValueError(f"X has no column {missing[0]!r}, which the model was fitted on.")
            X = X[list(columns)]
    values = np.ascontiguousarray(X, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != model.n_features_in_:
        raise ValueError(
            f"X has shape {values.shape}; expected (n_samples, {model.n_features_in_}) as the "
            "model was fitted on."
        )
    if not np.isfinite(values).all():
        raise ValueError("X contains NaN or infinity; clean or impute it first.")
    centers = np.ascontiguousarray(model.cluster_centers_, dtype=np.float32)
    backend = get_backend(model.device)
    assignment, _ = backend.assign_accumulate(values, centers, accumulate=False)
    if ids is not None:
        ids = np.asarray(ids)
        if ids.shape != (values.shape[0],):
            raise ValueError(f"ids.shape == {ids.shape}, expected ({values.shape[0]},).")
    return label_table(ids, assignment, ambiguity).to_pandas()


@dataclass
class ProspectClassifier:
    """A segment classifier on descriptive columns, with its held-out scores.

    Attributes
    ----------
    model : sklearn.pipeline.Pipeline
        Encoder and gradient-boosted trees.
    columns : list of str
        Descriptive columns it reads, in order.
    accuracy, balanced_accuracy : float
        On the held-out customers.
    baseline_accuracy : float
        Held-out accuracy of always predicting the training set's largest segment.
    n_train, n_test : int
        Customers used to train and to score it.
    refitted : bool
        Whether ``model`` was refitted on all customers after scoring (the scores then estimate
        how well it does).
    """

    model: Pipeline = field(repr=False)
    columns: list[str]
    accuracy: float
    balanced_accuracy: float
    baseline_accuracy: float
    n_train: int
    n_test: int
    refitted: bool

    def report(self) -> dict:
        """JSON-safe scores.

        Examples
        --------
        >>> frame = pd.DataFrame({"region": ["north", "south"] * 100})
        >>> clf = train_prospect_classifier(frame, np.tile([0, 1], 100), random_state=0)
        >>> clf.report()["held_out_accuracy"]
        1.0
        """
        return {
            "columns": self.columns,
            "held_out_accuracy": self.accuracy,
            "held_out_balanced_accuracy": self.balanced_accuracy,
            "majority_baseline_accuracy": self.baseline_accuracy,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "refitted_on_all": self.refitted,
        }


def _is_categorical(column: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _build_model(frame: pd.DataFrame, random_state, max_iter: int) -> Pipeline:
    categorical = [c for c in frame.columns if _is_categorical(frame[c])]
    numeric = [c for c in frame.columns if c not in categorical]
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
        max_categories=_MAX_CATEGORIES,
        dtype=np.float64,
    )
    columns = ColumnTransformer(
        [("categorical", encoder, categorical), ("numeric", "passthrough", numeric)],
        verbose_feature_names_out=False,
    )
    trees = HistGradientBoostingClassifier(
        max_iter=max_iter,
        categorical_features=np.array([True] * len(categorical) + [False] * len(numeric)),
        random_state=random_state,
    )
    return Pipeline([("encode", columns), ("trees", trees)])


def train_prospect_classifier(
    descriptive_frame: pd.DataFrame,
    labels: np.ndarray,
    *,
    random_state: int | None = None,
    test_size: float = 0.25,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_iter: int = 200,
    refit: bool = True,
) -> ProspectClassifier:
    """Train a classifier predicting the segment from descriptive columns; score it held out.

    Parameters
    ----------
    descriptive_frame : pandas.DataFrame
        One row per customer, only the columns prospects also have.
    labels : array-like of int, shape (n_customers,)
        Each customer's segment.
    random_state : int, optional
        Seed of the row sample, the split and the trees.
    test_size : float, default 0.25
        Share of customers held out (stratified by segment when every segment has two).
    max_rows : int, default 200_000
        Customers used at most (a uniform sample beyond).
    max_iter : int, default 200
        Boosting iterations (early stopping on a validation split above 10,000 rows).
    refit : bool, default True
        Refit on all the customers used once the held-out scores are taken.

    Returns
    -------
    ProspectClassifier

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> channel, age = rng.choice(["web", "store"], 400), rng.integers(18, 80, 400)
    >>> frame = pd.DataFrame({"channel": channel, "age": age})
    >>> labels = (frame["channel"] == "web").to_numpy().astype(int)
    >>> clf = train_prospect_classifier(frame, labels, random_state=0)
    >>> clf.accuracy
    1.0
    >>> predict_prospects(clf, frame.head(2))["segment"].tolist() == labels[:2].tolist()
    True
    """
    if not isinstance(descriptive_frame, pd.DataFrame) or descriptive_frame.shape[1] == 0:
        raise ValueError("descriptive_frame should be a pandas DataFrame with at least one column.")
    labels = np.asarray(labels)
    if labels.shape != (len(descriptive_frame),):
        raise ValueError(
            f"labels.shape == {labels.shape}, expected ({len(descriptive_frame)},) "
            "(one per customer)."
        )
    if not 0 < test_size < 1:
        raise ValueError(f"test_size={test_size!r} should be between 0 and 1.")
    frame = descriptive_frame.reset_index(drop=True)
    if len(frame) > max_rows:
        rows = np.sort(np.random.default_rng(random_state).choice(len(frame), max_rows, False))
        frame, labels = frame.iloc[rows].reset_index(drop=True), labels[rows]
    _, counts = np.unique(labels, return_counts=True)
    if counts.size < 2:
        raise ValueError("labels hold a single segment; nothing to learn.")
    stratify = labels if counts.min() >= 2 else None
    train_x, test_x, train_y, test_y = train_test_split(
        frame, labels, test_size=test_size, random_state=random_state, stratify=stratify
    )
    model = _build_model(frame, random_state, max_iter).fit(train_x, train_y)
    predicted = model.predict(test_x)
    values, train_counts = np.unique(train_y, return_counts=True)
    majority = values[np.argmax(train_counts)]
    result = ProspectClassifier(
        model=model,
        columns=list(frame.columns),
        accuracy=float(accuracy_score(test_y, predicted)),
        balanced_accuracy=float(balanced_accuracy_score(test_y, predicted)),
        baseline_accuracy=float(np.mean(test_y == majority)),
        n_train=len(train_y),
        n_test=len(test_y),
        refitted=refit,
    )
    if refit:
        result.model = _build_model(frame, random_state, max_iter).fit(frame, labels)
    return result


def predict_prospects(clf: ProspectClassifier, frame: pd.DataFrame) -> pd.DataFrame:
    """Predicted segment of each prospect and the classifier's probability for it.

    Parameters
    ----------
    clf : ProspectClassifier
    frame : pandas.DataFrame
        Prospects, with (at least) the classifier's columns.

    Returns
    -------
    pandas.DataFrame
        ``segment`` and ``probability``, on ``frame``'s index.

    Examples
    --------
    >>> frame = pd.DataFrame({"region": ["north", "south"] * 50, "size": np.arange(100.0)})
    >>> clf = train_prospect_classifier(frame, np.tile([0, 1], 50), random_state=0)
    >>> predict_prospects(clf, pd.DataFrame({"region": ["south"], "size": [3.0]}))["segment"].item()
    1
    """
    missing = [c for c in clf.columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"prospects have no column {missing[0]!r}; the classifier reads {clf.columns}."
        )
    probabilities = clf.model.predict_proba(frame[clf.columns])
    best = np.argmax(probabilities, axis=1)
    classes = clf.model.classes_
    return pd.DataFrame(
        {"segment": classes[best], "probability": probabilities[np.arange(len(best)), best]},
        index=frame.index,
    )
