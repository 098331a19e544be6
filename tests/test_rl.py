"""RL heads on frozen features: the SB3 VecEnv's batched features equal encoding each env's frame on
its own (autoreset and history included), and `policy=ppo|sac` cells write full records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

import encoders
import tasks
from experiments.cells import run_cell
from experiments.cells.envpool import ProcessEnvPool, SerialEnvPool, task_env_factory
from experiments.cells.rl import TRAIN_SEED_OFFSET, training_seeds
from experiments.records import validate
from experiments.settings import SettingError, resolve_settings
from policies import RL_POLICIES, get_policy
from policies.fusion import fuse
from policies.rl import ALGORITHMS, FrozenFeatureVecEnv

pytestmark = pytest.mark.sim_dmc

TASK, SIZE, HORIZON = "dmc-reacher-easy", 64, 4


@pytest.fixture(scope="module")
def tiny():
    return encoders.load("random-vit-tiny")


def one_by_one_observations(tiny, seeds_per_env, offsets, actions, history=3):
    """The reference: each env on its own, every frame encoded alone (batch of one), history kept by hand.

    Returns per step the [N, obs] observations, rewards, dones and {env: terminal observation}."""
    spec = tasks.get(TASK)
    envs = [spec.make_env(render_size=SIZE, quality="fast", horizon=HORIZON) for _ in seeds_per_env]
    seeds = [list(s) for s in seeds_per_env]

    def encode(frame):
        return tiny.encode(frame[None]).vector[0]

    def observe(hist):
        return torch.cat([fuse(torch.stack(hist)[None], "flare").flatten(1)[0], torch.zeros(0)]).numpy()

    hists, steps = [], list(offsets)
    for env, s in zip(envs, seeds, strict=True):
        obs, _ = env.reset(seed=s.pop(0))
        hists.append([encode(obs["pixels"])] * history)
    out = [(np.stack([observe(h) for h in hists]), None, None, {})]
    for action in actions:
        rows, rewards, dones, terminal = [], [], [], {}
        for i, env in enumerate(envs):
            obs, reward, terminated, _, _ = env.step(action[i])
            steps[i] += 1
            hists[i] = [*hists[i][1:], encode(obs["pixels"])]
            done = terminated or steps[i] >= HORIZON
            if done:
                terminal[i] = observe(hists[i])
                obs, _ = env.reset(seed=seeds[i].pop(0))
                hists[i] = [encode(obs["pixels"])] * history
                steps[i] = 0
            rows.append(observe(hists[i]))
            rewards.append(reward)
            dones.append(done)
        out.append((np.stack(rows), np.array(rewards), np.array(dones), terminal))
    for env in envs:
        env.close()
    return out


@pytest.mark.parametrize("pool_kind", ["serial", "workers"])
def test_batched_features_equal_per_env_encoding_across_autoresets(tiny, pool_kind):
    n, offsets, n_steps = 3, [0, 1, 2], 7  # envs out of phase: they finish (and autoreset) at different steps
    factory = task_env_factory(TASK, render_size=SIZE, quality="fast", horizon=HORIZON)
    pool = SerialEnvPool(factory, n) if pool_kind == "serial" else ProcessEnvPool(factory, n, workers=2)
    spec = tasks.get(TASK)
    space = spec.make_env(render=False).action_space
    venv = FrozenFeatureVecEnv(
        pool,
        lambda frames: tiny.encode(frames).vector,
        embed_dim=tiny.spec.embed_dim,
        history=3,
        fusion="flare",
        proprio_dim=spec.proprio_dim,
        horizon=HORIZON,
        action_space=space,
        episode_seeds=iter(range(500, 600)),
    )
    actions = np.random.default_rng(0).uniform(-1, 1, (n_steps, n, spec.action_dim)).astype(np.float32)
    try:
        got = [(venv.reset(), None, None, {})]
        venv._steps[:] = offsets  # as if the envs had been running for 0, 1, 2 steps
        for action in actions:
            obs, rewards, dones, infos = venv.step(action)
            got.append(
                (obs, rewards, dones, {i: info["terminal_observation"] for i, info in enumerate(infos) if dones[i]})
            )
            assert all(infos[i]["TimeLimit.truncated"] for i in np.flatnonzero(dones))  # DMC never terminates
    finally:
        venv.close()

    # seeds are handed out in reset order: 500, 501, 502 at the start, then to each env as it finishes
    assert venv.seeds_used == [[500, 505], [501, 504, 507], [502, 503, 506]]
    expected = one_by_one_observations(tiny, venv.seeds_used, offsets, actions)
    assert sum(len(t) for _, _, _, t in expected) == 5  # five episode ends, at steps 2, 3, 4, 6 and 7
    for (g_obs, g_rew, g_done, g_term), (e_obs, e_rew, e_done, e_term) in zip(got, expected, strict=True):
        assert g_obs.dtype == np.float32 and g_obs.shape == (n, 3 * tiny.spec.embed_dim)
        assert np.array_equal(g_obs, e_obs)  # exactly: one batched forward == each frame on its own
        if g_rew is not None:
            assert np.array_equal(g_rew, e_rew.astype(np.float32)) and np.array_equal(g_done, e_done)
        assert g_term.keys() == e_term.keys()
        assert all(np.array_equal(g_term[i], e_term[i]) for i in g_term)
    # the first step after a reset holds no deltas: FLARE of a padded history is [0, 0, e_0]
    first = got[0][0].reshape(n, 3, -1)
    assert np.all(first[:, :2] == 0) and np.any(first[:, 2] != 0)


def test_the_encoder_is_frozen_and_sees_no_gradient(tiny):
    assert not tiny.module.training
    assert not any(p.requires_grad for p in tiny.module.parameters())
    features = tiny.encode(np.zeros((1, 32, 32, 3), np.uint8)).vector
    assert features.is_inference()  # produced under torch.inference_mode: cannot enter an autograd graph


def settings(tmp_path, policy, *overrides):
    with initialize_config_module("experiments.conf", version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "encoder=random-vit-tiny",
                f"task={TASK}",
                "protocol=smoke",
                f"policy={policy}",
                f"results_dir={tmp_path}",
                "progress=false",
                "workers=1",
                f"protocol.render_size={SIZE}",
                "protocol.horizon=6",
                "protocol.eval_episodes=2",
                *overrides,
            ],
        )
    return resolve_settings(cfg, tasks.get(TASK), encoders.get_spec(cfg.encoder), 100)


def test_rl_settings_come_from_the_protocol_rl_block(tmp_path):
    s = settings(tmp_path, "ppo")
    assert ALGORITHMS == RL_POLICIES
    assert (s.rl.total_steps, s.rl.eval_every, s.rl.n_envs) == (256, 128, 2)  # smoke: a few hundred steps
    assert s.rl.kwargs()["n_steps"] == 64 and s.rl.kwargs()["net_arch"] == [256, 256]
    assert s.default_policy == "bc-mlp" and s.policy == "ppo"
    assert settings(tmp_path, "bc-mlp").rl is None
    sac = settings(tmp_path, "sac", "protocol.rl.sac.learning_starts=7")
    assert sac.rl.kwargs()["learning_starts"] == 7 and "n_steps" not in sac.rl.kwargs()
    assert next(training_seeds(100)) == 100 + TRAIN_SEED_OFFSET
    # The policy table sends RL policies to the RL loop and BC heads to the BC loop.
    rl_body, bc_body = "experiments.cells.rl:train_and_evaluate", "experiments.cells.bc:train_and_evaluate"
    assert get_policy(s.policy).body == rl_body and get_policy(sac.policy).body == rl_body
    assert get_policy(settings(tmp_path, "bc-mlp").policy).body == bc_body


@pytest.mark.slow
@pytest.mark.parametrize(
    ("policy", "budget"),
    [
        ("ppo", ["protocol.rl.total_steps=24", "protocol.rl.eval_every=12", "protocol.rl.ppo.n_steps=6"]),
        ("sac", ["protocol.rl.total_steps=16", "protocol.rl.eval_every=8", "protocol.rl.sac.learning_starts=4"]),
    ],
)
def test_rl_cell_writes_a_record_like_il_cells(tmp_path, tiny, policy, budget):
    s = settings(tmp_path, policy, *budget, "protocol.rl.ppo.batch_size=6", "protocol.rl.sac.batch_size=4")
    record = run_cell(s, tiny)
    assert record["status"] == "ok", record["error"]
    path = tmp_path / "runs" / "smoke" / f"random-vit-tiny+{policy}" / TASK / "seed=100.json"
    assert record["_path"] == str(path)
    saved = json.loads(path.read_text())
    assert validate(saved) == []
    scores = saved["scores"]
    assert scores["unit"] == "env_steps"
    total, every = s.rl.total_steps, s.rl.eval_every
    assert [e for e, _ in scores["per_eval"]] == list(range(every, total + 1, every))
    assert scores["final_epoch"] == total and scores["best"] == max(v for _, v in scores["per_eval"])
    assert scores["train_loss"] and all(np.isfinite(scores["train_loss"]))
    for which in ("best", "final"):  # per-episode results; episode i seeded seed + i
        assert [e["seed"] for e in saved["episodes"][which]] == [100, 101]
        assert all(e["length"] == 6 for e in saved["episodes"][which])
    assert saved["episodes"]["final"][0]["value"] == pytest.approx(saved["episodes"]["final"][0]["return"] / 10)
    entropy = saved["feature_norm_entropy"]
    assert (
        entropy["definition_version"] == 1 and entropy["n_frames"] == 2 * 6 and "first evaluation" in entropy["frames"]
    )
    assert entropy["value"] > 0
    assert saved["policy"]["hyperparameters"]["algorithm"] == policy.upper()
    assert saved["training"]["env_steps"] == total
    assert all(seed >= 100 + TRAIN_SEED_OFFSET for env in saved["training"]["seeds"] for seed in env)
    assert {"make_envs", "train", "eval", "total"} <= set(saved["timing"])
    assert saved["provenance"]["packages"]["stable-baselines3"]


def test_rl_policies_are_refused_where_they_do_not_train():
    """RL heads train on the gymnasium MuJoCo suites; asking for one elsewhere fails when planning, before any work."""
    with initialize_config_module("experiments.conf", version_base=None):
        cfg = compose("config", overrides=["encoder=random-vit-tiny", "task=trifinger-reach-cube", "policy=ppo"])
    with pytest.raises(SettingError, match="policy=ppo does not train on trifinger"):
        resolve_settings(cfg, tasks.get("trifinger-reach-cube"), encoders.get_spec("random-vit-tiny"), 100)
