"""Lockstep evaluation (one batched encoder forward per step, envs in worker processes) gives exactly
the per-episode results of running the same seeded episodes one at a time; overlapped evaluation (two
groups, the encoder on one while the workers step the other) gives exactly the results of the same
groups stepped in lockstep in this process."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

import encoders
import tasks
from experiments.cells import run_cell
from experiments.cells.envpool import (
    ProcessEnvPool,
    SerialEnvPool,
    choose_groups,
    group_ranges,
    make_pool,
    task_env_factory,
)
from experiments.cells.rollout import rollout
from experiments.plan import plan_sweep
from experiments.settings import SettingError
from policies import build_head
from policies.fusion import fuse
from tests.ending_env import ending_env

TASK, HORIZON, SEEDS = "metaworld-assembly", 12, [7, 8, 9]


@pytest.fixture(scope="module")
def setup():
    encoder = encoders.load("random-vit-tiny")
    spec = tasks.get(TASK)
    torch.manual_seed(0)
    # small_init="none" gives actions large enough that episodes diverge visibly across seeds
    head = build_head("bc-mlp", history=3, encoder_spec=encoder.spec, proprio_dim=4, action_dim=4, small_init="none")
    factory = task_env_factory(TASK, quality="fast", horizon=HORIZON)

    def embed(obs):
        return encoder.encode(obs["pixels"]).vector

    return spec, head.eval(), factory, embed


def one_at_a_time(factory, seed: int, horizon: int, embed, head) -> tuple[np.ndarray, dict[str, list]]:
    """One episode in a plain loop, no pool and no rollout(): its rewards and infos."""
    env = factory()
    try:
        obs, _ = env.reset(seed=seed)
        hist = [embed({k: v[None] for k, v in obs.items()})[0]] * 3
        rewards, infos = [], {}
        for t in range(horizon):
            with torch.no_grad():
                proprio = torch.as_tensor(obs["proprio"][None], dtype=torch.float32)
                action = head(fuse(torch.stack(hist)[None], "flare"), proprio)[0].numpy()
            obs, reward, terminated, _, info = env.step(action)
            rewards.append(reward)
            for key, value in info.items():
                infos.setdefault(key, []).append(float(value))
            if terminated:
                break
            if t < horizon - 1:
                hist = [*hist[1:], embed({k: v[None] for k, v in obs.items()})[0]]
        return np.array(rewards), infos
    finally:
        env.close()


def test_lockstep_in_workers_equals_one_episode_at_a_time(setup):
    """G=1 (one forward over all episodes per step) = each episode alone, in a plain loop."""
    _, head, factory, embed = setup
    pool = ProcessEnvPool(factory, len(SEEDS), workers=2)
    try:
        lockstep = rollout(pool, SEEDS, HORIZON, embed, head, 3, "flare", groups=1)
    finally:
        pool.close()
    assert [e.seed for e in lockstep] == SEEDS
    for episode, seed in zip(lockstep, SEEDS, strict=True):
        rewards, infos = one_at_a_time(factory, seed, HORIZON, embed, head)
        assert episode.length == HORIZON
        assert np.array_equal(episode.rewards, rewards)
        assert set(episode.infos) == set(infos) and all(np.array_equal(episode.infos[k], infos[k]) for k in infos)
    assert not np.array_equal(lockstep[0].rewards, lockstep[1].rewards)  # seeds really differ


class Recorder:
    """A pool that logs the order of its calls (reset, submit and wait per group's first env)."""

    def __init__(self, pool):
        self.pool, self.calls = pool, []

    def __len__(self) -> int:
        return len(self.pool)

    def reset(self, *args):
        self.calls.append("reset")
        return self.pool.reset(*args)

    def submit_step(self, group, actions, active):
        self.calls.append(f"submit {group.start}")
        self.pool.submit_step(group, actions, active)

    def wait_step(self, group):
        self.calls.append(f"wait {group.start}")
        return self.pool.wait_step(group)


def test_overlapped_groups_in_workers_equal_lockstep_groups_in_this_process(setup):
    """G=2 with 2 workers (each holds part of both groups) = G=2 in a serial pool, bit for bit, with episodes
    that terminate at different steps (one group ends first, the other runs on) or run to the horizon."""
    _, head, _, embed = setup
    factory = partial(ending_env, TASK, quality="fast", horizon=HORIZON, render_size=64)
    seeds, horizon = [7, 9, 10, 11], 6  # they end after 5, 7 (> horizon), 3 and 4 steps
    serial, workers = SerialEnvPool(factory, 4), ProcessEnvPool(factory, 4, workers=2)
    try:
        # auto overlaps only where the encoder has its own device (on a CPU it shares the workers' cores)
        assert [choose_groups("auto", pool, device) for pool in (workers, serial) for device in ("cuda", "cpu")] == [
            2,
            1,
            1,
            1,
        ]
        assert group_ranges(4, 2) == [range(0, 2), range(2, 4)]
        recorded = Recorder(workers)
        overlapped = rollout(recorded, seeds, horizon, embed, head, 3, "flare", groups=2)
        lockstep = rollout(serial, seeds, horizon, embed, head, 3, "flare", groups=2)
    finally:
        serial.close()
        workers.close()
    # the pipeline: both groups in flight, then each group is encoded while the other steps; group 2 stops
    # when its episodes have ended (step 4), group 0 goes on alone, and nothing is submitted after the horizon
    both = ["wait 0", "submit 0", "wait 2", "submit 2"]
    tail = ["wait 0", "submit 0", "wait 2", "wait 0", "submit 0", "wait 0"]
    assert recorded.calls == ["reset", "submit 0", "submit 2", *both * 3, *tail]
    assert [e.length for e in overlapped] == [5, 6, 3, 4]
    for a, b in zip(overlapped, lockstep, strict=True):
        assert a.seed == b.seed and a.length == b.length
        assert np.array_equal(a.rewards, b.rewards)
        assert set(a.infos) == set(b.infos) and all(np.array_equal(a.infos[k], b.infos[k]) for k in a.infos)
    assert not np.array_equal(overlapped[0].rewards[:3], overlapped[2].rewards)  # seeds really differ


def test_process_pool_observations_match_the_serial_pool(setup):
    _, _, factory, _ = setup
    serial, workers = SerialEnvPool(factory, 3), ProcessEnvPool(factory, 3, workers=2)
    try:
        a, b = serial.reset([1, 2, 3]), workers.reset([1, 2, 3])
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
        actions = np.tile(np.array([[0.5, -0.5, 0.2, 1.0]], np.float32), (3, 1))
        active = np.array([True, False, True])
        sa, sb = serial.step(actions, active), workers.step(actions, active)
        assert all(np.array_equal(sa[0][k], sb[0][k]) for k in sa[0])
        assert np.array_equal(sa[1], sb[1]) and np.array_equal(sa[2], sb[2])
        assert np.array_equal(sb[0]["pixels"][1], b["pixels"][1])  # inactive env repeats its last frame
    finally:
        serial.close()
        workers.close()


def test_worker_errors_surface_with_their_traceback():
    pool = ProcessEnvPool(task_env_factory(TASK, quality="fast", horizon=HORIZON), 2, workers=2)
    try:
        with pytest.raises(RuntimeError, match="evaluation worker failed"):
            pool.step(np.zeros((2, 3), np.float32), np.ones(2, bool))  # wrong action size
    finally:
        pool.close()


def test_auto_pool_choice():
    factory = task_env_factory(TASK, render=False)
    small = make_pool(factory, 2, "auto")
    assert isinstance(small, SerialEnvPool)
    small.close()


def test_auto_workers_count_the_cores_this_job_may_use(monkeypatch):
    import os

    from experiments.cells.envpool import usable_cpus

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")  # a SLURM job's allocation, not the node's cores
    assert usable_cpus() == 3
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert usable_cpus() == len(os.sched_getaffinity(0))  # a container or taskset limit


def test_peak_memory_of_each_worker_and_of_this_process():
    factory = task_env_factory(TASK, render=False)
    pool, serial = ProcessEnvPool(factory, 3, workers=2), SerialEnvPool(factory, 1)
    try:
        peaks = pool.peak_rss_mb()
        assert set(peaks) == {"main", "worker0", "worker1"}
        assert all(isinstance(v, float) and 10 < v < 1e6 for v in peaks.values()), peaks  # MiB, not KiB or bytes
        assert set(serial.peak_rss_mb()) == {"main"} and serial.peak_rss_mb()["main"] > 10
        # workers hold environments, not the main process's torch and encoders (spawn would re-import them)
        assert [stats["imports_torch"] for stats in pool.worker_stats()] == [False, False]
    finally:
        pool.close()
        serial.close()


SMOKE = ["task=metaworld-assembly", "protocol=smoke", "seed=100", "workers=1"]


@pytest.mark.parametrize("value", ["0", "3", "x", "true", "-1"])
def test_bad_eval_groups_are_refused_naming_the_key(value):
    with pytest.raises(SettingError, match=r"eval_groups=.* is not one of auto, 1, 2"):
        plan_sweep(["encoder=random-vit-tiny", *SMOKE, f"eval_groups={value}"])


def test_state_cells_give_the_same_results_whatever_the_groups(tmp_path):
    """The state reference's embed is the state itself, so splitting the episodes into groups changes
    nothing; the record says how many groups ran."""
    records = {}
    for groups in ("auto", "1", "2"):
        argv = ["encoder=state", *SMOKE, "protocol.eval_episodes=4", f"eval_groups={groups}"]
        (cell,) = plan_sweep([*argv, f"results_dir={tmp_path / groups}"], weights_required=True)
        assert cell.settings.eval_groups == (groups if groups == "auto" else int(groups))
        records[groups] = run_cell(cell.settings, encoders.load("state", cell.weights), cell.path)
        assert records[groups]["status"] == "ok", records[groups]["error"]
    assert [records[g]["provenance"]["eval_groups"] for g in ("auto", "1", "2")] == [1, 1, 2]  # auto: no workers
    assert records["auto"]["settings"]["eval_groups"] == "auto"
    assert records["1"]["episodes"] == records["2"]["episodes"] == records["auto"]["episodes"]
    assert records["1"]["scores"] == records["2"]["scores"]
    assert len(records["2"]["episodes"]["final"]) == 4
