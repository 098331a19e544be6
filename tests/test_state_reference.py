"""The state reference (`encoder=state`): the simulator's state through the same heads, nothing rendered."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import encoders
import tasks
from encoders.weights import WeightsNotSupportedError
from experiments.cells import run_cell
from experiments.plan import plan_sweep
from experiments.settings import SettingError
from tasks.demos.scripted import collect_scripted_demo

SMOKE = ("encoder=state", "protocol=smoke", "seed=100", "workers=1")


def test_its_features_are_the_state_sized_per_task():
    reference = encoders.load("state")
    assert reference.observation == "state" and encoders.get_spec("state").gmacs == 0
    metaworld = reference.for_task(tasks.get("metaworld-assembly"))
    assert metaworld.spec.embed_dim == 39  # MetaWorld's observation: 18 hand/objects + 18 previous + 3 goal
    walker = reference.for_task(tasks.get("dmc-walker-walk"))
    assert walker.spec.embed_dim == 14 + 1 + 9  # dm_control walker: orientations, height, velocity
    states = np.arange(2 * 39, dtype=np.float64).reshape(2, 39) / 7
    out = metaworld.encode(states)
    assert np.array_equal(out.vector.numpy(), states.astype(np.float32))
    assert out.tokens.shape == (2, 1, 39) and out.grid == (1, 1)
    described = metaworld.describe()
    assert described["state"]["dim"] == 39 and "39-d" in described["state"]["description"]
    assert described["weights"]["kind"] == "none"


def test_state_demos_are_the_rendered_demos_without_the_frames():
    spec = tasks.get("metaworld-drawer-open")
    rendered = collect_scripted_demo(spec, 10_000, 64, "fast", 12, render=True)
    states = collect_scripted_demo(spec, 10_000, 64, "fast", 12, render=False)
    assert "frames" not in states and states["states"].shape == (12, 39)
    for key in ("actions", "proprio", "rewards", "success"):
        assert np.array_equal(rendered[key], states[key]), key  # rendering never touches the physics
    env = spec.make_env(render=False)
    first, _ = env.reset(seed=10_000)
    env.close()
    assert np.array_equal(states["states"][0], first["state"])


def _no_rendering(monkeypatch):
    """Every MuJoCo renderer the suites use raises: a state cell must not call any of them."""
    import tasks.dmc
    import tasks.rendering

    def refuse(*args, **kwargs):
        raise AssertionError("the state reference rendered a frame")

    monkeypatch.setattr(tasks.rendering.Camera, "render", refuse)
    monkeypatch.setattr(tasks.dmc.DMCEnv, "render", refuse)


@pytest.mark.parametrize(("task", "dim"), [("metaworld-assembly", 39), ("dmc-walker-walk", 24), ("adroit-pen", 45)])
def test_a_state_cell_renders_nothing_and_says_what_state_it_used(task, dim, tmp_path, monkeypatch):
    _no_rendering(monkeypatch)
    (cell,) = plan_sweep([*SMOKE, f"task={task}", f"results_dir={tmp_path}"], weights_required=True)
    record = run_cell(cell.settings, encoders.load("state", cell.weights), cell.path)
    assert record["status"] == "ok", record["error"]
    assert cell.path == tmp_path / "runs" / "smoke" / "state" / task / "seed=100.json"
    assert record["encoder"]["state"]["dim"] == dim and record["encoder"]["input"] == "state"
    assert (
        record["feature_norm_entropy"]["value"] is None and "state" in record["feature_norm_entropy"]["not_applicable"]
    )
    assert record["cache"]["hit"] is None  # nothing encoded, nothing cached
    assert record["demos"]["frames_from"].startswith("not rendered")
    assert record["policy"]["n_parameters"] > 0 and len(record["episodes"]["final"]) == 2
    threads = torch.get_num_threads()
    assert record["provenance"]["torch_threads"] == 1  # pinned: the numbers do not depend on the core count
    assert torch.get_num_threads() == threads  # and restored after the cell


def test_trifinger_state_cell(tmp_path):
    (cell,) = plan_sweep([*SMOKE, "task=trifinger-reach-cube", f"results_dir={tmp_path}"], weights_required=True)
    record = run_cell(cell.settings, encoders.load("state", cell.weights), cell.path)
    assert record["status"] == "ok", record["error"]
    assert record["encoder"]["state"]["dim"] == 7  # cube position (3) + quaternion (4)
    assert record["provenance"]["render"]["renderer"] == "none (state reference)"
    assert record["feature_norm_entropy"]["value"] is None


def test_the_protocol_demos_become_the_experts_and_are_a_recorded_deviation():
    from experiments.conformance import deviations
    from experiments.plan import compose_jobs

    args = ["encoder=state", "task=metaworld-assembly", "protocol=cortexbench", "seed=100"]
    (cell,) = plan_sweep(args)
    assert cell.settings.demo_source == "expert" and cell.settings.policy == "bc-mlp"
    config = OmegaConf.to_container(compose_jobs([args])[0], resolve=True)
    assert deviations(config, cell.settings, cell.weights.kind) == ["demos.source=expert (protocol: official)"]
    (theia,) = plan_sweep(["encoder=state", "task=metaworld-assembly", "protocol=theia", "seed=100"])
    assert theia.settings.policy == "bc-mlp"  # Theia's rule gives the vector head: the state is one vector


@pytest.mark.parametrize(
    ("override", "error", "names"),
    [
        ("weights=random", WeightsNotSupportedError, "weights='random'"),
        ("policy=bc-conv", SettingError, "policy=bc-conv"),
        ("policy=ppo", SettingError, "policy=ppo"),
    ],
)
def test_what_the_state_reference_cannot_do_is_refused_when_planning(override, error, names):
    with pytest.raises(error, match=names):
        plan_sweep([*SMOKE, "task=metaworld-assembly", override], weights_required=True)


def test_known_answer_state_imitation_of_drawer_open_reaches_its_demos_with_enough_of_them(tmp_path):
    """docs/state-reference.md, "Known-answer checks": with the protocol's 25 demos the state policy opens the
    drawer from 56 % of new start states (88 % from the demos' own starts); with 100 demos it succeeds from all
    of them (measured: 100 % of 25 after 40 epochs), so the gap is the demos' coverage of MetaWorld's start
    states, not the pipeline. A broken state path, fusion, head or evaluation fails this."""
    overrides = [
        "encoder=state",
        "task=metaworld-drawer-open",
        "protocol=cortexbench",
        "demos.source=expert",
        "seed=100",
        "workers=1",
        "protocol.n_demos=100",
        "protocol.epochs=40",
        "protocol.eval_every=40",
        "protocol.eval_episodes=10",
        f"results_dir={tmp_path}",
    ]
    (cell,) = plan_sweep(overrides, weights_required=True)
    record = run_cell(cell.settings, encoders.load("state", cell.weights), cell.path)
    assert record["status"] == "ok", record["error"]
    assert record["demos"]["success_rate"] == 1.0  # the scripted expert itself
    assert record["scores"]["final"] >= 90.0, record["scores"]
