"""Demonstration sources behind one contract: `TaskSpec.demos(...)` -> `DemoSet`.

- `official` (`tasks/demos/official.py`): CortexBench's pickles, re-rendered from stored physics
  states where they have them (`tasks/demos/rerender.py`);
- `expert`, alias `scripted` (`tasks/demos/scripted.py`): the suite's offline expert, rendered like
  the evaluation and cached;
- `minari` (`tasks/demos/minari.py`): Minari's D4RL datasets, replayed and rendered (Adroit);
- a path to an official-format pickle.

`load_demos` here is the loader of the MuJoCo suites (MetaWorld, DMC, Adroit), which their adapter
modules export; a suite with its own file layout (TriFinger) exports its own `load_demos`, returning
the same `DemoSet`.
"""

from __future__ import annotations

from pathlib import Path

from tasks.demos.demoset import Demo, DemoSet, DemosNotFoundError, demo_stats, lazy_demo
from tasks.demos.minari import load_minari_demos
from tasks.demos.official import (
    check_official,
    load_official,
    official_format_paths,
    official_path,
    read_official_paths,
    write_official_paths,
)
from tasks.demos.scripted import SCRIPTED_SEED_BASE, load_scripted
from tasks.spec import TaskSpec


def check_demos(spec: TaskSpec, source: str = "official", path: str | Path | None = None) -> None:
    """Fail now (`DemosNotFoundError`, naming the file and how to get it) when demos of `source` cannot be
    read; sources the harness makes itself (scripted, expert, minari) are always there to make."""
    if source == "official":
        check_official(spec, path)
    elif source not in ("scripted", "expert", "minari") and not official_path(spec, source).is_file():
        raise DemosNotFoundError(
            f"demos.source={source!r}: no demo file at {official_path(spec, source)} "
            "(expected official CortexBench pickle layout)"
        )


def load_demos(
    spec: TaskSpec,
    n: int,
    source: str = "official",
    path: str | Path | None = None,
    render_size: int | None = None,
    quality: str = "faithful",
    horizon: int | None = None,
    progress: bool = True,
    render: bool = True,
) -> DemoSet:
    """Demonstrations for `spec` from `source` = official | expert (alias scripted) | minari |
    <path to an official-format pickle>. `render=False`: simulator states instead of frames, which only
    the experts' demos have (the state reference)."""
    if not render and source not in ("scripted", "expert"):
        raise DemosNotFoundError(
            f"demos.source={source}: these demonstrations hold frames, not the simulator states encoder=state "
            "trains on; use demos.source=expert"
        )
    if source == "official":
        demos = load_official(spec, n, path, render_size, quality, progress)
    elif source in ("scripted", "expert"):
        size, length = render_size or spec.render_size, horizon or spec.horizon
        demos = load_scripted(spec, n, size, quality, length, progress, source, render)
    elif source == "minari":
        demos = load_minari_demos(spec, n, render_size or spec.render_size, quality, dataset_id=path, progress=progress)
    else:
        check_demos(spec, source)
        file = official_path(spec, source)
        demos = load_official(spec, n, file, render_size, quality, progress)
        demos.source = f"file:{file}"
    if horizon is not None:
        for d in demos.demos:
            d.truncate(horizon)
    return demos


__all__ = [
    "SCRIPTED_SEED_BASE",
    "Demo",
    "DemoSet",
    "DemosNotFoundError",
    "check_demos",
    "demo_stats",
    "lazy_demo",
    "load_demos",
    "official_format_paths",
    "official_path",
    "read_official_paths",
    "write_official_paths",
]
