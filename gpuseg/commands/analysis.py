"""``gpuseg choose-k``, ``profile``, ``drift`` and ``report``: what the segments are."""

from __future__ import annotations

import json
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
from tqdm.auto import tqdm

from gpuseg.commands._common import (
    CommandError,
    Console,
    atomic_output,
    check_output,
    check_unique_ids,
    default_id_column,
    parse_columns,
)
from gpuseg.commands.pipeline import (
    ID_KEY,
    ImputingPlan,
    _fit_source,
    _numeric_inputs,
    build_plan,
    check_device,
    fit_plan,
    load_model,
    log_unused_columns,
    nan_filter,
    open_layout,
    scoring_source,
    table_metadata,
)
from gpuseg.errors import DataError

MONEY_COLUMNS = ("monetary_total", "revenue", "spend", "monetary")
PROJECTION_ROWS = 2_000


# -- choose-k --------------------------------------------------------------------------------------


def parse_k_range(text: str | list | int) -> list[int]:
    """``2..16``, ``2-16``, ``3,5,8`` or a TOML list, as a sorted list of k."""
    if isinstance(text, int):
        return [text]
    if isinstance(text, list):
        values = text
    else:
        spec = str(text).replace(" ", "")
        try:
            if ".." in spec or ("-" in spec and "," not in spec):
                low, high = spec.replace("..", "-").split("-", 1)
                values = list(range(int(low), int(high) + 1))
            else:
                values = [int(v) for v in spec.split(",") if v]
        except ValueError:
            raise CommandError(f"--k {text}: expected a range such as 2..16 or a list such as "
                               "3,5,8") from None  # fmt: skip
    if not values or any(int(k) < 2 for k in values):
        raise CommandError(f"--k {text}: expected numbers of segments >= 2, e.g. 2..16")
    return sorted({int(k) for k in values})


def run_choose_k(args: Namespace, console: Console) -> dict[str, Any]:
    """Fit every k of the range, score them and recommend one."""
    from gpuseg.choose_k import evaluate_k

    ks = parse_k_range(args.k)
    check_device(args.device)
    target = check_output(args.output, args.overwrite) if args.output else None
    layout = open_layout(args.data, None)
    files = layout.files
    where = files[0] if len(files) == 1 else args.data
    schema = ds.dataset(files[0], format="parquet").schema
    id_column = args.id or (table_metadata(files).get(ID_KEY, b"").decode() or None)
    id_column = default_id_column(schema, id_column)
    plan = build_plan(schema, parse_columns(args.columns), id_column, where,
                      parse_columns(args.categorical))  # fmt: skip
    log_unused_columns(schema, plan, id_column, console)
    filters = nan_filter(_numeric_inputs(plan), args.nan)
    plan = fit_plan(plan, files, filters, console, impute=args.nan == "impute")
    scoring = ImputingPlan(plan) if args.nan == "impute" else plan
    source = _fit_source(files, scoring, filters, None, args.persist)
    if ks[-1] > source.n_samples:
        raise DataError(f"has {source.n_samples:,} rows but --k goes up to {ks[-1]}; expected "
                        "k <= rows", where)  # fmt: skip
    with console.step(f"choose-k over k={ks[0]}..{ks[-1]}", source.n_samples * len(ks)):
        selection = evaluate_k(
            source, ks, random_state=args.seed, sample_size=args.sample, min_share=args.min_share,
            device=args.device,
            kmeans_params={"n_init": 1, "max_iter": args.max_iter,
                           "verbose": 1 if console.progress else 0},
        )  # fmt: skip
    result = selection.to_dict()
    result["data"] = args.data
    result["features"] = plan.output_names
    console.say(f"  k {'inertia':>12} {'Calinski-H.':>12} {'Davies-B.':>10} {'silhouette':>10} "
                f"{'smallest':>9}")  # fmt: skip
    for score in selection.scores:
        mark = "  <- recommended" if score.k == selection.recommended else ""
        console.say(
            f"{score.k:>3} {score.inertia:>12.5g} {score.calinski_harabasz:>12.5g} "
            f"{score.davies_bouldin:>10.3f} {score.silhouette:>10.3f} "
            f"{score.smallest_share:>9.1%}{mark}"
        )
    console.say(f"recommended: {selection.recommended} ({selection.reason})")
    console.say(f"silhouette on a sample of {selection.sample_size:,} rows")
    if target is not None:
        with atomic_output(target, args.overwrite) as temporary:
            temporary.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
        console.say(f"scores written to {target}")
    return result


# -- one pass of profile statistics ----------------------------------------------------------------


@dataclass
class Collected:
    """What one labelled pass over a customer table gathers for profiles and the report."""

    profile: Any
    names: list[str]
    descriptions: list[str]
    sample: np.ndarray
    sample_labels: np.ndarray
    rfm_grid: np.ndarray | None
    ids: np.ndarray | None = None
    labels: np.ndarray | None = None
    rows: int = 0
    money_column: str | None = None
    extra: dict = field(default_factory=dict)


def collect(model, model_path: str, data: str, args: Namespace, console: Console,
            keep_labels: bool = False) -> Collected:  # fmt: skip
    """Label every row with the model and accumulate profiles, a sample and the RFM grid."""
    from gpuseg._backend import get_backend
    from gpuseg.labels import label_table
    from gpuseg.profiles import ProfileAccumulator

    source = scoring_source(model, data, args.nan, getattr(args, "id", None))
    if source.id_column:
        check_unique_ids(source.files, source.id_column, console)
    schema = ds.dataset(source.files[0], format="parquet").schema
    features = [n for n in _numeric_inputs(model.plan)]
    money = getattr(args, "money", None) or next(
        (c for c in MONEY_COLUMNS if schema.get_field_index(c) >= 0), None
    )
    if money and schema.get_field_index(money) < 0:
        raise DataError("--money column is missing", source.files[0], money)
    has_rfm = all(schema.get_field_index(c) >= 0 for c in ("R", "F", "M"))
    columns = list(dict.fromkeys([*model.plan.input_columns, *([money] if money else []),
                                  *(["R", "F", "M"] if has_rfm else []),
                                  *([source.id_column] if source.id_column else [])]))  # fmt: skip
    accumulator = ProfileAccumulator(features, model.n_clusters, money)
    centers = np.ascontiguousarray(model.centers, dtype=np.float32)
    backend = get_backend("cpu")
    plan = source.plan
    rng = np.random.default_rng(getattr(args, "seed", 0) or 0)
    keep_p = min(1.0, PROJECTION_ROWS / max(source.n_samples, 1))
    samples, sample_labels, ids, labels = [], [], [], []
    grid = np.zeros((5, 5), dtype=np.int64) if has_rfm else None
    rows = 0
    # A batch's profile statistics are folded on a second thread while the next batch is read,
    # transformed and labelled; one batch at a time, so they are folded in file order.
    folding = None
    with ThreadPoolExecutor(max_workers=1) as folder, console.step("profile pass") as step, tqdm(
        total=source.n_samples, desc="profile pass", unit="rows", unit_scale=True,
        disable=not console.progress, leave=False,
    ) as bar:  # fmt: skip
        for path in source.files:
            first = 0
            dataset = ds.dataset(path, format="parquet")
            for batch in dataset.to_batches(columns=columns, filter=source.filters):
                X = plan.transform(batch, rows=first, path=path)
                first += batch.num_rows
                assignment, _ = backend.assign_accumulate(X, centers, accumulate=False)
                flags = label_table(None, assignment, args.ambiguity).column("ambiguous")
                frame = batch.to_pandas()
                chosen = rng.random(batch.num_rows) < keep_p
                samples.append(X[chosen])
                sample_labels.append(assignment.labels[chosen])
                if grid is not None:
                    r = frame["R"].to_numpy(np.int64).clip(1, 5)
                    fm = ((frame["F"].to_numpy(np.int64) + frame["M"].to_numpy(np.int64) + 1)
                          // 2).clip(1, 5)  # fmt: skip
                    np.add.at(grid, (r - 1, fm - 1), 1)
                if keep_labels and source.id_column:
                    ids.append(frame[source.id_column].to_numpy())
                    labels.append(assignment.labels.copy())
                # The frame is the folding thread's from here on: this one no longer reads it.
                if folding is not None:
                    folding.result()
                folding = folder.submit(
                    accumulator.add, frame, assignment.labels, flags.to_numpy(zero_copy_only=False)
                )
                rows += batch.num_rows
                bar.update(batch.num_rows)
        if folding is not None:
            folding.result()
        step["rows"] = rows
    if rows == 0:
        raise DataError("has no rows to profile; expected at least one", data)
    names, descriptions = segment_names(accumulator, model_path, getattr(args, "names", None))
    return Collected(
        profile=accumulator.profile(names),
        names=names,
        descriptions=descriptions,
        sample=np.concatenate(samples) if samples else np.zeros((0, centers.shape[1])),
        sample_labels=np.concatenate(sample_labels) if sample_labels else np.zeros(0, int),
        rfm_grid=grid,
        ids=np.concatenate(ids) if ids else None,
        labels=np.concatenate(labels) if labels else None,
        rows=rows,
        money_column=money,
    )


def segment_names(accumulator, model_path: str, names_file: str | None):
    """Generated names, with the model's ``names.json`` and then ``--names`` laid over them."""
    from gpuseg.naming import NAMES_FILE, apply_names, describe_segments, load_names

    generated = describe_segments(accumulator.profile())
    names = list(generated)
    for path in (Path(model_path) / NAMES_FILE, Path(names_file) if names_file else None):
        if path is None or not path.exists():
            if path is not None and names_file and path == Path(names_file):
                raise DataError("no such names file; expected JSON {\"0\": \"name\"}", str(path))
            continue
        try:
            names = apply_names(names, load_names(path, accumulator.n_clusters))
        except ValueError as exc:
            raise DataError(str(exc).split(": ", 1)[-1], str(path)) from None
    return names, generated


# -- profile ---------------------------------------------------------------------------------------


def run_profile(args: Namespace, console: Console) -> dict[str, Any]:
    """Profile the segments of a model on a customer table; print Markdown, write JSON."""
    target = check_output(args.output, args.overwrite) if args.output else None
    model = load_model(args.model)
    collected = collect(model, args.model, args.data, args, console)
    profile = collected.profile
    markdown = profile.to_markdown()
    console.say(markdown)
    if target is not None:
        document = profile.to_dict()
        document["model"] = args.model
        document["data"] = args.data
        document["generated_names"] = collected.descriptions
        with atomic_output(target, args.overwrite) as temporary:
            temporary.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
        markdown_path = target.with_suffix(".md")
        with atomic_output(markdown_path, True) as temporary:
            temporary.write_text(markdown)
        console.say(f"profile written to {target} and {markdown_path}")
    return {"profile": profile, "names": collected.names}


# -- drift -----------------------------------------------------------------------------------------


def read_labels(path: str) -> pd.DataFrame:
    """``customer_id`` and ``segment`` of a labels directory (or file) written by ``assign``."""
    from gpuseg.commands.pipeline import _check_input_exists

    _check_input_exists(path)
    try:
        table = ds.dataset(path, format="parquet", exclude_invalid_files=False,
                           ignore_prefixes=[".", "_"]).to_table()  # fmt: skip
    except Exception as exc:  # any Arrow failure here is a bad input file
        raise DataError(f"cannot be read as labels Parquet ({str(exc).splitlines()[0]})",
                        path) from None  # fmt: skip
    for name in ("customer_id", "segment"):
        if name not in table.column_names:
            raise DataError("column is missing; expected labels written by gpuseg assign", path,
                            name)  # fmt: skip
    frame = table.select(["customer_id", "segment"]).to_pandas()
    if frame["customer_id"].duplicated().any():
        value = frame.loc[frame["customer_id"].duplicated(), "customer_id"].iloc[0]
        raise DataError(f"duplicated customer id {value!r}; expected one row per customer", path,
                        "customer_id")  # fmt: skip
    return frame


def migration(old: pd.DataFrame, new: pd.DataFrame) -> dict[str, Any]:
    """Migration matrix between two labellings of the same customers, and the PSI of shares."""
    from gpuseg.drift import GONE_COLUMN, NEW_ROW, migration_matrix, psi, psi_level, segment_shares

    table = migration_matrix(old, new)
    matrix = table.drop(index=NEW_ROW, columns=GONE_COLUMN).to_numpy()
    common = int(matrix.sum())
    k = max(matrix.shape)
    p = segment_shares(old["segment"].to_numpy(), k)
    q = segment_shares(new["segment"].to_numpy(), k)
    stability = psi(p, q) if len(old) and len(new) else float("nan")
    diagonal = min(matrix.shape)
    return {
        "matrix": matrix,
        "common": common,
        "only_old": int(table[GONE_COLUMN].sum()),
        "only_new": int(table.loc[NEW_ROW].sum()),
        "stayed": float(np.trace(matrix[:diagonal, :diagonal]) / max(common, 1)),
        "psi": stability,
        "psi_level": psi_level(stability),
        "old_shares": p.tolist(),
        "new_shares": q.tolist(),
    }


def run_drift(args: Namespace, console: Console) -> dict[str, Any]:
    """Compare two labellings (two runs over the same customers): migration matrix and PSI."""
    target = check_output(args.output, args.overwrite) if args.output else None
    old, new = read_labels(args.old), read_labels(args.new)
    result = migration(old, new)
    matrix = result["matrix"]
    console.say(f"customers in both runs: {result['common']:,} (only in old: "
                f"{result['only_old']:,}, only in new: {result['only_new']:,})")  # fmt: skip
    console.say(f"stayed in the same segment number: {result['stayed']:.1%}")
    console.say(f"population stability index of the segment shares: {result['psi']:.4f} "
                f"({result['psi_level']}; < 0.1 stable, 0.1-0.25 moderate, > 0.25 major)")
    console.say("\nmigration matrix (rows: old segment, columns: new segment)")
    console.say("old\\new " + "".join(f"{j:>9}" for j in range(matrix.shape[1])))
    for i, row in enumerate(matrix):
        console.say(f"{i:>7} " + "".join(f"{v:>9,}" for v in row))
    if target is not None:
        document = {**result, "matrix": matrix.tolist(), "old": args.old, "new": args.new}
        with atomic_output(target, args.overwrite) as temporary:
            temporary.write_text(json.dumps(document, indent=1) + "\n")
        console.say(f"\ndrift written to {target}")
    return result


# -- report ----------------------------------------------------------------------------------------


def run_report(args: Namespace, console: Console) -> dict[str, Any]:
    """Write the self-contained HTML report of a model on a customer table."""
    from gpuseg.report import KDiagnostics, ReportData, Segment, project_2d, write_report

    target = check_output(args.output, args.overwrite)
    model = load_model(args.model)
    previous = read_labels(args.previous) if args.previous else None
    diagnostics = _read_k_scores(args.k_scores) if args.k_scores else None
    collected = collect(model, args.model, args.data, args, console,
                        keep_labels=previous is not None)  # fmt: skip
    profile = collected.profile
    revenue = profile.revenue_share
    ambiguous = profile.ambiguous_share
    segments = [
        Segment(
            index=j, name=collected.names[j], customers=int(profile.sizes[j]),
            share=float(profile.shares[j]),
            revenue_share=None if revenue is None else float(revenue[j]),
            ambiguous_share=None if ambiguous is None else float(ambiguous[j]),
            description=_describe(profile, j),
        )
        for j in range(model.n_clusters)
    ]  # fmt: skip
    points, explained = project_2d(collected.sample) if len(collected.sample) > 2 else (None, None)
    data = ReportData(
        title=args.title or f"gpuseg segments: {Path(args.data).name}",
        segments=segments,
        facts=[
            ("data", args.data), ("model", args.model), ("as-of date", model.as_of or "not set"),
            ("customers", f"{collected.rows:,}"), ("segments (k)", str(model.n_clusters)),
            ("features", ", ".join(model.plan.output_names)),
            ("revenue column", collected.money_column or "none"),
            ("ambiguity threshold", f"relative margin < {args.ambiguity:g}"),
        ],
        features=list(profile.feature_names),
        zscores=np.nan_to_num(profile.rank_z),
        means=profile.means,
        k_diagnostics=diagnostics,
        projection=points,
        projection_labels=collected.sample_labels if points is not None else None,
        projection_note="" if points is None else (
            f"{len(points):,} customers drawn at random, projected on the first two principal "
            f"components of the model's features ({explained[0]:.0%} and {explained[1]:.0%} of "
            "the variance)."
        ),
        rfm_grid=collected.rfm_grid,
    )
    if previous is not None:
        current = pd.DataFrame({"customer_id": collected.ids, "segment": collected.labels})
        moved = migration(previous, current)
        data.migration = moved["matrix"]
        data.migration_labels = (
            [f"previous {i}" for i in range(moved["matrix"].shape[0])],
            [f"{j}: {collected.names[j]}" for j in range(moved["matrix"].shape[1])],
        )
        data.facts.append(("previous run", f"{args.previous}: PSI {moved['psi']:.3f}, "
                                           f"{moved['stayed']:.1%} stayed"))  # fmt: skip
    if isinstance(diagnostics, KDiagnostics):
        data.facts.append(("recommended k", f"{diagnostics.recommended} ({diagnostics.reason})"))
    with atomic_output(target, args.overwrite) as temporary:
        write_report(temporary, data)
    console.say(f"report written to {target}")
    return {"report": str(target), "collected": collected}


def _describe(profile, j: int, terms: int = 3) -> str:
    z = np.nan_to_num(profile.rank_z[j])
    order = np.argsort(-np.abs(z), kind="stable")[:terms]
    return ", ".join(f"{profile.feature_names[f]} {z[f]:+.1f} sd" for f in order)


def _read_k_scores(path: str):
    from gpuseg.report import KDiagnostics

    try:
        document = json.loads(Path(path).read_text())
        scores = document["scores"]
        ks = [int(s["k"]) for s in scores]
    except FileNotFoundError:
        raise DataError("no such file; expected the JSON written by gpuseg choose-k -o",
                        path) from None  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"is not a choose-k result ({exc}); expected the JSON written by "
                        "gpuseg choose-k -o", path) from None  # fmt: skip
    metrics = {}
    for key, label in (("inertia", "inertia"), ("calinski_harabasz", "Calinski-Harabasz"),
                       ("davies_bouldin", "Davies-Bouldin"), ("silhouette", "silhouette"),
                       ("smallest_share", "smallest segment share")):  # fmt: skip
        metrics[label] = [s.get(key) for s in scores]
    return KDiagnostics(ks, metrics, document.get("recommended"), document.get("reason", ""))


__all__ = ["CommandError", "run_choose_k", "run_drift", "run_profile", "run_report"]
