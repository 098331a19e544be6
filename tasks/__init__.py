"""CortexBench tasks: protocol-as-data specs, simulator adapters, demonstrations, metrics.

import tasks
t = tasks.get("metaworld-assembly")
env = t.make_env(seed=100)          # gymnasium env, obs {"pixels": uint8 HxWx3, "proprio": float32[k]}
demos = t.demos(n=25, source="official" | "scripted" | "<path>")   # the suite adapter's load_demos
t.score(episodes)                   # success % or return / 10
"""

from __future__ import annotations

from tasks.rendering import configure_headless_gl

configure_headless_gl()  # before any simulator imports mujoco

from tasks.metrics import Episode  # noqa: E402
from tasks.registry import all_tasks, expand, get, groups  # noqa: E402
from tasks.spec import TaskSpec  # noqa: E402


def available() -> list[TaskSpec]:
    """All registered tasks, including plug-ins, sorted by name (installed or not; see `TaskSpec.available()`)."""
    return list(all_tasks().values())


__all__ = ["Episode", "TaskSpec", "available", "expand", "get", "groups"]
