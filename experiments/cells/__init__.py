"""One cell lifecycle for every kind of cell: lock, skip, record skeleton, timing, error capture, cleanup,
atomic write. The training loops (`bc.py`, `trifinger.py`, `rl.py`, `habitat.py`) are bodies that read
top to bottom like a cleanrl script; `run_cell` picks the body from the policy table (`policies.POLICIES`)
and does everything around it the same way, so every record keeps one schema.

A body is `train_and_evaluate(run: CellRun) -> None`: it fills `run.record` (demos, scores, episodes,
entropy, policy hyperparameters) and registers what must be closed on `run.resources`; the lifecycle
marks the record ok when the body returns, failed with the error when it raises, and writes it.
"""

from __future__ import annotations

import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import tasks
from encoders.frozen import FrozenEncoder, resolve_device
from encoders.state import sized_for
from encoders.storage import file_lock, leftover_temp_files, move_aside
from experiments.conformance import stamp
from experiments.provenance import provenance
from experiments.records import (
    SCHEMA_VERSION,
    cell_record_path,
    failed_rerun_path,
    inspect_record,
    lock_path,
    read_ok_record,
    resume_path,
    write_record,
)
from experiments.settings import CellSettings
from policies import PolicySpec, get_policy
from tasks.metrics import episode_value
from tasks.rendering import backend_info
from tasks.spec import TaskSpec


@contextmanager
def timed(timing: dict, stage: str) -> Iterator[None]:
    """Add the seconds spent in the block to `timing[stage]` (stages repeat: evaluations add up)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timing[stage] = round(timing.get(stage, 0.0) + time.perf_counter() - start, 3)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch threads (None: leave them), restoring the count after."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch, as CortexBench's `set_seed`."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class CellRun:
    """What a cell body works with: the cell's settings, the loaded encoder, the task, the policy, the
    device, the record it fills in, and `resources` (an ExitStack closed when the cell ends)."""

    settings: CellSettings
    encoder: FrozenEncoder
    task: TaskSpec
    policy: PolicySpec
    device: torch.device
    path: Path
    record: dict
    resources: ExitStack = field(default_factory=ExitStack)
    started: float = field(default_factory=time.perf_counter)

    @property
    def timing(self) -> dict:
        return self.record["timing"]

    def timed(self, stage: str):
        return timed(self.timing, stage)

    def elapsed(self) -> float:
        """Seconds since this run of the cell started."""
        return time.perf_counter() - self.started

    @property
    def label(self) -> str:
        """The encoder label of the record path (name, weights tag, policy tag)."""
        return self.path.parent.parent.name


def new_record(s: CellSettings, encoder: FrozenEncoder, task: TaskSpec, policy: PolicySpec, device, config) -> dict:
    """A `failed` record with everything known before the cell runs; the body fills in the rest."""
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "failed",
        "error": None,
        "protocol": {"name": s.protocol, "headline": s.headline},
        "encoder": encoder.describe() | {"output_used": policy.input_kind},
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
        "policy": {"name": policy.record_name or policy.name},
        "seed": s.seed,
        "scores": None,
        "episodes": None,
        "feature_norm_entropy": None,
        "conformance": None,  # stamped when the cell ends (`experiments.conformance`)
        "timing": {},
        "settings": s.as_dict(),
        "provenance": provenance(str(device))
        | {"render": backend_info() | {"quality": s.render_quality}}
        | {"config": config},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def error_info(err: BaseException) -> dict:
    """The `error` field of a failed record: type, message and traceback."""
    return {"type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}


def execute(run: CellRun) -> dict:
    """Run the policy's body on `run` and write the record, ok or failed; returns it."""
    body: Callable[[CellRun], None] = run.policy.load_body()
    run.started = time.perf_counter()
    try:
        with run.resources, torch_threads(run.encoder.torch_threads):
            seed_everything(run.settings.seed)
            run.record["provenance"]["torch_threads"] = torch.get_num_threads()
            body(run)
        run.record["status"] = "ok"
    except Exception as err:
        run.record["status"] = "failed"
        run.record["error"] = error_info(err)
    finally:  # a resumed cell's earlier runs are in timing already (`experiments.cells.resume`)
        run.timing["total"] = round(run.timing.get("total", 0.0) + run.elapsed(), 3)
    run.record["conformance"] = stamp(run.record, run.settings, run.encoder.weights.kind)
    if run.record["status"] != "ok" and read_ok_record(run.path) is not None:  # overwrite=true that failed
        kept = failed_rerun_path(run.path)
        write_record(kept, run.record)
        print(f"[keep] {run.path} stays (ok); the failed rerun's record is {kept}", file=sys.stderr, flush=True)
        return run.record | {"_kept_ok": True}
    write_record(run.path, run.record)
    if run.record["status"] == "ok":
        resume_path(run.path).unlink(missing_ok=True)
    return run.record


def run_cell(s: CellSettings, encoder: FrozenEncoder, path: Path | None = None, config: dict | None = None) -> dict:
    """Run one cell unless it is finished or another job runs it; returns its record with `_path` and
    `_outcome` (ran, skipped, busy). The cell's lock is held while it runs, so a second sweep over the
    same cells leaves it alone; a finished ok record is never run again unless `overwrite`. `path`: the
    record path planning gave the cell (computed from the settings and the encoder's weights if None)."""
    path = path or cell_record_path(s, encoder.weights)
    with file_lock(lock_path(path), blocking=False) as lock:
        if lock.busy:
            return {"_outcome": "busy", "_path": str(path)}
        if lock.held:  # nobody else writes this record now: temp files of a killed writer can go
            for leftover in leftover_temp_files(path) + leftover_temp_files(resume_path(path)):
                leftover.unlink(missing_ok=True)
        if not s.overwrite and (done := read_ok_record(path)) is not None:
            return done | {"_outcome": "skipped", "_path": str(path)}
        if (problem := inspect_record(path)[1]) is not None:
            move_aside(path, problem)
        task = tasks.get(s.task)
        policy = get_policy(s.policy)
        device = resolve_device(s.device)
        encoder = sized_for(encoder, task)  # the state reference is sized per task
        run = CellRun(s, encoder, task, policy, device, path, new_record(s, encoder, task, policy, device, config))
        record = execute(run)
    return record | {"_outcome": "ran", "_path": str(path)}


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
