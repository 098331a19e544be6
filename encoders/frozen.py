"""A loaded, frozen encoder: `encode(uint8 frames) -> EncoderOutput(vector, tokens, grid)`.

The encoder owns its preprocessing, runs in eval mode under `torch.inference_mode()`, fp32, and
encodes in batches; its `fingerprint` names everything that changes its features (used as the
embedding-cache key and in run records).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from encoders.checkpoints import load_strict
from encoders.lookup import resolve
from encoders.preprocess import as_uint8_batch, preprocess
from encoders.registry import registry
from encoders.spec import EncoderSpec
from encoders.storage import sha256_json
from encoders.weights import ResolvedWeights, resolve_weights

_LICENCE_NOTICES: set[str] = set()

# Frames per forward. On this project's 2-core CPU a ViT-Tiny encodes ~35% more frames per second at 8-32 than
# at 64 (the attention working set outgrows the cache: docs/speed.md); features do not depend on the batch
# size (tests/test_encoder_batching.py), so this is a speed choice only. GPUs: not yet measured, 64 kept.
BATCH_SIZE = {"cpu": 32, "cuda": 64}


@dataclass
class EncoderOutput:
    vector: torch.Tensor  # [B, D] float32: the spec's pooled / CLS representation
    tokens: torch.Tensor  # [B, N, C] spatial tokens (patch tokens, or a CNN's last feature map)
    grid: tuple[int, int]  # (h, w) with h * w == N


class FrozenEncoder:
    observation = "pixels"  # the observation key it encodes (the state reference reads "state")
    torch_threads: int | None = None  # None: torch's default (the state reference pins 1)

    def __init__(self, spec: EncoderSpec, module: nn.Module, weights: ResolvedWeights, device: torch.device):
        self.spec = spec
        self.module = module.eval().requires_grad_(False).to(device)
        self.weights = weights
        self.device = device
        self.batch_size = BATCH_SIZE.get(device.type, 64)

    @torch.inference_mode()
    def encode(self, frames: np.ndarray | torch.Tensor, batch_size: int | None = None) -> EncoderOutput:
        """Encode uint8 frames [B,H,W,3] (or one [H,W,3]) in forwards of `batch_size` (default: the device's,
        `BATCH_SIZE`); outputs are float32 on the CPU."""
        frames = as_uint8_batch(frames)
        batch_size = batch_size or self.batch_size
        vectors, tokens = [], []
        for start in range(0, frames.shape[0], batch_size):
            x = preprocess(frames[start : start + batch_size], self.spec.preprocess, self.device)
            out = self.module(x)
            vectors.append(self._vector(out).float().cpu())
            tokens.append(out["tokens"].float().cpu())
        tokens_t = torch.cat(tokens)
        grid = self.spec.grid
        if tokens_t.shape[1] != grid[0] * grid[1]:
            raise RuntimeError(f"{self.spec.name}: got {tokens_t.shape[1]} tokens, spec grid is {grid}")
        return EncoderOutput(vector=torch.cat(vectors), tokens=tokens_t, grid=grid)

    def _vector(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        kind = self.spec.vector_output
        if kind == "mean":
            return out["tokens"].mean(dim=1)
        return out[kind]

    @property
    def fingerprint(self) -> str:
        """Stable hash of what determines the features: spec identity, weights, preprocessing."""
        payload = {
            "name": self.spec.name,
            "builder": self.spec.builder,
            "builder_kwargs": self.spec.builder_kwargs,
            "preprocess": asdict(self.spec.preprocess),
            "vector_output": self.spec.vector_output,
            "weights": self.weights.sha256 or self.weights.origin,
        }
        return sha256_json(payload)[:16]

    def describe(self) -> dict:
        """The encoder part of a run record."""
        return {
            "name": self.spec.name,
            "family": self.spec.family,
            "weights": self.weights.as_record(),
            "fingerprint": self.fingerprint,
            "vector_output": self.spec.vector_output,
            "embed_dim": self.spec.embed_dim,
            "token_dim": self.spec.token_dim,
            "grid": list(self.spec.grid),
            "preprocess": self.spec.preprocess.describe(),
            "license": self.spec.license,
        }


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this machine; the message names the setting and the choices."""


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto` is CUDA when there is one, else the CPU; anything else is taken as torch spells it, and must exist."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise DeviceUnavailableError(
            f"device={device!r} is not a device torch knows ({err}); use auto, cpu or cuda"
        ) from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise DeviceUnavailableError(f"device={device!r}: no CUDA GPU on this machine; use device=cpu or auto")
        if resolved.index is not None and resolved.index >= count:
            raise DeviceUnavailableError(
                f"device={device!r}: this machine has {count} GPU(s) (cuda:0..cuda:{count - 1})"
            )
    return resolved


def build_module(spec: EncoderSpec) -> nn.Module:
    """The architecture with a seeded random init (identical across runs for one torch version)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.random_seed)
        return resolve(spec.builder)(**spec.builder_kwargs)


def _licence_notice(spec: EncoderSpec, weights: ResolvedWeights) -> None:
    if weights.kind in ("random", "spec-init") or spec.commercial_use or spec.name in _LICENCE_NOTICES:
        return
    _LICENCE_NOTICES.add(spec.name)
    print(
        f"[encoders] note: {spec.name} weights are licensed '{spec.license}' (not for commercial use).", file=sys.stderr
    )


def load(name: str, weights: str | ResolvedWeights = "pretrained", device: str | torch.device = "cpu") -> FrozenEncoder:
    """Build encoder `name` (or alias) with `weights` = pretrained | random | <path to file or dir>, or
    weights already resolved by the caller (planning resolves and hashes them once per run). The state
    reference (`encoder=state`) comes back as an `encoders.state.StateReference`."""
    spec = registry().get(name)
    # resolving fails fast, before building a large model
    resolved = weights if isinstance(weights, ResolvedWeights) else resolve_weights(spec, weights)
    if spec.input == "state":
        return resolve(spec.builder)(spec, resolved, resolve_device(device))
    module = build_module(spec)
    if resolved.path is not None:
        assert spec.weights is not None
        adapter = resolve(spec.weights.layout)
        load_strict(module.backbone, adapter(resolved.path, module.backbone), str(resolved.path))
    _licence_notice(spec, resolved)
    return FrozenEncoder(spec, module, resolved, resolve_device(device))
