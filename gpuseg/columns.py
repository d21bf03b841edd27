"""One input column of a feature plan: its spec, its fitted parameters and its transform.

:class:`gpuseg.plan.FeaturePlan` holds a :class:`ColumnSpec` per input column; fitting turns
each into :class:`NumericParams` or :class:`CategoricalParams` from the column's mergeable
statistics (:mod:`gpuseg.sketches`), and transforming applies them.

Policies
--------
log1p
    ``sign(x) * log1p(|x|)``: the usual ``log1p`` for ``x >= 0``, and still defined for negative
    values (net spend after returns). Undone by ``sign(y) * expm1(|y|)``.
Clipping
    ``clip=(lo_q, hi_q)`` clips at the ``lo_q`` and ``hi_q`` quantiles of the fit data (in log1p
    units when ``log1p``). Values outside are moved to the bounds, at fit time and at scoring
    time; clipping cannot be undone, so centres in original units never lie beyond the bounds.
Scaling
    ``"standard"``: ``(y - mean) / std`` with the mean and population standard deviation
    (``ddof=0``) of the clipped values; ``"robust"``: ``(y - median) / IQR`` (IQR = q75 - q25);
    ``None``: no scaling. A constant column (std or IQR of 0) gets scale 1, so it maps to 0.
Weights
    Every output of a column is multiplied by ``sqrt(weight)``, so the column's contribution to
    the squared Euclidean distance is multiplied by ``weight``. Two rows of different categories
    of a one-hot column are at squared distance ``2 * weight``.
Categoricals
    Values are compared as strings, as Arrow casts them (``3`` is ``"3"``, ``True`` is
    ``"true"``). The vocabulary is every value when there are at most ``max_categories``; else
    the ``max_categories - 1`` most frequent values plus an ``"<other>"`` output for the rest.
    Ties are broken by value, so the vocabulary is deterministic. Outputs are named
    ``"channel=web"`` and ``"channel=<other>"``, most frequent value first. At scoring time an
    unknown value goes to ``"<other>"`` when the vocabulary has it, else to the all-zero vector
    (equally far from every known category). Nulls are never counted and always encode to the
    all-zero vector.
Missing and bad values
    A null, NaN or infinite value in a numeric column, or a numeric spec on a non-numeric column,
    raises :class:`gpuseg.errors.DataError` naming the column (and the row): drop or impute such
    rows first. A missing column raises ``DataError`` naming it.
Statistics
    Per numeric column the pass keeps a quantile sketch and moments, mergeable across tables and
    partitions; see :mod:`gpuseg.sketches` for what is exact and what is bucketed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuseg.errors import DataError
from gpuseg.sketches import CategoryCounts, NumericStatistics

KINDS = ("numeric", "categorical")
SCALES = ("standard", "robust", None)
OTHER = "<other>"
# A categorical column with more distinct values than this is not low-cardinality.
_MAX_DISTINCT = 100_000
_NUMERIC_HINT = "expected a numeric column (integer, float or bool), or declare it categorical"


@dataclass(frozen=True)
class ColumnSpec:
    """How one input column feeds the clustering.

    Parameters
    ----------
    name : str
        Input column.
    kind : {"numeric", "categorical"}, default "numeric"
        A numeric column gives one output; a categorical one a one-hot block.
    log1p : bool, default False
        Numeric only: apply ``sign(x) * log1p(|x|)`` first.
    clip : (float, float) or None, default None
        Numeric only: clip at these quantiles of the fit data, ``0 <= lo_q < hi_q <= 1``.
    scale : {"standard", "robust", None}, default "standard"
        Numeric only: standardise, scale by median/IQR, or leave as is. Stored as None for a
        categorical column.
    weight : float, default 1.0
        Multiplies the column's contribution to squared distances (outputs get
        ``sqrt(weight)``); finite and > 0.
    max_categories : int, default 20
        Categorical only: most one-hot outputs, the ``"<other>"`` bucket included.

    Examples
    --------
    >>> ColumnSpec("monetary_total", log1p=True, clip=(0.01, 0.99)).scale
    'standard'
    >>> ColumnSpec("channel", kind="categorical").scale is None
    True
    """

    name: str
    kind: str = "numeric"
    log1p: bool = False
    clip: tuple[float, float] | None = None
    scale: str | None = "standard"
    weight: float = 1.0
    max_categories: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name={self.name!r} should be a non-empty column name.")
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} of column {self.name!r} is not one of {KINDS}.")
        if self.scale not in SCALES:
            raise ValueError(
                f"scale={self.scale!r} of column {self.name!r} is not one of {SCALES}."
            )
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating)):
            raise ValueError(f"weight={weight!r} of column {self.name!r} should be a number > 0.")
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"weight={weight!r} of column {self.name!r} should be finite and > 0.")
        object.__setattr__(self, "weight", float(weight))
        if self.clip is not None:
            try:
                lo, hi = (float(q) for q in self.clip)
            except (TypeError, ValueError):
                lo, hi = math.nan, math.nan
            if not 0.0 <= lo < hi <= 1.0:
                raise ValueError(
                    f"clip={self.clip!r} of column {self.name!r} should be two quantiles "
                    "(lo_q, hi_q) with 0 <= lo_q < hi_q <= 1."
                )
            object.__setattr__(self, "clip", (lo, hi))
        if self.kind == "categorical":
            if self.log1p or self.clip is not None or self.scale == "robust":
                raise ValueError(
                    f"column {self.name!r} is categorical; log1p, clip and scale apply to "
                    "numeric columns only."
                )
            object.__setattr__(self, "scale", None)
            mc = self.max_categories
            if isinstance(mc, bool) or not isinstance(mc, (int, np.integer)) or mc < 1:
                raise ValueError(
                    f"max_categories={mc!r} of column {self.name!r} should be an integer >= 1."
                )
        object.__setattr__(self, "log1p", bool(self.log1p))
        object.__setattr__(self, "max_categories", int(self.max_categories))

    @property
    def needs_sketch(self) -> bool:
        """Whether fitting needs quantiles (clipping or robust scaling), not only moments."""
        return self.kind == "numeric" and (self.clip is not None or self.scale == "robust")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields."""
        return {
            "name": self.name,
            "kind": self.kind,
            "log1p": self.log1p,
            "clip": None if self.clip is None else list(self.clip),
            "scale": self.scale,
            "weight": self.weight,
            "max_categories": self.max_categories,
        }


@dataclass(frozen=True)
class NumericParams:
    """Fitted transform of a numeric column: ``(clip(log1p(x)) - center) / scale``.

    Every value is in log1p units when ``log1p``: ``mean``/``std`` describe the clipped values,
    ``min``/``max`` the values before clipping.
    """

    center: float
    scale: float
    clip_low: float | None
    clip_high: float | None
    count: int
    mean: float
    std: float
    min: float
    max: float


@dataclass(frozen=True)
class CategoricalParams:
    """Fitted one-hot vocabulary of a categorical column, most frequent first."""

    vocabulary: tuple[str, ...]
    other: bool
    counts: tuple[int, ...]
    nulls: int


# -- fitting and applying one column ----------------------------------------------------------


def numeric_values(
    column: pa.ChunkedArray, spec: ColumnSpec, rows: int | np.ndarray, path: str | None
) -> np.ndarray:
    """A numeric column as finite float64; DataError on another type or a null/NaN/inf."""
    kind = column.type
    if not (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
    ):
        raise DataError(f"has type {kind}; {_NUMERIC_HINT}", path, spec.name)
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    finite = np.isfinite(values)
    if not finite.all():
        r = int(np.argmin(finite))
        row = int(rows[r]) if isinstance(rows, np.ndarray) else int(rows) + r
        what = "null" if column.null_count and not column[r].is_valid else repr(float(values[r]))
        raise DataError(
            f"{what} at row {row}; expected finite numbers (drop or impute such rows first)",
            path,
            spec.name,
        )
    return values


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``, defined for negative values too."""
    return np.sign(values) * np.log1p(np.abs(values))


def apply_numeric(values: np.ndarray, spec: ColumnSpec, params: NumericParams) -> np.ndarray:
    """log1p, clip, scale and weight, in float64."""
    y = signed_log1p(values) if spec.log1p else values
    if params.clip_low is not None:
        y = np.clip(y, params.clip_low, params.clip_high)
    y = (y - params.center) / params.scale
    return y * math.sqrt(spec.weight) if spec.weight != 1.0 else y


def fit_numeric(spec: ColumnSpec, stats: NumericStatistics) -> NumericParams:
    """Clip bounds, centre and scale of a numeric column from its statistics."""
    low = high = None
    if spec.clip is not None:
        low, high = (float(q) for q in stats.quantiles(spec.clip))
    n, mean, m2 = stats.clipped_moments(low, high)
    std = math.sqrt(max(m2, 0.0) / n)
    center, scale = 0.0, 1.0
    if spec.scale == "standard":
        center, scale = mean, std
    elif spec.scale == "robust":
        q25, q50, q75 = (float(q) for q in stats.quantiles([0.25, 0.5, 0.75]))
        bounds = (-np.inf if low is None else low, np.inf if high is None else high)
        q25, q50, q75 = (float(np.clip(q, *bounds)) for q in (q25, q50, q75))
        center, scale = q50, q75 - q25
    if not scale > 0:
        scale = 1.0
    return NumericParams(
        center=center, scale=scale, clip_low=low, clip_high=high, count=n, mean=mean, std=std,
        min=float(stats.mins[0]), max=float(stats.maxs[-1]),
    )  # fmt: skip


def _strings(column: pa.ChunkedArray, spec: ColumnSpec, path: str | None) -> pa.Array:
    """A categorical column as Arrow strings (nulls kept)."""
    try:
        return pc.cast(column, pa.string()).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"has type {column.type}, which cannot be read as categories", path, spec.name
        ) from exc


def category_counts(column: pa.ChunkedArray, spec: ColumnSpec, path: str | None) -> CategoryCounts:
    """Counts of a categorical column's values; DataError past 100,000 distinct values."""
    values = _strings(column, spec, path)
    counted = pc.value_counts(pc.drop_null(values))
    counts = dict(
        zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True)
    )
    if len(counts) > _MAX_DISTINCT:
        raise DataError(
            f"has more than {_MAX_DISTINCT} distinct values; a categorical column should have "
            "few (declare it numeric or leave it out of the plan)",
            path,
            spec.name,
        )
    return CategoryCounts(counts, values.null_count)


def fit_categorical(spec: ColumnSpec, stats: CategoryCounts) -> CategoricalParams:
    """Vocabulary: most frequent values first, ties by value; the rest in ``"<other>"``."""
    ranked = sorted(stats.counts.items(), key=lambda item: (-item[1], item[0]))
    other = len(ranked) > spec.max_categories
    kept = ranked[: spec.max_categories - 1] if other else ranked
    counts = [count for _, count in kept]
    if other:
        counts.append(sum(count for _, count in ranked[len(kept) :]))
    return CategoricalParams(tuple(v for v, _ in kept), other, tuple(counts), stats.nulls)


def one_hot(
    column: pa.ChunkedArray,
    spec: ColumnSpec,
    params: CategoricalParams,
    width: int,
    path: str | None,
) -> np.ndarray:
    """One-hot rows scaled by sqrt(weight): unknown values to "<other>" or all zero."""
    values = _strings(column, spec, path)
    vocabulary = pa.array(params.vocabulary, pa.string())
    codes = pc.index_in(values, value_set=vocabulary).fill_null(-1).to_numpy(zero_copy_only=False)
    if params.other:
        unknown = (codes < 0) & values.is_valid().to_numpy(zero_copy_only=False)
        codes = np.where(unknown, width - 1, codes)
    block = np.zeros((len(codes), width))
    known = np.flatnonzero(codes >= 0)
    block[known, codes[known]] = math.sqrt(spec.weight)
    return block


# -- serialisation ----------------------------------------------------------------------------


def params_to_dict(params: NumericParams | CategoricalParams) -> dict[str, Any]:
    """JSON-safe fields of fitted parameters."""
    if isinstance(params, NumericParams):
        return {
            "center": params.center, "scale": params.scale, "clip_low": params.clip_low,
            "clip_high": params.clip_high, "count": params.count, "mean": params.mean,
            "std": params.std, "min": params.min, "max": params.max,
        }  # fmt: skip
    return {
        "vocabulary": list(params.vocabulary),
        "other": params.other,
        "counts": list(params.counts),
        "nulls": params.nulls,
    }


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def params_from_dict(spec: ColumnSpec, d: Mapping[str, Any]) -> NumericParams | CategoricalParams:
    """Fitted parameters of ``spec`` back from :func:`params_to_dict`."""
    if spec.kind == "numeric":
        return NumericParams(
            center=float(d["center"]), scale=float(d["scale"]),
            clip_low=_optional_float(d["clip_low"]), clip_high=_optional_float(d["clip_high"]),
            count=int(d["count"]), mean=float(d["mean"]), std=float(d["std"]),
            min=float(d["min"]), max=float(d["max"]),
        )  # fmt: skip
    return CategoricalParams(
        tuple(str(v) for v in d["vocabulary"]),
        bool(d["other"]),
        tuple(int(c) for c in d["counts"]),
        int(d["nulls"]),
    )


def spec_from_dict(d: Mapping[str, Any]) -> ColumnSpec:
    """A :class:`ColumnSpec` back from :meth:`ColumnSpec.to_dict` (missing fields defaulted)."""
    clip = d.get("clip")
    return ColumnSpec(
        name=d["name"], kind=d.get("kind", "numeric"), log1p=bool(d.get("log1p", False)),
        clip=None if clip is None else (float(clip[0]), float(clip[1])),
        scale=d.get("scale", "standard"), weight=float(d.get("weight", 1.0)),
        max_categories=int(d.get("max_categories", 20)),
    )  # fmt: skip
