"""Evaluation rollouts: N episodes stepped in lockstep, one batched encoder forward per step.

Episode i is seeded seed + i and keeps its own frame history, so the per-episode results are those
of running the episodes one after another (tests/test_rollout.py checks this). Actions are the
policy's deterministic output (the mean action, as `eval_mode=True` in mjrl's `sample_paths`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from policies.fusion import HistoryBuffer, fuse
from tasks.spec import Episode


class SerialEnvPool:
    """N environments in this process, stepped one after another (rendering included)."""

    def __init__(self, make_env: Callable[[], object], n: int):
        self.envs = [make_env() for _ in range(n)]
        self._last: list[dict] = []

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, seeds: Sequence[int]) -> dict[str, np.ndarray]:
        observations = [env.reset(seed=int(s))[0] for env, s in zip(self.envs, seeds, strict=True)]
        self._last = observations
        return {k: np.stack([o[k] for o in observations]) for k in observations[0]}

    def step(self, actions: np.ndarray, active: np.ndarray):
        """Step the active envs; inactive ones (finished early) repeat their last observation."""
        results = []
        for i, env in enumerate(self.envs):
            if active[i]:
                results.append(env.step(actions[i]))
                self._last[i] = results[-1][0]
            else:
                results.append((self._last[i], 0.0, True, False, {}))
        obs = {k: np.stack([r[0][k] for r in results]) for k in results[0][0]}
        rewards = np.array([r[1] for r in results], dtype=np.float64)
        terminated = np.array([r[2] for r in results])
        infos = [r[4] for r in results]
        return obs, rewards, terminated, infos

    def close(self) -> None:
        for env in self.envs:
            env.close()


def rollout(
    pool,
    seeds: Sequence[int],
    horizon: int,
    embed: Callable[[dict[str, np.ndarray]], torch.Tensor],
    policy: nn.Module,
    history: int,
    fusion: str,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "eval",
) -> list[Episode]:
    """Run len(seeds) episodes in lockstep; `embed(observations) -> [N, ...]` is one batched encoder forward
    over the stacked observations (`pixels` [N,H,W,3]); state-based checks pass another `embed`."""
    from tqdm.auto import tqdm

    n = len(seeds)
    assert len(pool) == n, f"pool has {len(pool)} envs for {n} seeds"
    policy.eval()
    obs = pool.reset(seeds)
    buffer = HistoryBuffer(history)
    hist = buffer.reset(embed(obs))
    active = np.ones(n, dtype=bool)
    lengths = np.zeros(n, dtype=int)
    rewards = np.zeros((n, horizon))
    infos: dict[str, np.ndarray] = {}
    for t in tqdm(range(horizon), desc=desc, unit="step", leave=False, disable=None if progress else True):
        with torch.no_grad():
            proprio = torch.as_tensor(obs["proprio"], dtype=torch.float32, device=device)
            actions = policy(fuse(hist.to(device), fusion), proprio).cpu().numpy()
        obs, step_rewards, terminated, step_infos = pool.step(actions, active)
        rewards[active, t] = step_rewards[active]
        for i in np.flatnonzero(active):
            for key, value in step_infos[i].items():
                infos.setdefault(key, np.zeros((n, horizon)))[i, t] = float(value)
        lengths[active] += 1
        active &= ~terminated
        if not active.any():
            break
        if t < horizon - 1:
            hist = buffer.push(embed(obs))
    return [
        Episode(
            seed=int(seeds[i]),
            rewards=rewards[i, : lengths[i]],
            infos={k: v[i, : lengths[i]] for k, v in infos.items()},
        )
        for i in range(n)
    ]
