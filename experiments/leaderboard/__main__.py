"""`nox -s leaderboard`: rebuild `results/leaderboard.md`, `results/leaderboard.csv` and
`results/figures/*.svg` from the run records and the published numbers; `-- --check` verifies them.

    python -m experiments.leaderboard                 # write the tables and figures
    python -m experiments.leaderboard --check         # exit 1 (with a diff summary) when they are stale
    python -m experiments.leaderboard --runs DIR      # read records elsewhere (default results/runs)
    python -m experiments.leaderboard --out DIR --published DIR --no-figures

What `--check` compares: it rebuilds everything from the records present under `--runs` into a temporary
folder and compares byte for byte with the files in `--out`. `results/runs/` is not committed, so on a
clean clone the tables hold the published rows only; commit the tables built from no records, or commit
the records that back them (`git add -f results/runs/<protocol>/...`) together with the tables.

This is the one place that knows the repository's folders: relative paths are taken from the repository
root, and the other modules of the package receive every folder as an argument.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.leaderboard.collect import PROTOCOL_CONFIGS
from experiments.leaderboard.outputs import Inputs, check, generate
from experiments.leaderboard.published import PublishedDataError

ROOT = Path(__file__).resolve().parents[2]  # the repository: experiments/leaderboard/__main__.py


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s leaderboard --", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="results/runs", help="folder of run records (default: results/runs)")
    parser.add_argument("--out", default="results", help="where leaderboard.md/.csv and figures/ go (default: results)")
    parser.add_argument(
        "--published", default="results/published", help="published data folder (default: results/published)"
    )
    parser.add_argument(
        "--entropy",
        default=None,
        help="folder of pooled feature-norm entropy records from `nox -s entropy` (default: <runs>/../entropy)",
    )
    parser.add_argument(
        "--screen",
        default=None,
        help="folder of screening records from `nox -s screen` (default: <runs>/../screen)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the files in --out are stale")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only (figures are slower)")
    args = parser.parse_args(argv)

    def resolve(p: str) -> Path:
        path = Path(p)
        return path if path.is_absolute() else ROOT / path

    inputs = Inputs(
        runs=resolve(args.runs),
        published=resolve(args.published),
        protocols=ROOT / PROTOCOL_CONFIGS,
        root=ROOT,
        entropy=resolve(args.entropy) if args.entropy else resolve(args.runs).parent / "entropy",
        screen=resolve(args.screen) if args.screen else resolve(args.runs).parent / "screen",
    )
    out = resolve(args.out)
    try:
        if args.check:
            return check(inputs, out)
        written = generate(inputs, out, draw=not args.no_figures)
    except PublishedDataError as err:
        print(f"leaderboard: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {inputs.shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
