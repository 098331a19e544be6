"""One RL cell (`policy=ppo|sac`), read top to bottom: seeding, environments, frozen-feature VecEnv,
stable-baselines3 model, learning with periodic evaluation, scores, record.

The record has the IL record's schema and fields (`experiments/cells/bc.py`), with environment steps in
place of epochs: `scores.per_eval` is [[env_steps, value], ...] and `best_epoch` / `final_epoch` hold
the environment step of that evaluation (`scores.unit` says so). Evaluations reuse the IL loop's
rollout (`experiments.cells.rollout`): the protocol's episode count, episode i seeded seed + i,
deterministic actions, one batched encoder forward per group of envs and step (`eval_groups`), the
same per-episode results.

CortexBench trains RL heads only on Habitat (ImageNav, MobilePick: DD-PPO / VER in habitat-baselines,
`experiments/cells/habitat.py`). For the gymnasium suites (MetaWorld, DMC, Adroit, TriFinger) no
RL protocol is published; the `rl:` block of the protocol files holds the harness's values.

Feature-norm entropy: an RL cell has no demonstrations, so definition 1's statistic is computed on
the frames of the first evaluation (the `eval_episodes` episodes seeded seed + i): the same seeded 1%
sample (at least 64 frames) of those frames, every spatial token's L2 norm, 100 bins. The record's
`feature_norm_entropy.frames` says so; such values are comparable across encoders for one task and
protocol, not with the demo-frame values of IL cells.
"""

from __future__ import annotations

import time
from itertools import count

import numpy as np
import torch

from encoders.stats import entropy_record, sample_frames, token_norms
from experiments.cells import CellRun, summarise
from experiments.cells.envpool import choose_groups, make_pool, task_env_factory
from experiments.cells.rollout import rollout

TRAIN_SEED_OFFSET = 1_000_000  # training episode k of a cell is seeded seed + 1_000_000 + k (far from eval seeds)


def training_seeds(seed: int):
    """The seed of every training episode, in the order the training environments start them."""
    return (seed + TRAIN_SEED_OFFSET + k for k in count())


def action_space_of(task, horizon: int):
    """The task's action space, read from one env built without rendering (the pool's envs may be in workers)."""
    env = task.make_env(render=False, horizon=horizon)
    try:
        return env.action_space
    finally:
        env.close()


def _loss_recorder():
    """An SB3 logger output that keeps the `train/*` values of every dump (losses, entropy, ...)."""
    from stable_baselines3.common.logger import KVWriter

    class LossRecorder(KVWriter):
        def __init__(self):
            self.rows: list[dict[str, float]] = []

        def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
            row = {k: float(v) for k, v in key_values.items() if k.startswith("train/") and np.isscalar(v)}
            if row:
                self.rows.append({"env_steps": int(step), **row})

    return LossRecorder()


def train_and_evaluate(run: CellRun) -> None:
    """Train an SB3 policy on frozen features with periodic evaluations; fills `run.record`.
    Seeding (python, numpy, torch) is the lifecycle's; SB3 seeds its own generators from `seed`."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger

    from policies.rl import DeterministicActor, FrozenFeatureVecEnv, build_model

    s, encoder, task, record, device, timing = run.settings, run.encoder, run.task, run.record, run.device, run.timing
    record["demos"] = None  # RL learns from its own interaction
    rl = s.rl

    # 1. Environments: training envs (autoreset, training seeds) and evaluation envs (seed + i), each
    #    stepped together in this process or in worker processes.
    with run.timed("make_envs"):
        factory = task_env_factory(task.name, render_size=s.render_size, quality=s.render_quality, horizon=s.horizon)
        action_space = action_space_of(task, s.horizon)
        train_pool = make_pool(factory, rl.n_envs, s.workers)
        run.resources.callback(train_pool.close)
        eval_pool = make_pool(factory, s.eval_episodes, s.workers)
        run.resources.callback(eval_pool.close)
    eval_seeds = [s.seed + i for i in range(s.eval_episodes)]
    eval_groups = choose_groups(s.eval_groups, eval_pool, encoder.device.type)
    record["provenance"]["eval_groups"] = eval_groups

    # 2. The frozen-feature VecEnv: one batched encoder forward per step over all training envs.
    venv = FrozenFeatureVecEnv(
        train_pool,
        lambda frames: encoder.encode(frames).vector,
        embed_dim=encoder.spec.embed_dim,
        history=s.history,
        fusion=s.fusion,
        proprio_dim=task.proprio_dim,
        horizon=s.horizon,
        action_space=action_space,
        episode_seeds=training_seeds(s.seed),
    )

    # 3. The SB3 model (MLP actor-critic on the features), seeded; a logger that keeps the losses.
    torch.manual_seed(s.seed)
    model = build_model(s.policy, venv, rl.kwargs(), seed=s.seed, device=str(device))
    losses = _loss_recorder()
    model.set_logger(Logger(folder=None, output_formats=[losses]))
    record["policy"] |= {
        "hyperparameters": {
            "algorithm": s.policy.upper(),
            "library": "stable-baselines3",
            **rl.kwargs(),
            "total_steps": rl.total_steps,
            "eval_every": rl.eval_every,
            "n_envs": rl.n_envs,
            "history": s.history,
            "fusion": s.fusion,
            "input": "fused history of the vector output + proprio",
            "deterministic_eval": True,
            "training_seeds": f"seed + {TRAIN_SEED_OFFSET} + k",
        },
        "n_parameters": sum(p.numel() for p in model.policy.parameters()),
    }

    # 4. Evaluation: rollout with deterministic actions; the first one also yields the token norms of
    #    the feature-norm-entropy sample (frames in the order the groups are encoded).
    actor = DeterministicActor(model)
    evaluations: list[tuple[int, float, list]] = []
    norms: list[np.ndarray] = []

    def embed(observations: dict[str, np.ndarray]) -> torch.Tensor:
        out = encoder.encode(observations["pixels"])
        if not evaluations:
            norms.append(token_norms(out.tokens.numpy()).astype(np.float32))
        return out.vector

    def evaluate(steps: int) -> None:
        with run.timed("eval"):
            episodes = rollout(
                eval_pool, eval_seeds, s.horizon, embed, actor, s.history, s.fusion, device,
                progress=s.progress, desc=f"eval step {steps}", groups=eval_groups,
            )  # fmt: skip
        evaluations.append((steps, task.score(episodes), episodes))

    class PeriodicEvaluation(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_eval = rl.eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                evaluate(self.num_timesteps)
                self.next_eval += rl.eval_every
            return True

    # 5. Learning with evaluations every `eval_every` environment steps, and one at the end.
    learn_start = time.perf_counter()
    model.learn(total_timesteps=rl.total_steps, callback=PeriodicEvaluation(), log_interval=1)
    model.logger.dump(model.num_timesteps)  # PPO records the last update's losses after its last dump
    if not evaluations or evaluations[-1][0] != model.num_timesteps:
        evaluate(model.num_timesteps)
    timing["train"] = round(time.perf_counter() - learn_start - timing.get("eval", 0.0), 3)

    sample = sample_frames(sum(len(n) for n in norms))
    record["feature_norm_entropy"] = entropy_record(np.concatenate(norms)[sample], s.entropy_bins) | {
        "frames": "first evaluation's frames (episodes seed + i), seeded 1% sample (>= 64)",
    }

    # 6. Scores: the final evaluation and the best over evaluations, as for IL cells.
    main_loss = "train/loss" if s.policy == "ppo" else "train/critic_loss"
    record["scores"], record["episodes"] = summarise(
        evaluations,
        task.metric,
        s.headline,
        [row[main_loss] for row in losses.rows if main_loss in row],
        unit="env_steps",
    )
    record["training"] = {
        "env_steps": int(model.num_timesteps),
        "frames_encoded": venv.frames_encoded,
        "episodes": [{"return": float(e["r"]), "length": int(e["l"])} for e in model.ep_info_buffer],
        "episodes_note": f"the last {model.ep_info_buffer.maxlen} finished training episodes (SB3 ep_info_buffer)",
        "seeds": venv.seeds_used,
        "log": losses.rows,
    }
