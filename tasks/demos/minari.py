"""Minari's D4RL datasets as a demonstration source (`demos.source=minari`; Adroit).

Minari's `D4RL/pen/expert-v2` and `D4RL/relocate/expert-v2` were made by replaying the D4RL expert
actions in gymnasium-robotics' AdroitHand*-v1 from each episode's initial state, passed to `reset` as
`options={"initial_state_dict": ...}` (Farama-Foundation/minari-dataset-generation-scripts,
`scripts/D4RL/adroit/recreate_adroit_*.py`); Minari stores reset options in the episode metadata.
The datasets hold state observations, actions, rewards and `infos["success"]`, but no frames and no
per-step physics state. So frames are made here the way the dataset itself was made: reset our
env (same simulator) to the episode's initial state, replay its actions, and render the observation
before each action with the evaluation camera, size and quality. The replayed state is compared with
the dataset's observations at every step; the largest difference is recorded (`max_state_drift`), and
an episode whose first observation does not match is refused.

Replayed episodes are cached one file per episode (atomic writes) under `$CORTEXBENCH_CACHE/demos/minari`.
Download needs the network once (`nox -s demos -- adroit source=minari`, or `minari download <id>`);
`$MINARI_DATASETS_PATH` says where Minari keeps datasets.
"""

from __future__ import annotations

import io

import numpy as np

from encoders.storage import atomic_write_bytes, demos_cache_root, offline, sha256_file, sha256_text
from tasks.demos.demoset import DEMO_ARRAYS, DemoSet, DemosNotFoundError, demo_stats, lazy_demo, set_aside_broken
from tasks.metrics import episode_success
from tasks.spec import SimulatorMissingError, TaskSpec

MINARI_FORMAT = 1
START_TOLERANCE = 1e-4  # our reset vs the dataset's first observation


class ReplayMismatchError(ValueError):
    """A Minari episode cannot be reproduced in our simulator (no initial state, or a different start)."""


def dataset_id_for(spec: TaskSpec, dataset_id: str | None = None) -> str:
    ids = getattr(spec.suite_module(), "MINARI_DATASETS", {})
    if dataset_id:
        return str(dataset_id)
    if spec.name not in ids:
        known = ", ".join(f"{k} ({v})" for k, v in ids.items()) or "none in this suite"
        raise DemosNotFoundError(f"no Minari dataset is known for {spec.name!r}; known: {known}")
    return ids[spec.name]


def open_dataset(dataset_id: str):
    """The local Minari dataset, downloading it first unless offline."""
    try:
        import minari
    except ImportError as err:
        raise SimulatorMissingError(
            "demos.source=minari needs minari with HDF5 support: pip install 'cortexbench-harness[adroit]'"
        ) from err
    try:
        return minari.load_dataset(dataset_id, download=False)
    except FileNotFoundError:
        if offline():
            from minari.storage.datasets_root_dir import get_dataset_path

            raise DemosNotFoundError(
                f"Minari dataset {dataset_id!r} is not at {get_dataset_path(dataset_id)} and downloads are off "
                f"(CORTEXBENCH_OFFLINE / HF_HUB_OFFLINE). Get it where there is network with "
                f"`nox -s demos -- adroit source=minari` or `minari download {dataset_id}`, and set "
                f"$MINARI_DATASETS_PATH to the folder that holds it."
            ) from None
        return minari.load_dataset(dataset_id, download=True)


def _step_flags(episode) -> np.ndarray:
    """The dataset's per-step `success` flags; Minari also records the reset's info, first, when T+1 are stored."""
    flags = np.asarray(episode.infos.get("success", []), np.float32)
    return flags[1:] if len(flags) == len(episode.actions) + 1 else flags


def replay_episode(spec: TaskSpec, episode, metadata: dict, render_size: int, quality: str) -> dict[str, np.ndarray]:
    """Frames, proprio, rewards and goal flags of a dataset episode, replayed in our env from its initial state."""
    initial = (metadata.get("options") or {}).get("initial_state_dict")
    seed = metadata.get("seed")
    stored = np.asarray(episode.observations, dtype=np.float64)
    env = spec.suite_module().make_env(spec, render_size=render_size, quality=quality, horizon=spec.horizon)
    try:
        options = {"initial_state_dict": {k: np.asarray(v) for k, v in initial.items()}} if initial else None
        obs, _ = env.reset(seed=None if seed is None else int(seed), options=options)
        start = float(np.max(np.abs(obs["state"] - stored[0])))
        if start > START_TOLERANCE:
            how = "its initial_state_dict" if initial else f"seed {seed} (the episode metadata has no initial state)"
            raise ReplayMismatchError(
                f"episode {episode.id}: resetting to {how} gives a first observation {start:.2e} away from the dataset's"
            )
        steps = min(len(episode.actions), spec.horizon)
        frames, proprio, rewards, goals, drift = [], [], [], [], 0.0
        for t in range(steps):
            frames.append(obs["pixels"])
            proprio.append(obs["proprio"])
            obs, reward, _, _, info = env.step(episode.actions[t])
            rewards.append(reward)
            goals.append(info["goal_achieved"])
            drift = max(drift, float(np.max(np.abs(obs["state"] - stored[t + 1]))))
    finally:
        env.close()
    success = episode_success(spec.metric, np.asarray(rewards), {"goal_achieved": np.asarray(goals)})
    return {
        "frames": np.stack(frames).astype(np.uint8),
        "proprio": np.stack(proprio).astype(np.float32),
        "actions": np.asarray(episode.actions[:steps], np.float32),
        "rewards": np.asarray(rewards, np.float32),
        "success": np.asarray(goals, np.float32),
        "episode_success": np.asarray(np.nan if success is None else float(success)),
        "dataset_success": _step_flags(episode)[:steps],
        "seed": np.asarray(-1 if seed is None else int(seed)),
        "max_state_drift": np.asarray(drift),
        "start_error": np.asarray(start),
    }


def load_minari_demos(
    spec: TaskSpec,
    n: int,
    render_size: int,
    quality: str,
    dataset_id: str | None = None,
    progress: bool = False,
) -> DemoSet:
    """The first `n` episodes of the task's Minari dataset, re-rendered by replay (see the module docstring)."""
    from tqdm.auto import tqdm

    dataset_id = dataset_id_for(spec, dataset_id)
    dataset = open_dataset(dataset_id)
    indices = [int(i) for i in dataset.episode_indices[:n]]
    if len(indices) < n:
        raise ValueError(f"Minari dataset {dataset_id} holds {len(indices)} episodes, the protocol asks for {n}")
    metadata = list(dataset.storage.get_episode_metadata(indices))
    key = f"{dataset_id.replace('/', '__')}-{spec.name}-v{spec.version}-{render_size}px-{quality}-h{spec.horizon}"
    folder = demos_cache_root() / "minari" / f"{key}-m{MINARI_FORMAT}"
    files = [folder / f"episode-{i}.npz" for i in indices]
    set_aside_broken(files, (*DEMO_ARRAYS, "max_state_drift"))
    for position, (file, meta) in enumerate(
        tqdm(list(zip(files, metadata, strict=True)), desc=f"minari {spec.name}", disable=None if progress else True)
    ):
        if not file.is_file():
            arrays = replay_episode(spec, dataset[position], meta, render_size, quality)
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            atomic_write_bytes(file, buffer.getvalue(), replace=False)
    demos = [lazy_demo(f) for f in files]
    drifts, agree = [], []
    for f in files:
        with np.load(f) as z:
            drifts.append(float(z["max_state_drift"]))
            if len(z["dataset_success"]) == len(z["success"]):
                agree.append(bool(np.array_equal(z["dataset_success"] > 0, z["success"] > 0)))
    stats = demo_stats(demos) | {
        "dataset": dataset_id,
        "episodes": [indices[0], indices[-1]],
        "max_state_drift": max(drifts),
        "goal_flags_match_dataset": all(agree) if agree else None,
    }
    frames_from = (
        f"replayed from the dataset's initial states: camera={spec.camera} size={render_size} quality={quality}"
    )
    content_sha256 = sha256_text("".join(sha256_file(f) for f in files))
    return DemoSet(spec.name, f"minari:{dataset_id}", demos, content_sha256, frames_from, stats)


__all__ = ["ReplayMismatchError", "dataset_id_for", "load_minari_demos", "open_dataset", "replay_episode"]
