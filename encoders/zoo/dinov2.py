"""DINOv2 (Oquab et al., TMLR 2024, arXiv:2304.07193): self-supervised ViT-S/B/L with patch 14 and
LayerScale; Theia's baselines DINOv2-S/B/L (and DINOv2-L is one of its distillation teachers).

Facts from github:facebookresearch/dinov2 @b8931f7 (`dinov2/hub/backbones.py`,
`dinov2/models/vision_transformer.py`):
- architecture: ViT/14 with LayerScale, qkv bias, LayerNorm eps 1e-6, trained at 518 px (37x37
  position grid); built as timm's `vit_*_patch14_dinov2` at `img_size=224`;
- resolution: 224 px gives a 16x16 grid (the grid Theia's teachers produce); the hub model
  interpolates its position table at every forward (bicubic, scale factor (16 + 0.1) / 37, no
  antialias); `encoders.checkpoints:dinov2_hub` does the same arithmetic once at load, so the
  features equal the hub model's at 224 (timm's own loader uses a different resampling);
- representation: CLS after the final norm (`x_norm_clstoken`); spatial = `x_norm_patchtokens`;
- weights: `dl.fbaipublicfiles.com/dinov2/dinov2_vit{s,b,l}14/dinov2_vit{s,b,l}14_pretrain.pth`,
  a plain state dict (plus `mask_token`, dropped);
- preprocessing: the DINOv2 evaluation transform (`make_classification_eval_transform`):
  Resize(256, bicubic), CenterCrop(224), ImageNet mean/std;
- parameters at 224 (the 518 table has 1113 x C more); GMACs analytic (reference/theia.md 3.5).

Alias: `dinov2` -> `dinov2-vitl14`, the size Theia reports as "DINOv2-L" (its Table 2) and distils from.
"""

from encoders.spec import EncoderSpec, Preprocess, Weights

DINOV2_CITATION = (
    "Oquab, Darcet, Moutakanni, Vo, Szafraniec, Khalidov, Fernandez, Haziza, Massa, El-Nouby, et al. "
    "DINOv2: Learning Robust Visual Features without Supervision. TMLR 2024. arXiv:2304.07193"
)


def _dinov2(size: str, arch: str, dim: int, params: int, gmacs: float, aliases=()) -> EncoderSpec:
    name = f"dinov2_vit{size}14"
    return EncoderSpec(
        name=f"dinov2-vit{size}14",
        aliases=aliases,
        family="dinov2",
        builder="encoders.vit:build_timm_vit",
        builder_kwargs={"arch": arch, "img_size": 224},
        weights=Weights(
            filename=f"{name}_pretrain.pth",
            layout="encoders.checkpoints:dinov2_hub",
            url=f"https://dl.fbaipublicfiles.com/dinov2/{name}/{name}_pretrain.pth",
            notes="torch hub facebookresearch/dinov2; sha256 not pinned",
        ),
        preprocess=Preprocess(size=224, resize=256, interpolation="bicubic"),
        embed_dim=dim,
        token_dim=dim,
        grid=(16, 16),
        vector_output="cls",
        outputs=("cls", "mean", "spatial"),
        tap="CLS after the final LayerNorm (x_norm_clstoken); spatial = x_norm_patchtokens, 16x16 at 224 px",
        n_parameters=params,
        gmacs=gmacs,
        license="Apache-2.0",
        commercial_use=True,
        citation=DINOV2_CITATION,
        paper="Theia",
    )


DINOV2_VITS14 = _dinov2("s", "vit_small_patch14_dinov2", 384, 21_628_800, 6.1)
DINOV2_VITB14 = _dinov2("b", "vit_base_patch14_dinov2", 768, 85_724_928, 23.2)
DINOV2_VITL14 = _dinov2("l", "vit_large_patch14_dinov2", 1024, 303_227_904, 81.0, aliases=("dinov2",))
