"""CortexBench's BC policy: mjrl's `BatchNormMLP` on fused frozen embeddings (+ proprio).

mjrl `FCNetworkWithBatchNorm` (aravindr93/mjrl @83d35df): BatchNorm1d on the input, then
[Linear -> Dropout -> ReLU] per hidden layer, then a Linear to the action. mjrl then multiplies
`list(model.parameters())[-2:]` by 0.01 "to make the last layer small". Because the module registers
`fc_layers` before `input_batchnorm`, those two parameters are the input BatchNorm's weight and
bias, not the last Linear layer: `small_init="mjrl"` (default) reproduces what the reference code
runs; `small_init="last_linear"` does what its comment says.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

SMALL_INITS = ("mjrl", "last_linear", "none")


class BatchNormMLP(nn.Module):
    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: tuple[int, ...] = (256, 256, 256),
        dropout: float = 0.0,
        small_init: str = "mjrl",
    ):
        super().__init__()
        sizes = (in_dim, *hidden, out_dim)
        self.fc_layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.input_batchnorm = nn.BatchNorm1d(in_dim)
        self.dropout = nn.Dropout(dropout)
        if small_init not in SMALL_INITS:
            raise ValueError(f"small_init must be one of {SMALL_INITS}, got {small_init!r}")
        with torch.no_grad():
            if small_init == "mjrl":
                for p in list(self.parameters())[-2:]:
                    p.mul_(1e-2)
            elif small_init == "last_linear":
                self.fc_layers[-1].weight.mul_(1e-2)
                self.fc_layers[-1].bias.mul_(1e-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_batchnorm(x)
        for layer in self.fc_layers[:-1]:
            x = torch.relu(self.dropout(layer(x)))
        return self.fc_layers[-1](x)


class MLPHead(nn.Module):
    """`policy=bc-mlp`: flattened fused history of vectors [B, K, D], then proprio, into the BatchNormMLP."""

    def __init__(
        self,
        history: int,
        embed_dim: int,
        proprio_dim: int,
        action_dim: int,
        hidden=(256, 256, 256),
        dropout: float = 0.0,
        small_init: str = "mjrl",
    ):
        super().__init__()
        self.mlp = BatchNormMLP(history * embed_dim + proprio_dim, action_dim, tuple(hidden), dropout, small_init)

    def forward(self, embeddings: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([embeddings.flatten(1), proprio], dim=1))
