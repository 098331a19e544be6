"""Policy heads and frame-history fusion, checked against the reference definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders.lookup import UnknownNameError
from policies import build_head, input_kind
from policies.bc_conv import ConvHead
from policies.bc_mlp import BatchNormMLP
from policies.fusion import HistoryBuffer, fuse, history_indices


def test_batchnorm_mlp_has_mjrl_layer_order_and_small_init():
    torch.manual_seed(0)
    mlp = BatchNormMLP(10, 4, (256, 256, 256))
    assert [m.out_features for m in mlp.fc_layers] == [256, 256, 256, 4]
    # mjrl scales list(parameters())[-2:], which are the input BatchNorm's weight and bias
    assert torch.allclose(mlp.input_batchnorm.weight, torch.full((10,), 0.01))
    assert mlp.fc_layers[-1].weight.abs().max() > 0.01  # the last Linear keeps PyTorch's default init
    x = torch.randn(8, 10)
    mlp.eval()
    manual = torch.nn.functional.batch_norm(
        x,
        mlp.input_batchnorm.running_mean,
        mlp.input_batchnorm.running_var,
        mlp.input_batchnorm.weight,
        mlp.input_batchnorm.bias,
        eps=1e-5,
    )
    for layer in mlp.fc_layers[:-1]:
        manual = torch.relu(layer(manual))
    assert torch.allclose(mlp(x), mlp.fc_layers[-1](manual), atol=1e-6)


def test_last_linear_small_init_option_scales_the_output_layer():
    torch.manual_seed(0)
    reference = BatchNormMLP(10, 4, small_init="none")
    torch.manual_seed(0)
    scaled = BatchNormMLP(10, 4, small_init="last_linear")
    assert torch.allclose(scaled.fc_layers[-1].weight, 0.01 * reference.fc_layers[-1].weight)
    assert torch.allclose(scaled.input_batchnorm.weight, reference.input_batchnorm.weight)


def test_flare_fusion_matches_the_reference_formula():
    e = torch.arange(3 * 2, dtype=torch.float32).reshape(1, 3, 2) ** 2  # [e_{t-2}, e_{t-1}, e_t]
    fused = fuse(e, "flare")
    assert torch.equal(fused[0, 0], e[0, 1] - e[0, 0])
    assert torch.equal(fused[0, 1], e[0, 2] - e[0, 1])
    assert torch.equal(fused[0, 2], e[0, 2])
    assert torch.equal(fuse(e, "concat"), e)


def test_history_indices_pad_with_the_first_frame_of_each_demo():
    idx = history_indices([3, 2], history=3)
    assert idx.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [3, 3, 3], [3, 3, 4]]


def test_rollout_history_equals_training_history():
    """A policy sees at step t exactly the fused features it was trained on for frame t."""
    frames = torch.randn(6, 5)  # one episode's embeddings
    idx = history_indices([6], history=3)
    training = fuse(frames[torch.from_numpy(idx)], "flare")
    buffer = HistoryBuffer(3)
    seen = [fuse(buffer.reset(frames[:1]), "flare")[0]]
    for t in range(1, 6):
        seen.append(fuse(buffer.push(frames[t : t + 1]), "flare")[0])
    assert torch.allclose(torch.stack(seen), training)


@pytest.mark.parametrize("grid", [(14, 14), (16, 16)])
def test_conv_neck_reduces_14_and_16_grids_to_one_position(grid):
    head = ConvHead(3, 8, grid, proprio_dim=4, action_dim=2)
    assert head.mlp.fc_layers[0].in_features == 256 + 4
    assert head(torch.randn(5, 3, grid[0] * grid[1], 8), torch.randn(5, 4)).shape == (5, 2)


def test_conv_neck_input_uses_theias_channel_order():
    """Theia: observation (b, t*h*w*c) -> rearrange 'b (t h w c) -> b (c t) h w'."""
    b, t, h, w, c = 2, 3, 14, 14, 4
    tokens = torch.randn(b, t, h * w, c)
    flat = tokens.reshape(b, t * h * w * c)
    theia = flat.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3).reshape(b, c * t, h, w)  # einops semantics
    head = ConvHead(t, c, (h, w), 0, 2)
    captured = {}
    head.neck.register_forward_hook(lambda m, inp, out: captured.update(x=inp[0]))
    head.eval()(tokens, torch.zeros(b, 0))
    assert torch.equal(captured["x"], theia)


def test_heads_are_chosen_by_the_output_they_consume():
    from encoders import get_spec

    spec = get_spec("random-vit-tiny")
    assert input_kind("bc-mlp") == "vector" and input_kind("bc-conv") == "spatial"
    mlp = build_head("bc-mlp", history=3, encoder_spec=spec, proprio_dim=4, action_dim=4)
    assert mlp.mlp.fc_layers[0].in_features == 3 * 192 + 4
    with pytest.raises(UnknownNameError, match="Unknown policy 'bc-transformer'"):
        input_kind("bc-transformer")
    assert np.isfinite(mlp.eval()(torch.randn(2, 3, 192), torch.randn(2, 4)).detach().numpy()).all()


def test_a_policy_for_another_suite_stands_for_its_counterpart_there():
    from encoders import get_spec
    from experiments.settings import policy_for
    from policies import counterpart

    assert (
        counterpart("bc-conv", "trifinger") == "trifinger-conv"
        and counterpart("bc-mlp", "trifinger") == "trifinger-mlp"
    )
    assert counterpart("bc-conv", "imagenav") == "cortexbench-habitat"  # the suite's only policy
    vit, cnn = get_spec("random-vit-tiny"), get_spec("r3m-rn50")
    assert (
        policy_for("auto", vit, "trifinger") == "trifinger-conv"
        and policy_for("auto", cnn, "trifinger") == "trifinger-mlp"
    )
    assert (
        policy_for("auto", vit, "metaworld") == "bc-conv"
        and policy_for("trifinger-mlp", vit, "trifinger") == "trifinger-mlp"
    )
