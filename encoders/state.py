"""The state reference (`encoder=state`): "features" that are the simulator's low-dimensional state.

It stands where a `FrozenEncoder` stands, so the same heads, history fusion, proprioception, training,
evaluation and record path serve it; what differs is what it reads (`observation = "state"`: the env's
`state` observation, rendered nothing) and that it has no weights, no preprocessing and no embedding cache.
Its size is the task's: `for_task` returns the reference sized for one task, with the suite's description
of its state (the adapter's `STATE_DESCRIPTION`) for the record.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch

from encoders.frozen import EncoderOutput
from encoders.spec import EncoderSpec
from encoders.storage import sha256_json
from encoders.weights import ResolvedWeights


@functools.cache
def state_size(task_name: str) -> int:
    """The size of a task's `state` observation, read from one environment created without rendering."""
    import tasks

    env = tasks.get(task_name).make_env(render=False)
    try:
        observation, _ = env.reset(seed=0)
        return int(np.asarray(observation["state"]).size)
    finally:
        env.close()


def sized_for(encoder, task):
    """The encoder a cell of `task` uses: the state reference sized for the task's state; any other encoder (or
    a wrapper around one) as it is."""
    return encoder.for_task(task) if encoder.spec.input == "state" else encoder


class StateReference:
    """`encode(states [B, D]) -> EncoderOutput(vector=states, tokens=states[:, None], grid=(1, 1))`."""

    observation = "state"  # the observation key it reads
    # Its heads are tiny: one torch thread trains them as fast as several, and makes the numbers independent of
    # the machine's core count (with 1 and 2 threads the same cell's losses differ in the 7th digit).
    torch_threads = 1

    def __init__(self, spec: EncoderSpec, weights: ResolvedWeights, device: torch.device, task=None):
        self.spec = spec
        self.weights = weights
        self.device = device
        self.task = task

    def for_task(self, task) -> StateReference:
        """This reference sized for `task` (its head's input size is the task's state size)."""
        size = state_size(task.name)
        spec = dataclasses.replace(self.spec, embed_dim=size, token_dim=size)
        return StateReference(spec, self.weights, self.device, task)

    def encode(self, states: np.ndarray | torch.Tensor, batch_size: int = 64) -> EncoderOutput:
        vector = torch.as_tensor(np.asarray(states), dtype=torch.float32)
        if vector.ndim == 1:
            vector = vector[None]
        return EncoderOutput(vector=vector, tokens=vector[:, None, :], grid=(1, 1))

    @property
    def fingerprint(self) -> str:
        return sha256_json({"name": self.spec.name, "input": "state"})[:16]

    def describe(self) -> dict:
        """The encoder part of a run record: which state, of what size."""
        described = {
            "name": self.spec.name,
            "family": self.spec.family,
            "input": "state",
            "weights": self.weights.as_record(),
            "fingerprint": self.fingerprint,
            "vector_output": "state",
            "embed_dim": self.spec.embed_dim,
            "license": self.spec.license,
        }
        if self.task is not None:
            module = self.task.adapter_module()
            described["state"] = {
                "dim": self.spec.embed_dim,
                "observation": "state",
                "description": getattr(module, "STATE_DESCRIPTION", "the env's `state` observation"),
            }
        return described
