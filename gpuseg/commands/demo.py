"""``gpuseg demo``: a generated retail log through every command, in under two minutes."""

from __future__ import annotations

import shutil
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

import numpy as np

from gpuseg.commands._common import CommandError, Console

MARKER = ".gpuseg-demo"
KEY_MEANS = ("recency_days", "frequency", "monetary_total")


def run_demo(args: Namespace, console: Console) -> dict[str, Any]:
    """Generate a log, then run rfm, choose-k, fit, assign, profile and report on it."""
    from gpuseg.commands.analysis import run_choose_k, run_profile, run_report
    from gpuseg.commands.pipeline import check_device, run_assign, run_fit, run_rfm
    from gpuseg.retail import write_transactions

    if args.customers < 10:
        raise CommandError(f"--customers {args.customers}: expected at least 10 customers")
    check_device(args.device)
    out = _prepare(Path(args.out), args.overwrite)
    quiet = Console(quiet=True, progress=console.progress, silent=True)
    paths = {
        "transactions": out / "transactions",
        "customers": out / "customers.parquet",
        "choose_k": out / "choose-k.json",
        "model": out / "model",
        "labels": out / "labels",
        "profile": out / "segments.json",
        "report": out / "report.html",
    }
    started = time.perf_counter()
    timings = {}

    def step(name: str, what: str):
        console.log(f"[{time.perf_counter() - started:5.1f} s] {what}")
        timings[name] = time.perf_counter()

    def done(name: str) -> None:
        timings[name] = time.perf_counter() - timings[name]

    step("generate", f"generating a retail log of {args.customers:,} customers")
    files = write_transactions(paths["transactions"], args.customers, n_files=4,
                               random_state=args.seed)  # fmt: skip
    done("generate")
    step("rfm", "rfm: one row of RFM and behaviour features per customer")
    rfm = run_rfm(Namespace(
        transactions=str(paths["transactions"]), output=str(paths["customers"]),
        customer="customer_id", time="timestamp", amount="amount", order="order_id",
        category="category", channel="channel", quantity="quantity", as_of=None,
        returns="separate", overwrite=False, scheduler=None, workers=None,
    ), quiet)  # fmt: skip
    done("rfm")
    common = {"columns": None, "categorical": None, "id": None, "nan": "error",
              "device": args.device, "seed": args.seed, "persist": "auto"}  # fmt: skip
    step("choose_k", f"choose-k: scoring k in {args.k_range}")
    selection = run_choose_k(Namespace(
        data=str(paths["customers"]), k=args.k_range, output=str(paths["choose_k"]),
        overwrite=False, sample=4_000, min_share=0.03, max_iter=100, **common,
    ), quiet)  # fmt: skip
    done("choose_k")
    k = args.k or selection["recommended"] or 5
    step("fit", f"fit: k={k}")
    run_fit(Namespace(
        data=str(paths["customers"]), output=str(paths["model"]), k=k, overwrite=False,
        max_iter=300, n_init=3, algorithm="auto", scheduler=None, workers=None, **common,
    ), quiet)  # fmt: skip
    done("fit")
    step("assign", "assign: every customer's segment, distance, runner-up and ambiguity")
    run_assign(Namespace(
        model=str(paths["model"]), data=str(paths["customers"]), output=str(paths["labels"]),
        overwrite=False, id=None, ambiguity=0.1, nan="error", device=args.device,
    ), quiet)  # fmt: skip
    done("assign")
    analysis = {"id": None, "money": None, "names": None, "seed": args.seed, "ambiguity": 0.1,
                "nan": "error"}  # fmt: skip
    step("profile", "profile: sizes, revenue, feature means and names")
    profiled = run_profile(Namespace(
        model=str(paths["model"]), data=str(paths["customers"]), output=str(paths["profile"]),
        overwrite=False, **analysis,
    ), quiet)  # fmt: skip
    done("profile")
    step("report", "report: the HTML report")
    run_report(Namespace(
        model=str(paths["model"]), data=str(paths["customers"]), output=str(paths["report"]),
        overwrite=False, k_scores=str(paths["choose_k"]), previous=None,
        title=f"gpuseg demo: {args.customers:,} retail customers", **analysis,
    ), quiet)  # fmt: skip
    done("report")
    total = time.perf_counter() - started

    say = console.say
    say(f"gpuseg demo: {args.customers:,} customers, {_rows(files):,} transactions, as of "
        f"{rfm['as_of']}; k={k} ({'chosen by choose-k' if not args.k else 'given'}); "
        f"{total:.1f} s")  # fmt: skip
    say("")
    _summary(say, profiled["profile"], profiled["names"])
    say("")
    say("where everything went:")
    described = {
        "transactions": f"generated log, {len(files)} Parquet files",
        "customers": "RFM customer table (gpuseg rfm)",
        "choose_k": "scores per k and the recommendation (gpuseg choose-k)",
        "model": "model directory (gpuseg fit)",
        "labels": "segment of every customer (gpuseg assign)",
        "profile": "profile JSON, and Markdown beside it (gpuseg profile)",
        "report": "HTML report: open it in a browser (gpuseg report)",
    }
    step_of = {"transactions": "generate", "customers": "rfm", "model": "fit", "labels": "assign"}
    for key, path in paths.items():
        seconds = timings[step_of.get(key, key)]
        say(f"  {path!s:<36} {described[key]} [{seconds:.1f} s]")
    say("")
    say("the same with the commands:")
    d = out
    for line in (
        f"gpuseg rfm {d}/transactions -o {d}/customers.parquet --order order_id "
        "--category category --channel channel --quantity quantity",
        f"gpuseg choose-k {d}/customers.parquet --k {args.k_range} -o {d}/choose-k.json",
        f"gpuseg fit {d}/customers.parquet -k {k} -o {d}/model",
        f"gpuseg assign {d}/model {d}/customers.parquet -o {d}/labels",
        f"gpuseg profile {d}/model {d}/customers.parquet -o {d}/segments.json",
        f"gpuseg report {d}/model {d}/customers.parquet -o {d}/report.html "
        f"--k-scores {d}/choose-k.json",
    ):
        say(f"  {line}")
    return {"paths": {k: str(v) for k, v in paths.items()}, "seconds": total, "k": k}


def _prepare(out: Path, overwrite: bool) -> Path:
    """Create the demo directory; replace an earlier demo's, refuse anything else."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (out / MARKER).exists() and not overwrite:
            raise CommandError(f"{out}: output already exists and was not written by gpuseg demo; "
                               "pass --overwrite to replace it, or --out another directory")
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("written by gpuseg demo; replaced by the next demo run\n")
    except OSError as exc:
        raise CommandError(f"{out}: cannot write the demo here ({exc.strerror or exc}); expected "
                           "a writable directory") from None  # fmt: skip
    return out


def _rows(files) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(f).num_rows for f in files)


def _summary(say, profile, names) -> None:
    """The segments table: name, customers, shares and the key RFM means."""
    features = list(profile.feature_names)
    shown = [f for f in KEY_MEANS if f in features]
    head = (f"{'segment':<34} {'customers':>9} {'share':>6} {'revenue':>8} {'ambig.':>6} "
            + " ".join(f"{_label(f):>10}" for f in shown))  # fmt: skip
    say(head)
    say("-" * len(head))
    for j in np.argsort(-profile.sizes, kind="stable"):
        revenue = "" if profile.revenue_share is None else f"{profile.revenue_share[j]:.1%}"
        ambiguous = "" if profile.ambiguous_share is None else f"{profile.ambiguous_share[j]:.1%}"
        means = " ".join(f"{profile.means[j, features.index(f)]:>10.4g}" for f in shown)
        name = f"{j}: {names[j]}"
        name = name if len(name) <= 34 else name[:33] + "\u2026"
        say(f"{name:<34} {int(profile.sizes[j]):>9,} {profile.shares[j]:>6.1%} {revenue:>8} "
            f"{ambiguous:>6} {means}")  # fmt: skip
    say("(revenue: share of monetary_total; ambig.: share of customers nearly as close to "
        "another segment; last columns: segment means)")  # fmt: skip


def _label(feature: str) -> str:
    return {"recency_days": "recency d", "frequency": "orders", "monetary_total": "spend"}.get(
        feature, feature[:10]
    )
