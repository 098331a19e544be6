"""Resumable training: a cell's progress saved at every evaluation, so a cell stopped part-way (a session or
SLURM time limit, a preempted node, Ctrl-C) continues from its last evaluation instead of from zero.

The file sits beside the record (`records.resume_path`) and holds what the rest of the run depends on: the
head and optimiser states, the minibatch generator, the global RNGs (dropout draws from torch's), the losses
and evaluations so far, and the time spent. Everything before the loop (demos, cached embeddings, the head's
seeded init, the environments) is rebuilt the same way on resume, and MuJoCo evaluations reset every
environment completely, so a resumed cell writes the same scores, losses and episodes as an uninterrupted
one (tests/test_resume.py). Its record has `resumed` (the epoch it continued after, how many runs took it);
`timing` adds up all runs.

Used by the MuJoCo behaviour-cloning body (`bc.py`). Not by TriFinger's: pybullet keeps state across resets
that its own saveState/restoreState do not capture, so an evaluation in fresh simulators scores differently
from one in simulators that ran earlier evaluations (docs/sweeps.md, "Resuming a stopped cell"); a resumed
TriFinger cell would not write what an uninterrupted one writes, so it starts over.

A file whose cell settings differ from the run's (say epochs or lr changed) or that cannot be read is kept
aside (`encoders.storage.move_aside`) and the cell starts from zero; `overwrite=true` starts from zero too.
The lifecycle removes the file once the cell's ok record is written (`experiments.cells.execute`).
"""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import numpy as np
import torch

from encoders.storage import atomic_write_bytes, move_aside
from experiments.records import resume_path

# Settings that change how a cell runs, not what it computes: a checkpoint made under other values still fits.
# (Not device or eval_groups: they change how forwards round.)
RUN_ONLY_SETTINGS = ("workers", "progress", "overwrite", "results_dir", "cache")


def _comparable(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in RUN_ONLY_SETTINGS}


class Checkpoint:
    """The resume file of one cell (`run`: `experiments.cells.CellRun`): `restore` once before the training
    loop, `save` after each evaluation."""

    def __init__(self, run):
        self.run = run
        self.path: Path = resume_path(run.path)
        self.settings = _comparable(run.settings.as_dict())
        self.runs = 1  # how many runs this cell's training took, this one included

    def restore(self, head, optimizer, generator: torch.Generator, on_evaluation=None) -> tuple[int, list, list]:
        """(first epoch to train, losses, evaluations): (start, [], []) without a usable file, else the saved
        progress, with `head`, `optimizer`, `generator` and the global RNGs set as they were when it was saved.
        `on_evaluation()` is called once per saved evaluation, to advance what evaluations consume in order
        (DMC's start-state stream)."""
        state = self._load()
        if state is None:
            return 0, [], []
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        for stage, seconds in state["timing"].items():
            self.run.timing[stage] = round(self.run.timing.get(stage, 0.0) + seconds, 3)
        if on_evaluation is not None:
            for _ in state["evaluations"]:
                on_evaluation()
        self.runs = state["runs"] + 1
        self.run.record["resumed"] = {"from_epoch": state["epoch"], "runs": self.runs}
        print(
            f"[resume] {self.run.settings.task} seed={self.run.settings.seed}: continuing after epoch "
            f"{state['epoch']} ({len(state['evaluations'])} evaluations done) from {self.path.name}",
            file=sys.stderr,
            flush=True,
        )
        return state["epoch"] + 1, state["losses"], state["evaluations"]

    def save(self, epoch: int, head, optimizer, generator: torch.Generator, losses: list, evaluations: list) -> None:
        """Atomically replace the file with the progress after `epoch` (its evaluation included)."""
        timing = dict(self.run.timing)
        timing["total"] = round(timing.get("total", 0.0) + self.run.elapsed(), 3)
        state = {
            "settings": self.settings,
            "epoch": epoch,
            "head": head.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
            "losses": list(losses),
            "evaluations": list(evaluations),
            "timing": timing,
            "runs": self.runs,
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())

    def _load(self) -> dict | None:
        if self.run.settings.overwrite or not self.path.exists():
            return None
        try:
            # Written by this harness beside the record (episodes are dataclasses of arrays): trusted like
            # the results folder itself.
            state = torch.load(self.path, map_location="cpu", weights_only=False)
            differs = sorted(
                k
                for k in self.settings.keys() | state["settings"].keys()
                if self.settings.get(k) != state["settings"].get(k)
            )
        except Exception as err:  # truncated, not a torch file, missing fields
            move_aside(self.path, f"cannot be read as a resume file ({type(err).__name__}: {err})")
            return None
        if differs:
            move_aside(self.path, f"was saved with other settings ({', '.join(differs)})")
            return None
        return state
