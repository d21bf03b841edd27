"""The ``gpuseg`` command: the only module that prints."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from gpuseg import KMeans, __version__
from gpuseg.datasets import make_customers


def _demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    X = make_customers(args.customers, n_features=args.features, random_state=args.seed)
    print(f"generated {X.shape[0]:,} customers x {X.shape[1]} features "
          f"in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    km = KMeans(args.k, random_state=args.seed).fit(X)
    print(f"fitted k={args.k} in {time.perf_counter() - started:.1f} s: "
          f"{km.n_iter_} passes, inertia {km.inertia_:.6g}")
    shares = km.cluster_sizes_ / X.shape[0]
    print(f"\n{'segment':>7} {'customers':>10} {'share':>6}  centre (first 4 features)")
    for j in np.argsort(-km.cluster_sizes_):
        centre = " ".join(f"{v:8.2f}" for v in km.cluster_centers_[j, :4])
        print(f"{j:>7} {km.cluster_sizes_[j]:>10,} {shares[j]:>6.1%}  {centre}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gpuseg`` command."""
    parser = argparse.ArgumentParser(prog="gpuseg", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gpuseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="segment a generated customer table and print the segments",
        epilog="example: gpuseg demo --customers 200000 -k 6",
    )
    demo.add_argument("--customers", type=int, default=1_000_000, help="rows to generate")
    demo.add_argument("--features", type=int, default=8, help="features per customer")
    demo.add_argument("-k", type=int, default=6, help="number of segments")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gpuseg`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
