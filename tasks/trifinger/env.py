"""Reach-Cube / Move-Cube as a gymnasium env on trifinger_simulation (pybullet), and how its frames are rendered."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
from pathlib import Path

import gymnasium as gym
import numpy as np

from tasks.rendering import check_quality
from tasks.trifinger.control import ImpedanceController
from tasks.trifinger.spec import (
    CAMERA_PERIOD,
    CUBE_WIDTH,
    POLICY_STEP,
    SCALE,
    SIM_STEPS_PER_ACTION,
    SIM_TIME_STEP,
    TIP_RADIUS,
    TriFingerTaskSpec,
    move_scaled_success,
    reach_scaled_success,
)

ARENA_SAMPLE_RADIUS = 0.09  # m, the fork's sample_goal(difficulty=-1) disc
MIN_MOVE_DISTANCE = 0.04  # m, scripted Move goals are at least this far from the start
MAX_TORQUE = 0.397  # Nm (trifingerpro_limits.robot_torque)
QUALITY_RENDERER = {"faithful": "tiny", "fast": "egl"}

# Colours of the fork's `trifinger_meta` robot and stage (RGBA).
_LINK_GREY = (0.6, 0.6, 0.6, 1.0)
_LOWER_LINK_GREY = (0.8, 0.8, 0.8, 1.0)
_TIP_YELLOW = (0.92, 0.84, 0.2, 1.0)
_TABLE = (0.13, 0.13, 0.13, 1.0)
_BORDER = (0.1, 0.1, 0.1, 1.0)


# What `encoder=state` reads on TriFinger (the fingertips are the policy's proprioception already; the goal is
# the last demo state's cube pose, as the goal image is the last demo frame).
STATE_DESCRIPTION = "tracked cube position (cm) + orientation quaternion (xyzw), 7-d; fingertips enter as proprio"


def tracked_state(position_cm: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """The 7-d state of the state reference, from the cube pose the tracker reports (demos store the same)."""
    return np.concatenate(
        [np.asarray(position_cm, dtype=np.float64), np.asarray(orientation, dtype=np.float64)], axis=-1
    )


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
    with the camera frame), `goal_position` (m), `robot_position` (rad), `ft_pos_des` (cm), `ft_vel` (cm/s),
    and `state` (the state reference's input: `STATE_DESCRIPTION`).
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
            "state": gym.spaces.Box(-np.inf, np.inf, (7,), np.float64),
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
            "state": tracked_state(self._tracked[0] * SCALE, self._tracked[1]),
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


def renderer_for(quality: str) -> str:
    """The pybullet renderer a render quality asks for (`tiny` or `egl`)."""
    return QUALITY_RENDERER[check_quality(quality)]


def backend_info() -> dict:
    """What renders TriFinger frames, for run records."""
    return {"engine": "pybullet", "egl_plugin": egl_plugin_path() is not None, "pybullet_direct": True}
