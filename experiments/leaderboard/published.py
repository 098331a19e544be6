"""The published numbers the leaderboard puts beside ours, read from a folder the caller names
(`results/published/` in the repository; data, not code).

Files (each described in `results/published/README.md`):
- `sources.csv`: one row per published table: file, protocol it belongs to, table number, citation.
- one CSV per table, long format `model,cell,value,spread,status`; `cell` is a task name, `suite:<suite>`,
  `mean:<name>` or `rank:<name>`; `status` is `printed` (as in the paper) or `recalled` (not checked
  against the paper). Values the leaderboard derives (suite means, 12-task means) are not stored: they
  are computed from the printed per-task values and marked as derived in the tables.
- `models.csv`: (protocol, published model name) -> our encoder label (empty: no encoder here).
- `tasks.csv`: our task names, their suite, membership of the Theia paper's 12-task MuJoCo subset,
  and the column name in the paper; `suites.csv`: suite ids and display names, in table order.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("printed", "recalled")


@dataclass(frozen=True)
class Task:
    name: str
    suite: str
    mujoco12: bool
    paper_name: str


@dataclass(frozen=True)
class Source:
    id: str
    file: str
    protocol: str
    table: str
    citation: str
    checked: str


@dataclass(frozen=True)
class Model:
    protocol: str
    name: str
    label: str | None
    note: str


@dataclass(frozen=True)
class Value:
    source: str
    protocol: str
    model: str
    column: str  # the file's `cell`: a task name, `suite:<suite>`, `mean:<name>` or `rank:<name>`
    value: float
    spread: float | None
    status: str
    decimals: int  # as printed (the file keeps the paper's precision)


@dataclass
class Published:
    tasks: list[Task]
    suite_names: dict[str, str]
    sources: list[Source]
    models: list[Model]
    values: list[Value] = field(default_factory=list)

    def task(self, name: str) -> Task | None:
        return next((t for t in self.tasks if t.name == name), None)

    def suite_tasks(self) -> dict[str, list[str]]:
        """Suite -> its task names (the harness's suites, in `suites.csv` order)."""
        out: dict[str, list[str]] = {s: [] for s in self.suite_names}
        for t in self.tasks:
            out[t.suite].append(t.name)
        return {s: names for s, names in out.items() if names}

    def mujoco12(self) -> list[str]:
        return [t.name for t in self.tasks if t.mujoco12]

    def protocols(self) -> list[str]:
        return sorted({s.protocol for s in self.sources})

    def models_for(self, protocol: str) -> list[Model]:
        return [m for m in self.models if m.protocol == protocol]

    def label_names(self, protocol: str) -> dict[str, str]:
        """Our label -> the published model name it is compared with, under `protocol`."""
        return {m.label: m.name for m in self.models_for(protocol) if m.label}

    def values_for(self, protocol: str, model: str) -> list[Value]:
        return [v for v in self.values if v.protocol == protocol and v.model == model]

    def sources_for(self, protocol: str) -> list[Source]:
        return [s for s in self.sources if s.protocol == protocol]


class PublishedDataError(ValueError):
    """A published data file is malformed; the message names the file, the row and the fix."""


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise PublishedDataError(f"{path}: missing (it is part of the repository; restore it with git)")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != columns:
            raise PublishedDataError(f"{path}: header is {reader.fieldnames}, expected {list(columns)}")
        return list(reader)


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise PublishedDataError(f"{where}: {text!r} is not a number") from None


def load(directory: str | Path) -> Published:
    """Read and check every published data file; errors name the file and row."""
    directory = Path(directory)
    suite_names = {r["suite"]: r["name"] for r in _rows(directory / "suites.csv", ("suite", "name"))}
    tasks = []
    for i, r in enumerate(_rows(directory / "tasks.csv", ("task", "suite", "mujoco12", "paper_name")), start=2):
        if r["suite"] not in suite_names:
            raise PublishedDataError(f"{directory / 'tasks.csv'}:{i}: suite {r['suite']!r} is not in suites.csv")
        if r["mujoco12"] not in ("yes", "no"):
            raise PublishedDataError(f"{directory / 'tasks.csv'}:{i}: mujoco12 must be yes or no")
        tasks.append(Task(r["task"], r["suite"], r["mujoco12"] == "yes", r["paper_name"]))
    sources = [
        Source(r["source"], r["file"], r["protocol"], r["table"], r["citation"], r["checked"])
        for r in _rows(directory / "sources.csv", ("source", "file", "protocol", "table", "citation", "checked"))
    ]
    models = [
        Model(r["protocol"], r["model"], r["label"] or None, r["note"])
        for r in _rows(directory / "models.csv", ("protocol", "model", "label", "note"))
    ]
    published = Published(tasks, suite_names, sources, models)
    known = {(m.protocol, m.name) for m in models}
    task_names = {t.name for t in tasks}
    for source in sources:
        path = directory / source.file
        for i, r in enumerate(_rows(path, ("model", "cell", "value", "spread", "status")), start=2):
            where = f"{path}:{i}"
            if (source.protocol, r["model"]) not in known:
                raise PublishedDataError(
                    f"{where}: model {r['model']!r} has no row in models.csv for protocol {source.protocol!r}; "
                    "add one (label empty if no encoder here matches)"
                )
            kind, _, name = r["cell"].partition(":")
            if r["cell"] not in task_names and not (
                (kind == "suite" and name in suite_names) or (kind in ("mean", "rank") and name)
            ):
                raise PublishedDataError(
                    f"{where}: cell {r['cell']!r} is not a task in tasks.csv, suite:<suite in suites.csv>, "
                    "mean:<name> or rank:<name>"
                )
            if r["status"] not in STATUSES:
                raise PublishedDataError(f"{where}: status {r['status']!r} is not one of {STATUSES}")
            spread = _number(r["spread"], where) if r["spread"] else None
            decimals = len(r["value"].partition(".")[2])
            published.values.append(
                Value(
                    source.id,
                    source.protocol,
                    r["model"],
                    r["cell"],
                    _number(r["value"], where),
                    spread,
                    r["status"],
                    decimals,
                )
            )
    seen: set[tuple[str, str, str]] = set()
    for v in published.values:
        key = (v.protocol, v.model, v.column)
        if key in seen:
            raise PublishedDataError(f"{v.source}: {v.model} {v.column} appears twice under protocol {v.protocol}")
        seen.add(key)
    return published
