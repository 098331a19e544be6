"""Theia (Shang et al., CoRL 2024, arXiv:2407.20179): DeiT backbones distilled from CLIP, DINOv2, ViT-H.

Facts from github:bdaiinstitute/theia @59d0448 and the Hugging Face repos
`theaiinstitute/theia-{tiny,small,base}-patch16-224-cdiv` (the checkpoints the paper evaluates):
- backbone: HF `ViTModel` with the DeiT-{T,S,B}/16 configs (LayerNorm eps 1e-12), pooler removed;
  built here with timm's identical ViT, and the HF keys remapped (`encoders.checkpoints.hf_vit_to_timm`);
- input: uint8 frames; CortexBench transform `Resize(224, bicubic)` on the 256 render, then the DeiT
  processor's (x/255 - 0.5) / 0.5 = (x - 127.5) / 127.5;
- representation: `forward_feature` = last hidden state after the final LayerNorm with CLS dropped,
  196 tokens at 224 px; the vector output here is the CLS token (the paper's "-cls" variant);
- `model.safetensors` also holds the feature translators, which are ignored.
"""

from encoders.spec import HALF, EncoderSpec, Preprocess, Weights

THEIA_LICENSE = "The AI Institute License (non-commercial research)"
THEIA_CITATION = (
    "Shang, Schmeckpeper, May, Minniti, Kelestemur, Watkins, Herlant. Theia: Distilling Diverse Vision "
    "Foundation Models for Robot Learning. CoRL 2024. arXiv:2407.20179"
)
THEIA_PREPROCESS = Preprocess(size=224, resize=None, interpolation="bicubic", mean=HALF, std=HALF)


def _theia(size: str, arch: str, dim: int, params: int, gmacs: float, revision: str | None, aliases=()) -> EncoderSpec:
    return EncoderSpec(
        name=f"theia-{size}",
        aliases=aliases,
        family="theia",
        builder="encoders.vit:build_timm_vit",
        builder_kwargs={"arch": arch, "layer_norm_eps": 1e-12},
        weights=Weights(
            filename="model.safetensors",
            layout="encoders.checkpoints:theia_safetensors",
            hf_repo=f"theaiinstitute/theia-{size}-patch16-224-cdiv",
            hf_revision=revision,
        ),
        preprocess=THEIA_PREPROCESS,
        embed_dim=dim,
        token_dim=dim,
        grid=(14, 14),
        vector_output="cls",
        outputs=("cls", "mean", "spatial"),
        tap="ViT last hidden state after the final LayerNorm; spatial = 196 patch tokens (CLS dropped)",
        n_parameters=params,
        gmacs=gmacs,
        license=THEIA_LICENSE,
        citation=THEIA_CITATION,
        paper="Theia",
        notes="cdiv checkpoints (teachers CLIP-L, DINOv2-L, ViT-H); trained from scratch, not from DeiT weights",
    )


# Revisions: commits on the Hugging Face repos after the single weights upload (README-only changes after).
THEIA_TINY = _theia("tiny", "vit_tiny_patch16_224", 192, 5_524_416, 1.25, "1099afbe6f7d221b8b648065485f68e70b7cff07")
THEIA_SMALL = _theia(
    "small", "vit_small_patch16_224", 384, 21_665_664, 4.60, "21b0bbe7ad7bcb8a484d762fcbe60ef75097e083"
)
THEIA_BASE = _theia("base", "vit_base_patch16_224", 768, 85_798_656, 17.6, None, aliases=("theia",))
