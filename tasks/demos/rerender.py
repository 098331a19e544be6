"""Official demonstrations re-rendered from their stored physics states, cached on disk.

CortexBench's pickles carry frames from the reference's renderer (mujoco-py / MuJoCo 2). Where a
pickle also stores the physics state of every step (DMC: dmc2gym's `env_infos['internal_state']`),
the suite's `rerender_official_path(spec, path, render_size, quality)` renders each state with the
evaluation camera, size and quality, so the policy trains on exactly the pixels it is evaluated on.
Suites may also check the pickles against the task's protocol first (`check_official_paths`). A suite's
info may carry the first frame's gap to the pickle image (`frame_gap`, tasks/demos/framegap.py).

Re-rendered frames are written one file per demonstration (atomically, so an interrupted run resumes)
under `$CORTEXBENCH_CACHE/demos/official/`, keyed by the pickle's checksum and the render settings,
and read lazily like the expert demos.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from encoders.storage import atomic_write_bytes, demos_cache_root
from tasks.demos.demoset import Demo, set_aside_broken
from tasks.demos.framegap import summarise as summarise_gaps
from tasks.spec import TaskSpec

RERENDER_FORMAT = 2  # bump when what is rendered from a state changes (2: per-demo frame gap in the info)


def rerender_dir(spec: TaskSpec, sha256: str, render_size: int, quality: str) -> Path:
    key = f"{spec.name}-v{spec.version}-{sha256[:16]}-{render_size}px-{quality}-r{RERENDER_FORMAT}"
    return demos_cache_root() / "official" / key


def _frames_loader(file: Path):
    def frames() -> np.ndarray:
        with np.load(file) as z:
            return z["frames"]

    return frames


def rerender_official(
    spec: TaskSpec,
    paths: list[dict],
    demos: list[Demo],
    sha256: str,
    render_size: int,
    quality: str,
    progress: bool = False,
) -> tuple[str, dict]:
    """Replace the demos' pickle frames by re-rendered ones where the suite can; returns (frames_from, checks)."""
    from tqdm.auto import tqdm

    suite = spec.suite_module()
    checks: dict = {}
    if hasattr(suite, "check_official_paths"):
        checks["protocol_check"] = suite.check_official_paths(spec, paths, f"official demonstrations of {spec.name}")
    if not hasattr(suite, "rerender_official_path"):
        return "official pickle images (no physics states to re-render from)", checks
    folder = rerender_dir(spec, sha256, render_size, quality)
    infos = []
    for i, (path, demo) in enumerate(
        tqdm(
            list(zip(paths, demos, strict=True)),
            desc=f"re-render {spec.name}",
            unit="demo",
            disable=None if progress else True,
        )
    ):
        file = folder / f"demo-{i:04d}.npz"
        set_aside_broken([file], ("frames", "info"))
        if not file.is_file():
            result = suite.rerender_official_path(spec, path, render_size, quality)
            if result is None:
                if i:
                    raise ValueError(f"official demonstration {i} of {spec.name} has no physics states, demo 0 had")
                return "official pickle images (the pickle stores no per-step physics state)", checks
            frames, info = result
            if len(frames) != len(demo):
                raise ValueError(f"re-rendered {len(frames)} frames for a {len(demo)}-step demonstration")
            buffer = io.BytesIO()
            np.savez_compressed(buffer, frames=frames, info=np.asarray(json.dumps(info)))
            atomic_write_bytes(file, buffer.getvalue(), replace=False)
        with np.load(file) as z:
            infos.append(json.loads(str(z["info"])))
        demo.read_frames_from(_frames_loader(file))
    diffs = [i["first_frame_mean_abs_diff"] for i in infos if "first_frame_mean_abs_diff" in i]
    checks["frame_gap"] = summarise_gaps(
        [i.get("frame_gap") for i in infos], "our re-render of each demo's first state vs the pickle's first image"
    )
    checks["rerender"] = {
        "how": infos[0].get("frames"),
        "cache": str(folder),
        **({"first_frame_mean_abs_diff_vs_pickle": round(float(np.mean(diffs)), 3)} if diffs else {}),
        **({"reacher_target_xy": [i["reacher_target_xy"] for i in infos]} if "reacher_target_xy" in infos[0] else {}),
    }
    votes = [i["visualize_reward"] for i in infos if "visualize_reward" in i]
    if votes:  # DMC: were the pickle's frames rendered with reward colours? (tasks/dmc.py)
        detected = [v["detected"] for v in votes if v["detected"] is not None]
        checks["visualize_reward"] = {
            "used": votes[0]["used"],
            "detected": detected[0] if detected and len(set(detected)) == 1 else (None if not detected else "mixed"),
            "demos_decided": len(detected),
            "demos_agreeing": sum(d == votes[0]["used"] for d in detected),
        }
    return f"re-rendered from stored physics states: camera={spec.camera} size={render_size} quality={quality}", checks
