"""A state-based sanity run through the harness's own training epoch and lockstep rollout:
BC on scripted-expert demonstrations must clearly beat a random policy (so the loop is right)."""

from __future__ import annotations

import numpy as np
import torch

import tasks
from experiments.cells.bc import bc_epoch
from experiments.cells.envpool import SerialEnvPool
from experiments.cells.features import DemoFeatures
from experiments.cells.rollout import rollout
from policies.bc_mlp import MLPHead
from policies.fusion import history_indices

TASK, HORIZON, N_DEMOS, N_EVAL = "metaworld-drawer-open", 150, 25, 10


def _expert_demos(spec):
    expert = spec.suite_module().scripted_expert(spec)
    env = spec.make_env(render=False, horizon=HORIZON)
    states, proprio, actions, lengths = [], [], [], []
    for i in range(N_DEMOS):
        obs, _ = env.reset(seed=5_000 + i)
        for _ in range(HORIZON):
            action = expert(obs)
            states.append(obs["state"])
            proprio.append(obs["proprio"])
            actions.append(action)
            obs, *_ = env.step(action)
        lengths.append(HORIZON)
    env.close()
    return DemoFeatures(
        embeddings=np.asarray(states, np.float32),
        proprio=np.asarray(proprio, np.float32),
        actions=np.clip(np.asarray(actions, np.float32), -1, 1),
        history_index=history_indices(lengths, 3),
        norms=np.zeros((1, 1)),
        cache={},
    )


class RandomPolicy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, history, proprio):
        return torch.rand(len(history), 4, generator=self.generator) * 2 - 1


def test_bc_on_expert_states_beats_a_random_policy():
    spec = tasks.get(TASK)
    feats = _expert_demos(spec)
    torch.manual_seed(0)
    head = MLPHead(history=3, embed_dim=39, proprio_dim=4, action_dim=4)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    losses = [bc_epoch(head, optimizer, feats, 256, "flare", generator, "cpu") for _ in range(100)]
    assert losses[-1] < 0.5 * losses[0]

    pool = SerialEnvPool(lambda: spec.make_env(render=False, horizon=HORIZON), N_EVAL)
    seeds = list(range(100, 100 + N_EVAL))
    embed = lambda obs: torch.as_tensor(obs["state"], dtype=torch.float32)  # noqa: E731
    try:
        bc = spec.score(rollout(pool, seeds, HORIZON, embed, head, 3, "flare"))
        chance = spec.score(rollout(pool, seeds, HORIZON, embed, RandomPolicy(), 3, "flare"))
    finally:
        pool.close()
    assert bc >= 80, f"BC success {bc}% on expert states"
    assert bc >= chance + 50, f"BC {bc}% vs random {chance}%"
