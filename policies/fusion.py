"""Frame history and its fusion, as CortexBench does it (`fuse_embeddings_flare`, eai-vc).

For embeddings [e_{t-2}, e_{t-1}, e_t] FLARE gives [e_{t-1} - e_{t-2}, e_t - e_{t-1}, e_t]. At the
start of an episode the history is padded with the first frame (so the deltas are 0); the training
side does the same by clamping indices at 0.
"""

from __future__ import annotations

import numpy as np
import torch

FUSIONS = ("flare", "concat")


def history_indices(lengths: list[int], history: int) -> np.ndarray:
    """For every frame of every demo (concatenated), the global indices of its `history` frames, oldest first."""
    rows = []
    offset = 0
    for length in lengths:
        t = np.arange(length)[:, None]
        back = np.arange(history - 1, -1, -1)[None, :]  # history-1 ... 0
        rows.append(offset + np.maximum(t - back, 0))
        offset += length
    return np.concatenate(rows) if rows else np.zeros((0, history), np.int64)


def fuse(history: torch.Tensor, fusion: str = "flare") -> torch.Tensor:
    """history: [B, K, ...] oldest first -> the same shape with FLARE deltas (or unchanged for concat)."""
    if fusion == "concat":
        return history
    if fusion != "flare":
        raise ValueError(f"unknown fusion {fusion!r}; expected one of {FUSIONS}")
    deltas = history[:, 1:] - history[:, :-1]
    return torch.cat([deltas, history[:, -1:]], dim=1)


class HistoryBuffer:
    """Per-environment rolling window of the last K embeddings, for batched (lockstep) rollouts."""

    def __init__(self, history: int):
        self.history = history
        self.buffer: torch.Tensor | None = None  # [N, K, ...]

    def reset(self, first: torch.Tensor) -> torch.Tensor:
        self.buffer = first.unsqueeze(1).repeat_interleave(self.history, dim=1).clone()
        return self.buffer

    def push(self, latest: torch.Tensor) -> torch.Tensor:
        assert self.buffer is not None, "reset the history first"
        self.buffer = torch.cat([self.buffer[:, 1:], latest.unsqueeze(1)], dim=1)
        return self.buffer
