"""CLIP (Radford et al., ICML 2021, arXiv:2103.00020): OpenAI's image towers ViT-B/16 (the VC-1
paper's CLIP baseline) and ViT-L/14 (Theia's CLIP-L, also one of Theia's distillation teachers).

Facts from github:openai/CLIP @d05afc4 (`clip/clip.py`, `clip/model.py`) and eai-vc's
`clip_vit_base_patch16_wit.yaml` (history @7f09836):
- architecture: pre-LN ViT (`ln_pre`), QuickGELU, LayerNorm eps 1e-5, patch embedding without
  bias; built as timm's `vit_*_clip_quickgelu_224` (timm's plain `*_clip_224` uses GELU, which
  is not OpenAI's model);
- representation: CLS after `ln_post` and *before* the projection (eai-vc reads `norm(x)[:, 0]`
  and never calls the head); spatial = patch tokens after the same `ln_post` (Hugging Face's
  `last_hidden_state`, which Theia's teacher code uses, is *before* `post_layernorm`);
- weights: OpenAI's TorchScript archives (`clip.load`, eai-vc `load_clip_vit_checkpoint` read them
  with `torch.jit.load`); the sha256 is the URL's path component, checked by `clip._download`;
  `encoders.checkpoints:openai_clip` reads them, or timm's re-upload `timm/vit_*_clip_224.openai`;
- preprocessing: Resize(224, bicubic), CenterCrop(224), CLIP mean/std (eai-vc `clip_transforms`
  with resize 224, and `clip._transform`);
- GMACs: B/16 = ViT-B/16 17.6, L/14 81.0 at 224 (reference/theia.md 3.5, analytic).

Alias: `clip` -> `clip-vitl14`. The VC-1 paper's CLIP-B/16 baseline ran through timm's GELU ViT
with eps 1e-6 (eai-vc's `ClipVisionTransformer`), an approximation of CLIP; Theia's CLIP-L is the
genuine OpenAI model with per-task published numbers (Table 12), so the alias follows Theia.
"""

from encoders.spec import CLIP_MEAN, CLIP_STD, EncoderSpec, Preprocess, Weights

CLIP_CITATION = (
    "Radford, Kim, Hallacy, Ramesh, Goh, Agarwal, Sastry, Askell, Mishkin, Clark, Krueger, Sutskever. "
    "Learning Transferable Visual Models From Natural Language Supervision. ICML 2021. arXiv:2103.00020"
)
CLIP_PREPROCESS = Preprocess(size=224, resize=224, interpolation="bicubic", mean=CLIP_MEAN, std=CLIP_STD)


def _clip(name: str, arch: str, dim: int, patch: int, params: int, gmacs: float, file: str, sha: str, aliases=()):
    grid = 224 // patch
    return EncoderSpec(
        name=name,
        aliases=aliases,
        family="clip",
        builder="encoders.vit:build_timm_vit",
        builder_kwargs={"arch": arch},
        weights=Weights(
            filename=file,
            layout="encoders.checkpoints:openai_clip",
            url=f"https://openaipublic.azureedge.net/clip/models/{sha}/{file}",
            sha256=sha,
            notes=f"OpenAI TorchScript archive; the same weights as timm/{arch.replace('_quickgelu', '')}.openai",
        ),
        preprocess=CLIP_PREPROCESS,
        embed_dim=dim,
        token_dim=dim,
        grid=(grid, grid),
        vector_output="cls",
        outputs=("cls", "mean", "spatial"),
        tap="CLS after ln_post, before the image projection; spatial = patch tokens after ln_post",
        n_parameters=params,
        gmacs=gmacs,
        license="MIT",
        commercial_use=True,
        citation=CLIP_CITATION,
        paper="VC-1 / CortexBench (ViT-B/16); Theia (CLIP-L/14)",
    )


CLIP_VITB16 = _clip(
    "clip-vitb16",
    "vit_base_patch16_clip_quickgelu_224",
    768,
    16,
    85_799_424,
    17.6,
    "ViT-B-16.pt",
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
)
CLIP_VITL14 = _clip(
    "clip-vitl14",
    "vit_large_patch14_clip_quickgelu_224",
    1024,
    14,
    303_179_776,
    81.0,
    "ViT-L-14.pt",
    "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
    aliases=("clip",),
)
