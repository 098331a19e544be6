"""How many frames go through one forward is a speed choice only: a frame's features must not depend on it
(the CPU default, encoders.frozen.BATCH_SIZE, was lowered for speed; the embedding cache and the overlapped
evaluation groups encode frames in different batches than before)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import encoders


@pytest.mark.parametrize("name", ["random-vit-tiny", "theia-tiny", "r3m-rn50"])
def test_features_do_not_depend_on_the_batch_size(name):
    encoder = encoders.load(name, weights="random")
    frames = np.random.default_rng(0).integers(0, 256, (9, 256, 256, 3), dtype=np.uint8)
    one_by_one = [encoder.encode(frame) for frame in frames]
    for batch_size in (4, 9, None):
        out = encoder.encode(frames, batch_size=batch_size)
        assert torch.equal(out.vector, torch.cat([o.vector for o in one_by_one])), batch_size
        assert torch.equal(out.tokens, torch.cat([o.tokens for o in one_by_one])), batch_size
