"""Readers for upstream checkpoint layouts, and a strict load that names every difference.

Each layout adapter is `(path, backbone) -> state_dict` in the backbone's own key names. Adapters
only rename and drop what upstream documents as not part of the encoder (MAE decoder, Theia's
feature translators); anything else left over makes the strict load fail with the keys named.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the architecture: missing, unexpected or mis-shaped keys."""


def read_checkpoint(path: Path) -> dict:
    """Load a .safetensors file or a torch pickle restricted to tensors (`weights_only=True`)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: {err}") from err


def _preview(keys: list[str], n: int = 8) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_strict(backbone: nn.Module, state_dict: StateDict, source: str) -> None:
    """Load every tensor of the architecture and nothing else; refuse with the key difference."""
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    reshaped = sorted(
        f"{k} {tuple(state_dict[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if state_dict[k].shape != expected[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_preview(unexpected)}")
    if reshaped:
        problems.append(f"shape mismatches: {_preview(reshaped)}")
    if problems:
        raise CheckpointMismatchError(
            f"checkpoint {source} does not match the architecture ({len(expected)} tensors): " + "; ".join(problems)
        )
    backbone.load_state_dict(state_dict, strict=True)


def plain(path: Path, backbone: nn.Module) -> StateDict:
    """A bare state dict (or one under 'state_dict' / 'model')."""
    ckpt = read_checkpoint(path)
    for key in ("state_dict", "model"):
        if isinstance(ckpt.get(key), dict):
            return ckpt[key]
    return ckpt


def mae_encoder(path: Path, backbone: nn.Module) -> StateDict:
    """MAE-format checkpoints (VC-1, MVP): `{'model': sd}` with decoder and mask-token keys.

    Mirrors `vc_models.models.vit.vit.load_mae_encoder`: drop every key containing `decoder` or
    `mask_token`, and resample `pos_embed` when the checkpoint's grid differs (MVP ViT-L at 256).
    """
    ckpt = read_checkpoint(path)
    sd = ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt
    sd = {k: v for k, v in sd.items() if "decoder" not in k and "mask_token" not in k}
    target = getattr(backbone, "pos_embed", None)
    if target is not None and "pos_embed" in sd and sd["pos_embed"].shape != target.shape:
        from timm.layers import resample_abs_pos_embed

        prefix = getattr(backbone, "num_prefix_tokens", 1)
        sd["pos_embed"] = resample_abs_pos_embed(
            sd["pos_embed"], new_size=list(backbone.patch_embed.grid_size), num_prefix_tokens=prefix
        )
    return sd


_HF_VIT_RULES = [
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"^encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^layernorm\.", "norm."),
]
_HF_QKV = re.compile(r"^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$")


def hf_vit_to_timm(sd: StateDict) -> StateDict:
    """Rename a Hugging Face `ViTModel` (transformers 4.x layout) state dict to timm's ViT keys.

    q, k and v projections are stacked into timm's fused `qkv`; keys no rule covers are passed
    through unchanged, so the strict load reports them.
    """
    out: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if m := _HF_QKV.match(key):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = value
            continue
        for pattern, repl in _HF_VIT_RULES:
            if re.match(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        out[key] = value
    for (layer, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise CheckpointMismatchError(f"layer {layer} has only {sorted(parts)} of query/key/value {kind}")
        out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]], 0)
    return out


THEIA_BACKBONE_MARKER = "embeddings.patch_embeddings.projection.weight"


def theia_safetensors(path: Path, backbone: nn.Module) -> StateDict:
    """Theia's released `model.safetensors`: keep the DeiT backbone, ignore the feature translators.

    The backbone is an HF `ViTModel` stored under a prefix (`backbone.model.` in the Theia code);
    the prefix is found from the patch-embedding key, so a re-rooted export loads too.
    """
    sd = read_checkpoint(path)
    prefixes = {k[: -len(THEIA_BACKBONE_MARKER)] for k in sd if k.endswith(THEIA_BACKBONE_MARKER)}
    if len(prefixes) != 1:
        raise CheckpointMismatchError(
            f"{path}: expected one ViT backbone (a key ending in {THEIA_BACKBONE_MARKER!r}), found {len(prefixes)}"
        )
    prefix = prefixes.pop()
    backbone_sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    backbone_sd.pop("pooler.dense.weight", None)  # Theia replaces the pooler with Identity
    backbone_sd.pop("pooler.dense.bias", None)
    return hf_vit_to_timm(backbone_sd)
