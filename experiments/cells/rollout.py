"""Evaluation rollouts: N episodes stepped in lockstep, one batched encoder forward per step.

Episode i is seeded seed + i and keeps its own frame history, so the per-episode results are those
of running the episodes one after another (tests/test_rollout.py checks this). Where the reference's start
states are not a function of seed + i (DMC's task generator runs on across episodes and evaluations), the
suite adapter's `eval_start_stream` gives each episode reset options that place it in that stream
(`start_options`, chosen by `protocol.eval_starts`). Actions are the
policy's deterministic output (the mean action, as `eval_mode=True` in mjrl's `sample_paths`).
The environments live in an env pool (`experiments.cells.envpool`), in this process or in workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from policies.fusion import HistoryBuffer, fuse
from tasks.spec import EVAL_STARTS, Episode, TaskSpec


def act(policy: nn.Module, history: torch.Tensor, proprio: torch.Tensor) -> np.ndarray:
    """Deterministic actions, one environment at a time.

    A batched matmul may round differently from a batch of one, and over hundreds of steps such a
    difference can change an episode; evaluating the (small) head row by row, on fresh tensors, keeps
    each episode's actions independent of how many episodes run beside it.
    """
    rows = [policy(history[i : i + 1].clone(), proprio[i : i + 1].clone()) for i in range(len(history))]
    return torch.cat(rows).cpu().numpy()


def start_options(task: TaskSpec, mode: str, seed: int, n: int) -> Callable[[], list[dict | None]]:
    """`next_evaluation() -> reset options for the n episodes`, called once per evaluation, in order.

    `reference`: the suite's `eval_start_stream(spec, seed, n)` where its reference draws start states from a
    generator that outlives episodes (DMC); other suites reseed episode i with seed + i, as mjrl does, and get
    no options. `seeded`: no options anywhere (every evaluation starts episode i from seed + i)."""
    if mode not in EVAL_STARTS:
        raise ValueError(f"eval_starts={mode!r} is not one of {', '.join(EVAL_STARTS)}")
    stream = getattr(task.adapter_module(), "eval_start_stream", None)
    if mode == "reference" and stream is not None:
        return stream(task, seed, n)
    return lambda: [None] * n


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
    options: Sequence[dict | None] | None = None,
) -> list[Episode]:
    """Run len(seeds) episodes in lockstep; `embed(observations) -> [N, ...]` is one batched encoder forward
    over the stacked observations (`pixels` [N,H,W,3]); state-based checks pass another `embed`. `options`:
    each episode's reset options (`start_options`), if any."""
    from tqdm.auto import tqdm

    n = len(seeds)
    assert len(pool) == n, f"pool has {len(pool)} envs for {n} seeds"
    policy.eval()
    obs = pool.reset(seeds, options)
    buffer = HistoryBuffer(history)
    hist = buffer.reset(embed(obs))
    active = np.ones(n, dtype=bool)
    lengths = np.zeros(n, dtype=int)
    rewards = np.zeros((n, horizon))
    infos: dict[str, np.ndarray] = {}
    for t in tqdm(range(horizon), desc=desc, unit="step", leave=False, disable=None if progress else True):
        with torch.no_grad():
            proprio = torch.as_tensor(obs["proprio"], dtype=torch.float32, device=device)
            actions = act(policy, fuse(hist.to(device), fusion), proprio)
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
