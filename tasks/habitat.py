"""Habitat suites of CortexBench: ImageNav (RL, DD-PPO), ObjectNav (IL on human demonstrations), MobilePick
(RL, VER), as the VC-1 reference code configures them (reference/cortexbench.md section 3; eai-vc @ e782c35
`cortexbench/habitat_vc`, `cortexbench/habitat2_vc`).

These tasks do not run through the harness's gymnasium loops: habitat-baselines trains and evaluates them
(`experiments/cells/habitat.py`, `nox -s eval-habitat`) with the harness's frozen encoder inside the
CortexBench policy (`policies/habitat_policy.py`) and configs translated by `experiments/cells/habitat_config.py`.
They need what cannot come from PyPI: habitat-sim (conda), the habitat-lab forks CortexBench pins, eai-vc's
task code, and the scene / episode datasets. A spec lists all of it; `nox -s list` shows what is missing and
every run that lacks something fails with the exact commands (`HabitatTaskSpec.require_simulator`).

Stacks (two environments, as in the reference):
- `nav` (ImageNav, ObjectNav): habitat-sim 0.2.1, habitat-lab + habitat-baselines v0.2.1 from the
  1heart/habitat-lab fork @ e95e875 (TensorFlow removed), eai-vc's `habitat_vc` (ImageNav sensors and
  rewards, the `mddppo` trainer, the ObjectNav IL trainer) and its `vc_models` (imported by `habitat_vc`).
- `rearrange` (MobilePick): habitat-sim with Bullet ("0.2.3-era": eai-vc's install takes the then-current
  `habitat-sim withbullet headless`), habitat-lab + habitat-baselines from mathfac/habitat-lab @ 9e5731b.

Python: CortexBench's environment is Python 3.8 (eai-vc environment.yml); this harness needs >= 3.10. The
aihabitat conda channel's release builds of habitat-sim are for Python <= 3.9 (0.3.3: py3.9 only; 0.2.1
likewise, not verified here), so the install below builds the pinned habitat-sim from source when conda has
no build for the environment's Python. None of this was run on the development machines (no conda, no GPU,
habitat-sim not installable: reference/feasibility.md section 6).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from tasks.spec import SimulatorMissingError, TaskSpec

EAI_VC = "https://github.com/facebookresearch/eai-vc"
EAI_VC_COMMIT = "e782c3551e288403f925f6022d37984349aa0102"


@dataclass(frozen=True)
class Stack:
    """One Habitat environment: simulator version, habitat-lab fork and commit, task code."""

    name: str
    habitat_sim: str  # version CortexBench used
    habitat_lab_repo: str
    habitat_lab_commit: str
    layout: str  # how the fork installs: "setup.py --all" (v0.2.1) or "two packages" (0.2.3-era)
    modules: tuple[str, ...]  # importable modules the stack needs


NAV = Stack(
    name="nav",
    habitat_sim="0.2.1",
    habitat_lab_repo="https://github.com/1heart/habitat-lab",
    habitat_lab_commit="e95e875",
    layout="setup.py --all",
    modules=("habitat_sim", "habitat", "habitat_baselines", "vc_models", "habitat_vc"),
)
REARRANGE = Stack(
    name="rearrange",
    habitat_sim="0.2.3",
    habitat_lab_repo="https://github.com/mathfac/habitat-lab",
    habitat_lab_commit="9e5731b",
    layout="two packages",
    modules=("habitat_sim", "habitat", "habitat_baselines"),
)
STACKS = {"nav": NAV, "rearrange": REARRANGE}


@dataclass(frozen=True)
class DataItem:
    """A file or folder under the Habitat data root, and how to get it."""

    path: str  # relative to the data root (the reference's `data/`)
    what: str
    how: str  # a command or a URL and where to unpack it


def data_root() -> Path:
    """Where the Habitat scenes and episodes live: $CORTEXBENCH_HABITAT_DATA, else $CORTEXBENCH_DATA/habitat."""
    from encoders.storage import habitat_data_root

    return habitat_data_root()


@dataclass(frozen=True)
class HabitatTaskSpec(TaskSpec):
    """A Habitat task: the TaskSpec fields plus its stack, training kind, data and evaluation split."""

    stack: str = "nav"
    training: str = "rl"  # rl | il
    trainer: str = ""  # the habitat-baselines trainer name
    data: tuple[DataItem, ...] = ()
    eval_split: str = "val"
    observations: tuple[tuple[str, tuple[int, ...]], ...] = ()  # sensor uuid -> shape the policy receives

    # --- availability: Python modules, then data (both count: `available()`, `nox -s list`) ----
    def missing_python_modules(self) -> list[str]:
        return super().missing_modules()

    def missing_modules(self) -> list[str]:
        """Missing modules, then missing data as `data:<path>` (what `nox -s list` shows)."""
        return self.missing_python_modules() + [f"data:{item.path}" for item in self.missing_data()]

    def version_problems(self) -> list[str]:
        """Installed habitat-sim of another version than CortexBench's (a warning, not a refusal)."""
        try:
            installed = importlib.metadata.version("habitat-sim")
        except importlib.metadata.PackageNotFoundError:
            return []
        wanted = STACKS[self.stack].habitat_sim
        return (
            [] if installed.startswith(wanted) else [f"habitat-sim {installed} is installed; CortexBench used {wanted}"]
        )

    def missing_data(self, root: Path | None = None) -> list[DataItem]:
        root = root or data_root()
        return [item for item in self.data if not (root / item.path).exists()]

    def require_simulator(self) -> None:
        missing, data = self.missing_python_modules(), self.missing_data()
        if missing or data:
            raise SimulatorMissingError(self.setup_message(missing, data))

    def setup_message(self, missing: list[str] | None = None, data: list[DataItem] | None = None) -> str:
        """What is missing for this task, and the exact commands that provide it."""
        missing = self.missing_python_modules() if missing is None else missing
        data = self.missing_data() if data is None else data
        lines = [f"task {self.name!r} cannot run here."]
        if missing:
            lines += [
                f"Missing Python modules: {', '.join(missing)}. Install the '{self.stack}' Habitat stack:",
                install_commands(self.stack),
            ]
        if data:
            lines.append(f"Missing data under {data_root()} (set CORTEXBENCH_HABITAT_DATA to move it):")
            root = str(data_root())
            lines += [f"  - {item.path}: {item.what}\n      {item.how.replace('<data root>', root)}" for item in data]
        lines.append(f"Then run it in that environment: nox -s eval-habitat -- encoder=<name> task={self.name}")
        return "\n".join(lines)

    # --- what the gymnasium loops would call ----------------------------------------------
    def suite_module(self):
        raise ValueError(
            f"{self.name} runs inside habitat-baselines' trainers, not the harness's gymnasium loops: "
            f"nox -s eval-habitat -- encoder=<name> task={self.name}"
        )

    def demos(self, n: int | None = None, source: str = "official", **kwargs):
        raise ValueError(
            f"{self.name}: Habitat episodes and demonstrations are read by habitat-lab from the datasets "
            f"under {data_root()} (see `nox -s list -- tasks`), not by tasks.demos"
        )


def install_commands(stack: str) -> str:
    """The commands that build one Habitat environment for this harness (conda + pip), as one block."""
    s = STACKS[stack]
    sim = (
        f"conda install -y habitat-sim={s.habitat_sim} headless -c conda-forge -c aihabitat"
        if stack == "nav"
        else f"conda install -y habitat-sim={s.habitat_sim} withbullet headless -c conda-forge -c aihabitat"
    )
    source_build = (
        f"git clone --branch v{s.habitat_sim} https://github.com/facebookresearch/habitat-sim && "
        f"cd habitat-sim && pip install -r requirements.txt && python setup.py install --headless"
        + (" --bullet" if stack == "rearrange" else "")
    )
    lab = (
        f"git clone {s.habitat_lab_repo} habitat-lab-{stack} && git -C habitat-lab-{stack} checkout {s.habitat_lab_commit}\n"
        + (
            f"    (cd habitat-lab-{stack} && pip install -r requirements.txt && python setup.py develop --all)"
            if s.layout == "setup.py --all"
            else f"    pip install -e habitat-lab-{stack}/habitat-lab -e habitat-lab-{stack}/habitat-baselines"
        )
    )
    eai_vc = (
        f"\n    git clone {EAI_VC} && git -C eai-vc checkout {EAI_VC_COMMIT[:7]}\n"
        f"    pip install --no-deps -e eai-vc/vc_models -e eai-vc/cortexbench/habitat_vc   "
        f"# task code (CC-BY-NC); --no-deps: vc_models pins timm==0.6.11"
        if stack == "nav"
        else ""
    )
    return (
        f"    conda create -n cortexbench-habitat-{stack} python=3.10 cmake=3.14.0 -y && conda activate cortexbench-habitat-{stack}\n"
        f"    {sim}\n"
        f"    #   if conda has no habitat-sim {s.habitat_sim} for Python 3.10, build it from source instead:\n"
        f"    #   {source_build}\n"
        f"    {lab}"
        f"{eai_vc}\n"
        f"    nox -s eval-habitat -- ...   # builds .nox/habitat-{stack} on this Python: pip install -e '.[habitat]' (numpy 1.26.4)"
    )


def _task(name: str, **fields) -> HabitatTaskSpec:
    # history 1 / concat: no frame stacking, the policy's RNN carries the memory
    defaults = dict(version=1, adapter="tasks.habitat", stack="nav", action_repeat=1, history=1, fusion="concat")
    return HabitatTaskSpec(name=name, **(defaults | fields))


GIBSON_SCENES = DataItem(
    "scene_datasets/gibson",
    "Gibson scenes (habitat format; the Gibson terms of use must be signed)",
    "https://github.com/facebookresearch/habitat-sim/blob/main/DATASETS.md#gibson-and-3dscenegraph-datasets "
    "-> unpack into <data root>/scene_datasets/gibson",
)
IMAGENAV_EPISODES = DataItem(
    "datasets/imagenav/gibson/v1",
    "ImageNav episodes, PointNav-v1 format, {train,val}/{split}.json.gz (the config's DATA_PATH)",
    "https://dl.fbaipublicfiles.com/habitat/data/datasets/pointnav/gibson/v1/pointnav_gibson_v1.zip "
    "-> unpack, then place its train/ and val/ under <data root>/datasets/imagenav/gibson/v1/ (eai-vc's README says "
    "datasets/pointnav/gibson/v1/, its config reads datasets/imagenav/gibson/v1/: the config wins). The ImageNav paper "
    "numbers imply ~4200 val episodes (Mezghani et al.'s imagenav split), more than pointnav_gibson_v1's val: "
    "reference/cortexbench.md 3.4",
)
HM3D_SCENES = DataItem(
    "scene_datasets/hm3d",
    "HM3D scenes (habitat format; Matterport's terms of use)",
    "python -m habitat_sim.utils.datasets_download --username <api-token-id> --password <api-token-secret> "
    "--uids hm3d_full --data-path <data root>   (https://github.com/facebookresearch/habitat-sim/blob/main/DATASETS.md)",
)
OBJECTNAV_DEMOS = DataItem(
    "datasets/objectnav/hm3d/objectnav_hm3d_77k",
    "Habitat-Web human demonstrations (77k episodes), train split",
    "https://habitat-on-web.s3.amazonaws.com/pirlnav_release/objectnav_hm3d_hd.zip "
    "-> unpack its contents into <data root>/datasets/objectnav/hm3d/objectnav_hm3d_77k/",
)
OBJECTNAV_VAL = DataItem(
    "datasets/objectnav/hm3d/v1",
    "ObjectNav HM3D v1 episodes, val split (2000 episodes)",
    "https://dl.fbaipublicfiles.com/habitat/data/datasets/objectnav/hm3d/v1/objectnav_hm3d_v1.zip "
    "-> unpack into <data root>/datasets/objectnav/hm3d/v1/ (eai-vc's eval config reads hm3d/v3/val/val.json.gz; "
    "its README says v1: we read v1)",
)
REARRANGE_ASSETS = DataItem(
    "replica_cad",
    "ReplicaCAD scenes + rearrange task assets (YCB objects, Fetch robot, rearrange episodes)",
    "python -m habitat_sim.utils.datasets_download --uids rearrange_task_assets --data-path <data root>",
)
PHYSICS_CONFIG = DataItem(
    "default.physics_config.json",
    "Bullet physics settings",
    "curl -o <data root>/default.physics_config.json "
    "https://raw.githubusercontent.com/facebookresearch/habitat-sim/main/data/default.physics_config.json",
)

IMAGENAV = _task(
    "imagenav-gibson",
    suite="imagenav",
    env_id="Nav-v0 + ImageGoalRotationSensor (habitat_vc), PointNav-v1 episodes on Gibson",
    upstream_env_id="eai-vc cortexbench/habitat_vc configs/config_imagenav.yaml",
    camera="rgb 128x128 (hfov 90)",
    render_size=128,
    horizon=1000,
    action_dim=4,  # STOP, MOVE_FORWARD 0.25 m, TURN_LEFT / TURN_RIGHT 30 deg
    proprio_dim=0,
    n_demos=0,
    eval_episodes=-1,  # TEST_EPISODE_COUNT -1: every episode of the val split
    metric="success_last_step",  # habitat's `success` measure at the episode end (1.0 m), in %
    official_demo_file="",
    requires=NAV.modules,
    install_hint=f"nox -s eval-habitat (conda habitat-sim {NAV.habitat_sim}, {NAV.habitat_lab_repo}@{NAV.habitat_lab_commit}, eai-vc habitat_vc; Gibson + imagenav episodes): README 'Habitat'",
    training="rl",
    trainer="mddppo",
    data=(GIBSON_SCENES, IMAGENAV_EPISODES),
    observations=(("rgb", (128, 128, 3)), ("imagegoalrotation", (128, 128, 3))),
    seeds=(100, 200, 300),
    notes="RL with DD-PPO, 500M steps on 32 GPUs x 10 envs in the reference; success distance 1.0 m",
)
OBJECTNAV = _task(
    "objectnav-hm3d",
    suite="objectnav",
    env_id="ObjectNav-v2 (train, with demonstration + inflection-weight sensors) / ObjectNav-v1 (val) on HM3D",
    upstream_env_id="eai-vc cortexbench/habitat_vc configs/config_objectnav_il_frozen.yaml",
    camera="rgb 640x480 (hfov 79, height 0.88 m), resized to 256 for the encoder",
    render_size=480,
    horizon=500,
    action_dim=6,  # STOP, MOVE_FORWARD, TURN_LEFT, TURN_RIGHT, LOOK_UP, LOOK_DOWN
    proprio_dim=3,  # GPS (2) + compass (1); plus the object category
    n_demos=77_000,
    eval_episodes=2000,
    metric="success_last_step",  # habitat's `success` at the episode end (0.1 m to a view point), in %
    official_demo_file="objectnav_hm3d_hd.zip",
    requires=NAV.modules,
    install_hint=f"nox -s eval-habitat (conda habitat-sim {NAV.habitat_sim}, {NAV.habitat_lab_repo}@{NAV.habitat_lab_commit}, eai-vc habitat_vc; HM3D + Habitat-Web demos): README 'Habitat'",
    training="il",
    trainer="ddp-il-trainer",
    data=(HM3D_SCENES, OBJECTNAV_DEMOS, OBJECTNAV_VAL),
    observations=(("rgb", (480, 640, 3)), ("objectgoal", (1,)), ("compass", (1,)), ("gps", (2,))),
    notes="IL (inflection-weighted BC) on 77k human demos, 512 envs on 32 GPUs in the reference (1 GPU: SR ~0, eai-vc #13)",
)
MOBILEPICK = _task(
    "mobilepick-replicacad",
    stack="rearrange",
    suite="mobilepick",
    env_id="RearrangePickTask-v0 (benchmark/rearrange/pick), Fetch with rgb_head_agent, on ReplicaCAD",
    upstream_env_id="eai-vc cortexbench/habitat2_vc configs/config.yaml",
    camera="robot_head_rgb 256x256 (habitat-lab 0.2.3 default; eai-vc does not override it), resized to 128",
    render_size=256,
    horizon=350,
    action_dim=10,  # arm joint deltas (7) + suction grip (1) + base velocity (2)
    proprio_dim=14,  # frozen_obj_start_sensor 3, is_holding 1, joint 7, relative_resting_position 3
    n_demos=0,
    eval_episodes=500,  # test_episode_count
    metric="success_last_step",  # pick success at the episode end, in %
    official_demo_file="",
    requires=REARRANGE.modules,
    install_hint=f"nox -s eval-habitat (conda habitat-sim {REARRANGE.habitat_sim} withbullet, {REARRANGE.habitat_lab_repo}@{REARRANGE.habitat_lab_commit}; ReplicaCAD rearrange assets): README 'Habitat'",
    training="rl",
    trainer="ver",
    data=(REARRANGE_ASSETS, PHYSICS_CONFIG),
    observations=(
        ("robot_head_rgb", (256, 256, 3)),
        ("frozen_obj_start_sensor", (3,)),
        ("is_holding", (1,)),
        ("joint", (7,)),
        ("relative_resting_position", (3,)),
    ),
    notes="RL with VER, 500M steps on 64 GPUs x 6 envs in the reference; headline = max over checkpoints",
)
TASKS = (IMAGENAV, OBJECTNAV, MOBILEPICK)


def make_env(spec: TaskSpec, **kwargs):
    spec.suite_module()  # raises: Habitat tasks have no gymnasium env here


if __name__ == "__main__":  # `python -m tasks.habitat [task ...]`: what each Habitat task lacks here, and how to get it
    import sys

    names = sys.argv[1:] or [t.name for t in TASKS]
    problems = 0
    for task in (t for t in TASKS if t.name in names):
        missing, data = task.missing_python_modules(), task.missing_data()
        print(f"# {task.name}: {'ready' if not (missing or data) else 'missing'}")
        for warning in task.version_problems():
            print(f"  warning: {warning}")
        if missing or data:
            problems += 1
            print(task.setup_message(missing, data))
    sys.exit(1 if problems else 0)
