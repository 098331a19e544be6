"""Frames (uint8 [B,H,W,3]) to normalised encoder input, in torch, batched, without PIL.

The reference code runs each frame through PIL and torchvision transforms one at a time. Resizing
here uses torchvision's antialiased uint8 kernel on the whole batch, which is what Theia's own
transform runs and is built to match PIL's 8-bit resampling (the VC-1 path); crop and normalisation
follow torchvision's arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from encoders.spec import Preprocess


def as_uint8_batch(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Accept numpy or torch, [H,W,3] or [B,H,W,3] uint8; return a torch uint8 [B,H,W,3] tensor."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if tensor.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8 (0-255), got {tensor.dtype}")
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"frames must be [B,H,W,3] or [H,W,3], got shape {tuple(tensor.shape)}")
    return tensor


_MODES = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return TF.resize(x, list(size), interpolation=_MODES[mode], antialias=True)


def preprocess(frames: np.ndarray | torch.Tensor, spec: Preprocess, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return float32 [B,3,size,size] ready for the encoder."""
    x = as_uint8_batch(frames).to(device).permute(0, 3, 1, 2)  # uint8 [B,3,H,W]
    height, width = x.shape[-2:]
    if spec.resize is None:
        x = _resize(x, (spec.size, spec.size), spec.interpolation)
    else:
        short, long = sorted((height, width))  # torchvision's Resize(int) arithmetic
        new_long = int(spec.resize * long / short)
        new_size = (spec.resize, new_long) if height <= width else (new_long, spec.resize)
        x = _resize(x, new_size, spec.interpolation)
        top = round((x.shape[-2] - spec.size) / 2)  # torchvision's CenterCrop arithmetic
        left = round((x.shape[-1] - spec.size) / 2)
        x = x[..., top : top + spec.size, left : left + spec.size]
    x = x.float()
    mean = torch.tensor(spec.mean, device=x.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(spec.std, device=x.device).view(1, 3, 1, 1) * 255.0
    # Contiguous (NCHW) whatever the batch size: the uint8 NHWC input permuted is channels-last for B > 1 but
    # not for B == 1, and conv kernels of the two layouts round differently, so a frame's features would
    # depend on how many frames were encoded with it.
    return ((x - mean) / std).contiguous()
