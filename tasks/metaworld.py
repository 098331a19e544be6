"""MetaWorld suite: the five CortexBench tasks on the installed MetaWorld (v3 envs, MuJoCo 3).

Protocol (reference/cortexbench.md 1.1, eai-vc `Metaworld_BC_config.yaml`, `gym_wrapper.py`):
goal-observable envs whose goal is re-sampled at every reset (`_freeze_rand_vec = False`), episode
i seeded with seed + i, 500 policy steps (frame skip 5) without early termination, success read at
the last step, 256x256 frames from camera `top_cap2`, proprio = `_get_obs()[:4]` (end-effector xyz
and the normalised gripper opening), actions clipped to [-1, 1].

Camera: `top_cap2` exists only in the suraj-nair-1/metaworld fork CortexBench pins (@4e896a5,
`xyz_base.xml`: `<camera name="top_cap2" mode="targetbody" target="tablelink" pos="0 0.9 0.6"/>`).
The installed MetaWorld lacks it, so `_with_cortexbench_camera` adds exactly that camera to the
model through `mujoco.MjSpec` before compiling. mujoco-py returned frames bottom-up and the reference
flips them (`img[::-1]`); `mujoco.Renderer` already returns upright frames, so no flip is applied.

Success rules and reset ranges are the fork's v2 ones (`metaworld/envs/mujoco/sawyer_xyz/v2/sawyer_*_v2.py`),
checked against MetaWorld 3.1.1's `metaworld/envs/sawyer_*_v3.py` for the five tasks (table in
docs/protocols.md; tests/test_conformance_tasks.py pins the ranges). They agree except button-press-topdown,
whose v3 success tolerance is 0.024 where the fork's is 0.02: `FORK_SUCCESS` replaces v3's flag with the
fork's rule there (task version 2).

Differences from the reference that cannot be avoided: MetaWorld v3 instead of v2 (the v2 envs need
mujoco-py and MuJoCo 2.0), and MuJoCo 3's renderer instead of mujoco-py's.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from tasks.demos import check_demos as check_demos  # the adapter API: demo loader and its check
from tasks.demos import load_demos as load_demos
from tasks.spec import TaskSpec

CAMERA = "top_cap2"
CAMERA_POSE = {"mode": "targetbody", "target": "tablelink", "pos": (0.0, 0.9, 0.6)}
INSTALL = "pip install 'cortexbench-harness[metaworld]'  (metaworld==3.1.1, mujoco==3.3.0)"


def _task(short: str, env_id: str, version: int = 1) -> TaskSpec:
    upstream = env_id.replace("-v3", "-v2-goal-observable")
    return TaskSpec(
        name=f"metaworld-{short}",
        suite="metaworld",
        version=version,
        adapter="tasks.metaworld",
        env_id=env_id,
        upstream_env_id=upstream,
        camera=CAMERA,
        render_size=256,
        horizon=500,
        action_dim=4,
        proprio_dim=4,
        proprio_key="gripper_proprio",
        n_demos=25,
        eval_episodes=25,
        metric="success_last_step",
        official_demo_file=f"{upstream}.pickle",
        requires=("metaworld", "mujoco"),
        install_hint=INSTALL,
    )


ASSEMBLY = _task("assembly", "assembly-v3")
BIN_PICKING = _task("bin-picking", "bin-picking-v3")
# v2: the fork's success tolerance 0.02 (v1 used MetaWorld 3.1.1's 0.024)
BUTTON_PRESS_TOPDOWN = _task("button-press-topdown", "button-press-topdown-v3", version=2)
DRAWER_OPEN = _task("drawer-open", "drawer-open-v3")
HAMMER = _task("hammer", "hammer-v3")
TASKS = (ASSEMBLY, BIN_PICKING, BUTTON_PRESS_TOPDOWN, DRAWER_OPEN, HAMMER)


def _button_press_topdown_success(env: Any, state: np.ndarray) -> float:
    """The fork's `sawyer_button_press_topdown_v2.py` `evaluate_state`: success when the button (`obs[4:7]`)
    is within 0.02 of the hole's height (`_target_pos[2]`); MetaWorld 3.1.1 allows 0.024."""
    return float(abs(env._target_pos[2] - state[6]) <= 0.02)


# The fork's success rule where MetaWorld 3.1.1's differs, by env id: f(metaworld env, 39-d state) -> 0/1.
FORK_SUCCESS = {"button-press-topdown-v3": _button_press_topdown_success}


def _with_cortexbench_camera(env_cls: type) -> type:
    """Subclass a MetaWorld env so its model is compiled with the `top_cap2` camera added."""
    import mujoco

    def _initialize_simulation(self) -> tuple[Any, Any]:
        spec = mujoco.MjSpec.from_file(self.fullpath)
        camera = spec.worldbody.add_camera()
        camera.name = CAMERA
        camera.mode = mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY
        camera.targetbody = CAMERA_POSE["target"]
        camera.pos = list(CAMERA_POSE["pos"])
        model = spec.compile()
        return model, mujoco.MjData(model)

    return type(f"{env_cls.__name__}CortexBench", (env_cls,), {"_initialize_simulation": _initialize_simulation})


# What `encoder=state` reads on MetaWorld (the 4-d proprio enters the head beside it, as for pixels).
STATE_DESCRIPTION = "MetaWorld's 39-d observation: hand xyz, gripper, two object poses, previous frame's, goal xyz"


class MetaWorldEnv(gym.Env):
    """A CortexBench MetaWorld task as a gymnasium env.

    Observations: `pixels` (uint8, omitted with render=False), `proprio` (4-d) and `state` (MetaWorld's
    39-d state, for scripted experts and state-based sanity checks; never given to visual policies).
    """

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (gymnasium API)

    def __init__(self, spec: TaskSpec, render_size: int, quality: str, horizon: int, render: bool = True):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        from tasks.rendering import Camera, apply_quality

        if horizon > 500:
            raise ValueError(f"MetaWorld episodes are at most 500 steps, asked for {horizon}")
        env = _with_cortexbench_camera(ALL_V3_ENVIRONMENTS[spec.env_id])()
        env._partially_observable = False  # goal-observable, as CortexBench's `*-goal-observable` envs
        del env.sawyer_observation_space  # recomputed for the new observability
        env._set_task_called = True
        env._freeze_rand_vec = False  # a new goal / object layout at every reset ...
        env.seeded_rand_vec = True  # ... drawn from the env's seeded generator
        apply_quality(env.model, quality)
        self._env = env
        self._camera = Camera(env.model, spec.camera, render_size, share=f"{spec.name}/{quality}") if render else None
        self.spec_ = spec
        self.horizon = horizon
        self._t = 0
        self._state: np.ndarray | None = None
        self.action_space = env.action_space
        spaces = {
            "proprio": gym.spaces.Box(-np.inf, np.inf, (spec.proprio_dim,), np.float32),
            "state": gym.spaces.Box(-np.inf, np.inf, (39,), np.float64),
        }
        if render:
            spaces["pixels"] = gym.spaces.Box(0, 255, (render_size, render_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

    def _observation(self) -> dict[str, np.ndarray]:
        proprio = self._env._get_curr_obs_combined_no_goal()[:4]  # == _get_obs()[:4], without its side effect
        obs = {"proprio": proprio.astype(np.float32), "state": np.asarray(self._state, dtype=np.float64)}
        if self._camera is not None:
            obs["pixels"] = self._camera.render(self._env.data)
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.seed(seed)
        self._state, _ = self._env.reset()
        self._t = 0
        return self._observation(), {}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float32), self.action_space.low, self.action_space.high)
        self._state, reward, _, _, info = self._env.step(action)
        self._t += 1
        success = float(info["success"])
        rule = FORK_SUCCESS.get(self.spec_.env_id)
        if rule is not None and not self._env._did_see_sim_exception:  # an unstable step never succeeds
            success = rule(self._env, self._state)
        return self._observation(), float(reward), False, self._t >= self.horizon, {"success": success}

    def render(self):
        assert self._camera is not None, "created with render=False"
        return self._camera.render(self._env.data)

    def close(self):
        if self._camera is not None:
            self._camera.close()
        self._env.close()


def make_env(spec: TaskSpec, render_size: int, quality: str, horizon: int, render: bool = True) -> MetaWorldEnv:
    return MetaWorldEnv(spec, render_size=render_size, quality=quality, horizon=horizon, render=render)


def first_observation(path: dict) -> np.ndarray | None:
    """The 39-d MetaWorld observation of a path's first step (mjrl paths' `observations[0]`), if stored."""
    observations = path.get("observations")
    if observations is None or len(observations) == 0:
        return None
    first = np.asarray(observations[0], dtype=np.float64).ravel()
    return first if first.shape == (39,) else None


def render_official_first_frames(spec: TaskSpec, paths: list[dict], render_size: int, quality: str) -> list:
    """Each path's first state rendered by us, for the frame gap to the pickle's first image
    (tasks/demos/framegap.py); None where the path stores no first observation.

    The pickles hold no physics state, but a reset state is fixed by the env's random vector (the object's
    initial position, and for assembly / bin-picking the goal's), which the first observation shows: the
    object at `obs[4:7]` and the goal at `obs[-3:]`, each a fixed offset from its part of the vector. The
    offsets are read from our env; the vector that reproduces the observation is then frozen
    (`_freeze_rand_vec`) for a reset, as MetaWorld does for a fixed task. drawer-open's reset moves the
    drawer without recomputing positions (in the fork and in v3), so its first `obs[4:7]` (and frame) still
    show the previous episode's drawer; its goal, computed from the vector, gives the layout instead. Our
    render is of the layout itself (the reset is done twice), not of such a stale frame.
    """
    env = MetaWorldEnv(spec, render_size=render_size, quality=quality, horizon=1)
    mw = env._env

    def reset_to(vec: np.ndarray) -> np.ndarray:
        mw._last_rand_vec, mw._freeze_rand_vec = vec, True
        try:
            env.reset()
            env.reset()  # a second reset: positions computed for this layout, whatever came before
        finally:
            mw._freeze_rand_vec = False
        return env._state.copy()

    try:
        env.reset(seed=0)
        base_vec = mw._last_rand_vec.copy()
        base_obs = reset_to(base_vec)
        frames = []
        for path in paths:
            first = first_observation(path)
            if first is None:
                frames.append(None)
                continue
            vec = base_vec.copy()
            if spec.env_id in VEC_FROM_GOAL:
                vec[:3] += first[-3:] - base_obs[-3:]
            else:
                vec[:3] += first[4:7] - base_obs[4:7]
            if vec.size >= 6:
                vec[3:6] += first[-3:] - base_obs[-3:]
                if spec.env_id == "assembly-v3" and np.linalg.norm(vec[:2] - vec[3:5]) < 0.1:
                    frames.append(None)  # assembly's reset would redraw forever: not a layout it can produce
                    continue
            reset_to(vec)
            frames.append(env.render())
        return frames
    finally:
        env.close()


# Tasks whose first observation shows the object where the previous episode left it (stale positions after
# reset) but whose goal is the object's initial position plus a constant: the layout is read from the goal.
VEC_FROM_GOAL = frozenset({"drawer-open-v3"})


def scripted_expert(spec: TaskSpec):
    """MetaWorld's own scripted policy for the task, as `expert(observation) -> action`."""
    from metaworld import policies

    class_name = "Sawyer" + "".join(part.capitalize() for part in spec.env_id.split("-")) + "Policy"
    policy = getattr(policies, class_name)()

    def expert(obs: dict[str, np.ndarray]) -> np.ndarray:
        with warnings.catch_warnings():  # MetaWorld warns that some of its own gains exceed the action range
            warnings.simplefilter("ignore", UserWarning)
            return np.asarray(policy.get_action(obs["state"]), dtype=np.float32)

    return expert
