"""What every kind of cell (BC `cell.py`, `trifinger_cell.py`, `rl_cell.py`, `habitat_cell.py`) does the
same way: seeding, stage timing, where the record goes, the record's skeleton, the score summary over
evaluations and the error of a failed cell. One place, so the records of all cells keep one schema."""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from experiments.protocol import CellSettings
from experiments.provenance import provenance
from experiments.records import SCHEMA_VERSION, encoder_label, record_path
from tasks.metrics import episode_value
from tasks.rendering import backend_info


@contextmanager
def timed(timing: dict, stage: str) -> Iterator[None]:
    """Add the seconds spent in the block to `timing[stage]` (stages repeat: evaluations add up)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timing[stage] = round(timing.get(stage, 0.0) + time.perf_counter() - start, 3)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch, as CortexBench's `set_seed`."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cell_path(s: CellSettings, weights_kind: str, weights_sha256: str | None) -> Path:
    label = encoder_label(s.encoder, weights_kind, weights_sha256, s.policy, s.default_policy)
    return record_path(s.results_dir, s.protocol, label, s.task, s.seed)


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when there is one, else the CPU; anything else is taken as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def new_record(
    s: CellSettings,
    encoder,
    task,
    *,
    output_used: str,
    policy: str,
    device: torch.device,
    config: dict | None,
    headline: str | None = None,
    rendered: bool = True,
    provenance_extra: dict | None = None,
) -> dict:
    """A `failed` record with everything known before the cell runs; the cell fills in the rest.
    `rendered`: the harness renders the frames (so the backend and quality are recorded)."""
    render = {"render": backend_info() | {"quality": s.render_quality}} if rendered else {}
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "failed",
        "error": None,
        "protocol": {"name": s.protocol, "headline": headline or s.headline},
        "encoder": encoder.describe() | {"output_used": output_used},
        "task": {
            "name": task.name,
            "suite": task.suite,
            "version": task.version,
            "env_id": task.env_id,
            "upstream_env_id": task.upstream_env_id,
            "camera": task.camera,
            "metric": task.metric,
            "horizon": task.horizon,
            "action_repeat": task.action_repeat,
        },
        "policy": {"name": policy},
        "seed": s.seed,
        "scores": None,
        "episodes": None,
        "feature_norm_entropy": None,
        "timing": {},
        "settings": s.as_dict(),
        "provenance": provenance(str(device)) | render | (provenance_extra or {}) | {"config": config},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def episode_rows(metric: str, episodes: Sequence) -> list[dict]:
    """The per-episode part of a record: seed, scored value, return and length."""
    return [
        {"seed": ep.seed, "value": episode_value(metric, ep), "return": ep.total_return, "length": ep.length}
        for ep in episodes
    ]


def summarise(
    evaluations: Sequence[tuple[int, float, Sequence]],
    metric: str,
    headline: str,
    train_loss: list[float],
    rows: Callable[[str, Sequence], list[dict]] = episode_rows,
    **extra,
) -> tuple[dict, dict]:
    """`scores` and `episodes` of a record from [(epoch or step, score, episodes), ...]: the final
    evaluation and the best over evaluations (CortexBench's `highest_*`; ties go to the earliest)."""
    best_epoch, best_value, best_episodes = max(evaluations, key=lambda e: e[1])
    final_epoch, final_value, final_episodes = evaluations[-1]
    scores = {
        "metric": metric,
        "headline": headline,
        **extra,
        "final": final_value,
        "best": best_value,
        "best_epoch": best_epoch,
        "final_epoch": final_epoch,
        "per_eval": [[e, v] for e, v, _ in evaluations],
        "train_loss": train_loss,
    }
    return scores, {"best": rows(metric, best_episodes), "final": rows(metric, final_episodes)}


def error_info(err: BaseException) -> dict:
    """The `error` field of a failed record: type, message and traceback."""
    return {"type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}
