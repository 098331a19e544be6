"""TriFinger demonstrations in the official layout (`downsample.pth`): official, scripted, or a folder.

The suite's `load_demos` (the `TaskSpec.demos` contract): it returns a `tasks.demos.DemoSet` like every
other suite, with one extra keyword, `split` (train ids 0.., test ids 100..).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from encoders.storage import atomic_write_bytes, data_root, demos_cache_root, sha256_file, sha256_text
from tasks.demos import Demo, DemoSet, DemosNotFoundError
from tasks.rendering import check_quality
from tasks.trifinger.env import QUALITY_RENDERER, TriFingerCubeEnv, tracked_state
from tasks.trifinger.experts import scripted_expert
from tasks.trifinger.spec import (
    CUBE_WIDTH,
    POLICY_STEP,
    SCALE,
    SIM_STEPS_PER_ACTION,
    TriFingerTaskSpec,
    move_scaled_success,
    reach_scaled_success,
)

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
    root = Path(path).expanduser() if path is not None else data_root()
    if path is None or (root / "trifinger-demos").is_dir():
        return root / "trifinger-demos"
    return root


def scripted_root(spec: TriFingerTaskSpec, quality: str, render_size: int) -> Path:
    key = f"{spec.name}-v{spec.version}-{spec.camera}-{render_size}px-{QUALITY_RENDERER[quality]}-f{DEMO_FORMAT}"
    return demos_cache_root() / "scripted" / key


def _as_demo(path: Path, data: dict[str, np.ndarray], spec: TriFingerTaskSpec, demo_id: int):
    """A `tasks.demos.Demo`: frames = image_60 (read again from the file when encoded), actions =
    delta_ftpos (cm) of the moved fingers, proprio = ft_pos_cur (cm); T rows, the last one only a frame."""
    positions = np.asarray(data["o_pos_cur"], dtype=np.float64) / SCALE
    orientations = np.asarray(data["o_ori_cur"], dtype=np.float64)
    demo = Demo(
        actions=np.asarray(data["delta_ftpos"], dtype=np.float32)[:, : spec.action_dim],
        proprio=np.asarray(data["ft_pos_cur"], dtype=np.float32),
        rewards=np.zeros(len(positions), np.float32),
        success=None,
        seed=demo_id,
        states=tracked_state(np.asarray(data["o_pos_cur"], dtype=np.float64), orientations).astype(np.float32),
        initial_state={
            "robot_position": np.asarray(data["robot_pos"], dtype=np.float64)[0],
            "cube_position": positions[0],
            "cube_orientation": orientations[0],
            "goal_position": positions[0] if spec.fix_cube else positions[-1],
            "goal_orientation": orientations[0] if spec.fix_cube else orientations[-1],
        },
    )
    demo.read_frames_from(lambda: read_downsample(path)["image_60"])
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


def check_demos(
    spec: TriFingerTaskSpec,
    source: str = "official",
    path: str | Path | None = None,
    split: str = "train",
    n: int | None = None,
) -> None:
    """Fail now (`DemosNotFoundError`, naming a missing file and how to get the demos) unless the demos of
    `split` are on disk; scripted (alias expert) demos are made on demand, so they are always there."""
    if source in ("scripted", "expert"):
        return
    ids = demo_ids(split, n if n is not None else (spec.n_demos if split == "train" else spec.eval_episodes))
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


def load_demos(
    spec: TriFingerTaskSpec,
    n: int | None = None,
    source: str = "official",
    path: str | Path | None = None,
    render_size: int | None = None,
    quality: str = "faithful",
    horizon: int | None = None,
    progress: bool = True,
    split: str = "train",
    render: bool = True,
) -> DemoSet:
    """Demos of `split` (train: ids 0..n-1, test: ids 100..100+n-1) as a DemoSet.

    source: `official` (trifinger_demos.zip under `path` or $CORTEXBENCH_DATA), `scripted` (the scripted
    experts, rendered like the evaluation and cached in the same layout; alias `expert`), or a folder in the
    layout. Every demo carries its states (`tracked_state` of the file's cube pose), so the state reference
    trains on any source; `render` is accepted for the `TaskSpec.demos` contract (scripted demos are
    rendered when collected, once, and shared with the pixel runs)."""
    from tqdm.auto import tqdm

    check_quality(quality)
    render_size = render_size or spec.render_size
    if horizon is not None and horizon != spec.horizon:
        raise ValueError(
            f"{spec.name} episodes are {spec.horizon} policy steps (the demos' length); horizon={horizon} is not supported"
        )
    ids = demo_ids(split, n if n is not None else (spec.n_demos if split == "train" else spec.eval_episodes))
    source = "scripted" if source == "expert" else source
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
        check_demos(spec, source, path, split, n)
        renderer = None
        frames_from = "official downsample.pth image_60 (pybullet TinyRenderer, trifinger_simulation fork)"
    demos, digests, successes, renderers = [], [], [], set()
    for demo_id, file in zip(ids, files, strict=True):
        data = read_downsample(file)
        demos.append(_as_demo(file, data, spec, demo_id))
        successes.append(_demo_success(data, spec))
        if "renderer" in data:
            renderers.add(str(data["renderer"]))
        digests.append(f"{file.relative_to(root)}:{sha256_file(file)}\n")
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
    return DemoSet(spec.name, label, demos, sha256_text("".join(digests)), frames_from, stats)
