"""What a metric needs from an episode: the `Episode` record and one `MetricSpec` per CortexBench metric.

- `success_last_step` (MetaWorld): success flag at the last step of the episode, in %.
- `return_div_10` (DMC): episode return / 1000 * 100 (eai-vc issue #14: normalise by 1000, not by demo return).
- `adroit_pen` / `adroit_relocate`: success if `goal_achieved` holds on more than 20 / 25 steps, in %.
- `scaled_success` (TriFinger): the env's scaled success (1 - final distance / initial distance, clipped at 0)
  at the last step, x 100 (eai-vc trifinger_vc `sim_traj_dict["scaled_success"][-1]`).

This module imports nothing else from `tasks`, so specs, demo sources and loops can all depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class MetricSpec:
    """A metric as data: the per-episode value, the per-step info key it reads, and its direction.

    `binary` metrics give 100 or 0 per episode (a success flag), so a demonstration's success can be
    read from them; graded ones (returns, scaled success) have no notion of a successful episode.
    """

    name: str
    value: Callable[[Episode], float]
    info_key: str | None  # the per-step info the value reads (None: rewards only)
    binary: bool
    higher_is_better: bool = True


def _success_last_step(ep: Episode) -> float:
    return 100.0 * float(ep.infos["success"][-1] > 0)


def _return_div_10(ep: Episode) -> float:
    return ep.total_return / 10.0


def _goal_steps_above(threshold: int) -> Callable[[Episode], float]:
    def value(ep: Episode) -> float:
        return 100.0 * float(np.sum(ep.infos["goal_achieved"]) > threshold)

    return value


def _scaled_success(ep: Episode) -> float:
    return 100.0 * float(ep.infos["scaled_success"][-1])


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("success_last_step", _success_last_step, info_key="success", binary=True),
        MetricSpec("return_div_10", _return_div_10, info_key=None, binary=False),
        MetricSpec("adroit_pen", _goal_steps_above(20), info_key="goal_achieved", binary=True),
        MetricSpec("adroit_relocate", _goal_steps_above(25), info_key="goal_achieved", binary=True),
        MetricSpec("scaled_success", _scaled_success, info_key="scaled_success", binary=False),
    )
}


def get_metric(name: str) -> MetricSpec:
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name]


def episode_value(metric: str, ep: Episode) -> float:
    return get_metric(metric).value(ep)


def score(metric: str, episodes: list[Episode]) -> float:
    if not episodes:
        raise ValueError("no episodes to score")
    return float(np.mean([episode_value(metric, ep) for ep in episodes]))


def episode_success(metric: str, rewards: np.ndarray, infos: dict) -> bool | None:
    """Whether an episode succeeded by `metric` (None for graded metrics, or when its info is missing)."""
    spec = get_metric(metric)
    key = spec.info_key
    if not spec.binary or key is None or key not in infos or not len(infos[key]):
        return None
    episode = Episode(0, np.asarray(rewards), {key: np.asarray(infos[key], dtype=np.float64)})
    return spec.value(episode) > 0
