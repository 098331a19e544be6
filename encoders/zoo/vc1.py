"""VC-1 (Majumdar et al. 2023, arXiv:2303.18240): MAE ViT-B/16 and ViT-L/16 on Ego4D+MNI.

Facts from github:facebookresearch/eai-vc @e782c35 (`vc_models`): a timm-0.6.11 ViT subclass,
`use_cls=True` (the CLS token after the final norm), weights from
`dl.fbaipublicfiles.com/eai-vc/vc1_vit{b,l}.pth` as `{'model': state_dict}` with the MAE decoder,
loaded by `load_mae_encoder` (decoder and mask-token keys dropped). Transform `vit_transforms`:
Resize(256, bicubic), CenterCrop(224), ImageNet mean/std. timm's `vit_*_patch16_224` with token
pooling is bit-identical (reference/encoders.md 1.4).
"""

from encoders.spec import EncoderSpec, Preprocess, Weights

VC1_CITATION = (
    "Majumdar, Yadav, Arnaud, Ma, Chen, Silwal, Jain, Berges, Abbeel, Malik, Batra, Lin, Maksymets, "
    "Rajeswaran, Meier. Where are we in the search for an Artificial Visual Cortex for Embodied "
    "Intelligence? NeurIPS 2023. arXiv:2303.18240"
)


def _vc1(
    size: str, arch: str, dim: int, grid: int, params: int, gmacs: float, url_name: str, aliases=()
) -> EncoderSpec:
    return EncoderSpec(
        name=f"vc1-{size}",
        aliases=aliases,
        family="vc1",
        builder="encoders.vit:build_timm_vit",
        builder_kwargs={"arch": arch},
        weights=Weights(
            filename=url_name,
            layout="encoders.checkpoints:mae_encoder",
            url=f"https://dl.fbaipublicfiles.com/eai-vc/{url_name}",
            notes=f"also on Hugging Face as facebook/vc1-{size} (pytorch_model.bin)",
        ),
        preprocess=Preprocess(size=224, resize=256, interpolation="bicubic"),
        embed_dim=dim,
        token_dim=dim,
        grid=(grid, grid),
        vector_output="cls",
        outputs=("cls", "mean", "spatial"),
        tap="CLS after the final LayerNorm (use_cls=True); spatial = patch tokens after the same norm",
        n_parameters=params,
        gmacs=gmacs,
        license="CC-BY-NC-4.0",
        citation=VC1_CITATION,
        paper="VC-1 / CortexBench",
    )


VC1_BASE = _vc1("base", "vit_base_patch16_224", 768, 14, 85_798_656, 17.6, "vc1_vitb.pth")
VC1_LARGE = _vc1("large", "vit_large_patch16_224", 1024, 14, 303_301_632, 61.6, "vc1_vitl.pth", aliases=("vc1",))
