"""ResNet encoders built with torchvision (R3M, VIP).

R3M and VIP both wrap `torchvision.models.resnet50` (github:facebookresearch/r3m @b2334e7
`r3m/models/models_r3m.py`, github:facebookresearch/vip @81b0520 `vip/models/model_vip.py`): R3M
replaces `fc` with `Identity` (2048-d average-pooled vector), VIP keeps `fc = Linear(2048, 1024)`
as part of the encoder. The module returns both the representation the papers use (`pooled`, the
output of the network's own forward) and every position of the last feature map (`layer4`, 7x7
at 224 px) as tokens, which is what the feature-norm entropy measures for a CNN.
"""

from __future__ import annotations

import torch
from torch import nn


class ResNetEncoder(nn.Module):
    """Wraps a torchvision ResNet; the checkpoint loads into `self.backbone`."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        net = self.backbone  # torchvision's ResNet._forward_impl, split after layer4
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        fmap = net.layer4(net.layer3(net.layer2(net.layer1(x))))  # [B, 2048, 7, 7] at 224 px
        pooled = net.fc(torch.flatten(net.avgpool(fmap), 1))
        return {"pooled": pooled, "tokens": fmap.flatten(2).transpose(1, 2)}


def build_torchvision_resnet(arch: str = "resnet50", fc_dim: int | None = None) -> ResNetEncoder:
    """`torchvision.models.<arch>(weights=None)` with `fc` = Identity (R3M) or Linear(features, fc_dim) (VIP)."""
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None)
    features = net.fc.in_features
    net.fc = nn.Linear(features, fc_dim) if fc_dim else nn.Identity()
    return ResNetEncoder(net)
