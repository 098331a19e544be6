"""The board model: from collected runs and published numbers to protocols, tables, rows and entries.

- Per (protocol, label, task): mean and standard error over seeds, for both the `best` and the `final`
  evaluation. A group whose records carry different task versions is reported and not averaged.
- Per row: suite means (mean of task means, only when every task of the suite is there), the Theia-style
  12-task MuJoCo mean, the VC-1-style mean of suite means (over every suite the harness runs), and the
  IQM over all runs with a stratified-bootstrap 95% interval (`experiments.leaderboard.stats`).
- Protocols are never mixed: every protocol has its own tables (the smoke protocol included). Only records
  that conform to their protocol (`experiments.conformance`) stand beside published rows; the others go to
  sections of their own, one per protocol and set of deviations, headed by the deviations, without
  published rows, never averaged with conforming records.
- Published rows hold the printed values of the published data; suite and 12-task means computed
  from printed per-task values are marked `derived`.

An `Entry` is one value of a leaderboard table (one row, one column), not an evaluation cell.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from experiments.leaderboard import stats
from experiments.leaderboard.collect import PROTOCOL_CONFIGS, SELECTIONS, Collection, Problem, Run
from experiments.leaderboard.published import Published, Source

MUJOCO12 = "mean:mujoco12"
SUITES_MEAN = "mean:suites"
IQM = "iqm"
# How the papers' printed aggregates are recomputed from their own entries (for the "printed aggregates" table):
# Theia Table 1's 14-task mean = the 12 MuJoCo tasks + Reach-Cube + ImageNav (paper §4.1, Tables 12 and 13);
# the VC-1 model card's "Mean Success" = the mean of its 7 benchmark columns.
PRINTED_AGGREGATES = {
    "mean:theia14": ("mujoco12", "trifinger-reach-cube", "suite:imagenav"),
    "mean:cortexbench7": tuple(
        f"suite:{s}" for s in ("adroit", "metaworld", "dmc", "trifinger", "objectnav", "imagenav", "mobilepick")
    ),
}


@dataclass(frozen=True)
class Entry:
    """One value of a table (row x column). `value` None: missing (or `note` = "n/a": does not apply)."""

    value: float | None = None
    se: float | None = None
    n: int | None = None
    low: float | None = None
    high: float | None = None
    note: str = "missing"
    decimals: int = 2
    entropy: float | None = None
    version: str | None = None  # the task version of our task entries


@dataclass
class Row:
    model: str  # display name: the published name, or our label when it has no published counterpart
    source: str  # ours | published
    label: str | None
    entries: dict[str, Entry]
    seeds: tuple[int, int] | None = None  # (fewest, most) seeds over the row's tasks
    entropy: float | None = None  # pooled (v2) when a `nox -s entropy` record exists, else mean of per-cell v1
    gmacs: float | None = None
    entropy_definition: str | None = None  # how `entropy` was made

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.model.lower(), 0 if self.source == "ours" else 1, self.label or "")

    def tasks_present(self, tasks: list[str]) -> list[str]:
        return [t for t in tasks if self.entries.get(t, Entry()).value is not None]


@dataclass
class Table:
    """One protocol under one selection (best or final). `protocol` names the section: the protocol, or for
    records that deviate from it, the protocol followed by its deviations in brackets."""

    protocol: str
    selection: str
    headline: bool
    tasks: list[str]
    suites: list[str]  # suites shown as columns
    rows: list[Row]

    @property
    def columns(self) -> list[str]:
        return [*self.tasks, *(f"suite:{s}" for s in self.suites), MUJOCO12, SUITES_MEAN, IQM]


@dataclass
class ProtocolBoard:
    """One protocol's section: its tables (both selections), the papers' printed aggregates, what is missing."""

    protocol: str
    headline: str
    headline_from: str
    tables: list[Table]  # headline selection first
    printed: list[tuple[str, str, Entry, Entry]]  # (model, column, printed, recomputed)
    missing: list[str]  # lines for the "missing and failed" list
    sources: list[Source]
    deviations: tuple[str, ...] = ()  # () for the protocol's conforming section
    # label -> task -> [(seed, per_eval)], for the learning-curve figures
    curves: dict[str, dict[str, list[tuple[int, tuple]]]] = field(default_factory=dict)
    screening: list[Screening] = field(default_factory=list)  # proxies vs this protocol's scores


@dataclass(frozen=True)
class Screening:
    """How well one screening proxy ranks encoders like the protocol's headline score does, from one source of
    scores (ours: conforming records; published: the papers' per-task numbers)."""

    proxy: str
    source: str  # ours | published
    correlation: stats.RankCorrelation
    tasks: int  # tasks with both a proxy value and a score, over all encoders


def screening_correlations(table: Table, proxies: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[Screening]:
    """For every proxy (proxy -> label -> task -> value) and both score sources: the rank correlation across
    encoders between the proxy and the headline score, each averaged over the tasks that have both."""
    out = []
    for source in ("ours", "published"):
        score = {
            row.label: {t: row.entries[t].value for t in table.tasks if row.entries.get(t, Entry()).value is not None}
            for row in table.rows
            if row.source == source and row.label and not is_reference(row.label)
        }
        for proxy in sorted(proxies):
            values = proxies[proxy]
            shared = {t for label in set(values) & set(score) for t in set(values[label]) & set(score[label])}
            if not shared:
                continue
            corr = stats.rank_correlation_over_tasks(values, score)
            out.append(Screening(proxy, source, corr, len(shared)))
    return out


@dataclass
class Board:
    """Every protocol's section, with the records that were not used and the record counts."""

    protocols: list[ProtocolBoard]
    problems: list[Problem]
    files: int
    ok: int


def _suite_entries(entries: dict[str, Entry], suite_tasks: dict[str, list[str]], groups=None) -> dict[str, Entry]:
    """Suite means (all tasks present), the 12-task mean and the mean of suite means, from task entries.

    `groups` (task -> seed values) gives bootstrap intervals for our rows; published rows have none.
    """
    note = "" if groups is not None else "derived"
    out: dict[str, Entry] = {}

    for suite, tasks in suite_tasks.items():
        key = f"suite:{suite}"
        if key in entries:  # printed by the paper
            continue
        if all(entries.get(t, Entry()).value is not None for t in tasks):
            out[key] = _mean_entry([entries[t].value for t in tasks], tasks, None, groups, note)
    return out


def _mean_entry(values: list[float], tasks: list[str], weights, groups, note: str) -> Entry:
    """The plain mean of `values`, with a bootstrap interval over `tasks` when seed values are known."""
    estimate = stats.mean(values)
    if groups is None:
        return Entry(estimate, note=note)
    interval = stats.mean_of_means_interval([groups[t] for t in tasks], weights=weights)
    return Entry(estimate, low=interval.low, high=interval.high, note=note)


def _aggregates(
    entries: dict[str, Entry], suite_tasks: dict[str, list[str]], mujoco12: list[str], groups=None
) -> dict[str, Entry]:
    note = "" if groups is not None else "derived"
    out = _suite_entries(entries, suite_tasks, groups)
    merged = entries | out
    present = [t for t in mujoco12 if merged.get(t, Entry()).value is not None]
    if mujoco12 and len(present) == len(mujoco12) and MUJOCO12 not in entries:
        out[MUJOCO12] = _mean_entry([merged[t].value for t in mujoco12], mujoco12, None, groups, note)
    suite_keys = [f"suite:{s}" for s in suite_tasks]
    if suite_keys and all(merged.get(k, Entry()).value is not None for k in suite_keys) and SUITES_MEAN not in entries:
        tasks = [t for s in suite_tasks for t in suite_tasks[s]]
        weights = [1.0 / (len(suite_tasks) * len(suite_tasks[s])) for s in suite_tasks for _ in suite_tasks[s]]
        out[SUITES_MEAN] = _mean_entry([merged[k].value for k in suite_keys], tasks, weights, groups, note)
    return out


REFERENCE_SUFFIX = " (reference)"
DEMOS_MODEL = "demonstrations (ceiling)"


def _encoder_spec(label: str | None):
    """The registered spec of a label's encoder, or None (not registered here, e.g. an uninstalled plug-in)."""
    if not label:
        return None
    try:
        import encoders

        return encoders.get_spec(label.split("@")[0].split("+")[0])
    except Exception:
        return None


def is_reference(label: str | None) -> bool:
    """Whether a label's "encoder" is the simulator state (the reference row), not a visual encoder."""
    spec = _encoder_spec(label)
    return spec is not None and spec.input == "state"


def _demo_row(runs: list[Run]) -> Row | None:
    """The demonstrations' own score per task (mean over the section's records of that task): what imitation
    is measured against. None when no record says."""
    by_task: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if run.demo_score is not None:
            by_task[run.task].append(run.demo_score)
    if not by_task:
        return None
    entries = {task: Entry(stats.mean(values), note="") for task, values in sorted(by_task.items())}
    return Row(DEMOS_MODEL, "demos", None, entries | {IQM: Entry(note="n/a")})


def _curves(runs: list[Run]) -> dict[str, dict[str, list[tuple[int, tuple]]]]:
    """label -> task -> [(seed, per_eval)] of every record with evaluations, seeds in order."""
    out: dict[str, dict[str, list[tuple[int, tuple]]]] = defaultdict(lambda: defaultdict(list))
    for run in sorted(runs, key=lambda r: (r.label, r.task, r.seed)):
        if run.per_eval:
            out[run.label][run.task].append((run.seed, run.per_eval))
    return {label: dict(tasks) for label, tasks in out.items()}


def _gmacs(label: str | None) -> float | None:
    """GMACs of the label's encoder, from the encoder registry (None when not registered or not known)."""
    spec = _encoder_spec(label)  # None: not registered here (e.g. a plug-in that is not installed): no point
    gmacs = float(spec.gmacs) if spec is not None else math.nan
    return gmacs if math.isfinite(gmacs) and gmacs > 0 else None  # unknown (NaN), or no encoder (the state: 0)


def _our_rows(
    runs: list[Run],
    selection: str,
    published: Published,
    suite_tasks,
    label_names,
    problems: list[Problem],
    pooled: Mapping[tuple[str, str], tuple[float, str]],
) -> list[Row]:
    by_label: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_label[run.label].append(run)
    rows = []
    for label in sorted(by_label):
        by_task: dict[str, list[Run]] = defaultdict(list)
        for run in by_label[label]:
            by_task[run.task].append(run)
        entries: dict[str, Entry] = {}
        groups: dict[str, list[float]] = {}
        seed_counts = []
        for task in sorted(by_task):
            task_runs = sorted(by_task[task], key=lambda r: r.seed)
            versions = sorted({str(r.version) for r in task_runs})
            if len(versions) > 1:
                entries[task] = Entry(note=f"mixed task versions {', '.join(versions)}: not averaged")
                if selection == SELECTIONS[0]:
                    problems.append(
                        Problem(
                            "mixed-versions",
                            f"{task_runs[0].protocol}/{label}/{task}",
                            f"task versions {', '.join(versions)} across seeds "
                            f"{', '.join(str(r.seed) for r in task_runs)}: not averaged; rerun the old ones",
                        )
                    )
                continue
            values = [getattr(r, selection) for r in task_runs]
            entropies = [r.entropy for r in task_runs if r.entropy is not None]
            groups[task] = values
            seed_counts.append(len(values))
            entries[task] = Entry(
                stats.mean(values),
                se=stats.standard_error(values),
                n=len(values),
                note="",
                version=versions[0],
                entropy=stats.mean(entropies) if entropies else None,
            )
        entries |= _aggregates(entries, suite_tasks, published.mujoco12(), groups)
        if groups:
            ordered = [groups[t] for t in sorted(groups)]
            interval = stats.iqm_interval(ordered)
            n_runs = sum(len(g) for g in ordered)
            entries[IQM] = Entry(
                interval.estimate,
                low=interval.low,
                high=interval.high,
                note=f"{len(ordered)} tasks, {n_runs} runs",
            )
        entropies = [r.entropy for t in groups for r in by_task[t] if r.entropy is not None]  # not mixed versions
        entropy, definition = (stats.mean(entropies), "v1: mean of per-task values") if entropies else (None, None)
        protocol = by_label[label][0].protocol
        if (protocol, label) in pooled:
            entropy, group = pooled[(protocol, label)]
            definition = f"v2: pooled over {group}"
        rows.append(
            Row(
                model=label + REFERENCE_SUFFIX if is_reference(label) else label_names.get(label, label),
                source="ours",
                label=label,
                entries=entries,
                seeds=(min(seed_counts), max(seed_counts)) if seed_counts else None,
                entropy=entropy,
                gmacs=_gmacs(label),
                entropy_definition=definition,
            )
        )
    return rows


def _published_rows(protocol: str, published: Published, suite_tasks) -> list[Row]:
    rows = []
    for model in published.models_for(protocol):
        values = published.values_for(protocol, model.name)
        if not values:
            continue
        entries = {v.column: Entry(v.value, note=v.status, decimals=v.decimals) for v in values}
        entries |= _aggregates(entries, suite_tasks, published.mujoco12())
        entries[IQM] = Entry(note="n/a")
        rows.append(Row(model.name, "published", model.label, entries, gmacs=_gmacs(model.label)))
    return rows


def _recompute(column: str, entries: dict[str, Entry], mujoco12: list[str]) -> Entry:
    parts = PRINTED_AGGREGATES.get(column)
    if not parts:
        return Entry(note="n/a")
    keys = [t for p in parts for t in (mujoco12 if p == "mujoco12" else [p])]
    if not all(entries.get(k, Entry()).value is not None for k in keys):
        return Entry()
    return Entry(stats.mean([entries[k].value for k in keys]), note="derived")


def _missing_lines(table: Table, problems: list[Problem], protocol: str, suite_tasks) -> list[str]:
    lines = []
    ours = [r for r in table.rows if r.source == "ours"]
    for row in ours:
        absent = [t for t in table.tasks if row.entries.get(t, Entry()).value is None]
        if absent:
            lines.append(
                f"`{row.label}` (ours): {len(absent)} of {len(table.tasks)} tasks without an ok record: "
                + ", ".join(absent)
            )
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for row in table.rows:
        if row.source != "published":
            continue
        has_tasks = any(row.entries.get(t, Entry()).value is not None for t in table.tasks)
        absent = tuple(t for t in table.tasks if row.entries.get(t, Entry()).value is None)
        if not has_tasks and table.tasks:
            groups[()].append(row.model)
        elif absent:
            groups[absent].append(row.model)
    for absent, models in sorted(groups.items()):
        names = f"published ({len(models)}: {', '.join(sorted(models, key=str.lower))})"
        if absent:
            lines.append(f"{names}: not in the paper: {', '.join(absent)}")
        else:
            lines.append(f"{names}: the paper gives no per-task numbers (suite level only)")
    for suite in table.suites:
        absent = [t for t in suite_tasks.get(suite, []) if t not in table.tasks]
        lacking = any(row.entries.get(f"suite:{suite}", Entry()).value is None for row in table.rows)
        if absent and lacking:
            lines.append(f"suite `{suite}` needs {', '.join(absent)}, which no row has under this protocol")
    for p in problems:
        if p.path.split("/")[0] != protocol:
            continue
        if p.kind == "failed":
            lines.append(f"failed run `{p.path}`: {p.message}")
        elif p.kind == "mixed-versions":
            lines.append(f"`{p.path}`: {p.message}")
    return lines


def build(
    collection: Collection,
    published: Published,
    headlines: Mapping[str, str],
    pooled: Mapping[tuple[str, str], tuple[float, str]] | None = None,
    screening: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]] | None = None,
) -> Board:
    """Every protocol's tables from the collected records and the published data. `headlines`: each
    protocol's configured headline selection (`collect.protocol_headlines`), used when no record says.
    `pooled`: (protocol, label) -> pooled feature-norm entropy and its group (`collect.collect_pooled_entropy`)."""
    pooled = pooled or {}
    screening = screening or {}
    problems = list(collection.problems)
    suite_tasks = {s: list(ts) for s, ts in published.suite_tasks().items()}
    known = {t.name for t in published.tasks}
    for run in sorted(collection.runs, key=lambda r: r.task):  # tasks the published files do not know yet
        task = published.task(run.task)
        if task is None and run.task not in known:
            suite_tasks.setdefault(run.suite, []).append(run.task)
            known.add(run.task)
        elif task is not None and task.suite != run.suite:
            problems.append(
                Problem(
                    "conflict",
                    run.path.as_posix(),
                    f"task {run.task} is in suite {run.suite!r} here, {task.suite!r} in results/published/tasks.csv",
                )
            )
    task_order = [t for ts in suite_tasks.values() for t in ts]
    by_section: dict[tuple[str, tuple[str, ...]], list[Run]] = defaultdict(list)
    for run in collection.runs:
        by_section[(run.protocol, run.deviations)].append(run)
    sections = set(by_section) | {(p, ()) for p in published.protocols()}
    boards = []
    for protocol, deviations in sorted(sections, key=lambda k: (k[0] == "smoke", k[0], k[1])):
        runs = by_section.get((protocol, deviations), [])
        section = f"{protocol} [{'; '.join(deviations)}]" if deviations else protocol
        voted = Counter(r.headline for r in runs if r.headline in SELECTIONS)
        if voted:
            headline = sorted(voted.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            headline_from = "the records' `scores.headline`"
            if len(voted) > 1:
                problems.append(
                    Problem(
                        "conflict",
                        f"{protocol}/",
                        f"records disagree on the headline selection ({dict(sorted(voted.items()))}); "
                        f"the tables lead with {headline!r}",
                    )
                )
        else:
            headline = headlines.get(protocol) or "best"
            headline_from = f"`{PROTOCOL_CONFIGS}/{protocol}.yaml`"
        pub_rows = [] if deviations else _published_rows(protocol, published, suite_tasks)
        seen_tasks = {r.task for r in runs} | {c for row in pub_rows for c in row.entries if c in task_order}
        tasks = [t for t in task_order if t in seen_tasks]
        seen_suites = {published.task(t).suite if published.task(t) else None for t in tasks}
        seen_suites |= {r.suite for r in runs}
        seen_suites |= {c.split(":", 1)[1] for row in pub_rows for c in row.entries if c.startswith("suite:")}
        suite_order = [*published.suite_names, *sorted(set(suite_tasks) - set(published.suite_names))]
        suites = [s for s in suite_order if s in seen_suites]
        label_names = published.label_names(protocol)
        tables = []
        for selection in sorted(SELECTIONS, key=lambda s: s != headline):
            rows = _our_rows(runs, selection, published, suite_tasks, label_names, problems, pooled) + pub_rows
            rows.sort(key=lambda r: r.key)
            demo_row = _demo_row(runs)
            rows += [demo_row] if demo_row else []  # last: the ceiling, not a model
            tables.append(Table(section, selection, selection == headline, tasks, suites, rows))
        printed = []
        for row in pub_rows:
            for column, entry in row.entries.items():
                if column.startswith(("mean:", "rank:")) and entry.note in ("printed", "recalled"):
                    printed.append((row.model, column, entry, _recompute(column, row.entries, published.mujoco12())))
        printed.sort(key=lambda p: (p[1], p[0].lower()))
        boards.append(
            ProtocolBoard(
                protocol=section,
                headline=headline,
                headline_from=headline_from,
                tables=tables,
                printed=printed,
                missing=[] if deviations else _missing_lines(tables[0], problems, protocol, suite_tasks),
                sources=[] if deviations else published.sources_for(protocol),
                deviations=deviations,
                curves=_curves(runs),
                screening=[] if deviations else screening_correlations(tables[0], screening.get(protocol, {})),
            )
        )
    problems.sort(key=lambda p: (p.kind, p.path, p.message))
    return Board(boards, problems, collection.files, len(collection.runs))


def row_score(row: Row, tasks: list[str]) -> tuple[float, str] | None:
    """The one number a row is plotted with: its 12-task MuJoCo mean when it has all 12 tasks, else the
    mean of the task means it has (basis "mean of k tasks"); None when it has no task value."""
    entry = row.entries.get(MUJOCO12)
    if entry is not None and entry.value is not None:
        return entry.value, "MuJoCo-12"
    present = row.tasks_present(tasks)
    if not present:
        return None
    return stats.mean([row.entries[t].value for t in present]), f"mean of {len(present)} task{'s' * (len(present) > 1)}"


RL_LABEL_SUFFIXES = ("+ppo", "+sac")  # RL cells' entropy comes from evaluation frames: never pooled with IL


def entropy_points(table: Table) -> list[tuple[Row, float, float, str]]:
    """(row, entropy, score, basis) for our imitation rows with both a feature-norm entropy and a score."""
    out = []
    for row in table.rows:
        score = row_score(row, table.tasks)
        imitation = not (row.label or "").endswith(RL_LABEL_SUFFIXES)
        if row.source == "ours" and imitation and row.entropy is not None and score is not None:
            out.append((row, row.entropy, *score))
    return out


def gmacs_points(table: Table) -> list[tuple[Row, float, float, str]]:
    """(row, GMACs, score, basis) for every row whose encoder is registered and that has a score."""
    out = []
    for row in table.rows:
        score = row_score(row, table.tasks)
        if row.gmacs is not None and score is not None:
            out.append((row, row.gmacs, *score))
    return out
