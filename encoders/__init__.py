"""Frozen visual encoders: a registry of specs, weights resolution, batched encoding.

import encoders
enc = encoders.load("theia-base", weights="pretrained" | "random" | "<path>", device="cpu")
out = enc.encode(frames)   # uint8 [B,H,W,3] -> out.vector [B,D], out.tokens [B,N,C], out.grid
encoders.available()       # every spec, plug-ins included
"""

from __future__ import annotations

from encoders.spec import EncoderSpec, Preprocess, Weights


def available() -> list[EncoderSpec]:
    """All registered specs (zoo and entry-point plug-ins), sorted by name."""
    from encoders.registry import registry

    return registry().specs()


def get_spec(name: str) -> EncoderSpec:
    """The spec for a name or alias; unknown names raise with close matches."""
    from encoders.registry import registry

    return registry().get(name)


def load(name: str, weights="pretrained", device: str = "cpu"):
    """Load a frozen encoder; see `encoders.frozen.load`."""
    from encoders.frozen import load as load_frozen

    return load_frozen(name, weights=weights, device=device)


__all__ = ["EncoderSpec", "Preprocess", "Weights", "available", "get_spec", "load"]
