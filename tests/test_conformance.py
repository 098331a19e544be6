"""The conformance stamp: one function says whether a cell ran its protocol file as written and lists every
deviation; the leaderboard sets only conforming records beside published rows."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from experiments.conformance import deviations
from experiments.leaderboard.outputs import generate
from experiments.plan import compose_jobs, plan_sweep
from tests.conftest import REPO
from tests.test_leaderboard import FIXTURES

BASE = ["encoder=random-vit-tiny", "task=metaworld-assembly", "seed=100"]


def found(*overrides: str, weights_kind: str = "spec-init") -> list[str]:
    argv = [*BASE, *overrides]
    config = OmegaConf.to_container(compose_jobs([argv])[0], resolve=True)
    (cell,) = plan_sweep(argv)
    return deviations(config, cell.settings, weights_kind)


def test_the_protocol_as_written_conforms():
    assert found("protocol=cortexbench") == []
    assert found("protocol=theia") == []
    assert found("protocol=smoke") == []  # smoke conforms to smoke (which the leaderboard keeps apart)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("protocol.epochs=1", "protocol.epochs=1 (protocol file: 100)"),
        ("protocol.hidden=[64,64]", "protocol.hidden=[64,64] (protocol file: [256,256,256])"),
        ("protocol.trifinger.lr=0.5", "protocol.trifinger.lr=0.5 (protocol file: 0.0001)"),
        ("demos.source=scripted", "demos.source=scripted (protocol: official)"),
        ("render_quality=fast", "render_quality=fast (protocol: faithful)"),
        ("policy=bc-conv", "policy=bc-conv (protocol: bc-mlp)"),
        ("cache_dtype=float16", "cache_dtype=float16 (embeddings stored in reduced precision)"),
        ("entropy_bins=50", "entropy_bins=50 (definition: 100)"),
    ],
)
def test_every_kind_of_override_is_a_deviation(override, expected):
    assert found("protocol=cortexbench", override) == [expected]


def test_weights_other_than_the_released_ones_are_a_deviation():
    assert found("protocol=cortexbench", weights_kind="random") == [
        "weights=random (the protocol evaluates the released weights)"
    ]
    assert found("protocol=cortexbench", weights_kind="path") == [
        "weights from a file, not the registry's released checkpoint"
    ]
    assert found("protocol=cortexbench", weights_kind="pretrained") == []


def test_the_leaderboard_sets_only_conforming_records_beside_published_rows(tmp_path):
    generate(FIXTURES, tmp_path, warn=io.StringIO(), draw=False)
    md = (tmp_path / "leaderboard.md").read_text()
    conforming, deviating = (
        md.index("## Protocol `cortexbench`\n"),
        md.index("## Protocol `cortexbench`, not conforming"),
    )
    sections = md[deviating:].split("## Protocol `cortexbench`, not conforming")[1:]
    (section,) = [
        s for s in sections if "r3m-rn50" in s.split("## Protocol `theia`")[0]
    ]  # the state fixture has its own
    assert "- demos.source=scripted (protocol: official)" in section
    assert "published" not in section.split("### Feature-norm")[0].replace("no published number", "")
    beside = md[conforming:deviating]
    assert "Published rows:" in beside and "vc1-large" in beside and "r3m-rn50" not in beside
    csv = (tmp_path / "leaderboard.csv").read_text()
    assert "cortexbench [protocol.epochs=1 (protocol file: 100); demos.source=scripted" in csv


@pytest.mark.slow
def test_a_deviating_cell_says_so_in_its_record(tmp_path):
    overrides = [
        "encoder=random-vit-tiny",
        "task=metaworld-assembly",
        "protocol=cortexbench",
        "seed=100",
        "demos.source=scripted",
        "protocol.epochs=1",
        "render_quality=fast",
        # a budget this machine runs in seconds (each is a deviation too)
        "protocol.n_demos=2",
        "protocol.horizon=10",
        "protocol.eval_episodes=2",
        "protocol.render_size=64",
        "progress=false",
        f"results_dir={tmp_path}",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.eval", *overrides], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "runs").rglob("seed=100.json")
    stamp = json.loads(path.read_text())["conformance"]
    assert stamp["conforms"] is False and stamp["protocol"] == "cortexbench"
    for expected in (
        "protocol.epochs=1 (protocol file: 100)",
        "demos.source=scripted (protocol: official)",
        "render_quality=fast (protocol: faithful)",
    ):
        assert expected in stamp["deviations"]
    assert len(stamp["deviations"]) == 7


def test_official_demo_frames_far_from_our_renderer_are_a_deviation():
    """The frame-gap summary (`tasks.demos.framegap.summarise`) above its limits makes a cell non-conforming."""
    from tasks.demos.framegap import LIMITS, summarise

    argv = [*BASE, "protocol=cortexbench"]
    config = OmegaConf.to_container(compose_jobs([argv])[0], resolve=True)
    (cell,) = plan_sweep(argv)
    far = summarise([{"mean_abs_diff": LIMITS["mean_abs_diff"] + 5, "ssim": 0.2}], "test")
    near = summarise([{"mean_abs_diff": 1.0, "ssim": 0.99}], "test")
    assert deviations(config, cell.settings, "pretrained", {"frame_gap": near}) == []
    (found_far,) = deviations(config, cell.settings, "pretrained", {"frame_gap": far})
    assert found_far.startswith("official demo frames differ from our renderer")
