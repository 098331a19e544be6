"""The Habitat suites (ImageNav, ObjectNav, MobilePick) without the simulator: registry and error messages,
config translation against the keys habitat-lab / eai-vc define, CortexBench's policy on tensors of Habitat's
observation shapes, and a frozen encoder that never receives a gradient. Tests that need habitat-sim are
marked `habitat` and skipped where it is not installed (everywhere this harness was developed).

`tests/data/habitat/upstream_config_keys.json` lists every config key path of habitat-lab v0.2.1 (yacs
defaults, plus eai-vc habitat_vc's additions and the keys its configs set) and of habitat-lab v0.2.3
(structured configs, plus the mathfac fork's policy/PPO fields and eai-vc habitat2_vc's configs). It was made
by `tests/data/habitat/make_upstream_keys.py` from clones of habitat-lab and eai-vc (sources in its `_sources`).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import encoders
import tasks
from experiments.cells.habitat_config import CORTEXBENCH_POLICY, habitat_config, key_paths, scale
from policies.habitat_policy import (
    HABITAT_POLICIES,
    RNNStateEncoder,
    RunningMeanAndVar,
    build_habitat_policy,
    compression_layer,
)
from tasks.habitat import IMAGENAV, MOBILEPICK, OBJECTNAV, TASKS, HabitatTaskSpec, install_commands

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = json.loads((REPO / "tests" / "data" / "habitat" / "upstream_config_keys.json").read_text())
HAS_HABITAT = importlib.util.find_spec("habitat_sim") is not None
requires_habitat_sim = pytest.mark.skipif(
    not HAS_HABITAT, reason="habitat-sim is not installed (conda; README 'Habitat')"
)


@pytest.fixture(scope="module")
def tiny():
    return encoders.load("random-vit-tiny")


# --- registry, availability, error messages -------------------------------------------------------------
def test_habitat_tasks_are_registered_in_their_suites_and_groups():
    assert {t.name: t.suite for t in TASKS} == {
        "imagenav-gibson": "imagenav",
        "objectnav-hm3d": "objectnav",
        "mobilepick-replicacad": "mobilepick",
    }
    assert all(isinstance(tasks.get(t.name), HabitatTaskSpec) for t in TASKS)
    assert tasks.expand("imagenav") == ["imagenav-gibson"]
    assert {"imagenav-gibson", "objectnav-hm3d", "mobilepick-replicacad"} <= set(tasks.expand("cortexbench"))
    assert not set(tasks.expand("mujoco")) & {t.name for t in TASKS}
    # the reference's protocol facts (reference/cortexbench.md section 3)
    assert (IMAGENAV.horizon, OBJECTNAV.horizon, MOBILEPICK.horizon) == (1000, 500, 350)
    assert (IMAGENAV.trainer, OBJECTNAV.trainer, MOBILEPICK.trainer) == ("mddppo", "ddp-il-trainer", "ver")
    assert (OBJECTNAV.eval_episodes, MOBILEPICK.eval_episodes) == (2000, 500)


@pytest.mark.skipif(HAS_HABITAT, reason="checks the message shown where habitat-sim is missing")
def test_listing_shows_habitat_tasks_unavailable_with_what_is_missing(monkeypatch, tmp_path):
    from experiments.listing import tasks_table

    monkeypatch.setenv("CORTEXBENCH_HABITAT_DATA", str(tmp_path))
    rows = {line.split()[0]: line for line in tasks_table().splitlines()[2:]}
    for task in TASKS:
        assert not task.available()
        row = rows[task.name]
        assert "missing habitat_sim" in row and "nox -s eval-habitat" in row and "data:" in row
    assert "0.2.1" in rows["imagenav-gibson"] and "1heart/habitat-lab@e95e875" in rows["objectnav-hm3d"]
    assert (
        "0.2.3 withbullet" in rows["mobilepick-replicacad"]
        and "mathfac/habitat-lab@9e5731b" in rows["mobilepick-replicacad"]
    )
    assert "habitat_vc" in rows["imagenav-gibson"] and "habitat_vc" not in rows["mobilepick-replicacad"]


@pytest.mark.skipif(HAS_HABITAT, reason="checks the message shown where habitat-sim is missing")
def test_running_a_habitat_task_here_fails_fast_with_the_install_commands(tmp_path):
    env = os.environ | {"CORTEXBENCH_HABITAT_DATA": str(tmp_path / "habitat-data")}
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.eval", "encoder=random-vit-tiny", "task=objectnav-hm3d",
         "protocol=smoke", f"results_dir={tmp_path}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for needed in (
        "Missing Python modules: habitat_sim, habitat, habitat_baselines, vc_models, habitat_vc",
        "conda install -y habitat-sim=0.2.1 headless -c conda-forge -c aihabitat",
        "git -C habitat-lab-nav checkout e95e875",
        "python setup.py develop --all",
        "pip install --no-deps -e eai-vc/vc_models -e eai-vc/cortexbench/habitat_vc",
        "https://habitat-on-web.s3.amazonaws.com/pirlnav_release/objectnav_hm3d_hd.zip",
        "https://dl.fbaipublicfiles.com/habitat/data/datasets/objectnav/hm3d/v1/objectnav_hm3d_v1.zip",
        f"{tmp_path / 'habitat-data'}/datasets/objectnav/hm3d/objectnav_hm3d_77k",
        "nox -s eval-habitat -- encoder=<name> task=objectnav-hm3d",
    ):
        assert needed in proc.stderr
    assert not list(tmp_path.glob("runs/**/*.json"))  # nothing started, nothing written


def test_missing_data_is_named_item_by_item(monkeypatch, tmp_path):
    monkeypatch.setenv("CORTEXBENCH_HABITAT_DATA", str(tmp_path))
    assert [d.path for d in IMAGENAV.missing_data()] == ["scene_datasets/gibson", "datasets/imagenav/gibson/v1"]
    (tmp_path / "scene_datasets" / "gibson").mkdir(parents=True)
    assert [d.path for d in IMAGENAV.missing_data()] == ["datasets/imagenav/gibson/v1"]
    message = IMAGENAV.setup_message(missing=[], data=IMAGENAV.missing_data())
    assert "Missing Python modules" not in message and "pointnav_gibson_v1.zip" in message
    assert "scene_datasets/gibson:" not in message
    assert "data:datasets/imagenav/gibson/v1" in IMAGENAV.missing_modules()
    rearrange = install_commands("rearrange")
    assert "habitat-sim=0.2.3 withbullet" in rearrange and "eai-vc" not in rearrange and "--bullet" in rearrange


def test_habitat_cells_go_to_habitat_baselines(tmp_path):
    from hydra import compose, initialize_config_module

    from experiments.settings import resolve_settings
    from policies import get_policy

    with initialize_config_module("experiments.conf", version_base=None):
        cfg = compose("config", overrides=["encoder=random-vit-tiny", "task=mobilepick-replicacad", "protocol=smoke"])
    s = resolve_settings(cfg, MOBILEPICK, encoders.get_spec("random-vit-tiny"), 100)
    assert s.policy == s.default_policy == "cortexbench-habitat"
    assert get_policy(s.policy).body == "experiments.cells.habitat:train_and_evaluate"


def test_gymnasium_entry_points_say_where_habitat_runs():
    with pytest.raises(ValueError, match="nox -s eval-habitat"):
        IMAGENAV.make_env(seed=1)
    with pytest.raises(ValueError, match="habitat-lab from the datasets"):
        OBJECTNAV.demos(n=2)


# --- config translation ---------------------------------------------------------------------------------
def _unknown(paths: list[str], known: list[str]) -> list[str]:
    exact = set(known)
    patterns = [k.split(".") for k in known if "*" in k]

    def matches(path: str) -> bool:
        parts = path.split(".")
        return path in exact or any(
            len(p) == len(parts) and all(a in ("*", b) for a, b in zip(p, parts, strict=True)) for p in patterns
        )

    return [p for p in paths if not matches(p)]


@pytest.mark.parametrize("run_type", ["train", "eval"])
@pytest.mark.parametrize("suite", ["imagenav", "objectnav", "mobilepick"])
def test_every_translated_key_exists_upstream(suite, run_type):
    config = habitat_config(suite, 100, "/runs/x", run_type)
    if suite == "mobilepick":
        assert _unknown(key_paths(config), UPSTREAM["rearrange"]) == []
    else:
        trainer = {k: v for k, v in config.items() if k != "TASK_CONFIG"}
        assert _unknown(key_paths(trainer), UPSTREAM["nav_trainer"]) == []
        assert _unknown(key_paths(config["TASK_CONFIG"]), UPSTREAM["nav_task"]) == []
    assert _unknown(["RL.PPO.learning_rate"], UPSTREAM["nav_trainer"]) == ["RL.PPO.learning_rate"]  # the check bites


def test_imagenav_config_has_cortexbench_values():
    train, evaluate = habitat_config("imagenav", 200, "/r", "train"), habitat_config("imagenav", 200, "/r", "eval")
    task = train["TASK_CONFIG"]
    assert task["SIMULATOR"]["RGB_SENSOR"] == {"WIDTH": 128, "HEIGHT": 128}
    assert task["TASK"]["POSSIBLE_ACTIONS"] == ["STOP", "MOVE_FORWARD", "TURN_LEFT", "TURN_RIGHT"]
    assert (task["SIMULATOR"]["FORWARD_STEP_SIZE"], task["SIMULATOR"]["TURN_ANGLE"]) == (0.25, 30)
    assert task["ENVIRONMENT"]["MAX_EPISODE_STEPS"] == 1000 and task["TASK"]["SUCCESS"]["SUCCESS_DISTANCE"] == 1.0
    reward = task["TASK"]["SIMPLE_REWARD"]
    assert (reward["SUCCESS_REWARD"], reward["ANGLE_SUCCESS_REWARD"], reward["SLACK_PENALTY"]) == (5.0, 5.0, -0.01)
    assert task["TASK"]["TRAIN_SUCCESS"]["SUCCESS_DISTANCE"] == 0.8 and task["SEED"] == 200
    ppo = train["RL"]["PPO"]
    assert (ppo["lr"], ppo["encoder_lr"], ppo["wd"], ppo["eps"], ppo["max_grad_norm"]) == (
        2.5e-4,
        1.5e-6,
        1e-6,
        1e-5,
        0.2,
    )
    assert (ppo["clip_param"], ppo["ppo_epoch"], ppo["num_mini_batch"], ppo["num_steps"]) == (0.2, 2, 2, 64)
    assert (ppo["gamma"], ppo["tau"], ppo["entropy_coef"], ppo["value_loss_coef"]) == (0.99, 0.95, 0.01, 0.5)
    policy = train["RL"]["POLICY"]
    assert policy["name"] == CORTEXBENCH_POLICY and policy["freeze_backbone"] is True
    assert (policy["hidden_size"], policy["rnn_type"], policy["num_recurrent_layers"], policy["input_image_size"]) == (
        512,
        "LSTM",
        2,
        128,
    )
    assert (train["TRAINER_NAME"], train["NUM_ENVIRONMENTS"], train["TOTAL_NUM_STEPS"]) == ("mddppo", 10, 500e6)
    assert (train["NUM_CHECKPOINTS"], train["EVAL"]["EVAL_FREQ"]) == (100, 5)
    # run_habitat_vc.py at eval: no train success, fixed goal headings; 14 envs; the val split
    assert evaluate["NUM_ENVIRONMENTS"] == 14 and evaluate["TASK_CONFIG"]["DATASET"]["SPLIT"] == "val"
    assert evaluate["TASK_CONFIG"]["TASK"]["ANGLE_SUCCESS"]["USE_TRAIN_SUCCESS"] is False
    assert evaluate["TASK_CONFIG"]["TASK"]["IMAGEGOAL_ROTATION_SENSOR"]["SAMPLE_ANGLE"] is False
    assert task["TASK"]["IMAGEGOAL_ROTATION_SENSOR"]["SAMPLE_ANGLE"] is True
    assert task["DATASET"]["DATA_PATH"] == "data/datasets/imagenav/gibson/v1/{split}/{split}.json.gz"
    assert train["CHECKPOINT_FOLDER"] == "/r/checkpoints"


def test_objectnav_config_has_cortexbench_values():
    train, evaluate = habitat_config("objectnav", 100, "/r", "train"), habitat_config("objectnav", 100, "/r", "eval")
    sim = train["TASK_CONFIG"]["SIMULATOR"]
    assert sim["RGB_SENSOR"] == {"WIDTH": 640, "HEIGHT": 480, "HFOV": 79, "POSITION": [0, 0.88, 0]}
    assert (sim["TURN_ANGLE"], sim["TILT_ANGLE"], sim["AGENT_0"]["HEIGHT"], sim["AGENT_0"]["RADIUS"]) == (
        30,
        30,
        0.88,
        0.18,
    )
    task = train["TASK_CONFIG"]["TASK"]
    assert len(task["POSSIBLE_ACTIONS"]) == 6 and "LOOK_UP" in task["POSSIBLE_ACTIONS"]
    assert task["SUCCESS_DISTANCE"] == 0.1 and train["TASK_CONFIG"]["ENVIRONMENT"]["MAX_EPISODE_STEPS"] == 500
    assert task["INFLECTION_WEIGHT_SENSOR"]["INFLECTION_COEF"] == pytest.approx(3.4775, abs=1e-4)
    assert (
        "DEMONSTRATION_SENSOR" in task["SENSORS"]
        and "DEMONSTRATION_SENSOR" not in evaluate["TASK_CONFIG"]["TASK"]["SENSORS"]
    )
    bc = train["IL"]["BehaviorCloning"]
    assert (bc["lr"], bc["encoder_lr"], bc["wd"], bc["eps"], bc["max_grad_norm"], bc["num_steps"]) == (
        1e-3,
        1e-4,
        1e-6,
        1e-5,
        0.2,
        64,
    )
    assert bc["use_linear_lr_decay"] is True and train["NUM_UPDATES"] == 12000 and train["CHECKPOINT_INTERVAL"] == 500
    model = train["MODEL"]
    assert model["RGB_ENCODER"]["image_size"] == 256 and model["RGB_ENCODER"]["freeze_backbone"] is True
    assert model["STATE_ENCODER"] == {"hidden_size": 2048, "rnn_type": "LSTM", "num_recurrent_layers": 2}
    assert (train["NUM_ENVIRONMENTS"], evaluate["NUM_ENVIRONMENTS"], evaluate["NUM_PROCESSES"]) == (16, 20, 20)
    assert train["TASK_CONFIG"]["DATASET"]["DATA_PATH"].startswith("data/datasets/objectnav/hm3d/objectnav_hm3d_77k/")
    assert evaluate["TASK_CONFIG"]["DATASET"]["DATA_PATH"] == "data/datasets/objectnav/hm3d/v1/{split}/{split}.json.gz"
    assert (
        evaluate["TASK_CONFIG"]["DATASET"]["TYPE"] == "ObjectNav-v1"
        and train["IL"]["POLICY"]["name"] == CORTEXBENCH_POLICY
    )


def test_mobilepick_config_has_cortexbench_values():
    train, evaluate = habitat_config("mobilepick", 100, "/r", "train"), habitat_config("mobilepick", 100, "/r", "eval")
    task = train["habitat"]["task"]
    assert train["habitat"]["environment"]["max_episode_steps"] == 350
    assert (task["spawn_max_dists_to_obj"], task["base_noise"], task["base_angle_noise"]) == (2.0, 0.25, 0.75)
    assert task["measurements"]["force_terminate"]["max_accum_force"] == 5000.0
    reward = task["measurements"]["pick_reward"]
    assert (reward["dist_reward"], reward["pick_reward"], reward["drop_pen"], reward["wrong_pick_pen"]) == (
        2.0,
        4.0,
        1.0,
        2.0,
    )
    assert train["habitat"]["gym"]["obs_keys"] == [
        "robot_head_rgb", "frozen_obj_start_sensor", "joint", "is_holding", "relative_resting_position",
    ]  # fmt: skip
    base = train["habitat_baselines"]
    ppo, policy = base["rl"]["ppo"], base["rl"]["policy"]
    assert (ppo["lr"], ppo["encoder_lr"], ppo["ppo_epoch"], ppo["num_mini_batch"], ppo["num_steps"]) == (
        2e-4,
        2e-5,
        3,
        2,
        128,
    )
    assert (ppo["entropy_coef"], ppo["max_grad_norm"], ppo["wd"]) == (1e-3, 0.2, 1e-6)
    assert (policy["rnn_type"], policy["num_recurrent_layers"], policy["hidden_size"]) == ("GRU", 2, 768)
    assert policy["action_distribution_type"] == "gaussian" and policy["freeze_backbone"] is True
    assert (base["trainer_name"], base["num_environments"], base["total_num_steps"]) == ("ver", 6, 500e6)
    assert (evaluate["habitat_baselines"]["num_environments"], base["test_episode_count"]) == (10, 500)


def test_protocol_scale_knobs_shrink_runs_and_unknown_knobs_are_refused():
    smoke = {"total_steps": 256, "num_updates": 2, "num_environments": 1, "eval_environments": 1,
             "num_checkpoints": 1, "checkpoint_interval": 1, "test_episodes": 2}  # fmt: skip
    tiny = habitat_config("imagenav", 100, "/r", "train", smoke)
    assert (tiny["TOTAL_NUM_STEPS"], tiny["NUM_ENVIRONMENTS"], tiny["TEST_EPISODE_COUNT"]) == (256, 1, 2)
    assert habitat_config("objectnav", 100, "/r", "train", smoke)["NUM_UPDATES"] == 2
    assert scale("mobilepick", {"total_steps": None})["total_steps"] == 500e6  # null = the reference's value
    with pytest.raises(ValueError, match=r"unknown protocol\.habitat knob 'num_gpus'"):
        scale("imagenav", {"num_gpus": 8})
    with pytest.raises(ValueError, match="no Habitat config for suite 'pointnav'"):
        habitat_config("pointnav", 1, "/r")


def test_translations_are_independent_copies():
    a = habitat_config("imagenav", 1, "/r")
    a["RL"]["PPO"]["lr"] = 1.0
    assert habitat_config("imagenav", 1, "/r")["RL"]["PPO"]["lr"] == 2.5e-4


# --- the policy network on Habitat's observation shapes ----------------------------------------------------
def _frames(n, h, w, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8))


def _observations(suite: str, n: int, rgb: tuple[int, int] | None = None) -> dict:
    if suite == "imagenav":
        return {"rgb": _frames(n, 128, 128), "imagegoalrotation": _frames(n, 128, 128, seed=1)}
    if suite == "objectnav":
        return {"rgb": _frames(n, 480, 640), "objectgoal": torch.randint(0, 6, (n, 1)),
                "compass": torch.rand(n, 1) * 6.28 - 3.14, "gps": torch.randn(n, 2)}  # fmt: skip
    h, w = rgb or (128, 128)
    return {"robot_head_rgb": _frames(n, h, w), "joint": torch.randn(n, 7), "is_holding": torch.zeros(n, 1),
            "relative_resting_position": torch.randn(n, 3), "frozen_obj_start_sensor": torch.randn(n, 3)}  # fmt: skip


@pytest.mark.parametrize(
    ("suite", "grid", "hidden", "action_shape"),
    [
        ("imagenav", (8, 8), (4, 512), (1,)),
        ("objectnav", (16, 16), (4, 2048), (1,)),
        ("mobilepick", (8, 8), (2, 768), (10,)),
    ],
)
def test_policy_forward_on_habitat_observation_shapes(tiny, suite, grid, hidden, action_shape):
    torch.manual_seed(0)
    policy = build_habitat_policy(tiny, suite)
    n = 2
    assert policy.backbone.grid == grid and policy.inputs.visual_encoder.output_size == 2048  # compressed to ~2048
    h0 = policy.initial_state(n)
    assert h0.shape == (n, *hidden)
    cfg = HABITAT_POLICIES[suite]
    prev = torch.zeros(n, 1, dtype=torch.long) if cfg.action == "discrete" else torch.zeros(n, cfg.n_actions)
    masks = torch.tensor([[False], [True]])
    value, action, log_prob, h1 = policy.act(_observations(suite, n), h0, prev, masks)
    assert action.shape == (n, *action_shape) and log_prob.shape == (n, 1) and h1.shape == h0.shape
    assert (value is None) == (suite == "objectnav") and (value is None or value.shape == (n, 1))
    if cfg.action == "discrete":
        assert action.dtype == torch.long and ((action >= 0) & (action < cfg.n_actions)).all()
    policy.eval()  # ImageNav / MobilePick augment at test time too (as the reference): seeded, it repeats
    torch.manual_seed(1)
    _, mode, _, _ = policy.act(_observations(suite, n), h0, prev, masks, deterministic=True)
    torch.manual_seed(1)
    _, again, _, _ = policy.act(_observations(suite, n), h0, prev, masks, deterministic=True)
    assert torch.equal(mode, again)  # deterministic evaluation actions
    if suite == "mobilepick":  # the head camera at habitat-lab 0.2.3's default 256x256 is resized to 128 too
        out = policy.act(_observations(suite, n, rgb=(256, 256)), h0, prev, masks)
        assert out[1].shape == (n, 10)


def test_evaluate_actions_over_a_rollout_resets_hidden_state_at_episode_starts(tiny):
    torch.manual_seed(0)
    policy = build_habitat_policy(tiny, "imagenav", augment_test=False).eval()  # same frame -> same input
    t, n = 3, 2
    obs = {k: torch.cat([v] * t) for k, v in _observations("imagenav", n).items()}  # time-major [T*N, ...]
    masks = torch.tensor([[False], [False], [True], [True], [True], [False]])  # env 1 restarts at t=2
    actions = torch.zeros(t * n, 1, dtype=torch.long)
    value, log_prob, entropy, h = policy.evaluate_actions(obs, policy.initial_state(n), actions, masks, actions)
    assert value.shape == log_prob.shape == entropy.shape == (t * n, 1) and h.shape == (n, 4, 512)
    # env 1 at t=2 starts a new episode: same input, zero state, as env 1 at t=0 -> same output
    assert torch.allclose(value[5], value[1], atol=1e-6) and not torch.allclose(value[4], value[0], atol=1e-6)


def test_rnn_state_encoder_sequence_equals_step_by_step():
    torch.manual_seed(0)
    for rnn_type, layers in (("LSTM", 2), ("GRU", 2)):
        rnn = RNNStateEncoder(5, 7, rnn_type, layers)
        n, t = 3, 4
        x, masks = torch.randn(t * n, 5), torch.rand(t * n, 1) > 0.3
        h0 = torch.randn(n, rnn.num_recurrent_layers, 7)
        seq_out, seq_h = rnn(x, h0, masks)
        h, outs = h0, []
        for step in range(t):
            out, h = rnn(x[step * n : (step + 1) * n], h, masks[step * n : (step + 1) * n])
            outs.append(out)
        assert torch.allclose(seq_out, torch.cat(outs), atol=1e-6) and torch.allclose(seq_h, h, atol=1e-6)


def test_compression_layer_and_running_normalisation_match_the_reference_arithmetic():
    conv, size = compression_layer(192, (8, 8))
    assert conv[0].out_channels == 32 and size == 2048 and conv[0].bias is None  # round(2048 / 64) = 32
    assert compression_layer(1024, (16, 16))[1] == 2048  # ViT-L at 256 px: 8 channels x 16 x 16
    assert compression_layer(2048, (4, 4))[1] == 2048  # ResNet-50 at 128 px: 128 channels x 4 x 4
    norm = RunningMeanAndVar(3)
    a, b = torch.rand(4, 3, 5, 5), torch.rand(6, 3, 5, 5) * 2 + 1
    norm(a), norm(b)
    both = torch.cat([a, b]).transpose(0, 1).reshape(3, -1)
    assert torch.allclose(norm.mean.view(3), both.mean(1), atol=1e-5)
    assert torch.allclose(norm.var.view(3), both.var(1, unbiased=False), atol=1e-5)
    norm.eval()
    frozen = norm.mean.clone()
    norm(torch.rand(2, 3, 5, 5))
    assert torch.equal(norm.mean, frozen)  # evaluation never updates the statistics


# --- the frozen encoder ---------------------------------------------------------------------------------
def test_frozen_encoder_receives_no_gradient_and_does_not_change(tiny):
    torch.manual_seed(0)
    policy = build_habitat_policy(tiny, "imagenav")
    policy.train()
    assert not policy.backbone.module.training  # stays in eval mode inside a training policy
    backbone = dict(policy.backbone.named_parameters())
    assert backbone and not any(p.requires_grad for p in backbone.values())
    before = {k: v.detach().clone() for k, v in backbone.items()}
    trainable = [p for p in policy.parameters() if p.requires_grad]
    assert not {id(p) for p in trainable} & {id(p) for p in backbone.values()}
    compression_before = policy.inputs.visual_encoder.compression[0].weight.detach().clone()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)  # even handed every parameter

    n = 2
    obs = _observations("imagenav", n)
    h0, prev, masks = policy.initial_state(n), torch.zeros(n, 1, dtype=torch.long), torch.ones(n, 1, dtype=torch.bool)
    value, log_prob, entropy, _ = policy.evaluate_actions(obs, h0, prev, masks, torch.tensor([[1], [2]]))
    loss = -(log_prob * 1.0).mean() + 0.5 * value.pow(2).mean() - 0.01 * entropy.mean()
    optimizer.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in backbone.values())
    assert policy.inputs.visual_encoder.compression[0].weight.grad is not None  # the layers after it learn
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in backbone.items())
    assert not torch.equal(compression_before, policy.inputs.visual_encoder.compression[0].weight)
    # the ImageNav goal encoder shares the one frozen backbone (eai-vc reuses it when frozen)
    assert policy.inputs.goal_visual_encoder.backbone is policy.inputs.visual_encoder.backbone


def test_rebuilding_the_vit_at_habitat_resolution_leaves_the_registry_encoder_alone(tiny):
    tokens_before = tiny.encode(np.zeros((1, 224, 224, 3), np.uint8)).tokens.shape
    policy = build_habitat_policy(tiny, "imagenav")
    assert policy.backbone.module is not tiny.module  # a resized copy, not the shared encoder
    assert tiny.encode(np.zeros((1, 224, 224, 3), np.uint8)).tokens.shape == tokens_before == (1, 196, 192)


# --- tests that need habitat-sim (run in the Habitat environment) ------------------------------------------
@pytest.mark.parametrize("task", [IMAGENAV, OBJECTNAV], ids=lambda t: t.name)
@pytest.mark.habitat
@requires_habitat_sim
def test_real_nav_observations_fit_the_policy(task, tiny):
    """habitat-lab v0.2.1 + eai-vc habitat_vc: our translated task config builds an env whose observations
    drive the policy (needs the scenes and episodes under the Habitat data root)."""
    if task.missing_data():
        pytest.skip(f"Habitat data missing: {[d.path for d in task.missing_data()]}")
    import habitat
    from habitat.config import Config
    from habitat_vc.config import get_task_config

    from tasks.habitat import data_root

    config = get_task_config()
    config.defrost()
    translated = copy.deepcopy(habitat_config(task.suite, 100, "/tmp/run", "eval")["TASK_CONFIG"])
    translated["DATASET"]["SCENES_DIR"] = str(data_root() / "scene_datasets")
    translated["DATASET"]["DATA_PATH"] = str(data_root()) + translated["DATASET"]["DATA_PATH"][len("data") :]
    config.merge_from_other_cfg(Config(translated))
    config.freeze()
    env = habitat.Env(config)
    try:
        obs = env.reset()
        for key, shape in task.observations:
            assert tuple(np.asarray(obs[key]).shape) == shape
        batch = {k: torch.as_tensor(np.asarray(v))[None] for k, v in obs.items()}
        policy = build_habitat_policy(tiny, task.suite)
        prev = torch.zeros(1, 1, dtype=torch.long)
        _, action, _, _ = policy.act(batch, policy.initial_state(1), prev, torch.zeros(1, 1, dtype=torch.bool))
        env.step(int(action))
    finally:
        env.close()


@pytest.mark.habitat
@requires_habitat_sim
@pytest.mark.slow
def test_habitat_smoke_cell_end_to_end(tmp_path, tiny):
    """A whole ImageNav cell at the smoke scale through habitat-baselines (DD-PPO), with a record."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from experiments.cells import run_cell
    from experiments.settings import resolve_settings

    if IMAGENAV.missing_data():
        pytest.skip("ImageNav data missing")
    with initialize_config_module("experiments.conf", version_base=None):
        cfg = compose("config", overrides=["encoder=random-vit-tiny", f"task={IMAGENAV.name}", "protocol=smoke",
                                           f"results_dir={tmp_path}", "weights=random"])  # fmt: skip
    s = resolve_settings(cfg, IMAGENAV, tiny.spec, 100)
    record = run_cell(s, tiny, config=OmegaConf.to_container(cfg, resolve=True))
    assert record["status"] == "ok", record["error"]
    assert record["scores"]["per_eval"] and record["feature_norm_entropy"]["value"] >= 0
