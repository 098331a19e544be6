"""Frozen random ViTs: a published floor (the VC-1 paper's random ViT) and a small test encoder.

Their weights *are* the seeded random init, so `weights=pretrained` and `weights=random` agree.
"""

from encoders.spec import EncoderSpec, Preprocess

_PREPROCESS = Preprocess(size=224, resize=256, interpolation="bicubic")


def _random_vit(name: str, arch: str, dim: int, params: int, gmacs: float, notes: str) -> EncoderSpec:
    return EncoderSpec(
        name=name,
        family="random",
        builder="encoders.vit:build_timm_vit",
        builder_kwargs={"arch": arch},
        preprocess=_PREPROCESS,
        embed_dim=dim,
        token_dim=dim,
        grid=(14, 14),
        vector_output="cls",
        outputs=("cls", "mean", "spatial"),
        tap="CLS after the final LayerNorm; spatial = patch tokens",
        n_parameters=params,
        gmacs=gmacs,
        license="n/a (random init)",
        citation="timm VisionTransformer, random init (seed 0)",
        paper="VC-1 / CortexBench (random ViT baseline)",
        commercial_use=True,
        notes=notes,
    )


RANDOM_VIT_TINY = _random_vit(
    "random-vit-tiny", "vit_tiny_patch16_224", 192, 5_524_416, 1.25, "small, fast encoder for tests and first contact"
)
RANDOM_VIT_BASE = _random_vit(
    "random-vit-base", "vit_base_patch16_224", 768, 85_798_656, 17.6, "the frozen random ViT-B floor of the VC-1 paper"
)
