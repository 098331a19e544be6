"""Offline experts for the suites without official scripted policies (DMC, Adroit).

Each task has a recipe (`tasks/experts/recipes.py`): a linear state policy trained by augmented
random search (`tasks/experts/ars.py`), or a scripted controller on the simulator state. Trained
parameters are our own work, a few KB each, shipped in `tasks/experts/params/<task>.npz` together
with what they measured when they were made; `nox -s experts -- task=<name>` retrains them (seeded)
and `nox -s experts -- task=<name> train=false` measures the shipped ones.

These experts make the suites run end to end without network. They are not the experts behind
CortexBench's official demonstrations (DDPG from URLB for DMC, DAPG for Adroit), and the run record's
`demos` block carries their mean return / success so results from them are never mistaken for the
official protocol.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from encoders.storage import sha256_file, sha256_text
from tasks.spec import TaskSpec

PARAMS_DIR = Path(__file__).parent / "params"


class ExpertMissingError(FileNotFoundError):
    """A task's trained expert parameters are not in the package."""


def params_path(spec: TaskSpec) -> Path:
    return PARAMS_DIR / f"{spec.name}.npz"


def load_expert(spec: TaskSpec) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """The task's offline expert as `expert(observation) -> action` (it reads `observation["state"]`)."""
    from tasks.experts.recipes import recipe

    r = recipe(spec)
    if r.kind == "scripted":
        return r.controller(spec)
    path = params_path(spec)
    if not path.is_file():
        raise ExpertMissingError(
            f"no trained expert for {spec.name!r} at {path}; train it with `nox -s experts -- task={spec.name}`"
        )
    from tasks.experts.ars import LinearPolicy

    with np.load(path) as z:
        return as_expert(LinearPolicy.from_arrays(z))


def as_expert(policy: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A state policy as `expert(observation) -> float32 action`: the form demos are collected and
    measured with (float32 actions, as recorded in demo files, give the same trajectory every time)."""

    def expert(obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(policy(obs["state"]), dtype=np.float32)

    return expert


def expert_info(spec: TaskSpec) -> dict:
    """What the expert is, for run records and demo-cache keys: kind, file checksum, measured quality."""
    from tasks.experts.recipes import recipe

    r = recipe(spec)
    info: dict = {"kind": r.kind, "description": r.description}
    if r.kind == "scripted":
        import inspect

        source = inspect.getsource(r.controller)  # a changed controller makes new demos
        info["fingerprint"] = sha256_text(source)[:16]
        record = params_path(spec).with_suffix(".json")
        if record.is_file():
            info["measured"] = json.loads(record.read_text())["measured"]
        return info
    path = params_path(spec)
    if path.is_file():
        sha = sha256_file(path)
        with np.load(path) as z:
            meta = json.loads(str(z["meta"])) if "meta" in z else {}
        info |= {"params": f"tasks/experts/params/{path.name}", "sha256": sha, "fingerprint": sha[:16]}
        info |= {k: meta[k] for k in ("measured", "config", "train_seconds") if k in meta}
    return info
