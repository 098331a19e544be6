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

Pipeline: `board.collect` (records, validated; bad ones reported by path on stderr and skipped) ->
`board.build` (per protocol and selection: cells, aggregates, published rows) -> `tables` (markdown,
CSV) and `figures` (SVG).
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

from encoders.storage import atomic_write_text
from experiments import board as board_mod
from experiments import figures as figures_mod
from experiments import published as published_mod
from experiments import tables

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("leaderboard.md", "leaderboard.csv")
FIGURES_DIR = "figures"
FIGURE_KINDS = ("suites", "entropy", "gmacs")


def _ours(path: Path) -> bool:
    """A figure file this script writes (others in the folder are left alone)."""
    stem = path.name.removesuffix(figures_mod.FIGURE_SUFFIX)
    return path.name.endswith(figures_mod.FIGURE_SUFFIX) and any(stem.endswith(f"-{k}") for k in FIGURE_KINDS)


def _shown(path: Path) -> str:
    """How a folder is named in the tables: relative to the repository when inside it (machine-independent)."""
    path = path.resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.as_posix()


def generate(
    runs_dir: Path,
    out_dir: Path,
    published_dir: Path = published_mod.PUBLISHED_DIR,
    warn=board_mod.STDERR,
    draw: bool = True,
) -> list[Path]:
    """Build every output into `out_dir`; returns the files written. Unusable records are reported on
    `warn` (default: stderr; None: silent)."""
    published = published_mod.load(published_dir)
    collection = board_mod.collect(runs_dir, warn=warn)
    board = board_mod.build(collection, published)
    figures = figures_mod.plan(board)
    written = []
    markdown = tables.render_markdown(
        board, published.suite_names, figures, _shown(Path(runs_dir)), _shown(Path(published_dir))
    )
    for name, text in zip(OUTPUTS, (markdown, tables.render_csv(board)), strict=True):
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    if draw:
        fig_dir = out_dir / FIGURES_DIR
        drawn = figures_mod.render(figures, board, published.suite_names, fig_dir)
        for stale in sorted(fig_dir.glob(f"*{figures_mod.FIGURE_SUFFIX}")):
            if _ours(stale) and stale not in drawn:
                stale.unlink()
        written += drawn
    return written


def _outputs(out_dir: Path) -> dict[str, Path]:
    found = {name: out_dir / name for name in OUTPUTS if (out_dir / name).is_file()}
    fig_dir = out_dir / FIGURES_DIR
    if fig_dir.is_dir():
        found |= {f"{FIGURES_DIR}/{p.name}": p for p in sorted(fig_dir.iterdir()) if _ours(p)}
    return found


def check(runs_dir: Path, out_dir: Path, published_dir: Path = published_mod.PUBLISHED_DIR, report=None) -> int:
    """0 when the files in `out_dir` are what the records produce; 1 with a diff summary otherwise."""
    report = report or sys.stderr
    with tempfile.TemporaryDirectory(prefix="leaderboard-check-") as tmp:
        generate(runs_dir, Path(tmp), published_dir)
        fresh, committed = _outputs(Path(tmp)), _outputs(out_dir)
        problems = []
        for name in sorted(set(fresh) | set(committed)):
            if name not in committed:
                problems.append(f"{name}: missing from {out_dir} (the records produce it)")
            elif name not in fresh:
                problems.append(f"{name}: in {out_dir} but the records no longer produce it")
            elif fresh[name].read_bytes() != committed[name].read_bytes():
                line = f"{name}: differs"
                if name.endswith((".md", ".csv")):
                    diff = list(
                        difflib.unified_diff(
                            committed[name].read_text().splitlines(),
                            fresh[name].read_text().splitlines(),
                            f"{out_dir / name} (committed)",
                            f"{name} (from the records)",
                            lineterm="",
                            n=0,
                        )
                    )
                    shown = diff[:40]
                    line += "\n" + "\n".join(f"    {d}" for d in shown)
                    if len(diff) > len(shown):
                        line += f"\n    ... {len(diff) - len(shown)} more diff lines"
                problems.append(line)
    if problems:
        print(f"leaderboard: {len(problems)} file(s) out of date; run `nox -s leaderboard` and commit:", file=report)
        for p in problems:
            print(f"  {p}", file=report)
        return 1
    print(f"leaderboard: {_shown(out_dir)} is up to date with the records under {_shown(runs_dir)}", file=report)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s leaderboard --", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="results/runs", help="folder of run records (default: results/runs)")
    parser.add_argument("--out", default="results", help="where leaderboard.md/.csv and figures/ go (default: results)")
    parser.add_argument("--published", default=None, help="published data folder (default: results/published)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the files in --out are stale")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only (figures are slower)")
    args = parser.parse_args(argv)

    def resolve(p: str) -> Path:
        path = Path(p)
        return path if path.is_absolute() else ROOT / path

    runs, out = resolve(args.runs), resolve(args.out)
    published = resolve(args.published) if args.published else published_mod.PUBLISHED_DIR
    try:
        if args.check:
            return check(runs, out, published)
        written = generate(runs, out, published, draw=not args.no_figures)
    except published_mod.PublishedDataError as err:
        print(f"leaderboard: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
