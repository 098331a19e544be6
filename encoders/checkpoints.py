"""Readers for upstream checkpoint layouts, and a strict load that names every difference.

Each layout adapter is `(path, backbone) -> state_dict` in the backbone's own key names. Adapters
only rename and drop what upstream documents as not part of the encoder (MAE decoder, Theia's
feature translators); anything else left over makes the strict load fail with the keys named.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the architecture: missing, unexpected or mis-shaped keys."""


class CheckpointFormatError(ValueError):
    """A checkpoint file is empty, truncated or not in the format its name says; the message names the file."""


def format_problem(path: Path) -> str | None:
    """Why `path` cannot be a checkpoint, from its first and last bytes only (cheap: checked when planning,
    before an encoder is built), or None. safetensors: an 8-byte header length, then that much JSON. torch:
    a zip archive (torch >= 1.6) whose central directory reads, or a pickle (legacy torch.save)."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(8)
        if path.suffix == ".safetensors":
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < length <= size - 8:
                return "is not a safetensors file (bad header length): corrupt, truncated or the wrong file"
            try:
                json.loads(f.read(length))
            except ValueError:
                return "is not a safetensors file (unreadable header): corrupt, truncated or the wrong file"
            return None
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            return f"is a damaged zip archive ({err}): truncated or corrupt"
        return None
    if head[:1] == b"\x80":  # a pickle's PROTO opcode: legacy torch.save
        return None
    return "is neither a torch checkpoint (zip or pickle) nor a safetensors file: corrupt or the wrong file"


def check_format(path: Path) -> None:
    if (problem := format_problem(Path(path))) is not None:
        raise CheckpointFormatError(f"checkpoint {path} {problem}; pass a valid file with weights=<path>")


def read_checkpoint(path: Path) -> dict:
    """Load a .safetensors file or a torch pickle restricted to tensors (`weights_only=True`)."""
    path = Path(path)
    check_format(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except SafetensorError as err:
            raise CheckpointFormatError(f"cannot read checkpoint {path}: {err}; is it truncated?") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) and "GLOBAL" in str(err):  # a real pickle with non-tensor objects
            raise CheckpointMismatchError(f"checkpoint {path} holds Python objects besides tensors: {err}") from err
        raise CheckpointFormatError(f"cannot read checkpoint {path}: not a valid torch checkpoint (corrupt?)") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointFormatError(f"cannot read checkpoint {path}: {err} (corrupt or truncated?)") from err


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
    `mask_token`, and resample `pos_embed` when the checkpoint's grid differs (MVP ViT-L at 256)
    the way it does: timm 0.6's `resize_pos_embed`, bicubic without antialiasing.
    """
    ckpt = read_checkpoint(path)
    sd = ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt
    sd = {k: v for k, v in sd.items() if "decoder" not in k and "mask_token" not in k}
    target = getattr(backbone, "pos_embed", None)
    if target is not None and "pos_embed" in sd and sd["pos_embed"].shape != target.shape:
        from timm.layers import resample_abs_pos_embed

        prefix = getattr(backbone, "num_prefix_tokens", 1)
        sd["pos_embed"] = resample_abs_pos_embed(
            sd["pos_embed"], new_size=list(backbone.patch_embed.grid_size), num_prefix_tokens=prefix, antialias=False
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


# --- Zoo layouts: R3M, VIP, OpenAI CLIP, DINOv2, Hugging Face ViT (Google in21k), timm/DeiT classifiers ---


def _resnet_under(path: Path, key: str, dropped: tuple[str, ...]) -> StateDict:
    """The ResNet of a DataParallel-saved R3M/VIP agent: `{key: {'module.convnet.<k>': ...}}` -> `{<k>: ...}`."""
    ckpt = read_checkpoint(path)
    if not isinstance(ckpt.get(key), dict):
        raise CheckpointMismatchError(
            f"{path}: expected the {key.upper()} layout, a dict under {key!r}; found top-level keys {_preview(sorted(ckpt))}"
        )
    out: StateDict = {}
    for name, value in ckpt[key].items():
        if name.startswith("module.convnet."):
            out[name[len("module.convnet.") :]] = value
        elif not name.startswith(dropped):
            out[name] = value  # not part of the documented layout: the strict load names it
    return out


def r3m_checkpoint(path: Path, backbone: nn.Module) -> StateDict:
    """R3M's `model.pt` (mirror: `r3m_50.pt`): `{'r3m': state dict of DataParallel(R3M)}`.

    The ResNet is under `module.convnet.`; the language-reward head (`module.lang_enc.`,
    `module.lang_rew.`) is dropped as `r3m.remove_language_head` and eai-vc's `load_r3m_checkpoint`
    do, and so is `fc.*` (R3M's fc is an Identity; eai-vc drops the prefix anyway).
    """
    sd = _resnet_under(path, "r3m", ("module.lang_enc.", "module.lang_rew."))
    return {k: v for k, v in sd.items() if not k.startswith("fc.")}


def vip_checkpoint(path: Path, backbone: nn.Module) -> StateDict:
    """VIP's `model.pt`: `{'vip': state dict of DataParallel(VIP)}`; the ResNet *and its fc (2048->1024)*
    are under `module.convnet.` and all kept (eai-vc `load_vip_checkpoint`)."""
    return _resnet_under(path, "vip", ())


def _read_torchscript_or_pickle(path: Path) -> StateDict:
    """OpenAI ships CLIP as TorchScript archives; `clip.load` and eai-vc read them with `torch.jit.load`."""
    import warnings
    import zipfile

    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            scripted = any(name.endswith("constants.pkl") for name in archive.namelist())  # only TorchScript has it
        if scripted:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still the format
                try:
                    module = torch.jit.load(str(path), map_location="cpu")
                except Exception as err:
                    raise CheckpointMismatchError(f"cannot read TorchScript checkpoint {path}: {err}") from err
            return {k: v.detach() for k, v in module.state_dict().items()}
    return read_checkpoint(path)


_OPENAI_CLIP_RULES = [
    (r"^conv1\.weight$", "patch_embed.proj.weight"),
    (r"^ln_pre\.", "norm_pre."),
    (r"^ln_post\.", "norm."),
    (r"^transformer\.resblocks\.(\d+)\.ln_1\.", r"blocks.\1.norm1."),
    (r"^transformer\.resblocks\.(\d+)\.ln_2\.", r"blocks.\1.norm2."),
    (r"^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$", r"blocks.\1.attn.qkv.\2"),
    (r"^transformer\.resblocks\.(\d+)\.attn\.out_proj\.", r"blocks.\1.attn.proj."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_fc\.", r"blocks.\1.mlp.fc1."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_proj\.", r"blocks.\1.mlp.fc2."),
]


def openai_clip(path: Path, backbone: nn.Module) -> StateDict:
    """CLIP image tower, from OpenAI's release (`ViT-B-16.pt`, TorchScript or a saved state dict,
    `visual.*` keys) or from timm's copy (`timm/vit_*_clip_224.openai`, timm keys).

    Kept: everything up to `ln_post`, the tap (CLS after `ln_post`, before the projection, as
    eai-vc's CLIP baseline reads it). Dropped: the text tower (every non-`visual.` key) and the image
    projection (`visual.proj`, timm's `head`), which come after the tap.
    """
    sd = _read_torchscript_or_pickle(path)
    if not any(k.startswith("visual.") for k in sd):  # timm layout: the projection is `head`
        return {k: v for k, v in sd.items() if not k.startswith("head.")}
    out: StateDict = {}
    for key, value in sd.items():
        if not key.startswith("visual.") or key == "visual.proj":
            continue
        key = key[len("visual.") :]
        if key == "class_embedding":
            out["cls_token"] = value.reshape(1, 1, -1)
            continue
        if key == "positional_embedding":
            out["pos_embed"] = value.unsqueeze(0)
            continue
        for pattern, repl in _OPENAI_CLIP_RULES:
            if re.match(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        out[key] = value
    return out


def dinov2_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], offset: float = 0.1) -> torch.Tensor:
    """DINOv2's run-time position-embedding interpolation, done once (github:facebookresearch/dinov2
    @b8931f7 `DinoVisionTransformer.interpolate_pos_encoding` with the hub defaults
    `interpolate_offset=0.1`, `interpolate_antialias=False`): bicubic with scale factor (n + 0.1) / M."""
    import math

    import torch.nn.functional as F

    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:].float()
    side = int(math.sqrt(patch_pos.shape[1]))
    if side * side != patch_pos.shape[1]:
        raise CheckpointMismatchError(f"pos_embed with {patch_pos.shape[1]} patch positions is not a square grid")
    dim = patch_pos.shape[-1]
    resized = F.interpolate(
        patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2),
        scale_factor=((grid[0] + offset) / side, (grid[1] + offset) / side),
        mode="bicubic",
        antialias=False,
    )
    if tuple(resized.shape[-2:]) != tuple(grid):
        raise CheckpointMismatchError(f"pos_embed resampled to {tuple(resized.shape[-2:])}, expected {tuple(grid)}")
    resized = resized.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([cls_pos, resized.to(pos_embed.dtype)], dim=1)


def dinov2_hub(path: Path, backbone: nn.Module) -> StateDict:
    """DINOv2's torch-hub file (`dinov2_vit{s,b,l}14_pretrain.pth`): a plain state dict with a 37x37
    (518 px) position grid and the masked-modelling `mask_token`.

    `mask_token` is dropped (unused at inference); `pos_embed` is resampled to the backbone's grid
    (16x16 at 224 px) with the hub model's own run-time arithmetic, so the features equal the hub
    model's at that size.
    """
    sd = dict(plain(path, backbone))
    sd.pop("mask_token", None)
    target = getattr(backbone, "pos_embed", None)
    if target is not None and "pos_embed" in sd and sd["pos_embed"].shape != target.shape:
        sd["pos_embed"] = dinov2_pos_embed(sd["pos_embed"], tuple(backbone.patch_embed.grid_size))
    return sd


def hf_vit_model(path: Path, backbone: nn.Module) -> StateDict:
    """A Hugging Face ViT checkpoint (transformers 4.x layout): `google/vit-*-in21k` (`ViTModel`,
    keys at the root) or a `ViTForImageClassification` (`vit.` prefix).

    Dropped: the pre-logits `pooler` (dense + tanh on CLS) and any `classifier`, which come after
    the tap (the final LayerNorm); the rest is renamed to timm's ViT by `hf_vit_to_timm`.
    """
    sd = read_checkpoint(path)
    if any(k.startswith("vit.") for k in sd):
        sd = {k[len("vit.") :]: v for k, v in sd.items() if k.startswith("vit.")} | {
            k: v for k, v in sd.items() if not k.startswith(("vit.", "classifier."))
        }
    sd = {k: v for k, v in sd.items() if not k.startswith(("pooler.", "classifier."))}
    return hf_vit_to_timm(sd)


def timm_classifier(path: Path, backbone: nn.Module) -> StateDict:
    """A timm-keyed classifier checkpoint (DeiT's release `{'model': sd}`, or a bare state dict):
    the ImageNet classification `head` is dropped; everything else must match the backbone."""
    sd = plain(path, backbone)
    return {k: v for k, v in sd.items() if not k.startswith("head.")}
