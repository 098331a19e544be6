"""A task's protocol as data (`TaskSpec`) and the suite adapter protocol it delegates to.

Every field that changes what is measured (env id, camera, render size, horizon, history, proprio,
demo count, episode count, metric) lives here; changing one bumps `version`, records carry it, and
the leaderboard never averages across versions.

Behaviour lives in the suite's adapter module (`TaskSpec.adapter`, imported by name on first use), which
provides `make_env(spec, render_size, quality, horizon, render)`, `scripted_expert(spec)` and
`load_demos(spec, n, source, **kwargs) -> tasks.demos.DemoSet`; optional hooks (`expert_info`,
`check_official_paths`, `rerender_official_path`, `MINARI_DATASETS`) are described in tasks/demos;
`eval_start_stream(spec, seed, n)` is described at `EVAL_STARTS`.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from tasks.metrics import Episode, MetricSpec, get_metric, score

# What every suite adapter module provides (see the module docstring and docs/adding-a-task.md).
ADAPTER_FUNCTIONS = ("make_env", "scripted_expert", "load_demos")


# `protocol.eval_starts`: where evaluation episodes start. `reference`: as the reference code (episode i
# seeded seed + i, except where a suite's reference draws start states from a generator that runs on across
# episodes and evaluations: the adapter's `eval_start_stream`, DMC); `seeded`: episode i seeded seed + i
# at every evaluation, in every suite.
EVAL_STARTS = ("reference", "seeded")


class SimulatorMissingError(ImportError):
    """The task's simulator is not importable; the message holds the install command."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    suite: str
    version: int
    adapter: str  # the suite module (make_env, scripted_expert, ...), imported on first use
    env_id: str  # the id used with the installed simulator
    upstream_env_id: str  # the id CortexBench's reference code uses
    camera: str
    render_size: int
    horizon: int
    action_dim: int
    proprio_dim: int  # 0: no proprioception appended
    n_demos: int
    eval_episodes: int  # CortexBench's value; the theia protocol uses 25 everywhere
    metric: str  # a name in tasks.metrics.METRICS
    official_demo_file: str  # file name inside the official demo archive
    requires: tuple[str, ...]  # importable modules the simulator needs
    install_hint: str
    history: int = 3
    fusion: str = "flare"
    action_repeat: int = 1  # simulator control steps per policy step, inside the env (rewards summed)
    seeds: tuple[int, ...] = (100, 200, 300)
    proprio_key: str | None = None  # key in the official pickles' env_infos
    notes: str = ""

    # --- availability -------------------------------------------------------------------
    def missing_modules(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def available(self) -> bool:
        return not self.missing_modules()

    def require_simulator(self) -> None:
        missing = self.missing_modules()
        if missing:
            raise SimulatorMissingError(
                f"task {self.name!r} needs {', '.join(missing)}, which is not installed. Install it with: {self.install_hint}"
            )

    @property
    def metric_spec(self) -> MetricSpec:
        return get_metric(self.metric)

    # --- behaviour, delegated to the suite module ---------------------------------------
    def adapter_module(self) -> Any:
        """The suite's adapter module, imported without checking the simulator (adapters import it lazily)."""
        return importlib.import_module(self.adapter)

    def suite_module(self) -> Any:
        """The suite's adapter module; raises with the install command when the simulator is missing."""
        self.require_simulator()
        return self.adapter_module()

    def make_env(
        self,
        seed: int | None = None,
        render: bool = True,
        render_size: int | None = None,
        quality: str = "faithful",
        horizon: int | None = None,
    ):
        """A gymnasium env whose observations are {"pixels": uint8 HxWx3, "proprio": float32[k]} (+ suite extras)."""
        env = self.suite_module().make_env(
            self,
            render_size=render_size or self.render_size,
            quality=quality,
            horizon=horizon or self.horizon,
            render=render,
        )
        if seed is not None:
            env.reset(seed=seed)
        return env

    def demos(self, n: int | None = None, source: str = "official", **kwargs):
        """Demonstrations as a `tasks.demos.DemoSet`, from the suite's `load_demos` (official files, scripted
        experts, Minari, or a path); suites may take more keywords (TriFinger: `split="train" | "test"`)."""
        return self.adapter_module().load_demos(self, n=n or self.n_demos, source=source, **kwargs)

    def check_demos(self, source: str = "official", path: str | None = None) -> None:
        """Raise `DemosNotFoundError` now when the demos of `source` are not on disk (the adapter's optional
        `check_demos`), so a run fails before any encoder is built rather than after."""
        check = getattr(self.adapter_module(), "check_demos", None)
        if check is not None:
            check(self, source, path)

    def score(self, episodes: list[Episode]) -> float:
        """The protocol metric over episodes: success % or return / 10."""
        return score(self.metric, episodes)


__all__ = ["ADAPTER_FUNCTIONS", "EVAL_STARTS", "Episode", "SimulatorMissingError", "TaskSpec"]
