"""The feature plan: which columns feed the clustering, and how each becomes float32 features.

A :class:`FeaturePlan` is a list of :class:`ColumnSpec`. It is fitted in one streamed pass over
any number of tables from mergeable statistics (:class:`PlanStatistics`), so Dask partitions can
each compute theirs and merge them, and it is saved in the model so that scoring next month's
table applies exactly the same transform.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gpuseg.errors import DataError
from gpuseg.sketches import CategoryCounts, NumericStatistics, PlanStatistics

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


# -- the plan ---------------------------------------------------------------------------------


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


class FeaturePlan:
    """Which columns feed the clustering and how; fitted in one streamed pass.

    Parameters
    ----------
    columns : sequence of ColumnSpec
        The inputs, in output order; names must be unique.

    Attributes
    ----------
    columns : list of ColumnSpec
    params : dict of str to NumericParams or CategoricalParams
        Fitted transform per column (empty before fitting).
    input_types : dict of str to str
        Arrow type of every input column in the fit data.
    n_rows : int
        Rows the plan was fitted on.

    Examples
    --------
    >>> frame = pd.DataFrame({"spend": [1.0, 10.0, 100.0], "channel": ["web", "shop", "web"]})
    >>> plan = FeaturePlan([ColumnSpec("spend", log1p=True),
    ...                     ColumnSpec("channel", kind="categorical")]).fit(frame)
    >>> plan.output_names
    ['spend', 'channel=web', 'channel=shop']
    >>> plan.transform(frame).shape
    (3, 3)
    """

    def __init__(self, columns: Sequence[ColumnSpec]) -> None:
        columns = list(columns)
        if not columns:
            raise ValueError("columns=[] should hold at least one ColumnSpec.")
        for spec in columns:
            if not isinstance(spec, ColumnSpec):
                raise TypeError(f"columns holds {spec!r}; expected ColumnSpec objects.")
        names = [spec.name for spec in columns]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"column(s) {duplicated} appear more than once in the plan.")
        self.columns = columns
        self.params: dict[str, NumericParams | CategoricalParams] = {}
        self.input_types: dict[str, str] = {}
        self.n_rows = 0

    def __repr__(self) -> str:
        state = f"fitted on {self.n_rows} rows" if self.is_fitted else "not fitted"
        return f"FeaturePlan({self.input_columns}, {state})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeaturePlan) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable: fitted in place

    @property
    def input_columns(self) -> list[str]:
        """The input column names, in order."""
        return [spec.name for spec in self.columns]

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`fit_statistics`) has run."""
        return bool(self.params)

    @property
    def output_names(self) -> list[str]:
        """One name per output feature: the column, or ``"column=value"`` for one-hot outputs."""
        names = []
        for spec in self.columns:
            if spec.kind == "numeric":
                names.append(spec.name)
                continue
            params = self._params(spec)
            values = [*params.vocabulary, *([OTHER] if params.other else [])]
            names.extend(f"{spec.name}={value}" for value in values)
        return names

    @property
    def n_features(self) -> int:
        """Width of the transformed matrix."""
        return len(self.output_names)

    # -- fitting ---------------------------------------------------------------------------

    def statistics(
        self, data: Any, *, rows: int | np.ndarray = 0, path: str | None = None
    ) -> PlanStatistics:
        """Mergeable statistics of one table (or Dask partition).

        Parameters
        ----------
        data : pyarrow.Table, pyarrow.RecordBatch or pandas.DataFrame
            Must hold every input column (others are ignored).
        rows : int or ndarray, default 0
            Number of the first row (or of every row), for error messages.
        path : str, optional
            File named in error messages.

        Returns
        -------
        PlanStatistics

        Raises
        ------
        DataError
            On a missing column, a non-numeric column in a numeric spec, a null/NaN/inf numeric
            value, or a categorical column with more than 100,000 distinct values.
        """
        table = _as_table(data, self.input_columns, path)
        columns: dict[str, NumericStatistics | CategoryCounts] = {}
        for spec in self.columns:
            column = table.column(spec.name)
            if spec.kind == "numeric":
                values = _numeric_values(column, spec, rows, path)
                if spec.log1p:
                    values = _signed_log1p(values)
                columns[spec.name] = NumericStatistics.of(values, spec.needs_sketch)
            else:
                columns[spec.name] = _category_counts(column, spec, path)
        types = {name: str(table.schema.field(name).type) for name in self.input_columns}
        return PlanStatistics(table.num_rows, columns, types)

    def fit(self, data: Any) -> FeaturePlan:
        """Fit the plan in one pass over one table or an iterable of tables.

        Parameters
        ----------
        data : table, DataFrame or iterable of these
            pyarrow Tables or RecordBatches, or pandas DataFrames, read once, in order. For
            Parquet: ``pyarrow.dataset.dataset(path).to_batches(columns=plan.input_columns)``.

        Returns
        -------
        self

        Examples
        --------
        >>> plan = FeaturePlan([ColumnSpec("x")]).fit([pd.DataFrame({"x": [0.0, 1.0]}),
        ...                                            pd.DataFrame({"x": [2.0, 3.0]})])
        >>> plan.params["x"].center
        1.5
        """
        if isinstance(data, (pa.Table, pa.RecordBatch, pd.DataFrame)):
            data = [data]
        total = None
        for table in data:
            offset = 0 if total is None else total.n_rows
            stats = self.statistics(table, rows=offset)
            total = stats if total is None else total.merge(stats)
        if total is None:
            raise DataError("no table to fit the feature plan on; expected at least one")
        return self.fit_statistics(total)

    def fit_statistics(self, stats: PlanStatistics) -> FeaturePlan:
        """Fit the plan from merged statistics; returns self."""
        if stats.n_rows == 0:
            raise DataError("no rows to fit the feature plan on; expected at least one row")
        if stats.columns.keys() != set(self.input_columns):
            raise ValueError(
                f"statistics of columns {sorted(stats.columns)} do not match the plan's "
                f"{sorted(self.input_columns)}."
            )
        params: dict[str, NumericParams | CategoricalParams] = {}
        for spec in self.columns:
            column = stats.columns[spec.name]
            if spec.kind == "numeric":
                params[spec.name] = _fit_numeric(spec, column)
            else:
                params[spec.name] = _fit_categorical(spec, column)
        self.params, self.n_rows = params, int(stats.n_rows)
        self.input_types = {name: stats.input_types[name] for name in self.input_columns}
        names = self.output_names
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            self.params = {}
            raise ValueError(f"output names {duplicated} appear more than once; rename columns.")
        return self

    # -- applying --------------------------------------------------------------------------

    def transform(
        self, data: Any, *, rows: int | np.ndarray = 0, path: str | None = None
    ) -> np.ndarray:
        """The float32 matrix the clustering sees.

        Parameters
        ----------
        data : pyarrow.Table, pyarrow.RecordBatch or pandas.DataFrame
            Must hold every input column (others are ignored).
        rows : int or ndarray, default 0
            Number of the first row (or of every row), for error messages.
        path : str, optional
            File named in error messages.

        Returns
        -------
        ndarray of float32, shape (n_rows, n_features)
            C-contiguous; computed in float64 and rounded once.

        Raises
        ------
        DataError
            As :meth:`statistics`.
        """
        table = _as_table(data, self.input_columns, path)
        out = np.empty((table.num_rows, self.n_features), dtype=np.float32)
        j = 0
        for spec in self.columns:
            params = self._params(spec)
            column = table.column(spec.name)
            if spec.kind == "numeric":
                out[:, j] = _apply_numeric(_numeric_values(column, spec, rows, path), spec, params)
                j += 1
            else:
                width = len(params.vocabulary) + params.other
                out[:, j : j + width] = _one_hot(column, spec, params, width, path)
                j += width
        return out

    def inverse_transform_numeric(self, centers: np.ndarray) -> pd.DataFrame:
        """Centres in original units: numeric columns, and one-hot shares for categoricals.

        Weights, scaling and log1p are undone; clipping cannot be, so values stay within the
        clip bounds. A categorical output becomes the centre's coordinate divided by
        ``sqrt(weight)``: for a mean of rows, the share of the segment with that value.

        Parameters
        ----------
        centers : array-like, shape (n_clusters, n_features)

        Returns
        -------
        DataFrame, shape (n_clusters, n_numeric + n_one_hot)
            Indexed by segment; numeric columns by name, one-hot shares by output name.
        """
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2 or centers.shape[1] != self.n_features:
            raise ValueError(
                f"centers has shape {centers.shape}; expected (n_clusters, {self.n_features})."
            )
        result: dict[str, np.ndarray] = {}
        names = self.output_names
        j = 0
        for spec in self.columns:
            params = self._params(spec)
            root = math.sqrt(spec.weight)
            if spec.kind == "numeric":
                y = centers[:, j] / root * params.scale + params.center
                result[spec.name] = np.sign(y) * np.expm1(np.abs(y)) if spec.log1p else y
                j += 1
            else:
                width = len(params.vocabulary) + params.other
                for k in range(j, j + width):
                    result[names[k]] = centers[:, k] / root
                j += width
        return pd.DataFrame(result, index=pd.RangeIndex(len(centers), name="segment"))

    # -- saving ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description; floats round-trip exactly through ``json``."""
        fitted = None
        if self.is_fitted:
            fitted = {
                "n_rows": self.n_rows,
                "input_types": dict(self.input_types),
                "params": {name: _params_dict(p) for name, p in self.params.items()},
            }
        return {"columns": [spec.to_dict() for spec in self.columns], "fitted": fitted}

    @classmethod
    def from_dict(cls, description: Mapping[str, Any]) -> FeaturePlan:
        """Rebuild a plan written by :meth:`to_dict`."""
        try:
            columns = [_spec_from_dict(c) for c in description["columns"]]
            plan = cls(columns)
            fitted = description.get("fitted")
            if fitted is not None:
                plan.n_rows = int(fitted["n_rows"])
                plan.input_types = {str(k): str(v) for k, v in fitted["input_types"].items()}
                plan.params = {
                    spec.name: _params_from_dict(spec, fitted["params"][spec.name])
                    for spec in columns
                }
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a feature plan description: {exc!r}") from exc
        return plan

    def _params(self, spec: ColumnSpec) -> Any:
        if not self.is_fitted:
            raise ValueError(
                "this FeaturePlan is not fitted yet; call plan.fit(data) before transforming "
                "or asking for output names."
            )
        return self.params[spec.name]


# -- per-column work --------------------------------------------------------------------------


def _as_table(data: Any, columns: list[str], path: str | None) -> pa.Table:
    """The input columns of ``data`` as an Arrow table; DataError naming a missing column."""
    if isinstance(data, pd.DataFrame):
        labels = {str(c): c for c in data.columns}
        names = list(labels)
    elif isinstance(data, (pa.Table, pa.RecordBatch)):
        names = data.schema.names
    else:
        raise TypeError(
            f"data of type {type(data).__name__} should be a pyarrow Table or RecordBatch or a "
            "pandas DataFrame."
        )
    for name in columns:
        if name not in names:
            shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
            raise DataError(
                f"column is missing; the feature plan needs it and the data has [{shown}]",
                path,
                name,
            )
    if isinstance(data, pd.DataFrame):
        return pa.table({name: _arrow_column(data[labels[name]], name, path) for name in columns})
    return pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data


def _arrow_column(series: pd.Series, name: str, path: str | None) -> pa.Array:
    """A pandas column as Arrow (NaN as null); DataError when its values mix types."""
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"cannot be read as one type: {exc}", path, name) from exc


def _numeric_values(
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


def _signed_log1p(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


def _apply_numeric(values: np.ndarray, spec: ColumnSpec, params: NumericParams) -> np.ndarray:
    """log1p, clip, scale and weight, in float64."""
    y = _signed_log1p(values) if spec.log1p else values
    if params.clip_low is not None:
        y = np.clip(y, params.clip_low, params.clip_high)
    y = (y - params.center) / params.scale
    return y * math.sqrt(spec.weight) if spec.weight != 1.0 else y


def _fit_numeric(spec: ColumnSpec, stats: NumericStatistics) -> NumericParams:
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


def _category_counts(column: pa.ChunkedArray, spec: ColumnSpec, path: str | None) -> CategoryCounts:
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


def _fit_categorical(spec: ColumnSpec, stats: CategoryCounts) -> CategoricalParams:
    """Vocabulary: most frequent values first, ties by value; the rest in ``"<other>"``."""
    ranked = sorted(stats.counts.items(), key=lambda item: (-item[1], item[0]))
    other = len(ranked) > spec.max_categories
    kept = ranked[: spec.max_categories - 1] if other else ranked
    counts = [count for _, count in kept]
    if other:
        counts.append(sum(count for _, count in ranked[len(kept) :]))
    return CategoricalParams(tuple(v for v, _ in kept), other, tuple(counts), stats.nulls)


def _one_hot(
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


def _params_dict(params: NumericParams | CategoricalParams) -> dict[str, Any]:
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


def _params_from_dict(spec: ColumnSpec, d: Mapping[str, Any]) -> NumericParams | CategoricalParams:
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


def _spec_from_dict(d: Mapping[str, Any]) -> ColumnSpec:
    clip = d.get("clip")
    return ColumnSpec(
        name=d["name"], kind=d.get("kind", "numeric"), log1p=bool(d.get("log1p", False)),
        clip=None if clip is None else (float(clip[0]), float(clip[1])),
        scale=d.get("scale", "standard"), weight=float(d.get("weight", 1.0)),
        max_categories=int(d.get("max_categories", 20)),
    )  # fmt: skip


# -- the default plan for RFM tables ----------------------------------------------------------

# Heavy right tails (money, counts, durations): log1p, then clip the extreme 1 % on each side.
_RFM_LOG_COLUMNS = (
    "monetary_total", "monetary_avg", "frequency", "returns_total", "tenure_days",
    "n_categories", "n_channels", "units_total",
)  # fmt: skip
# Bounded or roughly uniform, but with outliers: clip only.
_RFM_CLIP_COLUMNS = ("recency_days", "return_rate")
_RFM_PLAIN_COLUMNS = ("category_entropy",)
_RFM_CATEGORICAL_COLUMNS = ("region", "channel", "country")


def default_rfm_plan(columns: Any) -> FeaturePlan:
    """A sensible unfitted plan for an RFM customer table (:func:`gpuseg.rfm.compute_rfm`).

    - money, counts and durations (``monetary_total``, ``monetary_avg``, ``frequency``,
      ``returns_total``, ``tenure_days``, ``n_categories``, ``n_channels``, ``units_total``):
      log1p, clip at the (0.01, 0.99) quantiles, standardise;
    - ``recency_days`` and ``return_rate``: clip at (0.01, 0.99), standardise;
    - ``category_entropy``: standardise;
    - ``region``, ``channel``, ``country``: one-hot, at most 20 outputs.

    Every other column (ids, the R/F/M scores, the rule-based ``segment``) is left out.

    Parameters
    ----------
    columns : list of str, pandas.DataFrame or pyarrow.Table
        The table's column names (or the table).

    Returns
    -------
    FeaturePlan
        Not fitted; columns in the order given.

    Examples
    --------
    >>> default_rfm_plan(["customer_id", "recency_days", "frequency"]).input_columns
    ['recency_days', 'frequency']
    """
    if isinstance(columns, pd.DataFrame):
        names = [str(c) for c in columns.columns]
    elif isinstance(columns, (pa.Table, pa.RecordBatch)):
        names = list(columns.schema.names)
    else:
        names = list(columns)
    specs = []
    for name in names:
        if name in _RFM_LOG_COLUMNS:
            specs.append(ColumnSpec(name, log1p=True, clip=(0.01, 0.99)))
        elif name in _RFM_CLIP_COLUMNS:
            specs.append(ColumnSpec(name, clip=(0.01, 0.99)))
        elif name in _RFM_PLAIN_COLUMNS:
            specs.append(ColumnSpec(name))
        elif name in _RFM_CATEGORICAL_COLUMNS:
            specs.append(ColumnSpec(name, kind="categorical"))
    if not specs:
        known = _RFM_LOG_COLUMNS + _RFM_CLIP_COLUMNS + _RFM_PLAIN_COLUMNS
        raise ValueError(
            f"none of the columns {names[:8]} is an RFM feature ({', '.join(known)}); "
            "build a FeaturePlan of ColumnSpecs for this table."
        )
    return FeaturePlan(specs)
