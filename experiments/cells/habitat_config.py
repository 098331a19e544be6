"""Translate one Habitat cell (task, protocol, seed, run folder) into the configs habitat-lab / habitat-baselines
read, with CortexBench's values (reference/cortexbench.md section 3).

- ImageNav and ObjectNav (the `nav` stack: habitat-lab v0.2.1, yacs configs with UPPERCASE keys): one nested
  dict in the layout of eai-vc's `habitat_vc.config.get_config()` (trainer keys, with the task under
  `TASK_CONFIG`), merged by `experiments/cells/habitat.py` onto that function's defaults.
- MobilePick (the `rearrange` stack: habitat-lab 0.2.3-era, Hydra structured configs, lowercase keys): one
  nested dict of overrides for the composed `benchmark/rearrange/pick` config (`habitat.*` and
  `habitat_baselines.*`), as eai-vc's `habitat2_vc` configs set them.

Values come from eai-vc @ e782c35 (paths under `cortexbench/`): habitat_vc `configs/{config_imagenav,
eval_config_imagenav, config_objectnav_il_frozen, eval_config_objectnav_il_frozen}.yaml`,
`configs/experiments/{imagenav_rl, objectnav_il}.yaml`, `configs/tasks/{imagenav, objectnav_hm3d_il}.yaml`,
`run_habitat_vc.py` (eval-time changes), habitat2_vc `configs/{config.yaml, experiments/rl_skill.yaml,
tasks/pick.yaml, tasks/sensors/fixed_goal_sensor.yaml}` and its README (eval with 10 environments). Every
key emitted here exists upstream: tests/test_habitat.py checks them against the key lists read from
habitat-lab v0.2.1 / v0.2.3 and eai-vc (tests/data/habitat/upstream_config_keys.json).

Our changes, all stated in the returned dict or here: the policy is `CORTEXBENCH_POLICY` (the harness's
frozen encoder in CortexBench's architecture, `policies/habitat_policy.py`), with the backbone frozen
(`freeze_backbone: True`; eai-vc's shipped ImageNav config fine-tunes); the task seed is the cell's seed
(the reference draws a random one per run); data paths stay the reference's relative `data/...`, with the
run folder holding a `data` link to the data root; budget knobs can be scaled down by the protocol's
`habitat:` block (`smoke`), never silently.
"""

from __future__ import annotations

import copy
from typing import Any

CORTEXBENCH_POLICY = "CortexBenchHabitatPolicy"  # registered in habitat-baselines by experiments/cells/habitat.py

# --- ImageNav: DD-PPO (habitat_vc `mddppo`), 500M steps, 10 envs per GPU ---------------------------------
IMAGENAV_PPO = {
    "clip_param": 0.2,
    "ppo_epoch": 2,
    "num_mini_batch": 2,
    "value_loss_coef": 0.5,
    "entropy_coef": 0.01,
    "lr": 2.5e-4,
    "encoder_lr": 1.5e-6,
    "wd": 1e-6,
    "eps": 1e-5,
    "max_grad_norm": 0.2,
    "num_steps": 64,
    "use_gae": True,
    "use_linear_lr_decay": False,
    "use_linear_clip_decay": False,
    "gamma": 0.99,
    "tau": 0.95,
    "reward_window_size": 50,
    "use_normalized_advantage": False,
    "hidden_size": 512,
    "use_double_buffered_sampler": False,
}
IMAGENAV_MEASUREMENTS = [
    "DISTANCE_TO_GOAL",
    "SUCCESS",
    "TRAIN_SUCCESS",
    "ANGLE_TO_GOAL",
    "ANGLE_SUCCESS",
    "SPL",
    "SOFT_SPL",
    "SIMPLE_REWARD",
]

# --- ObjectNav: behaviour cloning on 77k human demos (habitat_vc `ddp-il-trainer`), 12000 updates ---------
OBJECTNAV_BC = {
    "lr": 1e-3,
    "encoder_lr": 1e-4,
    "eps": 1e-5,
    "wd": 1e-6,
    "clip_param": 0.2,
    "num_mini_batch": 2,
    "max_grad_norm": 0.2,
    "num_steps": 64,
    "use_linear_clip_decay": False,
    "use_linear_lr_decay": True,
    "reward_window_size": 50,
    "sync_frac": 0.6,
    "pretrained": False,
    "pretrained_weights": "None",
}
INFLECTION_COEF = 3.477512060914205  # tasks/objectnav_hm3d_il.yaml INFLECTION_WEIGHT_SENSOR

# --- MobilePick: VER, 500M steps, 6 envs per GPU ------------------------------------------------------
MOBILEPICK_PPO = {
    "clip_param": 0.2,
    "ppo_epoch": 3,
    "num_mini_batch": 2,
    "value_loss_coef": 0.5,
    "use_adamw": False,
    "encoder_lr": 2.0e-5,
    "wd": 1.0e-6,
    "entropy_coef": 0.001,
    "lr": 2.0e-4,
    "eps": 1.0e-5,
    "max_grad_norm": 0.2,
    "num_steps": 128,
    "use_gae": True,
    "gamma": 0.99,
    "tau": 0.95,
    "use_linear_clip_decay": False,
    "use_linear_lr_decay": False,
    "reward_window_size": 50,
    "use_normalized_advantage": False,
    "hidden_size": 768,
    "use_double_buffered_sampler": False,
}

# The scale of each run in the reference, and what the protocol's `habitat:` block may override.
REFERENCE_SCALE = {
    "imagenav": {"total_steps": 500e6, "num_environments": 10, "eval_environments": 14, "num_checkpoints": 100, "test_episodes": -1},
    "objectnav": {"num_updates": 12000, "num_environments": 16, "eval_environments": 20, "checkpoint_interval": 500, "test_episodes": -1},
    "mobilepick": {"total_steps": 500e6, "num_environments": 6, "eval_environments": 10, "num_checkpoints": 50, "test_episodes": 500},
}  # fmt: skip
SCALE_KNOBS = (
    "total_steps",
    "num_updates",
    "num_environments",
    "eval_environments",
    "num_checkpoints",
    "checkpoint_interval",
    "test_episodes",
)


def scale(suite: str, protocol_block: dict | None) -> dict:
    """The reference's scale for `suite`, with the protocol's non-null `habitat:` knobs applied."""
    out = dict(REFERENCE_SCALE[suite])
    for key, value in (protocol_block or {}).items():
        if key not in SCALE_KNOBS:
            raise ValueError(f"unknown protocol.habitat knob {key!r}; expected one of {list(SCALE_KNOBS)}")
        if value is not None and key in out:
            out[key] = value
    return out


def _run_paths(run_dir: str, upper: bool) -> dict:
    names = {
        "tensorboard_dir": f"{run_dir}/logs",
        "video_dir": f"{run_dir}/video",
        "checkpoint_folder": f"{run_dir}/checkpoints",
        "eval_ckpt_path_dir": f"{run_dir}/checkpoints",
        "log_file": f"{run_dir}/train.log",
    }
    return {k.upper(): v for k, v in names.items()} if upper else names


def imagenav_config(seed: int, run_dir: str, run_type: str = "train", protocol_block: dict | None = None) -> dict:
    """ImageNav (RL, DD-PPO) in eai-vc habitat_vc's config layout (habitat-lab v0.2.1)."""
    sc = scale("imagenav", protocol_block)
    evaluating = run_type == "eval"
    envs = sc["eval_environments"] if evaluating else sc["num_environments"]
    return {
        "RUN_TYPE": run_type,
        "TRAINER_NAME": "mddppo",
        "ENV_NAME": "SimpleRLEnv",
        "SENSORS": ["RGB_SENSOR"],
        "VIDEO_OPTION": [],
        **_run_paths(run_dir, upper=True),
        "NUM_ENVIRONMENTS": envs,
        "LOG_INTERVAL": 100,
        "NUM_CHECKPOINTS": sc["num_checkpoints"],
        "NUM_UPDATES": -1,
        "TOTAL_NUM_STEPS": float(sc["total_steps"]),
        "FORCE_TORCH_SINGLE_THREADED": True,
        "TEST_EPISODE_COUNT": sc["test_episodes"],
        "EVAL": {"SPLIT": "val", "USE_CKPT_CONFIG": True, "EVAL_FREQ": 5},
        "RL": {
            "REWARD_MEASURE": "simple_reward",
            "SUCCESS_MEASURE": "success",
            "POLICY": {
                "name": CORTEXBENCH_POLICY,
                "hidden_size": 512,
                "input_image_size": 128,
                "rnn_type": "LSTM",
                "num_recurrent_layers": 2,
                "use_augmentations": True,
                "use_augmentations_test_time": True,
                "freeze_batchnorm": True,
                "freeze_backbone": True,  # frozen-PVR setting (eai-vc's shipped config: False, fine-tuning)
                "global_pool": False,
                "use_cls": False,
            },
            "PPO": dict(IMAGENAV_PPO),
            "DDPPO": {"sync_frac": 0.6, "distrib_backend": "NCCL"},
        },
        "TASK_CONFIG": {
            "SEED": seed,
            "ENVIRONMENT": {"MAX_EPISODE_STEPS": 1000, "ITERATOR_OPTIONS": {"MAX_SCENE_REPEAT_STEPS": 50000}},
            "SIMULATOR": {
                "FORWARD_STEP_SIZE": 0.25,
                "TURN_ANGLE": 30,
                "RGB_SENSOR": {"WIDTH": 128, "HEIGHT": 128},
                "AGENT_0": {"SENSORS": ["RGB_SENSOR"]},
            },
            "TASK": {
                "TYPE": "Nav-v0",
                "POSSIBLE_ACTIONS": ["STOP", "MOVE_FORWARD", "TURN_LEFT", "TURN_RIGHT"],
                "SUCCESS_DISTANCE": 1.0,
                "SUCCESS": {"SUCCESS_DISTANCE": 1.0},
                "SIMPLE_REWARD": {
                    "TYPE": "SimpleReward",
                    "SUCCESS_REWARD": 5.0,
                    "ANGLE_SUCCESS_REWARD": 5.0,
                    "USE_DTG_REWARD": True,
                    "USE_ATG_REWARD": True,
                    "ATG_REWARD_DISTANCE": 1.0,
                    "SLACK_PENALTY": -0.01,
                    "USE_ATG_FIX": True,
                },
                "ANGLE_TO_GOAL": {"TYPE": "AngleToGoal"},
                # run_habitat_vc.py: train-time success (0.8 m + 25 deg) and random goal headings only in training
                "ANGLE_SUCCESS": {"TYPE": "AngleSuccess", "SUCCESS_ANGLE": 25.0, "USE_TRAIN_SUCCESS": not evaluating},
                "IMAGEGOAL_ROTATION_SENSOR": {"TYPE": "ImageGoalRotationSensor", "SAMPLE_ANGLE": not evaluating},
                "TRAIN_SUCCESS": {"TYPE": "TrainSuccess", "SUCCESS_DISTANCE": 0.8},
                "SENSORS": ["IMAGEGOAL_ROTATION_SENSOR"],
                "MEASUREMENTS": list(IMAGENAV_MEASUREMENTS),
            },
            "DATASET": {
                "TYPE": "PointNav-v1",
                "SPLIT": "val" if evaluating else "train",
                "SCENES_DIR": "data/scene_datasets",
                "DATA_PATH": "data/datasets/imagenav/gibson/v1/{split}/{split}.json.gz",
            },
        },
    }


def objectnav_config(seed: int, run_dir: str, run_type: str = "train", protocol_block: dict | None = None) -> dict:
    """ObjectNav (IL on Habitat-Web demos) in eai-vc habitat_vc's config layout (habitat-lab v0.2.1)."""
    sc = scale("objectnav", protocol_block)
    evaluating = run_type == "eval"
    envs = sc["eval_environments"] if evaluating else sc["num_environments"]
    sensors = ["OBJECTGOAL_SENSOR", "COMPASS_SENSOR", "GPS_SENSOR"]
    task: dict[str, Any] = {
        "TYPE": "ObjectNav-v1" if evaluating else "ObjectNav-v2",
        "POSSIBLE_ACTIONS": ["STOP", "MOVE_FORWARD", "TURN_LEFT", "TURN_RIGHT", "LOOK_UP", "LOOK_DOWN"],
        "SUCCESS_DISTANCE": 0.1,
        "SENSORS": sensors if evaluating else [*sensors, "DEMONSTRATION_SENSOR", "INFLECTION_WEIGHT_SENSOR"],
        "GOAL_SENSOR_UUID": "objectgoal",
        "MEASUREMENTS": ["DISTANCE_TO_GOAL", "SUCCESS", "SPL", "SOFT_SPL"],
        "DISTANCE_TO_GOAL": {"DISTANCE_TO": "VIEW_POINTS"},
        "SUCCESS": {"SUCCESS_DISTANCE": 0.1},
    }
    if not evaluating:
        task |= {
            "DEMONSTRATION_SENSOR": {"TYPE": "DemonstrationSensor"},
            "DEMONSTRATION_SENSOR_UUID": "demonstration",
            "INFLECTION_WEIGHT_SENSOR": {"TYPE": "InflectionWeightSensor", "INFLECTION_COEF": INFLECTION_COEF},
            "INFLECTION_WEIGHT_SENSOR_UUID": "inflection_weight",
        }
    return {
        "RUN_TYPE": run_type,
        "TRAINER_NAME": "ddp-il-trainer",
        "ENV_NAME": "SimpleRLEnv",
        "SENSORS": ["RGB_SENSOR"],
        "VIDEO_OPTION": [],
        **_run_paths(run_dir, upper=True),
        "NUM_ENVIRONMENTS": envs,
        "NUM_PROCESSES": envs,  # the IL trainer sizes its eval buffers with NUM_PROCESSES
        "LOG_INTERVAL": 100,
        "LOG_METRICS": True,
        "NUM_UPDATES": sc["num_updates"],
        "TOTAL_NUM_STEPS": -1.0,
        "NUM_CHECKPOINTS": -1,
        "CHECKPOINT_INTERVAL": sc["checkpoint_interval"],
        "TEST_EPISODE_COUNT": sc["test_episodes"],
        "EVAL_SAVE_RESULTS": True,
        "EVAL_SAVE_RESULTS_INTERVAL": 50,
        "SHOW_TOP_DOWN_MAP": False,
        "SIMULATOR_GPU_ID": 0,
        "TORCH_GPU_ID": 0,
        "EVAL": {
            "SPLIT": "val",
            "EVAL_FREQ": 1,
            "FIRST_CHECKPOINT": 10,
            "meta_file": f"{run_dir}/logs/evaluation_meta.json",
        },
        "IL": {
            "POLICY": {"name": CORTEXBENCH_POLICY},
            "USE_IW": True,
            "distrib_backend": "NCCL",
            "BehaviorCloning": dict(OBJECTNAV_BC),
        },
        "RL": {"SUCCESS_REWARD": 2.5, "SLACK_REWARD": -1e-3, "REWARD_MEASURE": "distance_to_goal"},
        "MODEL": {
            "RGB_ENCODER": {
                "model_type": "VisualEncoder",
                "image_size": 256,
                "hidden_size": 512,
                "use_augmentations": False,
                "use_augmentations_test_time": False,
                "freeze_batchnorm": True,
                "freeze_backbone": True,
                "global_pool": False,
                "use_cls": False,
            },
            "STATE_ENCODER": {"hidden_size": 2048, "rnn_type": "LSTM", "num_recurrent_layers": 2},
            "SEQ2SEQ": {"use_prev_action": True},
        },
        "TASK_CONFIG": {
            "SEED": seed,
            "ENVIRONMENT": {"MAX_EPISODE_STEPS": 500},
            "SIMULATOR": {
                "FORWARD_STEP_SIZE": 0.25,
                "TURN_ANGLE": 30,
                "TILT_ANGLE": 30,
                "ACTION_SPACE_CONFIG": "v1",
                "AGENT_0": {"SENSORS": ["RGB_SENSOR"], "HEIGHT": 0.88, "RADIUS": 0.18},
                "HABITAT_SIM_V0": {"GPU_DEVICE_ID": 0, "ALLOW_SLIDING": False},
                "RGB_SENSOR": {"WIDTH": 640, "HEIGHT": 480, "HFOV": 79, "POSITION": [0, 0.88, 0]},
            },
            "TASK": task,
            "DATASET": {
                "TYPE": "ObjectNav-v1" if evaluating else "ObjectNav-v2",
                "SPLIT": "val" if evaluating else "train",
                "DATA_PATH": (
                    "data/datasets/objectnav/hm3d/v1/{split}/{split}.json.gz"
                    if evaluating
                    else "data/datasets/objectnav/hm3d/objectnav_hm3d_77k/{split}/{split}.json.gz"
                ),
                "SCENES_DIR": "data/scene_datasets/",
                "MAX_EPISODE_STEPS": 500,
            },
        },
    }


def mobilepick_config(seed: int, run_dir: str, run_type: str = "train", protocol_block: dict | None = None) -> dict:
    """MobilePick (RL, VER) as overrides of the composed `benchmark/rearrange/pick` config (habitat-lab 0.2.3-era)."""
    sc = scale("mobilepick", protocol_block)
    evaluating = run_type == "eval"
    return {
        "habitat": {
            "seed": seed,
            "gym": {
                "obs_keys": [
                    "robot_head_rgb",
                    "frozen_obj_start_sensor",
                    "joint",
                    "is_holding",
                    "relative_resting_position",
                ]
            },
            "environment": {"max_episode_steps": 350},
            "task": {
                "spawn_max_dists_to_obj": 2.0,
                "base_angle_noise": 0.75,
                "base_noise": 0.25,
                "measurements": {
                    "force_terminate": {"max_accum_force": 5000.0},
                    "pick_reward": {
                        "type": "RearrangePickReward",
                        "dist_reward": 2.0,
                        "pick_reward": 4.0,
                        "drop_pen": 1.0,
                        "wrong_pick_pen": 2.0,
                        "use_diff": True,
                        "drop_obj_should_end": True,
                        "wrong_pick_should_end": True,
                        "constraint_violate_pen": 1.0,
                        "force_pen": 0.0001,
                        "max_force_pen": 1.0,
                        "force_end_pen": 2.0,
                    },
                },
                "lab_sensors": {
                    "frozen_target_start_sensor": {"type": "FrozenTargetStartSensor"},
                    "joint_sensor": {"type": "JointSensor"},
                    "is_holding_sensor": {"type": "IsHoldingSensor"},
                    "relative_resting_pos_sensor": {"type": "RelativeRestingPositionSensor"},
                },
            },
        },
        "habitat_baselines": {
            **_run_paths(run_dir, upper=False),
            "writer_type": "tb",  # the reference logs to W&B ('wb'); the harness reads its own records
            "load_resume_state_config": True,
            "verbose": False,
            "trainer_name": "ver",
            "torch_gpu_id": 0,
            "video_fps": 30,
            "test_episode_count": sc["test_episodes"],
            "num_environments": sc["eval_environments"] if evaluating else sc["num_environments"],
            "num_updates": -1,
            "total_num_steps": float(sc["total_steps"]),
            "log_interval": 10,
            "num_checkpoints": sc["num_checkpoints"],
            "force_torch_single_threaded": True,
            "eval_keys_to_include_in_name": ["reward", "force", "success"],
            "eval": {"video_option": []},
            "rl": {
                "policy": {
                    "name": CORTEXBENCH_POLICY,
                    "action_distribution_type": "gaussian",
                    "action_dist": {"use_log_std": True, "clamp_std": True, "std_init": -1.0, "use_std_param": True},
                    "input_image_size": 128,
                    "rnn_type": "GRU",
                    "hidden_size": 768,
                    "num_recurrent_layers": 2,
                    "use_augmentations": True,
                    "use_augmentations_test_time": True,
                    "freeze_backbone": True,
                    "global_pool": False,
                    "use_cls": False,
                },
                "ppo": dict(MOBILEPICK_PPO),
                "ddppo": {"sync_frac": 0.6, "distrib_backend": "NCCL"},
            },
        },
    }


BUILDERS = {"imagenav": imagenav_config, "objectnav": objectnav_config, "mobilepick": mobilepick_config}


def habitat_config(
    suite: str, seed: int, run_dir: str, run_type: str = "train", protocol_block: dict | None = None
) -> dict:
    """The upstream config for one cell of `suite` (imagenav | objectnav | mobilepick); a fresh dict."""
    if suite not in BUILDERS:
        raise ValueError(f"no Habitat config for suite {suite!r}; choose one of {sorted(BUILDERS)}")
    if run_type not in ("train", "eval"):
        raise ValueError(f"run_type must be 'train' or 'eval', got {run_type!r}")
    return copy.deepcopy(BUILDERS[suite](seed, run_dir, run_type, protocol_block))


def key_paths(config: dict, prefix: str = "") -> list[str]:
    """Every key of a nested config as a dotted path (parents included), e.g. `RL.PPO.lr`."""
    out = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        out.append(path)
        if isinstance(value, dict):
            out += key_paths(value, path + ".")
    return out
