"""`python -m experiments.eval` end to end (what `nox -s eval -- ...` runs): records, resume, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from experiments.records import validate
from tests.conftest import REPO


def run_eval(*overrides: str, results_dir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.eval", *overrides, f"results_dir={results_dir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_smoke_cell_writes_a_full_record_and_a_rerun_skips_it(tmp_path):
    args = ("encoder=random-vit-tiny", "task=metaworld-assembly", "protocol=smoke")
    first = run_eval(*args, results_dir=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    records = list((tmp_path / "runs" / "smoke").rglob("seed=*.json"))
    assert [p.relative_to(tmp_path).as_posix() for p in records] == [
        "runs/smoke/random-vit-tiny/metaworld-assembly/seed=100.json"
    ]
    record = json.loads(records[0].read_text())
    assert validate(record) == []
    assert record["status"] == "ok" and record["protocol"]["name"] == "smoke"
    assert set(record["scores"]) >= {"final", "best", "per_eval", "metric", "headline"}
    assert record["scores"]["per_eval"] == [[1, record["scores"]["final"]]]  # smoke: 2 epochs, evaluated at the last
    assert len(record["episodes"]["final"]) == 2 and {e["seed"] for e in record["episodes"]["final"]} == {100, 101}
    assert record["feature_norm_entropy"]["value"] > 0 and record["feature_norm_entropy"]["definition_version"] == 1
    assert record["task"]["version"] == 1 and record["encoder"]["weights"]["kind"] == "spec-init"
    assert record["demos"]["source"] == "scripted" and record["provenance"]["render"]["quality"] == "fast"
    assert record["provenance"]["config"]["encoder"] == "random-vit-tiny"

    before = records[0].stat().st_mtime_ns
    second = run_eval(*args, results_dir=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "[skip]" in second.stdout and records[0].stat().st_mtime_ns == before


def test_theia_tiny_random_weights_on_the_metaworld_suite(tmp_path):
    result = run_eval("encoder=theia-tiny", "weights=random", "task=metaworld", "protocol=smoke", results_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "runs" / "smoke" / "theia-tiny@random"
    tasks_done = sorted(p.parent.name for p in folder.rglob("seed=100.json"))
    assert tasks_done == [
        "metaworld-assembly",
        "metaworld-bin-picking",
        "metaworld-button-press-topdown",
        "metaworld-drawer-open",
        "metaworld-hammer",
    ]
    for path in folder.rglob("seed=100.json"):
        record = json.loads(path.read_text())
        assert record["status"] == "ok" and record["encoder"]["weights"]["kind"] == "random"
        scores, episodes = record["scores"], record["episodes"]
        per_eval = dict(scores["per_eval"])  # {epoch: score}
        # best is CortexBench's highest_success: the largest evaluation, at the earliest epoch that reached it
        assert scores["best"] == max(per_eval.values())
        assert scores["best_epoch"] == min(e for e, v in per_eval.items() if v == scores["best"])
        assert [scores["final_epoch"], scores["final"]] == scores["per_eval"][-1]
        # success % over the smoke protocol's 2 episodes: each episode 0 or 100, the score their mean
        for which in ("best", "final"):
            values = [e["value"] for e in episodes[which]]
            assert set(values) <= {0.0, 100.0} and len(values) == 2
            assert scores[which] == sum(values) / 2


def test_missing_pretrained_weights_fail_fast_with_the_fix(tmp_path):
    start = time.monotonic()
    result = run_eval("encoder=theia", "task=metaworld", results_dir=tmp_path)
    elapsed = time.monotonic() - start
    assert result.returncode == 2
    message = result.stderr
    for expected in (
        "theia-base",
        "model.safetensors",
        "theaiinstitute/theia-base-patch16-224-cdiv",
        "weights=<path>",
        "weights=random",
        "fill the cache",
    ):
        assert expected in message, message
    assert "Traceback" not in message
    assert elapsed < 60, f"took {elapsed:.0f}s"  # imports included; no download retries
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("override", "suggestion"), [("encoder=thea", "theia"), ("task=metaworld-asembly", "metaworld-assembly")]
)
def test_misspelled_names_get_suggestions(tmp_path, override, suggestion):
    args = {"encoder": "encoder=random-vit-tiny", "task": "task=metaworld-assembly"}
    args[override.split("=")[0]] = override
    result = run_eval(*args.values(), "protocol=smoke", results_dir=tmp_path)
    assert result.returncode == 2
    assert f"Did you mean: {suggestion}" in result.stderr, result.stderr
