"""Adroit on the real gymnasium-robotics simulator and MuJoCo renderer: `vil_camera` at 256x256
upright, proprio as CortexBench takes it, horizons, the goal-achieved success metric, and Minari
D4RL-style datasets replayed into demonstrations."""

from __future__ import annotations

import numpy as np
import pytest

import tasks
from tasks.adroit import MINARI_DATASETS, TASKS
from tasks.metrics import Episode
from tests.projection import blue_centroid, project

pytestmark = pytest.mark.sim_adroit


def test_suite_and_protocol_fields():
    assert tasks.expand("adroit") == ["adroit-pen", "adroit-relocate"]
    pen, relocate = tasks.get("adroit-pen"), tasks.get("adroit-relocate")
    assert (pen.horizon, pen.proprio_dim, pen.metric, pen.upstream_env_id) == (100, 24, "adroit_pen", "pen-v0")
    assert (relocate.horizon, relocate.proprio_dim, relocate.metric) == (200, 30, "adroit_relocate")
    for spec in TASKS:
        assert (spec.camera, spec.render_size, spec.n_demos, spec.eval_episodes) == ("vil_camera", 256, 100, 25)
        assert MINARI_DATASETS[spec.name].endswith("expert-v2")


def test_frames_are_256_uint8_upright_from_vil_camera():
    env = tasks.get("adroit-relocate").make_env(quality="fast")
    env.reset(seed=4)
    model, data = env.model, env.data
    camera = model.camera("vil_camera")
    assert np.allclose(camera.pos, [0, -1.2, 1.2]) and np.allclose(camera.quat, [0.92388, 0.382683, 0, 0], atol=1e-5)
    ball = model.body("Object").id
    for g in np.flatnonzero(model.geom_bodyid == ball):
        model.geom_matid[g] = -1
        model.geom_rgba[g] = [0, 0, 1, 1]  # paint the ball pure blue
    model.body_pos[ball, :2] = [0.12, 0.25]  # far from the image centre
    env.set_env_state(env.get_env_state() | {"obj_pos": model.body_pos[ball].copy()})
    pixels = env.render()
    assert pixels.shape == (256, 256, 3) and pixels.dtype == np.uint8
    found, count = blue_centroid(pixels)
    assert count > 30
    cam = model.camera("vil_camera").id
    expected = project(data.cam_xpos[cam], data.cam_xmat[cam], model.cam_fovy[cam], data.xpos[ball], 256)
    assert np.allclose(found, expected, atol=4), (found, expected)
    assert np.linalg.norm(found - np.array([255 - expected[0], expected[1]])) > 40  # a flip would be caught
    env.close()


@pytest.mark.parametrize("spec", TASKS, ids=lambda s: s.name)
def test_proprio_is_the_hand_joints_cortexbench_takes(spec):
    """mj_envs v0 `get_obs()[:24]` / `[:30]` = qpos[:-6] (hand joints before the object's 6): the v1
    observation starts the same way, and the proprio is exactly that slice."""
    env = spec.make_env(render=False)
    env.reset(seed=7)
    obs, *_ = env.step(env.action_space.sample())
    n = spec.proprio_dim
    assert obs["proprio"].shape == (n,) and env.data.qpos.shape[0] == n + 6
    assert np.allclose(obs["proprio"], env.data.qpos[:n]) and np.allclose(obs["proprio"], obs["state"][:n])
    env.close()


@pytest.mark.parametrize("spec", TASKS, ids=lambda s: s.name)
def test_resets_are_seeded_and_episodes_last_the_horizon(spec):
    env = spec.make_env(render=False)
    a, b, c = (env.reset(seed=s)[0]["state"] for s in (101, 102, 101))
    assert np.array_equal(a, c) and not np.array_equal(a, b)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, info = env.step(np.zeros(spec.action_dim))
        steps += 1
        assert not terminated and set(info) == {"goal_achieved"}
    assert steps == spec.horizon
    env.close()


@pytest.mark.parametrize(("height", "dropped"), [(0.2, True), (-0.2, False)])
def test_a_pen_episode_ends_when_the_pen_drops_as_pen_v0(height, dropped):
    """mj_envs pen_v0.py: `done = True` once the pen body is below z = 0.075; mjrl stops the rollout there.
    The pen's body frame is turned 90 degrees about y, so its OBJTx slide moves it along world -z."""
    import mujoco

    from tasks.adroit import PEN_DROP_HEIGHT

    spec = tasks.get("adroit-pen")
    env = spec.make_env(render=False)
    env.reset(seed=3)
    env.data.qpos[env.model.joint("OBJTx").qposadr[0]] = height  # pen body at z = 0.25 -/+ 0.2
    mujoco.mj_forward(env.model, env.data)
    _, _, terminated, truncated, _ = env.step(np.zeros(spec.action_dim))
    assert (env.data.xpos[env.model.body("Object").id][2] < PEN_DROP_HEIGHT) == dropped
    assert terminated == dropped and not truncated
    env.close()


def test_relocate_never_terminates_early():
    """relocate_v0.py returns done=False at every step, even with the ball pushed off the table."""
    import mujoco

    spec = tasks.get("adroit-relocate")
    env = spec.make_env(render=False)
    env.reset(seed=3)
    env.data.qpos[env.model.joint("OBJTz").qposadr[0]] = -0.5  # the ball well below the table
    mujoco.mj_forward(env.model, env.data)
    _, _, terminated, _, _ = env.step(np.zeros(spec.action_dim))
    assert not terminated
    env.close()


@pytest.mark.parametrize(("name", "threshold"), [("adroit-pen", 20), ("adroit-relocate", 25)])
def test_success_counts_goal_achieved_steps(name, threshold):
    spec = tasks.get(name)
    hold = Episode(
        0, np.zeros(spec.horizon), {"goal_achieved": np.r_[np.ones(threshold + 1), np.zeros(99 - threshold)]}
    )
    short = Episode(1, np.zeros(spec.horizon), {"goal_achieved": np.r_[np.ones(threshold), np.zeros(100 - threshold)]})
    assert spec.score([hold]) == 100.0 and spec.score([short]) == 0.0 and spec.score([hold, short]) == 50.0


def test_relocate_goal_flags_come_from_the_simulator():
    """A ball resting on its target reaches the goal at every step; 26 such steps succeed, 25 do not."""
    spec = tasks.get("adroit-relocate")
    env = spec.make_env(render=False)
    env.reset(seed=0)
    state = env.get_env_state()
    env.set_env_state(state | {"target_pos": state["obj_pos"].copy()})
    flags = [env.step(np.zeros(30))[4]["goal_achieved"] for _ in range(26)]
    env.close()
    assert flags == [1.0] * 26
    assert spec.score([Episode(0, np.zeros(26), {"goal_achieved": np.asarray(flags)})]) == 100.0
    assert spec.score([Episode(0, np.zeros(25), {"goal_achieved": np.asarray(flags[:25])})]) == 0.0


@pytest.fixture(scope="module")
def minari_pen_dataset(scratch, monkeypatch_module):
    """A small dataset made the way Minari's D4RL/pen/expert-v2 was: minari's DataCollector around
    AdroitHandPen-v1, reset with `options={"initial_state_dict": ...}`, infos recorded."""
    import gymnasium as gym
    import gymnasium_robotics
    from minari import DataCollector, StepDataCallback

    monkeypatch_module.setenv("MINARI_DATASETS_PATH", str(scratch / "minari"))
    gym.register_envs(gymnasium_robotics)

    class SuccessOnReset(StepDataCallback):  # as the generation script's AdroitStepDataCallback
        def __call__(self, env, **kwargs):
            step = super().__call__(env, **kwargs)
            step["info"].setdefault("success", False)
            return step

    collector = DataCollector(
        gym.make("AdroitHandPen-v1", max_episode_steps=20), step_data_callback=SuccessOnReset, record_infos=True
    )
    source = gym.make("AdroitHandPen-v1").unwrapped
    rng = np.random.default_rng(0)
    for episode in range(2):
        source.reset(seed=500 + episode)  # a random target orientation, as the D4RL episodes have
        collector.reset(options={"initial_state_dict": source.get_env_state()})
        for _ in range(20):
            collector.step(rng.uniform(-1, 1, 24).astype(np.float32))
    dataset_id = "cortexbench-test/pen/expert-v0"
    collector.create_dataset(dataset_id=dataset_id, algorithm_name="uniform random", author="tests")
    collector.close()
    source.close()
    return dataset_id


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_minari_episodes_replay_into_demos_rendered_like_evaluation(minari_pen_dataset):
    import minari

    spec = tasks.get("adroit-pen")
    demos = spec.demos(n=2, source="minari", path=minari_pen_dataset, quality="fast", progress=False)
    assert demos.source == f"minari:{minari_pen_dataset}" and len(demos.demos) == 2
    assert demos.stats["max_state_drift"] < 1e-6 and demos.stats["goal_flags_match_dataset"] is True
    dataset = minari.load_dataset(minari_pen_dataset)
    episode = dataset[1]
    meta = next(iter(dataset.storage.get_episode_metadata([1])))
    demo = demos.demos[1]
    assert demo.frames.shape == (20, 256, 256, 3) and demo.proprio.shape == (20, 24)
    assert np.array_equal(demo.actions, np.asarray(episode.actions, np.float32))
    assert np.allclose(demo.proprio, np.asarray(episode.observations)[:20, :24])
    env = spec.make_env(quality="fast")
    obs, _ = env.reset(options={"initial_state_dict": meta["options"]["initial_state_dict"]})
    assert np.array_equal(demo.frames[0], obs["pixels"])
    obs, *_ = env.step(episode.actions[0])
    assert np.array_equal(demo.frames[1], obs["pixels"])
    env.close()
    assert demos.stats["mean_return"] == pytest.approx(float(np.mean([d.rewards.sum() for d in demos.demos])))


def test_minari_source_offline_names_the_dataset_and_the_fix(scratch, monkeypatch):
    from tasks.demos import DemosNotFoundError

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(scratch / "minari-empty"))
    with pytest.raises(DemosNotFoundError) as err:
        tasks.get("adroit-relocate").demos(n=1, source="minari", progress=False)
    message = str(err.value)
    assert "D4RL/relocate/expert-v2" in message and "nox -s demos -- adroit source=minari" in message
