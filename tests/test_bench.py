"""`nox -s bench` runs end to end on a tiny configuration and writes its JSON and markdown."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tasks
from experiments.bench import project
from tests.conftest import REPO


def test_bench_writes_ratios_and_the_projection_formula(tmp_path):
    args = [
        "encoder=random-vit-tiny",
        "task=metaworld-drawer-open",
        "render_quality=fast",
        "eval_episodes=2",
        "steps=2",
        "reference_steps=2",
        "demo_frames=4",
        "smoke_cell=false",
        "screen=false",
        "eval_groups=2",
        "batch_sizes=1,4",
        f"out={tmp_path}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "experiments.bench", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "random-vit-tiny_metaworld-drawer-open.json").read_text())
    for key in (
        "encoder_fps",
        "env_fps",
        "harness_fps",
        "reference_fps",
        "pipeline_bound_fps",
        "train_epoch_s",
        "demo_encode_fps_harness",
        "demo_encode_fps_reference",
        "harness_lockstep_fps",
        "overlap_bound_fps",
        "encoder_fps_batch_1",
        "encoder_fps_batch_4",
        "demo_encode_fps_reference_1",
        "demo_encode_fps_reference_4",
    ):
        assert report[key] > 0, key
    assert report["demo_encode_fps_reference_best"] == max(
        report[f"demo_encode_fps_reference_{size}"] for size in (1, 4, 20)
    )
    assert report["eval_groups"] == 2 and report["overlap_bound_fps"] == min(report["env_fps"], report["encoder_fps"])
    memory = report["memory"]  # two envs: no worker processes, everything in the bench's own process
    assert memory["workers_mb"] == [] and memory["cell_mb"] == memory["main_mb"] > 100
    assert memory["per_env_mb"] == pytest.approx(memory["main_mb"] / 2)
    assert report["render_backend"].strip()  # the GL renderer string (Mesa's llvmpipe on a CPU machine)
    # a pipeline that must both simulate and encode every frame is slower than either alone, and at worst
    # half as fast as the slower one (when both take equally long)
    for name, (low, high) in report["spread"].items():  # each rate: the median of 3 repeats, between their extremes
        assert low <= report[name] <= high, name
    assert (
        report["config"]["repeats"] == 3
        and "median (min–max) of 3 repeats" in (tmp_path / "random-vit-tiny_metaworld-drawer-open.md").read_text()
    )
    slower = min(report["env_fps"], report["encoder_fps"])
    assert slower / 2 <= report["pipeline_bound_fps"] < slower
    projection = report["projection"]
    assert projection["harness_s"] > 0 and projection["reference_s"] > 0
    assert "S*2*F_eval/reference_fps" in projection["formula"]
    markdown = (tmp_path / "random-vit-tiny_metaworld-drawer-open.md").read_text()
    assert "| harness evaluation (2 env group(s)) |" in markdown and "x overlap bound" in markdown
    assert "| harness evaluation, lockstep (1 group) |" in markdown and "x lockstep bound" in markdown
    assert "| peak memory, evaluation pool |" in markdown and "| encoder only, batch 4 |" in markdown
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert report["provenance"]["git"]["sha"] == head and "torch" in report["provenance"]["packages"]


def test_projection_matches_a_hand_computed_example():
    """MetaWorld (25 demos x 500 steps, 25 episodes, 3 seeds, 20 evaluations), rates chosen for round numbers:
    harness   = 12500/100 + 3*100*1 + 3*250000/1000 + 3*500*0.1         = 125 + 300 + 750 + 150 = 1325 s
    reference = 3*12500/50 + 3*100*1 + 3*2*250000/100 + 3*2*500*0.2     = 750 + 300 + 15000 + 600 = 16650 s"""
    rates = {
        "demo_encode_fps_harness": 100.0,
        "demo_encode_fps_reference": 50.0,
        "train_epoch_s": 1.0,
        "harness_fps": 1000.0,
        "reference_fps": 100.0,
        "env_reset_s": 0.1,
        "reference_reset_s": 0.2,
    }
    out = project(rates, tasks.get("metaworld-assembly"))
    assert out["harness_s"] == pytest.approx(1325.0)
    assert out["reference_s"] == pytest.approx(16650.0)
    assert out["speedup"] == pytest.approx(16650.0 / 1325.0)
    assert "= 1325 s" in out["formula"] and "= 16650 s" in out["formula"]


def test_bench_rejects_unknown_options():
    result = subprocess.run(
        [sys.executable, "-m", "experiments.bench", "encodr=theia"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "encoder" in (result.stderr + result.stdout)


def test_bench_times_screening_cold_then_warm():
    from experiments.bench import KEYS, _cold_and_warm

    args = KEYS | {"encoder": "random-vit-tiny", "weights": "random", "task": "metaworld-assembly"}
    times = _cold_and_warm(args, "experiments.screen", "metaworld-assembly.json")
    assert times["cold"]["cache_hit"] is False and times["warm"]["cache_hit"] is True  # the second reuses the first's
    assert times["cold"]["wall_s"] > 0 and times["warm"]["wall_s"] > 0
