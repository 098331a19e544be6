"""Rendering through shared contexts (tasks/rendering.py): the same pixels as each simulator's own renderer,
at a fraction of the memory per environment."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import mujoco
import numpy as np
import pytest

import tasks

MUJOCO_TASKS = ["metaworld-drawer-open", "adroit-pen", "dmc-walker-walk"]


def _stepped(spec, seed: int, quality: str):
    env = spec.make_env(render_size=256, quality=quality, horizon=spec.horizon)
    obs = env.reset(seed=seed)[0]
    env.action_space.seed(seed)
    for _ in range(3):
        obs = env.step(env.action_space.sample())[0]
    return env, obs


def _upstream_frame(spec, env) -> np.ndarray:
    """The simulator's own renderer on the same state: dm_control's `physics.render`, else `mujoco.Renderer`
    on a copy of the model with the model's original (large) offscreen buffer."""
    if spec.suite == "dmc":
        return env.physics.render(256, 256, camera_id=0)
    model = copy.deepcopy(env.model if hasattr(env, "model") else env._env.model)
    model.vis.global_.offwidth, model.vis.global_.offheight = 3024, 1680
    data = env.data if hasattr(env, "data") else env._env.data
    with mujoco.Renderer(model, 256, 256) as renderer:
        renderer.update_scene(data, camera=spec.camera)
        return renderer.render()


@pytest.mark.parametrize("task", MUJOCO_TASKS)
@pytest.mark.parametrize("quality", ["faithful", "fast"])
def test_shared_contexts_render_what_the_simulator_renders(task, quality):
    """Three envs of one task share one context; each frame equals the upstream renderer's, pixel for pixel
    (drawer-open moves bodies in the model at reset, DMC colours materials by reward: both per env)."""
    spec = tasks.get(task)
    envs = []
    try:
        for seed in (100, 101, 102):
            env, obs = _stepped(spec, seed, quality)
            envs.append((env, obs))
        for env, obs in envs:
            np.testing.assert_array_equal(obs["pixels"], _upstream_frame(spec, env))
        assert not np.array_equal(envs[0][1]["pixels"], envs[1][1]["pixels"])  # each env shows its own state
    finally:
        for env, _ in envs:
            env.close()


def test_a_task_renders_again_after_all_its_envs_closed():
    spec = tasks.get("metaworld-assembly")
    first, obs = _stepped(spec, 5, "fast")
    first.close()
    again, obs_again = _stepped(spec, 5, "fast")
    try:
        np.testing.assert_array_equal(obs["pixels"], obs_again["pixels"])
    finally:
        again.close()


MEMORY_PROBE = """
import json, sys
import tasks
def rss_mb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024
spec = tasks.get(sys.argv[1])
envs = [spec.make_env(render_size=256, quality="faithful", horizon=spec.horizon)]
envs[0].reset(seed=0)
before = rss_mb()
for seed in range(1, 4):
    envs.append(spec.make_env(render_size=256, quality="faithful", horizon=spec.horizon))
    envs[-1].reset(seed=seed)
print(json.dumps({"per_env_mb": (rss_mb() - before) / 3}))
"""


@pytest.mark.parametrize(("task", "limit_mb"), [("metaworld-assembly", 80), ("adroit-pen", 60)])
def test_each_further_env_costs_little_memory(task, limit_mb):
    """Before sharing, each rendered env held its own GL context, textures, shadow map and offscreen buffer:
    ~180 MB per MetaWorld env, ~420 MB per Adroit env (3024x1680 8x MSAA buffer). Now ~30 and ~10 MB."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, task], capture_output=True, text=True, check=True
    ).stdout.splitlines()[-1]
    per_env = json.loads(out)["per_env_mb"]
    assert 0 < per_env < limit_mb, f"{task}: {per_env:.0f} MB per further env"
