"""``gpuseg rfm``, ``gpuseg fit`` and ``gpuseg assign``: from a transaction log to labels."""

from __future__ import annotations

import contextlib
import json
import math
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from gpuseg.commands._common import (
    CommandError,
    Console,
    atomic_output,
    check_output,
    check_unique_ids,
    default_id_column,
    nan_filter,
    parse_columns,
)
from gpuseg.errors import DataError
from gpuseg.parquet import ParquetSource

AS_OF_KEY = b"gpuseg.as_of"
ID_KEY = b"gpuseg.id_column"
RFM_KEY = b"gpuseg.rfm"
_GLOB = "*?["


# -- rfm -------------------------------------------------------------------------------------------


def run_rfm(args: Namespace, console: Console) -> dict[str, Any]:
    """Build the RFM customer table of a transaction log and write it as one Parquet file."""
    from gpuseg.rfm import compute_rfm

    target = check_output(args.output, args.overwrite)
    _check_input_exists(args.transactions)
    roles = {
        "customer": args.customer, "timestamp": args.time, "amount": args.amount,
        "order": args.order, "category": args.category, "channel": args.channel,
        "quantity": args.quantity,
    }  # fmt: skip
    from gpuseg.distributed import local_progress_bar

    with (
        dask_client(args, console) as client,
        console.step("rfm") as step,
        local_progress_bar(console.progress and client is None),
    ):
        try:
            result = compute_rfm(
                args.transactions, as_of=args.as_of, returns=args.returns, client=client,
                **roles,
            )  # fmt: skip
        except (ValueError, TypeError, OSError, pa.ArrowException) as exc:
            raise DataError(_first_line(exc), args.transactions) from None
        step["rows"] = len(result.features)
    frame = result.to_frame().reset_index()
    frame["segment"] = frame["segment"].astype(str)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    as_of = result.as_of.date().isoformat()
    about = {
        "as_of": as_of,
        "returns": result.returns,
        "thresholds": {k: np.asarray(v).tolist() for k, v in result.thresholds.items()},
        "columns": {k: v for k, v in roles.items() if v},
        "return_only_customers": len(result.return_only),
    }
    metadata = {**(table.schema.metadata or {}), AS_OF_KEY: as_of.encode(),
                ID_KEY: args.customer.encode(), RFM_KEY: json.dumps(about).encode()}  # fmt: skip
    table = table.replace_schema_metadata(metadata)
    with atomic_output(target, args.overwrite) as temporary:
        pq.write_table(table, temporary)
    console.say(f"as_of: {as_of}")
    console.say(f"wrote {len(frame):,} customers x {table.num_columns} columns to {target}")
    if len(result.return_only):
        console.say(f"note: {len(result.return_only):,} customers had only returns; left out")
    coverage = result.coverage
    console.say("\nRFM segment          customers   share")
    for name, row in coverage.iterrows():
        if row["count"]:
            console.say(f"{name:<20} {int(row['count']):>10,} {row['share']:>7.1%}")
    return {"output": str(target), "as_of": as_of, "customers": len(frame)}


def _check_input_exists(path: str) -> None:
    """A DataError for a local input path that does not exist (URLs and globs are left alone)."""
    text = os.fspath(path)
    if "://" in text or any(c in text for c in _GLOB):
        return
    if not Path(text).exists():
        raise DataError("no such file or directory; expected a Parquet file or directory", text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@contextlib.contextmanager
def dask_client(args: Namespace, console: Console):
    """A Dask client from ``--scheduler ADDRESS`` or ``--workers N``, or None (no cluster)."""
    scheduler = getattr(args, "scheduler", None)
    workers = getattr(args, "workers", None)
    if scheduler and workers:
        raise CommandError("--scheduler and --workers exclude each other; give one of them")
    if workers is not None and workers < 1:
        raise CommandError(f"--workers {workers}: expected an integer >= 1")
    if not scheduler and not workers:
        yield None
        return
    from gpuseg.distributed import job_client

    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(job_client(scheduler, workers))
        except OSError as exc:
            raise CommandError(
                f"--scheduler {scheduler}: cannot connect ({_first_line(exc)}); expected the "
                "address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786"
            ) from None
        if scheduler:
            console.log(f"dask: connected to {scheduler}")
        else:
            console.log(f"dask: local cluster of {workers} worker process(es)")
        yield client


# -- fit -------------------------------------------------------------------------------------------


def open_layout(data: str, id_column: str | None) -> ParquetSource:
    """Resolve and check the input files (missing, empty, corrupt, schemas that differ)."""
    _check_input_exists(data)
    try:
        return ParquetSource(data, id_column=id_column, read_ahead=0, persist=False)
    except DataError as exc:
        if "has no numeric feature column" in exc.problem:
            # No numeric column is only an error once the plan is known; resolve files alone.
            return ParquetSource(data, columns=[_first_column(data)], read_ahead=0, persist=False)
        raise


def _first_column(data: str) -> str:
    return ds.dataset(data, format="parquet").schema.names[0]


def table_metadata(files: list[str]) -> dict[bytes, bytes]:
    """Key-value metadata of the first file (as_of and id column of an RFM table)."""
    return pq.read_schema(files[0]).metadata or {}


def build_plan(
    schema: pa.Schema,
    columns: list[str] | None,
    id_column: str | None,
    path: str,
    categorical: list[str] | None = None,
):
    """The feature plan: the RFM default for RFM tables, else every (or every chosen) column.

    Numeric columns are standardised (money and counts of an RFM table also log1p and clipped);
    a string column is one-hot encoded only when named in ``categorical``.
    """
    categorical = list(categorical or [])
    if categorical:
        columns = list(dict.fromkeys([*(columns or _default_numeric(schema, id_column, path)),
                                      *categorical]))  # fmt: skip
    from gpuseg.plan import ColumnSpec, FeaturePlan, default_rfm_plan

    if columns is None:
        try:
            return default_rfm_plan([n for n in schema.names if n != id_column])
        except ValueError:
            pass
        columns = _default_numeric(schema, id_column, path)
    for name in columns:
        if schema.get_field_index(name) < 0:
            raise DataError(
                f"requested column is missing; the file has {schema.names[:12]}", path, name
            )
        if name == id_column:
            raise CommandError(f"column {name!r} is the id column; it cannot also be a feature")
    rfm = {spec.name: spec for spec in _rfm_specs(schema.names)}
    specs = []
    for name in columns:
        kind = schema.field(name).type
        if name in rfm:
            specs.append(rfm[name])
        elif name in categorical:
            specs.append(ColumnSpec(name, kind="categorical"))
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            specs.append(ColumnSpec(name))
        else:
            raise DataError(
                f"has type {kind}; expected a numeric column (or pass --categorical {name} to "
                "one-hot encode it)",
                path,
                name,
            )
    return FeaturePlan(specs)


def log_unused_columns(schema: pa.Schema, plan, id_column: str | None, console: Console) -> None:
    """Say which of the table's columns the plan leaves out (the id aside), with their types."""
    used = {spec.name for spec in plan.columns}
    unused = [f for f in schema if f.name not in used and f.name != id_column]
    if unused:
        listed = ", ".join(f"{f.name} ({_type_name(f.type)})" for f in unused[:8])
        more = f" and {len(unused) - 8} more" if len(unused) > 8 else ""
        console.log(f"not used as features: {listed}{more}; choose with --columns/--categorical")


def _type_name(kind: pa.DataType) -> str:
    """A column type as a user reads it: strings are strings, however Arrow stores them."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_large_string(kind) or pa.types.is_string(kind):
        return "string"
    return str(kind)


def _default_numeric(schema: pa.Schema, id_column: str | None, path: str) -> list[str]:
    """Every integer or float column but the id."""
    columns = [
        f.name for f in schema
        if f.name != id_column and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]  # fmt: skip
    if not columns:
        raise DataError("has no numeric feature column; expected integer or float columns", path)
    return columns


def _rfm_specs(names: list[str]):
    from gpuseg.plan import default_rfm_plan

    try:
        return default_rfm_plan(names).columns
    except ValueError:
        return []


def fit_plan(plan, files: list[str], filters, console: Console, impute: bool):
    """Fit the plan in one streamed pass over the files (bad values raise, naming file and row)."""
    keep = filters if filters is not None else (
        nan_filter(_numeric_inputs(plan), "drop") if impute else None
    )  # fmt: skip

    def batches():
        for path in files:
            dataset = ds.dataset(path, format="parquet")
            for batch in dataset.to_batches(columns=plan.input_columns, filter=keep):
                yield batch, path

    with console.step("feature plan") as step:
        total = plan.merged_statistics(batches())
        if total is None or total.n_rows == 0:
            where = files[0] if len(files) == 1 else f"{len(files)} files"
            raise DataError("has no rows (after dropping bad values); expected at least one", where)
        step["rows"] = int(total.n_rows)
    return plan.fit_statistics(total)


def _numeric_inputs(plan) -> list[str]:
    return [spec.name for spec in plan.columns if spec.kind == "numeric"]


class ImputingPlan:
    """A fitted plan that first replaces null, NaN and infinite numeric inputs by the fit mean.

    The fill value is the column's fitted centre in original units, so an imputed value maps to
    0 after standardisation and pulls the customer towards no segment in particular.
    """

    def __init__(self, plan) -> None:
        self._plan = plan
        self.fill = {}
        for spec in plan.columns:
            if spec.kind != "numeric":
                continue
            params = plan.params[spec.name]
            value = params.mean
            if spec.log1p:
                value = math.copysign(math.expm1(abs(value)), value)
            self.fill[spec.name] = value

    def __getattr__(self, name: str):
        return getattr(self._plan, name)

    def transform(self, data, *, rows=0, path=None, out=None):
        """``plan.transform`` after filling the bad numeric values."""
        if isinstance(data, pd.DataFrame):
            data = pa.Table.from_pandas(data, preserve_index=False)
        elif isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        for name, value in self.fill.items():
            index = data.schema.get_field_index(name)
            if index < 0:
                continue
            column = pc.cast(data.column(name), pa.float64())
            finite = pc.fill_null(pc.is_finite(column), False)
            data = data.set_column(index, name, pc.if_else(finite, column, value))
        return self._plan.transform(data, rows=rows, path=path, out=out)


def check_k(k: int, n_rows: int, where: str) -> None:
    """k must be in 1..rows."""
    if k < 1:
        raise CommandError(f"-k {k}: expected an integer >= 1 (the number of segments)")
    if k > n_rows:
        raise DataError(f"has {n_rows:,} rows but -k {k} segments were asked; expected k <= rows",
                        where)  # fmt: skip


def check_device(device: str) -> None:
    """Unknown device, or cuda without a GPU: a user error before any work."""
    from gpuseg._backend import get_backend

    try:
        get_backend(device)
    except ValueError as exc:
        raise CommandError(f"--device {device}: {exc}") from None


def run_fit(args: Namespace, console: Console) -> dict[str, Any]:
    """Fit the feature plan and k-means on a customer table and save the model directory."""
    from gpuseg import KMeans
    from gpuseg.model import SegmentationModel

    if args.k is None:
        raise CommandError("-k is required: the number of segments (try gpuseg choose-k first)")
    if args.k < 1:
        check_k(args.k, 1, args.data)
    check_device(args.device)
    target = check_output(args.output, args.overwrite)
    layout = open_layout(args.data, None)
    files = layout.files
    where = files[0] if len(files) == 1 else args.data
    schema = ds.dataset(files[0], format="parquet").schema
    metadata = table_metadata(files)
    id_column = args.id or (metadata.get(ID_KEY, b"").decode() or None)
    id_column = default_id_column(schema, id_column)
    if id_column and schema.get_field_index(id_column) < 0:
        raise DataError("id column is missing; pass --id with the customer id column", where,
                        id_column)  # fmt: skip
    plan = build_plan(schema, parse_columns(args.columns), id_column, where,
                      parse_columns(args.categorical))  # fmt: skip
    log_unused_columns(schema, plan, id_column, console)
    filters = nan_filter(_numeric_inputs(plan), args.nan)
    plan = fit_plan(plan, files, filters, console, impute=args.nan == "impute")
    if id_column:
        check_unique_ids(files, id_column, console)
    scoring = ImputingPlan(plan) if args.nan == "impute" else plan
    with dask_client(args, console) as client:
        source = _fit_source(files, scoring, filters, client, args.persist)
        try:
            check_k(args.k, source.n_samples, where)
            km = KMeans(
                args.k, random_state=args.seed, device=args.device, max_iter=args.max_iter,
                n_init=args.n_init, algorithm=args.algorithm,
                verbose=1 if console.progress else 0,
            )  # fmt: skip
            with console.step("fit") as step:
                km.fit(source)
                step["rows"] = source.n_samples
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
    as_of = metadata.get(AS_OF_KEY, b"").decode() or None
    model = SegmentationModel.from_estimator(plan, km, as_of=as_of, id_column=id_column)
    try:
        model.save(target, overwrite=args.overwrite)
    except OSError as exc:
        raise CommandError(f"{target}: cannot write the model ({exc}); expected a writable "
                           "directory") from None  # fmt: skip
    sizes = np.asarray(km.cluster_sizes_)
    console.say(f"fitted k={args.k} on {source.n_samples:,} rows x {plan.n_features} features "
                f"({', '.join(plan.input_columns)})")  # fmt: skip
    console.say(f"{km.n_iter_} passes, inertia {km.inertia_:.6g}; model written to {target}")
    console.say("segment sizes: " + ", ".join(f"{j}: {int(n):,}" for j, n in enumerate(sizes)))
    return {"model": str(target), "k": args.k, "inertia": float(km.inertia_)}


def _fit_source(files, plan, filters, client, persist: str = "auto"):
    """The batch source of the fit: local Parquet, or Dask partitions when a client is given.

    The plan names the columns read; ids are not (the fit does not use them, and blocks kept in
    memory between passes stay smaller without them). ``persist`` is the ``--persist`` choice.
    """
    keep = {"auto": "auto", "yes": True, "no": False}[persist]
    if client is None:
        return ParquetSource(files, plan=plan, filters=filters, persist=keep)
    from gpuseg.distributed import planned_parquet_source

    return planned_parquet_source(files, plan, filters, client, keep)


# -- assign ----------------------------------------------------------------------------------------


def load_model(path: str):
    """Load a model directory; a missing, corrupt or newer-format model is a user error."""
    from gpuseg.model import load

    try:
        return load(path)
    except FileNotFoundError as exc:
        raise DataError(_first_line(exc).replace(f"no model at {path}: it ", ""), path) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(_first_line(exc), path) from None


def scoring_source(model, data: str, nan: str, id_column: str | None = None) -> ParquetSource:
    """The rows of ``data`` through the model's plan (NaN policy applied), with their ids."""
    layout = open_layout(data, None)
    files = layout.files
    schema = ds.dataset(files[0], format="parquet").schema
    id_column = id_column or model.id_column
    id_column = default_id_column(schema, id_column)
    where = files[0] if len(files) == 1 else data
    if id_column and schema.get_field_index(id_column) < 0:
        raise DataError("id column is missing; pass --id with the customer id column", where,
                        id_column)  # fmt: skip
    for name in model.plan.input_columns:
        if schema.get_field_index(name) < 0:
            raise DataError(
                f"column is missing; the model's features are {model.plan.input_columns}",
                where,
                name,
            )
    plan = ImputingPlan(model.plan) if nan == "impute" else model.plan
    filters = nan_filter(_numeric_inputs(model.plan), nan)
    # One pass per command (assign, profile, report, drift): nothing to keep.
    return ParquetSource(files, id_column=id_column, plan=plan, filters=filters, persist=False)


def run_assign(args: Namespace, console: Console) -> dict[str, Any]:
    """Write every customer's segment, distance, runner-up and ambiguity flag to labels Parquet.

    One labels file per input file, each written under a temporary name, then the ``_SUCCESS``
    manifest; the whole directory is renamed into place at the end (see :mod:`gpuseg.labels`).
    """
    from gpuseg.pipeline import assign

    check_device(args.device)
    target = check_output(args.output, args.overwrite)
    model = load_model(args.model)
    source = scoring_source(model, args.data, args.nan, args.id)
    if source.id_column:
        check_unique_ids(source.files, source.id_column, console)
    if source.n_samples == 0:
        raise DataError("has no rows to assign; expected at least one", args.data)
    with atomic_output(target, args.overwrite, directory=True) as temporary, console.step(
        "assign", source.n_samples
    ):
        report = assign(model, source, temporary, ambiguity=args.ambiguity, overwrite=True,
                        device=args.device, progress=console.progress)  # fmt: skip
    console.say(f"wrote labels of {report.n_rows:,} customers to {target} "
                f"({len(report.files)} file(s) and a _SUCCESS manifest)")  # fmt: skip
    return {"labels": str(target), "rows": report.n_rows}
