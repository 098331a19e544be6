"""Lockstep evaluation (one batched encoder forward per step, envs in worker processes) gives exactly
the per-episode results of running the same seeded episodes one at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import encoders
import tasks
from experiments.cells.envpool import ProcessEnvPool, SerialEnvPool, make_pool, task_env_factory
from experiments.cells.rollout import rollout
from policies import build_head

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


def test_lockstep_in_workers_equals_one_episode_at_a_time(setup):
    spec, head, factory, embed = setup
    pool = ProcessEnvPool(factory, len(SEEDS), workers=2)
    try:
        lockstep = rollout(pool, SEEDS, HORIZON, embed, head, 3, "flare")
    finally:
        pool.close()
    sequential = []
    for seed in SEEDS:
        single = SerialEnvPool(factory, 1)
        try:
            sequential += rollout(single, [seed], HORIZON, embed, head, 3, "flare")
        finally:
            single.close()
    assert [e.seed for e in lockstep] == SEEDS == [e.seed for e in sequential]
    for a, b in zip(lockstep, sequential, strict=True):
        assert a.length == b.length == HORIZON
        assert np.array_equal(a.rewards, b.rewards)
        assert set(a.infos) == set(b.infos) and all(np.array_equal(a.infos[k], b.infos[k]) for k in a.infos)
    assert not np.array_equal(lockstep[0].rewards, lockstep[1].rewards)  # seeds really differ
    assert spec.score(lockstep) == spec.score(sequential)


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
