"""TriFinger suite: CortexBench's Reach-Cube and Move-Cube on trifinger_simulation 2.0.0 (pybullet).

Facts (reference/cortexbench.md section 2; eai-vc @ e782c35 `cortexbench/trifinger_vc`:
`trifinger_envs/{cube_reach,gym_cube_env}.py`, `utils/{sim_nn,data_utils,dataset}.py`,
`control/impedance_controller.py`, `config/task/{reach,move}_cube.yaml`, the demo split jsons; the
simulator fork ClaireLC/trifinger_simulation @ b3629c6):

- physics step 0.004 s; one policy step is 0.4 s = 100 physics steps; Reach-Cube lasts 5 policy
  steps (500 physics steps), Move-Cube 10 (1000).
- an action is a change of the desired fingertip positions, in cm (the demos' `delta_ftpos`, scale
  100): finger 0 only for Reach (3-d), all three fingers for Move (9-d); it is clipped to +-max_a
  (5 cm Reach, 8 cm Move; eai-vc `DeterministicPolicy.clip_action`) and divided by 100. Within the
  step the desired positions move linearly from the current plan to plan + action, tracked by the
  impedance controller (`ImpedanceController`: Kp 300, Kv 5, position error capped at 1 cm per
  finger, gravity from pinocchio's RNEA), whose torques are clipped to +-0.397 Nm and then pass the
  simulator's own safety checks.
- the robot is the fork's `trifinger_meta` (`edu/trifingernyu.urdf`); its kinematics and
  dynamics are those of `trifingeredu` (the two URDFs differ only in visual elements), which is what
  we load. Its look is rebuilt: grey links, yellow fingertips, a black table and black containment
  (fork `sim_finger.py: __load_stage`, `trifinger_meta`). The fork's yellow tip mesh is not in
  robot_properties_fingers 2.0.2, so the tips are yellow spheres of the tip's radius (9.5 mm).
- the cube is trifinger_simulation's `cube_v2` (COLORED_CUBE, 65 mm, 94 g), fixed to the table for
  Reach (`fix_cube_base=True`), free for Move.
- observation: camera60 (`TriFingerCameras`' first camera, 270x270) and the fingertip positions in
  cm. The platform's cameras run at 10 Hz (every 25 physics steps, delay 0), so the frame the policy
  sees after a step shows the scene 25 physics steps (0.1 s) before the step's end, and the cube
  pose the platform reports (used by the Move metric) is read with that frame. We render only that
  frame (one camera, once per policy step) instead of every camera at 10 Hz.
- metric: scaled success at the final step. Reach: 1 - min(1, max(|ft0 - cube| - w/2, 0) /
  (|ft0_init - cube| - w/2)) (`data_utils.get_reach_scaled_err`); Move: 1 - |cube - goal| /
  |cube_init - goal| (`gym_cube_env.get_success`); both clipped at 0. The task score is the mean
  over the test demos x 100 (`tasks.metrics`: `scaled_success`).
- demos: `trifinger_demos.zip` -> `trifinger-demos/{reach,move}/demo-XXXX/dts-0p4/downsample.pth`
  (`torch.save`d dicts, positions in cm); 125 per task, train ids 0-99, test ids 100-124. An
  evaluation episode starts from a test demo's first robot joints and cube pose; Move's goal is the
  demo's final cube pose, its goal image the demo's last `image_60` frame (`sim_nn.Task.reset`).

Rendering (measured here, 270x270 camera60, Mesa llvmpipe): the reference renders with pybullet's
TinyRenderer (DIRECT mode, no plugin), ~75 ms a frame. pybullet's EGL plugin renders in ~25-45 ms,
but its pictures differ: lighting and shadows differ and the cube's texture comes out as green and
black bands. Render quality `faithful` therefore means TinyRenderer (the pixels of the official
demos); `fast` means the EGL plugin where it loads (TinyRenderer otherwise). The renderer that made
the frames is recorded in the demo fingerprint and the run record; demos and evaluation always use
the same one. Official demos keep their own `image_60` frames (TinyRenderer, camera60: what
`faithful` renders) rather than being re-rendered from their states: `robot_pos` is read 25 physics
steps after the frame was taken, so a re-render would show another robot pose than the image the
demonstrated action was chosen from.

Scripted experts (offline demos in the official layout): Reach moves fingertip 0 to the cube's
centre; Move cages the cube with the three fingertips and pushes it to the goal. Their demos start
from poses drawn like the fork's `sample_goal(difficulty=-1)` (uniform in a 9 cm disc, random face up
and yaw), seeded 10000 + demo id.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from encoders.storage import sha256_file
from tasks.spec import TaskSpec

SIM_TIME_STEP = 0.004  # s (eai-vc sim_nn.Task.sim_time_step)
POLICY_STEP = 0.4  # s (demo json `downsample_time_step`)
SIM_STEPS_PER_ACTION = 100  # round(POLICY_STEP / SIM_TIME_STEP)
CAMERA_PERIOD = 25  # physics steps between camera frames (10 Hz); the policy's frame is this much older
SCALE = 100.0  # demos and policy work in cm (demo json `scale`)
CUBE_WIDTH = 0.065  # m (trifinger_simulation move_cube._CUBE_WIDTH)
TIP_RADIUS = 0.0095  # m, radius of the fingertip sphere of the edu lower link
ARENA_SAMPLE_RADIUS = 0.09  # m, the fork's sample_goal(difficulty=-1) disc
MIN_MOVE_DISTANCE = 0.04  # m, scripted Move goals are at least this far from the start
MAX_TORQUE = 0.397  # Nm (trifingerpro_limits.robot_torque)
KP, KV, MAX_POSITION_ERROR = 300.0, 5.0, 0.01  # impedance controller (eai-vc ImpedanceController defaults)
Q_REACH = np.array([-0.08, 1.15, -1.5] * 3)  # CubeReachEnv.q_nominal
Q_MOVE = np.array([-0.0809731, 1.1499023, -1.50172085, -0.08046894, 1.14986721, -1.50067745, -0.07987084, 1.14964149, -1.50124104])  # fmt: skip  # MoveCubeEnv
TEST_ID_START = 100  # official split: train demo ids 0-99, test ids 100-124
SCRIPTED_SEED_BASE = 10_000
DEMO_FORMAT = 1  # bump when the scripted demo layout or collection changes
ARCHIVE_URL = "https://dl.fbaipublicfiles.com/eai-vc/trifinger_demos.zip"
DEMO_KEYS = (
    "t",
    "o_pos_cur",
    "o_pos_des",
    "o_ori_cur",
    "o_ori_des",
    "ft_pos_cur",
    "ft_pos_des",
    "ft_vel_cur",
    "ft_vel_des",
    "position_error",
    "robot_pos",
    "image_60",
    "image_180",
    "image_300",
    "ft_pos_targets_per_mode",
    "mode",
    "vertices",
    "delta_ftpos",
)  # README of eai-vc cortexbench/trifinger_vc
REQUIRED_KEYS = ("o_pos_cur", "o_ori_cur", "ft_pos_cur", "robot_pos", "image_60", "delta_ftpos")
QUALITY_RENDERER = {"faithful": "tiny", "fast": "egl"}
INSTALL = "pip install 'cortexbench-harness[trifinger]'  (trifinger-simulation==2.0.0: pybullet, pinocchio)"

# Colours of the fork's `trifinger_meta` robot and stage (RGBA).
_LINK_GREY = (0.6, 0.6, 0.6, 1.0)
_LOWER_LINK_GREY = (0.8, 0.8, 0.8, 1.0)
_TIP_YELLOW = (0.92, 0.84, 0.2, 1.0)
_TABLE = (0.13, 0.13, 0.13, 1.0)
_BORDER = (0.1, 0.1, 0.1, 1.0)


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

    def demos(self, n: int | None = None, source: str = "official", **kwargs):
        """Training demos (ids 0..n-1) as a `tasks.demos.DemoSet`; see `load_demos` for the test split."""
        return load_demos(self, split="train", n=n or self.n_demos, source=source, **kwargs)


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


# ----------------------------------------------------------------------------------------------
# Metrics (pure functions of positions in metres)
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# Simulator
# ----------------------------------------------------------------------------------------------
def _import_simulator():
    """trifinger_simulation (imports the old `gym`, whose deprecation notice we keep off the console)."""
    with contextlib.redirect_stderr(io.StringIO()):
        import trifinger_simulation
        from trifinger_simulation import camera, sim_finger
    return trifinger_simulation, camera, sim_finger


def egl_plugin_path() -> str | None:
    """pybullet's EGL renderer plugin, or None where it is not installed."""
    spec = importlib.util.find_spec("eglRenderer")
    return spec.origin if spec is not None else None


@functools.cache
def _finger_class(egl: bool):
    """SimFinger with the `trifinger_meta` stage, and the EGL plugin (if `egl` and it loads) before any model.

    The EGL plugin only draws what is loaded after it, so it must be loaded right after connecting;
    SimFinger loads its models inside __init__, hence the override of its (name-mangled) connect and
    stage-loading steps. Pinned to trifinger_simulation 2.0.0 (tests render the stage and check it).
    """
    import pybullet

    _, _, sim_finger = _import_simulator()

    class MetaFinger(sim_finger.SimFinger):
        wants_egl = egl
        renderer = "tiny"  # what draws this client's frames: "tiny" (TinyRenderer) or "egl"

        def _SimFinger__connect_to_pybullet(self, enable_visualization: bool) -> int:
            client = pybullet.connect(pybullet.DIRECT)
            self.renderer = "tiny"
            path = egl_plugin_path() if self.wants_egl else None
            if path and pybullet.loadPlugin(path, "_eglRendererPlugin", physicsClientId=client) >= 0:
                self.renderer = "egl"
            return client

        def _SimFinger__load_stage(self, high_border: bool = True) -> None:
            from trifinger_simulation import collision_objects

            self._table_id = collision_objects.Cuboid(  # removed from the world when garbage-collected
                position=(0, 0, -0.005),
                orientation=(0, 0, 0, 1),
                half_extents=(0.38, 0.38, 0.005),
                mass=0,
                color_rgba=_TABLE,
                pybullet_client_id=self._pybullet_client_id,
            )
            self._containment_id = collision_objects.import_mesh(
                str(Path(self.robot_properties_path) / "meshes" / "object_containment_sim.stl"),
                position=[0, 0, 0],
                is_concave=True,
                color_rgba=_BORDER,
                pybullet_client_id=self._pybullet_client_id,
            )

    return MetaFinger


class ImpedanceController:
    """Joint torques that track desired fingertip positions and velocities (eai-vc ImpedanceController).

    tau = J^T (Kv (dx_des - J dq) + Kp clip(x_des - x)) + g(q), the position error capped at 1 cm per
    finger, J the tips' linear Jacobians (LOCAL_WORLD_ALIGNED) and g pinocchio's RNEA at zero velocity.
    """

    def __init__(self, kinematics):
        import pinocchio

        self._pin = pinocchio
        self.model = kinematics.robot_model
        self.data = kinematics.robot_model.createData()
        self.tips = list(kinematics.tip_link_ids)

    def fingertips(self, q: np.ndarray) -> np.ndarray:
        """Fingertip positions [9] (m) for joint positions q."""
        self._pin.framesForwardKinematics(self.model, self.data, q)
        return np.concatenate([self.data.oMf[f].translation for f in self.tips])

    def jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fingertip positions [9], stacked linear Jacobians [9, 9]) at q."""
        pin = self._pin
        pin.computeJointJacobians(self.model, self.data, q)
        pin.framesForwardKinematics(self.model, self.data, q)
        frame = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
        jac = np.concatenate([pin.getFrameJacobian(self.model, self.data, f, frame)[:3] for f in self.tips])
        return np.concatenate([self.data.oMf[f].translation for f in self.tips]), jac

    def torque(self, x_des: np.ndarray, dx_des: np.ndarray, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        x, jac = self.jacobian(q)
        error = (x_des - x).reshape(3, 3)
        norms = np.linalg.norm(error, axis=1, keepdims=True)
        error = np.where(norms > MAX_POSITION_ERROR, error / np.maximum(norms, 1e-12) * MAX_POSITION_ERROR, error)
        force = KV * (dx_des - jac @ dq) + KP * error.reshape(9)
        gravity = self._pin.rnea(self.model, self.data, q, np.zeros_like(q), np.zeros_like(q))
        return jac.T @ force + gravity


def _face_up_rotations():
    from scipy.spatial.transform import Rotation

    return [
        Rotation.identity(),
        Rotation.from_euler("x", 90, degrees=True),
        Rotation.from_euler("x", 180, degrees=True),
        Rotation.from_euler("x", -90, degrees=True),
        Rotation.from_euler("y", 90, degrees=True),
        Rotation.from_euler("y", -90, degrees=True),
    ]


def sample_initial_state(spec: TriFingerTaskSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A start for a scripted demo: cube uniform in a 9 cm disc with a random face up and yaw (the fork's
    `move_cube.sample_goal(difficulty=-1)`); for Move a goal in the same disc at least 4 cm away."""
    from scipy.spatial.transform import Rotation

    def disc_point() -> np.ndarray:
        radius, angle = ARENA_SAMPLE_RADIUS * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        return np.array([radius * np.cos(angle), radius * np.sin(angle), CUBE_WIDTH / 2])

    def orientation() -> np.ndarray:
        up = _face_up_rotations()[int(rng.integers(6))]
        return (Rotation.from_euler("z", rng.uniform(0, 2 * np.pi)) * up).as_quat()

    cube = disc_point()
    state = {
        "robot_position": np.asarray(spec.initial_joints, dtype=np.float64),
        "cube_position": cube,
        "cube_orientation": orientation(),
    }
    if spec.fix_cube:  # Reach: the goal is the cube itself
        state["goal_position"], state["goal_orientation"] = cube.copy(), state["cube_orientation"].copy()
    else:
        goal = disc_point()
        while np.linalg.norm(goal[:2] - cube[:2]) < MIN_MOVE_DISTANCE:
            goal = disc_point()
        state["goal_position"], state["goal_orientation"] = goal, orientation()
    return state


class TriFingerCubeEnv(gym.Env):
    """Reach-Cube / Move-Cube as a gymnasium env (one pybullet client per env).

    reset(seed=s) starts from `sample_initial_state` drawn with seed s; reset(options={"initial_state":
    {...}}) starts from a demo's state (robot_position [9] rad, cube_position [3] m, cube_orientation
    [4] xyzw, goal_position [3] m). step(action) takes the fingertip change in cm ([3] Reach, [9] Move).
    Observations: `pixels` (camera60, uint8), `proprio` (fingertip positions, cm, float32 [9]), and for
    experts and records `cube_position`, `cube_orientation` (as the platform's tracker reports them,
    with the camera frame), `goal_position` (m), `robot_position` (rad), `ft_pos_des` (cm), `ft_vel` (cm/s).
    info: `scaled_success` of the state after the step.
    """

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (gymnasium API)

    def __init__(
        self,
        spec: TriFingerTaskSpec,
        render_size: int,
        quality: str,
        horizon: int,
        render: bool = True,
        cameras: tuple[int, ...] = (0,),
    ):
        import pybullet

        from tasks.rendering import check_quality

        trifinger_simulation, camera, _ = _import_simulator()
        self._pb = pybullet
        self.spec_ = spec
        self.horizon = horizon
        self.quality = check_quality(quality)
        self._render = render
        finger_cls = _finger_class(render and QUALITY_RENDERER[quality] == "egl")
        self.finger = finger_cls(finger_type="trifingeredu", time_step=SIM_TIME_STEP)
        self.client = self.finger._pybullet_client_id
        self.renderer = self.finger.renderer if render else None
        self._recolor_robot()
        self._tips = [self._visual_sphere(TIP_RADIUS + 0.0015, _TIP_YELLOW) for _ in range(3)]  # over the grey tip
        self.cube = pybullet.loadURDF(
            str(trifinger_simulation.get_data_dir() / "cube_v2" / "cube_v2.urdf"),
            basePosition=[0, 0, CUBE_WIDTH / 2],
            useFixedBase=spec.fix_cube,
            physicsClientId=self.client,
        )
        self.controller = ImpedanceController(self.finger.kinematics)
        all_cameras = camera.TriFingerCameras(image_size=(render_size, render_size), pybullet_client_id=self.client)
        self._cameras = [all_cameras.cameras[i] for i in cameras]
        self._render_mode = pybullet.ER_BULLET_HARDWARE_OPENGL if self.renderer == "egl" else pybullet.ER_TINY_RENDERER
        self._joints = list(self.finger.pybullet_joint_indices)
        self.action_space = gym.spaces.Box(-spec.max_action, spec.max_action, (spec.action_dim,), np.float32)
        spaces = {
            "proprio": gym.spaces.Box(-np.inf, np.inf, (9,), np.float32),
            "cube_position": gym.spaces.Box(-np.inf, np.inf, (3,), np.float64),
            "cube_orientation": gym.spaces.Box(-1, 1, (4,), np.float64),
            "goal_position": gym.spaces.Box(-np.inf, np.inf, (3,), np.float64),
            "robot_position": gym.spaces.Box(-np.inf, np.inf, (9,), np.float64),
            "ft_pos_des": gym.spaces.Box(-np.inf, np.inf, (9,), np.float64),
            "ft_vel": gym.spaces.Box(-np.inf, np.inf, (9,), np.float64),
        }
        if render:
            spaces["pixels"] = gym.spaces.Box(0, 255, (render_size, render_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self._t = 0
        self._plan = np.zeros(9)
        self._frames: list[np.ndarray] = []
        self._tracked: tuple[np.ndarray, np.ndarray] = (np.zeros(3), np.array([0, 0, 0, 1.0]))

    # --- scene ---------------------------------------------------------------------------------
    def _recolor_robot(self) -> None:
        pb = self._pb
        for shape in pb.getVisualShapeData(self.finger.finger_id, physicsClientId=self.client):
            link = shape[1]
            name = (
                pb.getJointInfo(self.finger.finger_id, link, physicsClientId=self.client)[12].decode()
                if link >= 0
                else ""
            )
            color = _LOWER_LINK_GREY if "lower_link" in name else _LINK_GREY
            pb.changeVisualShape(self.finger.finger_id, link, rgbaColor=color, physicsClientId=self.client)

    def _visual_sphere(self, radius: float, color) -> int:
        """A sphere that is only seen: TinyRenderer places a body by its collision object, so it has one,
        with collisions switched off."""
        pb, client = self._pb, self.client
        shape = pb.createVisualShape(pb.GEOM_SPHERE, radius=radius, rgbaColor=color, physicsClientId=client)
        collision = pb.createCollisionShape(pb.GEOM_SPHERE, radius=radius, physicsClientId=client)
        body = pb.createMultiBody(
            baseMass=0, baseCollisionShapeIndex=collision, baseVisualShapeIndex=shape, physicsClientId=client
        )
        pb.setCollisionFilterGroupMask(body, -1, 0, 0, physicsClientId=client)
        return body

    def _joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        states = self._pb.getJointStates(self.finger.finger_id, self._joints, physicsClientId=self.client)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def _cube_pose(self) -> tuple[np.ndarray, np.ndarray]:
        position, orientation = self._pb.getBasePositionAndOrientation(self.cube, physicsClientId=self.client)
        return np.array(position), np.array(orientation)

    def _capture(self) -> None:
        """What the platform's camera and tracker report now: frames (if rendering) and the cube pose."""
        self._tracked = self._cube_pose()
        if not self._render:
            return
        q, _ = self._joint_state()
        tips = self.controller.fingertips(q).reshape(3, 3)
        for body, tip in zip(self._tips, tips, strict=True):
            self._pb.resetBasePositionAndOrientation(body, tip, (0, 0, 0, 1), physicsClientId=self.client)
        self._frames = [np.asarray(cam.get_image(renderer=self._render_mode), dtype=np.uint8) for cam in self._cameras]

    def frames(self) -> list[np.ndarray]:
        """The last captured frame of every requested camera (camera60 first)."""
        return list(self._frames)

    # --- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        state = (options or {}).get("initial_state")
        if state is None:
            state = sample_initial_state(self.spec_, np.random.default_rng(seed))
        pb = self._pb
        q0 = np.asarray(state["robot_position"], dtype=np.float64)
        self.finger.reset_finger_positions_and_velocities(q0)
        pb.resetBasePositionAndOrientation(
            self.cube, state["cube_position"], state["cube_orientation"], physicsClientId=self.client
        )
        pb.resetBaseVelocity(self.cube, [0, 0, 0], [0, 0, 0], physicsClientId=self.client)
        self.goal = np.asarray(state["goal_position"], dtype=np.float64)
        self.cube_initial = np.asarray(state["cube_position"], dtype=np.float64)
        self._plan = self.controller.fingertips(q0)
        self.ft_initial = self._plan.copy()
        self._t = 0
        self._capture()
        return self._observation(), {"scaled_success": self.scaled_success()}

    def step(self, action):
        spec = self.spec_
        delta = np.zeros(9)
        delta[: spec.action_dim] = np.clip(np.asarray(action, dtype=np.float64), -spec.max_action, spec.max_action)
        delta /= SCALE
        velocity = delta / POLICY_STEP
        for i in range(SIM_STEPS_PER_ACTION):
            q, dq = self._joint_state()
            torque = self.controller.torque(self._plan + (i + 1) * delta / SIM_STEPS_PER_ACTION, velocity, q, dq)
            self.finger.append_desired_action(self.finger.Action(torque=np.clip(torque, -MAX_TORQUE, MAX_TORQUE)))
            if i + 1 == SIM_STEPS_PER_ACTION - CAMERA_PERIOD:
                self._capture()
        self._plan = self._plan + delta
        self._t += 1
        success = self.scaled_success()
        return self._observation(), 0.0, False, self._t >= self.horizon, {"scaled_success": success}

    def fingertip_positions(self) -> np.ndarray:
        """Current fingertip positions [9] (m)."""
        return self.controller.fingertips(self._joint_state()[0])

    def scaled_success(self) -> float:
        """The protocol metric for the current state (Reach: fresh fingertip; Move: the tracked cube pose)."""
        if self.spec_.fix_cube:
            return reach_scaled_success(self.fingertip_positions()[:3], self.ft_initial[:3], self.goal)
        return move_scaled_success(self._tracked[0], self.cube_initial, self.goal)

    def _observation(self) -> dict[str, np.ndarray]:
        q, dq = self._joint_state()
        ft, jac = self.controller.jacobian(q)
        obs = {
            "proprio": (ft * SCALE).astype(np.float32),
            "cube_position": self._tracked[0].copy(),
            "cube_orientation": self._tracked[1].copy(),
            "goal_position": self.goal.copy(),
            "robot_position": q,
            "ft_pos_des": self._plan * SCALE,
            "ft_vel": (jac @ dq) * SCALE,
        }
        if self._render:
            obs["pixels"] = self._frames[0]
        return obs

    def render(self):
        assert self._render, "created with render=False"
        return self._frames[0]

    def close(self):
        """Disconnect, and make sure no garbage-collected simulator object touches the client id later:
        pybullet reuses ids, and SimFinger's and the table's destructors would act on the new owner."""
        if self.client is None:
            return
        self.finger._disconnect_from_pybullet()
        self.finger._pybullet_client_id = -1
        self.finger._table_id._pybullet_client_id = -1
        self.client = None


def make_env(
    spec: TriFingerTaskSpec, render_size: int, quality: str, horizon: int, render: bool = True
) -> TriFingerCubeEnv:
    return TriFingerCubeEnv(spec, render_size=render_size, quality=quality, horizon=horizon, render=render)


# ----------------------------------------------------------------------------------------------
# Scripted experts
# ----------------------------------------------------------------------------------------------
def _scaled_to(delta: np.ndarray, limit: float) -> np.ndarray:
    """delta shrunk (direction kept) so that no component exceeds `limit`."""
    peak = float(np.max(np.abs(delta))) if delta.size else 0.0
    return delta if peak <= limit else delta * (limit / peak)


class _MoveExpert:
    """Push the cube to the goal with two fingertips held side by side behind it (the third stays up).

    Every step re-plans from the tracked cube pose: lift, go over the two push points (behind the
    cube, opposite the goal), lower the fingertips to below the cube's centre, then advance the push
    points towards the goal by at most PUSH_STEP. The pushing fingers are chosen once per episode
    (the assignment with the shortest fingertip travel). `phase` is 1 while getting into place, 2
    while pushing (the demos' `mode`).
    """

    HOVER = CUBE_WIDTH + 0.03  # m, fingertip height while moving into place
    PUSH_HEIGHT = 0.02  # m, fingertip height while pushing (below the cube's centre)
    BEHIND = CUBE_WIDTH / np.sqrt(2) + TIP_RADIUS + 0.004  # m, push points behind the centre (clears any yaw)
    CONTACT = CUBE_WIDTH / 2 + TIP_RADIUS - 0.002  # m, fingertip centre behind the cube's centre when pushing a face
    SPREAD = 0.02  # m, push points either side of the push line
    PUSH_STEP = 0.05  # m per policy step
    ALIGNED = 0.012  # m, fingertips this close (xy) to their push points count as in place ...
    KEEP_PUSHING = 0.035  # m, ... and, once pushing, until they are this far off
    CLEARANCE = 0.065  # m, a fingertip path this far (xy) from the cube's centre cannot touch it

    def __init__(self, limit: float):
        self.limit = limit
        self.pushers: tuple[int, int] | None = None
        self.phase = 1

    def reset(self) -> None:
        self.pushers, self.phase = None, 1

    def _clear_path(self, start: np.ndarray, end: np.ndarray, cube: np.ndarray) -> bool:
        """Whether the xy segment start-end stays CLEARANCE away from the cube's centre."""
        seg = end - start
        u = np.clip(np.dot(cube - start, seg) / max(np.dot(seg, seg), 1e-12), 0.0, 1.0)
        return float(np.linalg.norm(start + u * seg - cube)) > self.CLEARANCE

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        plan = obs["ft_pos_des"].reshape(3, 3) / SCALE
        cube, goal = obs["cube_position"], obs["goal_position"]
        offset = (goal - cube)[:2]
        remaining = float(np.linalg.norm(offset))
        direction = offset / max(remaining, 1e-9)
        side = np.array([-direction[1], direction[0]])
        points = [cube[:2] - self.BEHIND * direction + sign * self.SPREAD * side for sign in (1.0, -1.0)]
        if self.pushers is None:
            pairs = [(a, b) for a in range(3) for b in range(3) if a != b]
            self.pushers = min(
                pairs, key=lambda p: sum(np.linalg.norm(plan[f, :2] - points[k]) for k, f in enumerate(p))
            )
        target = plan.copy()
        idle = ({0, 1, 2} - set(self.pushers)).pop()
        target[idle, 2] = self.HOVER
        fingers = list(self.pushers)
        off_xy = max(np.linalg.norm(plan[f, :2] - points[k]) for k, f in enumerate(fingers))
        low = plan[fingers, 2].max() < self.PUSH_HEIGHT + 0.005
        if off_xy > (self.KEEP_PUSHING if self.phase == 2 and low else self.ALIGNED):  # get into place
            self.phase = 1
            for k, f in enumerate(fingers):
                high = plan[f, 2] > self.HOVER - 0.01
                direct = high or self._clear_path(plan[f, :2], points[k], cube[:2])
                target[f] = [*points[k], self.HOVER] if direct else [*plan[f, :2], self.HOVER]
        elif not low:  # over the push points: down
            self.phase = 1
            for k, f in enumerate(fingers):
                target[f] = [*points[k], self.PUSH_HEIGHT]
        else:  # push
            self.phase = 2
            # In contact a fingertip is only CONTACT behind the centre (a face), so the last push goes past BEHIND.
            advance = min(self.PUSH_STEP, remaining + self.BEHIND - self.CONTACT) * direction
            for k, f in enumerate(fingers):
                target[f] = [*(points[k] + advance), self.PUSH_HEIGHT]
        return _scaled_to((target - plan).reshape(9) * SCALE, self.limit).astype(np.float32)


class _ReachExpert:
    """Fingertip 0 over the cube's top face, then pressed down on it (a straight line would catch the
    tip on an edge). The metric's best value is limited by the fingertip's radius: resting on a face,
    the tip centre is w/2 + 9.5 mm from the cube centre."""

    def __init__(self, limit: float):
        self.limit = limit
        self.phase = 1

    def reset(self) -> None:
        self.phase = 1

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        plan, cube = obs["ft_pos_des"][:3] / SCALE, obs["cube_position"]
        above = cube + np.array([0.0, 0.0, CUBE_WIDTH / 2 + TIP_RADIUS + 0.01])
        target = above if np.linalg.norm(plan[:2] - cube[:2]) > 0.005 else cube
        return _scaled_to((target - plan) * SCALE, self.limit).astype(np.float32)


def scripted_expert(spec: TriFingerTaskSpec):
    """`expert(observation) -> action (cm)` for one episode at a time (call `expert.reset()` between
    episodes). Reach: fingertip 0 onto the cube; Move: a two-finger push to the goal."""
    return _ReachExpert(spec.max_action) if spec.fix_cube else _MoveExpert(spec.max_action)


# ----------------------------------------------------------------------------------------------
# Demonstrations in the official layout (`downsample.pth`)
# ----------------------------------------------------------------------------------------------
def _cube_vertices(position: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """The cube's 8 corners in the world frame, flattened [24] (m), corner order: itertools.product(+-1, repeat=3)."""
    from scipy.spatial.transform import Rotation

    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * CUBE_WIDTH / 2
    return (Rotation.from_quat(orientation).apply(corners) + position).reshape(24)


def collect_scripted_demo(
    spec: TriFingerTaskSpec, demo_id: int, quality: str, render_size: int, all_cameras: bool = False
) -> dict[str, np.ndarray]:
    """Run the scripted expert from the start seeded SCRIPTED_SEED_BASE + demo_id; return the demo as the
    official `downsample.pth` dict (positions in cm, one row per policy step, T = horizon + 1)."""
    cameras = (0, 1, 2) if all_cameras else (0,)
    env = TriFingerCubeEnv(spec, render_size=render_size, quality=quality, horizon=spec.horizon, cameras=cameras)
    expert = scripted_expert(spec)
    rows: dict[str, list] = {k: [] for k in ("obs", "frames", "success", "action")}
    try:
        obs, info = env.reset(seed=SCRIPTED_SEED_BASE + demo_id)
        for t in range(spec.horizon + 1):
            rows["obs"].append(obs)
            rows["frames"].append(env.frames())
            rows["success"].append(info["scaled_success"])
            if t == spec.horizon:
                break
            action = np.clip(expert(obs), -spec.max_action, spec.max_action)
            rows["action"].append(action)
            obs, _, _, _, info = env.step(action)
        renderer = env.renderer
    finally:
        env.close()
    obs_list, horizon = rows["obs"], spec.horizon
    stack = lambda key: np.stack([o[key] for o in obs_list])  # noqa: E731
    delta = np.zeros((horizon + 1, 9))
    delta[:horizon, : spec.action_dim] = np.stack(rows["action"])
    cube, orientation = stack("cube_position"), stack("cube_orientation")
    goal = np.repeat(stack("goal_position")[:1], horizon + 1, axis=0)
    ft = stack("proprio").astype(np.float64)
    if spec.fix_cube:  # per-finger fingertip-to-cube distance, as CubeReachEnv logs it
        error = np.linalg.norm(ft.reshape(-1, 3, 3) - (cube * SCALE)[:, None, :], axis=2)
    else:
        error = np.linalg.norm(cube - goal, axis=1) * SCALE
    mode = np.ones(horizon + 1, dtype=np.int64) if spec.fix_cube else 1 + (np.arange(horizon + 1) >= 3)
    images = [np.stack([f[i] for f in rows["frames"]]) for i in range(len(cameras))]
    empty = np.zeros((horizon + 1, 0, 0, 3), np.uint8)
    demo = {
        "t": (np.arange(horizon + 1) * SIM_STEPS_PER_ACTION)[:, None],
        "o_pos_cur": cube * SCALE,
        "o_pos_des": goal * SCALE,
        "o_ori_cur": orientation,
        "o_ori_des": np.repeat(orientation[:1] if spec.fix_cube else orientation[-1:], horizon + 1, axis=0),
        "ft_pos_cur": ft,
        "ft_pos_des": stack("ft_pos_des"),
        "ft_vel_cur": stack("ft_vel"),
        "ft_vel_des": np.concatenate([delta[:-1] / POLICY_STEP, np.zeros((1, 9))]),
        "position_error": error,
        "robot_pos": stack("robot_position"),
        "image_60": images[0],
        "image_180": images[1] if all_cameras else empty,
        "image_300": images[2] if all_cameras else empty,
        "ft_pos_targets_per_mode": (ft[-1:] if spec.fix_cube else ft[[2, -1]]),
        "mode": mode,
        "vertices": np.stack([_cube_vertices(p, o) for p, o in zip(cube, orientation, strict=True)]) * SCALE,
        "delta_ftpos": delta,
        # Not in the official files: how this demo was made.
        "scaled_success": np.asarray(rows["success"]),
        "renderer": np.asarray(renderer or "none"),
        "seed": np.asarray(SCRIPTED_SEED_BASE + demo_id),
    }
    return demo


def write_downsample(path: str | Path, demo: dict[str, np.ndarray]) -> None:
    """Save a demo dict like the reference (`torch.save`), atomically."""
    import torch

    from encoders.storage import atomic_write_bytes

    missing = [k for k in REQUIRED_KEYS if k not in demo]
    if missing:
        raise ValueError(f"demo lacks {missing}; a downsample.pth holds {list(DEMO_KEYS)}")
    buffer = io.BytesIO()
    torch.save({k: np.asarray(v) for k, v in demo.items()}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def _numpy_safe_globals() -> list:
    """What unpickling a dict of numpy arrays needs, for torch.load(weights_only=True): no code can run."""
    import numpy.core.multiarray as legacy_multiarray  # the name files from numpy 1.x refer to

    dtypes = {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_)}
    dtypes |= {type(np.dtype("U1")), type(np.dtype("S1"))}
    reconstruct = np._core.multiarray._reconstruct
    return [
        reconstruct,
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (legacy_multiarray.scalar, "numpy.core.multiarray.scalar"),
        (np._core.multiarray.scalar, "numpy._core.multiarray.scalar"),
        np.ndarray,
        np.dtype,
        bytes,  # pickle protocol 2 (torch.save's) writes an array's raw data as bytes(...)
        *dtypes,
    ]


def read_downsample(path: str | Path) -> dict[str, np.ndarray]:
    """Load an official-layout `downsample.pth` (a dict of arrays) without running pickled code."""
    import warnings

    import torch

    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core is deprecated; old files name it
        globals_ = _numpy_safe_globals()
    try:
        with torch.serialization.safe_globals(globals_):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not a readable TriFinger demo (torch.save'd dict of arrays): {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict (downsample.pth layout), got {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: demo lacks {missing} (keys present: {sorted(data)})")
    out = {}
    for key, value in data.items():
        out[key] = value.numpy() if hasattr(value, "numpy") and not isinstance(value, np.ndarray) else np.asarray(value)
    return out


def demo_file(root: Path, spec: TriFingerTaskSpec, demo_id: int) -> Path:
    """<root>/<reach|move>/demo-XXXX/dts-0p4/downsample.pth (root = the archive's `trifinger-demos`)."""
    return Path(root) / spec.demo_folder / f"demo-{demo_id:04d}" / "dts-0p4" / "downsample.pth"


def demo_ids(split: str, n: int) -> list[int]:
    """The official split: train ids 0.., test ids 100.. (at most 100 train and 25 test)."""
    if split == "train":
        if n > TEST_ID_START:
            raise ValueError(f"{n} training demos asked for; the TriFinger split has {TEST_ID_START} (ids 0-99)")
        return list(range(n))
    if split == "test":
        if n > 25:
            raise ValueError(f"{n} test demos asked for; the TriFinger split has 25 (ids 100-124)")
        return list(range(TEST_ID_START, TEST_ID_START + n))
    raise ValueError(f"split {split!r} is not 'train' or 'test'")


def official_root(path: str | Path | None = None) -> Path:
    """The folder holding reach/ and move/: `path` (that folder or its parent) or $CORTEXBENCH_DATA/trifinger-demos."""
    from encoders.storage import data_root

    root = Path(path).expanduser() if path is not None else data_root()
    if path is None or (root / "trifinger-demos").is_dir():
        return root / "trifinger-demos"
    return root


def scripted_root(spec: TriFingerTaskSpec, quality: str, render_size: int) -> Path:
    from encoders.storage import demos_cache_root

    key = f"{spec.name}-v{spec.version}-{spec.camera}-{render_size}px-{QUALITY_RENDERER[quality]}-f{DEMO_FORMAT}"
    return demos_cache_root() / "scripted" / key


def _as_demo(path: Path, data: dict[str, np.ndarray], spec: TriFingerTaskSpec, demo_id: int):
    """A `tasks.demos.Demo`: frames = image_60 (read again from the file when encoded), actions =
    delta_ftpos (cm) of the moved fingers, proprio = ft_pos_cur (cm); T rows, the last one only a frame."""
    from tasks.demos import Demo

    positions = np.asarray(data["o_pos_cur"], dtype=np.float64) / SCALE
    orientations = np.asarray(data["o_ori_cur"], dtype=np.float64)
    demo = Demo(
        actions=np.asarray(data["delta_ftpos"], dtype=np.float32)[:, : spec.action_dim],
        proprio=np.asarray(data["ft_pos_cur"], dtype=np.float32),
        rewards=np.zeros(len(positions), np.float32),
        success=None,
        seed=demo_id,
        initial_state={
            "robot_position": np.asarray(data["robot_pos"], dtype=np.float64)[0],
            "cube_position": positions[0],
            "cube_orientation": orientations[0],
            "goal_position": positions[0] if spec.fix_cube else positions[-1],
            "goal_orientation": orientations[0] if spec.fix_cube else orientations[-1],
        },
    )
    demo._frame_loader = lambda: read_downsample(path)["image_60"]
    frames = np.asarray(data["image_60"])
    if frames.ndim != 4 or frames.shape[0] != len(positions) or frames.shape[-1] != 3:
        raise ValueError(f"{path}: image_60 has shape {frames.shape}, expected ({len(positions)}, H, W, 3)")
    if not spec.fix_cube and np.linalg.norm(positions[-1] - positions[0]) < 1e-4:
        raise ValueError(f"{path}: the cube never moves in this Move-Cube demo; its goal would equal its start")
    return demo


def _demo_success(data: dict[str, np.ndarray], spec: TriFingerTaskSpec) -> float:
    """The demo's own final scaled success (Move: w.r.t. its desired goal `o_pos_des`)."""
    cube = np.asarray(data["o_pos_cur"], dtype=np.float64) / SCALE
    ft = np.asarray(data["ft_pos_cur"], dtype=np.float64) / SCALE
    if spec.fix_cube:
        return reach_scaled_success(ft[-1, :3], ft[0, :3], cube[0])
    goal = np.asarray(data.get("o_pos_des", data["o_pos_cur"]), dtype=np.float64)[-1] / SCALE
    return move_scaled_success(cube[-1], cube[0], goal)


def load_demos(
    spec: TriFingerTaskSpec,
    split: str = "train",
    n: int | None = None,
    source: str = "official",
    path: str | Path | None = None,
    render_size: int | None = None,
    quality: str = "faithful",
    horizon: int | None = None,
    progress: bool = True,
):
    """Demos of `split` (train: ids 0..n-1, test: ids 100..100+n-1) as a DemoSet.

    source: `official` (trifinger_demos.zip under `path` or $CORTEXBENCH_DATA), `scripted` (the scripted
    experts, rendered like the evaluation and cached in the same layout), or a folder in the layout.
    """
    from tqdm.auto import tqdm

    from tasks.demos import DemoSet, DemosNotFoundError
    from tasks.rendering import check_quality

    check_quality(quality)
    render_size = render_size or spec.render_size
    if horizon is not None and horizon != spec.horizon:
        raise ValueError(
            f"{spec.name} episodes are {spec.horizon} policy steps (the demos' length); horizon={horizon} is not supported"
        )
    ids = demo_ids(split, n if n is not None else (spec.n_demos if split == "train" else spec.eval_episodes))
    if source == "scripted":
        spec.require_simulator()
        root = scripted_root(spec, quality, render_size)
        files = [demo_file(root, spec, i) for i in ids]
        missing = [(i, f) for i, f in zip(ids, files, strict=True) if not f.is_file()]
        for demo_id, file in tqdm(
            missing, desc=f"scripted demos {spec.name}", unit="demo", disable=None if progress and missing else True
        ):
            write_downsample(file, collect_scripted_demo(spec, demo_id, quality, render_size))
        renderer = QUALITY_RENDERER[quality]
        frames_from = f"rendered: camera={spec.camera} size={render_size} quality={quality}"
    else:
        root = official_root(path if source == "official" else source)
        files = [demo_file(root, spec, i) for i in ids]
        absent = [f for f in files if not f.is_file()]
        if absent:
            where = "demos.path / $CORTEXBENCH_DATA" if source == "official" else f"demos.source={source!r}"
            raise DemosNotFoundError(
                f"TriFinger demonstrations for {spec.name!r} are missing: {absent[0]}"
                f"{f' (and {len(absent) - 1} more)' if len(absent) > 1 else ''}\n"
                f"  download {ARCHIVE_URL} and unzip it into $CORTEXBENCH_DATA (giving trifinger-demos/{spec.demo_folder}/...),\n"
                f"  or point at the unzipped folder with demos.path=<folder> (checked: {where}),\n"
                f"  or use offline demonstrations with demos.source=scripted (recorded as such in the run record)."
            )
        renderer = None
        frames_from = "official downsample.pth image_60 (pybullet TinyRenderer, trifinger_simulation fork)"
    demos, digest, successes, renderers = [], hashlib.sha256(), [], set()
    for demo_id, file in zip(ids, files, strict=True):
        data = read_downsample(file)
        demos.append(_as_demo(file, data, spec, demo_id))
        successes.append(_demo_success(data, spec))
        if "renderer" in data:
            renderers.add(str(data["renderer"]))
        digest.update(f"{file.relative_to(root)}:{sha256_file(file)}\n".encode())
    if renderer is not None:
        if renderers - {renderer}:  # EGL did not load when these were rendered: keep the truth
            renderer = ",".join(sorted(renderers))
        frames_from += f" renderer={renderer}"
    stats = {
        "split": split,
        "ids": [ids[0], ids[-1]] if ids else [],
        "root": str(root),
        "mean_scaled_success": float(np.mean(successes)) if successes else None,
        "renderer": renderer or "official",
    }
    if source == "scripted":
        stats |= {"expert": "scripted", "seeds": [SCRIPTED_SEED_BASE + ids[0], SCRIPTED_SEED_BASE + ids[-1]]}
    label = source if source in ("official", "scripted") else f"path:{source}"
    return DemoSet(spec.name, label, demos, digest.hexdigest(), frames_from, stats)


def renderer_for(quality: str) -> str:
    """The pybullet renderer a render quality asks for (`tiny` or `egl`)."""
    from tasks.rendering import check_quality

    return QUALITY_RENDERER[check_quality(quality)]


def backend_info() -> dict:
    """What renders TriFinger frames, for run records."""
    return {"engine": "pybullet", "egl_plugin": egl_plugin_path() is not None, "pybullet_direct": True}


__all__ = [
    "MOVE_CUBE",
    "REACH_CUBE",
    "TASKS",
    "TriFingerCubeEnv",
    "TriFingerTaskSpec",
    "collect_scripted_demo",
    "load_demos",
    "make_env",
    "move_scaled_success",
    "reach_scaled_success",
    "read_downsample",
    "scripted_expert",
    "write_downsample",
]
