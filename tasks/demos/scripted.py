"""Demonstrations collected with the suite's offline expert (`demos.source=expert`, alias `scripted`).

MetaWorld's scripted policies, or the harness's own trained / scripted experts for DMC and Adroit
(`tasks/experts`), through the adapter's `scripted_expert(spec)` (and `expert_info(spec)`, which keys
the cache so a retrained expert makes new demos). Demos are rendered with the same camera, size and
quality as the evaluation, cached on disk one file per demo (written atomically, so an interrupted
generation resumes), and loaded lazily: frames are read only when they are encoded. Concurrent jobs
share the work: each demo file is rendered under its own lock (`encoders.storage`) by whichever job
gets there first, and a committed file is never replaced (its checksum is part of the demo set's
fingerprint).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from encoders.storage import atomic_write_bytes, demos_cache_root, file_lock, sha256_file, sha256_text
from tasks.demos.demoset import DEMO_ARRAYS, STATE_DEMO_ARRAYS, DemoSet, demo_stats, lazy_demo, set_aside_broken
from tasks.metrics import episode_success
from tasks.spec import TaskSpec

SCRIPTED_SEED_BASE = 10_000  # far from the evaluation seeds (100..124, 200..224, 300..324)
SCRIPTED_FORMAT = 1  # bump when the scripted-demo file layout or collection loop changes


def collect_scripted_demo(
    spec: TaskSpec, seed: int, render_size: int, quality: str, horizon: int, render: bool = True
) -> dict[str, np.ndarray]:
    """Run the suite's scripted expert for one seeded episode, rendering the observation before each action;
    with `render=False` (the state reference) nothing is rendered and the env's `state`s are kept instead.
    Rendering does not touch the physics, so both give the same actions for one seed."""
    suite = spec.suite_module()
    env = suite.make_env(spec, render_size=render_size, quality=quality, horizon=horizon, render=render)
    expert = suite.scripted_expert(spec)
    try:
        obs, _ = env.reset(seed=seed)
        frames, proprio, actions, rewards, successes = [], [], [], [], []
        for _ in range(horizon):
            frames.append(obs["pixels"] if render else obs["state"])
            proprio.append(obs["proprio"])
            action = expert(obs)
            obs, reward, terminated, _, info = env.step(action)
            actions.append(action)
            rewards.append(reward)
            successes.append(info.get("success", info.get("goal_achieved", 0.0)))
            if terminated:
                break
    finally:
        env.close()
    key = spec.metric_spec.info_key or "success"
    success = episode_success(spec.metric, np.asarray(rewards), {key: np.asarray(successes)})
    observed = {"frames": np.stack(frames).astype(np.uint8)} if render else {"states": np.stack(frames)}
    return {
        **observed,
        "proprio": np.stack(proprio).astype(np.float32),
        "actions": np.stack(actions).astype(np.float32),
        "rewards": np.asarray(rewards, np.float32),
        "success": np.asarray(successes, np.float32),
        "episode_success": np.asarray(np.nan if success is None else float(success)),
        "seed": np.asarray(seed),
    }


def expert_description(spec: TaskSpec) -> dict | str:
    """What collects `expert` demos: "scripted" (MetaWorld's policies) or the suite's `expert_info`."""
    suite = spec.suite_module()
    return suite.expert_info(spec) if hasattr(suite, "expert_info") else "scripted"


def scripted_dir(spec: TaskSpec, render_size: int, quality: str, horizon: int, render: bool = True) -> Path:
    seen = f"{spec.camera}-{render_size}px-{quality}" if render else "state"
    key = f"{spec.name}-v{spec.version}-{seen}-h{horizon}-f{SCRIPTED_FORMAT}"
    expert = expert_description(spec)
    if isinstance(expert, dict) and expert.get("fingerprint"):  # a retrained expert makes new demos
        key += f"-x{expert['fingerprint'][:8]}"
    return demos_cache_root() / "scripted" / key


def load_scripted(
    spec: TaskSpec,
    n: int,
    render_size: int,
    quality: str,
    horizon: int,
    progress: bool,
    source: str = "scripted",
    render: bool = True,
) -> DemoSet:
    """`n` expert demos (seeds SCRIPTED_SEED_BASE + i), rendered once and cached; `source` labels the set.
    `render=False`: states instead of frames, collected at physics speed (the state reference)."""
    from tqdm.auto import tqdm

    folder = scripted_dir(spec, render_size, quality, horizon, render)
    files = [folder / f"seed-{SCRIPTED_SEED_BASE + i}.npz" for i in range(n)]
    set_aside_broken(
        files, DEMO_ARRAYS if render else STATE_DEMO_ARRAYS
    )  # a truncated file is rendered again, not a failure of every later run
    missing = [f for f in files if not f.is_file()]
    with tqdm(
        total=len(missing),
        desc=f"scripted demos {spec.name}",
        unit="demo",
        disable=None if progress and missing else True,
    ) as bar:
        # First pass: render the demos no other job is rendering; second pass: wait for those and reuse them.
        for blocking in (False, True):
            for file in missing:
                if file.is_file():
                    continue
                lock_path = file.with_name(f".{file.name}.lock")
                with file_lock(lock_path, blocking=blocking, waiting="waiting for another job rendering") as lock:
                    if lock.busy or file.is_file():
                        continue
                    if lock.held:  # temp files of a writer that was killed before its rename
                        for leftover in file.parent.glob(f".{file.name}.*.tmp"):
                            leftover.unlink(missing_ok=True)
                    seed = int(file.stem.split("-")[1])
                    arrays = collect_scripted_demo(spec, seed, render_size, quality, horizon, render)
                    buffer = io.BytesIO()
                    np.savez_compressed(buffer, **arrays)
                    atomic_write_bytes(file, buffer.getvalue(), replace=False)
                    bar.update(1)
    demos = [lazy_demo(f) for f in files]
    content_sha256 = sha256_text("".join(sha256_file(f) for f in files))
    frames_from = (
        f"rendered: camera={spec.camera} size={render_size} quality={quality} horizon={horizon}"
        if render
        else f"not rendered: env state, horizon={horizon}"
    )
    expert = expert_description(spec)
    stats = demo_stats(demos) | {"seeds": [SCRIPTED_SEED_BASE, SCRIPTED_SEED_BASE + n - 1], "expert": expert}
    return DemoSet(spec.name, source, demos, content_sha256, frames_from, stats)
