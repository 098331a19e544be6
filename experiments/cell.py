"""One cell = protocol x encoder x task x policy x seed, read top to bottom:
seeding, demonstrations, frozen embeddings, policy, training with periodic evaluation, record.

This is CortexBench's `bc_pvr_train_loop` (eai-vc `train_loop.py`) with its protocol kept and its
costs removed: embeddings are cached across seeds and policies, and evaluation episodes run in
lockstep with one batched encoder forward per step.
"""

from __future__ import annotations

import time

import numpy as np
import torch

import tasks
from encoders.cache import EmbeddingCache
from encoders.stats import entropy_record
from experiments.cell_common import (
    cell_path,
    error_info,
    new_record,
    resolve_device,
    seed_everything,
    summarise,
    timed,
)
from experiments.envpool import make_pool, task_env_factory
from experiments.features import demo_features
from experiments.protocol import CellSettings
from experiments.records import is_done, read_record, write_record
from experiments.rollout import rollout
from policies import build_head, input_kind


def _minibatches(n: int, batch_size: int, generator: torch.Generator):
    """Shuffled minibatch indices; a trailing batch of one sample is dropped (BatchNorm needs two)."""
    order = torch.randperm(n, generator=generator).numpy()
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        if len(index) > 1:
            yield index


def bc_epoch(head, optimizer, feats, batch_size: int, fusion: str, generator: torch.Generator, device) -> float:
    """One pass over every (demo, t) pair with MSE on the action; returns the mean minibatch loss."""
    head.train()
    total, batches = 0.0, 0
    for index in _minibatches(len(feats), batch_size, generator):
        hist, proprio, actions = feats.batch(index, fusion)
        loss = torch.nn.functional.mse_loss(head(hist.to(device), proprio.to(device)), actions.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, batches = total + loss.item(), batches + 1
    return total / max(batches, 1)


def run_cell(s: CellSettings, encoder, config: dict | None = None) -> dict:
    """Train and evaluate one cell and write its record; returns the record (skips finished cells)."""
    path = cell_path(s, encoder.weights.kind, encoder.weights.sha256)
    if not s.overwrite and is_done(path):
        return read_record(path) | {"_skipped": True, "_path": str(path)}

    task = tasks.get(s.task)
    device = resolve_device(s.device)
    kind = input_kind(s.policy)
    record = new_record(s, encoder, task, output_used=kind, policy=s.policy, device=device, config=config)
    timing = record["timing"]
    pool = None
    cell_start = time.perf_counter()
    try:
        # 1. Seeding (torch, numpy, python), as CortexBench's set_seed.
        seed_everything(s.seed)

        # 2. Demonstrations, rendered like the evaluation frames (or the official pickles).
        with timed(timing, "demos"):
            demos = task.demos(
                n=s.n_demos,
                source=s.demo_source,
                path=s.demo_path,
                render_size=s.render_size,
                quality=s.render_quality,
                horizon=s.horizon,
                progress=s.progress,
            )
        record["demos"] = demos.describe()

        # 3. Frozen embeddings of every demo frame (cached across seeds and policies) + feature-norm entropy.
        with timed(timing, "embed"):
            cache = EmbeddingCache(mode=s.cache)
            feats = demo_features(encoder, demos, kind, s.history, cache, dtype=s.cache_dtype, progress=s.progress)
        record["cache"] = feats.cache
        record["feature_norm_entropy"] = entropy_record(feats.norms, s.entropy_bins)

        # 4. Policy head, seeded like mjrl's BatchNormMLP(seed=...), and its optimiser.
        torch.manual_seed(s.seed)
        head = build_head(
            s.policy,
            history=s.history,
            encoder_spec=encoder.spec,
            proprio_dim=task.proprio_dim,
            action_dim=task.action_dim,
            hidden=s.hidden,
            dropout=s.dropout,
            small_init=s.small_init,
        ).to(device)
        optimizer = torch.optim.Adam(head.parameters(), lr=s.lr)
        record["policy"] |= {
            "hyperparameters": {
                "hidden": list(s.hidden),
                "dropout": s.dropout,
                "small_init": s.small_init,
                "optimizer": "Adam",
                "lr": s.lr,
                "batch_size": s.batch_size,
                "epochs": s.epochs,
                "eval_every": s.eval_every,
                "loss": "MSE",
                "history": s.history,
                "fusion": s.fusion,
                "deterministic_eval": True,
            },
            "n_parameters": sum(p.numel() for p in head.parameters()),
        }

        # 5. Evaluation environments (stepped and rendered in worker processes), created once and reset
        #    with seed + i for episode i at every evaluation.
        with timed(timing, "make_envs"):
            make_env = task_env_factory(
                task.name, render_size=s.render_size, quality=s.render_quality, horizon=s.horizon
            )
            pool = make_pool(make_env, s.eval_episodes, s.workers)
        seeds = [s.seed + i for i in range(s.eval_episodes)]

        def embed(observations: dict[str, np.ndarray]) -> torch.Tensor:
            out = encoder.encode(observations["pixels"])
            return out.vector if kind == "vector" else out.tokens

        # 6. Behaviour cloning (MSE on actions), evaluating at epochs eval_every, 2*eval_every, ... and the last.
        generator = torch.Generator().manual_seed(s.seed)
        losses, evaluations = [], []
        from tqdm.auto import tqdm

        epochs = tqdm(
            range(s.epochs), desc=f"train {s.task} seed={s.seed}", unit="epoch", disable=None if s.progress else True
        )
        for epoch in epochs:
            with timed(timing, "train"):
                losses.append(bc_epoch(head, optimizer, feats, s.batch_size, s.fusion, generator, device))
            if (epoch % s.eval_every == 0 and epoch > 0) or epoch == s.epochs - 1:
                with timed(timing, "eval"):
                    episodes = rollout(
                        pool,
                        seeds,
                        s.horizon,
                        embed,
                        head,
                        s.history,
                        s.fusion,
                        device,
                        progress=s.progress,
                        desc=f"eval epoch {epoch}",
                    )
                evaluations.append((epoch, task.score(episodes), episodes))
                epochs.set_postfix(loss=f"{losses[-1]:.4f}", score=f"{evaluations[-1][1]:.1f}")

        # 7. Scores: the final evaluation and the best over evaluations (CortexBench's `highest_*`).
        record["scores"], record["episodes"] = summarise(evaluations, task.metric, s.headline, losses)
        record["status"] = "ok"
    except Exception as err:
        record["error"] = error_info(err)
    finally:
        if pool is not None:
            pool.close()
        timing["total"] = round(time.perf_counter() - cell_start, 3)
    write_record(path, record)
    record["_path"] = str(path)
    return record
