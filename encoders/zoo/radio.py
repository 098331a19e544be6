"""RADIO and E-RADIO (Ranzinger et al., AM-RADIO, CVPR 2024, arXiv:2312.06709): agglomerative models
distilled from CLIP, DINOv2 and SAM; Theia's "RADIO" (-H) and "E-RADIO" (-L) baselines.

Facts from github:NVlabs/RADIO @c0f3701 (`hubconf.py`, `radio/common.py`, `radio/radio_model.py`,
`radio/eradio_model.py`) and reference/theia.md 5:
- Theia names only "RADIO-H" and "E-RADIO-L"; in July 2024 the hub versions were `radio_v2.1` (the
  default then: ViT-H/16 with CPE, bf16 checkpoint) and `e-radio_v2` (`eradio` =
  `eradio_large_fullres_ws16`), so those are the entries [inferred];
- the code is NVIDIA's (not on PyPI, NSCL-NC licence) and is loaded from a local clone
  (`encoders.radio`; `$RADIO_REPO`); nothing of it is copied here;
- the architecture arguments live inside each checkpoint (`chk['args']`). The `args` below are a
  reconstruction for `weights=random` (reference/encoders.md 1.5, 1.6: RADIO v2.x = ViT-H/16, CPE
  table for 2048 px, one CLS token per teacher + registers to a multiple of 8, three summary
  teachers; E-RADIO = `eradio` with its dense-feature neck) [verify on the first real load: the
  strict load names any difference, and the parameter counts are those measured with these args];
- input: [0, 1] RGB, resized to 224x224 (Hugging Face's usage: `CLIPImageProcessor(do_resize,
  no crop, do_normalize=False)`, bicubic); the OpenAI-CLIP mean/std are applied inside the model by
  its `input_conditioner`, so the harness's normalisation is the identity (mean 0, std 1);
- outputs: `pooled` = RADIO's summary (ViT-H: the CLS tokens of the 3 summary teachers, 3 x 1280;
  E-RADIO: the mean of its dense features); spatial = RADIO's features, 14x14 at 224 px (RADIO skips
  the CLS and register tokens; E-RADIO's neck has stride 16); Theia feeds the spatial features;
- GMACs: ViT-H/16 at 224 with 196 patches + 8 prefix tokens, analytic (32 x (12 N C^2 + 2 N^2 C) +
  patch embedding = 132) [derived]; E-RADIO's has not been measured here (it needs the RADIO code).
"""

from encoders.spec import EncoderSpec, Preprocess, Weights

RADIO_CITATION = (
    "Ranzinger, Heinrich, Kautz, Molchanov. AM-RADIO: Agglomerative Vision Foundation Model - Reduce All "
    "Domains Into One. CVPR 2024. arXiv:2312.06709"
)
RADIO_LICENSE = "NVIDIA Source Code License-NC (non-commercial)"
# [0,1] input: the model normalises with the CLIP mean/std itself (its input_conditioner).
RADIO_PREPROCESS = Preprocess(size=224, resize=None, interpolation="bicubic", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
_TEACHERS = [
    {"name": "clip", "use_summary": True},
    {"name": "openai_clip", "use_summary": True},
    {"name": "dino_v2", "use_summary": True},
    {"name": "sam", "use_summary": False},
]


def _radio(name: str, version: str, args: dict, file: str, dims: tuple[int, int], params: int, gmacs: float, **kw):
    return EncoderSpec(
        name=name,
        family="radio",
        builder="encoders.radio:build_radio",
        builder_kwargs={"version": version, "args": args},
        weights=Weights(
            filename=file,
            layout="encoders.radio:radio_checkpoint",
            hf_repo="nvidia/RADIO",
            url=f"https://huggingface.co/nvidia/RADIO/resolve/main/{file}",
            notes=f"torch hub version {version!r}; a pickle with the architecture args (load trusted files only)",
        ),
        preprocess=RADIO_PREPROCESS,
        embed_dim=dims[0],
        token_dim=dims[1],
        grid=(14, 14),
        vector_output="pooled",
        outputs=("pooled", "spatial"),
        tap="RADIOModel output: summary -> pooled, features (CLS/register tokens skipped) -> spatial",
        n_parameters=params,
        gmacs=gmacs,
        license=RADIO_LICENSE,
        citation=RADIO_CITATION,
        paper="Theia",
        **kw,
    )


RADIO_V21 = _radio(
    "radio-v2.1",
    "radio_v2.1",
    {
        "model": "vit_huge_patch16_224",
        "cpe_max_size": 2048,
        "cls_token_per_teacher": True,
        "register_multiple": 8,
        "teachers": _TEACHERS,
    },
    "radio_v2.1_bf16.pth.tar",
    (3 * 1280, 1280),
    651_642_880,
    132.0,
    aliases=("radio",),
    notes="ViT-H/16 with CPE; bf16 checkpoint, run in fp32 here",
)
E_RADIO_V2 = _radio(
    "e-radio-v2",
    "e-radio_v2",
    {"model": "eradio", "model_kwargs": {"return_full_features": True}, "teachers": _TEACHERS},
    "eradio_v2.pth.tar",
    (1536, 1536),
    389_598_784,
    float("nan"),
    aliases=("e-radio",),
    notes="hybrid CNN / windowed-attention network; GMACs not measured (needs the RADIO code)",
)
