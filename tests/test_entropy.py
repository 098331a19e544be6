"""Feature-norm entropy definition 2 (`nox -s entropy`): one histogram over a task group's pooled samples,
written as its own record with the histogram, and read by the leaderboard's entropy analysis."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from encoders.stats import entropy_record, pooled_entropy_record
from tests.conftest import REPO


def entropy_by_hand(values: list[float], bins: int) -> float:
    lo, hi = min(values), max(values)
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
    return -sum(c / len(values) * math.log(c / len(values)) for c in counts if c)


def test_pooled_entropy_is_one_histogram_over_every_task():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.1, size=(64, 4)), rng.normal(3.0, 0.5, size=(80, 4))
    record = pooled_entropy_record({"t1": a, "t2": b}, bins=10)
    pooled = [float(v) for v in np.concatenate([a.ravel(), b.ravel()])]
    assert record["value"] == pytest.approx(entropy_by_hand(pooled, 10))
    assert record["definition_version"] == 2 and record["n_frames"] == 144 and record["n_norms"] == 576
    assert sum(record["histogram"]["counts"]) == 576 and record["histogram"]["range"] == [min(pooled), max(pooled)]
    assert record["tasks"]["t1"]["value_v1"] == pytest.approx(entropy_by_hand([float(v) for v in a.ravel()], 10))


def test_cell_records_keep_the_histogram_their_value_comes_from():
    norms = np.random.default_rng(1).gamma(2.0, size=(64, 16))
    record = entropy_record(norms, bins=20)
    counts = np.asarray(record["histogram"]["counts"], dtype=float)
    p = counts[counts > 0] / counts.sum()
    assert record["value"] == pytest.approx(float(-(p * np.log(p)).sum()))


@pytest.mark.slow
def test_nox_entropy_writes_a_pooled_record(tmp_path):
    args = [
        "encoder=random-vit-tiny",
        "weights=random",
        "task=metaworld-assembly,metaworld-hammer",
        "protocol=smoke",
        "progress=false",
        f"results_dir={tmp_path}",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.entropy", *args], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = tmp_path / "entropy" / "smoke" / "random-vit-tiny" / "metaworld-assembly+metaworld-hammer.json"
    record = json.loads(path.read_text())
    block = record["feature_norm_entropy"]
    assert record["kind"] == "feature-norm-entropy-pooled" and block["definition_version"] == 2
    assert set(block["tasks"]) == {"metaworld-assembly", "metaworld-hammer"}
    counts = np.asarray(block["histogram"]["counts"], dtype=float)
    p = counts[counts > 0] / counts.sum()
    assert block["value"] == pytest.approx(float(-(p * np.log(p)).sum())) and block["value"] > 0
    assert record["conformance"]["conforms"] is True  # weights=random on a spec-init encoder is its definition


def test_bad_input_to_nox_entropy_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.entropy", "encoder=thea", f"results_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Did you mean: theia" in proc.stderr and "Traceback" not in proc.stderr
