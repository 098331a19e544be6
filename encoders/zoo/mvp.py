"""MVP (Xiao, Radosavovic et al.; arXiv:2203.06173, arXiv:2210.03109): MAE ViTs pre-trained on
Ego4D + 100DOH + ImageNet ("egosoup"); baselines of the VC-1 paper (B, L) and Theia (L, L-sp).

Facts from github:ir413/mvp @5746656 and eai-vc's `mvp_vit_{base,large}_patch16_ego4d_hoi_imagenet.yaml`
(history @7f09836):
- architecture: timm `VisionTransformer` (qkv bias, LayerNorm eps 1e-6) with the head deleted;
  representation = CLS after the final norm (`use_cls: True`); spatial = patch tokens after it;
- weights (`mvp/backbones/model_zoo.py`): `vitb-mae-egosoup` and `vitl-256-mae-egosoup` on
  berkeley.box.com, `{'model': state dict}` (MAE layout; the encoder is loaded with strict=False,
  so decoder keys may be present): read by `encoders.checkpoints:mae_encoder`;
- ViT-L was trained at 256 px (16x16 position grid); eai-vc's `load_mae_encoder` resizes its
  `pos_embed` to the 224 model's 14x14 grid (timm 0.6 `resize_pos_embed`, bicubic, no antialias),
  so the entry builds the 224 model: 303,301,632 parameters here vs 303,363,072 in the file;
- preprocessing: eai-vc `vit_transforms`: Resize(256, bicubic), CenterCrop(224), ImageNet mean/std;
- licence: the repository has no LICENSE file and its README states none (all rights reserved);
  do not redistribute the weights.
"""

from encoders.spec import EncoderSpec, Preprocess, Weights

MVP_CITATION = (
    "Radosavovic, Xiao, James, Abbeel, Malik, Darrell. Real-World Robot Learning with Masked Visual "
    "Pre-training. CoRL 2022. arXiv:2210.03109 (and Xiao et al., Masked Visual Pre-training for Motor "
    "Control, arXiv:2203.06173)"
)
MVP_LICENSE = "none stated (all rights reserved)"


def _mvp(size: str, arch: str, dim: int, params: int, gmacs: float, box: str, zoo_name: str, aliases=()):
    return EncoderSpec(
        name=f"mvp-vit{size}",
        aliases=aliases,
        family="mvp",
        builder="encoders.vit:build_timm_vit",
        builder_kwargs={"arch": arch},
        weights=Weights(
            filename=f"{zoo_name}.pth",
            layout="encoders.checkpoints:mae_encoder",
            url=f"https://berkeley.box.com/shared/static/{box}.pth",
            notes=f"MVP model zoo name {zoo_name!r}; sha256 not pinned",
        ),
        preprocess=Preprocess(size=224, resize=256, interpolation="bicubic"),
        embed_dim=dim,
        token_dim=dim,
        grid=(14, 14),
        vector_output="cls",
        outputs=("cls", "mean", "spatial"),
        tap="CLS after the final LayerNorm (use_cls=True); spatial = patch tokens after the same norm",
        n_parameters=params,
        gmacs=gmacs,
        license=MVP_LICENSE,
        citation=MVP_CITATION,
        paper="VC-1 / CortexBench; Theia (MVP-L, MVP-L-sp)",
    )


MVP_VITB = _mvp(
    "b", "vit_base_patch16_224", 768, 85_798_656, 17.6, "0ckepd2ja3pi570z89ogd899cn387yut", "vitb-mae-egosoup"
)
MVP_VITL = _mvp(
    "l",
    "vit_large_patch16_224",
    1024,
    303_301_632,
    61.6,
    "6p0pc47mlpp4hhwlin2hf035lxlgddxr",
    "vitl-256-mae-egosoup",
    aliases=("mvp",),
)
