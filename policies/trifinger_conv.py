"""Theia's TriFinger head: the conv neck on the spatial tokens, then an MLP 256-256 (`policy=trifinger-conv`).

theia @59d0448 `src/theia/utils/cortexbench/trifinger/policy.py` (`ConvBatchNormMLPDeterministicPolicy`,
`construct_policy`, type `ConvBatchNormMLP`): the visual part of the state, [h*w*c] tokens, is rearranged
`b (h w c) -> b c h w` and run through Conv2d(c, 256, k4, s2, p1) - ReLU - Conv2d(256, 256, k3, s2) - ReLU -
Conv2d(256, 256, k3, s1) - ReLU - Flatten (no LayerNorm, unlike the MuJoCo head); the 256-d result,
then the fingertip positions (`ftpos_obj`: extra_dim 9), feed Linear(256 + 9, 256) - ReLU - Linear(256, 256) -
ReLU - Linear(256, out); PyTorch's default init, neck built first. For Move-Cube (`goal_cond`) the neck
takes 2c channels: the goal image's tokens are concatenated to the frame's as channels (the frame's c
first; the code that builds the state is not released, this order is eai-vc's vector order). At rollout
the action is clipped to +-max_a, as in CortexBench. The release hard-codes a 14x14 grid; the neck here
follows the encoder's grid (`policies/conv_neck.py`).
"""

from __future__ import annotations

import torch
from torch import nn

from policies.conv_neck import WIDTH, conv_neck, neck_dim, tokens_to_map
from policies.trifinger_mlp import check_history, mlp

NAME = "trifinger-conv"


class TriFingerConv(nn.Module):
    def __init__(
        self,
        history: int,
        token_dim: int,
        grid: tuple[int, int],
        proprio_dim: int,
        action_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        max_action: float = 8.0,
        goal_image: bool = False,
        width: int = WIDTH,
    ):
        super().__init__()
        check_history(history)
        self.grid = tuple(grid)
        self.in_channels = token_dim * (2 if goal_image else 1)
        self.neck = conv_neck(self.in_channels, self.grid, layer_norm=False, width=width)
        self.policy = mlp(neck_dim(self.grid, width) + proprio_dim, tuple(hidden), action_dim)
        self.out_dim, self.max_action = action_dim, float(max_action)

    def forward(self, features: torch.Tensor, ft_pos: torch.Tensor) -> torch.Tensor:
        """features: [B, h*w, C] tokens (C = 2 x token_dim with the goal's); the raw action (cm)."""
        neck = self.neck(tokens_to_map(features.float(), self.grid))
        return self.policy(torch.cat([neck, ft_pos.float()], dim=1))

    @torch.no_grad()
    def act(self, features: torch.Tensor, ft_pos: torch.Tensor) -> torch.Tensor:
        """The rollout action: the output clipped to +-max_action, component-wise."""
        return self.forward(features, ft_pos).clamp(-self.max_action, self.max_action)
