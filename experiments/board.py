"""From run records and published numbers to leaderboard rows: what each table cell holds.

- Records are read from `<runs>/<protocol>/<label>/<task>/seed=<seed>.json` and checked with
  `experiments.records.validate` (unknown schema versions are rejected). A record that cannot be used is
  reported by path and skipped; the others still count. Only `status: ok` records are aggregated;
  failed ones are listed.
- Per (protocol, label, task): mean and standard error over seeds, for both the `best` and the `final`
  evaluation. A group whose records carry different task versions is reported and not averaged.
- Per row: suite means (mean of task means, only when every task of the suite is there), the Theia-style
  12-task MuJoCo mean, the VC-1-style mean of suite means (over every suite the harness runs), and the
  IQM over all runs with a stratified-bootstrap 95% interval (`experiments.aggregate`).
- Protocols are never mixed: every protocol has its own tables (the smoke protocol included).
- Published rows hold the printed values of `results/published/`; suite and 12-task means computed
  from printed per-task values are marked `derived`.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from experiments import aggregate
from experiments.published import Published
from experiments.records import SCHEMA_VERSION, validate

SELECTIONS = ("best", "final")
MUJOCO12 = "mean:mujoco12"
SUITES_MEAN = "mean:suites"
IQM = "iqm"
# How the papers' printed aggregates are recomputed from their own cells (for the "printed aggregates" table):
# Theia Table 1's 14-task mean = the 12 MuJoCo tasks + Reach-Cube + ImageNav (paper §4.1, Tables 12 and 13);
# the VC-1 model card's "Mean Success" = the mean of its 7 benchmark columns.
PRINTED_AGGREGATES = {
    "mean:theia14": ("mujoco12", "trifinger-reach-cube", "suite:imagenav"),
    "mean:cortexbench7": tuple(
        f"suite:{s}" for s in ("adroit", "metaworld", "dmc", "trifinger", "objectnav", "imagenav", "mobilepick")
    ),
}


@dataclass(frozen=True)
class Run:
    """One ok record, reduced to what the leaderboard uses."""

    path: Path
    protocol: str
    label: str
    encoder: str
    task: str
    suite: str
    version: object
    seed: int
    best: float
    final: float
    headline: str | None
    entropy: float | None


@dataclass(frozen=True)
class Problem:
    """A record that was not aggregated, or a group that was not averaged, and why."""

    kind: str  # malformed | failed | mixed-versions | conflict
    path: str  # relative to the runs folder
    message: str


@dataclass
class Collection:
    runs: list[Run] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse(path: Path, rel: str) -> Run | Problem:
    """A record file -> Run, or the Problem that keeps it out."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return Problem("malformed", rel, f"not readable JSON ({type(err).__name__}: {err})")
    if not isinstance(record, dict):
        return Problem("malformed", rel, "not a JSON object")
    if record.get("schema_version") != SCHEMA_VERSION:
        return Problem(
            "malformed",
            rel,
            f"schema_version {record.get('schema_version')!r} is not {SCHEMA_VERSION}, the version this "
            "leaderboard reads; rerun the cell with this harness (overwrite=true)",
        )
    issues = validate(record)
    if issues:
        return Problem("malformed", rel, "; ".join(issues))
    parts = Path(rel).parts
    if len(parts) != 4 or not parts[3].startswith("seed="):
        return Problem("malformed", rel, "not at <protocol>/<label>/<task>/seed=<seed>.json")
    protocol, label, task_dir, _ = parts
    try:
        task, encoder, scores = record["task"], record["encoder"], record["scores"]
        names = (record["protocol"]["name"], task["name"], task["suite"], encoder["name"])
    except (KeyError, TypeError) as err:
        return Problem("malformed", rel, f"missing protocol.name, task.name/suite or encoder.name ({err})")
    if record["status"] == "failed":
        error = record.get("error") or {}
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        kind = error.get("type", "error") if isinstance(error, dict) else "error"
        first_line = (str(message).strip().splitlines() or [""])[0][:160]
        return Problem("failed", rel, f"{kind}: {first_line}".rstrip(": "))
    if (names[0], names[1]) != (protocol, task_dir):
        return Problem(
            "malformed", rel, f"the record says protocol {names[0]!r} task {names[1]!r}; its path says otherwise"
        )
    if not isinstance(scores, dict) or not all(_finite(scores.get(k)) for k in SELECTIONS):
        return Problem("malformed", rel, "status ok but scores.best / scores.final are not finite numbers")
    if not isinstance(record.get("seed"), int) or parts[3] != f"seed={record['seed']}.json":
        return Problem("malformed", rel, f"seed {record.get('seed')!r} does not match the file name")
    entropy = record.get("feature_norm_entropy")
    entropy = entropy.get("value") if isinstance(entropy, dict) else None
    return Run(
        path=path,
        protocol=protocol,
        label=label,
        encoder=str(names[3]),
        task=str(names[1]),
        suite=str(names[2]),
        version=task.get("version"),
        seed=record["seed"],
        best=float(scores["best"]),
        final=float(scores["final"]),
        headline=scores.get("headline") or (record["protocol"] or {}).get("headline"),
        entropy=float(entropy) if _finite(entropy) else None,
    )


STDERR = "stderr"  # resolved when called, so that redirected streams (pytest's capsys) are honoured


def collect(runs_dir: str | Path, warn=STDERR) -> Collection:
    """Every record under `runs_dir`; unusable ones are reported (by path, on `warn`: a stream, STDERR or
    None) and skipped."""
    warn = sys.stderr if warn == STDERR else warn
    runs_dir = Path(runs_dir)
    out = Collection()
    if not runs_dir.is_dir():
        return out
    for path in sorted(runs_dir.rglob("seed=*.json")):
        out.files += 1
        rel = path.relative_to(runs_dir).as_posix()
        parsed = _parse(path, rel)
        if isinstance(parsed, Problem):
            out.problems.append(parsed)
            if warn is not None and parsed.kind == "malformed":
                print(f"leaderboard: skipped {path}: {parsed.message}", file=warn)
        else:
            out.runs.append(parsed)
    return out


# ---------------------------------------------------------------------------------------------- cells and rows


@dataclass(frozen=True)
class Cell:
    """One table cell. `value` None: missing (or `note` = "n/a": does not apply)."""

    value: float | None = None
    se: float | None = None
    n: int | None = None
    low: float | None = None
    high: float | None = None
    note: str = "missing"
    decimals: int = 2
    entropy: float | None = None
    version: str | None = None  # the task version of our task cells


@dataclass
class Row:
    model: str  # display name: the published name, or our label when it has no published counterpart
    source: str  # ours | published
    label: str | None
    cells: dict[str, Cell]
    seeds: tuple[int, int] | None = None  # (fewest, most) seeds over the row's tasks
    entropy: float | None = None  # mean feature-norm entropy over the row's ok records
    gmacs: float | None = None

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.model.lower(), 0 if self.source == "ours" else 1, self.label or "")

    def tasks_present(self, tasks: list[str]) -> list[str]:
        return [t for t in tasks if self.cells.get(t, Cell()).value is not None]


@dataclass
class Table:
    """One protocol under one selection (best or final)."""

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
    protocol: str
    headline: str
    headline_from: str
    tables: list[Table]  # headline selection first
    printed: list[tuple[str, str, Cell, Cell]]  # (model, cell, printed, recomputed)
    missing: list[str]  # lines for the "missing and failed" list
    sources: list


@dataclass
class Board:
    protocols: list[ProtocolBoard]
    problems: list[Problem]
    files: int
    ok: int


def protocol_headline(protocol: str) -> str | None:
    """The `headline` of `experiments/conf/protocol/<protocol>.yaml`, following its `defaults` chain."""
    from omegaconf import OmegaConf

    conf_dir = Path(__file__).resolve().parent / "conf" / "protocol"
    seen = set()
    queue = [protocol]
    while queue:
        name = queue.pop(0)
        path = conf_dir / f"{name}.yaml"
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        cfg = OmegaConf.to_container(OmegaConf.load(path))
        if cfg.get("headline"):
            return str(cfg["headline"])
        queue += [d for d in cfg.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    return None


def _suite_cells(cells: dict[str, Cell], suite_tasks: dict[str, list[str]], groups=None) -> dict[str, Cell]:
    """Suite means (all tasks present), the 12-task mean and the mean of suite means, from task cells.

    `groups` (task -> seed values) gives bootstrap intervals for our rows; published rows have none.
    """
    note = "" if groups is not None else "derived"
    out: dict[str, Cell] = {}

    for suite, tasks in suite_tasks.items():
        key = f"suite:{suite}"
        if key in cells:  # printed by the paper
            continue
        if all(cells.get(t, Cell()).value is not None for t in tasks):
            out[key] = _mean_cell([cells[t].value for t in tasks], tasks, None, groups, note)
    return out


def _mean_cell(values: list[float], tasks: list[str], weights, groups, note: str) -> Cell:
    """The plain mean of `values`, with a bootstrap interval over `tasks` when seed values are known."""
    estimate = aggregate.mean(values)
    if groups is None:
        return Cell(estimate, note=note)
    interval = aggregate.mean_of_means_interval([groups[t] for t in tasks], weights=weights)
    return Cell(estimate, low=interval.low, high=interval.high, note=note)


def _aggregates(
    cells: dict[str, Cell], suite_tasks: dict[str, list[str]], mujoco12: list[str], groups=None
) -> dict[str, Cell]:
    note = "" if groups is not None else "derived"
    out = _suite_cells(cells, suite_tasks, groups)
    merged = cells | out
    present = [t for t in mujoco12 if merged.get(t, Cell()).value is not None]
    if mujoco12 and len(present) == len(mujoco12) and MUJOCO12 not in cells:
        out[MUJOCO12] = _mean_cell([merged[t].value for t in mujoco12], mujoco12, None, groups, note)
    suite_keys = [f"suite:{s}" for s in suite_tasks]
    if suite_keys and all(merged.get(k, Cell()).value is not None for k in suite_keys) and SUITES_MEAN not in cells:
        tasks = [t for s in suite_tasks for t in suite_tasks[s]]
        weights = [1.0 / (len(suite_tasks) * len(suite_tasks[s])) for s in suite_tasks for _ in suite_tasks[s]]
        out[SUITES_MEAN] = _mean_cell([merged[k].value for k in suite_keys], tasks, weights, groups, note)
    return out


def _gmacs(label: str | None) -> float | None:
    """GMACs of the label's encoder, from the encoder registry (None when not registered or not known)."""
    if not label:
        return None
    name = label.split("@")[0].split("+")[0]
    try:
        import encoders

        gmacs = float(encoders.get_spec(name).gmacs)
    except Exception:  # not registered here (e.g. a plug-in that is not installed): no point on the plot
        return None
    return gmacs if math.isfinite(gmacs) and gmacs > 0 else None  # the registry may not know it (NaN)


def _our_rows(
    runs: list[Run], selection: str, published: Published, suite_tasks, label_names, problems: list[Problem]
) -> list[Row]:
    by_label: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_label[run.label].append(run)
    rows = []
    for label in sorted(by_label):
        by_task: dict[str, list[Run]] = defaultdict(list)
        for run in by_label[label]:
            by_task[run.task].append(run)
        cells: dict[str, Cell] = {}
        groups: dict[str, list[float]] = {}
        seed_counts = []
        for task in sorted(by_task):
            task_runs = sorted(by_task[task], key=lambda r: r.seed)
            versions = sorted({str(r.version) for r in task_runs})
            if len(versions) > 1:
                cells[task] = Cell(note=f"mixed task versions {', '.join(versions)}: not averaged")
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
            cells[task] = Cell(
                aggregate.mean(values),
                se=aggregate.standard_error(values),
                n=len(values),
                note="",
                version=versions[0],
                entropy=aggregate.mean(entropies) if entropies else None,
            )
        cells |= _aggregates(cells, suite_tasks, published.mujoco12(), groups)
        if groups:
            ordered = [groups[t] for t in sorted(groups)]
            interval = aggregate.iqm_interval(ordered)
            n_runs = sum(len(g) for g in ordered)
            cells[IQM] = Cell(
                interval.estimate,
                low=interval.low,
                high=interval.high,
                note=f"{len(ordered)} tasks, {n_runs} runs",
            )
        entropies = [r.entropy for t in groups for r in by_task[t] if r.entropy is not None]  # not mixed versions
        rows.append(
            Row(
                model=label_names.get(label, label),
                source="ours",
                label=label,
                cells=cells,
                seeds=(min(seed_counts), max(seed_counts)) if seed_counts else None,
                entropy=aggregate.mean(entropies) if entropies else None,
                gmacs=_gmacs(label),
            )
        )
    return rows


def _published_rows(protocol: str, published: Published, suite_tasks) -> list[Row]:
    rows = []
    for model in published.models_for(protocol):
        values = published.values_for(protocol, model.name)
        if not values:
            continue
        cells = {v.cell: Cell(v.value, note=v.status, decimals=v.decimals) for v in values}
        cells |= _aggregates(cells, suite_tasks, published.mujoco12())
        cells[IQM] = Cell(note="n/a")
        rows.append(Row(model.name, "published", model.label, cells, gmacs=_gmacs(model.label)))
    return rows


def _recompute(cell: str, cells: dict[str, Cell], mujoco12: list[str]) -> Cell:
    parts = PRINTED_AGGREGATES.get(cell)
    if not parts:
        return Cell(note="n/a")
    keys = [t for p in parts for t in (mujoco12 if p == "mujoco12" else [p])]
    if not all(cells.get(k, Cell()).value is not None for k in keys):
        return Cell()
    return Cell(aggregate.mean([cells[k].value for k in keys]), note="derived")


def _missing_lines(table: Table, problems: list[Problem], protocol: str, suite_tasks) -> list[str]:
    lines = []
    ours = [r for r in table.rows if r.source == "ours"]
    for row in ours:
        absent = [t for t in table.tasks if row.cells.get(t, Cell()).value is None]
        if absent:
            lines.append(
                f"`{row.label}` (ours): {len(absent)} of {len(table.tasks)} tasks without an ok record: "
                + ", ".join(absent)
            )
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for row in table.rows:
        if row.source != "published":
            continue
        has_tasks = any(row.cells.get(t, Cell()).value is not None for t in table.tasks)
        absent = tuple(t for t in table.tasks if row.cells.get(t, Cell()).value is None)
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
        lacking = any(row.cells.get(f"suite:{suite}", Cell()).value is None for row in table.rows)
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


def build(collection: Collection, published: Published) -> Board:
    """Every protocol's tables from the collected records and the published data."""
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
    by_protocol: dict[str, list[Run]] = defaultdict(list)
    for run in collection.runs:
        by_protocol[run.protocol].append(run)
    protocols = sorted(set(by_protocol) | set(published.protocols()), key=lambda p: (p == "smoke", p))
    boards = []
    for protocol in protocols:
        runs = by_protocol.get(protocol, [])
        headlines = Counter(r.headline for r in runs if r.headline in SELECTIONS)
        if headlines:
            headline = sorted(headlines.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            headline_from = "the records' `scores.headline`"
            if len(headlines) > 1:
                problems.append(
                    Problem(
                        "conflict",
                        f"{protocol}/",
                        f"records disagree on the headline selection ({dict(sorted(headlines.items()))}); "
                        f"the tables lead with {headline!r}",
                    )
                )
        else:
            headline = protocol_headline(protocol) or "best"
            headline_from = f"`experiments/conf/protocol/{protocol}.yaml`"
        pub_rows = _published_rows(protocol, published, suite_tasks)
        seen_tasks = {r.task for r in runs} | {c for row in pub_rows for c in row.cells if c in task_order}
        tasks = [t for t in task_order if t in seen_tasks]
        seen_suites = {published.task(t).suite if published.task(t) else None for t in tasks}
        seen_suites |= {r.suite for r in runs}
        seen_suites |= {c.split(":", 1)[1] for row in pub_rows for c in row.cells if c.startswith("suite:")}
        suite_order = [*published.suite_names, *sorted(set(suite_tasks) - set(published.suite_names))]
        suites = [s for s in suite_order if s in seen_suites]
        label_names = published.label_names(protocol)
        tables = []
        for selection in sorted(SELECTIONS, key=lambda s: s != headline):
            rows = _our_rows(runs, selection, published, suite_tasks, label_names, problems) + pub_rows
            rows.sort(key=lambda r: r.key)
            tables.append(Table(protocol, selection, selection == headline, tasks, suites, rows))
        printed = []
        for row in pub_rows:
            for cell, value in row.cells.items():
                if cell.startswith(("mean:", "rank:")) and value.note in ("printed", "recalled"):
                    printed.append((row.model, cell, value, _recompute(cell, row.cells, published.mujoco12())))
        printed.sort(key=lambda p: (p[1], p[0].lower()))
        boards.append(
            ProtocolBoard(
                protocol=protocol,
                headline=headline,
                headline_from=headline_from,
                tables=tables,
                printed=printed,
                missing=_missing_lines(tables[0], problems, protocol, suite_tasks),
                sources=published.sources_for(protocol),
            )
        )
    problems.sort(key=lambda p: (p.kind, p.path, p.message))
    return Board(boards, problems, collection.files, len(collection.runs))


def row_score(row: Row, tasks: list[str]) -> tuple[float, str] | None:
    """The one number a row is plotted with: its 12-task MuJoCo mean when it has all 12 tasks, else the
    mean of the task means it has (basis "mean of k tasks"); None when it has no task value."""
    cell = row.cells.get(MUJOCO12)
    if cell is not None and cell.value is not None:
        return cell.value, "MuJoCo-12"
    present = row.tasks_present(tasks)
    if not present:
        return None
    return aggregate.mean(
        [row.cells[t].value for t in present]
    ), f"mean of {len(present)} task{'s' * (len(present) > 1)}"


def entropy_points(table: Table) -> list[tuple[Row, float, float, str]]:
    """(row, entropy, score, basis) for our rows with both a feature-norm entropy and a score."""
    out = []
    for row in table.rows:
        score = row_score(row, table.tasks)
        if row.source == "ours" and row.entropy is not None and score is not None:
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
