"""Theia's policy for spatial tokens: a 3-layer conv neck, then the BatchNormMLP (`policy=bc-conv`).

Paper Table 8 (arXiv:2407.20179): Conv2d(C*K, 256, k4, s2, p1) - ReLU - Conv2d(256, 256, k3, s2) -
ReLU - Conv2d(256, 256, k3, s1) - ReLU - flatten, then proprio and the 256x3 BatchNormMLP. The repo's
`ConvBatchNormMLP` adds LayerNorms whose shapes fit only 14x14 grids; the paper's version without
them maps 14x14 -> 7 -> 3 -> 1 and 16x16 -> 8 -> 3 -> 1, so DINOv2/CLIP-L grids work too. The fused
history enters as channels in Theia's order `b (t h w c) -> b (c t) h w`.
"""

from __future__ import annotations

import torch
from torch import nn

from policies.bc_mlp import BatchNormMLP


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
        width: int = 256,
    ):
        super().__init__()
        self.grid = tuple(grid)
        self.neck = nn.Sequential(
            nn.Conv2d(token_dim * history, width, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, kernel_size=3, stride=2),
            nn.ReLU(),
            nn.Conv2d(width, width, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            neck_dim = self.neck(torch.zeros(1, token_dim * history, *self.grid)).shape[1]
        self.mlp = BatchNormMLP(neck_dim + proprio_dim, action_dim, tuple(hidden), dropout, small_init)

    def forward(self, tokens: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """tokens: [B, K, N, C] fused history of spatial tokens."""
        b, k, _, c = tokens.shape
        h, w = self.grid
        x = tokens.reshape(b, k, h, w, c).permute(0, 4, 1, 2, 3).reshape(b, c * k, h, w)  # (c t) channel order
        return self.mlp(torch.cat([self.neck(x), proprio], dim=1))
