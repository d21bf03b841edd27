"""Short plain-word names for segments from their most distinctive features, editable by the user.

Rule
----
For segment ``j`` the features are ranked by ``|z[j, f]|``, largest first, ties by feature order,
where ``z`` is the profile's ``rank_z``: how far the segment's customers rank above or below
everyone's, as a normal-equivalent shift in standard deviations (see :mod:`gpuseg.profiles`).
Ranks, not means: one customer spending a fortune moves the mean and standard deviation of spend so
far that a segment of small spenders sits only a third of a standard deviation below the mean,
while its ranks still say "low spend". The first ``max_terms`` (default 3) with ``|z| >= min_z``
(default 0.5) become words, in that order, joined by ", ". A feature's word comes from the first
vocabulary entry whose key is a substring of the lower-cased feature name, taking its "low" or
"high" word by the sign of ``z``; a feature no entry matches reads ``"high <feature>"`` or
``"low <feature>"``. One special case reads the segment's median: a frequency-like feature (an
entry with ``one_time=True``) whose segment median is at most 1 reads ``"one-time"``, whatever
its ``z``. A segment with no feature at ``|z| >= min_z`` is ``"typical customers"``.

Names are unique: when two segments get the same name, each gets its next most distinctive
feature (below ``min_z`` if need be, but never one with ``|z| < 0.1``, which says nothing) until
the names differ or such features run out; names still equal then get `` (2)``, `` (3)``... in
segment order. The whole rule depends only on the profile,
so the same profile always gives the same names.

Users edit names in a JSON file (``{"0": "loyal big spenders", "1": ...}``) written by
:func:`save_names` and read by :func:`load_names`; :func:`apply_names` lays the edited names over
the generated ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpuseg.profiles import SegmentProfile

NAMES_FILE = "names.json"
TYPICAL = "typical customers"
# Features closer than this to the population mean never go into a name, even to tell two apart.
_MIN_EXTRA_Z = 0.1


@dataclass(frozen=True)
class Term:
    """Words for a feature whose name contains ``key``: below and above the population mean.

    ``one_time=True`` marks a count of purchases: a segment median of at most 1 reads "one-time".
    ``core=True`` marks recency, frequency and spend: marketing reads those first, so a segment's
    distinctive core features are named before its other distinctive features.
    """

    key: str
    low: str
    high: str
    one_time: bool = False
    core: bool = False


# Tried in order; the first key found in the lower-cased feature name wins.
VOCABULARY: tuple[Term, ...] = (
    Term("recency", "recent", "lapsed", core=True),
    Term("days_since", "recent", "lapsed", core=True),
    Term("frequency", "infrequent", "frequent", one_time=True, core=True),
    Term("orders", "few orders", "many orders", one_time=True, core=True),
    Term("purchases", "few purchases", "many purchases", one_time=True, core=True),
    Term("visits", "rare visitors", "frequent visitors"),
    Term("monetary", "low spend", "high spend", core=True),
    Term("spend", "low spend", "high spend", core=True),
    Term("revenue", "low spend", "high spend", core=True),
    Term("amount", "low spend", "high spend", core=True),
    Term("value", "low value", "high value"),
    Term("basket", "small baskets", "large baskets"),
    Term("aov", "small baskets", "large baskets"),
    Term("tenure", "new", "long-standing"),
    Term("age_days", "new", "long-standing"),
    Term("discount", "full-price", "discount-driven"),
    Term("return", "few returns", "many returns"),
    Term("categor", "narrow range", "broad range"),
    Term("channel", "single-channel", "multichannel"),
)


def feature_word(
    feature: str, z: float, median: float | None = None, vocabulary: Sequence[Term] = VOCABULARY
) -> str:
    """The word for one feature of one segment.

    Parameters
    ----------
    feature : str
        Feature name.
    z : float
        The segment's z-score on it; its sign picks the "low" or "high" word.
    median : float, optional
        The segment's median, for the "one-time" rule.
    vocabulary : sequence of Term
        Entries tried in order.

    Examples
    --------
    >>> feature_word("recency_days", -1.2), feature_word("frequency", 0.1, median=1.0)
    ('recent', 'one-time')
    >>> feature_word("n_returns", 2.0), feature_word("Pages Viewed", -0.9)
    ('many returns', 'low Pages Viewed')
    """
    term = _term(feature, vocabulary)
    if term is None:
        return f"{'high' if z > 0 else 'low'} {feature}"
    if term.one_time and median is not None and median <= 1:
        return "one-time"
    return term.high if z > 0 else term.low


def _term(feature: str, vocabulary: Sequence[Term]) -> Term | None:
    """The first vocabulary entry whose key is in the lower-cased feature name."""
    lowered = feature.lower()
    return next((term for term in vocabulary if term.key in lowered), None)


def describe_segments(
    profile: SegmentProfile,
    *,
    max_terms: int = 3,
    min_z: float = 0.5,
    vocabulary: Sequence[Term] = VOCABULARY,
) -> list[str]:
    """A short unique description of every segment (see the module docstring for the rule).

    Parameters
    ----------
    profile : SegmentProfile
        Per-segment rank z-scores and medians.
    max_terms : int, default 3
        Most features named per segment.
    min_z : float, default 0.5
        Smallest ``|z|`` for a feature to count as distinctive.
    vocabulary : sequence of Term, default VOCABULARY
        Words per feature-name key.

    Returns
    -------
    list of str, one per segment

    Examples
    --------
    >>> import pandas as pd
    >>> from gpuseg.profiles import profile_frame
    >>> frame = pd.DataFrame({
    ...     "recency_days": [5, 7, 300, 320, 150, 160],
    ...     "frequency": [12, 10, 1, 1, 5, 6],
    ...     "monetary": [900, 800, 20, 25, 300, 350],
    ... })
    >>> profile = profile_frame(frame, [0, 0, 1, 1, 2, 2], list(frame.columns), 3)
    >>> describe_segments(profile, max_terms=2)
    ['recent, frequent', 'lapsed, one-time', 'typical customers']
    """
    if max_terms < 1:
        raise ValueError(f"max_terms={max_terms!r} should be >= 1.")
    z = np.nan_to_num(np.asarray(profile.rank_z, dtype=np.float64), nan=0.0)
    # Distinctive features in naming order: core (recency, frequency, spend) first, then the
    # others, each group by decreasing |z|; below min_z, by |z| alone (for telling names apart).
    core = np.array([
        (term := _term(f, vocabulary)) is not None and term.core for f in profile.feature_names
    ])

    def ranking(j: int) -> np.ndarray:
        strength = np.round(np.abs(z[j]), 9)  # equal up to rounding is a tie: feature order
        first = ~(core & (strength >= min_z))
        return np.lexsort((-strength, first))

    rankings = [ranking(j) for j in range(profile.n_clusters)]
    lengths = [
        min(max_terms, int((np.abs(z[j]) >= min_z).sum())) for j in range(profile.n_clusters)
    ]

    def name(j: int) -> str:
        if lengths[j] == 0:
            return TYPICAL
        words: list[str] = []
        for f in rankings[j][: lengths[j]]:
            word = feature_word(
                profile.feature_names[f], z[j, f], profile.medians[j, f], vocabulary
            )
            if word not in words:
                words.append(word)
        return ", ".join(words)

    names = [name(j) for j in range(profile.n_clusters)]
    available = [int((np.abs(z[j]) >= _MIN_EXTRA_Z).sum()) for j in range(profile.n_clusters)]
    while True:
        clashes = _duplicates(names)
        extendable = [j for j in clashes if lengths[j] < available[j]]
        if not extendable:
            break
        for j in extendable:
            lengths[j] += 1
            names[j] = name(j)
    return _number_duplicates(names)


def _duplicates(names: list[str]) -> list[int]:
    """Indices of names that occur more than once."""
    seen: dict[str, int] = {}
    for value in names:
        seen[value] = seen.get(value, 0) + 1
    return [j for j, value in enumerate(names) if seen[value] > 1]


def _number_duplicates(names: list[str]) -> list[str]:
    """Suffix " (2)", " (3)"... to the second and later copies of a name."""
    result, seen = [], {}
    for value in names:
        seen[value] = seen.get(value, 0) + 1
        result.append(value if seen[value] == 1 else f"{value} ({seen[value]})")
    return result


def save_names(path: str | os.PathLike, names: Sequence[str] | Mapping[int, str]) -> None:
    """Write segment names as JSON ``{"0": "...", "1": "..."}`` for a user to edit.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / NAMES_FILE
    >>> save_names(path, ["loyal", "lapsed"])
    >>> load_names(path)
    {0: 'loyal', 1: 'lapsed'}
    """
    items = names.items() if isinstance(names, Mapping) else enumerate(names)
    data = {str(int(j)): str(value) for j, value in sorted(items)}
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def load_names(path: str | os.PathLike, n_clusters: int | None = None) -> dict[int, str]:
    """Read a names file; check its keys are segment numbers and its names non-empty and unique.

    Parameters
    ----------
    path : path
        JSON object mapping segment numbers (as strings) to names; may name only some segments.
    n_clusters : int, optional
        When given, every key must be below it.

    Returns
    -------
    dict of int to str

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "names.json"
    >>> _ = path.write_text('{"1": "VIP"}')
    >>> load_names(path, n_clusters=3)
    {1: 'VIP'}
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path}: not valid JSON ({exc}); expected {{"0": "name"}}.') from exc
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a JSON object {{"0": "name", ...}}.')
    names: dict[int, str] = {}
    for key, value in data.items():
        if not str(key).isdigit():
            raise ValueError(f'{path}: key {key!r} should be a segment number such as "0".')
        segment = int(key)
        if n_clusters is not None and segment >= n_clusters:
            raise ValueError(
                f"{path}: segment {segment} does not exist; the model has n_clusters={n_clusters}."
            )
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{path}: the name of segment {segment} should be a non-empty string.")
        names[segment] = value.strip()
    clashes = _duplicates(list(names.values()))
    if clashes:
        value = list(names.values())[clashes[0]]
        raise ValueError(f"{path}: the name {value!r} is given to more than one segment.")
    return dict(sorted(names.items()))


def apply_names(generated: Sequence[str], edited: Mapping[int, str]) -> list[str]:
    """The generated names with the user's edits laid over them, kept unique.

    Examples
    --------
    >>> apply_names(["recent", "lapsed", "typical customers"], {1: "win back"})
    ['recent', 'win back', 'typical customers']
    """
    names = list(generated)
    for segment, value in edited.items():
        if not 0 <= segment < len(names):
            raise ValueError(f"segment {segment} is out of range for {len(names)} segments.")
        names[segment] = value
    return _number_duplicates(names)
