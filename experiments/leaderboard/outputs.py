"""The files the leaderboard writes (`leaderboard.md`, `leaderboard.csv`, `figures/*.svg`) and `--check`,
which rebuilds them into a temporary folder and compares byte for byte.

Pipeline: `collect` (records, validated; bad ones reported by path and skipped) -> `build` (per protocol
and selection: rows, entries, aggregates, published rows) -> `render` (markdown, CSV) and `figures` (SVG).
"""

from __future__ import annotations

import difflib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from encoders.storage import atomic_write_text
from experiments.leaderboard import figures as figures_mod
from experiments.leaderboard import published as published_mod
from experiments.leaderboard import render
from experiments.leaderboard.build import build
from experiments.leaderboard.collect import (
    STDERR,
    collect,
    collect_pooled_entropy,
    collect_screening,
    protocol_headlines,
)

OUTPUTS = ("leaderboard.md", "leaderboard.csv")
FIGURES_DIR = "figures"
FIGURE_KINDS = ("suites", "entropy", "gmacs", "curves")


@dataclass(frozen=True)
class Inputs:
    """What a leaderboard is built from; the caller (the CLI) decides every folder. Paths inside `root`
    (the repository) are shown relative to it, so the tables do not depend on the machine."""

    runs: Path  # run records, <protocol>/<label>/<task>/seed=<seed>.json
    published: Path  # the published numbers (results/published in the repository)
    protocols: Path  # the protocol configs, for each protocol's headline selection
    root: Path
    entropy: Path | None = None  # pooled feature-norm entropy records (`nox -s entropy`), results/entropy
    screen: Path | None = None  # screening records (`nox -s screen`), results/screen

    def shown(self, path: Path) -> str:
        """How a folder is named in the tables and messages."""
        path, root = path.resolve(), self.root.resolve()
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def _ours(path: Path) -> bool:
    """A figure file this module writes (others in the folder are left alone)."""
    stem = path.name.removesuffix(figures_mod.FIGURE_SUFFIX)
    return path.name.endswith(figures_mod.FIGURE_SUFFIX) and any(stem.endswith(f"-{k}") for k in FIGURE_KINDS)


def generate(inputs: Inputs, out_dir: Path, warn=STDERR, draw: bool = True) -> list[Path]:
    """Build every output into `out_dir`; returns the files written. Unusable records are reported on
    `warn` (default: stderr; None: silent)."""
    published = published_mod.load(inputs.published)
    collection = collect(inputs.runs, warn=warn)
    pooled = collect_pooled_entropy(inputs.entropy, warn=warn) if inputs.entropy else {}
    screening = collect_screening(inputs.screen, warn=warn)
    board = build(collection, published, protocol_headlines(inputs.protocols), pooled, screening)
    figures = figures_mod.plan(board)
    written = []
    markdown = render.render_markdown(
        board, published.suite_names, figures, inputs.shown(inputs.runs), inputs.shown(inputs.published)
    )
    for name, text in zip(OUTPUTS, (markdown, render.render_csv(board)), strict=True):
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


def check(inputs: Inputs, out_dir: Path, report=None) -> int:
    """0 when the files in `out_dir` are what the records produce; 1 with a diff summary otherwise."""
    report = report or sys.stderr
    with tempfile.TemporaryDirectory(prefix="leaderboard-check-") as tmp:
        generate(inputs, Path(tmp))
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
    print(
        f"leaderboard: {inputs.shown(out_dir)} is up to date with the records under {inputs.shown(inputs.runs)}",
        file=report,
    )
    return 0
