"""The task registry: every `TaskSpec` in the suite modules, and the named groups of tasks.

Suite modules hold their specs as constants and import their simulator only inside functions, so
listing tasks works without any simulator installed.
"""

from __future__ import annotations

import functools
import importlib

from encoders.lookup import unknown_name
from tasks.spec import TaskSpec

SUITE_MODULES = ("tasks.metaworld", "tasks.dmc", "tasks.adroit", "tasks.trifinger", "tasks.habitat")

# Groups are unions of suites, in CortexBench's order; `mujoco` is the Theia paper's 12-task subset.
GROUPS: dict[str, tuple[str, ...]] = {
    "mujoco": ("metaworld", "dmc", "adroit"),
    "cortexbench": ("adroit", "metaworld", "dmc", "trifinger", "imagenav", "objectnav", "mobilepick"),
}


@functools.cache
def all_tasks() -> dict[str, TaskSpec]:
    specs: dict[str, TaskSpec] = {}
    for module_name in SUITE_MODULES:
        module = importlib.import_module(module_name)
        for spec in vars(module).values():
            if isinstance(spec, TaskSpec):
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
    out = dict(by_suite)
    for group, members in GROUPS.items():
        out[group] = [t for suite in members for t in by_suite.get(suite, [])]
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
