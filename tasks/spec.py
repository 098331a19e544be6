"""A task's protocol as data (`TaskSpec`), and the episode record its metric is computed from.

Every field that changes what is measured (env id, camera, render size, horizon, history, proprio,
demo count, episode count, metric) lives here; changing one bumps `version`, records carry it, and
the leaderboard never averages across versions.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Episode:
    """One evaluation episode: per-step rewards and the per-step info values the metric needs."""

    seed: int
    rewards: np.ndarray
    infos: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards))


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

    # --- behaviour, delegated to the suite module ---------------------------------------
    def suite_module(self) -> Any:
        """The suite's adapter module; raises with the install command when the simulator is missing."""
        self.require_simulator()
        return importlib.import_module(self.adapter)

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
        """Demonstrations as a `tasks.demos.DemoSet` (official pickles, scripted experts, or a path)."""
        from tasks.demos import load_demos

        return load_demos(self, n=n or self.n_demos, source=source, **kwargs)

    def score(self, episodes: list[Episode]) -> float:
        """The protocol metric over episodes: success % or return / 10."""
        from tasks.metrics import score

        return score(self.metric, episodes)
