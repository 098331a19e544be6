"""CortexBench's official demonstration pickles (`demos.source=official`, or a path to one).

Official pickles (reference/cortexbench.md 1.2) are a list of path dicts with `images`
(T,256,256,3) uint8, `actions`, `rewards` and `env_infos` (`gripper_proprio`, `proprio`,
`internal_state`). They are read without running pickled code. Where a pickle stores physics states
(DMC's `internal_state`; Adroit's per-step qpos/qvel if present) its frames are re-rendered from them
with our renderer (`tasks/demos/rerender.py`), so demo and evaluation frames match. Either way the gap
between the pickle's first frames and ours is measured and recorded (`frame_gap`, tasks/demos/framegap.py).

`official_format_paths` writes the same layout from our own simulators and experts, so the loader is
exercised offline with data whose true states are known (tests, converters).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from encoders.storage import DATA_ENV, atomic_write_bytes, data_root, sha256_file
from tasks.demos.demoset import Demo, DemoSet, DemosNotFoundError, demo_stats
from tasks.demos.framegap import frame_gap
from tasks.demos.framegap import summarise as summarise_gaps
from tasks.demos.rerender import rerender_official
from tasks.demos.scripted import SCRIPTED_SEED_BASE
from tasks.metrics import episode_success
from tasks.spec import TaskSpec


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
        success = episode_success(spec.metric, np.asarray(p["rewards"]), infos)
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
                stored_frames=np.asarray(p["images"], dtype=np.uint8) if "images" in p else None,
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
    `observations` (the state vector), `actions`, `rewards`, `env_infos` (the proprio key, `goal_achieved` / `success`, and DMC's
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
            path: dict = {"images": [], "observations": [], "actions": [], "rewards": [], "env_infos": {}}
            infos = path["env_infos"]
            if hasattr(env, "get_env_state"):
                path["init_state_dict"] = env.get_env_state()
            for _ in range(horizon):
                path["images"].append(obs["pixels"])
                path["observations"].append(obs["state"])  # mjrl paths' `observations`: the env's state vector
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


def check_official(spec: TaskSpec, path: str | Path | None = None) -> None:
    """Raise `DemosNotFoundError` with the ways to get them when the official pickle is not there."""
    file = official_path(spec, path)
    if not file.is_file():
        raise DemosNotFoundError(
            f"official CortexBench demonstrations for {spec.name!r} are missing: {file}\n"
            f"  get them with `nox -s demos -- {spec.suite}` (downloads and checks the official archive),\n"
            f"  or point at a copy with demos.path=<folder or file>, or set ${DATA_ENV},\n"
            f"  or use offline demonstrations with demos.source=scripted (recorded as such in the run record)."
        )


def load_official(
    spec: TaskSpec,
    n: int,
    path: str | Path | None,
    render_size: int | None = None,
    quality: str = "faithful",
    progress: bool = False,
) -> DemoSet:
    """The first `n` demos of the official pickle (at `path` or in the data folder), re-rendered where possible."""
    file = official_path(spec, path)
    check_official(spec, path)
    paths = read_official_paths(file, n)
    demos = demos_from_paths(paths, spec, str(file))
    sha = sha256_file(file)
    size = render_size or spec.render_size
    frames_from, checks = rerender_official(spec, paths, demos, sha, size, quality, progress)
    if "frame_gap" not in checks:  # the demos train on the pickle's images: how far are they from ours?
        checks["frame_gap"] = first_frame_gap(spec, paths, size, quality)
    return DemoSet(spec.name, "official", demos, sha, frames_from, demo_stats(demos) | checks)


def first_frame_gap(spec: TaskSpec, paths: list[dict], render_size: int, quality: str) -> dict:
    """`frame_gap` of pickle images: the suite's `render_official_first_frames(spec, paths, render_size,
    quality) -> [frame or None]` renders each demo's first state (None: not recoverable from the pickle)."""
    render = getattr(spec.suite_module(), "render_official_first_frames", None)
    if render is None or not all("images" in p for p in paths):
        return summarise_gaps([], f"not measured: {spec.suite} cannot render an official demo's first state")
    ours = render(spec, paths, render_size, quality)
    gaps = [None if o is None else frame_gap(o, p["images"][0]) for o, p in zip(ours, paths, strict=True)]
    return summarise_gaps(gaps, "our render of each demo's first state vs the pickle's first image")
