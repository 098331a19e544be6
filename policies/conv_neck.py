"""Theia's conv neck: three convolutions that compress a grid of spatial tokens before an MLP.

The released MuJoCo head (theia @59d0448 `src/theia/utils/cortexbench/policy_heads.py: ConvBatchNormMLP`),
which produced the paper's numbers (theia issue #19), runs
Conv2d(C_in, 256, k4, s2, p1) - LayerNorm([256, 7, 7]) - ReLU - Conv2d(256, 256, k3, s2) -
LayerNorm([256, 3, 3]) - ReLU - Conv2d(256, 256, k3, s1) - LayerNorm([256, 1, 1]) - ReLU - Flatten.
Paper Table 8 lists the same convolutions without the LayerNorms. The release hard-codes the LayerNorm
shapes of a 14x14 grid (patch 16 at 224 px); `neck_grids` derives them for any grid from the convolution
arithmetic, e.g. 16x16 (patch 14 at 224 px) -> 8x8 -> 3x3 -> 1x1. The released TriFinger head
(`trifinger/policy.py: ConvBatchNormMLPDeterministicPolicy`) uses the same convolutions without LayerNorm.
"""

from __future__ import annotations

from torch import nn

CONVS = ((4, 2, 1), (3, 2, 0), (3, 1, 0))  # (kernel, stride, padding) of the three convolutions
WIDTH = 256  # channels of every convolution


def conv_output(size: int, kernel: int, stride: int, padding: int) -> int:
    """The output length of a convolution along one axis (no dilation)."""
    return (size + 2 * padding - kernel) // stride + 1


def neck_grids(grid: tuple[int, int]) -> list[tuple[int, int]]:
    """(h, w) after each convolution of the neck; a grid too small for the last one is refused."""
    h, w = grid
    out = []
    for kernel, stride, padding in CONVS:
        h, w = conv_output(h, kernel, stride, padding), conv_output(w, kernel, stride, padding)
        if h < 1 or w < 1:
            raise ValueError(f"a {grid[0]}x{grid[1]} token grid is too small for the conv neck (at least 14x14)")
        out.append((h, w))
    return out


def conv_neck(in_channels: int, grid: tuple[int, int], layer_norm: bool, width: int = WIDTH) -> nn.Sequential:
    """The neck on a [B, in_channels, h, w] map, flattened at the end; `layer_norm` puts a LayerNorm over
    (channels, h, w) after each convolution, as the released MuJoCo head does."""
    layers: list[nn.Module] = []
    channels = in_channels
    for (kernel, stride, padding), (h, w) in zip(CONVS, neck_grids(grid), strict=True):
        layers.append(nn.Conv2d(channels, width, kernel_size=kernel, stride=stride, padding=padding))
        if layer_norm:
            layers.append(nn.LayerNorm([width, h, w]))
        layers.append(nn.ReLU())
        channels = width
    layers.append(nn.Flatten())
    return nn.Sequential(*layers)


def neck_dim(grid: tuple[int, int], width: int = WIDTH) -> int:
    """Length of the neck's flattened output: width x the last grid (256 for 14x14 and 16x16)."""
    h, w = neck_grids(grid)[-1]
    return width * h * w


def tokens_to_map(tokens, grid: tuple[int, int]):
    """[B, h*w, C] tokens in row-major grid order -> [B, C, h, w] (einops 'b (h w c) -> b c h w' on the flat row)."""
    b, _, c = tokens.shape
    return tokens.reshape(b, grid[0], grid[1], c).permute(0, 3, 1, 2)
