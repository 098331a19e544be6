"""The behaviour-cloning cell body (MuJoCo suites; heads bc-mlp and bc-conv), read top to bottom:
demonstrations, frozen embeddings, policy, training with periodic evaluation, scores (seeding and the
record around it: `experiments.cells`).

This is CortexBench's `bc_pvr_train_loop` (eai-vc `train_loop.py`) with its protocol kept and its
costs removed: embeddings are cached across seeds and policies, and evaluation episodes run together,
in lockstep or, with the encoder on a GPU, the encoder working on one group of them while worker
processes step the other (`eval_groups`).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from encoders.cache import EmbeddingCache
from experiments.cells import CellRun, summarise
from experiments.cells.envpool import choose_groups, make_pool, task_env_factory
from experiments.cells.features import cell_demos, demo_features
from experiments.cells.resume import Checkpoint
from experiments.cells.rollout import rollout, start_options
from policies import build_head


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


def train_and_evaluate(run: CellRun) -> None:
    """Behaviour cloning on frozen features with periodic evaluations; fills `run.record`."""
    s, encoder, task, record, device = run.settings, run.encoder, run.task, run.record, run.device
    kind = run.policy.input_kind

    # 1. Demonstrations, rendered like the evaluation frames (or the official pickles).
    with run.timed("demos"):
        demos = cell_demos(task, s, render=encoder.observation == "pixels")
    record["demos"] = demos.describe()

    # 2. Frozen embeddings of every demo frame (cached across seeds and policies) + feature-norm entropy.
    with run.timed("embed"):
        cache = EmbeddingCache(mode=s.cache)
        feats = demo_features(encoder, demos, kind, s.history, cache, dtype=s.cache_dtype, progress=s.progress)
    record["cache"] = feats.cache
    record["feature_norm_entropy"] = feats.entropy(s.entropy_bins)

    # 3. Policy head, seeded like mjrl's BatchNormMLP(seed=...), and its optimiser.
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

    # 4. Evaluation environments (stepped and rendered in worker processes), created once; episode i is reset
    #    with seed + i, and with the reference's start state where that is not a function of it
    #    (`protocol.eval_starts`, experiments/cells/rollout.py).
    with run.timed("make_envs"):
        make_env = task_env_factory(
            task.name,
            render_size=s.render_size,
            quality=s.render_quality,
            horizon=s.horizon,
            render=encoder.observation == "pixels",  # the state reference renders nothing
        )
        pool = make_pool(make_env, s.eval_episodes, s.workers)
        run.resources.callback(pool.close)
    groups = choose_groups(s.eval_groups, pool, encoder.device.type)
    record["provenance"]["eval_groups"] = groups
    seeds = [s.seed + i for i in range(s.eval_episodes)]
    next_starts = start_options(task, s.eval_starts, s.seed, s.eval_episodes)

    def embed(observations: dict[str, np.ndarray]) -> torch.Tensor:
        out = encoder.encode(observations[encoder.observation])
        return out.vector if kind == "vector" else out.tokens

    # 5. Behaviour cloning (MSE on actions), evaluating at epochs eval_every, 2*eval_every, ... and the last.
    #    A cell stopped part-way continues after its last evaluation (`experiments.cells.resume`).
    generator = torch.Generator().manual_seed(s.seed)
    checkpoint = Checkpoint(run)
    start, losses, evaluations = checkpoint.restore(head, optimizer, generator, on_evaluation=next_starts)
    epochs = tqdm(
        range(start, s.epochs), desc=f"train {s.task} seed={s.seed}", unit="epoch", disable=None if s.progress else True
    )
    for epoch in epochs:
        with run.timed("train"):
            losses.append(bc_epoch(head, optimizer, feats, s.batch_size, s.fusion, generator, device))
        if (epoch % s.eval_every == 0 and epoch > 0) or epoch == s.epochs - 1:
            with run.timed("eval"):
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
                    options=next_starts(),
                    groups=groups,
                )
            evaluations.append((epoch, task.score(episodes), episodes))
            checkpoint.save(epoch, head, optimizer, generator, losses, evaluations)
            epochs.set_postfix(loss=f"{losses[-1]:.4f}", score=f"{evaluations[-1][1]:.1f}")

    # 6. Scores: the final evaluation and the best over evaluations (CortexBench's `highest_*`).
    record["scores"], record["episodes"] = summarise(evaluations, task.metric, s.headline, losses)
