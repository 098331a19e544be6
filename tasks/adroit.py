"""Adroit suite: CortexBench's pen and relocate tasks on gymnasium-robotics (AdroitHand*-v1, MuJoCo 3).

Protocol (reference/cortexbench.md 1.1; eai-vc `Adroit_BC_config.yaml`, `gym_wrapper.py`; mj_envs
vikashplus/mj_envs @c1557f5 `hand_manipulation_suite/{pen,relocate}_v0.py`):
- env `pen-v0` / `relocate-v0` (mj_envs, mujoco-py), here `AdroitHandPen-v1` / `AdroitHandRelocate-v1`,
  whose models, frame skip (5), action scaling, reset distributions and reward/goal definitions are
  the D4RL ports of the same mj_envs code;
- horizon 100 (pen) / 200 (relocate): mj_envs registers `max_episode_steps` 100 / 200;
- early termination: mj_envs' `pen_v0.py` returns `done=True` once the pen has dropped (the pen body's
  height `obj_pos[2] < 0.075`, `PEN_DROP_HEIGHT`), and mjrl's `sample_paths` / `do_rollout` stop the
  episode there (`while t < horizon and done != True`), so `evaluate_success` counts goal steps of the
  shortened path; `relocate_v0.py` always returns `done=False`. gymnasium-robotics v1 never terminates
  (its pen check is commented out), so this adapter ends a pen episode itself (`terminated=True`) at the
  first step that leaves the pen below 0.075, as v0 does. A dropped pen cannot be within 0.075 of the
  target (at height 0.25), so the success count is the same; episode lengths and demos differ;
- frames 256x256 from camera `vil_camera` (`pos="0 -1.2 1.2" quat="0.92388 0.382683 0 0"` in the
  gymnasium-robotics XML, the same camera as mj_envs'). mujoco-py rendered bottom-up and the
  reference flips (`img[::-1]`); `mujoco.Renderer` already gives upright frames, so nothing is flipped;
- proprioception appended after fusion: `get_obs()[:24]` (pen) / `get_obs()[:30]` (relocate). In both
  mj_envs v0 and gymnasium-robotics v1 `get_obs` starts with `qpos[:-6]`, the hand joint positions
  (pen: 24 finger and wrist joints; relocate: 6 arm joints ARTx..ARRz + 24 hand joints) before the
  object's 6 joints, so the proprio is `qpos[:24]` / `qpos[:30]` here;
- success: an episode succeeds when `goal_achieved` holds on more than 20 (pen) / 25 (relocate) steps
  (mj_envs `evaluate_success`); `goal_achieved` is v1's per-step `info["success"]` (pen: pen within
  0.075 of the target and orientation dot product > 0.95; relocate: ball within 0.1 of the target);
- 100 demonstrations, 25 evaluation episodes, episode i seeded seed + i (the env's own np_random draws
  the target orientation / the ball and target positions, as mj_envs' `reset_model`).

Differences that cannot be avoided: MuJoCo 3.3 instead of MuJoCo 2.0 + mujoco-py (the same model
files), so simulated trajectories of the same actions drift apart over time.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from tasks.demos import check_demos as check_demos  # the adapter API: demo loader and its check
from tasks.demos import load_demos as load_demos
from tasks.spec import TaskSpec

CAMERA = "vil_camera"
PEN_DROP_HEIGHT = 0.075  # mj_envs pen_v0.py: `if obj_pos[2] < 0.075: done = True`
INSTALL = "pip install 'cortexbench-harness[adroit]'  (gymnasium-robotics==1.4.2, mujoco==3.3.0)"
ENV_CLASSES = {
    "AdroitHandPen-v1": "gymnasium_robotics.envs.adroit_hand.adroit_pen:AdroitHandPenEnv",
    "AdroitHandRelocate-v1": "gymnasium_robotics.envs.adroit_hand.adroit_relocate:AdroitHandRelocateEnv",
}
# Minari's ports of the D4RL expert datasets (Farama minari-dataset-generation-scripts, scripts/D4RL/adroit):
# the D4RL actions replayed in AdroitHand*-v1 from each episode's initial state.
MINARI_DATASETS = {"adroit-pen": "D4RL/pen/expert-v2", "adroit-relocate": "D4RL/relocate/expert-v2"}


def _task(
    short: str, env_id: str, upstream: str, horizon: int, proprio: int, action_dim: int, version: int = 1
) -> TaskSpec:
    return TaskSpec(
        name=f"adroit-{short}",
        suite="adroit",
        version=version,
        adapter="tasks.adroit",
        env_id=env_id,
        upstream_env_id=upstream,
        camera=CAMERA,
        render_size=256,
        horizon=horizon,
        action_dim=action_dim,
        proprio_dim=proprio,
        proprio_key="proprio",
        n_demos=100,
        eval_episodes=25,
        metric=f"adroit_{short}",
        official_demo_file=f"{upstream}.pickle",
        requires=("gymnasium_robotics", "mujoco"),
        install_hint=INSTALL,
    )


# pen v2: episodes end when the pen drops, as mj_envs pen-v0 (v1 ran the full horizon)
PEN = _task("pen", "AdroitHandPen-v1", "pen-v0", horizon=100, proprio=24, action_dim=24, version=2)
RELOCATE = _task("relocate", "AdroitHandRelocate-v1", "relocate-v0", horizon=200, proprio=30, action_dim=30)
TASKS = (PEN, RELOCATE)


def env_class(env_id: str) -> type:
    """The gymnasium-robotics env class behind a task's env id (imported on first use)."""
    import importlib

    module, name = ENV_CLASSES[env_id].split(":")
    return getattr(importlib.import_module(module), name)


# What `encoder=state` reads on Adroit (the hand's joint positions enter the head beside it, as for pixels).
STATE_DESCRIPTION = "the AdroitHand*-v1 observation (pen 45-d, relocate 39-d): hand joints, object and target poses"


class AdroitEnv(gym.Env):
    """A CortexBench Adroit task as a gymnasium env.

    Observations: `pixels` (uint8, omitted with render=False), `proprio` (hand joint positions, 24 / 30)
    and `state` (the v1 observation, 45 / 39, for state-based experts; never given to visual policies).
    Info: `goal_achieved` (0/1 per step), from which the success metric is computed. A pen episode
    terminates when the pen drops (`pen_dropped`), as mj_envs pen-v0.
    """

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (gymnasium API)

    def __init__(self, spec: TaskSpec, render_size: int, quality: str, horizon: int, render: bool = True):
        from tasks.rendering import Camera, apply_quality

        self._env = env_class(spec.env_id)()
        self.model, self.data = self._env.model, self._env.data
        apply_quality(self.model, quality)
        self._camera = Camera(self.model, spec.camera, render_size, share=f"{spec.name}/{quality}") if render else None
        self.spec_ = spec
        self.horizon = horizon
        self._t = 0
        self._state: np.ndarray | None = None
        self.action_space = gym.spaces.Box(-1.0, 1.0, (spec.action_dim,), np.float32)
        spaces = {
            "proprio": gym.spaces.Box(-np.inf, np.inf, (spec.proprio_dim,), np.float32),
            "state": self._env.observation_space,
        }
        if render:
            spaces["pixels"] = gym.spaces.Box(0, 255, (render_size, render_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {
            "proprio": self.data.qpos[: self.spec_.proprio_dim].astype(np.float32),  # == get_obs()[:24 | :30]
            "state": np.asarray(self._state, dtype=np.float64),
        }
        if self._camera is not None:
            obs["pixels"] = self._camera.render(self.data)
        return obs

    def _state_dict(self, state: dict) -> dict:
        """The keys v1's `set_env_state` accepts, as float64; mj_envs' state dicts (and the official
        pickles' `init_state_dict`) carry extra, derived keys (`hand_qpos`, `palm_pos`) that v1 refuses."""
        return {k: np.asarray(state[k], dtype=np.float64) for k in self._env._state_space.spaces}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """`options={"initial_state_dict": ...}` restores a recorded initial state (mj_envs' `set_env_state`)."""
        super().reset(seed=seed)
        if options and "initial_state_dict" in options:
            options = options | {"initial_state_dict": self._state_dict(options["initial_state_dict"])}
        self._state, _ = self._env.reset(seed=seed, options=options)
        self._t = 0
        return self._observation(), {}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self._state, reward, _, _, info = self._env.step(action)
        self._t += 1
        goal = {"goal_achieved": float(info["success"])}
        return self._observation(), float(reward), self.pen_dropped(), self._t >= self.horizon, goal

    def pen_dropped(self) -> bool:
        """mj_envs pen-v0's `done`: the pen body below PEN_DROP_HEIGHT (never for relocate)."""
        if self.spec_.upstream_env_id != "pen-v0":
            return False
        return bool(self.data.xpos[self._env.obj_body_id][2] < PEN_DROP_HEIGHT)

    def render(self) -> np.ndarray:
        assert self._camera is not None, "created with render=False"
        return self._camera.render(self.data)

    def get_env_state(self) -> dict:
        return self._env.get_env_state()

    def set_env_state(self, state: dict) -> None:
        self._env.set_env_state(self._state_dict(state))
        self._state = self._env._get_obs()

    def close(self):
        if self._camera is not None:
            self._camera.close()
        self._env.close()


def make_env(spec: TaskSpec, render_size: int, quality: str, horizon: int, render: bool = True) -> AdroitEnv:
    return AdroitEnv(spec, render_size=render_size, quality=quality, horizon=horizon, render=render)


# ------------------------------------------------------------------------------------------------
# Official pickles: re-render from per-step physics states where the pickle has them
# ------------------------------------------------------------------------------------------------
def _state_dicts(spec: TaskSpec, path: dict) -> list[dict] | None:
    """Per-step `set_env_state` dicts, if the path stores per-step qpos/qvel (plus the initial scene)."""
    infos = path.get("env_infos", {})
    init = path.get("init_state_dict")
    if init is None or "qpos" not in infos or "qvel" not in infos:
        return None
    scene = {k: np.asarray(v, dtype=np.float64) for k, v in init.items() if k not in ("qpos", "qvel")}
    qpos, qvel = np.asarray(infos["qpos"], np.float64), np.asarray(infos["qvel"], np.float64)
    return [scene | {"qpos": qpos[t], "qvel": qvel[t]} for t in range(len(qpos))]


def rerender_official_path(spec: TaskSpec, path: dict, render_size: int, quality: str):
    """(frames, info) re-rendered from the path's per-step states, or None when the pickle has none.

    What the official Adroit pickles store per step is not documented; eai-vc reads only `images`,
    `actions`, `env_infos['proprio']` and `init_state_dict`. With only an initial state, replaying the
    actions in MuJoCo 3 drifts away from the recorded (MuJoCo 2.0) trajectory, and frames that drift
    from the recorded actions would teach the policy wrong labels; the pickle's own images (mujoco-py,
    already flipped upright by the collector) are then used, and the run record says so.
    """
    states = _state_dicts(spec, path)
    if states is None:
        return None
    env = AdroitEnv(spec, render_size=render_size, quality=quality, horizon=1)
    try:
        env.reset(seed=0)
        frames = np.empty((len(states), render_size, render_size, 3), np.uint8)
        for t, state in enumerate(states):
            env.set_env_state(state)
            frames[t] = env.render()
    finally:
        env.close()
    return frames, {"frames": "re-rendered from env_infos qpos/qvel + init_state_dict"}


def render_official_first_frames(spec: TaskSpec, paths: list[dict], render_size: int, quality: str) -> list:
    """Each path's first state (`init_state_dict`, mj_envs' `get_env_state()` at reset) rendered by us, for the
    frame gap to the pickle's first image (tasks/demos/framegap.py); None where a path has no initial state."""
    env = AdroitEnv(spec, render_size=render_size, quality=quality, horizon=1)
    try:
        frames = []
        for path in paths:
            init = path.get("init_state_dict")
            if init is None:
                frames.append(None)
                continue
            env.reset(seed=0, options={"initial_state_dict": init})
            frames.append(env.render())
        return frames
    finally:
        env.close()


# ------------------------------------------------------------------------------------------------
# Offline experts
# ------------------------------------------------------------------------------------------------
def scripted_expert(spec: TaskSpec):
    """The suite's offline expert as `expert(observation) -> action` (tasks/experts)."""
    from tasks.experts import load_expert

    return load_expert(spec)


def expert_info(spec: TaskSpec) -> dict:
    from tasks.experts import expert_info as info

    return info(spec)
