"""Demonstration sources: CortexBench's official pickles, seeded scripted experts, or a path.

Official pickles (reference/cortexbench.md 1.2) are a list of path dicts with `images`
(T,256,256,3) uint8, `actions`, `rewards` and `env_infos` (`gripper_proprio`, `proprio`,
`internal_state`). Scripted demos are rendered with the same camera, size and quality as the
evaluation, cached on disk one file per demo (written atomically, so an interrupted generation
resumes), and loaded lazily: frames are read only when they are encoded. Concurrent jobs share the
work: each demo file is rendered under its own lock (`encoders.storage`) by whichever job gets there
first, and a committed file is never replaced (its checksum is part of the demo set's fingerprint).

Where an official pickle stores physics states (DMC's `internal_state`; Adroit's per-step qpos/qvel if
present) its frames are re-rendered from them with our renderer (`tasks/rerender.py`), so demo and
evaluation frames match. `expert` (alias `scripted`) collects demos with the suite's offline expert:
MetaWorld's scripted policies, or the harness's own trained / scripted experts for DMC and Adroit
(`tasks/experts`). `minari` replays Minari's D4RL datasets (Adroit, `tasks/minari_source.py`).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from encoders.storage import (
    DATA_ENV,
    atomic_write_bytes,
    data_root,
    demos_cache_root,
    file_lock,
    sha256_file,
    sha256_json,
    sha256_text,
)
from tasks.spec import TaskSpec

SCRIPTED_SEED_BASE = 10_000  # far from the evaluation seeds (100..124, 200..224, 300..324)
SCRIPTED_FORMAT = 1  # bump when the scripted-demo file layout or collection loop changes


class DemosNotFoundError(FileNotFoundError):
    """Official demonstrations are missing; the message says where they were expected and how to get them."""


@dataclass
class Demo:
    """One demonstration. `frames` may be loaded lazily from disk (see `load_frames`)."""

    actions: np.ndarray  # float32 [T, A]
    proprio: np.ndarray  # float32 [T, P] (P may be 0)
    rewards: np.ndarray  # float32 [T]
    success: bool | None = None
    seed: int | None = None
    initial_state: object | None = None
    _frames: np.ndarray | None = None
    _frame_loader: Callable[[], np.ndarray] | None = None

    @property
    def frames(self) -> np.ndarray:
        """uint8 [T, H, W, 3]; read from disk on each access when the demo is lazy."""
        if self._frames is not None:
            return self._frames
        assert self._frame_loader is not None
        return self._frame_loader()

    def __len__(self) -> int:
        return len(self.actions)


@dataclass
class DemoSet:
    task: str
    source: str
    demos: list[Demo]
    content_sha256: str  # of the source file (official) or of the demo files (scripted)
    frames_from: str  # how frames were made: "official pickle images" or "rendered: camera/size/quality"
    stats: dict = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        payload = {
            "task": self.task,
            "source": self.source,
            "content": self.content_sha256,
            "n": len(self.demos),
            "frames": self.frames_from,
        }
        return sha256_json(payload)[:16]

    @property
    def n_frames(self) -> int:
        return sum(len(d) for d in self.demos)

    def describe(self) -> dict:
        return {
            "source": self.source,
            "n": len(self.demos),
            "frames": self.n_frames,
            "sha256": self.content_sha256,
            "fingerprint": self.fingerprint,
            "frames_from": self.frames_from,
            **self.stats,
        }


def demo_stats(demos: list[Demo]) -> dict:
    returns = [float(np.sum(d.rewards)) for d in demos]
    successes = [d.success for d in demos if d.success is not None]
    return {
        "mean_return": float(np.mean(returns)) if returns else None,
        "success_rate": float(np.mean(successes)) if successes else None,
    }


# ----------------------------------------------------------------------------------------------
# Official pickles
# ----------------------------------------------------------------------------------------------
class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickle lists/dicts of numpy arrays and nothing that could run code."""

    ALLOWED = {
        ("builtins", n)
        for n in (
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "int",
            "float",
            "complex",
            "bool",
            "str",
            "bytes",
            "bytearray",
            "slice",
            "range",
        )
    } | {("collections", "OrderedDict"), ("collections", "defaultdict")}
    NUMPY_MODULES = (
        "numpy",
        "numpy.core.multiarray",
        "numpy._core.multiarray",
        "numpy.core.numeric",
        "numpy._core.numeric",
        "numpy.dtypes",
    )

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED or module in self.NUMPY_MODULES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"demo pickle refers to {module}.{name}, which a demo file never needs; refusing to load it"
        )


def episode_success(spec: TaskSpec, rewards: np.ndarray, infos: dict) -> bool | None:
    """Whether an episode succeeded by the task's own metric (None for return-scored tasks like DMC)."""
    from tasks.metrics import episode_value
    from tasks.spec import Episode

    if spec.metric == "return_div_10":
        return None
    needed = {"success_last_step": "success", "adroit_pen": "goal_achieved", "adroit_relocate": "goal_achieved"}
    key = needed.get(spec.metric)
    if key not in infos or not len(infos[key]):
        return None
    episode = Episode(0, np.asarray(rewards), {key: np.asarray(infos[key], dtype=np.float64)})
    return episode_value(spec.metric, episode) > 0


def read_official_paths(path: Path, n: int | None = None) -> list[dict]:
    """The path dicts of an official CortexBench demo pickle (the first `n`), read without running code."""
    with open(path, "rb") as f:
        paths = _ArraysOnlyUnpickler(f).load()
    if not isinstance(paths, list) or not paths or not isinstance(paths[0], dict):
        raise ValueError(f"{path}: expected a list of path dicts (CortexBench demo format)")
    if n is not None and len(paths) < n:
        raise ValueError(f"{path} holds {len(paths)} demonstrations, the protocol asks for {n}")
    return paths if n is None else paths[:n]


def read_official_pickle(path: Path, spec: TaskSpec, n: int) -> list[Demo]:
    """The first `n` paths of an official CortexBench demo pickle."""
    return demos_from_paths(read_official_paths(path, n), spec, str(path))


def demos_from_paths(paths: list[dict], spec: TaskSpec, source: str) -> list[Demo]:
    """Official-format path dicts -> Demos (frames: the pickle's own `images`); `source` names the file in errors."""
    demos = []
    for p in paths:
        infos = p.get("env_infos", {})
        actions = np.asarray(p["actions"], dtype=np.float32)
        if spec.proprio_dim:
            if spec.proprio_key not in infos:
                raise KeyError(f"{source}: env_infos has no {spec.proprio_key!r} (proprioception for {spec.name})")
            proprio = np.asarray(infos[spec.proprio_key], dtype=np.float32)[:, : spec.proprio_dim]
        else:
            proprio = np.zeros((len(actions), 0), np.float32)
        success = episode_success(spec, np.asarray(p["rewards"]), infos)
        state = {k: p[k] for k in ("init_state_dict",) if k in p} or (
            {"internal_state": np.asarray(infos["internal_state"])} if "internal_state" in infos else None
        )
        demos.append(
            Demo(
                actions=actions,
                proprio=proprio,
                rewards=np.asarray(p["rewards"], dtype=np.float32),
                success=success,
                initial_state=state,
                _frames=np.asarray(p["images"], dtype=np.uint8) if "images" in p else None,
            )
        )
    return demos


def write_official_pickle(path: Path, demos: list[Demo], spec: TaskSpec) -> None:
    """Write demos in the official CortexBench pickle layout (used by tests and converters)."""
    paths = []
    for d in demos:
        infos: dict[str, np.ndarray] = {}
        if spec.proprio_key:
            infos[spec.proprio_key] = d.proprio
        paths.append({"images": d.frames, "actions": d.actions, "rewards": d.rewards, "env_infos": infos})
    atomic_write_bytes(Path(path), pickle.dumps(paths, protocol=4))


def official_format_paths(
    spec: TaskSpec,
    n: int,
    horizon: int,
    render_size: int | None = None,
    quality: str = "fast",
    seed_base: int = SCRIPTED_SEED_BASE,
    per_step_states: bool = True,
    expert: Callable[[dict], np.ndarray] | None = None,
) -> list[dict]:
    """Episodes of the suite's offline expert in the official CortexBench pickle layout: `images`,
    `actions`, `rewards`, `env_infos` (the proprio key, `goal_achieved` / `success`, and DMC's
    `internal_state`: the physics state before each step, as dmc2gym records it), and Adroit's
    `init_state_dict` (+ per-step `qpos`/`qvel` with `per_step_states`). For tests and converters:
    it exercises the official loader offline, with data whose true states are known. `expert`
    (default: the suite's offline expert) chooses the actions."""
    suite = spec.suite_module()
    expert = expert or suite.scripted_expert(spec)
    env = suite.make_env(spec, render_size=render_size or spec.render_size, quality=quality, horizon=horizon)
    paths = []
    try:
        for i in range(n):
            obs, _ = env.reset(seed=seed_base + i)
            path: dict = {"images": [], "actions": [], "rewards": [], "env_infos": {}}
            infos = path["env_infos"]
            if hasattr(env, "get_env_state"):
                path["init_state_dict"] = env.get_env_state()
            for _ in range(horizon):
                path["images"].append(obs["pixels"])
                if spec.proprio_key:
                    infos.setdefault(spec.proprio_key, []).append(obs["proprio"])
                if hasattr(env, "physics_state"):
                    infos.setdefault("internal_state", []).append(env.physics_state())
                if per_step_states and hasattr(env, "get_env_state"):
                    state = env.get_env_state()
                    infos.setdefault("qpos", []).append(state["qpos"])
                    infos.setdefault("qvel", []).append(state["qvel"])
                action = expert(obs)
                obs, reward, terminated, truncated, info = env.step(action)
                path["actions"].append(np.asarray(action, np.float32))
                path["rewards"].append(reward)
                for key, value in info.items():
                    infos.setdefault(key, []).append(value)
                if terminated or truncated:
                    break
            path = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in path.items()}
            path["env_infos"] = {k: np.asarray(v) for k, v in infos.items()}
            paths.append(path)
    finally:
        env.close()
    return paths


def write_official_paths(path: Path, paths: list[dict]) -> None:
    """Write path dicts as an official-layout pickle (atomically)."""
    atomic_write_bytes(Path(path), pickle.dumps(paths, protocol=4))


def official_path(spec: TaskSpec, path: str | Path | None = None) -> Path:
    """Where the official pickle is: `path` (file or folder) or the default data folder."""
    if path is not None:
        p = Path(path).expanduser()
        return p / spec.official_demo_file if p.is_dir() else p
    return data_root() / f"{spec.suite}-expert-v1.0" / spec.official_demo_file


def _official(
    spec: TaskSpec,
    n: int,
    path: str | Path | None,
    render_size: int | None = None,
    quality: str = "faithful",
    progress: bool = False,
) -> DemoSet:
    file = official_path(spec, path)
    if not file.is_file():
        raise DemosNotFoundError(
            f"official CortexBench demonstrations for {spec.name!r} are missing: {file}\n"
            f"  get them with `nox -s demos -- {spec.suite}` (downloads and checks the official archive),\n"
            f"  or point at a copy with demos.path=<folder or file>, or set ${DATA_ENV},\n"
            f"  or use offline demonstrations with demos.source=scripted (recorded as such in the run record)."
        )
    paths = read_official_paths(file, n)
    demos = demos_from_paths(paths, spec, str(file))
    sha = sha256_file(file)
    from tasks.rerender import rerender_official

    frames_from, checks = rerender_official(spec, paths, demos, sha, render_size or spec.render_size, quality, progress)
    return DemoSet(spec.name, "official", demos, sha, frames_from, demo_stats(demos) | checks)


# ----------------------------------------------------------------------------------------------
# Scripted experts
# ----------------------------------------------------------------------------------------------
def collect_scripted_demo(
    spec: TaskSpec, seed: int, render_size: int, quality: str, horizon: int
) -> dict[str, np.ndarray]:
    """Run the suite's scripted expert for one seeded episode, rendering the observation before each action."""
    suite = spec.suite_module()
    env = suite.make_env(spec, render_size=render_size, quality=quality, horizon=horizon)
    expert = suite.scripted_expert(spec)
    try:
        obs, _ = env.reset(seed=seed)
        frames, proprio, actions, rewards, successes = [], [], [], [], []
        for _ in range(horizon):
            frames.append(obs["pixels"])
            proprio.append(obs["proprio"])
            action = expert(obs)
            obs, reward, terminated, _, info = env.step(action)
            actions.append(action)
            rewards.append(reward)
            successes.append(info.get("success", info.get("goal_achieved", 0.0)))
            if terminated:
                break
    finally:
        env.close()
    key = "goal_achieved" if spec.metric.startswith("adroit") else "success"
    success = episode_success(spec, np.asarray(rewards), {key: np.asarray(successes)})
    return {
        "frames": np.stack(frames).astype(np.uint8),
        "proprio": np.stack(proprio).astype(np.float32),
        "actions": np.stack(actions).astype(np.float32),
        "rewards": np.asarray(rewards, np.float32),
        "success": np.asarray(successes, np.float32),
        "episode_success": np.asarray(np.nan if success is None else float(success)),
        "seed": np.asarray(seed),
    }


def expert_description(spec: TaskSpec) -> dict | str:
    """What collects `expert` demos: "scripted" (MetaWorld's policies) or the suite's `expert_info`."""
    suite = spec.suite_module()
    return suite.expert_info(spec) if hasattr(suite, "expert_info") else "scripted"


def scripted_dir(spec: TaskSpec, render_size: int, quality: str, horizon: int) -> Path:
    key = f"{spec.name}-v{spec.version}-{spec.camera}-{render_size}px-{quality}-h{horizon}-f{SCRIPTED_FORMAT}"
    expert = expert_description(spec)
    if isinstance(expert, dict) and expert.get("fingerprint"):  # a retrained expert makes new demos
        key += f"-x{expert['fingerprint'][:8]}"
    return demos_cache_root() / "scripted" / key


def _stored_success(z) -> bool | None:
    if "episode_success" in z:  # by the task's metric; NaN for return-scored tasks
        value = float(z["episode_success"])
        return None if np.isnan(value) else bool(value)
    return bool(z["success"][-1] > 0) if len(z["success"]) else None


def lazy_demo(file: Path) -> Demo:
    with np.load(file) as z:
        demo = Demo(
            actions=z["actions"],
            proprio=z["proprio"],
            rewards=z["rewards"],
            success=_stored_success(z),
            seed=int(z["seed"]),
        )

    def frames() -> np.ndarray:
        with np.load(file) as z:
            return z["frames"]

    demo._frame_loader = frames
    return demo


def _scripted(
    spec: TaskSpec, n: int, render_size: int, quality: str, horizon: int, progress: bool, source: str = "scripted"
) -> DemoSet:
    from tqdm.auto import tqdm

    folder = scripted_dir(spec, render_size, quality, horizon)
    files = [folder / f"seed-{SCRIPTED_SEED_BASE + i}.npz" for i in range(n)]
    missing = [f for f in files if not f.is_file()]
    with tqdm(
        total=len(missing),
        desc=f"scripted demos {spec.name}",
        unit="demo",
        disable=None if progress and missing else True,
    ) as bar:
        # First pass: render the demos no other job is rendering; second pass: wait for those and reuse them.
        for blocking in (False, True):
            for file in missing:
                if file.is_file():
                    continue
                lock_path = file.with_name(f".{file.name}.lock")
                with file_lock(lock_path, blocking=blocking, waiting="waiting for another job rendering") as lock:
                    if lock.busy or file.is_file():
                        continue
                    if lock.held:  # temp files of a writer that was killed before its rename
                        for leftover in file.parent.glob(f".{file.name}.*.tmp"):
                            leftover.unlink(missing_ok=True)
                    seed = int(file.stem.split("-")[1])
                    arrays = collect_scripted_demo(spec, seed, render_size, quality, horizon)
                    buffer = io.BytesIO()
                    np.savez_compressed(buffer, **arrays)
                    atomic_write_bytes(file, buffer.getvalue(), replace=False)
                    bar.update(1)
    demos = [lazy_demo(f) for f in files]
    content_sha256 = sha256_text("".join(sha256_file(f) for f in files))
    frames_from = f"rendered: camera={spec.camera} size={render_size} quality={quality} horizon={horizon}"
    expert = expert_description(spec)
    stats = demo_stats(demos) | {"seeds": [SCRIPTED_SEED_BASE, SCRIPTED_SEED_BASE + n - 1], "expert": expert}
    return DemoSet(spec.name, source, demos, content_sha256, frames_from, stats)


def load_demos(
    spec: TaskSpec,
    n: int,
    source: str = "official",
    path: str | Path | None = None,
    render_size: int | None = None,
    quality: str = "faithful",
    horizon: int | None = None,
    progress: bool = True,
) -> DemoSet:
    """Demonstrations for `spec` from `source` = official | expert (alias scripted) | minari |
    <path to an official-format pickle>."""
    if source == "official":
        demos = _official(spec, n, path, render_size, quality, progress)
    elif source in ("scripted", "expert"):
        size, length = render_size or spec.render_size, horizon or spec.horizon
        demos = _scripted(spec, n, size, quality, length, progress, source)
    elif source == "minari":
        from tasks.minari_source import load_minari_demos

        demos = load_minari_demos(spec, n, render_size or spec.render_size, quality, dataset_id=path, progress=progress)
    else:
        file = official_path(spec, source)
        if not file.is_file():
            raise DemosNotFoundError(
                f"demos.source={source!r}: no demo file at {file} (expected official CortexBench pickle layout)"
            )
        demos = _official(spec, n, file, render_size, quality, progress)
        demos.source = f"file:{file}"
    if horizon is not None:
        for d in demos.demos:  # a shorter protocol horizon (smoke) truncates demonstrations too
            d.actions, d.proprio, d.rewards = d.actions[:horizon], d.proprio[:horizon], d.rewards[:horizon]
            if d._frames is not None:
                d._frames = d._frames[:horizon]
    return demos
