"""Weights resolution: what is missing, where it was looked for, and the three ways to provide it."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import encoders
from encoders import weights as weights_module
from encoders.storage import weights_root
from encoders.weights import WeightsNotFoundError, resolve_weights


def test_offline_missing_weights_name_the_file_and_the_three_fixes():
    spec = encoders.get_spec("theia-base")
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_weights(spec, "pretrained")
    message = str(err.value)
    cache_file = weights_root() / "theia-base" / "model.safetensors"
    for expected in (
        "model.safetensors",
        "theaiinstitute/theia-base-patch16-224-cdiv",
        str(cache_file),
        "weights=<path>",
        "weights=random",
        "huggingface-cli download",
        "offline",
    ):
        assert expected in message


def test_without_network_the_download_is_not_retried_for_a_minute(monkeypatch):
    monkeypatch.delenv("CORTEXBENCH_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(weights_module, "_reachable", lambda url, timeout=3.0: False)
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError, match="not reachable"):
        resolve_weights(encoders.get_spec("vc1-large"), "pretrained")
    assert time.monotonic() - start < 5


def test_a_cached_copy_is_used_before_any_download(tmp_path):
    spec = encoders.get_spec("vc1-base")
    cached = weights_root() / spec.name / spec.weights.filename
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"x": torch.zeros(1)}, cached)  # a readable checkpoint file (its keys are checked when loading)
    try:
        resolved = resolve_weights(spec, "pretrained")
        assert resolved.kind == "pretrained" and resolved.path == cached and resolved.origin.startswith("cache:")
    finally:
        cached.unlink()


def test_bad_paths_and_random_weights():
    spec = encoders.get_spec("vc1-base")
    with pytest.raises(WeightsNotFoundError, match="no such file"):
        resolve_weights(spec, "/nonexistent/vc1.pth")
    assert resolve_weights(spec, "random").kind == "random"
    assert resolve_weights(encoders.get_spec("random-vit-tiny"), "pretrained").kind == "spec-init"


def test_random_weights_differ_from_nothing_but_are_deterministic():
    frames = np.zeros((1, 224, 224, 3), np.uint8)
    a = encoders.load("theia-tiny", weights="random").encode(frames).vector
    b = encoders.load("theia-tiny", weights="random").encode(frames).vector
    assert (a == b).all()
