"""Demo frames -> frozen embeddings (batched, cached) -> training batches of fused history + proprio.

Fused histories are gathered per minibatch from the embedding array, never materialised for the
whole dataset: for spatial tokens that array alone can be gigabytes, and a 3-frame history would
triple it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from encoders.cache import STORAGE_DTYPES, EmbeddingCache
from encoders.stats import entropy_not_applicable, entropy_record, sample_frames, token_norms
from policies.fusion import fuse, history_indices
from tasks.demos import DemoSet


@dataclass
class DemoFeatures:
    embeddings: np.ndarray  # [F, D] vectors or [F, N, C] tokens (possibly memory-mapped)
    proprio: np.ndarray  # [F, P]
    actions: np.ndarray  # [F, A]
    history_index: np.ndarray  # [F, K], oldest first, clamped at each demo's start
    norms: np.ndarray | None  # [S, N] token norms of the feature-norm-entropy sample (None: the state reference)
    cache: dict

    def entropy(self, bins: int) -> dict:
        return entropy_block(self.norms, bins)

    def __len__(self) -> int:
        return len(self.actions)

    def batch(self, index: np.ndarray, fusion: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fused history [B, K, ...], proprio [B, P], actions [B, A]) for sample indices `index`."""
        rows = self.history_index[index]  # [B, K]
        flat = np.asarray(self.embeddings[rows.ravel()], dtype=np.float32)
        hist = torch.from_numpy(flat).reshape(*rows.shape, *self.embeddings.shape[1:])
        return fuse(hist, fusion), torch.from_numpy(self.proprio[index]), torch.from_numpy(self.actions[index])


def entropy_block(norms: np.ndarray | None, bins: int) -> dict:
    """A record's `feature_norm_entropy` block; n/a for the state reference (norms None: no encoder features)."""
    if norms is None:
        return entropy_not_applicable("the state reference's features are the simulator state, not an encoder's")
    return entropy_record(norms, bins)


def cell_demos(task, s, **extra) -> DemoSet:
    """The demonstrations a cell's settings ask for, as every imitation body and `nox -s entropy` load them
    (`extra` adds or replaces keywords: TriFinger's `split=`, its test split's `n=`, `render=False` for the
    state reference)."""
    kwargs = {
        "n": s.n_demos,
        "source": s.demo_source,
        "path": s.demo_path,
        "render_size": s.render_size,
        "quality": s.render_quality,
        "horizon": s.horizon,
        "progress": s.progress,
    }
    return task.demos(**(kwargs | extra))


def embed_demos(
    encoder,
    demos: DemoSet,
    kind: str,
    cache: EmbeddingCache,
    dtype: str = "float32",
    batch_size: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Embeddings of every demo frame (`kind` = vector | spatial) and the entropy sample's token norms;
    `batch_size` frames per forward (default: the encoder's, which is its device's)."""
    from tqdm.auto import tqdm

    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"embedding storage dtype {dtype!r} is not one of {STORAGE_DTYPES}")
    key = cache.key(encoder.fingerprint, demos.fingerprint, kind, dtype)

    def compute() -> tuple[dict[str, np.ndarray], dict]:
        sample = set(sample_frames(demos.n_frames).tolist())
        chunks, norms = [], []
        offset = 0
        size = batch_size or encoder.batch_size
        with tqdm(
            total=demos.n_frames, desc=f"embed {demos.task}", unit="frame", disable=None if progress else True
        ) as bar:
            for demo in demos.demos:
                frames = demo.frames[: len(demo)]
                for start in range(0, len(frames), size):
                    out = encoder.encode(frames[start : start + size], batch_size=size)
                    chunks.append((out.vector if kind == "vector" else out.tokens).numpy().astype(dtype))
                    picked = [i for i in range(len(out.tokens)) if offset + start + i in sample]
                    if picked:
                        norms.append(token_norms(out.tokens[picked].numpy()).astype(np.float32))
                    bar.update(len(out.tokens))
                offset += len(frames)
        arrays = {"embeddings": np.concatenate(chunks), "norms": np.concatenate(norms)}
        meta = {"encoder": encoder.describe(), "demos": demos.describe(), "kind": kind, "dtype": dtype}
        return arrays, meta

    entry = cache.load_or_compute(key, compute)  # concurrent jobs needing this entry compute it once
    info = {"hit": entry.hit, "key": key, "mode": cache.mode, "path": str(entry.path)}
    return entry.arrays["embeddings"], entry.arrays["norms"], info


def state_features(demos: DemoSet) -> tuple[np.ndarray, None, dict]:
    """The state reference's "embeddings": every demo step's state (nothing to encode, nothing to cache)."""
    states = np.concatenate([d.observations("state") for d in demos.demos]).astype(np.float32)
    return states, None, {"hit": None, "mode": "none: the state reference has no embeddings"}


def policy_inputs(
    encoder, demos: DemoSet, kind: str, cache: EmbeddingCache, dtype: str = "float32", progress: bool = True
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """What the policy reads at every demo step, the one place that tells the two apart: the encoder's
    embeddings (`embed_demos`, cached) or, for the state reference, the states (`state_features`)."""
    if encoder.observation == "state":
        return state_features(demos)
    return embed_demos(encoder, demos, kind, cache, dtype=dtype, progress=progress)


def demo_features(
    encoder,
    demos: DemoSet,
    kind: str,
    history: int,
    cache: EmbeddingCache,
    dtype: str = "float32",
    progress: bool = True,
) -> DemoFeatures:
    embeddings, norms, info = policy_inputs(encoder, demos, kind, cache, dtype=dtype, progress=progress)
    lengths = [len(d) for d in demos.demos]
    if embeddings.shape[0] != sum(lengths):
        raise RuntimeError(f"{embeddings.shape[0]} embeddings for {sum(lengths)} demo frames")
    return DemoFeatures(
        embeddings=embeddings,
        proprio=np.concatenate([d.proprio for d in demos.demos]).astype(np.float32),
        actions=np.concatenate([d.actions for d in demos.demos]).astype(np.float32),
        history_index=history_indices(lengths, history),
        norms=None if norms is None else np.asarray(norms),
        cache=info,
    )
