"""Supervised ImageNet ViTs: Google's ImageNet-21k ViT-B/16, L/16, H/14 and DeiT-T/S, the Theia
paper's "ViT-T/S/B/L/H" baselines (ViT-T/S are DeiT-T/S, its footnote 1; ViT-H/14 in21k is also one
of its distillation teachers).

Google in21k (Dosovitskiy et al.; Hugging Face `google/vit-{base-patch16,large-patch16,huge-patch14}-224-in21k`,
the checkpoints Theia's code loads):
- transformers `ViTModel` (LayerNorm eps 1e-12, as the Hugging Face conversion sets it; Google's
  JAX models use 1e-6), built as timm's identical ViT with the HF keys remapped
  (`encoders.checkpoints:hf_vit_model`, which drops the tanh pre-logits `pooler`: Theia's "632M"
  for ViT-H counts it, the representation here does not use it);
- preprocessing: the checkpoints' `ViTImageProcessor`: resize to 224x224 (bilinear, no crop),
  mean = std = 0.5;
- representation: CLS after the final LayerNorm; spatial = patch tokens (`last_hidden_state[:, 1:]`).

DeiT (Touvron et al.; github:facebookresearch/deit, weights `dl.fbaipublicfiles.com/deit/*.pth`,
`{'model': timm state dict}` with the ImageNet head, dropped by `encoders.checkpoints:timm_classifier`):
- timm `deit_{tiny,small}_patch16_224` (LayerNorm eps 1e-6);
- preprocessing: DeiT's evaluation transform: Resize(224 / 0.875 = 256, bicubic), CenterCrop(224),
  ImageNet mean/std. (The Hugging Face `facebook/deit-*` processor configs say mean = std = 0.5,
  which is not how DeiT was trained.)

GMACs analytic at 224 (reference/theia.md 3.5). Alias: `vit` -> `vit-huge-in21k`, Theia's "ViT-H"
(its Table 2 and one of its teachers).
"""

from encoders.spec import HALF, IMAGENET_MEAN, IMAGENET_STD, EncoderSpec, Preprocess, Weights

VIT_CITATION = (
    "Dosovitskiy, Beyer, Kolesnikov, Weissenborn, Zhai, Unterthiner, Dehghani, Minderer, Heigold, Gelly, "
    "Uszkoreit, Houlsby. An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale. "
    "ICLR 2021. arXiv:2010.11929"
)
DEIT_CITATION = (
    "Touvron, Cord, Douze, Massa, Sablayrolles, Jegou. Training data-efficient image transformers & "
    "distillation through attention. ICML 2021. arXiv:2012.12877"
)
GOOGLE_PREPROCESS = Preprocess(size=224, resize=None, interpolation="bilinear", mean=HALF, std=HALF)
DEIT_PREPROCESS = Preprocess(size=224, resize=256, interpolation="bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD)
_TAP = "CLS after the final LayerNorm; spatial = patch tokens after the same norm"


def _google(size: str, hf_name: str, arch: str, dim: int, patch: int, params: int, gmacs: float, aliases=()):
    grid = 224 // patch
    return EncoderSpec(
        name=f"vit-{size}-in21k",
        aliases=aliases,
        family="vit",
        builder="encoders.vit:build_timm_vit",
        builder_kwargs={"arch": arch, "layer_norm_eps": 1e-12},
        weights=Weights(
            filename="pytorch_model.bin",
            layout="encoders.checkpoints:hf_vit_model",
            hf_repo=f"google/{hf_name}",
            notes="transformers ViTModel checkpoint; revision not pinned (main)",
        ),
        preprocess=GOOGLE_PREPROCESS,
        embed_dim=dim,
        token_dim=dim,
        grid=(grid, grid),
        vector_output="cls",
        outputs=("cls", "mean", "spatial"),
        tap=_TAP,
        n_parameters=params,
        gmacs=gmacs,
        license="Apache-2.0",
        commercial_use=True,
        citation=VIT_CITATION,
        paper="Theia",
    )


def _deit(size: str, arch: str, dim: int, params: int, gmacs: float, file: str):
    return EncoderSpec(
        name=f"vit-{size}-deit",
        family="vit",
        builder="encoders.vit:build_timm_vit",
        builder_kwargs={"arch": arch},
        weights=Weights(
            filename=file,
            layout="encoders.checkpoints:timm_classifier",
            url=f"https://dl.fbaipublicfiles.com/deit/{file}",
            notes="DeiT release (ImageNet-1k); the file name carries the first 8 hex digits of its sha256",
        ),
        preprocess=DEIT_PREPROCESS,
        embed_dim=dim,
        token_dim=dim,
        grid=(14, 14),
        vector_output="cls",
        outputs=("cls", "mean", "spatial"),
        tap=_TAP,
        n_parameters=params,
        gmacs=gmacs,
        license="Apache-2.0",
        commercial_use=True,
        citation=DEIT_CITATION,
        paper="Theia (as ViT-T/S)",
    )


VIT_TINY_DEIT = _deit("tiny", "deit_tiny_patch16_224", 192, 5_524_416, 1.25, "deit_tiny_patch16_224-a1311bcf.pth")
VIT_SMALL_DEIT = _deit("small", "deit_small_patch16_224", 384, 21_665_664, 4.60, "deit_small_patch16_224-cd65a155.pth")
VIT_BASE_IN21K = _google("base", "vit-base-patch16-224-in21k", "vit_base_patch16_224", 768, 16, 85_798_656, 17.6)
VIT_LARGE_IN21K = _google("large", "vit-large-patch16-224-in21k", "vit_large_patch16_224", 1024, 16, 303_301_632, 61.6)
VIT_HUGE_IN21K = _google(
    "huge", "vit-huge-patch14-224-in21k", "vit_huge_patch14_224", 1280, 14, 630_764_800, 167.0, aliases=("vit",)
)
