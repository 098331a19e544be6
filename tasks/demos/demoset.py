"""What every demonstration source returns: `Demo`s in a `DemoSet`, and the npz demo files they read lazily.

A `DemoSet` is fingerprinted by its task, source, content checksum, size and how its frames were made;
that fingerprint keys the embedding cache, so two sources can never share embeddings by accident.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from encoders.storage import move_aside, sha256_json


class DemosNotFoundError(FileNotFoundError):
    """Official demonstrations are missing; the message says where they were expected and how to get them."""


@dataclass
class Demo:
    """One demonstration. Frames are held (`stored_frames`) or read from disk on each access (`frame_loader`)."""

    actions: np.ndarray  # float32 [T, A]
    proprio: np.ndarray  # float32 [T, P] (P may be 0)
    rewards: np.ndarray  # float32 [T]
    success: bool | None = None
    seed: int | None = None
    initial_state: object | None = None
    stored_frames: np.ndarray | None = None
    frame_loader: Callable[[], np.ndarray] | None = None
    states: np.ndarray | None = None  # float32 [T, S]: the env's `state` observations (the state reference's input)

    @property
    def frames(self) -> np.ndarray:
        """uint8 [T, H, W, 3]; read from disk on each access when the demo is lazy."""
        if self.stored_frames is not None:
            return self.stored_frames
        assert self.frame_loader is not None
        return self.frame_loader()

    def observations(self, key: str) -> np.ndarray:
        """What an encoder reading observation `key` sees of this demo: frames (`pixels`) or `state`s."""
        if key == "pixels":
            return self.frames
        if self.states is None:
            raise ValueError(
                "these demonstrations hold no simulator states (encoder=state needs demos.source=expert, "
                "collected without rendering)"
            )
        return self.states

    def read_frames_from(self, loader: Callable[[], np.ndarray]) -> None:
        """Make the demo lazy: its frames now come from `loader` (e.g. a re-rendered file)."""
        self.stored_frames, self.frame_loader = None, loader

    def truncate(self, horizon: int) -> None:
        """Keep the first `horizon` steps (a shorter protocol horizon, e.g. smoke, truncates demos too)."""
        self.actions, self.proprio, self.rewards = (
            self.actions[:horizon],
            self.proprio[:horizon],
            self.rewards[:horizon],
        )
        if self.states is not None:
            self.states = self.states[:horizon]
        if self.stored_frames is not None:
            self.stored_frames = self.stored_frames[:horizon]

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


def _stored_success(z) -> bool | None:
    if "episode_success" in z:  # by the task's metric; NaN for return-scored tasks
        value = float(z["episode_success"])
        return None if np.isnan(value) else bool(value)
    return bool(z["success"][-1] > 0) if len(z["success"]) else None


DEMO_ARRAYS = ("frames", "actions", "proprio", "rewards", "seed")  # what `lazy_demo` reads from a cached demo
STATE_DEMO_ARRAYS = ("states", "actions", "proprio", "rewards", "seed")  # a demo collected without rendering


def cached_file_problem(file: Path, arrays: tuple[str, ...]) -> str | None:
    """Why a cached demo file (npz) cannot be used, or None: it must open as a zip archive (a truncated file
    has lost its directory) holding `arrays`. Cheap: the frames themselves are not decompressed."""
    try:
        with zipfile.ZipFile(file) as archive:
            names = {name.removesuffix(".npy") for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"unreadable cached demo ({type(err).__name__}: {err})"
    if missing := [a for a in arrays if a not in names]:
        return f"cached demo without {', '.join(missing)}"
    return None


def set_aside_broken(files: list[Path], arrays: tuple[str, ...]) -> None:
    """Keep broken cached demo files aside (`encoders.storage.move_aside`) so that they are rendered again."""
    for file in files:
        if file.is_file() and (problem := cached_file_problem(file, arrays)) is not None:
            with contextlib.suppress(FileNotFoundError):  # another job set it aside first
                move_aside(file, problem)


def lazy_demo(file: Path) -> Demo:
    """A demo stored as an npz file (scripted, Minari): arrays now, frames read when they are encoded."""
    with np.load(file) as z:
        demo = Demo(
            actions=z["actions"],
            proprio=z["proprio"],
            rewards=z["rewards"],
            success=_stored_success(z),
            seed=int(z["seed"]),
            states=z["states"].astype(np.float32) if "states" in z else None,
        )
        if "frames" not in z:  # collected for the state reference: nothing to render or encode
            return demo

    def frames() -> np.ndarray:
        with np.load(file) as z:
            return z["frames"]

    demo.frame_loader = frames
    return demo
