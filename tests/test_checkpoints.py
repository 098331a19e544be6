"""The real weight-loading path, offline: random models saved in the upstream checkpoint layouts load
through `weights=<path>` and give the same features; wrong or truncated checkpoints are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import encoders
from encoders.checkpoints import CheckpointMismatchError
from encoders.frozen import build_module
from encoders.preprocess import preprocess
from encoders.storage import weights_root
from encoders.weights import ChecksumMismatchError

FRAMES = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)


def _perturbed_state(module: torch.nn.Module, seed: int = 7) -> dict[str, torch.Tensor]:
    """A state dict that differs from the registry's seeded init, so a silent no-op load cannot pass."""
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.02 * torch.randn(v.shape, generator=g) for k, v in module.backbone.state_dict().items()}


def test_vc1_mae_checkpoint_with_decoder_keys_loads_with_identical_features(tmp_path):
    spec = encoders.get_spec("vc1-base")
    reference = build_module(spec)
    state = _perturbed_state(reference)
    reference.backbone.load_state_dict(state)
    mae = dict(state) | {
        "mask_token": torch.zeros(1, 1, 768),
        "decoder_embed.weight": torch.zeros(512, 768),
        "decoder_pos_embed": torch.zeros(1, 197, 512),
        "decoder_blocks.0.norm1.weight": torch.ones(512),
        "decoder_norm.weight": torch.ones(512),
        "decoder_pred.weight": torch.zeros(768, 512),
    }
    path = tmp_path / "vc1_vitb.pth"
    torch.save({"model": mae, "epoch": 181}, path)

    enc = encoders.load("vc1-base", weights=str(path))
    with torch.inference_mode():
        expected = reference.eval()(preprocess(FRAMES, spec.preprocess))
    out = enc.encode(FRAMES)
    assert torch.allclose(out.vector, expected["cls"], atol=1e-5)
    assert torch.allclose(out.tokens, expected["tokens"], atol=1e-5)
    assert enc.weights.kind == "path" and len(enc.weights.sha256) == 64
    # a folder holding the file works as well
    assert torch.allclose(encoders.load("vc1-base", weights=str(tmp_path)).encode(FRAMES).vector, out.vector)


def _hf_vit_v4_state(hf_model) -> dict[str, torch.Tensor]:
    """transformers 5.x ViTModel keys -> the 4.x layout the released Theia files use."""
    rules = [
        ("layers.", "encoder.layer."),
        ("attention.q_proj", "attention.attention.query"),
        ("attention.k_proj", "attention.attention.key"),
        ("attention.v_proj", "attention.attention.value"),
        ("attention.o_proj", "attention.output.dense"),
        ("mlp.fc1", "intermediate.dense"),
        ("mlp.fc2", "output.dense"),
    ]
    out = {}
    for key, value in hf_model.state_dict().items():
        for old, new in rules:
            key = key.replace(old, new)
        out[key] = value.clone()
    return out


@pytest.fixture(scope="module")
def theia_file(tmp_path_factory):
    """A Theia-T `model.safetensors` from a random HF ViTModel: backbone under `backbone.model.`, plus translators."""
    import transformers  # part of the test extra: a missing install fails, never skips

    folder = tmp_path_factory.mktemp("theia")
    config = transformers.ViTConfig(
        hidden_size=192,
        num_hidden_layers=12,
        num_attention_heads=3,
        intermediate_size=768,
        image_size=224,
        patch_size=16,
        layer_norm_eps=1e-12,
        qkv_bias=True,
    )
    torch.manual_seed(3)
    hf = transformers.ViTModel(config, add_pooling_layer=False).eval()
    v4 = _hf_vit_v4_state(hf)

    # The 4.x names are checked by transformers itself: its legacy-checkpoint conversion must load them.
    legacy = folder / "legacy-vit"
    legacy.mkdir()
    save_file(v4, str(legacy / "model.safetensors"))
    config.save_pretrained(legacy)
    reloaded = transformers.ViTModel.from_pretrained(legacy, add_pooling_layer=False)
    for key, value in hf.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key

    theia = {f"backbone.model.{k}": v for k, v in v4.items()}
    theia["translator.translators.google/vit-huge-patch14-224-in21k.0.weight"] = torch.zeros(4, 4)
    theia["translator.translators.facebook/dinov2-large.3.bias"] = torch.zeros(4)
    path = folder / "model.safetensors"
    save_file(theia, str(path))
    return path, hf


def test_theia_safetensors_loads_and_matches_the_hf_vit_model(theia_file):
    path, hf = theia_file
    enc = encoders.load("theia-tiny", weights=str(path))
    x = preprocess(FRAMES, enc.spec.preprocess)
    with torch.inference_mode():
        hidden = hf(pixel_values=x).last_hidden_state
    out = enc.encode(FRAMES)
    assert out.tokens.shape == (2, 196, 192)
    assert torch.allclose(out.tokens, hidden[:, 1:], atol=1e-4)  # Theia's forward_feature: CLS dropped
    assert torch.allclose(out.vector, hidden[:, 0], atol=1e-4)


def test_theia_preprocessing_is_the_deit_processor_math():
    import torchvision.transforms.v2 as T
    from torchvision.transforms import InterpolationMode

    spec = encoders.get_spec("theia-base").preprocess
    frames = torch.from_numpy(FRAMES).permute(0, 3, 1, 2)
    reference = (T.Resize(224, interpolation=InterpolationMode.BICUBIC)(frames).float() - 127.5) / 127.5
    assert torch.allclose(preprocess(FRAMES, spec), reference, atol=1e-6)


@pytest.mark.parametrize("shape", [(256, 256), (270, 270), (300, 400)])
def test_vc1_preprocessing_matches_the_reference_pil_transform(shape):
    from PIL import Image
    from torchvision import transforms as TT

    frames = np.random.default_rng(1).integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    tf = TT.Compose(
        [
            TT.Resize(256, interpolation=TT.InterpolationMode.BICUBIC),
            TT.CenterCrop(224),
            TT.ToTensor(),
            TT.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    reference = torch.stack([tf(Image.fromarray(f)) for f in frames])  # eai-vc: PIL frame -> vit_transforms
    ours = preprocess(frames, encoders.get_spec("vc1-large").preprocess)
    assert ours.shape == reference.shape == (2, 3, 224, 224)
    assert (ours - reference).abs().max() <= 1.01 / 255 / 0.225  # at most one uint8 level (PIL rounding)


def test_a_truncated_theia_checkpoint_is_refused_naming_the_missing_keys(theia_file, tmp_path):
    from safetensors.torch import load_file

    path, _ = theia_file
    state = load_file(str(path))
    del state["backbone.model.encoder.layer.11.output.dense.weight"]
    broken = tmp_path / "model.safetensors"
    save_file(state, str(broken))
    with pytest.raises(CheckpointMismatchError, match=r"layer 11|blocks\.11\.mlp\.fc2\.weight"):
        encoders.load("theia-tiny", weights=str(broken))


def test_a_checkpoint_for_another_architecture_is_refused_with_the_shape_difference(tmp_path):
    small = build_module(encoders.get_spec("random-vit-tiny"))
    path = tmp_path / "vc1_vitb.pth"
    torch.save({"model": small.backbone.state_dict()}, path)
    with pytest.raises(CheckpointMismatchError, match="shape mismatches"):
        encoders.load("vc1-base", weights=str(path))


def test_a_pinned_sha256_is_enforced_for_cached_pretrained_weights(scratch, monkeypatch):
    import dataclasses

    from encoders import weights as weights_module

    spec = encoders.get_spec("vc1-base")
    pinned = dataclasses.replace(spec, weights=dataclasses.replace(spec.weights, sha256="0" * 64))
    cached = weights_root() / spec.name / spec.weights.filename
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"not": torch.zeros(1)}, cached)  # a readable torch file, but not the released checkpoint
    try:
        with pytest.raises(ChecksumMismatchError, match="sha256"):
            weights_module.resolve_weights(pinned, "pretrained")
        assert weights_module.resolve_weights(spec, "pretrained").origin.startswith("cache:")  # unpinned: accepted
    finally:
        cached.unlink()


def test_theia_config_keys_are_documented_in_the_spec():
    spec = encoders.get_spec("theia-tiny")
    assert spec.weights.hf_repo == "theaiinstitute/theia-tiny-patch16-224-cdiv"
    assert spec.preprocess.mean == (0.5, 0.5, 0.5) and spec.preprocess.resize is None
    assert json.dumps(spec.builder_kwargs) == json.dumps({"arch": "vit_tiny_patch16_224", "layer_norm_eps": 1e-12})


def test_a_run_hashes_each_checkpoint_once(theia_file, tmp_path, monkeypatch):
    """Planning (every job of a sweep), loading and a second plan share one sha256 of the checkpoint file."""
    import shutil

    from encoders import weights as weights_module
    from experiments.plan import plan_sweep

    path = tmp_path / "model.safetensors"
    shutil.copyfile(theia_file[0], path)  # a file this process has never hashed
    calls = []
    real = weights_module.sha256_file
    monkeypatch.setattr(weights_module, "sha256_file", lambda p: calls.append(p) or real(p))
    argv = ["-m", "encoder=theia-tiny", f"weights={path}", "task=metaworld-assembly,metaworld-hammer", "seed=100,200"]
    cells = plan_sweep(argv, weights_required=True)
    assert len(cells) == 4 and len({c.weights.sha256 for c in cells}) == 1
    encoders.load("theia-tiny", weights=cells[0].weights)
    plan_sweep(argv, weights_required=True)
    assert calls == [path.resolve()]
