"""The TriFinger policy head of CortexBench: a deterministic MLP on fingertip positions + frozen embeddings.

eai-vc @ e782c35 `cortexbench/trifinger_vc/src/trifinger_vc/utils/policy.py: DeterministicPolicy`:
Linear(in, 2000) - ReLU - Linear(2000, 2000) - ReLU - Linear(2000, out), PyTorch's default init, no
normalisation, no dropout; at rollout the output is clipped to +-max_a (`clip_action`; 5 cm Reach,
8 cm Move). The input is `construct_policy`'s `ftpos_obj` state: fingertip positions (cm, 9) then the
image embedding, then for `goal_cond` (Move-Cube) the goal image's embedding. With the paper setting
`rep_to_policy: none` the embedding enters unchanged (the config default `linear_layer` would add a
trainable Linear(D, 784) + ReLU; not used here).
"""

from __future__ import annotations

import torch
from torch import nn

NAME = "trifinger-mlp"


class TriFingerMLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (2000, 2000), max_action: float = 8.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, out_dim))
        self.policy = nn.Sequential(*layers)
        self.in_dim, self.out_dim, self.max_action = in_dim, out_dim, float(max_action)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The raw action (cm); training regresses it on the demos' fingertip deltas with MSE."""
        return self.policy(x)

    @torch.no_grad()
    def act(self, x: torch.Tensor) -> torch.Tensor:
        """The rollout action: the output clipped to +-max_action, component-wise."""
        return self.forward(x).clamp(-self.max_action, self.max_action)


def policy_input(ft_pos_cm: torch.Tensor, embedding: torch.Tensor, goal: torch.Tensor | None = None) -> torch.Tensor:
    """[fingertips (cm) | embedding | goal embedding] (eai-vc `get_bc_obs_vec_from_obs_dict`, ftpos_obj)."""
    parts = [ft_pos_cm, embedding] + ([goal] if goal is not None else [])
    return torch.cat([p.float() for p in parts], dim=1)
