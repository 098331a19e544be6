"""Evaluation rollouts: N episodes stepped together, the encoder overlapping the environments' steps.

Episode i is seeded seed + i and keeps its own frame history, so the per-episode results are those
of running the episodes one after another (tests/test_rollout.py checks this). Where the reference's start
states are not a function of seed + i (DMC's task generator runs on across episodes and evaluations), the
suite adapter's `eval_start_stream` gives each episode reset options that place it in that stream
(`start_options`, chosen by `protocol.eval_starts`). Actions are the
policy's deterministic output (the mean action, as `eval_mode=True` in mjrl's `sample_paths`).
The environments live in an env pool (`experiments.cells.envpool`), in this process or in workers.

The N episodes are split into G contiguous groups (`groups`, setting `eval_groups`). Each group has its
own frame history and its own encoder forward per step, on that group's frames only, and the loop is
pipelined: while the main process encodes group A and picks its actions, the workers step and render
group B. With G=1 it is lockstep: one forward over all N frames per step. Embeddings are computed per
group whatever the pool, so a serial and a process pool give bit-identical results for the same G; a
batched forward may round differently with its batch size, though, which is why G is part of what makes
a run (state-based cells, whose `embed` returns the state, give the same results for every G).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from experiments.cells.envpool import group_ranges
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
    groups: int = 1,
) -> list[Episode]:
    """Run len(seeds) episodes in `groups` pipelined groups (1: lockstep); `embed(observations) -> [B, ...]`
    is one batched encoder forward over a group's stacked observations (`pixels` [B,H,W,3]); state-based
    checks pass another `embed`. `options`: each episode's reset options (`start_options`), if any.

    A group stops stepping once all its episodes have terminated, and is not encoded after its last step."""
    from tqdm.auto import tqdm

    n = len(seeds)
    assert len(pool) == n, f"pool has {len(pool)} envs for {n} seeds"
    policy.eval()
    spans = group_ranges(n, groups)
    buffers = [HistoryBuffer(history) for _ in spans]
    steps = [0] * len(spans)  # steps each group has taken
    active = np.ones(n, dtype=bool)
    lengths = np.zeros(n, dtype=int)
    rewards = np.zeros((n, horizon))
    infos: dict[str, np.ndarray] = {}

    def submit(g: int, obs: dict[str, np.ndarray], hist: torch.Tensor) -> None:
        """Pick group g's actions from its history and start its step in the pool."""
        span = spans[g]
        with torch.no_grad():
            proprio = torch.as_tensor(obs["proprio"], dtype=torch.float32, device=device)
            actions = act(policy, fuse(hist.to(device), fusion), proprio)
        pool.submit_step(span, actions, active[span.start : span.stop].copy())

    first = pool.reset(seeds, options)
    for g, span in enumerate(spans):
        obs = {k: v[span.start : span.stop] for k, v in first.items()}
        submit(g, obs, buffers[g].reset(embed(obs)))
    waiting = deque(range(len(spans)))  # the groups with a step in flight, in submit order
    with tqdm(total=horizon, desc=desc, unit="step", leave=False, disable=None if progress else True) as bar:
        while waiting:
            g = waiting.popleft()
            span, t = spans[g], steps[g]
            obs, step_rewards, terminated, step_infos = pool.wait_step(span)
            stepped = np.flatnonzero(active[span.start : span.stop])  # positions in the group
            rewards[span.start + stepped, t] = step_rewards[stepped]
            for k in stepped:
                for key, value in step_infos[k].items():
                    infos.setdefault(key, np.zeros((n, horizon)))[span.start + k, t] = float(value)
            lengths[span.start + stepped] += 1
            active[span.start : span.stop] &= ~terminated
            steps[g] = t + 1
            bar.update(max(steps) - bar.n)
            if active[span.start : span.stop].any() and t < horizon - 1:
                submit(g, obs, buffers[g].push(embed(obs)))
                waiting.append(g)
    return [
        Episode(
            seed=int(seeds[i]),
            rewards=rewards[i, : lengths[i]],
            infos={k: v[i, : lengths[i]] for k, v in infos.items()},
        )
        for i in range(n)
    ]
