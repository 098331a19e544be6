"""Feature-norm entropy (definition version 1) on distributions with known entropy."""

from __future__ import annotations

import math

import numpy as np

from encoders.stats import DEFINITION_VERSION, entropy_record, norm_entropy, sample_frames, token_norms


def test_uniform_norms_over_all_bins_have_entropy_log_bins():
    norms = np.repeat(np.linspace(0, 1, 100, endpoint=False) + 0.005, 7)  # 7 norms in each of 100 bins
    assert math.isclose(norm_entropy(norms, bins=100), math.log(100), rel_tol=1e-12)


def test_two_equal_clusters_have_entropy_log_2_and_constant_norms_zero():
    assert math.isclose(norm_entropy(np.array([1.0] * 50 + [3.0] * 50)), math.log(2), rel_tol=1e-12)
    assert norm_entropy(np.full(10, 2.5)) == 0.0
    skewed = np.array([1.0] * 90 + [3.0] * 10)
    assert math.isclose(norm_entropy(skewed), -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)), rel_tol=1e-12)


def test_bin_count_is_a_parameter_and_the_range_is_min_to_max():
    norms = np.array([0.0, 0.1, 0.9, 1.0])
    assert math.isclose(norm_entropy(norms, bins=2), math.log(2))  # [0, .5) and [.5, 1]
    assert math.isclose(norm_entropy(norms, bins=100), math.log(4))
    assert math.isclose(norm_entropy(norms * 1000 + 7, bins=2), math.log(2))  # invariant to scale and shift


def test_token_norms_are_l2_over_channels():
    tokens = np.array([[[3.0, 4.0], [0.0, 1.0]]])
    assert token_norms(tokens).tolist() == [[5.0, 1.0]]


def test_sample_is_one_percent_at_least_64_and_seeded():
    assert len(sample_frames(12_500)) == 125
    assert len(sample_frames(1000)) == 64
    assert len(sample_frames(20)) == 20
    assert np.array_equal(sample_frames(12_500), sample_frames(12_500))
    assert not np.array_equal(sample_frames(12_500, seed=1), sample_frames(12_500))


def test_record_block_names_the_definition():
    rec = entropy_record(np.ones((64, 196)) * np.arange(196), bins=50)
    assert rec["definition_version"] == DEFINITION_VERSION == 1
    assert rec["bins"] == 50 and rec["n_frames"] == 64 and rec["tokens_per_frame"] == 196
