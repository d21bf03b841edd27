"""The ``gpuseg`` command: customer segmentation jobs from the shell or a scheduler.

With :mod:`gpuseg.commands` (the bodies of the commands) this is the only part of gpuseg that
prints. Bad input ends the command with exit status 2 and one line naming the file, the column
and what was expected; a traceback means a bug (set GPUSEG_DEBUG=1 to see one for user errors
too).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from gpuseg import __version__
from gpuseg.commands._common import NAN_POLICIES, CommandError, Console
from gpuseg.errors import DataError

DEVICES = ("auto", "cpu", "cuda")
EXIT_USER_ERROR = 2

# The positional arguments of every command: required, but a --config file may give them.
REQUIRED = {
    "rfm": ("transactions", "output"),
    "fit": ("data", "output"),
    "assign": ("model", "data", "output"),
    "choose-k": ("data",),
    "profile": ("model", "data"),
    "drift": ("old", "new"),
    "report": ("model", "data", "output"),
}

EXAMPLES = {
    "rfm": """examples:
  gpuseg rfm log/ -o customers.parquet
  gpuseg rfm 's3://shop/log/2024-*.parquet' -o customers.parquet --as-of 2024-07-01 \\
      --customer client --time ts --amount total --order order_no --category dept""",
    "fit": """examples:
  gpuseg fit customers.parquet -k 6 -o model/
  gpuseg fit customers/ -k 8 -o model/ --columns recency_days,frequency,monetary_total \\
      --seed 7 --nan drop
  gpuseg fit customers/ -k 8 -o model/ --workers 4          # a local Dask cluster
  gpuseg fit customers/ -k 8 -o model/ --scheduler tcp://scheduler:8786""",
    "assign": """examples:
  gpuseg assign model/ customers-2024-07.parquet -o labels/
  gpuseg assign model/ customers/ -o labels/ --ambiguity 0.15 --overwrite""",
    "choose-k": """examples:
  gpuseg choose-k customers.parquet --k 2..12
  gpuseg choose-k customers.parquet --k 3,4,6,8 --min-share 0.05 -o choose-k.json""",
    "profile": """examples:
  gpuseg profile model/ customers.parquet
  gpuseg profile model/ customers.parquet -o segments.json   # also writes segments.md""",
    "drift": """examples:
  gpuseg drift labels-2024-06/ labels-2024-07/
  gpuseg drift labels-2024-06/ labels-2024-07/ -o drift.json""",
    "report": """examples:
  gpuseg report model/ customers.parquet -o report.html
  gpuseg report model/ customers.parquet -o report.html --k-scores choose-k.json \\
      --previous labels-2024-06/""",
    "bench": """examples:
  gpuseg bench                                  # 200,000 x 16, k=8, gpuseg against peers
  gpuseg bench --rows 1000000 -k 16 -o bench.json --peers sklearn faiss""",
    "demo": """examples:
  gpuseg demo                                   # about 150,000 customers, under two minutes
  gpuseg demo --customers 1000000 --out /tmp/demo --overwrite""",
}

JOB_FILE_HELP = """Every option can also come from a job file: gpuseg fit --config job.toml,
where job.toml holds shared top-level keys (each command takes those it has) and a
[fit] table for this one
(long option names, with dashes or underscores; positional arguments by name:
data = "customers/", output = "model/").
Options given on the command line win."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gpuseg`` command."""
    parser = argparse.ArgumentParser(
        prog="gpuseg",
        description="Customer segmentation at scale: RFM features, k-means on CPU or GPU, "
        "profiles, names and an HTML report.",
        epilog="Run 'gpuseg COMMAND --help' for the options and examples of a command.",
    )
    parser.add_argument("--version", action="version", version=f"gpuseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".",
            epilog=f"{EXAMPLES[name]}\n\n{JOB_FILE_HELP}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        sub.add_argument("--config", metavar="JOB.toml", help="read options from a TOML job file")
        sub.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
        return sub

    rfm = command("rfm", "turn a transaction log into an RFM customer table")
    rfm.add_argument("transactions", nargs="?", metavar="TRANSACTIONS",
                     help="Parquet file, directory, glob or URL of the log")  # fmt: skip
    _output(rfm, "FEATURES", "the customer table to write (one Parquet file)")
    for option, default, what in (
        ("--customer", "customer_id", "customer id column"),
        ("--time", "timestamp", "timestamp column (datetime)"),
        ("--amount", "amount", "amount column (negative for returns)"),
        ("--order", None, "order id column (frequency = distinct orders; default: distinct days)"),
        ("--category", None, "product category column (diversity features)"),
        ("--channel", None, "sales channel column"),
        ("--quantity", None, "units column"),
    ):
        rfm.add_argument(option, default=default, metavar="COLUMN",
                         help=f"{what} (default: {default})")  # fmt: skip
    rfm.add_argument("--as-of", metavar="DATE",
                     help="date the table holds for (default: the day after the last row); "
                     "saved in the file's metadata")  # fmt: skip
    rfm.add_argument("--returns", choices=("separate", "net", "drop"), default="separate",
                     help="what negative amounts do (default: separate)")  # fmt: skip
    _dask(rfm)

    fit = command("fit", "fit the feature plan and k-means, and save the model directory")
    fit.add_argument("data", nargs="?", metavar="DATA", help="customer table (Parquet)")
    _output(fit, "MODEL", "model directory to write")
    fit.add_argument("-k", type=int, metavar="K", help="number of segments")
    _features(fit)
    _device(fit)
    fit.add_argument("--max-iter", type=int, default=300, help="most Lloyd passes (default 300)")
    fit.add_argument("--n-init", type=int, default=3, help="seeding tries (default 3)")
    fit.add_argument("--algorithm", choices=("auto", "lloyd", "minibatch"), default="auto",
                     help="k-means variant (default auto)")  # fmt: skip
    _persist(fit)
    _dask(fit)

    assign = command("assign", "write the segment of every customer with a saved model")
    assign.add_argument("model", nargs="?", metavar="MODEL", help="model directory")
    assign.add_argument("data", nargs="?", metavar="DATA", help="customer table (Parquet)")
    _output(assign, "LABELS", "labels directory to write")
    assign.add_argument("--id", metavar="COLUMN", help="customer id column (default: the model's)")
    _ambiguity(assign)
    _nan(assign)
    _device(assign, seed=False)

    choose = command("choose-k", "score a range of k and recommend one")
    choose.add_argument("data", nargs="?", metavar="DATA", help="customer table (Parquet)")
    choose.add_argument("--k", default="2..12", metavar="RANGE",
                        help="k to try: 2..16, or a list 3,5,8 (default 2..12)")  # fmt: skip
    choose.add_argument("-o", "--output", metavar="JSON", help="write the scores as JSON")
    choose.add_argument("--overwrite", action="store_true", help="replace an existing output")
    choose.add_argument("--sample", type=int, default=10_000,
                        help="rows of the silhouette sample (default 10,000)")  # fmt: skip
    choose.add_argument("--min-share", type=float, default=0.02,
                        help="smallest acceptable segment share (default 0.02)")  # fmt: skip
    choose.add_argument("--max-iter", type=int, default=100, help="most passes per fit")
    _features(choose)
    _device(choose)
    _persist(choose)

    profile = command("profile", "profile the segments: sizes, revenue, feature means, names")
    profile.add_argument("model", nargs="?", metavar="MODEL", help="model directory")
    profile.add_argument("data", nargs="?", metavar="DATA", help="customer table (Parquet)")
    profile.add_argument("-o", "--output", metavar="JSON",
                         help="write the profile as JSON (and Markdown beside it)")  # fmt: skip
    profile.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _analysis(profile)

    drift = command("drift", "compare two runs' labels: migration matrix and stability index")
    drift.add_argument("old", nargs="?", metavar="OLD", help="labels of the earlier run")
    drift.add_argument("new", nargs="?", metavar="NEW", help="labels of the later run")
    drift.add_argument("-o", "--output", metavar="JSON", help="write the result as JSON")
    drift.add_argument("--overwrite", action="store_true", help="replace an existing output")

    report = command("report", "write the self-contained HTML report")
    report.add_argument("model", nargs="?", metavar="MODEL", help="model directory")
    report.add_argument("data", nargs="?", metavar="DATA", help="customer table (Parquet)")
    _output(report, "report.html", "HTML file to write")
    report.add_argument("--k-scores", metavar="JSON", help="choose-k -o output, for the k curves")
    report.add_argument("--previous", metavar="LABELS",
                        help="labels of a previous run, for the migration matrix")  # fmt: skip
    report.add_argument("--title", help="page title")
    _analysis(report)

    bench = command("bench", "compare gpuseg with its peers on generated data")
    bench.add_argument("--rows", type=int, default=200_000, help="rows (default 200,000)")
    bench.add_argument("--features", type=int, default=16, help="features (default 16)")
    bench.add_argument("-k", type=int, default=8, help="segments (default 8)")
    bench.add_argument("--iterations", type=int, default=20,
                       help="Lloyd iterations, fixed for every tool (default 20)")  # fmt: skip
    bench.add_argument("--peers", nargs="*", default=None, metavar="PEER",
                       help="peers to run: sklearn minibatch faiss (default: all installed)")
    bench.add_argument("--devices", nargs="*", default=None, metavar="DEVICE",
                       help="gpuseg devices: cpu cuda (default: cpu, and cuda when visible)")
    bench.add_argument("-o", "--output", metavar="JSON", help="results file (default: none)")
    bench.add_argument("--overwrite", action="store_true", help="replace an existing output")
    bench.add_argument("--seed", type=int, default=0, help="seed of the data and the fits")

    demo = command("demo", "generate a retail log and run the whole pipeline on it")
    demo.add_argument("--customers", type=int, default=150_000,
                      help="customers in the generated log (default 150,000)")  # fmt: skip
    demo.add_argument("--out", default="gpuseg-demo", metavar="DIR",
                      help="directory for everything the demo writes (default gpuseg-demo)")
    demo.add_argument("-k", type=int, default=None,
                      help="segments (default: the k that choose-k recommends)")  # fmt: skip
    demo.add_argument("--k-range", default="3..8", metavar="RANGE",
                      help="k tried by choose-k (default 3..8)")  # fmt: skip
    demo.add_argument("--overwrite", action="store_true",
                      help="replace DIR even if it was not written by a demo")  # fmt: skip
    _device(demo)
    return parser


def _output(sub, metavar: str, what: str) -> None:
    sub.add_argument("-o", "--output", metavar=metavar, help=what)
    sub.add_argument("--overwrite", action="store_true", help="replace an existing output")


def _features(sub) -> None:
    sub.add_argument("--columns", action="append", metavar="A,B,...",
                     help="feature columns (default: the RFM columns of an RFM table, else every "
                     "numeric column but the id)")  # fmt: skip
    sub.add_argument("--categorical", action="append", metavar="A,B,...",
                     help="string columns to one-hot encode as features")  # fmt: skip
    sub.add_argument("--id", metavar="COLUMN", help="customer id column (default: customer_id)")
    _nan(sub)


def _nan(sub) -> None:
    sub.add_argument("--nan", choices=NAN_POLICIES, default="error",
                     help="null, NaN or infinite feature values: error (default), drop the row, "
                     "or impute the column mean")  # fmt: skip


def _device(sub, seed: bool = True) -> None:
    sub.add_argument("--device", default="auto", metavar="|".join(DEVICES),
                     help="where the kernels run (default auto)")  # fmt: skip
    if seed:
        sub.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _ambiguity(sub) -> None:
    sub.add_argument("--ambiguity", type=float, default=0.1,
                     help="relative margin below which a customer is ambiguous (default 0.1)")


def _analysis(sub) -> None:
    sub.add_argument("--id", metavar="COLUMN", help="customer id column (default: the model's)")
    sub.add_argument("--money", metavar="COLUMN",
                     help="revenue column for revenue shares (default: monetary_total if present)")
    sub.add_argument("--names", metavar="JSON", help='segment names to use: {"0": "name", ...}')
    sub.add_argument("--seed", type=int, default=0, help="seed of the projection sample")
    _ambiguity(sub)
    _nan(sub)


def _persist(sub) -> None:
    sub.add_argument("--persist", choices=("auto", "yes", "no"), default="auto",
                     help="keep the decoded rows in memory after the first pass: auto (when they "
                          "take at most half the available memory), yes, or no (read the files "
                          "on every pass; default auto)")  # fmt: skip


def _dask(sub) -> None:
    group = sub.add_argument_group("Dask")
    group.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask scheduler")
    group.add_argument("--workers", type=int, metavar="N",
                       help="run on a local Dask cluster of N worker processes")  # fmt: skip


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)  # pragma: no cover


def _apply_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv
) -> argparse.Namespace:
    """Use the job file's options as defaults of the command, then parse the command line again."""
    from gpuseg.config import load_job

    shared, own = load_job(args.config, args.command)
    sub = _subparser(parser, args.command)
    actions = {a.dest: a for a in sub._actions if a.dest not in ("help", "config")}
    # Top-level keys serve every command: each takes those it knows.
    options = {**{k: v for k, v in shared.items() if k in actions}, **own}
    defaults = {}
    for key, value in options.items():
        action = actions.get(key)
        if action is None:
            known = ", ".join(sorted(d.replace("_", "-") for d in actions))
            raise DataError(f"unknown option {key.replace('_', '-')!r} for 'gpuseg "
                            f"{args.command}'; expected one of: {known}", args.config)  # fmt: skip
        defaults[key] = _config_value(action, key, value, args.config)
    sub.set_defaults(**defaults)
    return parser.parse_args(argv)


def _config_value(action: argparse.Action, key: str, value, path: str):
    """A TOML value checked and converted as argparse would convert it on the command line."""
    name = key.replace("_", "-")
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise DataError(f"option {name!r} is {value!r}; expected true or false", path)
        return value
    if action.nargs in ("*", "+") or isinstance(action, argparse._AppendAction):
        values = value if isinstance(value, list) else [value]
        return [_convert(action, name, v, path) for v in values]
    if isinstance(value, list) and name == "k":
        return value
    return _convert(action, name, value, path)


def _convert(action, name, value, path):
    if action.type is not None and not isinstance(value, bool):
        try:
            value = action.type(value)
        except (TypeError, ValueError):
            raise DataError(f"option {name!r} is {value!r}; expected {action.type.__name__}",
                            path) from None  # fmt: skip
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and action.type is None:
        value = str(value) if name != "k" else value
    if action.choices is not None and value not in action.choices:
        raise DataError(f"option {name!r} is {value!r}; expected one of {list(action.choices)}",
                        path)  # fmt: skip
    return value


def _run(args: argparse.Namespace, console: Console):
    from gpuseg.commands import analysis, bench, demo, pipeline

    runners = {
        "rfm": pipeline.run_rfm,
        "fit": pipeline.run_fit,
        "assign": pipeline.run_assign,
        "choose-k": analysis.run_choose_k,
        "profile": analysis.run_profile,
        "drift": analysis.run_drift,
        "report": analysis.run_report,
        "bench": bench.run_bench,
        "demo": demo.run_demo,
    }
    return runners[args.command](args, console)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gpuseg`` command; returns the exit status.

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    gpuseg 0.1.0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(quiet=args.quiet, progress=sys.stderr.isatty() and not args.quiet)
    debug = bool(os.environ.get("GPUSEG_DEBUG"))
    try:
        if args.config:
            args = _apply_config(parser, args, argv)
        missing = [name for name in REQUIRED.get(args.command, ()) if getattr(args, name) is None]
        if missing:
            shown = ", ".join("-o/--output" if n == "output" else n.upper() for n in missing)
            _subparser(parser, args.command).error(f"the following arguments are required: {shown}")
        with warnings.catch_warnings():
            # A user sees the result, not library warnings about it (ConvergenceWarning...).
            warnings.simplefilter("ignore")
            _run(args, console)
    except (DataError, CommandError, FileExistsError) as exc:
        if debug:
            raise
        return _fail(args, exc)
    except (ValueError, PermissionError) as exc:
        # Parameters checked by the library (k, device, thresholds...) and unwritable paths.
        if debug:
            raise
        return _fail(args, exc)
    except KeyboardInterrupt:
        print("gpuseg: interrupted; no partial output was left under a final name", file=sys.stderr)
        return 130
    return 0


def _fail(args: argparse.Namespace, exc: BaseException) -> int:
    message = " ".join(str(exc).split()) or type(exc).__name__
    library_hint = "(drop or impute such rows first)"
    if message.endswith(library_hint):
        message = message[: -len(library_hint)] + "(or pass --nan drop|impute)"
    print(f"gpuseg {args.command}: error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
