"""Sweeps (Hydra multirun) end to end: local parallel launcher, kill + resume, failed cells, status, SLURM script.

Every sweep here is a real `python -m experiments.eval -m ...` (what `nox -s eval -- -m ...` runs) at
smoke size: random-vit-tiny, two demos, horizon 10, on the real MetaWorld simulator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from encoders.cache import EmbeddingCache
from experiments.records import read_record, validate, write_record
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.sim_metaworld]

TASKS = ("metaworld-assembly", "metaworld-hammer")
SMOKE_SWEEP = (
    "-m",
    "hydra/launcher=local",
    "hydra.launcher.n_jobs=2",
    "encoder=random-vit-tiny",
    f"task={','.join(TASKS)}",
    "protocol=smoke",
    "seed=100,200",
)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def run_module(module: str, *args: str, env: dict | None = None, merge: bool = False) -> subprocess.CompletedProcess:
    """`python -m module args` in the repo; `merge` interleaves stderr into stdout in the order printed."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge else subprocess.PIPE,
        text=True,
        timeout=900,
        env=env or _env(),
    )


def records(results_dir: Path) -> dict[tuple[str, int], Path]:
    """(task, seed) -> record path, for every record under results_dir."""
    return {
        (p.parent.name, int(p.stem.split("=")[1])): p
        for p in (results_dir / "runs").rglob("seed=*.json")
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------------------------------------
# Planning (no cells run)
# ---------------------------------------------------------------------------------------------------------------------
def test_groups_encoders_and_seeds_expand_to_one_job_per_cell():
    import tasks
    from experiments.plan import plan_sweep, split_jobs

    argv = ["-m", "encoder=random-vit-tiny,theia-tiny", "task=mujoco", "seed=100,200,300", "weights=random"]
    jobs = split_jobs(argv)
    mujoco = tasks.groups()["mujoco"]
    assert len(mujoco) >= 5 and len(jobs) == 2 * len(mujoco) * 3
    assert jobs[0] == ["encoder=random-vit-tiny", f"task={mujoco[0]}", "seed=100", "weights=random"]
    assert {tuple(sorted(j)) for j in jobs} == {
        tuple(sorted([f"encoder={e}", f"task={t}", f"seed={s}", "weights=random"]))
        for e in ("random-vit-tiny", "theia-tiny")
        for t in mujoco
        for s in (100, 200, 300)
    }
    cells = plan_sweep(argv)
    assert len(cells) == len(jobs) and len({c.path for c in cells}) == len(cells)
    assert {c.label for c in cells} == {"random-vit-tiny", "theia-tiny@random"}
    assert cells[0].command() == ["encoder=random-vit-tiny", "weights=random", f"task={mujoco[0]}", "seed=100"]
    # The fast compose (groups once, values applied) gives what a full Hydra compose gives.
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from experiments.plan import CONF_DIR, compose_jobs

    mixed = split_jobs([*argv, "protocol=smoke,theia", "protocol.epochs=7", "+note=x", "hydra/launcher=local"])
    sample = mixed[:3] + mixed[-3:]
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        full = [compose("config", overrides=[o for o in job if not o.startswith("hydra")]) for job in sample]
    assert [OmegaConf.to_container(c) for c in compose_jobs(sample)] == [OmegaConf.to_container(c) for c in full]
    assert {c.protocol.name for c in compose_jobs(sample)} == {"smoke", "theia"}
    # Without seed=, a job holds every protocol seed: one job, three cells.
    assert len(split_jobs(["-m", "encoder=random-vit-tiny", "task=metaworld-hammer"])) == 1
    assert [c.settings.seed for c in plan_sweep(["encoder=random-vit-tiny", "task=metaworld-hammer"])] == [
        100,
        200,
        300,
    ]


def test_a_sweep_with_a_misspelled_encoder_fails_before_launching_anything(tmp_path):
    result = run_module(
        "experiments.eval", "-m", "encoder=random-vit-tiny,thea", "task=metaworld-assembly", f"results_dir={tmp_path}"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Did you mean: theia" in result.stderr and "Traceback" not in result.stderr
    assert "Launching" not in result.stdout + result.stderr and not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Must show 1: a real multirun with the local launcher, 2 tasks x 2 seeds -> 4 ok records
# ---------------------------------------------------------------------------------------------------------------------
def test_local_parallel_multirun_writes_four_ok_records(tmp_path):
    result = run_module("experiments.eval", *SMOKE_SWEEP, f"results_dir={tmp_path}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Joblib.Parallel(n_jobs=2" in output and "is launching 4 jobs" in output  # the joblib launcher ran it
    found = records(tmp_path)
    assert sorted(found) == [(t, s) for t in TASKS for s in (100, 200)]
    for (task, seed), path in found.items():
        record = json.loads(path.read_text())
        assert validate(record) == [] and record["status"] == "ok", record.get("error")
        assert record["task"]["name"] == task and record["seed"] == seed and record["protocol"]["name"] == "smoke"
    for task in TASKS:  # both seeds of a task ran at once and still share one demo set and one embedding entry
        a, b = (json.loads(found[(task, s)].read_text()) for s in (100, 200))
        assert a["demos"]["sha256"] == b["demos"]["sha256"] and a["cache"]["key"] == b["cache"]["key"]
    assert "[sweep] finished: 4 ok, 0 failed, 0 running, 0 corrupt, 0 missing" in result.stdout

    again = run_module("experiments.eval", *SMOKE_SWEEP, f"results_dir={tmp_path}")
    assert again.returncode == 0 and "nothing to run" in again.stdout, again.stderr[-2000:]


# ---------------------------------------------------------------------------------------------------------------------
# Must show 2: SIGKILL the sweep partway, rerun it: every cell ok, finished cells untouched, nothing corrupt
# ---------------------------------------------------------------------------------------------------------------------
def _group_gone(pgid: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def _check_nothing_corrupt(results_dir: Path, cache_dir: Path) -> None:
    """Every file a later run reads is whole: JSON and YAML parse, npz/npy load, cache entries pass their
    digests; no temp file or folder of a killed writer is left. Lock files (empty, `.lock`) may stay."""
    files = [p for root in (results_dir, cache_dir) for p in root.rglob("*")]
    leftovers = [p for p in files if p.name.endswith((".tmp", ".partial")) or ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []
    for path in files:
        if not path.is_file():
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".yaml":
            yaml.safe_load(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path) as z:
                assert len(z["actions"]) > 0 and z["frames"].dtype == np.uint8
        elif path.suffix == ".lock":
            assert path.stat().st_size == 0
    entries = [p.parent for p in (cache_dir / "embeddings").rglob("meta.json")]
    assert entries, "the sweep stored no embeddings"
    cache = EmbeddingCache(cache_dir / "embeddings", mode="read")
    for entry in entries:
        key = entry.relative_to(cache.root).as_posix()
        loaded = cache.load(key)
        assert loaded is not None, f"cache entry {key} does not pass its checks"
        assert loaded.arrays["embeddings"].shape[0] > 0


def test_a_killed_sweep_reruns_to_completion_without_redoing_finished_cells(tmp_path):
    results_dir, cache_dir = tmp_path / "results", tmp_path / "cache"
    env = _env(CORTEXBENCH_CACHE=str(cache_dir))
    command = [sys.executable, "-m", "experiments.eval", *SMOKE_SWEEP, f"results_dir={results_dir}"]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 900
        while not records(results_dir) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)  # the sweep and its joblib workers, mid-flight
        first.wait(timeout=60)
    assert _group_gone(first.pid), "joblib workers outlived the SIGKILL of their process group"
    log_text = (tmp_path / "first.log").read_text()
    finished = {cell: path for cell, path in records(results_dir).items()}
    assert finished, f"no record appeared before the deadline:\n{log_text[-3000:]}"
    assert len(finished) < 4, "the sweep finished before it was killed; nothing was interrupted"
    assert all(read_record(p)["status"] == "ok" for p in finished.values())
    before = {cell: (p.stat().st_mtime_ns, p.read_bytes()) for cell, p in finished.items()}

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output[-4000:]
    assert (
        f"{len(finished)} ok, 0 failed, 0 running, 0 corrupt, {4 - len(finished)} missing" in rerun.stdout
    )  # the plan
    assert "[sweep] finished: 4 ok, 0 failed, 0 running, 0 corrupt, 0 missing" in rerun.stdout
    for task, seed in finished:  # finished cells were skipped, not recomputed
        assert f"[skip] smoke random-vit-tiny {task} seed={seed}" in rerun.stdout
        assert f"[run ] smoke random-vit-tiny {task} seed={seed} " not in rerun.stdout
    after = records(results_dir)
    assert sorted(after) == [(t, s) for t in TASKS for s in (100, 200)]
    for cell, path in after.items():
        record = json.loads(path.read_text())
        assert validate(record) == [] and record["status"] == "ok"
        if cell in before:
            assert (path.stat().st_mtime_ns, path.read_bytes()) == before[cell]
    _check_nothing_corrupt(results_dir, cache_dir)


# ---------------------------------------------------------------------------------------------------------------------
# A failed cell: a failed record with the error, the sweep goes on, the sweep's exit code says so
# ---------------------------------------------------------------------------------------------------------------------
def test_a_failed_cell_writes_a_failed_record_and_the_sweep_goes_on(tmp_path, capsys):
    # Official demos asked for from a folder whose pickle is there (planning accepts it) but unreadable:
    # every cell fails inside its training loop.
    import tasks

    (tmp_path / "demos").mkdir()
    (tmp_path / "demos" / tasks.get("metaworld-hammer").official_demo_file).write_bytes(b"not a pickle")
    args = (
        "-m",  # the default (basic) launcher runs the jobs one after another in one process
        "encoder=random-vit-tiny",
        "task=metaworld-hammer",
        "protocol=smoke",
        "seed=100,200",
        "demos.source=official",
        f"demos.path={tmp_path / 'demos'}",
        f"results_dir={tmp_path}",
    )
    result = run_module("experiments.eval", *args, merge=True)
    output = result.stdout
    assert result.returncode == 1, output[-4000:]  # the sweep's exit code says something failed ...
    found = records(tmp_path)
    assert sorted(found) == [("metaworld-hammer", 100), ("metaworld-hammer", 200)]  # ... after every job ran
    for path in found.values():
        failed = read_record(path)
        assert failed["status"] == "failed" and validate(failed) == []
        assert failed["error"]["type"] == "UnpicklingError"
        assert "Traceback" in failed["error"]["traceback"]
    assert output.index("[FAIL] metaworld-hammer seed=100") < output.index(
        "[run ] smoke random-vit-tiny metaworld-hammer seed=200"
    )
    summary = output.split("[sweep] finished: ")[1]
    assert summary.startswith("0 ok, 2 failed, 0 running, 0 corrupt, 0 missing")
    assert summary.count("UnpicklingError") == 2  # one line per failed cell, with its error

    from experiments import status

    assert status.main([*args[1:], "--check"]) == 1
    shown = capsys.readouterr().out
    assert shown.splitlines()[-1] == "sweep: 2 jobs, 2 cells: 0 ok, 2 failed, 0 running, 0 corrupt, 0 missing"
    assert all(line.startswith("failed") and "UnpicklingError" in line for line in shown.splitlines()[:-1])


# ---------------------------------------------------------------------------------------------------------------------
# nox -s status: done / failed / running / missing per planned cell
# ---------------------------------------------------------------------------------------------------------------------
def test_status_shows_ok_failed_running_and_missing(tmp_path, capsys):
    from encoders.storage import file_lock
    from experiments import status
    from experiments.plan import plan_sweep
    from experiments.records import REQUIRED_FIELDS, SCHEMA_VERSION, lock_path

    args = [
        "encoder=random-vit-tiny",
        f"task={','.join(TASKS)}",
        "protocol=smoke",
        "seed=100,200",
        f"results_dir={tmp_path}",
    ]
    cells = plan_sweep(args)
    assert len(cells) == 4
    # Fixture records in the shape eval writes (an ok record has every required field, or it is corrupt).
    ok = dict.fromkeys(REQUIRED_FIELDS) | {"schema_version": SCHEMA_VERSION, "status": "ok"}
    write_record(cells[0].path, ok)
    error = {"type": "RuntimeError", "message": "renderer crashed\nsecond line", "traceback": ""}
    write_record(cells[1].path, {"schema_version": SCHEMA_VERSION, "status": "failed", "error": error})
    with file_lock(lock_path(cells[2].path)) as lock:  # as a job running that cell holds it
        assert lock.held
        assert status.main(["-m", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "sweep: 4 jobs, 4 cells: 1 ok, 1 failed, 1 running, 0 corrupt, 1 missing"
    states = {f"{line.split()[3]} {line.split()[4]}": line.split()[0] for line in lines[:-1]}
    assert states == {
        f"{cells[0].settings.task} seed={cells[0].settings.seed}": "ok",
        f"{cells[1].settings.task} seed={cells[1].settings.seed}": "failed",
        f"{cells[2].settings.task} seed={cells[2].settings.seed}": "running",
        f"{cells[3].settings.task} seed={cells[3].settings.seed}": "missing",
    }
    assert "RuntimeError: renderer crashed" in lines[1] and "second line" not in "\n".join(lines)
    # The lock went with its holder: that cell is missing again, not running forever. --only filters, --check fails.
    assert status.main(["--only", "missing", *args, "--check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "sweep: 4 jobs, 4 cells: 1 ok, 1 failed, 0 running, 0 corrupt, 2 missing"
    assert [line.split()[0] for line in lines[:-1]] == ["missing", "missing"]


# ---------------------------------------------------------------------------------------------------------------------
# SLURM: the fire-and-forget array script, and the hydra-submitit launcher config
# ---------------------------------------------------------------------------------------------------------------------
def test_slurm_array_script_runs_its_cells(tmp_path, capsys, monkeypatch):
    """SLURM is not installed here: the script's array tasks are run with bash (which reads #SBATCH as comments)."""
    sweep = [
        "encoder=random-vit-tiny",
        f"task={','.join(TASKS)}",
        "protocol=smoke",
        "seed=100,200",
        f"results_dir={tmp_path / 'results'}",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=30",
    ]
    from experiments import slurm

    assert slurm.main(["--no-submit", "--folder", str(tmp_path / "s1"), "-m", *sweep]) == 0
    script = tmp_path / "s1" / "sweep.sbatch"
    text = script.read_text()
    options = [line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("#SBATCH ")]
    for expected in (
        "--array=0-3%64",
        "--time=30",
        "--partition=gpu",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--mem=32G",
        "--requeue",
        f"--output={tmp_path / 's1'}/%A_%a.out",
    ):
        assert expected in options, (expected, options)
    assert f"export CORTEXBENCH_CACHE={os.environ['CORTEXBENCH_CACHE']}" in text  # same caches when submitted later
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0

    task0 = subprocess.run(
        ["bash", str(script)], env=_env(SLURM_ARRAY_TASK_ID="0"), capture_output=True, text=True, timeout=900
    )
    assert task0.returncode == 0, task0.stderr[-3000:]
    assert "[slurm] array task 0" in task0.stdout
    record = read_record(tmp_path / "results/runs/smoke/random-vit-tiny/metaworld-assembly/seed=100.json")
    assert record["status"] == "ok" and record["seed"] == 100
    out_of_range = subprocess.run(["bash", str(script)], env=_env(SLURM_ARRAY_TASK_ID="9"), capture_output=True)
    assert out_of_range.returncode == 2

    # Resuming: a regenerated script holds only the cells without an ok record.
    assert slurm.main(["--no-submit", "--folder", str(tmp_path / "s2"), *sweep]) == 0
    text2 = (tmp_path / "s2" / "sweep.sbatch").read_text()
    assert "--array=0-2%64" in text2
    assert "task=metaworld-assembly seed=100)" not in text2 and "task=metaworld-assembly seed=200)" in text2
    # Submitting needs sbatch: here it is absent, and the error says what to do with the written script.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    capsys.readouterr()
    assert slurm.main(["--folder", str(tmp_path / "s3"), *sweep]) == 2
    assert f"sbatch {tmp_path / 's3' / 'sweep.sbatch'}" in capsys.readouterr().err


def test_slurm_launcher_config_is_accepted_by_submitit(tmp_path):
    """conf/hydra/launcher/slurm.yaml, passed to submitit as hydra-submitit-launcher passes it (generic keys
    converted, the others as slurm parameters), is validated by submitit and becomes its sbatch file.
    SLURM is not here, so the executor is built without its `srun` check (object.__new__) and nothing runs."""
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf
    from submitit.slurm.slurm import SlurmExecutor

    from experiments.slurm import launcher_config

    launcher = OmegaConf.to_container(
        launcher_config(["encoder=random-vit-tiny", "task=metaworld-hammer", "hydra.launcher.partition=gpu"])
    )
    assert launcher.pop("_target_").endswith("SlurmLauncher")
    for key in ("submitit_folder", "max_num_timeout", "name"):  # executor init arguments / resolved at launch
        launcher.pop(key)
    base = set(BaseQueueConf.__dataclass_fields__)
    executor = object.__new__(SlurmExecutor)
    executor.folder, executor.parameters = tmp_path, {}
    generic = executor._convert_parameters({k: v for k, v in launcher.items() if k in base})
    executor._internal_update_parameters(**generic, **{k: v for k, v in launcher.items() if k not in base})
    text = executor._make_submission_file_text("python -m experiments.eval", "uid")
    for expected in ("--gpus-per-node=1", "--time=240", "--cpus-per-task=8", "--mem=32GB", "--partition=gpu"):
        assert f"#SBATCH {expected}" in text
