"""Test setup: no network, no user caches. Weights, demos and embeddings go to a per-session folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

_SCRATCH = Path(tempfile.mkdtemp(prefix="cortexbench-tests-"))
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "CORTEXBENCH_OFFLINE": "1",
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
        "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl"),
        "CORTEXBENCH_CACHE": str(_SCRATCH / "cache"),
        "CORTEXBENCH_WEIGHTS": str(_SCRATCH / "weights"),
        "CORTEXBENCH_DATA": str(_SCRATCH / "data"),
        "HF_HOME": str(_SCRATCH / "hf"),
        "TQDM_DISABLE": "1",
    }
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def scratch() -> Path:
    return _SCRATCH


@pytest.fixture(scope="session")
def tiny_encoder():
    import encoders

    return encoders.load("random-vit-tiny")


def build_for_shapes(build):
    """`build()` on the meta device (shapes and parameter counts, no memory). A constructor that reads
    tensor values cannot run there (E-RADIO's drop-path schedule calls `.item()`); it is built on the CPU."""
    try:
        with torch.device("meta"):
            return build()
    except RuntimeError as err:
        if "meta tensors" not in str(err):
            raise
    return build()
