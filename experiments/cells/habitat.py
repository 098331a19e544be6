"""One Habitat cell (ImageNav, ObjectNav, MobilePick), run inside a Habitat environment (`nox -s eval-habitat`):
translate the config, put the harness's frozen encoder into CortexBench's policy and register it with
habitat-baselines, train with the reference trainer, evaluate the checkpoints, write the record (the schema
of IL / RL records, with checkpoints in place of epochs).

NEVER RUN: habitat-sim cannot be installed on the machines this harness was developed on (reference/
feasibility.md section 6). This module is written against the APIs of the code CortexBench pins, read at:
habitat-lab v0.2.1 (`habitat_baselines.rl.ppo.{Net, Policy}`, `rl.models.rnn_state_encoder.build_rnn_state_encoder`,
`common.baseline_registry`, yacs `habitat.config.Config`), eai-vc @ e782c35 (`habitat_vc.config.get_config`,
the `mddppo` trainer in `habitat_vc/rl/ppo_trainer.py`, the `ddp-il-trainer` and `ILPolicy` /
`custom_baseline_registry` in `habitat_vc/il/objectnav/`, `run_habitat_vc.py`), and habitat-lab v0.2.3 for the
MobilePick stack (`habitat_baselines.rl.ppo.policy.{Net, NetPolicy}`, hydra config plugins, `get_config`,
eai-vc's `run_rearrangement_vc.py`). `tests/test_habitat.py` holds the tests that need habitat-sim
(marked `habitat`, skipped where it is missing).

How the pieces fit: `policies.habitat_policy.HabitatInputs` (frozen encoder, compression layer, goal/state
embeddings, previous action) feeds habitat-baselines' own recurrent state encoder and heads, wrapped in
the trainer's policy interface (`Policy` for DD-PPO, `ILPolicy` for the IL trainer, `NetPolicy` for VER), so
rollout storage, PPO/BC updates and VER's packed sequences are upstream code. Metrics: the trainers log
evaluation results to Weights & Biases (nav) or a tensorboard writer (rearrange); both are intercepted
here, one dict per evaluated checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path

import torch

from encoders.stats import entropy_record, token_norms
from experiments.cells import CellRun
from experiments.cells.habitat_config import CORTEXBENCH_POLICY, habitat_config
from policies.habitat_policy import HabitatInputs, policy_config
from tasks.habitat import data_root

SUCCESS_KEY = {"imagenav": "success", "objectnav": "success", "mobilepick": "pick_success"}
EVAL_EVERY = {"imagenav": 5, "objectnav": 1, "mobilepick": 1}  # the reference's EVAL_FREQ (every 5th checkpoint)
ENTROPY_FRAMES = 64  # feature-norm entropy: the first 64 RGB frames the policy sees (training rollouts)

_ENCODER = None  # the frozen encoder the registered policies are built on (trainers call from_config(config, ...))
_FRAMES: list[torch.Tensor] = []


# ---------------------------------------------------------------------------------------------------
# Policies in habitat-baselines' interfaces
# ---------------------------------------------------------------------------------------------------
def _inputs(suite: str, observation_space, action_space) -> HabitatInputs:
    """CortexBench's input network for `suite`, sized from the environment's spaces."""
    overrides = {}
    if suite == "objectnav":
        overrides["object_goal"] = int(observation_space.spaces["objectgoal"].high[0]) + 1
    if suite == "mobilepick":
        keys = [k for k, space in sorted(observation_space.spaces.items()) if len(space.shape) == 1]
        overrides["state_sensors"] = tuple((k, int(observation_space.spaces[k].shape[0])) for k in keys)
        overrides["n_actions"] = int(sum(int(torch.tensor(s.shape).prod()) for s in _leaf_spaces(action_space)))
    else:
        overrides["n_actions"] = int(action_space.n)
    return HabitatInputs(_ENCODER, policy_config(suite, **overrides))


def _leaf_spaces(space):
    if hasattr(space, "spaces") and isinstance(space.spaces, dict):
        for sub in space.spaces.values():
            yield from _leaf_spaces(sub)
    else:
        yield space


def _remember_frames(observations: dict, key: str) -> None:
    if len(_FRAMES) < ENTROPY_FRAMES and key in observations:
        _FRAMES.append(observations[key][: ENTROPY_FRAMES - len(_FRAMES)].detach().cpu())


def register_nav_policies() -> None:
    """Register CortexBench's ImageNav (RL) and ObjectNav (IL) policies on the harness's encoder (v0.2.1 API)."""
    from habitat_baselines.common.baseline_registry import baseline_registry
    from habitat_baselines.rl.models.rnn_state_encoder import build_rnn_state_encoder
    from habitat_baselines.rl.ppo import Net, Policy
    from habitat_vc.il.objectnav.custom_baseline_registry import custom_baseline_registry
    from habitat_vc.il.objectnav.policy import ILPolicy
    from habitat_vc.il.objectnav.rnn_state_encoder import RNNStateEncoder as ILStateEncoder

    class CortexBenchNavNet(Net):
        def __init__(self, suite, observation_space, action_space, hidden_size, rnn_type, layers, il: bool):
            super().__init__()
            self.inputs = _inputs(suite, observation_space, action_space)
            self.il = il
            if il:  # habitat_vc's IL state encoder keeps hidden states as [layers, N, H]
                self.state_encoder = ILStateEncoder(
                    self.inputs.output_size, hidden_size, num_layers=layers, rnn_type=rnn_type
                )
            else:
                self.state_encoder = build_rnn_state_encoder(
                    self.inputs.output_size, hidden_size, rnn_type=rnn_type, num_layers=layers
                )
            self._hidden_size = hidden_size

        @property
        def output_size(self):
            return self._hidden_size

        @property
        def is_blind(self):
            return False

        @property
        def num_recurrent_layers(self):
            return self.state_encoder.num_recurrent_layers

        def forward(self, observations, rnn_hidden_states, prev_actions, masks):
            _remember_frames(observations, self.inputs.cfg.rgb_key)
            x = self.inputs(observations, prev_actions, masks)
            return self.state_encoder(x, rnn_hidden_states, masks)

    class CortexBenchNavPolicy(Policy):  # ImageNav: DD-PPO
        def __init__(self, observation_space, action_space, hidden_size, rnn_type, layers):
            super().__init__(
                CortexBenchNavNet("imagenav", observation_space, action_space, hidden_size, rnn_type, layers, il=False),
                action_space.n,
            )

        @classmethod
        def from_config(cls, config, observation_space, action_space):
            p = config.RL.POLICY
            return cls(observation_space, action_space, p.hidden_size, p.rnn_type, p.num_recurrent_layers)

    class CortexBenchILPolicy(ILPolicy):  # ObjectNav: behaviour cloning
        def __init__(self, observation_space, action_space, hidden_size, rnn_type, layers):
            super().__init__(
                CortexBenchNavNet("objectnav", observation_space, action_space, hidden_size, rnn_type, layers, il=True),
                action_space.n,
            )

        @classmethod
        def from_config(cls, config, observation_space, action_space):
            s = config.MODEL.STATE_ENCODER
            return cls(observation_space, action_space, s.hidden_size, s.rnn_type, s.num_recurrent_layers)

    baseline_registry.register_policy(CortexBenchNavPolicy, name=CORTEXBENCH_POLICY)
    custom_baseline_registry.register_il_policy(CortexBenchILPolicy, name=CORTEXBENCH_POLICY)


def register_rearrange_policy() -> None:
    """Register CortexBench's MobilePick policy on the harness's encoder (habitat-baselines 0.2.3 API)."""
    from habitat_baselines.common.baseline_registry import baseline_registry
    from habitat_baselines.rl.models.rnn_state_encoder import build_rnn_state_encoder
    from habitat_baselines.rl.ppo.policy import Net, NetPolicy

    class CortexBenchRearrangeNet(Net):
        def __init__(self, observation_space, action_space, hidden_size, rnn_type, layers):
            super().__init__()
            self.inputs = _inputs("mobilepick", observation_space, action_space)
            self.state_encoder = build_rnn_state_encoder(
                self.inputs.output_size, hidden_size, rnn_type=rnn_type, num_layers=layers
            )
            self._hidden_size = hidden_size

        @property
        def output_size(self):
            return self._hidden_size

        @property
        def perception_embedding_size(self):
            return self._hidden_size

        @property
        def is_blind(self):
            return False

        @property
        def num_recurrent_layers(self):
            return self.state_encoder.num_recurrent_layers

        def forward(self, observations, rnn_hidden_states, prev_actions, masks, rnn_build_seq_info=None):
            _remember_frames(observations, self.inputs.cfg.rgb_key)
            x = self.inputs(observations, prev_actions, masks)
            out, hidden = self.state_encoder(x, rnn_hidden_states, masks, rnn_build_seq_info)
            return out, hidden, {"rnn_output": out}

    class CortexBenchRearrangePolicy(NetPolicy):
        @classmethod
        def from_config(cls, config, observation_space, action_space, **kwargs):
            p = config.habitat_baselines.rl.policy
            net = CortexBenchRearrangeNet(
                observation_space, action_space, p.hidden_size, p.rnn_type, p.num_recurrent_layers
            )
            return cls(net, action_space, policy_config=p, aux_loss_config=config.habitat_baselines.rl.auxiliary_losses)

    baseline_registry.register_policy(CortexBenchRearrangePolicy, name=CORTEXBENCH_POLICY)


# ---------------------------------------------------------------------------------------------------
# Upstream configs, trainers and metric capture
# ---------------------------------------------------------------------------------------------------
class MetricRecorder:
    """Stands in for `wandb` (nav trainers) and the tensorboard writer (rearrange): keeps evaluation metrics."""

    def __init__(self):
        self.logged: list[dict] = []

    def log(self, metrics: dict, step: int | None = None, **_) -> None:
        self.logged.append({"step": step, **{k: float(v) for k, v in metrics.items() if _is_number(v)}})

    def add_scalar(self, tag: str, value, step: int | None = None) -> None:
        self.log({tag: value}, step)

    def add_scalars(self, tag: str, values: dict, step: int | None = None) -> None:
        self.log({f"{tag}/{k}": v for k, v in values.items()}, step)

    def __getattr__(self, name):  # init, finish, add_video_from_np_images, ...: nothing to keep
        return lambda *args, **kwargs: None


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def nav_trainer(cfg: dict):
    """The eai-vc habitat_vc trainer for a nav config dict (merged onto `habitat_vc.config.get_config()`)."""
    from habitat.config import Config
    from habitat_baselines.common.baseline_registry import baseline_registry
    from habitat_vc.config import get_config

    config = get_config()
    config.defrost()
    config.merge_from_other_cfg(Config(cfg))
    config.freeze()
    return baseline_registry.get_trainer(config.TRAINER_NAME)(config)


def rearrange_trainer(cfg: dict, run_dir: Path):
    """The habitat-baselines trainer for a MobilePick override dict, composed as eai-vc's habitat2_vc config."""
    import yaml
    from habitat.config.default_structured_configs import HabitatConfigPlugin, register_hydra_plugin
    from habitat_baselines.common.baseline_registry import baseline_registry
    from habitat_baselines.config.default import get_config
    from habitat_baselines.config.default_structured_configs import HabitatBaselinesConfigPlugin

    register_hydra_plugin(HabitatBaselinesConfigPlugin)
    register_hydra_plugin(HabitatConfigPlugin)
    defaults = [
        "/habitat_baselines: habitat_baselines_rl_config_base",
        "/benchmark/rearrange: pick",
        "override /habitat/simulator/agents@habitat.simulator.agents.main_agent: rgb_head_agent",
        "_self_",
    ]
    file = run_dir / "mobilepick.yaml"
    file.write_text("# @package _global_\n" + yaml.safe_dump({"defaults": defaults, **cfg}, sort_keys=False))
    config = get_config(str(file))
    from omegaconf import open_dict

    with open_dict(config):
        config.habitat.simulator.agents_order = list(config.habitat.simulator.agents.keys())
    return baseline_registry.get_trainer(config.habitat_baselines.trainer_name)(config)


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(index, path) of `ckpt.<index>.pth` files, in index order."""
    found = [
        (int(m.group(1)), p) for p in folder.glob("ckpt.*.pth") if (m := re.fullmatch(r"ckpt\.(\d+)\.pth", p.name))
    ]
    return sorted(found)


def evaluated(indices: list[int], every: int) -> list[int]:
    """The checkpoints the reference evaluates: every `every`-th (1-based), and always the last."""
    picked = [i for n, i in enumerate(indices, start=1) if n % every == 0]
    return picked + ([indices[-1]] if indices and indices[-1] not in picked else [])


@contextlib.contextmanager
def working_directory(path: Path):
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def forget_encoder() -> None:
    global _ENCODER
    _ENCODER = None


def train_and_evaluate(run: CellRun) -> None:
    """Train and evaluate one Habitat cell with habitat-baselines; fills `run.record`."""
    global _ENCODER
    s, encoder, task, record = run.settings, run.encoder, run.task, run.record
    suite = task.suite
    record["protocol"]["headline"] = "best"
    del record["provenance"]["render"]  # habitat-sim renders inside habitat-lab, with its own settings
    record["provenance"]["habitat_data"] = str(data_root())
    task.require_simulator()
    run_dir = (Path(s.results_dir) / "habitat" / s.protocol / run.label / s.task / f"seed={s.seed}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    link = run_dir / "data"  # the reference's relative `data/...` paths resolve through this link
    if not link.exists():
        link.symlink_to(data_root().resolve(), target_is_directory=True)
    block = ((record["provenance"]["config"] or {}).get("protocol") or {}).get("habitat")
    train_cfg = habitat_config(suite, s.seed, str(run_dir), "train", block)
    eval_cfg = habitat_config(suite, s.seed, str(run_dir), "eval", block)
    record["habitat_config"] = {"train": train_cfg, "eval": eval_cfg}
    record["policy"]["hyperparameters"] = {"config": str(policy_config(suite)), "trainer": task.trainer}
    os.environ.setdefault("WANDB_MODE", "disabled")
    _ENCODER = encoder
    run.resources.callback(forget_encoder)
    _FRAMES.clear()
    recorder = MetricRecorder()

    with working_directory(run_dir):
        if task.stack == "nav":
            register_nav_policies()
            import habitat_vc.utils

            for module_name in ("habitat_vc.rl.ppo_trainer", "habitat_vc.il.objectnav.il_ddp_trainer",
                                "habitat_vc.il.objectnav.il_trainer"):  # fmt: skip
                __import__(module_name)
                sys.modules[module_name].wandb = recorder
            habitat_vc.utils.wandb = recorder
            with run.timed("train"):
                nav_trainer(train_cfg).train()
            trainer = nav_trainer(eval_cfg)
            folder = Path(eval_cfg["EVAL_CKPT_PATH_DIR"])
        else:
            register_rearrange_policy()
            with run.timed("train"):
                rearrange_trainer(train_cfg, run_dir).train()
            trainer = rearrange_trainer(eval_cfg, run_dir)
            folder = Path(eval_cfg["habitat_baselines"]["eval_ckpt_path_dir"])

        found = dict(checkpoints(folder))
        if not found:
            raise RuntimeError(f"training wrote no checkpoint into {folder}")
        evaluations = []
        for index in evaluated(sorted(found), EVAL_EVERY[suite]):
            before = len(recorder.logged)
            with run.timed("eval"):
                if task.stack == "nav":
                    trainer._eval_checkpoint(str(found[index]), checkpoint_index=index)
                else:
                    trainer._eval_checkpoint(str(found[index]), recorder, checkpoint_index=index)
            metrics = {k: v for row in recorder.logged[before:] for k, v in row.items() if k != "step"}
            success = next((v for k, v in metrics.items() if k.split("/")[-1] == SUCCESS_KEY[suite]), None)
            if success is None:
                raise RuntimeError(
                    f"no '{SUCCESS_KEY[suite]}' metric in the evaluation of checkpoint {index}: {sorted(metrics)}"
                )
            evaluations.append((index, 100.0 * success, metrics))

    best = max(evaluations, key=lambda e: e[1])
    record["scores"] = {
        "metric": task.metric,
        "headline": "best",  # the max over evaluated checkpoints (habitat2_vc analysis/retrieve_results.py)
        "unit": "checkpoint",
        "final": evaluations[-1][1],
        "best": best[1],
        "best_epoch": best[0],
        "final_epoch": evaluations[-1][0],
        "per_eval": [[i, v] for i, v, _ in evaluations],
        "metrics": {str(i): m for i, _, m in evaluations},
        "train_loss": [],
    }
    meta = Path(eval_cfg.get("EVAL", {}).get("meta_file", "")) if task.stack == "nav" else None
    record["episodes"] = (
        {"final": json.loads(meta.read_text())}
        if meta and meta.is_file()
        else {"note": "per-episode results are not exported by this trainer; see scores.metrics"}
    )
    if _FRAMES:
        frames = torch.cat(_FRAMES)[:ENTROPY_FRAMES].to(torch.uint8).numpy()
        norms = token_norms(encoder.encode(frames).tokens.numpy())
        record["feature_norm_entropy"] = entropy_record(norms, s.entropy_bins) | {
            "frames": f"the first {len(frames)} RGB frames the policy saw (training rollouts)"
        }
