"""`nox -s bench` runs end to end on a tiny configuration and writes its JSON and markdown."""

from __future__ import annotations

import json
import subprocess
import sys

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
    ):
        assert report[key] > 0, key
    bound = 1 / (1 / report["env_fps"] + 1 / report["encoder_fps"])
    assert abs(report["pipeline_bound_fps"] - bound) < 1e-9
    projection = report["projection"]
    assert projection["speedup"] == projection["reference_s"] / projection["harness_s"]
    assert "S*2*F_eval/reference_fps" in projection["formula"]
    markdown = (tmp_path / "random-vit-tiny_metaworld-drawer-open.md").read_text()
    assert "| harness lockstep evaluation |" in markdown and "x pipeline bound" in markdown


def test_bench_rejects_unknown_options():
    result = subprocess.run(
        [sys.executable, "-m", "experiments.bench", "encodr=theia"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "encoder" in (result.stderr + result.stdout)
