"""The task registry: every `TaskSpec` in the suite modules, plus plug-ins, and the named groups of tasks.

Suite modules hold their specs as constants and import their simulator only inside functions, so
listing tasks works without any simulator installed. Other installed packages add tasks through the
entry-point group `cortexbench.tasks` (value: "package.module:attr", a `TaskSpec` or a sequence of them;
docs/adding-a-task.md), read with the same mechanism as `cortexbench.encoders` (`encoders.lookup`).
A plug-in task of a new suite forms its own group, named after its suite.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points

from encoders.lookup import plugin_objects, unknown_name
from tasks.spec import TaskSpec

ENTRY_POINT_GROUP = "cortexbench.tasks"
SUITE_MODULES = ("tasks.metaworld", "tasks.dmc", "tasks.adroit", "tasks.trifinger", "tasks.habitat")

# Groups are unions of suites, in CortexBench's order; `mujoco` is the Theia paper's 12-task subset.
# They name the benchmark's own tasks: a plug-in task joins its suite's group, not these.
GROUPS: dict[str, tuple[str, ...]] = {
    "mujoco": ("metaworld", "dmc", "adroit"),
    "cortexbench": ("adroit", "metaworld", "dmc", "trifinger", "imagenav", "objectnav", "mobilepick"),
}


@functools.cache
def _builtin_specs() -> list[TaskSpec]:
    specs = []
    for module_name in SUITE_MODULES:
        module = importlib.import_module(module_name)
        specs += [v for v in vars(module).values() if isinstance(v, TaskSpec)]
    return specs


@functools.cache
def all_tasks() -> dict[str, TaskSpec]:
    specs: dict[str, TaskSpec] = {}
    for spec in _builtin_specs() + plugin_objects(entry_points(group=ENTRY_POINT_GROUP), TaskSpec, "task"):
        if spec.name in specs:
            raise ValueError(f"task {spec.name!r} is defined twice")
        specs[spec.name] = spec
    return dict(sorted(specs.items()))


def suites() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for spec in all_tasks().values():
        out.setdefault(spec.suite, []).append(spec.name)
    return out


def groups() -> dict[str, list[str]]:
    """Every name that expands to several tasks: each suite, plus `mujoco` and `cortexbench`."""
    by_suite = suites()
    builtin = {spec.name for spec in _builtin_specs()}
    out = dict(by_suite)
    for group, members in GROUPS.items():
        out[group] = [t for suite in members for t in by_suite.get(suite, []) if t in builtin]
    return out


def get(name: str) -> TaskSpec:
    tasks = all_tasks()
    if name not in tasks:
        raise unknown_name("task", name, list(tasks) + list(groups()), "nox -s list -- tasks")
    return tasks[name]


def expand(names: str | list[str]) -> list[str]:
    """Task and group names (a list, or comma-separated) -> task names, in order, without repeats."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[str] = []
    for name in names:
        members = groups().get(name, [name])
        for task in members:
            get(task)  # validates, with did-you-mean
            if task not in out:
                out.append(task)
    return out
