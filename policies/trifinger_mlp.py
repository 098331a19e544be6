"""The TriFinger policy head of CortexBench: a deterministic MLP on fingertip positions + frozen embeddings.

eai-vc @ e782c35 `cortexbench/trifinger_vc/src/trifinger_vc/utils/policy.py: DeterministicPolicy`:
Linear(in, 2000) - ReLU - Linear(2000, 2000) - ReLU - Linear(2000, out), PyTorch's default init, no
normalisation, no dropout; at rollout the output is clipped to +-max_a (`clip_action`; 5 cm Reach,
8 cm Move). The input is `construct_policy`'s `ftpos_obj` state: fingertip positions (cm, 9) then the
image embedding, then for `goal_cond` (Move-Cube) the goal image's embedding. With the paper setting
`rep_to_policy: none` the embedding enters unchanged (the config default `linear_layer` would add a
trainable Linear(D, 784) + ReLU; not used here).

Both TriFinger heads (this one and `policies/trifinger_conv.py`) are called as `head(features, ft_pos)`,
where `features` is the frame's encoder output with the goal image's appended on the last axis
(`with_goal`), and `head.act(...)` is the clipped rollout action.
"""

from __future__ import annotations

import torch
from torch import nn

NAME = "trifinger-mlp"


def with_goal(features: torch.Tensor, goal: torch.Tensor | None) -> torch.Tensor:
    """The frame's features with the goal image's appended on the last axis: [embedding | goal embedding]
    for vectors (eai-vc's order), the goal's tokens as extra channels for spatial tokens (Theia)."""
    return features.float() if goal is None else torch.cat([features.float(), goal.float()], dim=-1)


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Linear - ReLU per hidden size, then a Linear to `out_dim` (PyTorch's default init)."""
    layers: list[nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def check_history(history: int) -> None:
    """TriFinger's policies see one frame (eai-vc has no frame history)."""
    if history != 1:
        raise ValueError(f"TriFinger heads read one frame, not a history of {history} (protocol.trifinger.history)")


class TriFingerMLP(nn.Module):
    def __init__(
        self,
        history: int,
        embed_dim: int,
        proprio_dim: int,
        action_dim: int,
        hidden: tuple[int, ...] = (2000, 2000),
        max_action: float = 8.0,
        goal_image: bool = False,
    ):
        super().__init__()
        check_history(history)
        in_dim = proprio_dim + embed_dim * (2 if goal_image else 1)
        self.policy = mlp(in_dim, tuple(hidden), action_dim)
        self.in_dim, self.out_dim, self.max_action = in_dim, action_dim, float(max_action)

    def forward(self, features: torch.Tensor, ft_pos: torch.Tensor) -> torch.Tensor:
        """The raw action (cm) from [fingertips (cm) | embedding (| goal embedding)]; training regresses it on
        the demos' fingertip deltas with MSE."""
        return self.policy(torch.cat([ft_pos.float(), features.float()], dim=1))

    @torch.no_grad()
    def act(self, features: torch.Tensor, ft_pos: torch.Tensor) -> torch.Tensor:
        """The rollout action: the output clipped to +-max_action, component-wise."""
        return self.forward(features, ft_pos).clamp(-self.max_action, self.max_action)
