"""Official CortexBench demo pickles, offline: small files in the official layout, written by
`tasks.demos.official_format_paths` from our own simulators, load through the real official loader,
are checked against the task protocol, re-render from their physics states, and train a real cell."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tasks
from tasks.demos import SCRIPTED_SEED_BASE, load_demos, official_format_paths, read_official_paths, write_official_paths
from tasks.dmc import OfficialDemoMismatchError
from tests.conftest import REPO


def random_policy(spec, seed=0):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1, 1, spec.action_dim).astype(np.float32)


def _pickle(tmp_path, spec, n=2, horizon=12, blank_images=False, **kwargs):
    kwargs.setdefault("expert", random_policy(spec))
    paths = official_format_paths(spec, n=n, horizon=horizon, **kwargs)
    if blank_images:  # frames that only a re-render can turn back into the true ones
        for p in paths:
            p["images"] = np.zeros_like(p["images"])
    file = tmp_path / spec.official_demo_file
    write_official_paths(file, paths)
    return file, paths


def test_official_layout_round_trips_through_the_arrays_only_unpickler(tmp_path):
    spec = tasks.get("dmc-walker-walk")
    file, paths = _pickle(tmp_path, spec, horizon=5)
    again = read_official_paths(file)
    assert len(again) == 2 and set(again[0]) == {"images", "observations", "actions", "rewards", "env_infos"}
    assert again[0]["images"].shape == (5, 256, 256, 3) and again[0]["images"].dtype == np.uint8
    assert again[0]["env_infos"]["internal_state"].shape == (5, 18)  # walker: qpos 9 + qvel 9
    assert np.array_equal(again[1]["actions"], paths[1]["actions"])


def test_dmc_frames_are_re_rendered_from_internal_state(tmp_path):
    spec = tasks.get("dmc-walker-stand")
    file, paths = _pickle(tmp_path, spec, blank_images=True, quality="fast")
    with pytest.warns(UserWarning, match="horizon 1000"):
        demos = load_demos(spec, n=2, source=str(file), quality="fast", progress=False)
    assert demos.frames_from.startswith("re-rendered from stored physics states")
    assert demos.stats["protocol_check"]["action_repeat_matches"] is True
    assert demos.stats["protocol_check"]["horizon_matches"] is False  # a 12-step test file, not 1000
    env = spec.make_env(quality="fast")
    env.reset(seed=0)
    for demo, path in zip(demos.demos, paths, strict=True):
        env.set_physics_state(path["env_infos"]["internal_state"][5])
        assert np.array_equal(demo.frames[5], env.render())  # the true frame, not the blank pickle image
    env.close()
    assert demos.stats["mean_return"] == pytest.approx(np.mean([p["rewards"].sum() for p in paths]))


def test_reacher_target_is_recovered_from_the_first_image(tmp_path):
    spec = tasks.get("dmc-reacher-easy")
    file, paths = _pickle(tmp_path, spec, n=1, quality="fast")
    with pytest.warns(UserWarning):
        demos = load_demos(spec, n=1, source=str(file), quality="fast", progress=False)
    env = spec.make_env(quality="fast")
    env.reset(seed=SCRIPTED_SEED_BASE)  # the episode the file was written from
    true_target = env.physics.named.model.geom_pos["target", ["x", "y"]].copy()
    env.close()
    (fitted,) = demos.stats["rerender"]["reacher_target_xy"]
    assert np.linalg.norm(np.asarray(fitted) - true_target) < 0.003
    difference = np.abs(demos.demos[0].frames.astype(int) - paths[0]["images"].astype(int)).max(axis=-1)
    assert difference.mean() < 0.5 and (difference > 30).mean() < 0.002  # at most a rim of target pixels


def test_a_different_action_repeat_in_the_data_is_refused(tmp_path):
    spec = tasks.get("dmc-cheetah-run")
    repeat_two = dataclasses.replace(spec, action_repeat=2)
    paths = official_format_paths(
        repeat_two, n=1, horizon=8, render_size=64, quality="fast", expert=random_policy(spec)
    )
    file = tmp_path / spec.official_demo_file
    write_official_paths(file, paths)
    with pytest.warns(UserWarning), pytest.raises(OfficialDemoMismatchError, match="action repeat 2"):
        load_demos(spec, n=1, source=str(file), quality="fast", progress=False)


def test_adroit_re_renders_from_per_step_states_and_otherwise_keeps_the_pickle_images(tmp_path):
    spec = tasks.get("adroit-relocate")
    with_states, paths = _pickle(tmp_path, spec, n=1, horizon=6, blank_images=True, quality="fast")
    demos = load_demos(spec, n=1, source=str(with_states), quality="fast", progress=False)
    assert demos.frames_from.startswith("re-rendered") and demos.demos[0].frames.any()
    env = spec.make_env(quality="fast")
    obs, _ = env.reset(options={"initial_state_dict": paths[0]["init_state_dict"]})
    assert np.array_equal(demos.demos[0].frames[0], obs["pixels"])
    assert np.allclose(demos.demos[0].proprio, paths[0]["env_infos"]["proprio"])
    env.close()

    (tmp_path / "plain").mkdir()
    plain, paths = _pickle(tmp_path / "plain", spec, n=1, horizon=6, quality="fast", per_step_states=False)
    demos = load_demos(spec, n=1, source=str(plain), quality="fast", progress=False)
    assert demos.frames_from.startswith("official pickle images")
    assert np.array_equal(demos.demos[0].frames, paths[0]["images"])


def test_an_official_format_file_trains_a_cell_end_to_end(tmp_path):
    """The eval entry point with demos.source=<official-format pickle>: loads, re-renders, trains, records."""
    spec = tasks.get("dmc-walker-walk")
    file, _ = _pickle(tmp_path, spec, horizon=10, blank_images=True, quality="fast")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.eval",
            "encoder=random-vit-tiny",
            f"task={spec.name}",
            "protocol=smoke",
            f"demos.source={file}",
            f"results_dir={tmp_path / 'results'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = (tmp_path / "results" / "runs" / "smoke").rglob("seed=100.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["demos"]["source"] == f"file:{file}"
    assert record["demos"]["frames_from"].startswith("re-rendered from stored physics states")
    assert record["demos"]["frames"] == 20 and len(record["scores"]["train_loss"]) == 2
    assert record["task"]["name"] == spec.name and record["scores"]["metric"] == "return_div_10"


def test_demos_session_checks_the_unpacked_pickles_and_stays_offline(tmp_path, monkeypatch):
    """`nox -s demos`: with the files in place it reads and checks them (here: too few paths, as a
    truncated download would be); with files missing and downloads off it says where they belong."""
    from tasks import download
    from tasks.demos import official_path

    monkeypatch.setenv("CORTEXBENCH_OFFLINE", "1")
    monkeypatch.setenv("CORTEXBENCH_DATA", str(tmp_path / "data"))
    with pytest.raises(SystemExit, match=r"dmc-expert-v1\.0 and downloads are off"):
        download.main(["dmc"])
    for spec in (tasks.get("adroit-pen"), tasks.get("adroit-relocate")):
        paths = official_format_paths(spec, n=1, horizon=3, render_size=32, quality="fast", expert=random_policy(spec))
        write_official_paths(official_path(spec), paths)
    with pytest.raises(SystemExit, match="holds 1 demonstrations, the protocol uses 100"):
        download.main(["adroit"])


# ------------------------------------------------------------------------------------------------
# Frame gap: each official demo's first state rendered by us vs the pickle's first image (demos.frame_gap)
# ------------------------------------------------------------------------------------------------
def test_frame_gap_measures_difference_and_structure():
    from tasks.demos.framegap import frame_gap

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert frame_gap(image, image) == {"mean_abs_diff": 0.0, "ssim": 1.0}
    brighter = np.clip(image.astype(int) + 4, 0, 255).astype(np.uint8)  # a renderer's shading offset
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # another picture altogether
    near, far = frame_gap(image, brighter), frame_gap(image, noise)
    assert near["mean_abs_diff"] < 5 and near["ssim"] > 0.99
    assert far["mean_abs_diff"] > 60 and far["ssim"] < 0.1
    smooth = np.broadcast_to(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (64, 64, 3))
    assert frame_gap(smooth, np.kron(smooth, np.ones((2, 2, 1), np.uint8)))["ssim"] > 0.95  # 128 px resized to 64


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("metaworld-button-press-topdown", {}),  # no physics states: layout recovered from the first observation
        ("metaworld-hammer", {}),
        ("adroit-pen", {"per_step_states": False}),  # pickle images, first state from init_state_dict
        ("dmc-walker-stand", {}),  # re-rendered: our first frame vs the pickle's
    ],
)
def test_frame_gap_is_recorded_and_near_zero_for_frames_from_our_renderer(tmp_path, name, options):
    spec = tasks.get(name)
    file, _ = _pickle(tmp_path, spec, n=2, horizon=3, quality="fast", seed_base=SCRIPTED_SEED_BASE + 40, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # DMC: a 3-step file is not the 1000-step protocol
        demos = load_demos(spec, n=2, source=str(file), quality="fast", progress=False)
    gap = demos.describe()["frame_gap"]  # what lands in record["demos"]
    assert gap["measured"] is True and gap["n_demos"] == 2 and gap["above_limit"] is False
    assert gap["mean_abs_diff"] < 0.5 and gap["ssim"] > 0.99, gap


@pytest.mark.parametrize("name", ["metaworld-button-press-topdown", "dmc-walker-stand"])
def test_frame_gap_above_the_limit_warns_and_is_flagged(tmp_path, name):
    spec = tasks.get(name)
    file, _ = _pickle(tmp_path, spec, n=1, horizon=3, quality="fast", blank_images=True)
    with pytest.warns(UserWarning, match="far from our renderer"):
        demos = load_demos(spec, n=1, source=str(file), quality="fast", progress=False)
    gap = demos.stats["frame_gap"]
    assert gap["above_limit"] is True and gap["mean_abs_diff"] > gap["limits"]["mean_abs_diff"]


def test_a_metaworld_pickle_without_observations_records_an_unmeasured_gap(tmp_path):
    spec = tasks.get("metaworld-button-press-topdown")
    paths = official_format_paths(spec, n=1, horizon=3, quality="fast", expert=random_policy(spec))
    del paths[0]["observations"]
    file = tmp_path / spec.official_demo_file
    write_official_paths(file, paths)
    gap = load_demos(spec, n=1, source=str(file), quality="fast", progress=False).stats["frame_gap"]
    assert gap == {"measured": False, "how": gap["how"]}


# ------------------------------------------------------------------------------------------------
# DMC visualize_reward: on, as dmc2gym's default; detected from the official frames and recorded
# ------------------------------------------------------------------------------------------------
def _dm_control_frame(spec, state, visualize: bool) -> np.ndarray:
    """dm_control's own rendering of a physics state with or without reward colours (as dmc2gym makes it)."""
    from dm_control import suite

    domain, task = spec.env_id.split("-", 1)
    env = suite.load(domain, task, task_kwargs={"random": 0}, visualize_reward=visualize)
    env.reset()
    with env.physics.reset_context():
        env.physics.set_state(state)
    env.task.after_step(env.physics)  # what dm_control runs after every step: colours follow the reward
    frame = env.physics.render(256, 256, camera_id=0)
    env.physics.free()
    return frame


def test_dmc_renders_with_reward_colours_like_dmc2gym():
    """A standing walker earns reward ~1: its body turns from orange (default) to green (highlight)."""
    from tasks.dmc import VISUALIZE_REWARD

    spec = tasks.get("dmc-walker-stand")
    env = spec.make_env(quality="faithful")  # dm_control's own rendering settings
    env.reset(seed=0)
    standing = np.zeros_like(env.physics_state())  # qpos 0: upright, torso at 1.3 m
    env.set_physics_state(standing)
    assert VISUALIZE_REWARD is True and env._env.task.visualize_reward is True
    assert spec.version == 2  # v1 rendered without reward colours
    assert np.array_equal(env.render(), _dm_control_frame(spec, standing, visualize=True))
    assert not np.array_equal(env.render(), _dm_control_frame(spec, standing, visualize=False))
    env.close()


@pytest.mark.parametrize("visualize", [True, False])
def test_visualize_reward_is_detected_from_the_pickle_frames_and_recorded(tmp_path, visualize):
    spec = tasks.get("dmc-walker-stand")
    paths = official_format_paths(spec, n=1, horizon=4, quality="faithful", expert=random_policy(spec))
    standing = np.zeros_like(paths[0]["env_infos"]["internal_state"][2])  # a high-reward state to tell by
    paths[0]["env_infos"]["internal_state"][2] = standing
    paths[0]["images"] = np.stack(
        [_dm_control_frame(spec, s, visualize) for s in paths[0]["env_infos"]["internal_state"]]
    )
    file = tmp_path / spec.official_demo_file
    write_official_paths(file, paths)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        demos = load_demos(spec, n=1, source=str(file), quality="fast", progress=False)
    check = demos.describe()["visualize_reward"]  # what lands in record["demos"]
    assert check == {"used": True, "detected": visualize, "demos_decided": 1, "demos_agreeing": int(visualize)}
    assert any("visualize_reward=False" in str(w.message) for w in caught) == (not visualize)
