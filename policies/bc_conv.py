"""Theia's policy for spatial tokens: the conv neck, then the BatchNormMLP (`policy=bc-conv`).

The neck is the released head's (theia @59d0448 `policy_heads.py: ConvBatchNormMLP`; `policies/conv_neck.py`):
three convolutions, each followed by a LayerNorm over (channels, h, w) and a ReLU, then flatten; the 256-d
output and the proprioception feed mjrl's 256x3 BatchNormMLP. Paper Table 8 omits the LayerNorms, but the
maintainers say the released head produced the numbers (theia issue #19), so it is followed
(`layer_norm=False` builds the Table 8 variant). The LayerNorm shapes follow the grid: 14x14 -> 7 -> 3 -> 1
as released, 16x16 -> 8 -> 3 -> 1 for DINOv2 / CLIP-L/14. The fused history enters as channels in Theia's
order `b (t h w c) -> b (c t) h w`.
"""

from __future__ import annotations

import torch
from torch import nn

from policies.bc_mlp import BatchNormMLP
from policies.conv_neck import WIDTH, conv_neck, neck_dim


class ConvHead(nn.Module):
    def __init__(
        self,
        history: int,
        token_dim: int,
        grid: tuple[int, int],
        proprio_dim: int,
        action_dim: int,
        hidden=(256, 256, 256),
        dropout: float = 0.0,
        small_init: str = "mjrl",
        width: int = WIDTH,
        layer_norm: bool = True,
    ):
        super().__init__()
        self.grid = tuple(grid)
        self.neck = conv_neck(token_dim * history, self.grid, layer_norm, width)
        self.mlp = BatchNormMLP(
            neck_dim(self.grid, width) + proprio_dim, action_dim, tuple(hidden), dropout, small_init
        )

    def forward(self, tokens: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """tokens: [B, K, N, C] fused history of spatial tokens."""
        b, k, _, c = tokens.shape
        h, w = self.grid
        x = tokens.reshape(b, k, h, w, c).permute(0, 4, 1, 2, 3).reshape(b, c * k, h, w)  # (c t) channel order
        return self.mlp(torch.cat([self.neck(x), proprio], dim=1))
