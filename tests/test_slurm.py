"""Both SLURM paths against a real single-node cluster (slurmctld + slurmd, started by tests/slurm_cluster.py):
the hydra-submitit launcher (`nox -s eval -- -m hydra/launcher=slurm ...`) and the fire-and-forget array
(`nox -s slurm -- ...`), with smoke cells (random-vit-tiny, 2 demos, horizon 10) on the real MetaWorld
simulator, and the faults a cluster brings: a cancelled array task, a job hitting its time limit, a drained
node, two submissions of one sweep at once.

One cluster serves the whole session; every test leaves it with an empty queue and an idle node. The jobs run
the test's own python with its environment (sbatch exports it): the session's cache folder, EGL, offline.
Skipped only where SLURM cannot be installed (no apt-get, or not root); where it can, a missing install is an
error that says how to install it (.ci/run installs it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from experiments.records import read_record, validate
from tests.conftest import REPO
from tests.slurm_cluster import INSTALL_HINT, ClusterError, SlurmCluster, can_install, missing_binaries, start_time

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.sim_metaworld]

TASKS = ("metaworld-assembly", "metaworld-drawer-open")
CELLS = [(task, seed) for task in TASKS for seed in (100, 200)]
# No GPU, one core per job (two jobs at once on a 2-core machine), memory not a consumable resource here.
RESOURCES = (
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
)
WAIT_S = 600  # for a sweep of four smoke cells, two at a time


def smoke(results_dir: Path, tasks: tuple[str, ...] = TASKS, seeds: str = "seed=100,200") -> list[str]:
    return [
        "encoder=random-vit-tiny",
        "protocol=smoke",
        f"task={','.join(tasks)}",
        seeds,
        f"results_dir={results_dir}",
        "progress=false",
        "workers=1",
    ]


# ---------------------------------------------------------------------------------------------------------------------
# The cluster and helpers
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> SlurmCluster:
    """One throwaway cluster for the session; its teardown checks that no daemon it started is left."""
    if missing := missing_binaries():
        if not can_install():
            pytest.skip(f"SLURM ({', '.join(missing)}) cannot be installed here: no apt-get, or not root")
        pytest.fail(f"SLURM is not installed ({', '.join(missing)} missing); {INSTALL_HINT}", pytrace=False)
    if os.geteuid() != 0:
        pytest.skip("SLURM is installed, but the throwaway cluster runs its daemons as root: run these tests as root")
    try:
        started = SlurmCluster.start(tmp_path_factory.mktemp("slurm"))
    except ClusterError as err:  # e.g. a real cluster's slurmctld runs here: deselect with -m "not slurm"
        pytest.fail(str(err), pytrace=False)
    print(f"\n[slurm] cluster up in {started.started_s} s: {started.conf}")
    yield started
    started.stop()
    left = {name: pid for name, (pid, t0) in started.daemons.items() if start_time(pid) == t0}
    assert not left, f"daemons left running after the session: {left}"


@pytest.fixture
def slurm(cluster, monkeypatch) -> SlurmCluster:
    """The cluster, with SLURM_CONF set in this process (status calls squeue); afterwards nothing is left in
    the queue and the node is idle again, whatever the test did."""
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    yield cluster
    if jobs := cluster.jobs():
        cluster.run("scancel", *jobs, check=False)
    wait_until(lambda: not cluster.jobs(), 60, "the queue to empty after the test")
    if cluster.node_state() != "idle":
        cluster.run("scontrol", "update", f"nodename={cluster.node}", "state=resume", check=False)
    cluster.wait_idle(60)


def env(cluster: SlurmCluster) -> dict[str, str]:
    return {**os.environ, **cluster.env(), "PYTHONUNBUFFERED": "1"}


def harness(cluster: SlurmCluster, module: str, *args: str, timeout: float = WAIT_S) -> subprocess.CompletedProcess:
    """`python -m <module> args` as `nox -s eval/slurm -- args` runs it, against the cluster."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env(cluster),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_harness(cluster: SlurmCluster, log: Path, module: str, *args: str) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=REPO, env=env(cluster), stdout=out, stderr=subprocess.STDOUT
        )


def wait_until(condition: Callable[[], object], timeout: float, what: str, poll: float = 1.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
    return value


def queue(cluster: SlurmCluster, job: str = "") -> dict[str, tuple[str, str]]:
    """Array task id (`12_3`) -> (state, reason) of what the queue holds, for one array job or all."""
    lines = cluster.run("squeue", "-h", "-r", *(["-j", job] if job else []), "-o", "%i|%T|%r", check=False)
    return {i: (state, reason) for i, state, reason in (line.split("|") for line in lines.splitlines())}


def show_job(cluster: SlurmCluster, job: str) -> list[dict[str, str]]:
    """`scontrol show job` as one dict per array task (finished tasks stay for MinJobAge)."""
    text = cluster.run("scontrol", "-o", "show", "job", job)
    return [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in text.splitlines()]


def submitted_job(output: str) -> str:
    found = re.search(r"submitted array job (\d+)", output)
    assert found, output[-3000:]
    return found.group(1)


def records(results_dir: Path) -> dict[tuple[str, int], Path]:
    """(task, seed) -> record path, for every record under results_dir."""
    return {(p.parent.name, int(p.stem.split("=")[1])): p for p in (results_dir / "runs").rglob("seed=*.json")}


def assert_ok(results_dir: Path, cells: list[tuple[str, int]]) -> dict[tuple[str, int], Path]:
    found = records(results_dir)
    assert sorted(found) == sorted(cells)
    for (task, seed), path in found.items():
        record = read_record(path)
        assert validate(record) == [] and record["status"] == "ok", record.get("error")
        assert record["task"]["name"] == task and record["seed"] == seed
    return found


def leftovers(*folders: Path) -> list[Path]:
    """Temp files of a killed writer (records and cache entries are committed by an atomic rename)."""
    names = (".tmp", ".partial")
    return [p for f in folders for p in f.rglob("*") if p.name.endswith(names) or ".tmp-" in p.name]


def logs_text(*patterns: tuple[Path, str]) -> str:
    return "\n".join(p.read_text(errors="replace") for folder, glob in patterns for p in sorted(folder.rglob(glob)))


# ---------------------------------------------------------------------------------------------------------------------
# The cluster script
# ---------------------------------------------------------------------------------------------------------------------
def test_the_cluster_refuses_to_start_next_to_a_running_slurmctld(cluster, tmp_path):
    assert cluster.node_state() == "idle"
    with pytest.raises(ClusterError, match="already running"):
        SlurmCluster.start(tmp_path / "second")
    assert not (tmp_path / "second").exists() and cluster.node_state() == "idle"


# ---------------------------------------------------------------------------------------------------------------------
# 1. nox -s eval -- -m hydra/launcher=slurm: one SLURM array task per cell, the submitting process waits
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def submitit_results(tmp_path_factory) -> Path:
    """Results of the submitit sweep; the time-limit test adds a cell next to them."""
    return tmp_path_factory.mktemp("submitit")


def test_hydra_submitit_sweep_runs_four_slurm_jobs(slurm, submitit_results):
    results = submitit_results
    done = harness(slurm, "experiments.eval", "-m", "hydra/launcher=slurm", *RESOURCES, *smoke(results))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "[sweep] 4 jobs, 4 cells: 0 ok, 0 failed, 0 running, 0 corrupt, 4 missing" in done.stdout
    assert "[sweep] finished: 4 ok, 0 failed, 0 running, 0 corrupt, 0 missing" in done.stdout
    assert_ok(results, CELLS)
    folders = sorted(f for f in results.glob("hydra/multirun/*/*/.submitit/*_*") if f.is_dir())
    arrays = {f.name.split("_")[0] for f in folders}
    assert len(folders) == 4 and len(arrays) == 1, folders  # four tasks of one SLURM array
    array = arrays.pop()
    # The submitting process returns once every result file is written; a job may still be exiting.
    wait_until(lambda: not queue(slurm, array), 60, f"array {array} to leave the queue")
    tasks = show_job(slurm, array)
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1", "2", "3"]
    assert {t["JobState"] for t in tasks} == {"COMPLETED"} and {t["JobName"] for t in tasks} == {"cortexbench"}
    log = logs_text((results, "*_log.out"))
    for task, seed in CELLS:
        assert log.count(f"[done] {task} seed={seed}:") == 1


# ---------------------------------------------------------------------------------------------------------------------
# 2. nox -s slurm -- ...: fire and forget; status shows the SLURM jobs. 3. faults on the way: the node is drained
#    mid-sweep and resumed, an array task is cancelled mid-cell, and the same sweep is submitted again
# ---------------------------------------------------------------------------------------------------------------------
def test_fire_and_forget_sweep_through_a_drained_node_and_a_cancelled_task(slurm, tmp_path, capsys):
    """One array of four cells, two at a time, taken through the faults in turn (so four cells serve them all):
    it is queued and sbatch returns; status names each cell's array task; the node is drained while tasks 0
    and 1 run (they finish, 2 and 3 wait) and resumed; task 2 is cancelled mid-cell; submitting the same
    sweep again runs that cell alone and leaves the three finished records untouched."""
    from experiments import status

    results, first = tmp_path / "results", tmp_path / "first"
    submit = harness(slurm, "experiments.slurm", "--folder", str(first), *smoke(results), *RESOURCES)
    assert submit.returncode == 0, submit.stderr[-3000:]
    job = submitted_job(submit.stdout)
    assert len(queue(slurm, job)) == 4  # sbatch returned while all four tasks were still queued or running
    manifest = [Path(p) for p in json.loads((first / "cells.json").read_text())]  # array task -> its record
    assert [(p.parent.name, int(p.stem.split("=")[1])) for p in manifest] == CELLS

    # nox -s status: each cell with the array task that holds it.
    assert status.main(smoke(results)) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[-1] == "sweep: 4 jobs, 4 cells: 0 ok, 0 failed, 0 running, 0 corrupt, 4 missing"
    assert shown[-2].startswith("slurm: 4 cells in the queue: ")
    tasks = [re.search(rf"slurm ({job}_\d) (PENDING|RUNNING)", line) for line in shown[:4]]
    assert sorted(t.group(1) for t in tasks if t) == [f"{job}_{i}" for i in range(4)], shown

    # Drain the node while tasks 0 and 1 run: they finish, 2 and 3 wait; resumed, it runs them.
    wait_until(lambda: [s for s, _ in queue(slurm, job).values()].count("RUNNING") == 2, 60, "two running tasks")
    slurm.run("scontrol", "update", f"nodename={slurm.node}", "state=drain", "reason=test")
    wait_until(lambda: slurm.node_state() == "drained", WAIT_S, "the running tasks to end on the drained node")
    waiting = queue(slurm, job)
    assert sorted(waiting) == [f"{job}_2", f"{job}_3"] and {s for s, _ in waiting.values()} == {"PENDING"}, waiting
    assert sorted(records(results)) == CELLS[:2]
    slurm.run("scontrol", "update", f"nodename={slurm.node}", "state=resume")

    # Cancel task 2 once its cell is under way; task 3 finishes.
    log2 = first / f"{job}_2.out"
    wait_until(lambda: log2.exists() and "[run ]" in log2.read_text(), WAIT_S, "array task 2 to start its cell")
    slurm.run("scancel", f"{job}_2")
    wait_until(lambda: not queue(slurm, job), WAIT_S, f"array {job} to finish")
    assert show_job(slurm, f"{job}_2")[0]["JobState"] == "CANCELLED"
    cancelled = CELLS[2]
    finished = records(results)
    assert sorted(finished) == [c for c in CELLS if c != cancelled]
    before = {cell: (p.stat().st_mtime_ns, p.read_bytes()) for cell, p in finished.items()}

    # The same sweep again: one array task, the cancelled cell.
    again = harness(slurm, "experiments.slurm", "--folder", str(tmp_path / "again"), *smoke(results), *RESOURCES)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(1 array tasks" in again.stdout, again.stdout
    job2 = submitted_job(again.stdout)
    wait_until(lambda: not queue(slurm, job2), WAIT_S, f"array {job2} to finish")

    after = assert_ok(results, CELLS)
    for cell, path in after.items():  # the finished records were not touched
        if cell in before:
            assert (path.stat().st_mtime_ns, path.read_bytes()) == before[cell]
    assert leftovers(results, Path(os.environ["CORTEXBENCH_CACHE"])) == []
    logs = {i: (first / f"{job}_{i}.out").read_text() for i in range(4)}  # one log per array task, where the docs say
    logs[4] = (tmp_path / "again" / f"{job2}_0.out").read_text()
    for i, text in logs.items():
        assert f"[slurm] array task {i % 4} on {slurm.node}" in text, text[-2000:]
    assert "CANCELLED" in logs[2] and f"task={cancelled[0]} seed={cancelled[1]}" in logs[4]
    for task, seed in CELLS:  # none lost, none finished twice
        assert "".join(logs.values()).count(f"[done] {task} seed={seed}:") == 1
    assert status.main(["--check", *smoke(results)]) == 0
    assert "slurm:" not in capsys.readouterr().out  # nothing queued any more


# ---------------------------------------------------------------------------------------------------------------------
# 3. A job at its time limit (hydra-submitit launcher: max_num_timeout)
# ---------------------------------------------------------------------------------------------------------------------
def test_a_job_at_its_time_limit_is_requeued_and_resumes_at_its_unfinished_cell(slurm, submitit_results, tmp_path):
    """One job, two cells (seed 100, then 300) with a third demo that the test is "rendering": it holds that
    demo's lock, so the job's unfinished cell waits on it, under way, for as long as the test needs. Then the
    job's time limit is cut to less than signal_delay_s from now: SLURM signals it (its time-limit check runs
    every 30 s), submitit requeues it (max_num_timeout), the test lets go of the demo, and the requeued job
    skips the finished cell and runs the other to the end. SLURM holds a requeued job for two minutes; the
    test makes it eligible at once and gives the time back."""
    import tasks
    from encoders.storage import file_lock
    from experiments.plan import plan_sweep
    from tasks.demos.scripted import SCRIPTED_SEED_BASE, scripted_dir

    results = submitit_results  # seed 100 is finished there when the submitit sweep test ran first
    sweep = [*smoke(results, TASKS[:1], "protocol.seeds=[100,300]"), "protocol.n_demos=3"]
    ok_before = {seed for task, seed in records(results) if task == TASKS[0]}
    s = plan_sweep(sweep)[0].settings
    demo = (
        scripted_dir(tasks.get(s.task), s.render_size, s.render_quality, s.horizon)
        / f"seed-{SCRIPTED_SEED_BASE + 2}.npz"
    )
    cell_lines = r"\[(?:skip|run |done)\] .*metaworld-assembly seed=(?:100|300)\b.*"
    with file_lock(demo.with_name(f".{demo.name}.lock")) as held:
        assert held.held
        job_sweep = start_harness(
            slurm, tmp_path / "sweep.log", "experiments.eval", "-m", "hydra/launcher=slurm", *RESOURCES, *sweep
        )
        try:
            job = wait_until(lambda: list(queue(slurm)), 120, "the job to be queued")[0]
            out = lambda: logs_text((results / "hydra" / "multirun", f"{job}_0_log.out"))  # noqa: E731
            err = lambda: logs_text((results / "hydra" / "multirun", f"{job}_0_log.err"))  # noqa: E731
            wait_until(
                lambda: "[wait] waiting for another job rendering" in err(), WAIT_S, "the cell to wait for the demo"
            )
            elapsed = show_job(slurm, job)[0]["RunTime"]  # HH:MM:SS
            minutes = int(elapsed.split(":")[-2]) + 60 * int(elapsed.split(":")[-3])
            slurm.run("scontrol", "update", f"jobid={job}", f"timelimit={minutes + 2}")  # ends in 60-120 s
            requeued = lambda: show_job(slurm, job)[0]  # noqa: E731
            wait_until(lambda: requeued()["Restarts"] == "1", 120, "the job to be requeued")
            # Once its old run is cleaned up, SLURM holds it back (BeginTime): only then can that be undone.
            wait_until(lambda: requeued()["Reason"] == "BeginTime", 60, "the requeued job to wait for its BeginTime")
        except BaseException:
            job_sweep.kill()
            raise
    try:
        slurm.run("scontrol", "update", f"jobid={job}", "starttime=now", "timelimit=10")
        job_sweep.wait(timeout=WAIT_S)
    finally:
        job_sweep.kill()
    output = (tmp_path / "sweep.log").read_text()
    assert job_sweep.returncode == 0, output[-4000:]
    assert "[sweep] finished: 2 ok, 0 failed, 0 running, 0 corrupt, 0 missing" in output
    assert "this job is timed-out" in out() + err()
    # The job ran twice (before and after the requeue); each run starts with seed 100.
    lines = re.findall(cell_lines, out())
    starts = [i for i, line in enumerate(lines) if "seed=100" in line and not line.startswith("[done]")]
    assert len(starts) == 2, lines
    first, second = lines[: starts[1]], lines[starts[1] :]
    assert not any(line.startswith("[done] metaworld-assembly seed=300") for line in first), lines  # it was cut
    for seed in (100, 300):
        done = [line for line in lines if line.startswith(f"[done] metaworld-assembly seed={seed}:")]
        assert len(done) == (0 if seed in ok_before else 1), lines  # no cell finished twice
        if seed in ok_before or done[0] in first:  # finished before the requeue: skipped after it
            assert any(line.startswith("[skip]") and f"seed={seed}" in line for line in second), lines
    found = records(results)
    assert all(read_record(found[(TASKS[0], seed)])["status"] == "ok" for seed in (100, 300))
    assert leftovers(results) == []


# ---------------------------------------------------------------------------------------------------------------------
# 4. Two submissions of one sweep at once (one per SLURM path): the cell locks hold across SLURM jobs
# ---------------------------------------------------------------------------------------------------------------------
def test_two_submissions_at_once_run_every_cell_once(slurm, tmp_path, capsys):
    """Both arrays are queued while the node is drained, one task at a time each, so on resume their first
    tasks start together on the same cell: one runs it, the other finds it locked and moves on."""
    from experiments import status

    results = tmp_path / "results"
    sweep = [*smoke(results, TASKS[:1]), *RESOURCES, "hydra.launcher.array_parallelism=1"]
    cells = [(TASKS[0], 100), (TASKS[0], 200)]
    slurm.run("scontrol", "update", f"nodename={slurm.node}", "state=drain", "reason=test")
    wait_until(lambda: slurm.node_state() == "drained", 60, "the node to drain")
    fire = harness(slurm, "experiments.slurm", "--folder", str(tmp_path / "array"), *sweep)
    assert fire.returncode == 0, fire.stderr[-3000:]
    job = submitted_job(fire.stdout)
    waiting = start_harness(slurm, tmp_path / "submitit.log", "experiments.eval", "-m", "hydra/launcher=slurm", *sweep)
    try:
        wait_until(lambda: len(queue(slurm)) == 4, 120, "both arrays to be queued")
        assert status.main(sweep) == 0  # each cell with the two array tasks, one per path, that will run it
        shown = capsys.readouterr().out.splitlines()
        assert shown[-2] == "slurm: 2 cells in the queue: 4 PENDING", shown
        for line in shown[:2]:
            assert re.search(rf"slurm {job}_\d PENDING", line) and len(re.findall(r"slurm \d+_\d PENDING", line)) == 2
        slurm.run("scontrol", "update", f"nodename={slurm.node}", "state=resume")
        wait_until(lambda: waiting.poll() is not None and not queue(slurm), WAIT_S, "both arrays to finish")
    finally:
        waiting.kill()
    assert_ok(results, cells)
    log = logs_text((tmp_path / "array", f"{job}_*.out"), (results / "hydra" / "multirun", "*_log.out"))
    for task, seed in cells:
        assert log.count(f"[done] {task} seed={seed}:") == 1, log[-4000:]
    assert "[busy]" in log  # the two first tasks met on one cell
