"""RFM features: a transaction log becomes one row per customer, out-of-core through Dask.

The log has one row per transaction line: a customer id, a timestamp and an amount, optionally an
order id, a quantity, a product category and a sales channel. :func:`compute_rfm` turns it into
recency, frequency, monetary value, tenure, returns and purchase diversity per customer, then
scores and names the customers with the rule-based RFM segments of :mod:`gpuseg.rfm_segments`.

The aggregation is two-level so that Dask can run it over more rows than fit in memory: every
partition reduces its rows to partial aggregates per customer (first and last purchase, spend,
returns), per ``(customer, order)`` or ``(customer, day)`` pair (distinct orders) and per
``(customer, category)`` pair (spend per category); Dask's tree reductions combine the partials,
and only the one-row-per-customer result comes back as pandas.

Policies
--------
Purchases and returns
    A row with ``amount >= 0`` is a purchase (a zero amount is a free item and still an order); a
    row with ``amount < 0`` is a return. Returns never count as orders and never move recency or
    tenure. ``returns=`` says what happens to their value:

    - ``"separate"`` (default): ``monetary_total`` is the purchase spend only, and the returned
      value is reported apart, as ``returns_total`` (a positive number) and ``return_rate``
      (``returns_total / purchase spend``).
    - ``"net"``: ``monetary_total`` is purchase spend minus returns (it can be zero or negative);
      ``returns_total`` and ``return_rate`` are still reported.
    - ``"drop"``: return rows are ignored; the table has no ``returns_total``/``return_rate``.

    A customer with returns but no purchase before the as-of date (a purchase made before the
    log starts) gets no row: such customers are listed in ``RFMResult.return_only`` instead.
Frequency
    The number of distinct order ids among the customer's purchase rows (several lines of one
    order count once). Without an order column it is the number of distinct calendar days with a
    purchase, so two orders on the same day count once.
As-of date
    Recency and tenure are counted in whole calendar days (times of day are ignored) up to the
    as-of date: ``recency_days = as_of - date of last purchase`` and ``tenure_days = as_of - date
    of first purchase``, so a purchase on the day before ``as_of`` has recency 1. Only rows
    strictly before ``as_of`` (midnight) are used, so a longer log gives the table it would have
    given on that date. The default is the day after the last row of the log; the date used is
    always returned in ``RFMResult.as_of``, so passing it back reproduces the table exactly.
Diversity
    ``n_categories`` counts the distinct categories among purchase rows and ``category_entropy``
    is the Shannon entropy (natural log) of the customer's purchase spend shares across
    categories: 0 for one category, ``log(k)`` for spend spread evenly over ``k``. Rows with no
    category are left out of both. ``n_channels`` counts distinct channels among purchase rows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gpuseg.distributed import compute_lazy, lazy_frame
from gpuseg.rfm_segments import (
    DEFAULT_RFM_RULES,
    RFMRule,
    _as_rules,
    rfm_scores,
    segment_rfm,
)

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = [
    "DEFAULT_RFM_RULES",
    "RETURNS_POLICIES",
    "RFMResult",
    "RFMRule",
    "compute_rfm",
    "rfm_scores",
    "segment_rfm",
]

RETURNS_POLICIES = ("separate", "net", "drop")


@dataclass
class RFMResult:
    """What :func:`compute_rfm` returns: features, scores, segments and the date they hold for.

    Attributes
    ----------
    features : DataFrame, shape (n_customers, n_columns)
        One row per customer, indexed by customer id (sorted): ``recency_days``, ``frequency``,
        ``monetary_total``, ``monetary_avg`` (per order), ``tenure_days``; ``returns_total`` and
        ``return_rate`` unless ``returns="drop"``; ``n_categories`` and ``category_entropy`` with
        a category column; ``n_channels`` with a channel column; ``units_total`` with a quantity
        column.
    scores : DataFrame of int64, shape (n_customers, 3)
        ``R``, ``F``, ``M`` scores in 1..5 (see :func:`rfm_scores`).
    thresholds : dict of str to ndarray, shape (4,)
        The quintile cut points behind each score.
    segments : Series of category, shape (n_customers,)
        The RFM segment name of each customer.
    coverage : DataFrame
        ``count`` and ``share`` of customers per segment name, ``"Other"`` last.
    as_of : Timestamp
        The as-of date (midnight) the table holds for.
    returns : str
        The returns policy used.
    return_only : Index
        Customers with return rows but no purchase before ``as_of``; they have no row.
    """

    features: pd.DataFrame
    scores: pd.DataFrame
    thresholds: dict[str, np.ndarray]
    segments: pd.Series
    coverage: pd.DataFrame
    as_of: pd.Timestamp
    returns: str
    return_only: pd.Index

    def to_frame(self) -> pd.DataFrame:
        """Return features, scores and segment side by side: the customer table to write out.

        Examples
        --------
        >>> log = pd.DataFrame({"customer_id": [1, 2], "amount": [5.0, 7.0],
        ...                     "timestamp": pd.to_datetime(["2024-01-02", "2024-01-05"])})
        >>> list(compute_rfm(log).to_frame().columns)[-4:]
        ['R', 'F', 'M', 'segment']
        """
        return self.features.join(self.scores).assign(segment=self.segments)


def compute_rfm(
    transactions: pd.DataFrame | dd.DataFrame | str | os.PathLike | Sequence[str],
    *,
    customer: str = "customer_id",
    timestamp: str = "timestamp",
    amount: str = "amount",
    order: str | None = None,
    category: str | None = None,
    channel: str | None = None,
    quantity: str | None = None,
    as_of: Any = None,
    returns: str = "separate",
    rules: Sequence[RFMRule | Mapping] = DEFAULT_RFM_RULES,
    client: Any = None,
) -> RFMResult:
    """Build RFM features, scores and segments from a transaction log.

    See the module docstring for the policies on returns, frequency, the as-of date and
    diversity.

    Parameters
    ----------
    transactions : DataFrame, dask DataFrame, str, path-like or list of str
        The log: a pandas or Dask dataframe, or Parquet (a file, a directory, a glob, an fsspec URL
        or a list of files) read with ``dask.dataframe.read_parquet``, only the columns needed.
    customer, timestamp, amount : str
        Column names: the customer id, a datetime64 timestamp and a numeric amount (negative for
        returns). None of them may have missing values.
    order : str, optional
        Order id column (no missing values); frequency counts distinct order ids. Without it,
        frequency counts distinct purchase days.
    category : str, optional
        Product category column, for ``n_categories`` and ``category_entropy``.
    channel : str, optional
        Sales channel column, for ``n_channels``.
    quantity : str, optional
        Units column, for ``units_total`` (units on purchase rows).
    as_of : date-like, optional
        The as-of date (a date without time of day, in the timestamps' time zone if they have
        one). Default: the day after the last row of the log.
    returns : {"separate", "net", "drop"}, default "separate"
        What to do with rows of negative amount (see the module docstring).
    rules : sequence of RFMRule or mapping, default DEFAULT_RFM_RULES
        The ordered first-match segment rule table (see :func:`segment_rfm`).
    client : distributed.Client, optional
        Where to run; ``None`` uses Dask's default scheduler (the local threaded scheduler,
        unless a distributed client has been made the default).

    Returns
    -------
    RFMResult
        ``features``, ``scores``, ``thresholds``, ``segments``, ``coverage``, ``as_of``,
        ``returns`` and ``return_only``.

    Raises
    ------
    ValueError
        If a column is missing or of the wrong type, ``customer``/``timestamp``/``amount``/
        ``order`` hold missing values, ``returns`` or ``as_of`` is invalid, or no purchase lies
        before ``as_of``.

    Examples
    --------
    >>> log = pd.DataFrame({
    ...     "customer_id": [1, 1, 1, 2],
    ...     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-20", "2024-01-25", "2024-01-30"]),
    ...     "amount": [10.0, 30.0, -5.0, 8.0],
    ... })
    >>> result = compute_rfm(log)
    >>> result.as_of
    Timestamp('2024-01-31 00:00:00')
    >>> result.features.loc[1, ["recency_days", "frequency", "monetary_total", "returns_total"]]
    recency_days      11.0
    frequency          2.0
    monetary_total    40.0
    returns_total      5.0
    Name: 1, dtype: float64
    >>> compute_rfm(log, returns="net").features["monetary_avg"].tolist()
    [17.5, 8.0]
    """
    if returns not in RETURNS_POLICIES:
        raise ValueError(f"returns={returns!r} should be one of {RETURNS_POLICIES}.")
    rules = _as_rules(rules)  # a bad rule table fails before the pass over the data
    frame = lazy_frame(transactions, "transactions")
    roles = {
        "customer": customer,
        "timestamp": timestamp,
        "amount": amount,
        "order": order,
        "category": category,
        "channel": channel,
        "quantity": quantity,
    }
    roles = {role: column for role, column in roles.items() if column is not None}
    _check_columns(frame, roles)
    frame = frame[list(dict.fromkeys(roles.values()))]
    as_of = _check_as_of(as_of, frame[timestamp].dtype)

    required = [c for c in (customer, timestamp, amount, order) if c is not None]
    lazy = {"nulls": frame[required].isna().sum(), "last_row": frame[timestamp].max()}
    if as_of is not None:
        frame = frame[frame[timestamp] < as_of]
    lazy.update(_partial_aggregates(frame, roles))
    done = compute_lazy(lazy, client)

    nulls = done["nulls"][done["nulls"] > 0]
    if len(nulls):
        raise ValueError(
            f"Column {nulls.index[0]!r} has {int(nulls.iloc[0])} missing values; drop or fill "
            "them before compute_rfm."
        )
    if done["last_row"] is pd.NaT:
        raise ValueError("The transactions have no rows.")
    if as_of is None:
        as_of = done["last_row"].normalize() + pd.DateOffset(days=1)
    features, return_only = _assemble(done, roles, as_of, returns)
    scores, thresholds = rfm_scores(features)
    segments, coverage = segment_rfm(scores, rules)
    return RFMResult(
        features=features,
        scores=scores,
        thresholds=thresholds,
        segments=segments,
        coverage=coverage,
        as_of=as_of,
        returns=returns,
        return_only=return_only,
    )


def _check_columns(frame: dd.DataFrame, roles: dict[str, str]) -> None:
    """Raise a ValueError naming the first missing or mistyped column."""
    for role, column in roles.items():
        if column not in frame.columns:
            raise ValueError(
                f"{role}={column!r} is not a column of the transactions; columns are "
                f"{list(frame.columns)}."
            )
    dtype = frame[roles["timestamp"]].dtype
    if not pd.api.types.is_datetime64_any_dtype(dtype):
        raise ValueError(
            f"Column {roles['timestamp']!r} (timestamp=) has dtype {dtype}; expected datetime64. "
            "Convert it with pandas.to_datetime first."
        )
    for role in ("amount", "quantity"):
        if role in roles:
            dtype = frame[roles[role]].dtype
            if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
                raise ValueError(
                    f"Column {roles[role]!r} ({role}=) has dtype {dtype}; expected a number."
                )


def _check_as_of(as_of: Any, dtype: Any) -> pd.Timestamp | None:
    """Return ``as_of`` as a midnight Timestamp in the timestamps' time zone, or None."""
    if as_of is None:
        return None
    try:
        stamp = pd.Timestamp(as_of)
    except (TypeError, ValueError):
        raise ValueError(f"as_of={as_of!r} is not a date; pass e.g. '2024-07-01'.") from None
    if stamp is pd.NaT or stamp != stamp.normalize():
        raise ValueError(
            f"as_of={as_of!r} should be a date without a time of day, e.g. '2024-07-01'; rows "
            "strictly before its midnight are used."
        )
    tz = getattr(dtype, "tz", None)
    if stamp.tz is None and tz is not None:
        stamp = stamp.tz_localize(tz)
    elif stamp.tz is not None and tz is None:
        raise ValueError(
            f"as_of={as_of!r} has a time zone but the timestamps have none; pass a naive date."
        )
    return stamp


def _partial_aggregates(frame: dd.DataFrame, roles: dict[str, str]) -> dict[str, Any]:
    """Build the lazy per-customer aggregates; Dask reduces each partition, then combines."""
    customer, timestamp, amount = roles["customer"], roles["timestamp"], roles["amount"]
    purchases = frame[frame[amount] >= 0]
    returned = frame[frame[amount] < 0]
    spec: dict[str, Any] = {timestamp: ["min", "max"], amount: "sum"}
    if "quantity" in roles:
        spec[roles["quantity"]] = "sum"
    lazy: dict[str, Any] = {
        "purchases": purchases.groupby(customer).agg(spec),
        "returns": returned.groupby(customer)[amount].sum(),
    }
    if "order" in roles:
        lazy["orders"] = purchases.groupby(customer)[roles["order"]].nunique()
    else:
        days = purchases[[customer]].assign(_day=purchases[timestamp].dt.normalize())
        lazy["orders"] = days.groupby(customer)["_day"].nunique()
    if "category" in roles:
        spend = purchases.groupby([customer, roles["category"]])[amount].sum()
        spend = spend.to_frame("spend").reset_index()
        # Entropy from mergeable sums: H = log(S) - sum(s log s) / S with S = sum(s).
        spend = spend.assign(
            slogs=spend["spend"] * np.log(spend["spend"].where(spend["spend"] > 0, 1.0)),
            positive=(spend["spend"] > 0).astype("int64"),
        )
        lazy["categories"] = spend.groupby(customer).agg(
            {"spend": ["sum", "count"], "slogs": "sum", "positive": "sum"}
        )
    if "channel" in roles:
        lazy["channels"] = purchases.groupby(customer)[roles["channel"]].nunique()
    return lazy


def _assemble(
    done: dict[str, Any], roles: dict[str, str], as_of: pd.Timestamp, returns: str
) -> tuple[pd.DataFrame, pd.Index]:
    """Combine the computed per-customer aggregates into the feature table."""
    timestamp, amount = roles["timestamp"], roles["amount"]
    purchases = done["purchases"].sort_index()
    if len(purchases) == 0:
        raise ValueError(f"No purchase rows (amount >= 0) lie before as_of={as_of.date()}.")
    customers = purchases.index
    returned = done["returns"].reindex(customers, fill_value=0.0).astype(np.float64).abs()
    return_only = done["returns"].index.difference(customers)
    # Calendar days on the wall clock: a day across a DST change is still one day.
    first = purchases[(timestamp, "min")].dt.tz_localize(None).dt.normalize()
    last = purchases[(timestamp, "max")].dt.tz_localize(None).dt.normalize()
    as_of = as_of.tz_localize(None)
    spend = purchases[(amount, "sum")].astype(np.float64)
    frequency = done["orders"].reindex(customers).astype(np.int64)
    monetary = spend - returned if returns == "net" else spend

    features = pd.DataFrame(
        {
            "recency_days": (as_of - last).dt.days.astype(np.int64),
            "frequency": frequency,
            "monetary_total": monetary,
            "monetary_avg": monetary / frequency,
            "tenure_days": (as_of - first).dt.days.astype(np.int64),
        },
        index=customers,
    )
    if returns != "drop":
        features["returns_total"] = returned
        rate = returned / spend.where(spend > 0)
        features["return_rate"] = rate.where(returned > 0, 0.0)
    if "category" in roles:
        cats = done["categories"].reindex(customers)
        total = cats[("spend", "sum")].fillna(0.0)
        entropy = np.log(total.where(total > 0)) - cats[("slogs", "sum")] / total
        single = cats[("positive", "sum")].fillna(0) <= 1
        features["n_categories"] = cats[("spend", "count")].fillna(0).astype(np.int64)
        features["category_entropy"] = entropy.where(~single, 0.0).clip(lower=0.0)
    if "channel" in roles:
        channels = done["channels"].reindex(customers, fill_value=0)
        features["n_channels"] = channels.astype(np.int64)
    if "quantity" in roles:
        features["units_total"] = purchases[(roles["quantity"], "sum")]
    features.index.name = roles["customer"]
    return features, return_only
