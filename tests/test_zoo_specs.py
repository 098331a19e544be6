"""The zoo's specs against the papers and the upstream preprocessing: parameter counts and output
shapes the Theia paper states (reference/theia.md 1, 3.5), each family's input transform, licences,
the Theia protocol's policy choice, and one CNN end to end through `experiments.eval`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import encoders
from encoders.frozen import build_module
from encoders.preprocess import preprocess
from encoders.radio import RadioCodeMissingError
from experiments.settings import policy_for
from tests.conftest import REPO, build_for_shapes

ZOO = [s for s in encoders.available() if s.family not in ("random", "state")]


def _meta_forward(spec) -> dict[str, torch.Tensor]:
    """Build on the meta device and run a forward: real output shapes, no memory, no arithmetic
    (on the CPU for a constructor the meta device cannot run, see `build_for_shapes`)."""
    try:
        module = build_for_shapes(lambda: build_module(spec))
        device = next(module.parameters()).device
        with torch.device(device), torch.inference_mode():
            return module(torch.zeros(2, 3, spec.preprocess.size, spec.preprocess.size))
    except RadioCodeMissingError:
        pytest.skip(f"{spec.name} needs NVIDIA's RADIO code (absent here)")


@pytest.mark.parametrize("spec", ZOO, ids=lambda s: s.name)
def test_every_zoo_entry_outputs_the_declared_shapes(spec):
    out = _meta_forward(spec)
    assert out["tokens"].shape == (2, spec.grid[0] * spec.grid[1], spec.token_dim)
    vector = out["tokens"].mean(1) if spec.vector_output == "mean" else out[spec.vector_output]
    assert vector.shape == (2, spec.embed_dim)


@pytest.mark.parametrize(
    ("name", "grid", "dim"),
    [
        ("theia-base", (14, 14), 768),  # Theia forward_feature: [B, 196, 768]
        ("dinov2-vitl14", (16, 16), 1024),  # Theia's teacher target (1024, 16, 16)
        ("clip-vitl14", (16, 16), 1024),  # Theia's teacher target (1024, 16, 16)
        ("vit-huge-in21k", (16, 16), 1280),  # Theia's teacher target (1280, 16, 16)
        ("vc1-large", (14, 14), 1024),
        ("mvp-vitl", (14, 14), 1024),
        ("r3m-rn50", (7, 7), 2048),
    ],
)
def test_spatial_outputs_match_the_theia_paper(name, grid, dim):
    spec = encoders.get_spec(name)
    assert (spec.grid, spec.token_dim) == (grid, dim)
    assert _meta_forward(spec)["tokens"].shape == (2, grid[0] * grid[1], dim)


def test_parameter_counts_match_the_theia_paper():
    """Theia Table 2 (millions) and its released-model table (85.8M Theia-B backbone)."""
    millions = {s.name: s.n_parameters / 1e6 for s in encoders.available()}
    assert round(millions["theia-base"], 1) == 85.8
    assert round(millions["theia-base"]) == 86
    for name in ("mvp-vitl", "vc1-large", "dinov2-vitl14"):
        assert round(millions[name]) == 303, name
    assert round(millions["r3m-rn50"]) == 24
    assert round(millions["e-radio-v2"]) == 390
    hf_pooler = (1280 * 1280 + 1280) / 1e6  # Theia's "632M" ViT-H counts Hugging Face's pre-logits pooler
    assert round(millions["vit-huge-in21k"] + hf_pooler) == 632
    assert round(millions["theia-tiny"], 2) == 5.52 and round(millions["theia-small"], 2) == 21.67


def _within_one_level(ours: torch.Tensor, reference: torch.Tensor, std: float) -> None:
    assert ours.shape == reference.shape == (2, 3, 224, 224)
    assert (ours - reference).abs().max() <= 1.01 / 255 / std  # at most one uint8 level (PIL rounding)


FRAMES = {
    (256, 256): np.random.default_rng(1).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8),
    (300, 400): np.random.default_rng(2).integers(0, 256, (2, 300, 400, 3), dtype=np.uint8),
}


@pytest.mark.parametrize("shape", list(FRAMES))
def test_clip_preprocessing_is_openai_clips_transform(shape):
    from PIL import Image
    from torchvision import transforms as T

    frames = FRAMES[shape]
    tf = T.Compose(
        [
            T.Resize(224, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ]
    )  # openai/CLIP clip._transform; eai-vc clip_transforms(resize_size=224)
    reference = torch.stack([tf(Image.fromarray(f)) for f in frames])
    _within_one_level(preprocess(frames, encoders.get_spec("clip-vitl14").preprocess), reference, 0.2613)


@pytest.mark.parametrize("shape", list(FRAMES))
def test_r3m_and_vip_preprocessing_is_eai_vc_r3m_transforms(shape):
    from torchvision import transforms as T

    frames = FRAMES[shape]
    tf = T.Compose(
        [T.Resize(256), T.CenterCrop(224), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    )  # eai-vc r3m_transforms: ToTensorIfNot (/255) first, then the tensor ops
    reference = tf(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
    for name in ("r3m-rn50", "vip-rn50"):
        _within_one_level(preprocess(frames, encoders.get_spec(name).preprocess), reference, 0.224)


@pytest.mark.parametrize("shape", list(FRAMES))
def test_google_vit_preprocessing_is_its_hugging_face_processor(shape):
    import transformers  # part of the test extra: a missing install fails, never skips

    frames = FRAMES[shape]
    processor = transformers.ViTImageProcessor(
        do_resize=True, size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )  # google/vit-*-in21k preprocessor_config.json: size 224, mean = std = 0.5, resample bilinear (default)
    reference = processor(images=list(frames), return_tensors="pt")["pixel_values"]
    ours = preprocess(frames, encoders.get_spec("vit-huge-in21k").preprocess)
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max() <= 2.01 / 255 / 0.5  # PIL vs torchvision bilinear kernels: <= 2 levels


@pytest.mark.parametrize("shape", list(FRAMES))
def test_radio_input_is_0_1_rgb_squashed_to_224(shape):
    import transformers  # part of the test extra: a missing install fails, never skips

    frames = FRAMES[shape]
    processor = transformers.CLIPImageProcessor(
        size={"height": 224, "width": 224}, do_resize=True, do_center_crop=False, do_normalize=False
    )  # RADIO's documented Hugging Face usage; the model normalises with the CLIP mean/std itself
    reference = processor(images=list(frames), return_tensors="pt")["pixel_values"]
    for name in ("radio-v2.1", "e-radio-v2"):
        _within_one_level(preprocess(frames, encoders.get_spec(name).preprocess), reference, 1.0)


def test_vit_transforms_families_share_vc1s_preprocessing():
    """MVP, DINOv2 and DeiT evaluate with Resize(256, bicubic) + CenterCrop(224) + ImageNet mean/std."""
    vc1 = encoders.get_spec("vc1-large").preprocess
    for name in ("mvp-vitb", "mvp-vitl", "dinov2-vits14", "dinov2-vitl14", "vit-tiny-deit", "vit-small-deit"):
        assert encoders.get_spec(name).preprocess == vc1, name


def test_licences_and_the_non_commercial_flags():
    spec = encoders.get_spec
    for name in ("r3m", "clip", "dinov2", "vit", "vit-tiny-deit"):
        assert spec(name).commercial_use, name
    for name in ("vip", "mvp", "radio", "e-radio", "vc1", "theia"):
        assert not spec(name).commercial_use, name
    assert spec("vip").license == "CC-BY-NC-4.0" and "NC" in spec("radio").license
    assert "none stated" in spec("mvp").license
    assert spec("clip-vitb16").weights.sha256 in spec("clip-vitb16").weights.url  # OpenAI's URL carries the sha256


def test_theia_protocol_feeds_spatial_tokens_to_transformers_and_vectors_to_cnns():
    for spec in ZOO:
        expected = "bc-mlp" if spec.family in ("r3m", "vip") else "bc-conv"
        assert policy_for("auto", spec) == expected, spec.name


@pytest.mark.slow
@pytest.mark.sim_metaworld
def test_a_resnet_encoder_runs_end_to_end_through_eval(tmp_path):
    overrides = ["encoder=r3m", "weights=random", "task=metaworld-assembly", "protocol=smoke"]
    result = subprocess.run(
        [sys.executable, "-m", "experiments.eval", *overrides, f"results_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "runs/smoke/r3m-rn50@random/metaworld-assembly/seed=100.json").read_text())
    assert record["status"] == "ok" and record["policy"]["name"] == "bc-mlp"
    assert record["encoder"]["embed_dim"] == 2048 and record["encoder"]["grid"] == [7, 7]
    assert record["feature_norm_entropy"]["value"] > 0  # over every position of the 7x7 layer4 map
