"""Render a `Board` as the text of `leaderboard.md` and `leaderboard.csv` (writing them is the caller's).

Deterministic by construction: rows and columns come sorted from `experiments.leaderboard.build`, floats are
formatted with fixed decimals, and nothing depends on the clock, the machine or the working folder
(record paths are shown relative to the runs folder). The columns are explained in `results/README.md`.
"""

from __future__ import annotations

import csv
import io

from experiments.leaderboard import stats
from experiments.leaderboard.build import (
    IQM,
    MUJOCO12,
    SUITES_MEAN,
    Board,
    Entry,
    ProtocolBoard,
    Row,
    Table,
    entropy_points,
)
from experiments.leaderboard.figures import Figure

MISSING = "–"
NO_SE = "-"
DERIVED_MARK = "†"
RECALLED_MARK = "‡"
AGGREGATE_NAMES = {MUJOCO12: "MuJoCo-12", SUITES_MEAN: "mean of suites", IQM: "IQM [95% CI]"}
PRINTED_NAMES = {
    "mean:theia14": "14-task mean (12 MuJoCo + Reach-Cube + ImageNav)",
    "mean:cortexbench7": "Mean Success over the 7 benchmarks",
    "rank:cortexbench7": "Mean Rank over the 7 benchmarks",
}
CSV_COLUMNS = (
    "protocol",
    "selection",
    "headline",
    "model",
    "source",
    "label",
    "cell",
    "value",
    "se",
    "n_seeds",
    "ci_low",
    "ci_high",
    "published",
    "delta",
    "feature_norm_entropy",
    "task_version",
    "note",
)


def number(value: float | None, decimals: int = 2, signed: bool = False) -> str:
    """Fixed-decimal text; never "-0.00"."""
    if value is None:
        return ""
    text = f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
    if text.lstrip("+-").strip("0.") == "":
        text = f"{0:.{decimals}f}"
    return text


def entry_text(entry: Entry | None, with_se: bool = True, interval: bool = False) -> str:
    """An entry as shown in the markdown tables: task entries with SE and seed count, IQM with its interval."""
    if entry is None or entry.value is None:
        return "n/a" if entry is not None and entry.note == "n/a" else MISSING
    text = number(entry.value, entry.decimals)
    if entry.note == "derived":
        return text + DERIVED_MARK
    if entry.note == "recalled":
        return text + RECALLED_MARK
    if interval and entry.low is not None:
        return f"{text} [{number(entry.low)}, {number(entry.high)}]"
    if with_se and entry.n is not None:
        se = number(entry.se) if entry.se is not None else NO_SE
        return f"{text} ± {se} ({entry.n})"
    return text


def _header(columns: list[str]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]


def _line(values: list[str]) -> str:
    return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"


def _seeds(row: Row) -> str:
    if row.source != "ours" or row.seeds is None:
        return "n/a" if row.source != "ours" else MISSING
    low, high = row.seeds
    return str(low) if low == high else f"{low}–{high}"


def _counterpart(table: Table, row: Row) -> Row | None:
    """The published row our row is compared with (same display name under this protocol)."""
    if row.source != "ours":
        return None
    return next((r for r in table.rows if r.source == "published" and r.model == row.model), None)


def _summary(table: Table, suite_names: dict[str, str]) -> list[str]:
    columns = [
        "model",
        "source",
        "label",
        "tasks",
        "seeds",
        *(suite_names.get(s, s) for s in table.suites),
        *AGGREGATE_NAMES.values(),
    ]
    lines = _header(columns)
    for row in table.rows:
        present = len(row.tasks_present(table.tasks))
        entries = [row.entries.get(f"suite:{s}") for s in table.suites] + [row.entries.get(k) for k in AGGREGATE_NAMES]
        lines.append(
            _line(
                [
                    row.model,
                    row.source,
                    f"`{row.label}`" if row.label else MISSING,
                    f"{present}/{len(table.tasks)}",
                    _seeds(row),
                    *(entry_text(e, with_se=False) for e in entries[:-1]),
                    entry_text(entries[-1], with_se=False, interval=True),  # the IQM
                ]
            )
        )
    return lines


def _per_task(table: Table) -> list[str]:
    lines = _header(["model", "source", *table.tasks])
    for row in table.rows:
        lines.append(_line([row.model, row.source, *(entry_text(row.entries.get(t)) for t in table.tasks)]))
    return lines


def _comparison(table: Table, suite_names: dict[str, str]) -> list[str]:
    names = {f"suite:{s}": suite_names.get(s, s) for s in table.suites} | AGGREGATE_NAMES
    lines = []
    for row in table.rows:
        other = _counterpart(table, row)
        if other is None:
            continue
        for column in table.columns:
            ours, theirs = row.entries.get(column), other.entries.get(column)
            if ours is None or theirs is None or ours.value is None or theirs.value is None:
                continue
            lines.append(
                _line(
                    [
                        row.model,
                        f"`{row.label}`",
                        names.get(column, column),
                        entry_text(ours),
                        entry_text(theirs),
                        number(ours.value - theirs.value, signed=True),
                    ]
                )
            )
    return _header(["model", "label", "cell", "ours", "published", "Δ"]) + lines if lines else []


def _entropy(table: Table) -> list[str]:
    points = entropy_points(table)
    if not points:
        return ["No run record of ours carries a feature-norm entropy under this protocol."]
    lines = _header(["model", "label", "feature-norm entropy (nats)", "definition", "score", "score over"])
    for row, entropy, score, basis in points:
        definition = row.entropy_definition or "-"
        lines.append(_line([row.model, f"`{row.label}`", number(entropy, 4), definition, number(score), basis]))
    corr = stats.correlation([p[1] for p in points], [p[2] for p in points])
    if corr.pearson is None:
        lines += ["", f"Correlation: not defined for {corr.n} point(s) (needs 3 or more, not all equal)."]
    else:
        lines += [
            "",
            f"Correlation over {corr.n} encoders: Pearson r = {number(corr.pearson, 3)}, "
            f"Spearman ρ = {number(corr.spearman, 3)}. "
            "The Theia paper reports R = 0.943 (regular models) and 0.638 (distilled models), Fig. 7.",
        ]
    return lines


SCREENING_NOTE = (
    "Rank correlation across encoders between each screening proxy (`nox -s screen`, mean over tasks) and the "
    "headline score, over the tasks that have both; 95% intervals resample the tasks (seeded). `encoders (n)`: "
    "how many encoders each correlation rests on (3 or more needed). MSE proxies are better when lower: a good "
    "one correlates negatively."
)


def _screening(board: ProtocolBoard) -> list[str]:
    if not board.screening:
        return []
    lines = _header(["proxy", "scores", "encoders (n)", "tasks", "Spearman ρ [95% CI]", "Kendall τ [95% CI]"])

    def shown(value, interval, n: int) -> str:
        if value is None:
            return f"not defined (n = {n})"
        text = number(value, 3)
        return f"{text} [{number(interval[0], 3)}, {number(interval[1], 3)}]" if interval else text

    for item in board.screening:
        corr = item.correlation
        cells = [f"`{item.proxy}`", item.source, str(corr.n), str(item.tasks)]
        lines.append(
            _line(
                [
                    *cells,
                    shown(corr.spearman, corr.spearman_interval, corr.n),
                    shown(corr.kendall, corr.kendall_interval, corr.n),
                ]
            )
        )
    return [SCREENING_NOTE, "", *lines]


def _printed(board: ProtocolBoard) -> list[str]:
    if not board.printed:
        return []
    lines = _header(["model", "aggregate", "printed", "recomputed from the printed cells", "printed − recomputed"])
    for model, column, printed, recomputed in board.printed:
        diff = (
            number(printed.value - recomputed.value, signed=True)
            if printed.value is not None and recomputed.value is not None
            else MISSING
        )
        lines.append(
            _line([model, PRINTED_NAMES.get(column, column), entry_text(printed), entry_text(recomputed), diff])
        )
    return lines


def _protocol_section(
    board: ProtocolBoard, suite_names: dict[str, str], figures: list[Figure], published_label: str
) -> list[str]:
    if board.deviations:
        out = [f"## Protocol `{board.protocol.split(' [', 1)[0]}`, not conforming", ""]
        out += [
            "These records deviate from the protocol file: they stand beside no published number and are not "
            "averaged with conforming records. Deviations:",
            "",
            *(f"- {d}" for d in board.deviations),
            "",
        ]
    elif board.sources:
        out = [f"## Protocol `{board.protocol}`", "", "Published rows:"]
        out += [f"- {s.citation}, {s.table} (`{published_label}/{s.file}`)." for s in board.sources]
        out += [
            "",
            "The papers do not say whether they report the best or the final evaluation; the published rows "
            "stand beside both of our selections.",
            "",
        ]
    else:
        out = [f"## Protocol `{board.protocol}`", "", "No published numbers for this protocol.", ""]
    out += [f"Headline selection: `{board.headline}` (from {board.headline_from}).", ""]
    for table in board.tables:
        title = f"`{table.selection}` evaluation" + (" (headline)" if table.headline else "")
        out += [f"### Summary, {title}", "", *_summary(table, suite_names), ""]
        if table.tasks:
            out += [f"### Per task, {title}", "", *_per_task(table), ""]
        comparison = _comparison(table, suite_names)
        if comparison:
            out += [f"### Ours vs published, {title}", "", *comparison, ""]
    headline_table = board.tables[0]
    out += [f"### Feature-norm entropy and score, `{headline_table.selection}` evaluation", ""]
    out += [*_entropy(headline_table), ""]
    screening = _screening(board)
    if screening:
        out += [f"### Screening, `{headline_table.selection}` evaluation", "", *screening, ""]
    mine = [f for f in figures if f.protocol == board.protocol]
    if mine:
        out += ["### Figures", ""]
        for figure in mine:
            out += [f"![{figure.caption}](figures/{figure.name})", "", f"*{figure.caption}.*", ""]
            out += [f"- {note}" for note in figure.notes]
            if figure.notes:
                out.append("")
    printed = _printed(board)
    if printed:
        out += ["### Aggregates printed in the papers", "", *printed, ""]
    out += ["### Missing and failed", ""]
    out += [f"- {line}" for line in board.missing] or ["- nothing missing"]
    out.append("")
    return out


LEGEND = """\
Scores are on a 0–100 scale (success %; DMC: return / 10). Our cells: mean ± standard error over seeds
(ddof 1; `-` when there is one seed), the seed count in parentheses. `–`: missing (listed under
"Missing and failed"); `n/a`: does not apply. `†`: derived here from the paper's printed per-task
numbers, not printed in the paper; `‡`: recalled, not checked against the paper. Δ = ours − published.
Suite means need every task of the suite; MuJoCo-12 is the Theia paper's unweighted mean of its 12
MuJoCo tasks; "mean of suites" is the VC-1 paper's mean of suite means, over the suites this harness
runs. IQM: interquartile mean of all runs over the row's tasks, with a 95% stratified-bootstrap
interval (Agarwal et al., NeurIPS 2021; {reps:,} resamples, seed {seed}). Every column is explained in
`results/README.md`."""


def render_markdown(
    board: Board,
    suite_names: dict[str, str],
    figures: list[Figure],
    runs_label: str = "results/runs",
    published_label: str = "results/published",
) -> str:
    failed = sum(p.kind == "failed" for p in board.problems)
    unusable = [p for p in board.problems if p.kind in ("malformed", "conflict")]
    malformed = sum(p.kind == "malformed" for p in board.problems)
    out = [
        "<!-- Generated by `nox -s leaderboard`; do not edit. `nox -s leaderboard -- --check` fails when it is stale. -->",
        "",
        "# Leaderboard",
        "",
        f"Built from the run records under `{runs_label}/` ({board.files} files: {board.ok} ok, {failed} failed, "
        f"{malformed} not usable) and the published numbers in `{published_label}/`. Record paths below are "
        f"relative to `{runs_label}/`.",
        "",
        LEGEND.format(reps=stats.BOOTSTRAP_REPS, seed=stats.BOOTSTRAP_SEED),
        "",
    ]
    for protocol in board.protocols:
        out += _protocol_section(protocol, suite_names, figures, published_label)
    out += ["## Records not used", ""]
    out += [f"- `{p.path}` ({p.kind}): {p.message}" for p in unusable] or ["- none"]
    return "\n".join(out).rstrip("\n") + "\n"


def render_csv(board: Board) -> str:
    """Long format: one line per (protocol, selection, row, column), missing entries included."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for protocol in board.protocols:
        for table in protocol.tables:
            for row in table.rows:
                other = _counterpart(table, row)
                extra = [c for c in row.entries if c not in table.columns]
                for column in table.columns + sorted(extra):
                    entry = row.entries.get(column, Entry())
                    theirs = other.entries.get(column) if other else None
                    published = theirs.value if theirs is not None else None
                    delta = entry.value - published if entry.value is not None and published is not None else None
                    note = entry.note
                    if entry.value is None and note == "missing" and row.source == "published" and column == IQM:
                        note = "n/a"
                    writer.writerow(
                        [
                            table.protocol,
                            table.selection,
                            "yes" if table.headline else "no",
                            row.model,
                            row.source,
                            row.label or "",
                            column,
                            number(entry.value, entry.decimals),
                            number(entry.se),
                            "" if entry.n is None else entry.n,
                            number(entry.low),
                            number(entry.high),
                            number(published, theirs.decimals) if theirs is not None else "",
                            number(delta),
                            number(entry.entropy, 4),
                            entry.version or "",
                            note,
                        ]
                    )
    return buffer.getvalue()
