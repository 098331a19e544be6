"""TriFinger on the real simulator (trifinger_simulation 2.0.0, pybullet, pinocchio): the metric, the
scripted experts, the official `downsample.pth` layout, rendering, and the smoke eval end to end."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
import trifinger_simulation  # noqa: F401  (the `run` extra installs it: a missing install fails, never skips)

import tasks
from experiments.records import validate
from tasks.demos import DemosNotFoundError
from tasks.trifinger import (
    CUBE_WIDTH,
    DEMO_KEYS,
    MOVE_CUBE,
    REACH_CUBE,
    SCALE,
    TIP_RADIUS,
    TriFingerCubeEnv,
    collect_scripted_demo,
    demo_file,
    load_demos,
    move_scaled_success,
    reach_scaled_success,
    read_downsample,
    scripted_expert,
)
from tests.conftest import REPO

pytestmark = pytest.mark.sim_trifinger


def official_demo(spec, rng: np.random.Generator, length: int) -> dict[str, np.ndarray]:
    """A demo dict with every key of the official `downsample.pth` (eai-vc trifinger_vc README), float64
    arrays and positions in cm as `data_utils.get_traj_dict_from_obs_list(scale=100)` writes them."""
    cube = np.tile([2.0, -3.0, 3.25], (length, 1))
    if not spec.fix_cube:
        cube[:, 0] += np.linspace(0, 5, length)  # the cube is pushed 5 cm along x
    ft = rng.normal(0, 5, (length, 9)) + np.array([0, 12, 6, 10, -5, 6, -10, -5, 6])
    return {
        "t": np.arange(length)[:, None] * 100,
        "o_pos_cur": cube,
        "o_pos_des": np.tile(cube[-1], (length, 1)),
        "o_ori_cur": np.tile([0.0, 0.0, 0.3826834, 0.9238795], (length, 1)),
        "o_ori_des": np.tile([0.0, 0.0, 0.0, 1.0], (length, 1)),
        "ft_pos_cur": ft,
        "ft_pos_des": ft + 0.1,
        "ft_vel_cur": rng.normal(0, 1, (length, 9)),
        "ft_vel_des": rng.normal(0, 1, (length, 9)),
        "position_error": rng.random((length, 3)),
        "robot_pos": np.tile([-0.08, 1.15, -1.5] * 3, (length, 1)) + rng.normal(0, 0.01, (length, 9)),
        "image_60": rng.integers(0, 256, (length, 270, 270, 3), dtype=np.uint8),
        "image_180": rng.integers(0, 256, (length, 270, 270, 3), dtype=np.uint8),
        "image_300": rng.integers(0, 256, (length, 270, 270, 3), dtype=np.uint8),
        "ft_pos_targets_per_mode": rng.normal(0, 5, (2, 9)),
        "mode": np.array([1] * (length // 2) + [2] * (length - length // 2)),
        "vertices": rng.normal(0, 5, (length, 24)),
        "delta_ftpos": np.concatenate([rng.normal(0, 2, (length - 1, 9)), np.zeros((1, 9))]),
    }


def as_numpy1_file(data: bytes) -> bytes:
    """The same torch.save archive with its pickle naming numpy 1.x's module, as files from the reference's
    environment (numpy 1.23, torch 1.13) do."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            payload = source.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"cnumpy._core.multiarray\n" in payload
                payload = payload.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
            target.writestr(info, payload)
    return out.getvalue()


# --- metric --------------------------------------------------------------------------------------
def test_scaled_success_formulas():
    cube = np.array([0.0, 0.0, CUBE_WIDTH / 2])

    def along_x(distance: float) -> np.ndarray:
        return cube + np.array([distance, 0.0, 0.0])

    start = along_x(0.1 + CUBE_WIDTH / 2)  # 10 cm from the face
    assert reach_scaled_success(start, start, cube) == 0.0
    assert reach_scaled_success(along_x(0.05 + CUBE_WIDTH / 2), start, cube) == pytest.approx(0.5)
    assert reach_scaled_success(along_x(0.01), start, cube) == 1.0  # within half a width counts as touching
    assert reach_scaled_success(along_x(0.3), start, cube) == 0.0  # further than at the start: clipped
    goal = along_x(0.1)
    assert move_scaled_success(cube, cube, goal) == 0.0
    assert move_scaled_success(along_x(0.075), cube, goal) == pytest.approx(0.75)
    assert move_scaled_success(along_x(-0.1), cube, goal) == 0.0  # pushed away from the goal: clipped


def test_the_metric_is_the_last_steps_scaled_success_in_percent():
    episode = tasks.Episode(seed=100, rewards=np.zeros(3), infos={"scaled_success": np.array([0.2, 0.9, 0.5])})
    assert tasks.get("trifinger-reach-cube").score([episode]) == pytest.approx(50.0)


# --- simulator, experts --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reach_env():
    env = TriFingerCubeEnv(REACH_CUBE, render_size=270, quality="faithful", horizon=REACH_CUBE.horizon, render=False)
    yield env
    env.close()


def test_scripted_reach_expert_touches_the_cube(reach_env):
    expert = scripted_expert(REACH_CUBE)
    successes = []
    for seed in (10_000, 10_001, 10_002):
        obs, _ = reach_env.reset(seed=seed)
        expert.reset()
        for _ in range(REACH_CUBE.horizon):
            obs, _, _, truncated, info = reach_env.step(expert(obs))
        assert truncated
        gap = np.linalg.norm(reach_env.fingertip_positions()[:3] - obs["cube_position"]) - CUBE_WIDTH / 2
        assert gap < TIP_RADIUS + 0.004, f"seed {seed}: fingertip 0 stopped {gap * 100:.1f} cm from the cube"
        successes.append(info["scaled_success"])
    # Resting on a face leaves the 9.5 mm tip radius as error: success is 1 - radius / initial gap.
    assert np.mean(successes) > 0.8 and min(successes) > 0.7, successes


@pytest.mark.parametrize("spec", [REACH_CUBE, MOVE_CUBE], ids=lambda s: s.name)
def test_a_policy_that_does_not_move_scores_zero(spec):
    env = TriFingerCubeEnv(spec, render_size=270, quality="faithful", horizon=spec.horizon, render=False)
    try:
        _, info0 = env.reset(seed=10_003)
        for _ in range(spec.horizon):
            _, _, _, _, info = env.step(np.zeros(spec.action_dim))
    finally:
        env.close()
    assert info0["scaled_success"] == 0.0
    assert info["scaled_success"] < 0.01  # the held fingertips may sag by a fraction of a millimetre


def test_scripted_move_expert_pushes_the_cube_towards_the_goal():
    env = TriFingerCubeEnv(MOVE_CUBE, render_size=270, quality="faithful", horizon=MOVE_CUBE.horizon, render=False)
    expert = scripted_expert(MOVE_CUBE)
    try:
        obs, _ = env.reset(seed=10_000)
        expert.reset()
        start = np.linalg.norm(obs["cube_position"] - obs["goal_position"])
        for _ in range(MOVE_CUBE.horizon):
            obs, _, _, _, info = env.step(expert(obs))
    finally:
        env.close()
    assert info["scaled_success"] > 0.5
    assert np.linalg.norm(obs["cube_position"] - obs["goal_position"]) < 0.5 * start


def test_frames_show_the_stage_and_the_cube():
    env = TriFingerCubeEnv(REACH_CUBE, render_size=270, quality="faithful", horizon=5)
    try:
        pixels = env.reset(seed=10_000)[0]["pixels"]
        assert env.renderer == "tiny"
    finally:
        env.close()
    assert pixels.shape == (270, 270, 3) and pixels.dtype == np.uint8
    assert pixels[200:, 100:170].mean() < 60  # the black table and containment of trifinger_meta
    spread = pixels.max(axis=2).astype(int) - pixels.min(axis=2)
    assert (spread > 80).sum() > 100  # the coloured cube faces (and the yellow fingertips)


# --- demonstrations ------------------------------------------------------------------------------
def test_the_official_layout_loader_reads_a_demo_written_by_the_test_helper(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    for demo_id, legacy in ((0, False), (100, True)):
        demo = official_demo(REACH_CUBE, rng, length=6)
        buffer = io.BytesIO()
        torch.save(demo, buffer)  # as eai-vc's demo scripts do
        path = demo_file(tmp_path / "trifinger-demos", REACH_CUBE, demo_id)
        path.parent.mkdir(parents=True)
        path.write_bytes(as_numpy1_file(buffer.getvalue()) if legacy else buffer.getvalue())
        written[demo_id] = demo
    assert (
        demo_file(tmp_path, REACH_CUBE, 0).relative_to(tmp_path).as_posix() == "reach/demo-0000/dts-0p4/downsample.pth"
    )

    data = read_downsample(demo_file(tmp_path / "trifinger-demos", REACH_CUBE, 100))  # numpy-1.x pickle names
    assert set(data) == set(DEMO_KEYS)
    assert np.array_equal(data["image_300"], written[100]["image_300"])

    for path in (tmp_path, tmp_path / "trifinger-demos"):  # the unzip folder or trifinger-demos itself
        train = load_demos(REACH_CUBE, split="train", n=1, source="official", path=path)
        test = load_demos(REACH_CUBE, split="test", n=1, source="official", path=path)
        assert train.content_sha256 == load_demos(REACH_CUBE, split="train", n=1, path=tmp_path).content_sha256
    demo, source = train.demos[0], written[0]
    assert np.array_equal(demo.frames, source["image_60"])
    assert np.allclose(demo.actions, source["delta_ftpos"][:, :3]) and demo.actions.shape == (6, 3)
    assert np.allclose(demo.proprio, source["ft_pos_cur"]) and demo.proprio.dtype == np.float32
    state = demo.initial_state
    assert np.allclose(state["cube_position"], source["o_pos_cur"][0] / SCALE)  # cm -> m
    assert np.allclose(state["robot_position"], source["robot_pos"][0])
    assert np.allclose(state["goal_position"], state["cube_position"])  # Reach: the goal is the cube
    assert test.demos[0].seed == 100 and train.source == "official" and train.stats["renderer"] == "official"
    through_spec = REACH_CUBE.demos(n=1, path=tmp_path)  # the TaskSpec.demos contract of every suite: train split
    assert through_spec.fingerprint == train.fingerprint and through_spec.describe() == train.describe()
    assert REACH_CUBE.demos(n=1, path=tmp_path, split="test").demos[0].seed == 100

    move = official_demo(MOVE_CUBE, rng, length=11)
    path = demo_file(tmp_path / "trifinger-demos", MOVE_CUBE, 0)
    path.parent.mkdir(parents=True)
    torch.save(move, path)
    moved = load_demos(MOVE_CUBE, split="train", n=1, path=tmp_path).demos[0]
    assert np.allclose(moved.initial_state["goal_position"], move["o_pos_cur"][-1] / SCALE)  # the demo's end
    assert moved.actions.shape == (11, 9)


def test_demo_files_that_could_run_code_or_are_missing_are_refused(tmp_path):
    path = demo_file(tmp_path / "trifinger-demos", REACH_CUBE, 0)
    path.parent.mkdir(parents=True)
    torch.save({"image_60": np.zeros((1, 2, 2, 3), np.uint8), "payload": pickle.loads}, path)
    with pytest.raises(ValueError, match="not a readable TriFinger demo"):
        read_downsample(path)
    with pytest.raises(DemosNotFoundError) as missing:
        load_demos(REACH_CUBE, split="test", n=2, source="official", path=tmp_path / "nowhere")
    for expected in ("trifinger_demos.zip", "demos.path=", "demos.source=scripted", "demo-0100"):
        assert expected in str(missing.value)


def test_scripted_demos_use_the_official_layout_and_the_evaluation_frames():
    demo = collect_scripted_demo(REACH_CUBE, demo_id=7, quality="faithful", render_size=270)
    assert set(DEMO_KEYS) <= set(demo) and str(demo["renderer"]) == "tiny"
    assert demo["image_60"].shape == (6, 270, 270, 3) and demo["delta_ftpos"].shape == (6, 9)
    assert np.all(demo["delta_ftpos"][-1] == 0) and np.all(demo["delta_ftpos"][:, 3:] == 0)  # finger 0 only
    assert demo["scaled_success"][-1] > 0.5
    buffer = io.BytesIO()
    torch.save({k: np.asarray(v) for k, v in demo.items()}, buffer)
    # An evaluation episode started from this demo's state sees the demo's first frame, pixel for pixel.
    env = TriFingerCubeEnv(REACH_CUBE, render_size=270, quality="faithful", horizon=5)
    try:
        state = {
            "robot_position": demo["robot_pos"][0],
            "cube_position": demo["o_pos_cur"][0] / SCALE,
            "cube_orientation": demo["o_ori_cur"][0],
            "goal_position": demo["o_pos_cur"][0] / SCALE,
        }
        obs, _ = env.reset(options={"initial_state": state})
    finally:
        env.close()
    assert np.array_equal(obs["pixels"], demo["image_60"][0])
    assert np.allclose(obs["proprio"], demo["ft_pos_cur"][0], atol=1e-4)


# --- protocol and the eval entry point -----------------------------------------------------------
def test_protocols_give_trifinger_its_own_head_and_schedule():
    from hydra import compose, initialize_config_dir

    import encoders
    from experiments.settings import resolve_settings

    spec = encoders.get_spec("random-vit-tiny")
    with initialize_config_dir(config_dir=str(REPO / "experiments" / "conf"), version_base=None):
        full = compose(config_name="config", overrides=["encoder=random-vit-tiny", "task=trifinger"])
        smoke = compose(config_name="config", overrides=["encoder=random-vit-tiny", "task=trifinger", "protocol=smoke"])
    reach = resolve_settings(full, REACH_CUBE, spec, 100)
    move = resolve_settings(full, MOVE_CUBE, spec, 100)
    assert (reach.epochs, reach.eval_every, move.epochs, move.eval_every) == (100, 5, 1000, 25)
    assert (reach.batch_size, reach.lr, reach.hidden, reach.policy) == (32, 1e-4, (2000, 2000), "trifinger-mlp")
    assert (reach.n_demos, reach.eval_episodes, reach.horizon, move.horizon) == (100, 25, 5, 10)
    assert reach.render_quality == "faithful" and reach.default_policy == reach.policy
    metaworld = resolve_settings(full, tasks.get("metaworld-assembly"), spec, 100)
    assert (metaworld.epochs, metaworld.batch_size, metaworld.policy) == (100, 256, "bc-mlp")  # untouched
    tiny = resolve_settings(smoke, MOVE_CUBE, spec, 100)
    assert (tiny.epochs, tiny.eval_every, tiny.n_demos, tiny.eval_episodes, tiny.horizon) == (2, 1, 2, 2, 10)


@pytest.mark.slow
def test_smoke_eval_of_reach_cube_writes_a_full_record(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.eval",
            "encoder=random-vit-tiny",
            "task=trifinger-reach-cube",
            "protocol=smoke",
            "protocol.trifinger.epochs=1",  # the suite's own block, overridden from the command line
            f"results_dir={tmp_path}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    path = tmp_path / "runs" / "smoke" / "random-vit-tiny" / "trifinger-reach-cube" / "seed=100.json"
    record = json.loads(path.read_text())
    assert validate(record) == [] and record["status"] == "ok", record.get("error")
    assert record["policy"]["name"] == "trifinger-mlp" and record["policy"]["hyperparameters"]["optimizer"] == "AdamW"
    scores = record["scores"]
    assert [e for e, _ in scores["per_eval"]] == [0, 1]  # before training, then every epoch
    assert record["settings"]["epochs"] == 1 and len(scores["train_loss"]) == 1
    assert scores["best"] == max(v for _, v in scores["per_eval"]) and 0 <= scores["final"] <= 100
    assert [e["seed"] for e in record["episodes"]["final"]] == [100, 101]  # the test demos' ids
    assert record["demos"]["source"] == "scripted" and record["demos"]["test"]["ids"] == [100, 101]
    assert record["demos"]["renderer"] == record["provenance"]["render"]["renderer"]  # demos and evaluation agree
    assert record["feature_norm_entropy"]["value"] > 0 and record["feature_norm_entropy"]["n_frames"] == 12
    assert record["task"]["metric"] == "scaled_success" and record["settings"]["batch_size"] == 32


# --- Theia's TriFinger head (policy=trifinger-conv) ----------------------------------------------------
def test_theia_protocol_gives_transformers_theias_trifinger_head_and_cnns_cortexbenchs():
    from hydra import compose, initialize_config_dir

    import encoders
    from experiments.settings import resolve_settings

    vit, cnn = encoders.get_spec("random-vit-tiny"), encoders.get_spec("r3m-rn50")
    with initialize_config_dir(config_dir=str(REPO / "experiments" / "conf"), version_base=None):
        theia = compose(config_name="config", overrides=["encoder=random-vit-tiny", "task=trifinger", "protocol=theia"])
        forced = compose(
            config_name="config",
            overrides=["encoder=random-vit-tiny", "task=trifinger", "protocol=theia", "policy=trifinger-mlp"],
        )
    for task in (REACH_CUBE, MOVE_CUBE):
        s = resolve_settings(theia, task, vit, 100)
        assert (s.policy, s.default_policy, s.hidden) == ("trifinger-conv", "trifinger-conv", (256, 256))
        assert (s.batch_size, s.lr, s.eval_episodes) == (32, 1e-4, 25)
        cnn_settings = resolve_settings(theia, task, cnn, 100)
        assert (cnn_settings.policy, cnn_settings.hidden) == ("trifinger-mlp", (2000, 2000))
    mlp = resolve_settings(forced, REACH_CUBE, vit, 100)
    assert (mlp.policy, mlp.default_policy, mlp.hidden) == ("trifinger-mlp", "trifinger-conv", (2000, 2000))
    assert resolve_settings(theia, tasks.get("metaworld-assembly"), vit, 100).policy == "bc-conv"  # untouched


@pytest.mark.slow
def test_theia_smoke_eval_of_move_cube_trains_the_conv_head_on_spatial_tokens(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.eval",
            "encoder=random-vit-tiny",
            "task=trifinger-move-cube",
            "protocol=theia",
            "seed=100",
            "protocol.trifinger.epochs=1",
            "protocol.trifinger.eval_every=1",
            "protocol.n_demos=2",
            "protocol.eval_episodes=2",
            "demos.source=scripted",
            "render_quality=fast",
            "progress=false",
            f"results_dir={tmp_path}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    path = tmp_path / "runs" / "theia" / "random-vit-tiny" / "trifinger-move-cube" / "seed=100.json"
    record = json.loads(path.read_text())
    assert validate(record) == [] and record["status"] == "ok", record.get("error")
    assert record["policy"]["name"] == "trifinger-conv" and record["encoder"]["output_used"] == "spatial"
    hyper = record["policy"]["hyperparameters"]
    assert hyper["hidden"] == [256, 256] and hyper["grid"] == [14, 14] and hyper["optimizer"] == "AdamW"
    assert hyper["input"] == "conv_neck(tokens + goal_tokens as channels) + ft_pos_cm"
    assert hyper["neck"][0].startswith("Conv2d(384, 256, kernel_size=(4, 4)")  # 2 x 192: frame + goal tokens
    assert not any("LayerNorm" in layer for layer in hyper["neck"])  # the released TriFinger neck has none
    assert record["cache"]["key"] and record["settings"]["epochs"] == 1
    scores = record["scores"]
    assert [e for e, _ in scores["per_eval"]] == [0, 1] and len(scores["train_loss"]) == 1
    assert 0 <= scores["final"] <= 100 and [e["seed"] for e in record["episodes"]["final"]] == [100, 101]


class _LinearHead(torch.nn.Module):
    """A fixed linear policy on [state | goal state | fingertips]: enough to push the cube somewhere."""

    def __init__(self, inputs: int, actions: int):
        super().__init__()
        self.layer = torch.nn.Linear(inputs, actions)
        torch.nn.init.normal_(self.layer.weight, std=20.0, generator=torch.Generator().manual_seed(3))

    @torch.no_grad()
    def act(self, features, ft_pos):
        return self.layer(torch.cat([features, ft_pos], dim=1))


def test_evaluation_in_worker_processes_is_the_evaluation_of_envs_stepped_here():
    """`evaluate` on a serial pool and on two worker processes gives the values of a plain loop over envs
    made here, at a first and a second evaluation (each env runs the same demo every time: pybullet keeps
    some state across resets, so an env's history must not depend on where it lives)."""
    from experiments.cells.envpool import make_pool, task_env_factory
    from experiments.cells.trifinger import evaluate

    horizon, n = MOVE_CUBE.horizon, 3
    test = MOVE_CUBE.demos(split="test", n=n, source="scripted", quality="fast", progress=False)
    goals = torch.from_numpy(np.stack([d.observations("state")[-1] for d in test.demos])).float()
    head = _LinearHead(7 + 7 + 9, MOVE_CUBE.action_dim)

    def embed(states):
        return torch.from_numpy(np.asarray(states)).float()

    envs = [MOVE_CUBE.make_env(render=False, horizon=horizon) for _ in range(n)]
    here = []
    for _ in range(2):
        obs = [
            env.reset(options={"initial_state": d.initial_state})[0] for env, d in zip(envs, test.demos, strict=True)
        ]
        values = np.zeros((n, horizon))
        for t in range(horizon):
            features = torch.cat([embed(np.stack([o["state"] for o in obs])), goals], dim=1)
            ft_pos = torch.from_numpy(np.stack([o["proprio"] for o in obs])).float()
            actions = head.act(features, ft_pos).numpy()
            for i, env in enumerate(envs):
                obs[i], _, _, _, info = env.step(actions[i])
                values[i, t] = info["scaled_success"]
        here.append(values)
    for env in envs:
        env.close()
    assert np.ptp(here[0]) > 0  # the values move (the fingers disturb the cube): the comparison means something

    make_env = task_env_factory(MOVE_CUBE.name, render=False, horizon=horizon)
    for workers in (1, 2):
        pool = make_pool(make_env, n, workers)
        try:
            for evaluation in range(2):
                episodes = evaluate(pool, test, goals, embed, head, horizon, "cpu", observation="state")
                got = np.stack([ep.infos["scaled_success"] for ep in episodes])
                np.testing.assert_array_equal(got, here[evaluation], err_msg=f"workers={workers}")
                assert [ep.seed for ep in episodes] == [int(d.seed) for d in test.demos]
        finally:
            pool.close()
