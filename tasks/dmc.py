"""DeepMind Control (DMC) suite: the five CortexBench tasks on dm_control's own suite (no gym shim).

Protocol (reference/cortexbench.md 1.1; eai-vc `DMC_BC_config.yaml`, `gym_wrapper.py`, `train_loop.py`):
tasks walker-stand, walker-walk, reacher-easy, cheetah-run, finger-spin (env ids `dmc_<domain>_<task>-v1`
registered by the aravindr93/dmc2gym fork), frames 256x256 from `camera_id=0` through
`physics.render` (what dmc2gym's `render` calls), no proprioception, 3-frame FLARE history,
100 demonstrations, 10 evaluation episodes (25 under the Theia protocol), score = return / 10, i.e.
the return normalised by the maximum 1000 (eai-vc issue #14, aravindr93, 2024-05-03).

Episode horizon and action repeat: 1000 policy steps, action repeat 1 (each policy step is one
control step of the dm_control task, whose own time limit is 1000 control steps for all five tasks:
walker 25 s / 0.025 s, cheetah 10 s / 0.01 s, reacher and finger 20 s / 0.02 s). The fork that
registered the env ids (aravindr93/dmc2gym @0d7581f) is not public, so this was settled from the
evidence below; confidence: moderate-high for the horizon, moderate for the action repeat.

1. The demo returns reported in eai-vc issue #14 (walker_stand 971, walker_walk 918, reacher_easy 963,
   cheetah_run 759, finger_spin 743) exceed what fewer than ~970 control steps can give (every suite
   reward is at most 1 per control step). A demo therefore covers (nearly) the whole 1000-step time
   limit. With dmc2gym's action repeat k the rewards of the k control steps are summed, so the
   returns alone cannot tell k apart, but they do rule out any horizon shorter than 1000 / k.
2. `DMC_BC_config.yaml` says "Experts trained with DDPG from URLB". URLB (rll-research/url_benchmark,
   `pretrain.yaml`) trains state-based agents with `action_repeat: 1` ("set to 2 for pixels"), and its
   published DDPG expert returns (walker_stand 984, walker_walk 971, issue url_benchmark#1) sit just
   above the demo returns, as expected for the same agents. A policy trained at action repeat 1
   collects its demonstrations at action repeat 1.
3. dmc2gym's defaults are `frame_skip=1`, `episode_length=1000`, i.e. `max_episode_steps = 1000`;
   its first public versions registered exactly the id pattern `dmc_<domain>_<task>-v1` with
   `max_episode_steps=1000` and no frame skip (denisyarats/dmc2gym). mjrl's `GymEnv` takes its horizon
   from `max_episode_steps` and uses `act_repeat=1`.

When the official pickles are present the loader checks both numbers on the data itself
(`check_official_paths`): every path must hold `horizon` steps (`len(p['actions'])`), and stepping our
simulator from `env_infos['internal_state'][t]` with `actions[t]` must land on `internal_state[t+1]`
after `action_repeat` control steps (dmc2gym records `internal_state` before each step, so
`internal_state[t]` is the state the frame `images[t]` shows). A different action repeat raises
`OfficialDemoMismatchError` naming the value the data imply; a different length warns and is recorded
(`horizon_matches: false`). The fix is to change the TaskSpec fields and bump the task version.

Other choices, and what could not be matched:
- Rendering quality `fast` sets `offsamples = 0` and turns off shadow casting on the physics model
  before the rendering context is created (tasks/rendering.py); `faithful` keeps MuJoCo's
  defaults, as dm_control renders them. Frames come from tasks/rendering.py's `Camera` (one context shared
  by a task's envs in a process), pixel for pixel what dm_control's `physics.render` gives.
- `visualize_reward` is on (`VISUALIZE_REWARD`; task version 2, v1 had it off): the body's and effector's
  materials blend from their default colours to green as the reward nears 1 (dm_control `suite/base.py`
  `_set_reward_colors`, set after every step and at reset). dmc2gym's `make(..., visualize_reward=True,
  from_pixels=False)` turns it on by default and refuses it only with `from_pixels=True`; CortexBench builds
  state-based envs (`gym.make("dmc_<domain>_<task>-v1")`) and renders them itself (eai-vc `gym_wrapper.py`,
  `MuJoCoPixelObsWrapper`), so nothing in the reference turns it off. The fork's registration (not public)
  is the one unknown, so with the official pickles the loader checks it on their frames: for each demo, the
  stored state with the highest reward is rendered with the colours on and off and the closer render to the
  pickle's image wins (`detect_visualize_reward`, the way reacher's target is matched). The result is in
  `demos.visualize_reward`; a contradiction warns (the fix is to flip `VISUALIZE_REWARD` and bump the task
  version). Re-rendered demo frames use the same colours as evaluation frames, so the two always agree.
- Evaluation start states (`protocol.eval_starts`, recorded in the record's settings). The reference's task
  draws every initial state from one `RandomState` made when the env is built (dmc2gym's
  `task_kwargs={'random': ...}`); mjrl's per-episode `env.set_seed(seed + i)` reaches only dmc2gym's
  `seed()`, which seeds the action and observation spaces, so that generator keeps advancing over the
  episodes of an evaluation and over the 20 evaluations of a run, and each eai-vc evaluation also resets the
  env once per logging-only rollout (`rollout_from_init_states`, which calls `env.reset()` before setting
  the demo's state). `eval_starts=reference` (the default) reproduces that stream: `eval_start_stream`
  steps one task generator, seeded with the cell seed, through the same resets (n scored, then n
  logging-only per evaluation) in this process and hands each evaluation environment the generator state
  its episode starts from (`reset(options={"task_random_state": ...})`), so the lockstep episodes start
  exactly where the reference's one environment would. What cannot be reproduced: the generator's seed (the
  dmc2gym fork's registration, aravindr93/dmc2gym @0d7581f, is not public), so the draws are the
  reference's in kind, not in value. `eval_starts=seeded` gives episode i a fresh `RandomState(seed + i)`
  at every evaluation (the same start states every time; the harness's behaviour before issue 13).
- MuJoCo 3.3 / dm_control 1.0.28 replace MuJoCo 2.x / dm_control 1.0.5.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from tasks.demos import check_demos as check_demos  # the adapter API: demo loader and its check
from tasks.demos import load_demos as load_demos
from tasks.demos.framegap import frame_gap
from tasks.spec import TaskSpec

INSTALL = "pip install 'cortexbench-harness[dmc]'  (dm_control==1.0.28, mujoco==3.3.0)"
HORIZON = 1000
ACTION_REPEAT = 1
CAMERA_ID = 0
VISUALIZE_REWARD = True  # dmc2gym's default for state-based envs (module docstring)
# A reward below this colours the body too little to tell the two renderings apart (blend = reward ** 4).
VISUALIZE_MIN_REWARD = 0.7


class OfficialDemoMismatchError(ValueError):
    """The official demonstrations contradict the task's recorded horizon or action repeat."""


def _task(domain: str, task: str) -> TaskSpec:
    upstream = f"dmc_{domain}_{task}-v1"
    return TaskSpec(
        name=f"dmc-{domain}-{task}".replace("_", "-"),
        suite="dmc",
        version=2,  # 2: visualize_reward on
        adapter="tasks.dmc",
        env_id=f"{domain}-{task}",
        upstream_env_id=upstream,
        camera=str(CAMERA_ID),
        render_size=256,
        horizon=HORIZON,
        action_repeat=ACTION_REPEAT,
        action_dim={"walker": 6, "cheetah": 6, "reacher": 2, "finger": 2}[domain],
        proprio_dim=0,
        n_demos=100,
        eval_episodes=10,
        metric="return_div_10",
        official_demo_file=f"{upstream}.pickle",
        requires=("dm_control", "mujoco"),
        install_hint=INSTALL,
        notes="horizon 1000 / action repeat 1: evidence in the tasks/dmc.py docstring",
    )


WALKER_STAND = _task("walker", "stand")
WALKER_WALK = _task("walker", "walk")
REACHER_EASY = _task("reacher", "easy")
CHEETAH_RUN = _task("cheetah", "run")
FINGER_SPIN = _task("finger", "spin")
TASKS = (WALKER_STAND, WALKER_WALK, REACHER_EASY, CHEETAH_RUN, FINGER_SPIN)


# What `encoder=state` reads on DMC (the record also gives its size per task).
STATE_DESCRIPTION = (
    "dm_control's observation dict flattened in the task's own (fixed) key order, as dmc2gym flattens it "
    "(e.g. walker: orientations, height, velocity)"
)


def _flat(observation: dict[str, Any]) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in observation.values()])


class DMCEnv(gym.Env):
    """A CortexBench DMC task as a gymnasium env.

    Observations: `pixels` (uint8, omitted with render=False), `proprio` (empty: CortexBench appends
    none for DMC) and `state` (dm_control's observation dict flattened in its own order, for the
    state-based experts; never given to visual policies). An episode ends after `horizon` policy
    steps or at dm_control's time limit, whichever comes first.
    """

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (gymnasium API)

    def __init__(self, spec: TaskSpec, render_size: int, quality: str, horizon: int, render: bool = True):
        from dm_control import suite

        from tasks.rendering import Camera, apply_quality

        domain, task = spec.env_id.split("-", 1)
        self._env = suite.load(domain, task, task_kwargs={"random": 0}, visualize_reward=VISUALIZE_REWARD)
        self.physics = self._env.physics
        self.default_colours = self.physics.model.mat_rgba.copy()  # before any reset colours them by reward
        apply_quality(self.physics.model.ptr, quality)  # before the first render creates the GL context
        limit = int(self._env._step_limit) // spec.action_repeat
        if horizon > limit:
            raise ValueError(f"{spec.name} episodes are at most {limit} policy steps, asked for {horizon}")
        self.spec_ = spec
        self.horizon = horizon
        self.render_size = render_size
        self._camera = (
            Camera(self.physics.model.ptr, CAMERA_ID, render_size, share=f"{spec.name}/{quality}") if render else None
        )
        self._t = 0
        self._state: np.ndarray | None = None
        action_spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(
            action_spec.minimum.astype(np.float32), action_spec.maximum.astype(np.float32), dtype=np.float32
        )
        state_dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
        spaces = {
            "proprio": gym.spaces.Box(-np.inf, np.inf, (0,), np.float32),
            "state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float64),
        }
        if render:
            spaces["pixels"] = gym.spaces.Box(0, 255, (render_size, render_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

    def render(self) -> np.ndarray:
        """The current frame: uint8 [size, size, 3], upright; the same pixels as dm_control's
        `physics.render(size, size, camera_id=0)`, through the task's shared rendering context (tasks/rendering.py)."""
        assert self._camera is not None, "created with render=False"
        return self._camera.render(self.physics.data.ptr)

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {"proprio": np.zeros(0, np.float32), "state": self._state}
        if self._camera is not None:
            obs["pixels"] = self.render()
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """`options={"task_random_state": state}` starts the episode from that state of the task's generator
        (numpy's `RandomState.get_state()`), e.g. a position in the reference's stream (`eval_start_stream`)."""
        super().reset(seed=seed)
        if seed is not None:
            self._env.task._random = np.random.RandomState(seed)  # the task draws its initial state from here
        if options and options.get("task_random_state") is not None:
            self._env.task._random = np.random.RandomState()
            self._env.task._random.set_state(options["task_random_state"])
        self._state = _flat(self._env.reset().observation)
        self._t = 0
        return self._observation(), {}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, self.action_space.high)
        reward, last = 0.0, False
        for _ in range(self.spec_.action_repeat):  # dmc2gym's frame_skip: the same action, rewards summed
            time_step = self._env.step(action)
            reward += time_step.reward or 0.0
            last = time_step.last()
            if last:
                break
        self._state = _flat(time_step.observation)
        self._t += 1
        return self._observation(), float(reward), False, last or self._t >= self.horizon, {}

    def physics_state(self) -> np.ndarray:
        """dm_control's `physics.get_state()` (qpos, qvel, act): what dmc2gym stores as `internal_state`."""
        return self.physics.get_state().copy()

    def set_physics_state(self, state: np.ndarray, at_reset: bool = False) -> None:
        """Set qpos, qvel, act and recompute positions. The reward colours follow the state as after a step, or
        with `at_reset` as at an episode's start, where dm_control reads the reward inside `reset_context`,
        before positions are recomputed (what the first frame of an episode shows)."""
        with self.physics.reset_context():  # runs mj_forward, so positions of every body follow the state
            self.physics.set_state(np.asarray(state, dtype=np.float64))
            if at_reset:
                self.colour_by_reward()
        if not at_reset:
            self.colour_by_reward()

    def colour_by_reward(self, visualize: bool | None = None) -> None:
        """Colour the materials for the current state as dm_control does after a step (`visualize`: override
        the task's setting; off restores the default colours)."""
        task = self._env.task
        if visualize is False or (visualize is None and not task.visualize_reward):
            self.physics.model.mat_rgba[:] = self.default_colours
            return
        previous, task.visualize_reward = task.visualize_reward, True
        try:
            task.after_step(self.physics)
        finally:
            task.visualize_reward = previous

    def close(self):
        if self._camera is not None:
            self._camera.close()
        self.physics.free()


def make_env(spec: TaskSpec, render_size: int, quality: str, horizon: int, render: bool = True) -> DMCEnv:
    return DMCEnv(spec, render_size=render_size, quality=quality, horizon=horizon, render=render)


# Resets the reference makes per evaluation besides the scored episodes: eai-vc's logging-only rollouts from
# the first n demos' initial states (`rollout_from_init_states` resets before setting each state).
LOGGING_RESETS_PER_EPISODE = 1


def eval_start_stream(spec: TaskSpec, seed: int, n: int) -> Callable[[], list[dict]]:
    """`next_evaluation() -> [reset options] * n`: the reference's start states (module docstring), one call per
    evaluation. A task generator seeded `seed` goes through the reference's resets in order, n scored episodes
    and then n logging-only resets per evaluation; each option holds the generator state an episode starts from.
    The resets run in a simulator of its own (no rendering): an initial state depends only on the generator."""
    from dm_control import suite

    domain, task = spec.env_id.split("-", 1)
    env = suite.load(domain, task, task_kwargs={"random": seed})

    def next_evaluation() -> list[dict]:
        options = []
        for _ in range(n):
            options.append({"task_random_state": env.task.random.get_state()})
            env.reset()
        for _ in range(n * LOGGING_RESETS_PER_EPISODE):
            env.reset()
        return options

    return next_evaluation


# ------------------------------------------------------------------------------------------------
# Demonstrations: frames re-rendered from stored physics states, and checks of the official pickles
# ------------------------------------------------------------------------------------------------
def render_states(env: DMCEnv, states: np.ndarray) -> np.ndarray:
    """Frames of an episode's physics states (dmc2gym's `internal_state`: the first one the reset state),
    rendered exactly like evaluation frames."""
    frames = np.empty((len(states), env.render_size, env.render_size, 3), np.uint8)
    for t, state in enumerate(states):
        env.set_physics_state(state, at_reset=t == 0)
        frames[t] = env.render()
    return frames


def _downsample(image: np.ndarray, size: int) -> np.ndarray:
    factor = image.shape[0] // size
    if factor * size != image.shape[0]:
        from PIL import Image

        return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), np.float32)
    return image.reshape(size, factor, size, factor, 3).mean(axis=(1, 3), dtype=np.float32)


def fit_reacher_target(
    spec: TaskSpec, state: np.ndarray, image: np.ndarray, size: int = 64
) -> tuple[np.ndarray, float]:
    """The reacher target's (x, y), which dm_control keeps in the model (`geom_pos['target']`), not in the
    physics state: found by rendering the demo's first state with candidate targets and matching `image`.

    Coarse grid over the reset distribution (radius 0.05-0.20; spacing 0.05 < the target's diameter 0.1,
    so some candidate overlaps the true target), then five rounds of a 3x3 local search halving the
    step. Returns the position and the mean absolute pixel error of the best candidate at `size`.
    """
    env = DMCEnv(spec, render_size=size, quality="fast", horizon=1)  # the argmin does not depend on quality
    try:
        env.reset(seed=0)
        env.set_physics_state(state)
        reference = _downsample(np.asarray(image), size)

        def error(xy: np.ndarray) -> float:
            env.physics.named.model.geom_pos["target", ["x", "y"]] = xy
            env.set_physics_state(state, at_reset=True)  # positions, and colours as the episode's first frame
            return float(np.mean(np.abs(env.render().astype(np.float32) - reference)))

        grid = [np.array([x, y]) for x in np.linspace(-0.2, 0.2, 9) for y in np.linspace(-0.2, 0.2, 9)]
        best = min((xy for xy in grid if np.hypot(*xy) <= 0.23), key=error)
        step = 0.025
        for _ in range(5):
            best = min((best + step * np.array([i, j]) for i in (-1, 0, 1) for j in (-1, 0, 1)), key=error)
            step /= 2
        return best, error(best)
    finally:
        env.close()


def rerender_official_path(spec: TaskSpec, path: dict, render_size: int, quality: str) -> tuple[np.ndarray, dict]:
    """(frames, info): the path's frames re-rendered from `env_infos['internal_state']` with our renderer."""
    states = np.asarray(path["env_infos"]["internal_state"], dtype=np.float64)
    info: dict = {"frames": "re-rendered from env_infos internal_state"}
    env = DMCEnv(spec, render_size=render_size, quality=quality, horizon=1)
    try:
        env.reset(seed=0)
        if spec.env_id.startswith("reacher-"):
            if "images" not in path:
                raise OfficialDemoMismatchError(
                    "reacher demonstrations need their first image: the target position is not in internal_state"
                )
            xy, _ = fit_reacher_target(spec, states[0], path["images"][0])
            env.physics.named.model.geom_pos["target", ["x", "y"]] = xy
            info["reacher_target_xy"] = [round(float(v), 4) for v in xy]
        if "images" in path:
            info["visualize_reward"] = detect_visualize_reward(env, states, path["images"])
        frames = render_states(env, states)
        if "images" in path:  # how far our first frame is from the pickle's own (MuJoCo 2 renderer)
            info["frame_gap"] = frame_gap(frames[0], path["images"][0])
            if np.shape(path["images"])[1:] == frames.shape[1:]:
                info["first_frame_mean_abs_diff"] = round(info["frame_gap"]["mean_abs_diff"], 3)
        return frames, info
    finally:
        env.close()


def detect_visualize_reward(env: DMCEnv, states: np.ndarray, images, size: int = 64, candidates: int = 25) -> dict:
    """Whether the pickle's frames were rendered with `visualize_reward`: of up to `candidates` evenly spaced
    states, the one with the highest reward is rendered with reward colours on and off, and the render closer
    to the pickle's image (mean absolute error at `size` px) decides. `detected` is None when no state earns
    VISUALIZE_MIN_REWARD (the colours would barely differ). Leaves `env` coloured as its task says."""
    first = 1 if len(states) > 1 else 0  # the reset frame's colours come from another reward (set_physics_state)
    picks = np.unique(np.linspace(first, len(states) - 1, min(candidates, len(states) - first)).astype(int))
    rewards = []
    for t in picks:
        env.set_physics_state(states[t])
        rewards.append(float(env._env.task.get_reward(env.physics)))
    best = int(picks[int(np.argmax(rewards))])
    out: dict = {"used": VISUALIZE_REWARD, "detected": None, "frame": best, "reward": round(max(rewards), 3)}
    if max(rewards) < VISUALIZE_MIN_REWARD:
        return out
    reference = _downsample(np.asarray(images[best]), size)
    errors = {}
    env.set_physics_state(states[best], at_reset=best == 0)
    for visualize in (True, False):
        env.colour_by_reward(visualize)
        frame = env.physics.render(size, size, camera_id=CAMERA_ID).astype(np.float32)
        errors[visualize] = float(np.mean(np.abs(frame - reference)))
    env.colour_by_reward()
    out |= {"detected": errors[True] < errors[False], "error_on": round(errors[True], 2)}
    out["error_off"] = round(errors[False], 2)
    if out["detected"] != VISUALIZE_REWARD:
        warnings.warn(
            f"{env.spec_.name}: the official frames look rendered with visualize_reward={out['detected']} (frame "
            f"{best}: error {errors[True]:.1f} with the reward colours, {errors[False]:.1f} without), the task "
            f"uses {VISUALIZE_REWARD}; set VISUALIZE_REWARD in tasks/dmc.py and bump the task version",
            stacklevel=2,
        )
    return out


def action_repeat_error(spec: TaskSpec, states: np.ndarray, actions: np.ndarray, repeat: int, steps: int = 5) -> float:
    """Largest |state| error after replaying `actions[t]` for `repeat` control steps from `states[t]`."""
    env = DMCEnv(spec, render_size=64, quality="fast", horizon=1, render=False)
    try:
        env.reset(seed=0)
        worst = 0.0
        for t in range(min(steps, len(actions) - 1)):
            env.set_physics_state(states[t])
            for _ in range(repeat):
                env._env.step(np.clip(actions[t], env.action_space.low, env.action_space.high))
            worst = max(worst, float(np.max(np.abs(env.physics_state() - states[t + 1]))))
        return worst
    finally:
        env.close()


def check_official_paths(spec: TaskSpec, paths: list[dict], source: str) -> dict:
    """Check the pickles' episode length and action repeat against the spec; returns what was measured.

    A different action repeat raises `OfficialDemoMismatchError` (the frames and actions would belong to
    another protocol). A different episode length warns and is recorded (`horizon_matches`): the demos
    still train, but the evaluation horizon may not be the one the demonstrations were collected with.
    """
    lengths = sorted({len(p["actions"]) for p in paths})
    if lengths != [spec.horizon]:
        warnings.warn(
            f"{source}: demonstrations hold {lengths} steps, the task records horizon {spec.horizon}. If these are "
            f"the official pickles, set horizon={lengths[-1]} (and the matching action_repeat) in tasks/dmc.py and "
            f"bump the task version; the evidence for {spec.horizon} is in the tasks/dmc.py docstring.",
            stacklevel=2,
        )
    infos = paths[0].get("env_infos", {})
    if "internal_state" not in infos:
        raise OfficialDemoMismatchError(f"{source}: env_infos has no 'internal_state' (dmc2gym's physics state)")
    states = np.asarray(infos["internal_state"], dtype=np.float64)
    actions = np.asarray(paths[0]["actions"], dtype=np.float64)
    errors = {k: action_repeat_error(spec, states, actions, k) for k in (1, 2, 4, 8)}
    best = min(errors, key=errors.get)
    if best != spec.action_repeat:
        raise OfficialDemoMismatchError(
            f"{source}: replaying the demonstration's actions from its stored states matches action repeat "
            f"{best} (largest state error by repeat: { {k: f'{v:.2e}' for k, v in errors.items()} }), the task "
            f"records {spec.action_repeat}. Set action_repeat={best} and horizon={1000 // best} in tasks/dmc.py and "
            f"bump the task version."
        )
    if errors[best] > 1e-2:  # one control step of MuJoCo 2 vs 3 differs by far less than this
        warnings.warn(
            f"{source}: no action repeat reproduces internal_state[t+1] from internal_state[t] (best error "
            f"{errors[best]:.2e} at repeat {best}); the states may not be the pre-step states dmc2gym records, "
            f"so re-rendered frames could be one step off",
            stacklevel=2,
        )
    return {
        "episode_steps": lengths,
        "horizon_matches": lengths == [spec.horizon],
        "action_repeat_matches": True,
        "replay_state_error": float(f"{errors[best]:.3g}"),
    }


# ------------------------------------------------------------------------------------------------
# Offline experts (state-based, trained by the harness: tasks/experts)
# ------------------------------------------------------------------------------------------------
def scripted_expert(spec: TaskSpec):
    """The suite's offline expert as `expert(observation) -> action` (here: a trained state-based policy)."""
    from tasks.experts import load_expert

    return load_expert(spec)


def expert_info(spec: TaskSpec) -> dict:
    from tasks.experts import expert_info as info

    return info(spec)
