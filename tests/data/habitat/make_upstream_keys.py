"""Regenerate `upstream_config_keys.json`: every config key path habitat-lab / habitat-baselines and eai-vc
define for the two Habitat stacks, read from git clones (nothing of theirs is copied into this repository).

    python tests/data/habitat/make_upstream_keys.py --habitat-lab <clone of facebookresearch/habitat-lab> \
        --eai-vc <clone of facebookresearch/eai-vc> > tests/data/habitat/upstream_config_keys.json

Needs `yacs`, `pyyaml` and `hydra-core` (1.3) in the running Python; a throwaway venv is enough.
- nav stack: habitat-lab v0.2.1 `habitat/config/default.py` and `habitat_baselines/config/default.py`, evaluated
  with yacs, then eai-vc's `habitat_vc/config.py` on top (its `_CONFIG` / `_TASK_CONFIG`), plus the keys set by
  eai-vc's `cortexbench/habitat_vc/configs/**/*.yaml` (habitat's yacs Config accepts new keys).
- rearrange stack: habitat-lab v0.2.3 structured configs (`HabitatConfig`, `HabitatBaselinesRLConfig`); a
  `Dict[str, <config>]` node (measurements, lab_sensors, actions, agents) is `<path>.*` followed by the fields
  of every config class of that kind; plus the fields the mathfac/habitat-lab fork adds to PolicyConfig /
  PPOConfig (its default_structured_configs.py @ 73efe05) and the keys of eai-vc's habitat2_vc configs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import subprocess
import sys
import tempfile
import typing
from pathlib import Path

EAI_VC_COMMIT = "e782c3551e288403f925f6022d37984349aa0102"
FORK_POLICY_FIELDS = ("input_image_size", "rnn_type", "hidden_size", "num_recurrent_layers", "use_augmentations",
                      "use_augmentations_test_time", "freeze_backbone", "global_pool", "use_cls")  # fmt: skip
FORK_PPO_FIELDS = ("use_adamw", "encoder_lr", "wd")


def git_show(repo: Path, rev: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{rev}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def git_ls(repo: Path, rev: str, prefix: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", rev, prefix], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return out.split()


def yacs_paths(node, prefix: str = "") -> list[str]:
    out = []
    for key, value in node.items():
        out.append(f"{prefix}{key}")
        if isinstance(value, dict):
            out += yacs_paths(value, f"{prefix}{key}.")
    return out


def yaml_paths(tree, prefix: str = "") -> list[str]:
    out = []
    for key, value in (tree or {}).items():
        if key in ("defaults", "hydra"):
            continue
        out.append(f"{prefix}{key}")
        if isinstance(value, dict):
            out += yaml_paths(value, f"{prefix}{key}.")
    return out


def load_module(name: str, path: Path):
    """Load a structured-config file written for Python <= 3.10 (dataclass instances as field defaults)."""
    real = dataclasses.dataclass

    def hashable(cls=None, **kwargs):
        return (
            real(cls, unsafe_hash=True, **kwargs)
            if cls is not None
            else (lambda c: real(c, unsafe_hash=True, **kwargs))
        )

    dataclasses.dataclass = hashable
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        dataclasses.dataclass = real


def dataclass_paths(cls, prefix: str, module) -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        out.append(path)
        kind = hints.get(f.name)
        if dataclasses.is_dataclass(kind):
            out += dataclass_paths(kind, path + ".", module)
        args = typing.get_args(kind)
        if typing.get_origin(kind) is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
            members = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, args[1])]
            out += [f"{path}.*"] + [
                f"{path}.*.{g}" for g in sorted({g.name for c in members for g in dataclasses.fields(c)})
            ]
    return out


def main() -> None:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--habitat-lab", type=Path, required=True)
    parser.add_argument("--eai-vc", type=Path, required=True)
    args = parser.parse_args()
    lab, eai = args.habitat_lab, args.eai_vc

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        files = {
            "habitat/config/default.py": git_show(lab, "v0.2.1", "habitat/config/default.py"),
            "habitat_baselines/config/default.py": git_show(lab, "v0.2.1", "habitat_baselines/config/default.py"),
            "habitat_vc/config.py": git_show(eai, EAI_VC_COMMIT, "cortexbench/habitat_vc/habitat_vc/config.py"),
            "habitat/config/__init__.py": "from habitat.config.default import Config, get_config\n",
            "habitat/__init__.py": "from habitat.config.default import get_config\n",
            "habitat_baselines/__init__.py": "",
            "habitat_baselines/config/__init__.py": "",
            "habitat_vc/__init__.py": "",
            "lab023.py": git_show(lab, "v0.2.3", "habitat-lab/habitat/config/default_structured_configs.py"),
            "base023.py": git_show(
                lab, "v0.2.3", "habitat-baselines/habitat_baselines/config/default_structured_configs.py"
            ),
        }
        for name, text in files.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_text(text)
        sys.path.insert(0, str(src))
        import habitat_vc.config as vc

        trainer, task = set(yacs_paths(vc._CONFIG)), set(yacs_paths(vc._TASK_CONFIG))
        for path in git_ls(eai, EAI_VC_COMMIT, "cortexbench/habitat_vc/configs"):
            folder = path.rsplit("/", 1)[0]
            if path.endswith(".yaml") and folder.endswith(("configs", "configs/experiments", "configs/tasks")):
                for key in yaml_paths(yaml.safe_load(git_show(eai, EAI_VC_COMMIT, path))):
                    if key.startswith("TASK_CONFIG."):
                        task.add(key[len("TASK_CONFIG.") :])
                    elif key != "TASK_CONFIG":
                        trainer.add(key)
        trainer.discard("TASK_CONFIG")

        habitat_lab, baselines = load_module("lab023", src / "lab023.py"), load_module("base023", src / "base023.py")
        rearrange = {"habitat", "habitat_baselines"}
        rearrange |= set(dataclass_paths(habitat_lab.HabitatConfig, "habitat.", habitat_lab))
        rearrange |= set(dataclass_paths(baselines.HabitatBaselinesRLConfig, "habitat_baselines.", baselines))
        for name in ("experiments/rl_skill.yaml", "tasks/pick.yaml", "tasks/sensors/fixed_goal_sensor.yaml"):
            rearrange |= set(
                yaml_paths(yaml.safe_load(git_show(eai, EAI_VC_COMMIT, f"cortexbench/habitat2_vc/configs/{name}")))
            )
        rearrange |= {f"habitat_baselines.rl.policy.{k}" for k in FORK_POLICY_FIELDS}
        rearrange |= {f"habitat_baselines.rl.ppo.{k}" for k in FORK_PPO_FIELDS}

    json.dump(
        {
            "_sources": {
                "nav_trainer": "habitat-lab v0.2.1 habitat_baselines/config/default.py + eai-vc@e782c35 cortexbench/habitat_vc/habitat_vc/config.py (_CONFIG) + the keys of eai-vc's habitat_vc configs/*.yaml",
                "nav_task": "habitat-lab v0.2.1 habitat/config/default.py + eai-vc@e782c35 habitat_vc/config.py (_TASK_CONFIG) + TASK_CONFIG keys of eai-vc's habitat_vc configs/*.yaml",
                "rearrange": "habitat-lab v0.2.3 habitat-lab/habitat/config/default_structured_configs.py and habitat-baselines/habitat_baselines/config/default_structured_configs.py (HabitatConfig, HabitatBaselinesRLConfig; '*' = any key of a Dict[str, <config>] node, followed by the fields of its config classes) + mathfac/habitat-lab@73efe05 PolicyConfig/PPOConfig additions + the keys of eai-vc@e782c35 cortexbench/habitat2_vc configs (experiments/rl_skill.yaml, tasks/pick.yaml, tasks/sensors/fixed_goal_sensor.yaml)",
                "generated_by": "tests/data/habitat/make_upstream_keys.py (reads those files; nothing of them is copied)",
            },
            "nav_trainer": sorted(trainer),
            "nav_task": sorted(task),
            "rearrange": sorted(rearrange),
        },
        sys.stdout,
        indent=1,
    )


if __name__ == "__main__":
    main()
