"""Leaderboard figures (matplotlib, SVG): per-suite bars with intervals, score vs feature-norm entropy,
score vs encoder GMACs (one set per protocol, from the headline selection), and learning curves: for every
label of every section (deviating ones included), one panel per task with each seed's `scores.per_eval` and
the demonstrations' score as a dashed line.

Which figures exist and what they show is decided by `plan` (pure, used by the markdown too);
`render` draws them. Output is byte-identical across reruns: matplotlib's default style (no user rc),
a fixed `svg.hashsalt`, and no date or creator in the file metadata.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from encoders.storage import sha256_json
from experiments.leaderboard import stats
from experiments.leaderboard.build import (
    Board,
    Entry,
    ProtocolBoard,
    Table,
    entropy_points,
    gmacs_points,
    row_score,
)

FIGURE_SUFFIX = ".svg"
SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
OURS_COLOR, PUBLISHED_COLOR, PUBLISHED_DOT = "#1f77b4", "#bbbbbb", "#555555"
PANELS_PER_LINE = 4


@dataclass(frozen=True)
class Figure:
    protocol: str  # the section (a protocol, or a protocol with its deviations)
    kind: str  # suites | entropy | gmacs | curves
    name: str  # file name in the figures folder
    caption: str
    notes: tuple[str, ...] = field(default=())
    label: str | None = None  # curves: the row's label


def section_slug(protocol: ProtocolBoard) -> str:
    """A file-name-safe name for a section: the protocol, plus a short hash of its deviations if any."""
    name = protocol.protocol.split(" [", 1)[0]
    return f"{name}-dev{sha256_json(list(protocol.deviations))[:8]}" if protocol.deviations else name


def curve_figures(protocol: ProtocolBoard) -> list[Figure]:
    """One learning-curve figure per label of the section with evaluations."""
    return [
        Figure(
            protocol.protocol,
            "curves",
            f"{section_slug(protocol)}-{label.replace('/', '_')}-curves{FIGURE_SUFFIX}",
            f"`{label}`: score at every evaluation, one line per seed; dashed: the demonstrations' own score",
            label=label,
        )
        for label in sorted(protocol.curves)
    ]


def _label(row) -> str:
    return f"{row.model} ({row.source})"


def plan(board: Board) -> list[Figure]:
    """The figures a board gets: a kind is drawn only when it has something to show."""
    figures = []
    for protocol in board.protocols:
        if protocol.deviations:  # only learning curves are drawn for deviating records
            figures += curve_figures(protocol)
            continue
        table = protocol.tables[0]
        name = protocol.protocol
        if any(row.entries.get(f"suite:{s}", Entry()).value is not None for row in table.rows for s in table.suites):
            figures.append(
                Figure(
                    name,
                    "suites",
                    f"{name}-suites{FIGURE_SUFFIX}",
                    f"Protocol {name}, `{table.selection}` evaluation: suite means; ours with 95% "
                    "stratified-bootstrap intervals, published in grey",
                )
            )
        points = entropy_points(table)
        if points:
            corr = stats.correlation([p[1] for p in points], [p[2] for p in points])
            figures.append(
                Figure(
                    name,
                    "entropy",
                    f"{name}-entropy{FIGURE_SUFFIX}",
                    f"Protocol {name}, `{table.selection}` evaluation: score vs feature-norm entropy "
                    f"({_coefficients(corr)})",
                )
            )
        points = gmacs_points(table)
        if points:
            unplotted = [
                _label(row) for row in table.rows if row.gmacs is None and row_score(row, table.tasks) is not None
            ]
            notes = (
                (f"not plotted (no GMACs: no encoder, not registered here, or not known): {', '.join(unplotted)}",)
                if unplotted
                else ()
            )
            figures.append(
                Figure(
                    name,
                    "gmacs",
                    f"{name}-gmacs{FIGURE_SUFFIX}",
                    f"Protocol {name}, `{table.selection}` evaluation: score vs encoder GMACs "
                    "(registry value at the encoder's input size)",
                    notes,
                )
            )
        figures += curve_figures(protocol)
    return figures


def _coefficients(corr: stats.Correlation) -> str:
    if corr.pearson is None:
        return f"n = {corr.n}: correlation not defined"
    return f"n = {corr.n}, Pearson r = {corr.pearson:.3f}, Spearman ρ = {corr.spearman:.3f}"


def _suites(axes, table: Table, suites: list[str], suite_names: dict[str, str]) -> None:
    """One panel per suite, every row on the same y position in every panel (labels on the left panels)."""
    rows = [r for r in table.rows if any(r.entries.get(f"suite:{s}", Entry()).value is not None for s in suites)]
    positions = list(range(len(rows)))[::-1]
    for i, ax in enumerate(axes.flat):
        if i >= len(suites):
            ax.axis("off")
            continue
        key = f"suite:{suites[i]}"
        for pos, row in zip(positions, rows, strict=True):
            entry = row.entries.get(key, Entry())
            if entry.value is None:
                continue
            ours = row.source == "ours"
            ax.barh(pos, entry.value, color=OURS_COLOR if ours else PUBLISHED_COLOR, height=0.7)
            if entry.low is not None:
                error = [[entry.value - entry.low], [entry.high - entry.value]]
                ax.errorbar(entry.value, pos, xerr=error, color="black", capsize=2, linewidth=0.8)
        ax.set_yticks(positions, [_label(r) for r in rows], fontsize=7)
        ax.tick_params(axis="y", labelleft=i % axes.shape[1] == 0)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlim(0, 100)
        ax.set_title(suite_names.get(suites[i], suites[i]), fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", linewidth=0.3)


def _scatter(ax, points, xlabel: str, log: bool = False) -> None:
    for row, x, y, basis in points:
        filled = basis == "MuJoCo-12"
        color = OURS_COLOR if row.source == "ours" else PUBLISHED_DOT
        ax.scatter([x], [y], color=color if filled else "none", edgecolors=color, s=28, zorder=3)
        suffix = "" if filled else f" [{basis}]"
        ax.annotate(f"{row.model}{suffix}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6)
    if points:
        ys = [p[2] for p in points]
        ax.set_ylim(max(0.0, min(ys) - 5.0), min(100.0, max(ys) + 5.0) if max(ys) > min(ys) else min(ys) + 10.0)
    ax.scatter([], [], color=OURS_COLOR, label="ours", s=20)
    ax.scatter([], [], color=PUBLISHED_DOT, label="published", s=20)
    ax.legend(fontsize=7, loc="lower right")
    if log:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_xscale("log")  # plain tick labels: mathtext ones (10^0) cost seconds of text layout on a slow CPU
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("score (filled: MuJoCo-12 mean; hollow: mean of the tasks it has)", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(linewidth=0.3)


def _curves(axes, curves: dict[str, list[tuple[int, tuple]]], ceilings: dict[str, float]) -> None:
    """One panel per task: each seed's score at every evaluation, and the demos' score (dashed)."""
    tasks = sorted(curves)
    for i, ax in enumerate(axes.flat):
        if i >= len(tasks):
            ax.axis("off")
            continue
        for seed, per_eval in curves[tasks[i]]:
            ax.plot([e for e, _ in per_eval], [v for _, v in per_eval], linewidth=0.9, label=f"seed {seed}")
        if tasks[i] in ceilings:
            ax.axhline(ceilings[tasks[i]], color="black", linestyle="--", linewidth=0.8, label="demos")
        ax.set_title(tasks[i], fontsize=8)
        ax.set_ylim(-2, 102)
        ax.tick_params(labelsize=6)
        ax.grid(linewidth=0.3)
        ax.set_xlabel("epoch", fontsize=6)
        if i == 0:
            ax.legend(fontsize=6, loc="lower right")


def render(figures: list[Figure], board: Board, suite_names: dict[str, str], out_dir: Path) -> list[Path]:
    """Draw the planned figures into `out_dir`; returns the files written."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {p.protocol: p.tables[0] for p in board.protocols}
    sections = {p.protocol: p for p in board.protocols}
    written = []
    with plt.style.context("default"), matplotlib.rc_context({"svg.hashsalt": "cortexbench-leaderboard"}):
        for figure in figures:
            table = tables[figure.protocol]
            if figure.kind == "suites":
                suites = [
                    s
                    for s in table.suites
                    if any(r.entries.get(f"suite:{s}", Entry()).value is not None for r in table.rows)
                ]
                ncols = min(PANELS_PER_LINE, len(suites))
                nrows = -(-len(suites) // ncols)
                height = nrows * max(2.0, 0.17 * len(table.rows) + 0.9) + 0.4
                fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols + 1.8, height), squeeze=False, sharey=True)
                _suites(axes, table, suites, suite_names)
            elif figure.kind == "curves":
                curves = sections[figure.protocol].curves[figure.label]
                demos = next((r for r in table.rows if r.source == "demos"), None)
                ceilings = {t: e.value for t, e in (demos.entries.items() if demos else ()) if e.value is not None}
                ncols = min(PANELS_PER_LINE, len(curves))
                nrows = -(-len(curves) // ncols)
                fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.1 * nrows + 0.5), squeeze=False)
                _curves(axes, curves, ceilings)
            else:
                fig, ax = plt.subplots(figsize=(6.4, 4.4))
                if figure.kind == "entropy":
                    points = entropy_points(table)
                    _scatter(ax, points, "feature-norm entropy (nats, definition 1)")
                else:
                    _scatter(ax, gmacs_points(table), "encoder GMACs (log scale)", log=True)
            fig.suptitle(textwrap.fill(figure.caption, 110), fontsize=8)
            fig.tight_layout()
            path = out_dir / figure.name
            fig.savefig(path, format="svg", metadata=SVG_METADATA)
            plt.close(fig)
            written.append(path)
    return written
