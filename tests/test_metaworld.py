"""MetaWorld on the real simulator and renderer: the CortexBench camera, upright 256x256 frames,
seeded resets, scripted experts that succeed, and demos rendered exactly like evaluation frames."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

import tasks
from tasks.demos import SCRIPTED_SEED_BASE, load_demos
from tasks.metaworld import TASKS

ROBOT_BODIES = ("right_", "hand", "rightclaw", "leftclaw", "rightpad", "leftpad")


@pytest.fixture(scope="module")
def assembly_env():
    env = tasks.get("metaworld-assembly").make_env(quality="fast")
    yield env
    env.close()


def test_top_cap2_is_added_with_the_upstream_pose(assembly_env):
    model = assembly_env._env.model
    camera = model.camera("top_cap2")
    assert camera.mode[0] == mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY
    assert model.body(int(camera.targetbodyid[0])).name == "tablelink"
    assert np.allclose(camera.pos, [0.0, 0.9, 0.6])
    assert camera.bodyid[0] == 0  # a world camera, as in the fork's xyz_base.xml


def test_frames_are_256_uint8_and_upright(assembly_env):
    model = assembly_env._env.model
    robot = {i for i in range(model.nbody) if model.body(i).name.startswith(ROBOT_BODIES)}
    saved = model.geom_rgba.copy()
    try:
        for g in range(model.ngeom):
            if model.geom_bodyid[g] in robot:
                model.geom_rgba[g] = [0, 0, 1, 1]  # paint the Sawyer pure blue
        pixels = assembly_env.reset(seed=0)[0]["pixels"]
    finally:
        model.geom_rgba[:] = saved
    assert pixels.shape == (256, 256, 3) and pixels.dtype == np.uint8
    robot_rows = np.nonzero((pixels[..., 2] > 120) & (pixels[..., 0] < 60) & (pixels[..., 1] < 60))[0]
    assert len(robot_rows) > 1000
    # The camera faces the robot across the table: the arm comes in from the top edge of an upright frame.
    assert robot_rows.min() == 0 and robot_rows.mean() < 256 / 3
    flipped_rows = 255 - robot_rows
    assert not (flipped_rows.min() == 0 and flipped_rows.mean() < 256 / 3)  # the check would catch a flip


def test_resets_are_seeded(assembly_env):
    a = assembly_env.reset(seed=101)[0]["state"]
    b = assembly_env.reset(seed=102)[0]["state"]
    c = assembly_env.reset(seed=101)[0]["state"]
    assert np.array_equal(a, c) and not np.array_equal(a, b)
    assert assembly_env.reset(seed=101)[0]["proprio"].shape == (4,)


@pytest.mark.parametrize("spec", TASKS, ids=lambda s: s.name)
def test_scripted_experts_succeed_at_the_last_step(spec):
    suite = spec.suite_module()
    env = spec.make_env(render=False)
    expert = suite.scripted_expert(spec)
    obs, _ = env.reset(seed=SCRIPTED_SEED_BASE)
    info, truncated, steps = {}, False, 0
    while not truncated:
        obs, _, terminated, truncated, info = env.step(expert(obs))
        steps += 1
        assert not terminated
    env.close()
    assert steps == 500 and info["success"] == 1.0


def test_scripted_demos_are_rendered_like_evaluation_frames():
    spec = tasks.get("metaworld-drawer-open")
    demos = load_demos(spec, n=1, source="scripted", quality="fast", progress=False)
    demo = demos.demos[0]
    assert demos.stats["success_rate"] == 1.0
    assert demo.frames.shape == (500, 256, 256, 3) and demo.actions.shape == (500, 4) and demo.proprio.shape == (500, 4)
    env = spec.make_env(quality="fast")
    first = env.reset(seed=demo.seed)[0]
    env.close()
    assert np.array_equal(demo.frames[0], first["pixels"])
    assert np.allclose(demo.proprio[0], first["proprio"])
    again = load_demos(spec, n=1, source="scripted", quality="fast", progress=False)  # from the cache
    assert again.fingerprint == demos.fingerprint
    assert "quality=fast" in demos.frames_from and "camera=top_cap2" in demos.frames_from
