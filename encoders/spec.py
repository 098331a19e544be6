"""The metadata object every encoder is described by (one frozen `EncoderSpec` per architecture x weights).

Weights and preprocessing travel together in one spec, as in timm's `arch.tag` configs; the
descriptive fields (parameters, GMACs, licence, citation) follow mteb's `ModelMeta`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)

Output = Literal["cls", "mean", "pooled", "spatial"]


@dataclass(frozen=True)
class Preprocess:
    """How a uint8 HxWx3 frame becomes the encoder's input tensor, stated explicitly.

    `resize` is the shorter-side size before a center crop to `size`; `resize=None` squashes the
    frame straight to `size` x `size` (Theia). Resizing is antialiased and done on the uint8
    image, as PIL and Theia's transform do; pixel values are then scaled to [0, 1] and normalised
    with `mean`/`std`.
    """

    size: int = 224
    resize: int | None = 256
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def describe(self) -> str:
        steps = (
            [f"resize {self.resize} {self.interpolation}", f"center-crop {self.size}"]
            if self.resize
            else [f"resize {self.size}x{self.size} {self.interpolation}"]
        )
        steps.append(f"normalize mean={list(self.mean)} std={list(self.std)} on [0,1]")
        return ", ".join(steps)


@dataclass(frozen=True)
class Weights:
    """Where a released checkpoint lives and which adapter reads its layout.

    A Hugging Face source (`hf_repo` + pinned `hf_revision`) is tried first, then `url`.
    `layout` is a lazy "module:attr" adapter: `(path) -> state dict of the backbone`.
    `sha256`, when known, is enforced on every load.
    """

    filename: str
    layout: str
    hf_repo: str | None = None
    hf_revision: str | None = None
    url: str | None = None
    sha256: str | None = None
    notes: str = ""


@dataclass(frozen=True)
class EncoderSpec:
    """One frozen encoder: architecture, weights, preprocessing, outputs and provenance.

    `builder` is a lazy "module:attr" called with `builder_kwargs`; it returns an `nn.Module` whose
    `forward(x)` gives a dict with `tokens` [B,N,C] and optionally `cls` / `pooled` [B,D], and whose
    attribute `backbone` receives the checkpoint's state dict.
    """

    name: str
    family: str
    builder: str
    preprocess: Preprocess
    embed_dim: int  # size of `vector`
    token_dim: int  # C of `tokens`
    grid: tuple[int, int]  # (h, w) of `tokens` at the spec's input size
    vector_output: Output  # which output `EncoderOutput.vector` holds
    outputs: tuple[Output, ...]
    n_parameters: int
    gmacs: float
    license: str
    citation: str
    paper: str
    weights: Weights | None = None  # None: the encoder *is* its seeded random init
    aliases: tuple[str, ...] = ()
    builder_kwargs: dict = field(default_factory=dict, hash=False, compare=False)
    backbone_type: Literal["transformer", "cnn"] = "transformer"
    tap: str = ""  # where the representation is read, in words
    random_seed: int = 0
    commercial_use: bool = False
    notes: str = ""
    # What the "encoder" reads: camera frames, or the simulator's low-dimensional state (the state reference
    # row, `encoders/state.py`: no weights, no preprocessing, no embedding cache, features = the state).
    input: Literal["pixels", "state"] = "pixels"

    @property
    def n_tokens(self) -> int:
        return self.grid[0] * self.grid[1]
