"""The zoo's upstream checkpoint layouts, offline: a random model saved the way each family publishes
its weights loads through `weights=<path>` and gives the features of an independent reference
(torchvision, transformers, or the upstream arithmetic); wrong or truncated files are refused with
the key difference named."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import encoders
from encoders.checkpoints import CheckpointMismatchError, load_strict
from encoders.frozen import build_module
from encoders.lookup import resolve
from encoders.preprocess import preprocess
from tests.test_checkpoints import _hf_vit_v4_state

FRAMES = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)


def _perturbed(state: dict[str, torch.Tensor], seed: int = 7) -> dict[str, torch.Tensor]:
    """Float tensors moved away from the registry's seeded init, so a silent no-op load cannot pass."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: (v + 0.02 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone())
        for k, v in state.items()
    }


def _input(spec_name: str) -> torch.Tensor:
    return preprocess(FRAMES, encoders.get_spec(spec_name).preprocess)


# --- R3M / VIP: {'r3m' | 'vip': DataParallel state dict}, ResNet under module.convnet. -----------------


def _torchvision_resnet50(fc: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    import torchvision

    net = torchvision.models.resnet50(weights=None)
    net.fc = fc
    net.load_state_dict(state)
    return net.eval()


@pytest.fixture(scope="module")
def r3m_file(tmp_path_factory):
    module = build_module(encoders.get_spec("r3m-rn50"))
    state = _perturbed(module.backbone.state_dict())
    agent = {f"module.convnet.{k}": v for k, v in state.items()}
    agent["module.lang_enc.model.embeddings.word_embeddings.weight"] = torch.zeros(8, 4)  # language head
    agent["module.lang_rew.pred.0.weight"] = torch.zeros(4, 4)
    path = tmp_path_factory.mktemp("r3m") / "r3m_50.pt"
    torch.save({"r3m": agent}, path)
    return path, state


def test_r3m_checkpoint_loads_with_the_features_of_torchvision_resnet50(r3m_file):
    path, state = r3m_file
    enc = encoders.load("r3m-rn50", weights=str(path))
    reference = _torchvision_resnet50(nn.Identity(), state)
    x = _input("r3m-rn50")
    with torch.inference_mode():
        expected = reference(x)  # R3M's representation: torchvision's own forward with fc = Identity
        fmap = reference.layer4(reference.layer3(reference.layer2(reference.layer1(
            reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        ))))  # fmt: skip
    out = enc.encode(FRAMES)
    assert out.vector.shape == (2, 2048) and out.tokens.shape == (2, 49, 2048) and out.grid == (7, 7)
    assert torch.allclose(out.vector, expected, atol=1e-5)
    assert torch.allclose(out.tokens, fmap.flatten(2).transpose(1, 2), atol=1e-5)


def test_a_truncated_r3m_checkpoint_is_refused_naming_the_missing_key(r3m_file, tmp_path):
    path, _ = r3m_file
    ckpt = torch.load(path, weights_only=True)
    del ckpt["r3m"]["module.convnet.layer4.2.bn3.running_var"]
    broken = tmp_path / "r3m_50.pt"
    torch.save(ckpt, broken)
    with pytest.raises(CheckpointMismatchError, match=r"missing keys: layer4\.2\.bn3\.running_var"):
        encoders.load("r3m-rn50", weights=str(broken))


def test_a_vip_checkpoint_is_refused_as_r3m_naming_the_layout(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"vip": {"module.convnet.fc.weight": torch.zeros(1024, 2048)}}, path)
    with pytest.raises(CheckpointMismatchError, match=r"R3M layout, a dict under 'r3m'; found top-level keys vip"):
        encoders.load("r3m-rn50", weights=str(path))


def test_vip_checkpoint_keeps_its_fc_and_matches_torchvision(tmp_path):
    module = build_module(encoders.get_spec("vip-rn50"))
    state = _perturbed(module.backbone.state_dict())
    path = tmp_path / "model.pt"
    torch.save({"vip": {f"module.convnet.{k}": v for k, v in state.items()}}, path)
    enc = encoders.load("vip-rn50", weights=str(path))
    reference = _torchvision_resnet50(nn.Linear(2048, 1024), state)
    with torch.inference_mode():
        expected = reference(_input("vip-rn50"))
    out = enc.encode(FRAMES)
    assert out.vector.shape == (2, 1024) and out.tokens.shape == (2, 49, 2048)
    assert torch.allclose(out.vector, expected, atol=1e-5)

    without_fc = {f"module.convnet.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    torch.save({"vip": without_fc}, path)
    with pytest.raises(CheckpointMismatchError, match=r"missing keys: fc\.bias, fc\.weight"):
        encoders.load("vip-rn50", weights=str(path))


# --- MVP ViT-L: MAE {'model': ...} trained at 256 px, loaded into the 224 model ------------------------


def test_mvp_large_256_checkpoint_is_resized_to_224_as_eai_vc_does(tmp_path):
    """The spec's own adapter and strict load on the 224 model (as `encoders.load` runs them), without the
    seconds-long random init of a ViT-L that `weights=<path>` would overwrite anyway (VC-1's test covers that)."""
    spec = encoders.get_spec("mvp-vitl")
    with torch.device("meta"):
        module = build_module(spec)
    backbone = module.to_empty(device="cpu").backbone
    g = torch.Generator().manual_seed(11)
    state = {k: torch.zeros(v.shape) for k, v in backbone.state_dict().items()}
    for key in ("cls_token", "blocks.0.attn.qkv.weight", "blocks.23.mlp.fc2.bias", "norm.weight", "norm.bias"):
        state[key] = torch.randn(state[key].shape, generator=g)
    state["pos_embed"] = torch.randn(1, 1 + 16 * 16, 1024, generator=g)  # vitl-256-mae-egosoup: 16x16 grid
    path = tmp_path / "vitl-256-mae-egosoup.pth"
    torch.save({"model": state | {"mask_token": torch.zeros(1, 1, 1024)}}, path)

    load_strict(backbone, resolve(spec.weights.layout)(path, backbone), str(path))
    # eai-vc load_mae_encoder -> timm 0.6 resize_pos_embed: bicubic, align_corners=False, no antialias
    grid = state["pos_embed"][:, 1:].reshape(1, 16, 16, 1024).permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(grid, size=(14, 14), mode="bicubic", align_corners=False)
    expected_pos = torch.cat([state["pos_embed"][:, :1], resized.permute(0, 2, 3, 1).reshape(1, 196, 1024)], 1)
    loaded = backbone.state_dict()
    assert loaded["pos_embed"].shape == (1, 197, 1024)
    assert torch.allclose(loaded["pos_embed"], expected_pos, atol=1e-6)
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if k != "pos_embed")  # everything else verbatim


# --- CLIP: OpenAI's TorchScript archive (visual.* keys), checked against transformers' CLIPVisionModel --


def _openai_layout(hf_state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """transformers CLIPVisionModel keys -> openai/CLIP `model.py` names (plus a text tower and the projection)."""
    sd = {
        "visual.class_embedding": hf_state["embeddings.class_embedding"],
        "visual.conv1.weight": hf_state["embeddings.patch_embedding.weight"],
        "visual.positional_embedding": hf_state["embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": hf_state["pre_layrnorm.weight"],
        "visual.ln_pre.bias": hf_state["pre_layrnorm.bias"],
        "visual.ln_post.weight": hf_state["post_layernorm.weight"],
        "visual.ln_post.bias": hf_state["post_layernorm.bias"],
        "visual.proj": torch.randn(768, 512),
        "text_projection": torch.randn(512, 512),
        "token_embedding.weight": torch.randn(10, 512),
        "logit_scale": torch.tensor(4.6),
    }
    for i in range(layers):
        hf, oa = f"encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            sd[f"{oa}attn.in_proj_{kind}"] = torch.cat(
                [hf_state[f"{hf}self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")], 0
            )
            sd[f"{oa}attn.out_proj.{kind}"] = hf_state[f"{hf}self_attn.out_proj.{kind}"]
            sd[f"{oa}ln_1.{kind}"] = hf_state[f"{hf}layer_norm1.{kind}"]
            sd[f"{oa}ln_2.{kind}"] = hf_state[f"{hf}layer_norm2.{kind}"]
            sd[f"{oa}mlp.c_fc.{kind}"] = hf_state[f"{hf}mlp.fc1.{kind}"]
            sd[f"{oa}mlp.c_proj.{kind}"] = hf_state[f"{hf}mlp.fc2.{kind}"]
    return sd


def _torchscript_archive(state: dict[str, torch.Tensor], path) -> None:
    """Save parameters under their dotted names as a TorchScript archive, the format OpenAI ships."""
    root = nn.Module()
    for name, value in state.items():
        *parents, leaf = name.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, but it is the release's format
        torch.jit.script(root).save(str(path))


@pytest.fixture(scope="module")
def clip_b16(tmp_path_factory):
    import transformers  # part of the test extra: a missing install fails, never skips

    config = transformers.CLIPVisionConfig(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=16
    )
    assert config.hidden_act == "quick_gelu" and config.layer_norm_eps == 1e-5  # OpenAI's CLIP
    torch.manual_seed(5)
    hf = transformers.CLIPVisionModel(config).eval()
    if hasattr(hf, "vision_model"):  # transformers 4.x nests the tower
        hf = hf.vision_model
    path = tmp_path_factory.mktemp("clip") / "ViT-B-16.pt"
    _torchscript_archive(_openai_layout(hf.state_dict(), 12), path)
    return path, hf, encoders.load("clip-vitb16", weights=str(path))


def test_openai_clip_torchscript_loads_with_the_features_of_transformers_clip(clip_b16):
    _, hf, enc = clip_b16
    with torch.inference_mode():
        hidden = hf(pixel_values=_input("clip-vitb16")).last_hidden_state  # before post_layernorm
        post = hf.post_layernorm(hidden)
    out = enc.encode(FRAMES)
    assert out.vector.shape == (2, 768) and out.tokens.shape == (2, 196, 768)
    assert torch.allclose(out.vector, post[:, 0], atol=1e-4)  # = pooler_output: CLS after ln_post, pre-projection
    assert torch.allclose(out.tokens, post[:, 1:], atol=1e-4)


def test_timm_layout_clip_with_its_projection_head_loads_identically(clip_b16, tmp_path):
    _, _, enc = clip_b16
    timm_layout = dict(enc.module.backbone.state_dict()) | {"head.weight": torch.randn(512, 768)}
    timm_layout["head.bias"] = torch.zeros(512)
    timm_file = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(timm_layout, timm_file)
    assert torch.allclose(encoders.load("clip-vitb16", weights=str(timm_file)).encode(FRAMES).vector,
                          enc.encode(FRAMES).vector)  # fmt: skip


def test_a_clip_checkpoint_missing_a_block_is_refused_naming_it(clip_b16, tmp_path):
    _, hf, _ = clip_b16
    state = _openai_layout(hf.state_dict(), 12)
    del state["visual.transformer.resblocks.11.mlp.c_proj.weight"]
    broken = tmp_path / "ViT-B-16.pt"
    torch.save(state, broken)  # a plain state dict in OpenAI's names is accepted too
    with pytest.raises(CheckpointMismatchError, match=r"missing keys: blocks\.11\.mlp\.fc2\.weight"):
        encoders.load("clip-vitb16", weights=str(broken))


# --- DINOv2: the torch-hub file (37x37 grid at 518 px + mask_token) at 224 px -------------------------


def _hub_interpolation(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """dinov2 @b8931f7 `interpolate_pos_encoding` with the hub's interpolate_offset=0.1, antialias=False."""
    patch = pos_embed[:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2)
    scale = (grid + 0.1) / 37
    patch = torch.nn.functional.interpolate(patch, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    return torch.cat([pos_embed[:, :1], patch.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], 1)


def test_dinov2_hub_file_loads_at_224_like_the_hub_model_and_transformers(tmp_path):
    import transformers  # part of the test extra: a missing install fails, never skips

    module = build_module(encoders.get_spec("dinov2-vits14"))
    state = _perturbed(module.backbone.state_dict())
    g = torch.Generator().manual_seed(3)
    state["pos_embed"] = torch.randn(1, 1 + 37 * 37, 384, generator=g)  # native 518 px table
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(state | {"mask_token": torch.zeros(1, 384)}, path)

    enc = encoders.load("dinov2-vits14", weights=str(path))
    pos_224 = _hub_interpolation(state["pos_embed"], 16)
    assert torch.allclose(enc.module.backbone.pos_embed, pos_224, atol=1e-6)

    config = transformers.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=224)
    hf = transformers.Dinov2Model(config).eval()
    renames = [("blocks.", "encoder.layer."), ("ls1.gamma", "layer_scale1.lambda1"), ("ls2.gamma", "layer_scale2.lambda1"),
               ("attn.proj.", "attention.o_proj.")]  # fmt: skip
    hf_state = {"embeddings.cls_token": state["cls_token"], "embeddings.position_embeddings": pos_224,
                "embeddings.mask_token": torch.zeros(1, 384),
                "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
                "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
                "layernorm.weight": state["norm.weight"], "layernorm.bias": state["norm.bias"]}  # fmt: skip
    for key, value in state.items():
        if not key.startswith("blocks."):
            continue
        if ".attn.qkv." in key:
            for part, chunk in zip(("q", "k", "v"), value.chunk(3), strict=True):
                hf_state[key.replace("blocks.", "encoder.layer.").replace("attn.qkv.", f"attention.{part}_proj.")] = (
                    chunk
                )
            continue
        for old, new in renames:
            key = key.replace(old, new)
        hf_state[key] = value
    hf.load_state_dict(hf_state, strict=True)
    with torch.inference_mode():
        hidden = hf(pixel_values=_input("dinov2-vits14")).last_hidden_state
    out = enc.encode(FRAMES)
    assert out.tokens.shape == (2, 256, 384) and out.grid == (16, 16)
    assert torch.allclose(out.vector, hidden[:, 0], atol=1e-4)
    assert torch.allclose(out.tokens, hidden[:, 1:], atol=1e-4)


# --- Google ViT in21k (Hugging Face ViTModel, 4.x layout, with pooler) and DeiT ({'model': ...} + head) --


def test_google_in21k_hf_checkpoint_loads_with_the_features_of_transformers_vit(tmp_path):
    import transformers  # part of the test extra: a missing install fails, never skips

    config = transformers.ViTConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                    intermediate_size=3072, patch_size=16, image_size=224)  # fmt: skip
    assert config.layer_norm_eps == 1e-12
    torch.manual_seed(9)
    hf = transformers.ViTModel(config, add_pooling_layer=True).eval()
    path = tmp_path / "pytorch_model.bin"
    torch.save(_hf_vit_v4_state(hf), path)  # google/vit-base-patch16-224-in21k: pooler included
    enc = encoders.load("vit-base-in21k", weights=str(tmp_path))
    with torch.inference_mode():
        hidden = hf(pixel_values=_input("vit-base-in21k")).last_hidden_state
    out = enc.encode(FRAMES)
    assert torch.allclose(out.vector, hidden[:, 0], atol=1e-4)
    assert torch.allclose(out.tokens, hidden[:, 1:], atol=1e-4)


def test_deit_release_with_its_classifier_head_loads_with_timm_deit_features(tmp_path):
    import timm

    module = build_module(encoders.get_spec("vit-tiny-deit"))
    state = _perturbed(module.backbone.state_dict())
    state |= {"head.weight": torch.randn(1000, 192), "head.bias": torch.randn(1000)}
    path = tmp_path / "deit_tiny_patch16_224-a1311bcf.pth"
    torch.save({"model": state}, path)
    reference = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    reference.load_state_dict(state)
    with torch.inference_mode():
        expected = reference.forward_features(_input("vit-tiny-deit"))
    out = encoders.load("vit-tiny-deit", weights=str(path)).encode(FRAMES)
    assert torch.allclose(out.vector, expected[:, 0], atol=1e-5)
    assert torch.allclose(out.tokens, expected[:, 1:], atol=1e-5)


def test_hf_vit_adapter_reads_classification_checkpoints_too(tmp_path):
    """`ViTForImageClassification` files nest the encoder under `vit.` and add a `classifier`."""
    from encoders.checkpoints import hf_vit_model

    base = {
        "embeddings.cls_token": torch.zeros(1, 1, 4),
        "encoder.layer.0.attention.attention.query.weight": torch.ones(4, 4),
        "encoder.layer.0.attention.attention.key.weight": 2 * torch.ones(4, 4),
        "encoder.layer.0.attention.attention.value.weight": 3 * torch.ones(4, 4),
        "layernorm.weight": torch.ones(4),
    }
    torch.save(base | {"pooler.dense.weight": torch.ones(4, 4)}, tmp_path / "model.bin")
    torch.save({f"vit.{k}": v for k, v in base.items()} | {"classifier.weight": torch.ones(2, 4)}, tmp_path / "cls.bin")
    plain_keys = hf_vit_model(tmp_path / "model.bin", nn.Identity())
    nested_keys = hf_vit_model(tmp_path / "cls.bin", nn.Identity())
    assert sorted(plain_keys) == sorted(nested_keys) == ["blocks.0.attn.qkv.weight", "cls_token", "norm.weight"]
    assert torch.equal(nested_keys["blocks.0.attn.qkv.weight"][4:8], 2 * torch.ones(4, 4))
