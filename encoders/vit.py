"""Vision Transformer encoders built with timm (VC-1, MVP, Theia's DeiT backbones, test ViTs).

The representation is read after the final LayerNorm: `cls` is token 0, `tokens` are the patch
tokens with every prefix token (CLS, registers) dropped.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn


class ViTEncoder(nn.Module):
    """Wraps a timm `VisionTransformer`; the checkpoint loads into `self.backbone`."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.backbone.forward_features(x)  # [B, prefix + N, C], after the final norm
        prefix = self.backbone.num_prefix_tokens
        return {"cls": hidden[:, 0], "tokens": hidden[:, prefix:]}


def build_timm_vit(arch: str, layer_norm_eps: float | None = None, **kwargs) -> ViTEncoder:
    """`timm.create_model(arch)` without a head; `layer_norm_eps` matches HF ViTs (1e-12)."""
    import timm

    if layer_norm_eps is not None:
        kwargs["norm_layer"] = partial(nn.LayerNorm, eps=layer_norm_eps)
    model = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="token", **kwargs)
    return ViTEncoder(model)
