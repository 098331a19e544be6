"""TriFinger's protocol as data: the task specs, the physical constants they rest on, and the scaled-success
formulas of the metric (pure functions of positions in metres; see the package docstring for sources)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.spec import TaskSpec

SIM_TIME_STEP = 0.004  # s (eai-vc sim_nn.Task.sim_time_step)
POLICY_STEP = 0.4  # s (demo json `downsample_time_step`)
SIM_STEPS_PER_ACTION = 100  # round(POLICY_STEP / SIM_TIME_STEP)
CAMERA_PERIOD = 25  # physics steps between camera frames (10 Hz); the policy's frame is this much older
SCALE = 100.0  # demos and policy work in cm (demo json `scale`)
CUBE_WIDTH = 0.065  # m (trifinger_simulation move_cube._CUBE_WIDTH)
TIP_RADIUS = 0.0095  # m, radius of the fingertip sphere of the edu lower link
Q_REACH = np.array([-0.08, 1.15, -1.5] * 3)  # CubeReachEnv.q_nominal
Q_MOVE = np.array([-0.0809731, 1.1499023, -1.50172085, -0.08046894, 1.14986721, -1.50067745, -0.07987084, 1.14964149, -1.50124104])  # fmt: skip  # MoveCubeEnv
INSTALL = "pip install 'cortexbench-harness[trifinger]'  (trifinger-simulation==2.0.0: pybullet, pinocchio)"


@dataclass(frozen=True)
class TriFingerTaskSpec(TaskSpec):
    """A TriFinger task: the TaskSpec fields plus what its own training loop needs (protocol as data)."""

    fingers: int = 3  # fingers the policy moves (the action is 3 x fingers cm)
    max_action: float = 8.0  # cm, clip of every action component
    goal_image: bool = False  # policy input includes the embedding of the demo's last frame
    fix_cube: bool = False
    epochs: int = 100  # eai-vc task.n_outer_iter
    eval_every: int = 5  # eai-vc task.n_epoch_every_log
    demo_folder: str = "reach"  # folder in trifinger-demos/
    initial_joints: tuple[float, ...] = tuple(Q_REACH)


def _task(short: str, **fields) -> TriFingerTaskSpec:
    return TriFingerTaskSpec(
        name=f"trifinger-{short}",
        suite="trifinger",
        version=1,
        adapter="tasks.trifinger",
        camera="camera60",
        render_size=270,
        proprio_dim=9,
        proprio_key="ft_pos_cur",
        n_demos=100,
        eval_episodes=25,
        metric="scaled_success",
        requires=("trifinger_simulation", "pybullet", "pinocchio"),
        install_hint=INSTALL,
        history=1,
        fusion="concat",
        action_repeat=SIM_STEPS_PER_ACTION,
        **fields,
    )


REACH_CUBE = _task(
    "reach-cube",
    env_id="CubeReachEnv",
    upstream_env_id="reach_cube",
    horizon=5,
    action_dim=3,
    official_demo_file="trifinger-demos/reach",
    fingers=1,
    max_action=5.0,
    goal_image=False,
    fix_cube=True,
    epochs=100,
    eval_every=5,
    demo_folder="reach",
    initial_joints=tuple(Q_REACH),
    notes="finger 0 reaches the fixed cube; 5 policy steps of 0.4 s",
)
MOVE_CUBE = _task(
    "move-cube",
    env_id="MoveCubeEnv",
    upstream_env_id="move_cube",
    horizon=10,
    action_dim=9,
    official_demo_file="trifinger-demos/move",
    fingers=3,
    max_action=8.0,
    goal_image=True,
    fix_cube=False,
    epochs=1000,
    eval_every=25,
    demo_folder="move",
    initial_joints=tuple(Q_MOVE),
    notes="three fingers push the cube to the goal shown in the goal image; 10 policy steps of 0.4 s",
)
TASKS = (REACH_CUBE, MOVE_CUBE)


def reach_scaled_success(ft0: np.ndarray, ft0_initial: np.ndarray, cube: np.ndarray) -> float:
    """1 - min(1, max(|ft0 - cube| - w/2, 0) / (|ft0_init - cube| - w/2)), clipped at 0 (eai-vc get_reach_scaled_err)."""
    half = CUBE_WIDTH / 2
    now = max(float(np.linalg.norm(ft0 - cube)) - half, 0.0)
    start = float(np.linalg.norm(ft0_initial - cube)) - half
    if start <= 0:  # started touching the cube: the reference divides by the centre distance instead
        start = float(np.linalg.norm(ft0_initial - cube))
    return max(0.0, 1.0 - min(1.0, now / start))


def move_scaled_success(cube: np.ndarray, cube_initial: np.ndarray, goal: np.ndarray) -> float:
    """1 - |cube - goal| / |cube_init - goal|, clipped at 0 (eai-vc gym_cube_env.get_success)."""
    return max(0.0, 1.0 - float(np.linalg.norm(cube - goal)) / float(np.linalg.norm(cube_initial - goal)))
