"""One TriFinger cell, read top to bottom: seeding, demos, frozen embeddings, policy, training with
evaluations, record (the lifecycle around it: `experiments.cells`).

CortexBench's TriFinger loop (eai-vc @ e782c35 `cortexbench/trifinger_vc`: `algos/bc_finetune.py`,
`utils/{dataset,sim_nn}.py`, `config/bc_default.yaml`, `config/task/*.yaml`) differs from the MuJoCo
one: no frame history; the input is [fingertip positions (cm) | image embedding | goal-image
embedding (Move only)]; the head is an MLP 2000-2000 trained with AdamW (lr 1e-4, weight decay 0,
batch 32, MSE on `delta_ftpos`, every minibatch kept); it is evaluated before training (epoch 0) and
after every `eval_every` epochs (and after the last), each time from the initial states of the test
demos (ids 100..), with actions clipped to +-max_a. An episode's value is its final scaled success;
an evaluation's is the mean x 100; the headline is the best evaluation (`max_avg_scaled_reward`).

The head is the cell's policy (`policies.POLICIES`): CortexBench's MLP on the vector output
(`trifinger-mlp`), or Theia's conv neck on the spatial tokens (`trifinger-conv`, theia
`trifinger/policy.py`), the goal image's tokens entering as extra channels; the loop around it is the same.

What we change, keeping the protocol: the reference re-runs the frozen encoder on every minibatch
(twice for Move) and encodes rollout frames one at a time; here demo embeddings come from the shared
cache and the evaluation episodes run in lockstep with one batched encoder forward per step, their
simulators stepped in `workers` processes (pybullet, the evaluation's cost, then uses every core). The
reference's "train" rollouts (from training demos) only feed its logs and are not run. Where the
reference's `rep_to_policy` default adds a Linear(D, 784), we use `none` (the README command, the
paper setting).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from encoders.cache import EmbeddingCache
from experiments.cells import CellRun, summarise
from experiments.cells.envpool import make_pool, task_env_factory
from experiments.cells.features import cell_demos, entropy_block, policy_inputs
from policies import build_head
from policies.trifinger_mlp import with_goal
from tasks.spec import Episode

WEIGHT_DECAY = 0.0  # eai-vc bc_default.yaml `adam_weight_decay`


@dataclass
class TrainingSet:
    """One sample per demo step but the last (eai-vc BCFinetuneDataset: i < T - 1): the frame, its demo's
    last frame (the goal image, Move only), the fingertips and the action. Features are gathered per
    minibatch: a Move set of spatial tokens with the goal's as extra channels would take gigabytes."""

    embeddings: np.ndarray  # [F, D] vectors or [F, N, C] tokens of every demo frame
    frame: np.ndarray  # [S] row of each sample's frame
    goal: np.ndarray | None  # [S] row of each sample's goal frame
    ft_pos: torch.Tensor  # [S, 9] fingertip positions (cm)
    actions: torch.Tensor  # [S, A]

    def __len__(self) -> int:
        return len(self.frame)

    def inputs(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """(features with the goal's appended on the last axis, fingertips) of the samples `index`."""

        def rows(r: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.asarray(self.embeddings[r], dtype=np.float32))

        goal = rows(self.goal[index]) if self.goal is not None else None
        return with_goal(rows(self.frame[index]), goal), self.ft_pos[index]


def training_set(embeddings: np.ndarray, demos, goal_image: bool) -> TrainingSet:
    """The samples of `demos`, whose frames' embeddings are `embeddings` (demo after demo)."""
    frame, goal, ft_pos, actions, offset = [], [], [], [], 0
    for demo in demos.demos:
        length = len(demo)
        frame.append(np.arange(offset, offset + length - 1))
        goal.append(np.full(length - 1, offset + length - 1))
        ft_pos.append(torch.from_numpy(demo.proprio[: length - 1]))
        actions.append(torch.from_numpy(demo.actions[: length - 1]))
        offset += length
    if offset != len(embeddings):
        raise RuntimeError(f"{len(embeddings)} embeddings for {offset} demo frames")
    return TrainingSet(
        embeddings=embeddings,
        frame=np.concatenate(frame),
        goal=np.concatenate(goal) if goal_image else None,
        ft_pos=torch.cat(ft_pos).float(),
        actions=torch.cat(actions).float(),
    )


def train_epoch(head, optimizer, data: TrainingSet, batch_size: int, generator: torch.Generator, device) -> float:
    """One shuffled pass (DataLoader(shuffle=True) keeps the last, smaller batch); mean minibatch loss."""
    head.train()
    order = torch.randperm(len(data), generator=generator)
    total, batches = 0.0, 0
    for start in range(0, len(data), batch_size):
        index = order[start : start + batch_size].numpy()
        features, ft_pos = data.inputs(index)
        prediction = head(features.to(device), ft_pos.to(device))
        loss = torch.nn.functional.mse_loss(prediction, data.actions[index].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, batches = total + loss.item(), batches + 1
    return total / max(batches, 1)


def evaluate(
    pool,
    test_demos,
    goals,
    embed,
    head,
    horizon: int,
    device,
    progress: bool = False,
    desc: str = "eval",
    observation: str = "pixels",
) -> list[Episode]:
    """Episode i starts from test demo i (robot joints, cube pose, goal) in env i of `pool`
    (`experiments.cells.envpool`); all run in lockstep with one batched encoder forward per step (`embed`:
    the stacked `observation`s, pixels or the state reference's state -> the head's encoder output). Env i
    runs demo i at every evaluation, in whichever process holds it, so an env's history (pybullet keeps
    some state across resets: docs/sweeps.md) does not depend on the number of workers. Returns one
    `Episode` per demo (seed = demo id)."""
    from tqdm.auto import tqdm

    head.eval()
    demos = test_demos.demos
    observations = pool.reset([int(d.seed) for d in demos], [{"initial_state": d.initial_state} for d in demos])
    active = np.ones(len(demos), dtype=bool)
    values = np.zeros((len(demos), horizon))
    for t in tqdm(range(horizon), desc=desc, unit="step", leave=False, disable=None if progress else True):
        ft_pos = torch.from_numpy(observations["proprio"]).float()
        features = with_goal(embed(observations[observation]), goals)
        actions = head.act(features.to(device), ft_pos.to(device)).cpu().numpy()
        observations, _, _, infos = pool.step(actions, active)
        values[:, t] = [info["scaled_success"] for info in infos]
    return [
        Episode(seed=int(demo.seed), rewards=np.zeros(horizon), infos={"scaled_success": values[i]})
        for i, demo in enumerate(demos)
    ]


def evaluation_epochs(epochs: int, every: int) -> list[int]:
    """0 (before training), every `every` epochs, and the last (eai-vc: epoch 0 and (i + 1) % every == 0)."""
    return sorted({0, epochs, *range(every, epochs + 1, every)})


def train_and_evaluate(run: CellRun) -> None:
    """Train and evaluate the TriFinger head (seeding, as eai-vc train_bc.py: `experiments.cells`); fills `run.record`."""
    s, encoder, task, record, device = run.settings, run.encoder, run.task, run.record, run.device
    module = task.suite_module()

    # 1. Demos: training ids 0..n-1, test ids 100..; frames from the renderer the evaluation uses.
    observation = encoder.observation  # pixels, or the state reference's state (nothing rendered in evaluation)
    with run.timed("demos"):
        train = cell_demos(task, s, split="train", render=observation == "pixels")
        test = cell_demos(task, s, split="test", n=s.eval_episodes, render=observation == "pixels")
    record["demos"] = train.describe() | {"test": test.describe()}
    renderer = module.renderer_for(s.render_quality)
    if train.stats["renderer"] == "official" and renderer != "tiny":
        raise ValueError(
            "the official TriFinger demo frames were rendered by pybullet's TinyRenderer; evaluate them with "
            f"render_quality=faithful (render_quality={s.render_quality} renders with {renderer})"
        )

    # 2. Frozen embeddings (the policy's input kind: vectors or spatial tokens) of the training frames (cached)
    #    + feature-norm entropy; goal images of the test demos.
    kind = run.policy.input_kind

    def embed(seen: np.ndarray) -> torch.Tensor:
        out = encoder.encode(seen)
        return out.vector if kind == "vector" else out.tokens

    with run.timed("embed"):
        embeddings, norms, record["cache"] = policy_inputs(
            encoder, train, kind, EmbeddingCache(mode=s.cache), dtype=s.cache_dtype, progress=s.progress
        )
        data = training_set(embeddings, train, task.goal_image)
        goals = embed(np.stack([d.observations(observation)[-1] for d in test.demos])) if task.goal_image else None
    record["feature_norm_entropy"] = entropy_block(norms, s.entropy_bins)

    # 3. Policy head (PyTorch default init after seeding) and AdamW.
    torch.manual_seed(s.seed)
    head = build_head(
        s.policy,
        history=s.history,
        encoder_spec=encoder.spec,
        proprio_dim=task.proprio_dim,
        action_dim=task.action_dim,
        hidden=s.hidden,
        max_action=task.max_action,
        goal_image=task.goal_image,
    ).to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=s.lr, weight_decay=WEIGHT_DECAY)
    schedule = evaluation_epochs(s.epochs, s.eval_every)
    if kind == "vector":
        head_input = {"input": "ft_pos_cm + embedding" + (" + goal_embedding" if task.goal_image else "")}
    else:
        goal_tokens = " + goal_tokens as channels" if task.goal_image else ""
        head_input = {
            "input": f"conv_neck(tokens{goal_tokens}) + ft_pos_cm",
            "grid": list(encoder.spec.grid),
            "neck": [str(layer) for layer in head.neck],
        }
    record["policy"] |= {
        "hyperparameters": {
            "hidden": list(s.hidden),
            "optimizer": "AdamW",
            "lr": s.lr,
            "weight_decay": WEIGHT_DECAY,
            "batch_size": s.batch_size,
            "epochs": s.epochs,
            "eval_every": s.eval_every,
            "eval_epochs": schedule,
            "loss": "MSE",
            **head_input,
            "rep_to_policy": "none",
            "max_action_cm": task.max_action,
            "training_samples": len(data),
        },
        "n_parameters": sum(p.numel() for p in head.parameters()),
    }

    # 4. Evaluation environments, one per test demo, created once, stepped in `workers` processes.
    with run.timed("make_envs"):
        make_env = task_env_factory(
            task.name,
            render_size=s.render_size,
            quality=s.render_quality,
            horizon=s.horizon,
            render=observation == "pixels",  # the state reference renders nothing
        )
        pool = make_pool(make_env, len(test.demos), s.workers)
        run.resources.callback(pool.close)
    if observation == "pixels":
        used = set(pool.attribute("renderer"))
        demo_renderer = train.stats["renderer"]
        if demo_renderer != "official" and used != {demo_renderer}:
            raise RuntimeError(f"demo frames were rendered with {demo_renderer}, evaluation renders with {used}")
        record["provenance"]["render"] |= {"renderer": ",".join(sorted(used)), "camera": task.camera}
    else:
        record["provenance"]["render"] |= {"renderer": "none (state reference)"}

    # 5. Behaviour cloning with evaluations at the scheduled epochs.
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(s.seed)
    losses, evaluations = [], []

    def run_evaluation(epoch: int) -> None:
        with run.timed("eval"):
            episodes = evaluate(
                pool, test, goals, embed, head, s.horizon, device, s.progress, f"eval epoch {epoch}", observation
            )
        evaluations.append((epoch, task.score(episodes), episodes))

    run_evaluation(0)
    bar = tqdm(
        range(1, s.epochs + 1),
        desc=f"train {s.task} seed={s.seed}",
        unit="epoch",
        disable=None if s.progress else True,
    )
    for epoch in bar:
        with run.timed("train"):
            losses.append(train_epoch(head, optimizer, data, s.batch_size, generator, device))
        if epoch in schedule:
            run_evaluation(epoch)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", score=f"{evaluations[-1][1]:.1f}")

    # 6. Scores: best over evaluations (the headline) and the final one.
    record["scores"], record["episodes"] = summarise(evaluations, task.metric, s.headline, losses)
