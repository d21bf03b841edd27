"""RFM scores and the rule-based RFM segments: the baseline marketing teams already know.

Scores
------
Each of recency, frequency and monetary value gets a score from 1 to 5 by quintiles over the
customers. The four cut points of a variable are its 20th, 40th, 60th and 80th percentiles taken
as observed values (``numpy.quantile(..., method="inverted_cdf")``: the smallest value with at
least that share of customers at or below it), and a customer's score is one plus the number of
cut points strictly below its value::

    score = 1 + #{cut : cut < value}

The score is a function of the value alone, so customers with equal values always get equal
scores: ties are never split. A value tied across one or more cut points takes the lowest score it
spans and the scores it covers are skipped; with ``k`` distinct values at most ``k`` scores are
used (every customer with one order gets ``F=1`` even when they are 60 % of the base, and two
orders then jump to the first score above the tie). With distinct values and a number of customers
divisible by five, each score holds exactly a fifth of them.

Recency is reversed (the most recent customers get ``R=5``): it is scored as ``-recency_days``,
so its cut points, reported in days, are the 80th, 60th, 40th and 20th percentiles of recency and
``R = 1 + #{cut : cut > recency_days}``.

Segments
--------
A segment is a named rule: an inclusive range for any of the scores ``R``, ``F``, ``M`` and
``FM``, the mean of ``F`` and ``M`` rounded half up (``(F + M + 1) // 2``). Rules are tried in
order and the first that matches names the customer; a customer no rule matches is ``"Other"``.
Several rules may share a name, to build segments that are not rectangles.

The default table, :data:`DEFAULT_RFM_RULES`, is the widely published 11-segment grid of ``R``
against ``FM`` (the R x F map of RFM tutorials, with its low-R, low-FM corner split into
Hibernating at ``R=2`` and Lost at ``R=1``). Its cells partition the 5 x 5 grid, so every segment
is reachable, the order of the table does not change the default result, and no customer is
``"Other"`` by default (the overlapping range tables also in circulation leave later segments
unreachable under first-match)::

    segment             R      FM          R/FM   1     2     3     4     5
    Champions           5      4-5         5      New   PL    PL    Ch    Ch
    Loyal               3-4    4-5         4      Pr    PL    PL    Lo    Lo
    Potential Loyalist  4-5    2-3         3      AS    AS    NA    Lo    Lo
    New                 5      1           2      Hi    Hi    AR    AR    CL
    Promising           4      1           1      Lost  Lost  AR    AR    CL
    Need Attention      3      3
    About to Sleep      3      1-2
    At Risk             1-2    3-4
    Can't Lose Them     1-2    5
    Hibernating         2      1-2
    Lost                1      1-2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SCORE_NAMES = ("R", "F", "M", "FM")
QUINTILES = (0.2, 0.4, 0.6, 0.8)
FALLBACK_SEGMENT = "Other"


@dataclass(frozen=True)
class RFMRule:
    """One row of a segment rule table: a name and inclusive score ranges.

    Parameters
    ----------
    name : str
        The segment a matching customer gets.
    R, F, M, FM : tuple of (int, int), default (1, 5)
        Inclusive ``(low, high)`` ranges on the recency, frequency and monetary scores and on
        ``FM = (F + M + 1) // 2``; the default range matches every score.

    Examples
    --------
    >>> rule = RFMRule("Champions", R=(5, 5), FM=(4, 5))
    >>> rule.matches(pd.DataFrame({"R": [5, 4], "F": [5, 5], "M": [3, 5]})).tolist()
    [True, False]
    """

    name: str
    R: tuple[int, int] = (1, 5)
    F: tuple[int, int] = (1, 5)
    M: tuple[int, int] = (1, 5)
    FM: tuple[int, int] = (1, 5)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"RFMRule name={self.name!r} should be a non-empty string.")
        for score in SCORE_NAMES:
            bounds = getattr(self, score)
            try:
                low, high = (int(b) for b in bounds)
            except (TypeError, ValueError):
                raise ValueError(
                    f"RFMRule {self.name!r}: {score}={bounds!r} should be a (low, high) pair "
                    "of integer scores."
                ) from None
            if not 1 <= low <= high <= 5:
                raise ValueError(
                    f"RFMRule {self.name!r}: {score}={bounds!r} should satisfy "
                    "1 <= low <= high <= 5."
                )
            object.__setattr__(self, score, (low, high))

    def matches(self, scores: pd.DataFrame) -> np.ndarray:
        """Return a boolean array: which rows of ``scores`` (columns R, F, M) the rule matches."""
        values = {s: scores[s].to_numpy() for s in ("R", "F", "M")}
        values["FM"] = (values["F"] + values["M"] + 1) // 2
        match = np.ones(len(scores), dtype=bool)
        for score in SCORE_NAMES:
            low, high = getattr(self, score)
            match &= (values[score] >= low) & (values[score] <= high)
        return match


DEFAULT_RFM_RULES: tuple[RFMRule, ...] = (
    RFMRule("Champions", R=(5, 5), FM=(4, 5)),
    RFMRule("Loyal", R=(3, 4), FM=(4, 5)),
    RFMRule("Potential Loyalist", R=(4, 5), FM=(2, 3)),
    RFMRule("New", R=(5, 5), FM=(1, 1)),
    RFMRule("Promising", R=(4, 4), FM=(1, 1)),
    RFMRule("Need Attention", R=(3, 3), FM=(3, 3)),
    RFMRule("About to Sleep", R=(3, 3), FM=(1, 2)),
    RFMRule("At Risk", R=(1, 2), FM=(3, 4)),
    RFMRule("Can't Lose Them", R=(1, 2), FM=(5, 5)),
    RFMRule("Hibernating", R=(2, 2), FM=(1, 2)),
    RFMRule("Lost", R=(1, 1), FM=(1, 2)),
)
"""The default first-match rule table: the 11-segment R x FM grid (see the module docstring)."""


def rfm_scores(
    features: pd.DataFrame,
    *,
    recency: str = "recency_days",
    frequency: str = "frequency",
    monetary: str = "monetary_total",
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Score recency, frequency and monetary value 1-5 by quintiles, never splitting ties.

    Parameters
    ----------
    features : DataFrame, shape (n_customers, ...)
        One row per customer, as in ``compute_rfm(...).features``.
    recency, frequency, monetary : str
        The columns to score; recency is reversed (smaller is better).

    Returns
    -------
    scores : DataFrame of int64, shape (n_customers, 3)
        Columns ``R``, ``F``, ``M`` in 1..5, same index as ``features``.
    thresholds : dict of str to ndarray of float64, shape (4,)
        The cut points per score: for ``F`` and ``M`` the 20/40/60/80th percentiles (ascending,
        ``score = 1 + #{cut < value}``); for ``R`` the 80/60/40/20th percentiles of recency in
        days (descending, ``R = 1 + #{cut > recency}``). See the module docstring for how tied
        values are handled.

    Raises
    ------
    ValueError
        If a column is missing, holds missing values, or ``features`` is empty.

    Examples
    --------
    >>> features = pd.DataFrame({
    ...     "recency_days": [1, 3, 3, 10, 30, 90],
    ...     "frequency": [1, 1, 1, 1, 2, 5],
    ...     "monetary_total": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
    ... })
    >>> scores, thresholds = rfm_scores(features)
    >>> scores["F"].tolist()   # the one-order customers tie on the lowest score, 2 and 3 unused
    [1, 1, 1, 1, 4, 5]
    >>> thresholds["F"].tolist()
    [1.0, 1.0, 1.0, 2.0]
    >>> scores["R"].tolist()   # the two customers last seen 3 days ago tie
    [5, 3, 3, 2, 1, 1]
    >>> thresholds["R"].tolist()
    [30.0, 10.0, 3.0, 3.0]
    """
    columns = {"recency": recency, "frequency": frequency, "monetary": monetary}
    for parameter, column in columns.items():
        if column not in features.columns:
            raise ValueError(
                f"{parameter}={column!r} is not a column of features; columns are "
                f"{list(features.columns)}."
            )
        if features[column].isna().any():
            raise ValueError(
                f"Column {column!r} ({parameter}=) has {int(features[column].isna().sum())} "
                "missing values; RFM scores need a value for every customer."
            )
    if len(features) == 0:
        raise ValueError("features has no rows; there is nothing to score.")

    def score(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cuts = np.quantile(values, QUINTILES, method="inverted_cdf")
        return 1 + np.searchsorted(cuts, values, side="left"), cuts

    r, r_cuts = score(-features[recency].to_numpy(dtype=np.float64))
    f, f_cuts = score(features[frequency].to_numpy(dtype=np.float64))
    m, m_cuts = score(features[monetary].to_numpy(dtype=np.float64))
    scores = pd.DataFrame(
        {"R": r.astype(np.int64), "F": f.astype(np.int64), "M": m.astype(np.int64)},
        index=features.index,
    )
    thresholds = {"R": -r_cuts, "F": f_cuts, "M": m_cuts}
    return scores, thresholds


def _as_rules(rules: Sequence[RFMRule | Mapping]) -> list[RFMRule]:
    """Accept ``RFMRule`` objects or mappings such as ``{"name": "New", "R": [5, 5]}``."""
    if isinstance(rules, (str, Mapping)) or not isinstance(rules, Sequence):
        raise ValueError(
            f"rules should be a sequence of RFMRule or of mappings, got {type(rules).__name__}."
        )
    converted = []
    for i, rule in enumerate(rules):
        if isinstance(rule, RFMRule):
            converted.append(rule)
        elif isinstance(rule, Mapping):
            unknown = set(rule) - {"name", *SCORE_NAMES}
            if unknown or "name" not in rule:
                raise ValueError(
                    f"rules[{i}]={dict(rule)!r} should have a 'name' and optional ranges for "
                    f"{', '.join(SCORE_NAMES)}; unknown keys: {sorted(unknown)}."
                )
            ranges = {k: tuple(v) for k, v in rule.items() if k != "name"}
            converted.append(RFMRule(rule["name"], **ranges))
        else:
            raise ValueError(f"rules[{i}]={rule!r} should be an RFMRule or a mapping.")
    return converted


def segment_rfm(
    scores: pd.DataFrame,
    rules: Sequence[RFMRule | Mapping] = DEFAULT_RFM_RULES,
    *,
    fallback: str = FALLBACK_SEGMENT,
) -> tuple[pd.Series, pd.DataFrame]:
    """Name each customer's segment with the first matching rule of an ordered table.

    Parameters
    ----------
    scores : DataFrame, shape (n_customers, 3)
        Columns ``R``, ``F``, ``M`` in 1..5, as returned by :func:`rfm_scores`.
    rules : sequence of RFMRule or mapping, default DEFAULT_RFM_RULES
        The ordered rule table; a mapping is ``{"name": ..., "R": (low, high), ...}`` (any of
        ``R``, ``F``, ``M``, ``FM``; missing ranges match every score), so a table can come
        from a config file.
    fallback : str, default "Other"
        The segment of customers that no rule matches.

    Returns
    -------
    segments : Series of category, shape (n_customers,)
        The segment name per customer, same index as ``scores``; categories are the rule names
        in table order, then ``fallback``.
    coverage : DataFrame, shape (n_segments, 2)
        Per segment name (every rule name, then ``fallback``, zero counts included): ``count``
        customers and their ``share`` of all customers. Counts sum to ``n_customers``.

    Examples
    --------
    >>> scores = pd.DataFrame({"R": [5, 5, 1], "F": [5, 1, 3], "M": [4, 1, 2]})
    >>> rules = [{"name": "Champions", "R": (5, 5), "FM": (4, 5)}, {"name": "New", "R": (5, 5)}]
    >>> segments, coverage = segment_rfm(scores, rules)
    >>> segments.tolist()
    ['Champions', 'New', 'Other']
    >>> coverage["count"].tolist()
    [1, 1, 1]
    """
    missing = [s for s in ("R", "F", "M") if s not in scores.columns]
    if missing:
        raise ValueError(
            f"scores is missing the score columns {missing}; pass the scores of rfm_scores()."
        )
    table = _as_rules(rules)
    names = list(dict.fromkeys([rule.name for rule in table] + [fallback]))
    codes = np.full(len(scores), names.index(fallback), dtype=np.int64)
    unassigned = np.ones(len(scores), dtype=bool)
    for rule in table:
        hit = unassigned & rule.matches(scores)
        codes[hit] = names.index(rule.name)
        unassigned &= ~hit
    segments = pd.Series(
        pd.Categorical.from_codes(codes, categories=names),
        index=scores.index,
        name="segment",
    )
    counts = np.bincount(codes, minlength=len(names))
    coverage = pd.DataFrame(
        {"count": counts, "share": counts / max(len(scores), 1)},
        index=pd.Index(names, name="segment"),
    )
    return segments, coverage
