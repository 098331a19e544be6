"""CortexBench metrics, each as (per-episode value, aggregate) over `Episode`s.

- `success_last_step` (MetaWorld): success flag at the last step of the episode, in %.
- `return_div_10` (DMC): episode return / 1000 * 100 (eai-vc issue #14: normalise by 1000, not by demo return).
- `adroit_pen` / `adroit_relocate`: success if `goal_achieved` holds on more than 20 / 25 steps, in %.
- `scaled_success` (TriFinger): the env's scaled success (1 - final distance / initial distance, clipped at 0)
  at the last step, x 100 (eai-vc trifinger_vc `sim_traj_dict["scaled_success"][-1]`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tasks.spec import Episode


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


METRICS: dict[str, Callable[[Episode], float]] = {
    "success_last_step": _success_last_step,
    "return_div_10": _return_div_10,
    "adroit_pen": _goal_steps_above(20),
    "adroit_relocate": _goal_steps_above(25),
    "scaled_success": _scaled_success,
}


def episode_value(metric: str, ep: Episode) -> float:
    return METRICS[metric](ep)


def score(metric: str, episodes: list[Episode]) -> float:
    if not episodes:
        raise ValueError("no episodes to score")
    return float(np.mean([episode_value(metric, ep) for ep in episodes]))
