"""A synthetic retail transaction log: the data the demo segments.

Customers belong to hidden behaviour types (one-time buyers, occasional, regular and loyal buyers,
big spenders, lapsed customers and newcomers) that differ in when they joined, when they stop, how
often they order, how much they spend and how often they return items. Every type draws its
parameters per customer, so the types overlap the way real customers do:

- spend per order line is log-normal around a per-customer level that is itself log-normal, so
  total spend is heavy-tailed (a few per cent of customers hold a large share of revenue);
- order dates follow a seasonal intensity: weekends are busier, December peaks, the summer dips;
- every order has one to several lines, each of a category drawn from the customer's own
  preferences over :data:`CATEGORIES`, in a channel drawn from their preferences over
  :data:`CHANNELS`;
- some lines are returned 3 to 30 days later, as a row with the same order id and a negative
  amount (more often online than in store).

The log is deterministic given ``random_state`` and vectorised throughout: 200,000 customers
(about 2 million rows) take a few seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

CATEGORIES = (
    "grocery", "household", "beauty", "fashion", "shoes", "electronics", "home", "garden",
    "toys", "sports", "books", "pets",
)  # fmt: skip
# Typical line price per category, relative to the customer's spend level.
_CATEGORY_PRICE = np.array([0.5, 0.7, 0.8, 1.4, 1.6, 3.0, 1.8, 1.2, 0.9, 1.3, 0.6, 0.8])
# How popular each category is across the whole base (Dirichlet prior of the preferences).
_CATEGORY_POPULARITY = np.array([4.0, 2.5, 1.5, 2.0, 1.0, 1.0, 1.2, 0.6, 0.8, 0.9, 0.7, 0.8])
CHANNELS = ("store", "web", "app", "marketplace")
_CHANNEL_POPULARITY = np.array([2.0, 1.5, 1.0, 0.4])
_CHANNEL_RETURN_FACTOR = np.array([0.5, 1.6, 1.3, 1.8])


@dataclass(frozen=True)
class _Type:
    """A hidden customer type: its share and the ranges its customers draw from."""

    name: str
    share: float
    orders_per_year: float  # mean rate while active (one-time buyers: exactly one order)
    spend_level: float  # median spend per line
    spend_sigma: float  # spread of the per-customer spend level (log scale)
    active_from: tuple[float, float]  # start of activity, as a fraction of the period
    active_for: tuple[float, float]  # length of activity, as a fraction of the period
    return_rate: float  # mean share of lines returned
    n_categories: float  # concentration of category preferences (lower: fewer categories)


_TYPES = (
    _Type("one-time", 0.34, 0.0, 28.0, 0.7, (0.0, 1.0), (0.0, 0.0), 0.06, 0.3),
    _Type("occasional", 0.22, 2.5, 32.0, 0.6, (0.0, 0.7), (0.3, 1.0), 0.07, 0.6),
    _Type("regular", 0.16, 8.0, 35.0, 0.5, (0.0, 0.5), (0.5, 1.0), 0.08, 1.0),
    _Type("loyal", 0.08, 24.0, 38.0, 0.45, (0.0, 0.3), (0.7, 1.0), 0.05, 2.0),
    _Type("big spender", 0.03, 10.0, 160.0, 0.6, (0.0, 0.6), (0.4, 1.0), 0.12, 1.2),
    _Type("lapsed", 0.10, 6.0, 30.0, 0.55, (0.0, 0.3), (0.1, 0.35), 0.10, 0.8),
    _Type("new", 0.07, 12.0, 30.0, 0.55, (0.85, 0.97), (1.0, 1.0), 0.07, 0.8),
)


def seasonal_intensity(days: pd.DatetimeIndex) -> np.ndarray:
    """Relative order intensity of each day: busier weekends, a December peak, a summer dip.

    Examples
    --------
    >>> days = pd.date_range("2024-12-01", periods=2)
    >>> seasonal_intensity(days).round(2).tolist()
    [1.76, 1.33]
    """
    weekday = np.asarray(days.day_of_week)
    day_of_year = np.asarray(days.day_of_year)
    weekly = np.where(weekday >= 5, 1.35, 1.0)
    december = 1.0 + 0.6 * np.exp(-0.5 * ((day_of_year - 350) / 12.0) ** 2)
    summer = 1.0 - 0.2 * np.exp(-0.5 * ((day_of_year - 215) / 20.0) ** 2)
    return weekly * december * summer


def make_transactions(
    n_customers: int,
    *,
    start: str = "2023-01-01",
    days: int = 730,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Generate a retail transaction log, one row per order line or return.

    Parameters
    ----------
    n_customers : int
        Customers with at least one purchase; at least 1.
    start : str, default "2023-01-01"
        First day of the log.
    days : int, default 730
        Length of the log in days (at least 28).
    random_state : int or None, default 0
        Seed; the same seed gives the same log.

    Returns
    -------
    DataFrame
        Columns ``customer_id`` (int64), ``order_id`` (int64), ``timestamp`` (datetime64[us]),
        ``amount`` (float64; negative for returns), ``quantity`` (int32), ``category`` and
        ``channel`` (strings); rows sorted by timestamp.

    Examples
    --------
    >>> log = make_transactions(100, random_state=1)
    >>> sorted(log.columns)
    ['amount', 'category', 'channel', 'customer_id', 'order_id', 'quantity', 'timestamp']
    >>> bool(log["customer_id"].nunique() == 100)
    True
    """
    if int(n_customers) != n_customers or n_customers < 1:
        raise ValueError(f"n_customers={n_customers!r} should be an integer >= 1.")
    if int(days) != days or days < 28:
        raise ValueError(f"days={days!r} should be an integer >= 28.")
    rng = np.random.default_rng(random_state)
    n = int(n_customers)
    shares = np.array([t.share for t in _TYPES])
    kind = rng.choice(len(_TYPES), size=n, p=shares / shares.sum())

    def per_type(field: str) -> np.ndarray:
        return np.array([getattr(t, field) for t in _TYPES], dtype=np.float64)[kind]

    def per_type_range(field: str) -> tuple[np.ndarray, np.ndarray]:
        bounds = np.array([getattr(t, field) for t in _TYPES], dtype=np.float64)[kind]
        return bounds[:, 0], bounds[:, 1]

    low, high = per_type_range("active_from")
    begin = rng.uniform(low, high) * days
    low, high = per_type_range("active_for")
    end = np.minimum(begin + rng.uniform(low, high) * days, days - 1e-6)
    active_years = (end - begin) / 365.0
    rate = per_type("orders_per_year") * rng.gamma(2.0, 0.5, n)
    n_orders = 1 + rng.poisson(rate * active_years)
    spend_level = per_type("spend_level") * np.exp(per_type("spend_sigma") * rng.standard_normal(n))
    return_rate = np.clip(per_type("return_rate") * rng.gamma(1.5, 1 / 1.5, n), 0.0, 0.6)

    # Order days: invert the cumulative seasonal intensity inside each customer's active window.
    calendar = pd.date_range(start, periods=days, freq="D")
    cumulative = np.concatenate([[0.0], np.cumsum(seasonal_intensity(calendar))])
    grid = np.arange(days + 1, dtype=np.float64)
    order_customer = np.repeat(np.arange(n), n_orders)
    lo = np.interp(begin, grid, cumulative)[order_customer]
    hi = np.interp(end, grid, cumulative)[order_customer]
    first_order = np.concatenate([[0], np.cumsum(n_orders)[:-1]])
    u = rng.uniform(size=len(order_customer))
    u[first_order] = 0.0  # every customer's first order is on the day they start
    order_time = np.interp(lo + u * (hi - lo), cumulative, grid)

    # Channel per order, from per-customer preferences.
    channel_pref = rng.dirichlet(_CHANNEL_POPULARITY, size=n)
    order_channel = _draw_categorical(rng, channel_pref[order_customer])

    # Lines per order; each line's category comes from the customer's preferences.
    lines_per_order = rng.geometric(0.55, size=len(order_customer))
    line_order = np.repeat(np.arange(len(order_customer)), lines_per_order)
    line_customer = order_customer[line_order]
    concentration = per_type("n_categories")
    category_pref = rng.gamma(
        (_CATEGORY_POPULARITY / _CATEGORY_POPULARITY.sum())[None, :] * 12 * concentration[:, None]
    )
    category_pref = np.maximum(category_pref, 1e-12)
    category_pref /= category_pref.sum(axis=1, keepdims=True)
    line_category = _draw_categorical(rng, category_pref[line_customer])
    quantity = 1 + rng.poisson(0.4, size=len(line_order))
    price = spend_level[line_customer] * _CATEGORY_PRICE[line_category]
    price *= np.exp(0.5 * rng.standard_normal(len(line_order)))
    amount = np.round(price * quantity, 2) + 0.01
    # Seconds within the day: shop hours, 8:00 to 22:00.
    line_time = np.floor(order_time[line_order]) + rng.uniform(8 / 24, 22 / 24, len(line_order))
    line_channel = order_channel[line_order]

    # Returns: a later row with the same order, category and channel, and the amount negated.
    p_return = return_rate[line_customer] * _CHANNEL_RETURN_FACTOR[line_channel]
    returned = rng.uniform(size=len(line_order)) < p_return
    return_time = line_time[returned] + rng.uniform(3, 30, int(returned.sum()))
    keep = return_time < days
    source = np.flatnonzero(returned)[keep]

    order_ids = np.argsort(rng.permutation(len(order_customer))).astype(np.int64) + 1_000_000
    customer_ids = rng.permutation(n).astype(np.int64) + 100_000
    rows = np.concatenate([np.arange(len(line_order)), source])
    times = np.concatenate([line_time, return_time[keep]])
    sign = np.concatenate([np.ones(len(line_order)), -np.ones(len(source))])
    order = np.argsort(times, kind="stable")
    rows, times, sign = rows[order], times[order], sign[order]
    seconds = np.round(times * 86400).astype("int64")
    log = pd.DataFrame(
        {
            "customer_id": customer_ids[line_customer[rows]],
            "order_id": order_ids[line_order[rows]],
            "timestamp": calendar[0] + pd.to_timedelta(seconds, unit="s"),
            "amount": sign * amount[rows],
            "quantity": quantity[rows].astype(np.int32),
            "category": np.asarray(CATEGORIES, dtype=object)[line_category[rows]],
            "channel": np.asarray(CHANNELS, dtype=object)[line_channel[rows]],
        }
    )
    log["timestamp"] = log["timestamp"].astype("datetime64[us]")
    return log


def write_transactions(
    path: str | os.PathLike,
    n_customers: int,
    *,
    n_files: int = 4,
    random_state: int | None = 0,
    **options,
) -> list[Path]:
    """Generate a log with :func:`make_transactions` and write it as ``n_files`` Parquet files.

    The files split the log by time (like monthly or quarterly extracts), each written under a
    hidden temporary name and renamed when complete.

    Parameters
    ----------
    path : path
        Directory to create (it must not exist or be empty).
    n_customers : int
        Customers in the log.
    n_files : int, default 4
        Number of files, at least 1.
    random_state : int or None, default 0
        Seed of the log.
    **options
        Passed to :func:`make_transactions` (``start``, ``days``).

    Returns
    -------
    list of Path
        The files written, in time order.

    Examples
    --------
    >>> write_transactions("log/", 1000, n_files=2)  # doctest: +SKIP
    [PosixPath('log/part-0.parquet'), PosixPath('log/part-1.parquet')]
    """
    if int(n_files) != n_files or n_files < 1:
        raise ValueError(f"n_files={n_files!r} should be an integer >= 1.")
    log = make_transactions(n_customers, random_state=random_state, **options)
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(log, preserve_index=False)
    bounds = np.linspace(0, table.num_rows, n_files + 1).astype(int)
    written = []
    for index in range(n_files):
        target = directory / f"part-{index}.parquet"
        temporary = directory / f".part-{index}.parquet.tmp"
        chunk = table.slice(bounds[index], bounds[index + 1] - bounds[index])
        try:
            pq.write_table(chunk, temporary, row_group_size=256_000)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        written.append(target)
    return written


def _draw_categorical(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One category index per row of ``probabilities`` (rows sum to 1), vectorised."""
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.uniform(size=(len(probabilities), 1)) * cumulative[:, -1:]
    return np.minimum((u > cumulative).sum(axis=1), probabilities.shape[1] - 1)
