"""Segment-analysis benchmark (issue 6): every analysis piece on a generated 10M-customer table.

Generates once two monthly RFM-like customer tables (see "The tables") as many Parquet files, then
times each piece at full scale in this process, in order:

- ``fit``: :func:`gpuseg.plan.default_rfm_plan` on the eight behaviour columns, fitted in one
  streamed pass, and ``KMeans(6)`` fitted through ``ParquetSource(plan=...)``;
- ``labels``: :func:`gpuseg.pipeline.assign`, labels Parquet with the ambiguous flags;
- ``profiles``: a :class:`gpuseg.profiles.ProfileAccumulator` fed file by file with the raw
  columns and the labels, and the segments named by :func:`gpuseg.naming.describe_segments`;
- ``choose_k``: :func:`gpuseg.choose_k.evaluate_k` over k = 2..10 (silhouette on a sample of
  ``--silhouette-sample`` rows);
- ``micro_macro``: ``KMeans(500)`` micro-segments, then Ward merging to 6 macro segments
  (:func:`gpuseg.hierarchy.merge_segments`);
- ``stability``: :func:`gpuseg.stability.stability` at k = 6, 3 seeds on all rows and 3 bootstrap
  refits of an evaluation sample of ``--stability-sample`` rows;
- ``drift``: next month's table labelled by this month's model, the migration matrix, the PSI of
  the segment shares, :func:`gpuseg.drift.spread_over`, and the centre shift to a refit on next
  month (matched by :func:`gpuseg.drift.centre_shift`, in the plan's units: month-1 standard
  deviations);
- ``prospects``: :func:`gpuseg.prospects.train_prospect_classifier` on the descriptive columns
  (region, channel, age band) of ``--prospect-sample`` customers, with its held-out accuracy.

``--skip`` leaves pieces out (not ``fit``, which every other piece uses); ``profiles``, ``drift``
and ``prospects`` then reuse the labels of an earlier run when ``labels`` is skipped. Results are
written after every piece, so a long run that fails late keeps what it measured.

The tables
----------
Customers are drawn from a mixture of hidden behaviour types shaped like those of
:mod:`gpuseg.retail` (one-time, occasional, regular, loyal, big spenders, lapsed, new), directly as
per-customer features rather than through a transaction log (10M customers in minutes):
activity window, order rate (gamma-distributed around the type's), ``frequency`` (1 + Poisson),
``recency_days`` and ``tenure_days`` (whole days up to the as-of date), a log-normal spend level
giving ``monetary_avg`` and ``monetary_total``, ``n_categories`` and ``category_entropy``, and a
zero-inflated ``return_rate``. The descriptive columns ``region``, ``channel`` and ``age_band``
are drawn with type-dependent probabilities, so they predict the segment only in part.

Next month's table holds the same customers 30 days later, with drift built in: 2% are gone;
customers still active buy during the month at their own rate (occasional customers three times
as often: a promotion) and at 15% higher prices, so their recency restarts and their frequency
and spend grow; a win-back campaign brings 10% of the one-time buyers back for a second order;
everyone else's recency grows by 30 days; 5% new customers join, half of them of the "new" type.
Each file is generated from its own seed, customer ids are global, and a ``_COMPLETE`` marker is
written last.

Usage::

    python benchmarks/bench_segments.py
    python benchmarks/bench_segments.py --customers 50_000 --data /tmp/seg-small \\
        --out /tmp/segments.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

RESULTS_DIR = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

ID = "customer_id"
FEATURES = (
    "recency_days",
    "frequency",
    "monetary_total",
    "monetary_avg",
    "tenure_days",
    "n_categories",
    "category_entropy",
    "return_rate",
)
DESCRIPTIVE = ("region", "channel", "age_band")
PIECES = ("fit", "labels", "profiles", "choose_k", "micro_macro", "stability", "drift", "prospects")
N_CLUSTERS = 6
N_MICRO = 500
PERIOD_DAYS = 730
MONTH_DAYS = 30
FIRST_ID = 100_000
# New customers of next month get ids from here (file i: NEW_ID + i * rows_per_file + j).
NEW_ID = 10_000_000_000

# Hidden types: share, orders per year, median spend per order, spend spread (log scale),
# start of activity and length of activity (fractions of the period), mean return rate, breadth
# (how fast new categories are tried).
# fmt: off
_TYPES = np.array([
    # share rate  spend  sigma from0 from1 for0  for1  returns breadth
    [0.34,  0.0,  45.0,  0.70, 0.00, 1.00, 0.00, 0.00, 0.06,   0.3],  # one-time
    [0.22,  2.5,  50.0,  0.60, 0.00, 0.70, 0.30, 1.00, 0.07,   0.6],  # occasional
    [0.16,  8.0,  55.0,  0.50, 0.00, 0.50, 0.50, 1.00, 0.08,   1.0],  # regular
    [0.08, 24.0,  60.0,  0.45, 0.00, 0.30, 0.70, 1.00, 0.05,   2.0],  # loyal
    [0.03, 10.0, 260.0,  0.60, 0.00, 0.60, 0.40, 1.00, 0.12,   1.2],  # big spender
    [0.10,  6.0,  48.0,  0.55, 0.00, 0.30, 0.10, 0.35, 0.10,   0.8],  # lapsed
    [0.07, 12.0,  48.0,  0.55, 0.85, 0.97, 1.00, 1.00, 0.07,   0.8],  # new
])
# fmt: on
_ONE_TIME, _OCCASIONAL = 0, 1
_REGIONS = ("north", "south", "east", "west", "central", "islands")
_CHANNELS = ("store", "web", "app", "marketplace")
_AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")


def _int(text: str) -> int:
    return int(text.replace("_", ""))


# -- the tables ------------------------------------------------------------------------------------


def _descriptive_probabilities(values: tuple[str, ...], salt: int) -> np.ndarray:
    """Per type, probabilities of each value: a common base tilted by a fixed per-type factor."""
    rng = np.random.default_rng(salt)
    base = rng.dirichlet(np.full(len(values), 4.0))
    tilted = base * np.exp(1.5 * rng.standard_normal((len(_TYPES), len(values))))
    return tilted / tilted.sum(axis=1, keepdims=True)


_DESCRIPTIVE_P = {
    name: _descriptive_probabilities(values, salt)
    for salt, (name, values) in enumerate(
        zip(DESCRIPTIVE, (_REGIONS, _CHANNELS, _AGE_BANDS), strict=True)
    )
}


def _draw(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One index per row of ``probabilities``."""
    u = rng.uniform(size=(len(probabilities), 1))
    return np.minimum(
        (u > np.cumsum(probabilities, axis=1)).sum(axis=1), probabilities.shape[1] - 1
    )


def _customers(rng: np.random.Generator, n: int, kind: np.ndarray) -> dict[str, np.ndarray]:
    """Latent state of ``n`` customers of the given types at the end of the period.

    Every random draw is kept in the state, so a customer's columns change from one month to the
    next only through what happens to them (orders, time passing).
    """
    t = _TYPES[kind]
    begin = rng.uniform(t[:, 4], t[:, 5]) * PERIOD_DAYS
    end = np.minimum(begin + rng.uniform(t[:, 6], t[:, 7]) * PERIOD_DAYS, PERIOD_DAYS - 0.5)
    rate = t[:, 1] * rng.gamma(2.0, 0.5, n)
    frequency = 1 + rng.poisson(rate * (end - begin) / 365.0)
    # The last order: shortly before the end of activity (one-time buyers: their only order).
    gap = rng.exponential(365.0 / np.maximum(rate, 0.5))
    returns = np.clip(t[:, 8] * rng.gamma(1.5, 1 / 1.5, n), 0.0, 0.6)
    return {
        "kind": kind,
        "begin": begin,
        "end": end,
        "rate": rate,
        "frequency": frequency,
        "last": np.where(frequency > 1, np.maximum(end - gap, begin), begin),
        "spend": t[:, 2] * np.exp(t[:, 3] * rng.standard_normal(n)),
        "spend_noise": np.exp(0.3 * rng.standard_normal(n)),
        "breadth": t[:, 9] * rng.uniform(0.3, 1.0, n),
        "evenness": rng.beta(4.0, 2.0, n),
        "returns": returns,
        "returns_draw": rng.uniform(size=n),
        "return_rate": np.clip(rng.gamma(2.0, np.maximum(returns, 1e-3) / 2.0), 0.0, 1.0),
    }


def _features(state: dict, as_of: float) -> dict[str, np.ndarray]:
    """The RFM-like columns of the customers in ``state`` at day ``as_of``."""
    frequency = state["frequency"]
    monetary_total = np.round(state["spend"] * frequency * state["spend_noise"], 2) + 0.01
    n_categories = 1 + np.rint(11 * (1.0 - np.exp(-0.3 * state["breadth"] * (frequency - 1))))
    has_returns = state["returns_draw"] < 1.0 - np.exp(-3.0 * state["returns"] * frequency)
    return {
        "recency_days": np.maximum(np.ceil(as_of - state["last"]), 1).astype(np.int64),
        "frequency": frequency.astype(np.int64),
        "monetary_total": monetary_total,
        "monetary_avg": monetary_total / frequency,
        "tenure_days": np.maximum(np.ceil(as_of - state["begin"]), 1).astype(np.int64),
        "n_categories": n_categories.astype(np.int64),
        "category_entropy": np.log(n_categories) * state["evenness"],
        "return_rate": np.where(has_returns, state["return_rate"], 0.0),
    }


def _next_month(rng: np.random.Generator, state: dict) -> dict:
    """The latent state 30 days later: orders during the month, at 15% higher prices.

    A promotion triples the rate of occasional customers, and a win-back campaign brings back
    10% of the one-time buyers for a second order.
    """
    state = dict(state)
    active = state["end"] >= PERIOD_DAYS - 60
    rate = state["rate"] * np.where(state["kind"] == _OCCASIONAL, 3.0, 1.0)
    expected = rate * MONTH_DAYS / 365.0
    draw = rng.uniform(size=len(rate))
    won_back = (state["kind"] == _ONE_TIME) & (draw < 0.10)
    buys = (active & (draw < 1.0 - np.exp(-expected))) | won_back
    orders = np.where(buys, 1 + rng.poisson(expected / 2), 0)
    frequency = state["frequency"] + orders
    state["spend"] = state["spend"] * (state["frequency"] + 1.15 * orders) / frequency
    state["frequency"] = frequency
    bought_on = PERIOD_DAYS + rng.uniform(0, MONTH_DAYS, len(rate))
    state["last"] = np.where(buys, bought_on, state["last"])
    return state


def _descriptive(rng: np.random.Generator, kind: np.ndarray) -> dict[str, pa.Array]:
    """Region, channel and age band, drawn with the probabilities of each customer's type."""
    columns = {}
    for name, values in zip(DESCRIPTIVE, (_REGIONS, _CHANNELS, _AGE_BANDS), strict=True):
        codes = _draw(rng, _DESCRIPTIVE_P[name][kind]).astype(np.int8)
        columns[name] = pa.DictionaryArray.from_arrays(codes, pa.array(values))
    return columns


def make_tables(n: int, seed: int, first_row: int) -> tuple[pa.Table, pa.Table]:
    """Month 1 and month 2 tables of ``n`` customers whose global row numbers start at first_row.

    Month 2 holds the 98% of them still there, 30 days later, then 5% new customers.
    """
    rng = np.random.default_rng(seed)
    shares = _TYPES[:, 0] / _TYPES[:, 0].sum()
    kind = rng.choice(len(_TYPES), size=n, p=shares)
    state = _customers(rng, n, kind)
    ids = FIRST_ID + first_row + np.arange(n, dtype=np.int64)
    descriptive = _descriptive(rng, kind)
    month1 = pa.table({ID: ids, **_features(state, PERIOD_DAYS), **descriptive})

    kept = rng.uniform(size=n) >= 0.02
    later = {key: value[kept] for key, value in _next_month(rng, state).items()}
    stayed = pa.table(
        {
            ID: ids[kept],
            **_features(later, PERIOD_DAYS + MONTH_DAYS),
            **{name: column.filter(pa.array(kept)) for name, column in descriptive.items()},
        }
    )
    n_new = round(0.05 * n)
    new_kind = rng.choice(len(_TYPES), size=n_new, p=shares)
    new_kind[rng.uniform(size=n_new) < 0.5] = len(_TYPES) - 1  # half of them of the "new" type
    joined = _customers(rng, n_new, new_kind)
    joined["begin"] = PERIOD_DAYS + rng.uniform(0, MONTH_DAYS - 1, n_new)
    joined["last"] = np.minimum(
        joined["begin"] + rng.exponential(10.0, n_new), PERIOD_DAYS + MONTH_DAYS - 0.5
    )
    joined["frequency"] = 1 + rng.poisson(0.3, n_new)
    new = pa.table(
        {
            ID: NEW_ID + first_row + np.arange(n_new, dtype=np.int64),
            **_features(joined, PERIOD_DAYS + MONTH_DAYS),
            **_descriptive(rng, new_kind),
        }
    )
    return month1, pa.concat_tables([stayed, new])


def generate(data: Path, customers: int, rows_per_file: int, seed: int) -> dict:
    """Write both months as one Parquet file per ``rows_per_file`` customers, unless complete."""
    from _datasets import existing_copy

    marker = data / "_COMPLETE"
    wanted = {"customers": customers, "rows_per_file": rows_per_file, "seed": seed}
    about = existing_copy(marker, wanted)
    if about is not None:
        return {**about, "skipped": True}
    started = time.perf_counter()
    seeds = np.random.SeedSequence(seed).generate_state(
        (customers + rows_per_file - 1) // rows_per_file
    )
    rows = {"month1": 0, "month2": 0}
    for month in rows:
        (data / month).mkdir(parents=True, exist_ok=True)
        for stale in (data / month).glob("*.parquet"):
            stale.unlink()
    for index, first in enumerate(range(0, customers, rows_per_file)):
        tables = make_tables(min(rows_per_file, customers - first), int(seeds[index]), first)
        for month, table in zip(rows, tables, strict=True):
            pq.write_table(
                table, data / month / f"part-{index:05d}.parquet", row_group_size=1 << 18
            )
            rows[month] += table.num_rows
    about = {**wanted, "rows": rows, "files": index + 1, "seconds": time.perf_counter() - started}
    marker.write_text(json.dumps(about, indent=1))
    return {**about, "skipped": False}


# -- pieces ----------------------------------------------------------------------------------------


class Run:
    """What the pieces share: paths, the plan, the model, the labels, and the options."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.seed = args.seed
        self.month1 = sorted(str(p) for p in (args.data / "month1").glob("*.parquet"))
        self.month2 = sorted(str(p) for p in (args.data / "month2").glob("*.parquet"))
        self.work = args.data / "work"
        self.plan = None
        self.model = None

    def source(self, files: list[str], persist: bool | str = "auto"):
        from gpuseg.parquet import ParquetSource

        return ParquetSource(files, id_column=ID, plan=self.plan, persist=persist)

    def labels_files(self, name: str) -> list[Path]:
        """The files of a complete labels directory, in input order (from its manifest)."""
        directory = self.work / name
        manifest = directory / "_SUCCESS"
        if not manifest.exists():
            raise RuntimeError(f"{directory} holds no complete labels; do not skip 'labels'.")
        return [directory / name for name in json.loads(manifest.read_text())["files"]]


def piece_fit(run: Run) -> dict:
    """Fit the plan in one streamed pass and KMeans(6) through ParquetSource; save the model."""
    from gpuseg import KMeans
    from gpuseg.model import SegmentationModel
    from gpuseg.plan import default_rfm_plan

    started = time.perf_counter()
    plan = default_rfm_plan(list(FEATURES))
    plan.fit(ds.dataset(run.month1, format="parquet").to_batches(columns=plan.input_columns))
    plan_seconds = time.perf_counter() - started
    run.plan = plan
    started = time.perf_counter()
    # Compiles the kernels outside the timers, on rows read by a source of their own: the timed
    # source starts cold (its first pass decodes the files, and keeps the blocks for the next).
    warm = run.source(run.month1, persist=False).sample(20_000, np.random.default_rng(run.seed)).X
    KMeans(N_CLUSTERS, random_state=run.seed).fit(warm)
    warm_seconds = time.perf_counter() - started
    started = time.perf_counter()
    source = run.source(run.month1)
    run.model = KMeans(N_CLUSTERS, random_state=run.seed).fit(source)
    kmeans_seconds = time.perf_counter() - started
    SegmentationModel.from_estimator(plan, run.model, id_column=ID).save(
        run.work / "model", overwrite=True
    )
    return {
        "seconds": {"plan": plan_seconds, "kmeans": kmeans_seconds},
        "warm_up_seconds": warm_seconds,
        "rows": source.n_samples,
        "features": plan.output_names,
        "passes": run.model.n_iter_,
        "rows_per_s": source.n_samples * run.model.n_iter_ / kmeans_seconds,
        "cluster_sizes": run.model.cluster_sizes_.tolist(),
    }


def piece_labels(run: Run) -> dict:
    """Write the labels Parquet of month 1 with pipeline.assign."""
    from gpuseg.pipeline import assign

    started = time.perf_counter()
    report = assign(run.model, run.source(run.month1), run.work / "labels-month1", overwrite=True)
    seconds = time.perf_counter() - started
    ambiguous = pq.read_table(run.work / "labels-month1", columns=["ambiguous"])["ambiguous"]
    return {
        "seconds": seconds,
        "rows": report.n_rows,
        "rows_per_s": report.n_rows / seconds,
        "files": len(report.files),
        "ambiguous_share": float(ambiguous.to_numpy().mean()),
    }


def piece_profiles(run: Run) -> dict:
    """Stream raw columns and labels file by file into a ProfileAccumulator; name."""
    from gpuseg.naming import describe_segments
    from gpuseg.profiles import ProfileAccumulator

    labels_files = run.labels_files("labels-month1")
    started = time.perf_counter()
    accumulator = ProfileAccumulator(list(FEATURES), N_CLUSTERS, money_column="monetary_total")
    for data_file, labels_file in zip(run.month1, labels_files, strict=True):
        frame = pq.read_table(data_file, columns=[ID, *FEATURES]).to_pandas()
        labels = pq.read_table(labels_file, columns=[ID, "segment", "ambiguous"])
        if not np.array_equal(labels[ID].to_numpy(), frame[ID].to_numpy()):
            raise RuntimeError(f"{labels_file} is not in the row order of {data_file}.")
        accumulator.add(frame, labels["segment"].to_numpy(), labels["ambiguous"].to_numpy())
    accumulate_seconds = time.perf_counter() - started
    started = time.perf_counter()
    names = describe_segments(accumulator.profile())
    profile = accumulator.profile(names)
    name_seconds = time.perf_counter() - started
    return {
        "seconds": {"accumulate": accumulate_seconds, "profile_and_names": name_seconds},
        "rows_per_s": accumulator.n_rows / accumulate_seconds,
        "names": names,
        "shares": profile.shares.tolist(),
        "revenue_shares": profile.revenue_share.tolist(),
        "ambiguous_shares": profile.ambiguous_share.tolist(),
        "medians_exact": profile.medians_exact,
    }


def piece_choose_k(run: Run) -> dict:
    """Score k = 2..10 with evaluate_k and keep its recommendation."""
    from gpuseg.choose_k import evaluate_k

    sample = run.args.silhouette_sample
    started = time.perf_counter()
    selection = evaluate_k(
        run.source(run.month1), range(2, 11), random_state=run.seed, sample_size=sample
    )
    seconds = time.perf_counter() - started
    summary = selection.to_dict()
    return {
        "seconds": seconds,
        "ks": list(range(2, 11)),
        "recommended": summary["recommended"],
        "reason": summary["reason"],
        "silhouette_sample_size": summary["silhouette_sample_size"],
        "scores": [
            {
                key: score[key]
                for key in (
                    "k",
                    "calinski_harabasz",
                    "davies_bouldin",
                    "silhouette",
                    "smallest_share",
                )
            }
            for score in summary["scores"]
        ],
        "passes": {s.k: s.model.n_iter_ for s in selection.scores},
    }


def piece_micro_macro(run: Run) -> dict:
    """Fit 500 micro-segments, then merge them into 6 by weighted Ward linkage."""
    from sklearn.metrics import adjusted_rand_score

    from gpuseg import KMeans
    from gpuseg.hierarchy import merge_segments
    from gpuseg.kernels import uses_gemm

    source = run.source(run.month1)
    started = time.perf_counter()
    micro = KMeans(N_MICRO, random_state=run.seed, max_iter=run.args.micro_max_iter).fit(source)
    micro_seconds = time.perf_counter() - started
    started = time.perf_counter()
    hierarchy = merge_segments(micro.cluster_centers_, micro.cluster_sizes_, N_CLUSTERS)
    ward_seconds = time.perf_counter() - started
    sample = source.sample(100_000, np.random.default_rng(run.seed)).X
    macro = hierarchy.macro_labels(micro.predict(sample))
    return {
        "seconds": {"micro_fit": micro_seconds, "ward": ward_seconds},
        "n_micro": N_MICRO,
        "n_macro": N_CLUSTERS,
        "kernel_path": "gemm" if uses_gemm(N_MICRO, source.n_features) else "direct",
        "passes": micro.n_iter_,
        "max_iter": run.args.micro_max_iter,
        "rows_per_s": source.n_samples * micro.n_iter_ / micro_seconds,
        "macro_shares": (hierarchy.macro_weights / hierarchy.macro_weights.sum()).tolist(),
        "ari_macro_vs_k6": adjusted_rand_score(run.model.predict(sample), macro),
        "ari_sample_size": len(sample),
    }


def piece_stability(run: Run) -> dict:
    """ARI across 3 seeds and 3 bootstrap refits at k = 6."""
    from gpuseg.stability import stability

    started = time.perf_counter()
    table = stability(
        run.source(run.month1),
        [N_CLUSTERS],
        n_seeds=3,
        n_bootstrap=3,
        sample_size=run.args.stability_sample,
        random_state=run.seed,
    )
    seconds = time.perf_counter() - started
    row = table.loc[N_CLUSTERS]
    return {
        "seconds": seconds,
        "k": N_CLUSTERS,
        "seed_ari_mean": float(row["seed_ari_mean"]),
        "seed_ari_min": float(row["seed_ari_min"]),
        "bootstrap_ari_mean": float(row["bootstrap_ari_mean"]),
        "bootstrap_ari_min": float(row["bootstrap_ari_min"]),
        "n_seeds": 3,
        "n_bootstrap": 3,
        "sample_size": int(row["sample_size"]),
    }


def piece_drift(run: Run) -> dict:
    """Label month 2 with month 1's model; migration, PSI, spread and centre shift."""
    from gpuseg import KMeans
    from gpuseg.drift import centre_shift, migration_matrix, psi, psi_level, spread_over
    from gpuseg.pipeline import assign

    old_dir, new_dir = run.work / "labels-month1", run.work / "labels-month2"
    run.labels_files("labels-month1")
    seconds = {}
    started = time.perf_counter()
    source = run.source(run.month2)
    assign(run.model, source, new_dir, overwrite=True)
    seconds["labels_month2"] = time.perf_counter() - started

    started = time.perf_counter()
    matrix = migration_matrix(old_dir, new_dir, n_old=N_CLUSTERS, n_new=N_CLUSTERS)
    old_sizes = matrix.sum(axis=1).to_numpy()[:N_CLUSTERS]
    new_sizes = matrix.sum(axis=0).to_numpy()[:N_CLUSTERS]
    index = psi(old_sizes, new_sizes)
    seconds["migration_and_psi"] = time.perf_counter() - started

    started = time.perf_counter()
    spread = spread_over(run.model, source)
    seconds["spread_over"] = time.perf_counter() - started

    started = time.perf_counter()
    refit = KMeans(N_CLUSTERS, random_state=run.seed).fit(source)
    shift = centre_shift(
        run.model.cluster_centers_, refit.cluster_centers_, feature_names=run.plan.output_names
    )
    seconds["refit_and_centre_shift"] = time.perf_counter() - started
    common = matrix.iloc[:N_CLUSTERS, :N_CLUSTERS].to_numpy()
    return {
        "seconds": seconds,
        "rows_month2": source.n_samples,
        "migration_matrix": {
            "rows_old_then_new": [str(i) for i in matrix.index],
            "columns_new_then_gone": [str(c) for c in matrix.columns],
            "counts": matrix.to_numpy().tolist(),
        },
        "stayed_share": float(np.trace(common) / common.sum()),
        "psi": index,
        "psi_level": psi_level(index),
        "spread_psi_vs_fit": spread.psi,
        "spread_mean_distance": spread.mean_distance.tolist(),
        "centre_shift_distance": shift.distance.tolist(),
        "centre_shift_units": "standard deviations of month 1 (the plan's scale)",
    }


def piece_prospects(run: Run) -> dict:
    """Train and score the segment classifier on the descriptive columns."""
    from gpuseg.prospects import train_prospect_classifier

    labels_files = run.labels_files("labels-month1")
    started = time.perf_counter()
    frame = pq.read_table(run.month1, columns=[ID, *DESCRIPTIVE]).to_pandas()
    labels = pq.read_table(labels_files, columns=[ID, "segment"])
    if not np.array_equal(labels[ID].to_numpy(), frame.pop(ID).to_numpy()):
        raise RuntimeError("the labels are not in the row order of the customer table.")
    labels = labels["segment"].to_numpy()
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    clf = train_prospect_classifier(
        frame, labels, random_state=run.seed, max_rows=run.args.prospect_sample
    )
    train_seconds = time.perf_counter() - started
    return {
        "seconds": {"read": read_seconds, "train_and_score": train_seconds},
        "sample_size": run.args.prospect_sample,
        **clf.report(),
    }


# -- main ------------------------------------------------------------------------------------------


def _total_seconds(result: dict) -> float | None:
    seconds = result.get("seconds")
    if isinstance(seconds, dict):
        return float(sum(seconds.values()))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=_int, default=10_000_000)
    parser.add_argument("--rows-per-file", type=_int, default=500_000)
    parser.add_argument("--data", type=Path, default=Path("data/customers-10m-rfm"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--silhouette-sample", type=_int, default=10_000)
    parser.add_argument("--stability-sample", type=_int, default=100_000)
    parser.add_argument("--prospect-sample", type=_int, default=200_000)
    parser.add_argument("--micro-max-iter", type=int, default=100)
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=PIECES[1:],
        metavar="PIECE",
        help=f"pieces to leave out, among {', '.join(PIECES[1:])}",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "segments.json")
    args = parser.parse_args(argv)
    from _machine import machine_info, own_peak_rss_gib

    generated = generate(args.data, args.customers, args.rows_per_file, args.seed)
    print("generate", json.dumps(generated), file=sys.stderr)
    results = {
        "machine": machine_info(),
        "customers": args.customers,
        "n_clusters": N_CLUSTERS,
        "seed": args.seed,
        "data": str(args.data),
        "generate": generated,
        "pieces": {},
    }
    run = Run(args)
    run.work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for piece in PIECES:
        if piece in args.skip:
            continue
        try:
            result = globals()[f"piece_{piece}"](run)
        except Exception as exc:
            if piece == "fit":
                raise
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["peak_rss_gib_so_far"] = own_peak_rss_gib()
        results["pieces"][piece] = result
        print(piece, json.dumps(result), file=sys.stderr)
        results["seconds"] = {
            name: _total_seconds(result) for name, result in results["pieces"].items()
        }
        args.out.write_text(json.dumps(results, indent=1, default=float))
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
