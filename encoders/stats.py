"""Feature-norm entropy (the Theia paper's Sec. 5 / App. G statistic), definitions 1 (per cell) and 2 (pooled).

Theia released no code for it; the paper fixes the idea (L2 norm of every spatial token of a sample
of demo frames, pooled, histogrammed, Shannon entropy) but not the bins, the sample or the log base.
Version 1 of our definition fixes them (docs/records.md): a seeded 1% sample of the task's demo frames,
at least 64 (all frames when there are fewer); every token the encoder produces (for a CNN, every
position of the last feature map); 100 equal-width bins over [min, max]; entropy in nats.
Version 2 is the paper's per-model statistic: the same, with one histogram over the norms of a task
group's training frames pooled (each task's seeded 1% sample, at least 64 frames; default group: the
12 MuJoCo tasks), written by `nox -s entropy` as a record of its own. Both keep the histogram itself.
"""

from __future__ import annotations

import numpy as np

DEFINITION_VERSION = 1
POOLED_DEFINITION_VERSION = 2
DEFAULT_BINS = 100
SAMPLE_FRACTION = 0.01
SAMPLE_MINIMUM = 64
SAMPLE_SEED = 0


def sample_frames(
    n_frames: int, seed: int = SAMPLE_SEED, fraction: float = SAMPLE_FRACTION, minimum: int = SAMPLE_MINIMUM
) -> np.ndarray:
    """Sorted indices of the frames whose tokens enter the statistic."""
    k = min(n_frames, max(minimum, round(fraction * n_frames)))
    return np.sort(np.random.default_rng(seed).choice(n_frames, size=k, replace=False))


def token_norms(tokens: np.ndarray) -> np.ndarray:
    """tokens [S, N, C] -> L2 norms [S, N] (float64 accumulation)."""
    return np.linalg.norm(np.asarray(tokens, dtype=np.float64), axis=-1)


def norm_histogram(norms: np.ndarray, bins: int = DEFAULT_BINS) -> dict:
    """The histogram the entropy is computed from: `bins` equal-width bins over [min, max] of all norms."""
    values = np.asarray(norms, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no token norms to histogram")
    lo, hi = float(values.min()), float(values.max())
    counts = np.histogram(values, bins=bins, range=(lo, hi if hi > lo else lo + 1.0))[0]
    return {"range": [lo, hi], "bins": bins, "counts": [int(c) for c in counts]}


def norm_entropy(norms: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    """Shannon entropy (nats) of the histogram of all norms, `bins` equal-width bins over [min, max]."""
    histogram = norm_histogram(norms, bins)
    if histogram["range"][0] == histogram["range"][1]:
        return 0.0
    counts = np.asarray(histogram["counts"], dtype=np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def entropy_record(norms: np.ndarray, bins: int = DEFAULT_BINS) -> dict:
    """The `feature_norm_entropy` block of a run record."""
    norms = np.asarray(norms)
    return {
        "value": norm_entropy(norms, bins),
        "definition_version": DEFINITION_VERSION,
        "bins": bins,
        "n_frames": int(norms.shape[0]),
        "tokens_per_frame": int(norms.shape[1]) if norms.ndim == 2 else None,
        "sample": {"fraction": SAMPLE_FRACTION, "minimum": SAMPLE_MINIMUM, "seed": SAMPLE_SEED},
        "histogram": norm_histogram(norms, bins),
    }


def entropy_not_applicable(why: str) -> dict:
    """The `feature_norm_entropy` block where there are no feature norms (the state reference): value None."""
    return {"value": None, "definition_version": DEFINITION_VERSION, "not_applicable": why}


def pooled_entropy_record(norms_by_task: dict[str, np.ndarray], bins: int = DEFAULT_BINS) -> dict:
    """Definition 2: one histogram over every task's sampled token norms, pooled (plus each task's v1 value)."""
    pooled = np.concatenate([np.asarray(n, dtype=np.float64).ravel() for n in norms_by_task.values()])
    return {
        "value": norm_entropy(pooled, bins),
        "definition_version": POOLED_DEFINITION_VERSION,
        "bins": bins,
        "n_frames": int(sum(np.asarray(n).shape[0] for n in norms_by_task.values())),
        "n_norms": int(pooled.size),
        "sample": {"fraction": SAMPLE_FRACTION, "minimum": SAMPLE_MINIMUM, "seed": SAMPLE_SEED, "per": "task"},
        "histogram": norm_histogram(pooled, bins),
        "tasks": {
            task: {"n_frames": int(np.asarray(n).shape[0]), "value_v1": norm_entropy(n, bins)}
            for task, n in norms_by_task.items()
        },
    }
