"""Theia's policy heads as released (theia @59d0448): the MuJoCo conv neck with its LayerNorms
(`policy_heads.py: ConvBatchNormMLP`) and the TriFinger head (`trifinger/policy.py`), checked against the
release's layer lists and against shapes computed by running plain convolutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from encoders import get_spec
from policies import build_head, input_kind
from policies.bc_conv import ConvHead
from policies.conv_neck import conv_neck
from policies.trifinger_conv import TriFingerConv


def layer_list(neck: nn.Sequential) -> list[tuple]:
    """The neck as (kind, shape-defining numbers) per layer."""
    out = []
    for m in neck:
        if isinstance(m, nn.Conv2d):
            out.append(("conv", m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0]))
        elif isinstance(m, nn.LayerNorm):
            out.append(("layernorm", tuple(m.normalized_shape)))
        else:
            out.append((type(m).__name__,))
    return out


def conv_grids(in_channels: int, grid: tuple[int, int]) -> list[tuple[int, int]]:
    """(h, w) after each of the release's three convolutions, by running them (independent of the arithmetic)."""
    x = torch.zeros(1, in_channels, *grid)
    sizes = []
    for conv in (
        nn.Conv2d(in_channels, 256, kernel_size=4, stride=2, padding=1),
        nn.Conv2d(256, 256, kernel_size=3, stride=2),
        nn.Conv2d(256, 256, kernel_size=3, stride=1),
    ):
        x = conv(x)
        sizes.append(tuple(x.shape[2:]))
    return sizes


def released_mujoco_neck(in_channels: int, grid: tuple[int, int]) -> list[tuple]:
    """ConvBatchNormMLP's neck, with each LayerNorm over the (256, h, w) its convolution outputs."""
    (h1, w1), (h2, w2), (h3, w3) = conv_grids(in_channels, grid)
    return [
        ("conv", in_channels, 256, 4, 2, 1),
        ("layernorm", (256, h1, w1)),
        ("ReLU",),
        ("conv", 256, 256, 3, 2, 0),
        ("layernorm", (256, h2, w2)),
        ("ReLU",),
        ("conv", 256, 256, 3, 1, 0),
        ("layernorm", (256, h3, w3)),
        ("ReLU",),
        ("Flatten",),
    ]


def test_the_release_hard_codes_the_14x14_shapes():
    neck = released_mujoco_neck(3 * 8, (14, 14))
    assert [layer[1] for layer in neck if layer[0] == "layernorm"] == [(256, 7, 7), (256, 3, 3), (256, 1, 1)]


@pytest.mark.parametrize("grid", [(14, 14), (16, 16), (16, 14)])
def test_bc_conv_neck_is_the_released_one_for_the_grid(grid):
    head = ConvHead(3, 8, grid, proprio_dim=4, action_dim=2)
    assert layer_list(head.neck) == released_mujoco_neck(3 * 8, grid)
    assert head.mlp.fc_layers[0].in_features == 256 + 4
    assert head.eval()(torch.randn(5, 3, grid[0] * grid[1], 8), torch.randn(5, 4)).shape == (5, 2)


@pytest.mark.parametrize("grid", [(14, 14), (16, 16)])
def test_the_old_neck_without_layernorm_fails_the_check(grid):
    old = ConvHead(3, 8, grid, proprio_dim=4, action_dim=2, layer_norm=False)  # paper Table 8, the old head
    assert layer_list(old.neck) != released_mujoco_neck(3 * 8, grid)
    assert not any(isinstance(m, nn.LayerNorm) for m in old.neck)


def test_the_layernorms_normalise_each_sample_over_channels_and_positions():
    torch.manual_seed(0)
    neck = conv_neck(8, (16, 16), layer_norm=True)
    captured = []
    for m in neck:
        if isinstance(m, nn.LayerNorm):
            m.register_forward_hook(lambda mod, inp, out: captured.append(out))
    neck(torch.randn(2, 8, 16, 16))
    for out in captured:  # default affine (1, 0): zero mean, unit variance per sample
        flat = out.flatten(1)
        assert torch.allclose(flat.mean(1), torch.zeros(2), atol=1e-5)
        assert torch.allclose(flat.var(1, unbiased=False), torch.ones(2), atol=1e-3)


def test_a_grid_too_small_for_the_neck_is_refused():
    with pytest.raises(ValueError, match="too small"):
        conv_neck(8, (7, 7), layer_norm=True)


# --- TriFinger ---------------------------------------------------------------------------------------------
def released_trifinger_layers(in_channels: int, extra_dim: int, out_dim: int, grid) -> tuple[list, list]:
    """ConvBatchNormMLPDeterministicPolicy: neck (no LayerNorm) and policy MLP 256-256."""
    (h3, w3) = conv_grids(in_channels, grid)[-1]
    neck = [
        ("conv", in_channels, 256, 4, 2, 1),
        ("ReLU",),
        ("conv", 256, 256, 3, 2, 0),
        ("ReLU",),
        ("conv", 256, 256, 3, 1, 0),
        ("ReLU",),
        ("Flatten",),
    ]
    policy = [(256 * h3 * w3 + extra_dim, 256), (256, 256), (256, out_dim)]
    return neck, policy


@pytest.mark.parametrize(("goal_image", "action_dim"), [(False, 3), (True, 9)])
@pytest.mark.parametrize("grid", [(14, 14), (16, 16)])
def test_trifinger_conv_has_the_released_layers(grid, goal_image, action_dim):
    c = 6
    head = TriFingerConv(1, c, grid, proprio_dim=9, action_dim=action_dim, goal_image=goal_image)
    channels = 2 * c if goal_image else c  # construct_policy goal_cond: in_dim = (2C, H, W)
    neck, policy = released_trifinger_layers(channels, 9, action_dim, grid)
    assert layer_list(head.neck) == neck
    linears = [m for m in head.policy if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == policy
    assert [type(m).__name__ for m in head.policy] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]


def test_trifinger_conv_forward_matches_the_release_on_tiny_tokens():
    """The release's forward on its flat state [tokens (h w c) | fingertips], written out by hand."""
    torch.manual_seed(0)
    b, (h, w), c = 4, (14, 14), 5
    head = TriFingerConv(1, c, (h, w), proprio_dim=9, action_dim=9, goal_image=True, max_action=8.0)
    frame, goal, ft = torch.randn(b, h * w, c), torch.randn(b, h * w, c), torch.randn(b, 9)
    features = torch.cat([frame, goal], dim=-1)  # the goal's tokens as channels
    out = head(features, ft)
    assert out.shape == (b, 9)
    state = torch.cat([features.reshape(b, -1), ft], dim=1)  # b (h w c) + extra
    visual = state[:, :-9].reshape(b, h, w, 2 * c).permute(0, 3, 1, 2)  # einops 'b (h w c) -> b c h w'
    expected = head.policy(torch.cat([head.neck(visual), state[:, -9:]], dim=1))
    assert torch.allclose(out, expected)
    assert head.act(features * 100, ft).abs().max() <= 8.0


def test_trifinger_heads_come_from_the_policy_table():
    spec = get_spec("random-vit-tiny")
    assert input_kind("trifinger-conv") == "spatial" and input_kind("trifinger-mlp") == "vector"
    conv = build_head(
        "trifinger-conv", history=1, encoder_spec=spec, proprio_dim=9, action_dim=9, hidden=(256, 256), goal_image=True
    )
    assert conv.neck[0].in_channels == 2 * spec.token_dim and tuple(conv.grid) == spec.grid
    tokens = torch.randn(2, spec.n_tokens, 2 * spec.token_dim)
    assert conv.eval()(tokens, torch.randn(2, 9)).shape == (2, 9)
    mlp = build_head("trifinger-mlp", history=1, encoder_spec=spec, proprio_dim=9, action_dim=3, hidden=(2000, 2000))
    assert mlp.policy[0].in_features == 9 + spec.embed_dim
    with pytest.raises(ValueError, match="one frame"):
        build_head("trifinger-conv", history=3, encoder_spec=spec, proprio_dim=9, action_dim=3)
