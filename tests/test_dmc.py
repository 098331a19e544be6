"""DMC on the real dm_control simulator and renderer: camera 0 at 256x256 upright, seeded resets,
the 1000-step horizon, return / 10 scoring, shipped offline experts, and expert demos rendered
exactly like evaluation frames."""

from __future__ import annotations

import numpy as np
import pytest

import tasks
from tasks.demos import SCRIPTED_SEED_BASE, load_demos
from tasks.dmc import TASKS
from tasks.experts import expert_info, load_expert
from tasks.experts.train import measure
from tasks.metrics import Episode
from tests.projection import blue_centroid, project

pytestmark = pytest.mark.sim_dmc


def test_suite_and_protocol_fields():
    assert tasks.expand("dmc") == [
        "dmc-cheetah-run",
        "dmc-finger-spin",
        "dmc-reacher-easy",
        "dmc-walker-stand",
        "dmc-walker-walk",
    ]
    for spec in TASKS:
        assert (spec.camera, spec.render_size, spec.proprio_dim, spec.history) == ("0", 256, 0, 3)
        assert (spec.horizon, spec.action_repeat, spec.n_demos, spec.eval_episodes) == (1000, 1, 100, 10)
        assert spec.metric == "return_div_10" and spec.official_demo_file == f"{spec.upstream_env_id}.pickle"


def test_frames_are_256_uint8_upright_from_camera_0():
    env = tasks.get("dmc-reacher-easy").make_env(quality="fast")
    env.reset(seed=0)
    physics = env.physics
    target = np.array([0.10, 0.16])  # off the image centre, so a flipped frame would put it elsewhere
    physics.named.model.geom_pos["target", ["x", "y"]] = target
    physics.named.model.geom_matid["target"] = -1
    physics.named.model.geom_rgba["target"] = [0, 0, 1, 1]  # paint the target pure blue
    physics.forward()
    pixels = env.render()
    assert pixels.shape == (256, 256, 3) and pixels.dtype == np.uint8
    found, count = blue_centroid(pixels)
    assert count > 50
    expected = project(
        physics.data.cam_xpos[0], physics.data.cam_xmat[0], physics.model.cam_fovy[0],
        physics.named.data.geom_xpos["target"], 256,
    )  # fmt: skip
    assert np.allclose(found, expected, atol=4), (found, expected)
    flipped = np.array([255 - expected[0], expected[1]])
    assert np.linalg.norm(found - flipped) > 40  # the check tells an upright frame from a flipped one
    env.close()


def test_resets_are_seeded_and_episodes_stop_at_the_horizon():
    env = tasks.get("dmc-walker-walk").make_env(render=False)
    a, b, c = (env.reset(seed=s)[0]["state"] for s in (101, 102, 101))
    assert np.array_equal(a, c) and not np.array_equal(a, b)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.zeros(6))
        steps += 1
        assert not terminated
    assert steps == 1000
    env.close()
    with pytest.raises(ValueError, match="at most 1000"):
        tasks.get("dmc-walker-walk").make_env(render=False, horizon=1001)


def test_score_is_the_return_divided_by_ten():
    spec = tasks.get("dmc-cheetah-run")
    perfect = Episode(100, np.ones(1000))
    half = Episode(101, np.r_[np.ones(500), np.zeros(500)])
    assert spec.score([perfect]) == 100.0 and spec.score([perfect, half]) == 75.0
    # and on an episode of the real simulator: the per-step rewards summed, over 10
    env = spec.make_env(render=False, horizon=50)
    env.reset(seed=3)
    rewards = [env.step(np.full(6, 0.5))[1] for _ in range(50)]
    env.close()
    assert spec.score([Episode(3, np.asarray(rewards))]) == pytest.approx(sum(rewards) / 10)


@pytest.mark.parametrize("spec", TASKS, ids=lambda s: s.name)
def test_shipped_expert_reproduces_its_recorded_return(spec):
    """The shipped parameters give, on demo seed 10000, exactly the return recorded when they were made."""
    info = expert_info(spec)
    first = measure(spec, load_expert(spec), episodes=1)
    recorded = info["measured"]
    assert info["fingerprint"] and recorded["seeds"][0] == SCRIPTED_SEED_BASE and recorded["episodes"] == 10
    assert first["mean_return"] == pytest.approx(recorded["returns"][0], rel=1e-6)
    rng = np.random.default_rng(0)
    random_policy = measure(spec, lambda obs: rng.uniform(-1, 1, spec.action_dim), episodes=1)
    assert recorded["mean_return"] > max(2 * random_policy["mean_return"], 50)  # it learned the task, somewhat


def test_expert_demos_are_rendered_like_evaluation_frames_and_describe_their_expert():
    spec = tasks.get("dmc-cheetah-run")
    demos = load_demos(spec, n=1, source="expert", quality="fast", horizon=12, progress=False)
    demo = demos.demos[0]
    assert demo.frames.shape == (12, 256, 256, 3) and demo.actions.shape == (12, 6) and demo.proprio.shape == (12, 0)
    env = spec.make_env(quality="fast", horizon=12)
    obs, _ = env.reset(seed=demo.seed)
    assert np.array_equal(demo.frames[0], obs["pixels"])
    obs, *_ = env.step(demo.actions[0])
    assert np.array_equal(demo.frames[1], obs["pixels"])
    env.close()
    assert demos.source == "expert" and demo.success is None and demos.stats["success_rate"] is None
    assert demos.stats["mean_return"] == pytest.approx(float(demo.rewards.sum()))
    assert demos.stats["expert"]["kind"] == "ars-linear" and demos.stats["expert"]["sha256"]


def test_ars_training_is_seeded():
    """`nox -s experts` retrains reproducibly: the same seed gives the same parameters, another seed others."""
    from tasks.experts.ars import ARSConfig, train_ars

    spec = tasks.get("dmc-cheetah-run")
    env = spec.make_env(render=False, horizon=20)

    def train(seed):
        config = ARSConfig(iterations=2, directions=2, top=1, train_horizon=20, eval_every=1, seed=seed)
        policy, history = train_ars(env, config, evaluate=lambda p: 0.0, log=lambda line: None)
        return policy.W, history

    (a, history), (b, _), (c, _) = train(0), train(0), train(1)
    env.close()
    assert np.array_equal(a, b) and not np.array_equal(a, c) and np.abs(a).sum() > 0
    assert [h["iteration"] for h in history] == [1, 2]
