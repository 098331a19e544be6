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

What we change, keeping the protocol: the reference re-runs the frozen encoder on every minibatch
(twice for Move) and encodes rollout frames one at a time; here demo embeddings come from the shared
cache and the evaluation episodes run in lockstep (in this process; `workers` is not used) with one
batched encoder forward per step. The
reference's "train" rollouts (from training demos) only feed its logs and are not run. Where the
reference's `rep_to_policy` default adds a Linear(D, 784), we use `none` (the README command, the
paper setting).
"""

from __future__ import annotations

import numpy as np
import torch

from encoders.cache import EmbeddingCache
from encoders.stats import entropy_record
from experiments.cells import CellRun, summarise
from experiments.cells.features import embed_demos
from policies.trifinger_mlp import TriFingerMLP, policy_input
from tasks.spec import Episode

WEIGHT_DECAY = 0.0  # eai-vc bc_default.yaml `adam_weight_decay`


def training_set(embeddings: np.ndarray, demos, goal_image: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs [N, 9 + D (+ D)], actions [N, A]): one sample per demo step but the last (eai-vc
    BCFinetuneDataset: i < T - 1); the goal embedding is that of the demo's last frame."""
    inputs, actions, offset = [], [], 0
    for demo in demos.demos:
        length = len(demo)
        frames = torch.from_numpy(np.array(embeddings[offset : offset + length], dtype=np.float32))
        goal = frames[-1:].expand(length - 1, -1) if goal_image else None
        inputs.append(policy_input(torch.from_numpy(demo.proprio[: length - 1]), frames[: length - 1], goal))
        actions.append(torch.from_numpy(demo.actions[: length - 1]))
        offset += length
    if offset != len(embeddings):
        raise RuntimeError(f"{len(embeddings)} embeddings for {offset} demo frames")
    return torch.cat(inputs), torch.cat(actions).float()


def train_epoch(head, optimizer, x, y, batch_size: int, generator: torch.Generator, device) -> float:
    """One shuffled pass (DataLoader(shuffle=True) keeps the last, smaller batch); mean minibatch loss."""
    head.train()
    order = torch.randperm(len(x), generator=generator)
    total, batches = 0.0, 0
    for start in range(0, len(x), batch_size):
        index = order[start : start + batch_size]
        loss = torch.nn.functional.mse_loss(head(x[index].to(device)), y[index].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, batches = total + loss.item(), batches + 1
    return total / max(batches, 1)


def evaluate(envs, test_demos, goals, encoder, head, horizon: int, device, progress: bool = False, desc: str = "eval"):
    """Episode i starts from test demo i (robot joints, cube pose, goal); all run in lockstep with one
    batched encoder forward per step. Returns one `Episode` per demo (seed = demo id)."""
    from tqdm.auto import tqdm

    head.eval()
    observations = [
        env.reset(options={"initial_state": demo.initial_state})[0]
        for env, demo in zip(envs, test_demos.demos, strict=True)
    ]
    values = np.zeros((len(envs), horizon))
    for t in tqdm(range(horizon), desc=desc, unit="step", leave=False, disable=None if progress else True):
        pixels = np.stack([o["pixels"] for o in observations])
        proprio = torch.from_numpy(np.stack([o["proprio"] for o in observations]))
        x = policy_input(proprio, encoder.encode(pixels).vector, goals)
        actions = head.act(x.to(device)).cpu().numpy()
        for i, env in enumerate(envs):
            observations[i], _, _, _, info = env.step(actions[i])
            values[i, t] = info["scaled_success"]
    return [
        Episode(seed=int(demo.seed), rewards=np.zeros(horizon), infos={"scaled_success": values[i]})
        for i, demo in enumerate(test_demos.demos)
    ]


def evaluation_epochs(epochs: int, every: int) -> list[int]:
    """0 (before training), every `every` epochs, and the last (eai-vc: epoch 0 and (i + 1) % every == 0)."""
    return sorted({0, epochs, *range(every, epochs + 1, every)})


def train_and_evaluate(run: CellRun) -> None:
    """Train and evaluate the TriFinger head (seeding, as eai-vc train_bc.py: `experiments.cells`); fills `run.record`."""
    s, encoder, task, record, device = run.settings, run.encoder, run.task, run.record, run.device
    module = task.suite_module()

    # 1. Demos: training ids 0..n-1, test ids 100..; frames from the renderer the evaluation uses.
    with run.timed("demos"):
        kwargs = dict(
            source=s.demo_source,
            path=s.demo_path,
            render_size=s.render_size,
            quality=s.render_quality,
            horizon=s.horizon,
            progress=s.progress,
        )
        train = task.demos(split="train", n=s.n_demos, **kwargs)
        test = task.demos(split="test", n=s.eval_episodes, **kwargs)
    record["demos"] = train.describe() | {"test": test.describe()}
    renderer = module.renderer_for(s.render_quality)
    if train.stats["renderer"] == "official" and renderer != "tiny":
        raise ValueError(
            "the official TriFinger demo frames were rendered by pybullet's TinyRenderer; evaluate them with "
            f"render_quality=faithful (render_quality={s.render_quality} renders with {renderer})"
        )

    # 2. Frozen embeddings of the training frames (cached) + feature-norm entropy; goal images of the test demos.
    with run.timed("embed"):
        cache = EmbeddingCache(mode=s.cache)
        embeddings, norms, record["cache"] = embed_demos(
            encoder, train, "vector", cache, dtype=s.cache_dtype, progress=s.progress
        )
        x, y = training_set(embeddings, train, task.goal_image)
        goals = encoder.encode(np.stack([d.frames[-1] for d in test.demos])).vector if task.goal_image else None
    record["feature_norm_entropy"] = entropy_record(norms, s.entropy_bins)

    # 3. Policy head (PyTorch default init after seeding) and AdamW.
    torch.manual_seed(s.seed)
    head = TriFingerMLP(x.shape[1], task.action_dim, hidden=s.hidden, max_action=task.max_action).to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=s.lr, weight_decay=WEIGHT_DECAY)
    schedule = evaluation_epochs(s.epochs, s.eval_every)
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
            "input": "ft_pos_cm + embedding" + (" + goal_embedding" if task.goal_image else ""),
            "rep_to_policy": "none",
            "max_action_cm": task.max_action,
            "training_samples": len(x),
        },
        "n_parameters": sum(p.numel() for p in head.parameters()),
    }

    # 4. Evaluation environments, one per test demo, created once.
    with run.timed("make_envs"):
        envs = []
        for _ in test.demos:
            envs.append(task.make_env(render_size=s.render_size, quality=s.render_quality, horizon=s.horizon))
            run.resources.callback(envs[-1].close)
    used = {env.renderer for env in envs}
    demo_renderer = train.stats["renderer"]
    if demo_renderer != "official" and used != {demo_renderer}:
        raise RuntimeError(f"demo frames were rendered with {demo_renderer}, evaluation renders with {used}")
    record["provenance"]["render"] |= {"renderer": ",".join(sorted(used)), "camera": task.camera}

    # 5. Behaviour cloning with evaluations at the scheduled epochs.
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(s.seed)
    losses, evaluations = [], []

    def run_evaluation(epoch: int) -> None:
        with run.timed("eval"):
            episodes = evaluate(
                envs, test, goals, encoder, head, s.horizon, device, s.progress, desc=f"eval epoch {epoch}"
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
            losses.append(train_epoch(head, optimizer, x, y, s.batch_size, generator, device))
        if epoch in schedule:
            run_evaluation(epoch)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", score=f"{evaluations[-1][1]:.1f}")

    # 6. Scores: best over evaluations (the headline) and the final one.
    record["scores"], record["episodes"] = summarise(evaluations, task.metric, s.headline, losses)
