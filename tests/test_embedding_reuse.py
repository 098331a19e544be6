"""A warm embedding cache: the second run of a cell encodes no demo frame, says so in its record, and
is faster; a damaged cache file is detected and rebuilt."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module

import encoders
import tasks
from experiments.cells import run_cell
from experiments.settings import resolve_settings


class CountingEncoder:
    """The real encoder, counting the frames it is asked to encode."""

    def __init__(self, encoder):
        self._encoder = encoder
        self.frames = 0

    def encode(self, frames, **kwargs):
        self.frames += len(frames)
        return self._encoder.encode(frames, **kwargs)

    def __getattr__(self, name):
        return getattr(self._encoder, name)


def settings(tmp_path, *overrides):
    with initialize_config_module("experiments.conf", version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "encoder=random-vit-tiny",
                "task=metaworld-button-press-topdown",
                "protocol=smoke",
                f"results_dir={tmp_path}",
                "overwrite=true",
                "progress=false",
                *overrides,
            ],
        )
    spec = encoders.get_spec(cfg.encoder)
    return resolve_settings(cfg, tasks.get(cfg.task), spec, 100)


@pytest.fixture(scope="module")
def tiny():
    return encoders.load("random-vit-tiny")


def test_warm_cache_skips_demo_encoding_and_a_damaged_entry_is_rebuilt(tmp_path, tiny):
    s = settings(tmp_path)
    demo_frames = s.n_demos * s.horizon
    eval_frames = s.eval_episodes * s.horizon  # one evaluation in smoke: a frame per step

    cold_encoder = CountingEncoder(tiny)
    cold = run_cell(settings(tmp_path, "cache=refresh"), cold_encoder)
    assert cold["status"] == "ok", cold["error"]
    assert cold["cache"]["hit"] is False and cold_encoder.frames == demo_frames + eval_frames

    warm_encoder = CountingEncoder(tiny)
    warm = run_cell(s, warm_encoder)
    assert warm["status"] == "ok" and warm["cache"]["hit"] is True
    assert warm_encoder.frames == eval_frames  # no demo frame encoded
    assert warm["timing"]["embed"] < 0.5 * cold["timing"]["embed"]
    assert warm["feature_norm_entropy"] == cold["feature_norm_entropy"]  # from the cached token norms
    assert warm["scores"] == cold["scores"]  # same embeddings, same seed: same training and evaluation

    entry = cold["cache"]["path"]
    embeddings = __import__("pathlib").Path(entry) / "embeddings.npy"
    embeddings.write_bytes(embeddings.read_bytes()[:-64])  # truncate the cached file
    rebuilt_encoder = CountingEncoder(tiny)
    rebuilt = run_cell(s, rebuilt_encoder)
    assert rebuilt["status"] == "ok" and rebuilt["cache"]["hit"] is False
    assert rebuilt_encoder.frames == demo_frames + eval_frames
    assert rebuilt["scores"] == cold["scores"]
    again = run_cell(s, CountingEncoder(tiny))
    assert again["cache"]["hit"] is True


def test_float16_storage_is_a_separate_entry(tmp_path, tiny):
    half = run_cell(settings(tmp_path, "cache_dtype=float16", "policy=bc-conv"), tiny)
    assert half["status"] == "ok", half["error"]
    assert half["cache"]["key"].endswith("-spatial-float16-f1") and half["encoder"]["output_used"] == "spatial"
