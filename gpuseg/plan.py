"""The feature plan: which columns feed the clustering, and how each becomes float32 features.

A :class:`FeaturePlan` is a list of :class:`ColumnSpec`. It is fitted in one streamed pass over
any number of tables from mergeable statistics (:class:`PlanStatistics`), so Dask partitions can
each compute theirs and merge them, and it is saved in the model so that scoring next month's
table applies exactly the same transform.

The per-column transforms and their policies (log1p, clipping, scaling, weights, categoricals,
missing values) are in :mod:`gpuseg.columns`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from gpuseg.columns import (
    OTHER,
    CategoricalParams,
    ColumnSpec,
    NumericParams,
    apply_numeric,
    category_counts,
    fit_categorical,
    fit_numeric,
    numeric_values,
    one_hot,
    params_from_dict,
    params_to_dict,
    signed_log1p,
    spec_from_dict,
)
from gpuseg.errors import DataError
from gpuseg.read_ahead import map_ahead
from gpuseg.sketches import CategoryCounts, NumericStatistics, PlanStatistics

__all__ = ["OTHER", "ColumnSpec", "FeaturePlan", "default_rfm_plan"]

# -- the plan ---------------------------------------------------------------------------------


# Tables whose statistics one thread computes and merges before handing them over: the merge
# into the running total (up to 2**16 groups per column) is then paid once per group of tables.
# A constant, so the merge order, and the bits of the result, do not depend on the thread count.
_TABLES_PER_TASK = 8


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
                values = numeric_values(column, spec, rows, path)
                transform = signed_log1p if spec.log1p else None
                columns[spec.name] = NumericStatistics.of(values, spec.needs_sketch, transform)
            else:
                columns[spec.name] = category_counts(column, spec, path)
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
        total = self.merged_statistics((table, None) for table in data)
        if total is None:
            raise DataError("no table to fit the feature plan on; expected at least one")
        return self.fit_statistics(total)

    def merged_statistics(
        self, tables: Iterable[tuple[Any, str | None]], threads: int | None = None
    ) -> PlanStatistics | None:
        """The statistics of ``(table, path)`` pairs merged in order; None when there are none.

        Tables are worked on by ``threads`` threads at once (default: the usable cores, at most
        4), in groups of a fixed number of consecutive tables, and merged in table order, so the
        result does not depend on the thread count. Rows are numbered from 0 for every new
        ``path`` (or across all tables when ``path`` is None), for error messages; the first bad
        value in table order is the one raised.
        """

        def numbered() -> Iterator[tuple[Any, int, str | None]]:
            first, last_path = 0, None
            for table, path in tables:
                if path != last_path:
                    first, last_path = 0, path
                yield table, first, path
                first += len(table) if isinstance(table, pd.DataFrame) else table.num_rows

        def statistics(group: list[tuple[Any, int, str | None]]) -> PlanStatistics:
            merged = None
            for table, first, path in group:
                stats = self.statistics(table, rows=first, path=path)
                merged = stats if merged is None else merged.merge(stats)
            return merged

        total = None
        for stats in map_ahead(statistics, _groups(numbered(), _TABLES_PER_TASK), threads):
            total = stats if total is None else total.merge(stats)
        return total

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
                params[spec.name] = fit_numeric(spec, column)
            else:
                params[spec.name] = fit_categorical(spec, column)
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
        self,
        data: Any,
        *,
        rows: int | np.ndarray = 0,
        path: str | None = None,
        out: np.ndarray | None = None,
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
        out : ndarray of float32, shape (n_rows, n_features), optional
            Where to write the matrix (a block's rows, say) instead of a new array.

        Returns
        -------
        ndarray of float32, shape (n_rows, n_features)
            C-contiguous (``out`` when given); computed in float64 and rounded once.

        Raises
        ------
        DataError
            As :meth:`statistics`.
        """
        table = _as_table(data, self.input_columns, path)
        shape = (table.num_rows, self.n_features)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32:
            raise ValueError(f"out has shape {out.shape} and dtype {out.dtype}; expected {shape}.")
        j = 0
        for spec in self.columns:
            params = self._params(spec)
            column = table.column(spec.name)
            if spec.kind == "numeric":
                out[:, j] = apply_numeric(numeric_values(column, spec, rows, path), spec, params)
                j += 1
            else:
                width = len(params.vocabulary) + params.other
                out[:, j : j + width] = one_hot(column, spec, params, width, path)
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
                "params": {name: params_to_dict(p) for name, p in self.params.items()},
            }
        return {"columns": [spec.to_dict() for spec in self.columns], "fitted": fitted}

    @classmethod
    def from_dict(cls, description: Mapping[str, Any]) -> FeaturePlan:
        """Rebuild a plan written by :meth:`to_dict`."""
        try:
            columns = [spec_from_dict(c) for c in description["columns"]]
            plan = cls(columns)
            fitted = description.get("fitted")
            if fitted is not None:
                plan.n_rows = int(fitted["n_rows"])
                plan.input_types = {str(k): str(v) for k, v in fitted["input_types"].items()}
                plan.params = {
                    spec.name: params_from_dict(spec, fitted["params"][spec.name])
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


# -- reading tables ---------------------------------------------------------------------------


def _groups(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive items in lists of ``size`` (the last may be shorter)."""
    group: list[Any] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


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
