"""Fire-and-forget SLURM sweeps: one sbatch array script per sweep, one array task per unfinished cell.

    nox -s slurm -- encoder=theia,vc1 task=mujoco seed=100,200,300 hydra.launcher.partition=gpu
    nox -s slurm -- --no-submit encoder=...        # write the script only; submit it later with sbatch

`sbatch` returns once SLURM has queued the array, so no shell has to stay alive: array task i runs
`python -m experiments.eval <the sweep's overrides> task=<t> seed=<s>` for cell i, which writes that
cell's record (ok, or failed with the error) and exits; its log is `<folder>/<array id>_<i>.out`, and
`<folder>/cells.json` names the record of each array task (for `nox -s status`). Resources come from
`experiments/conf/hydra/launcher/slurm.yaml`, the config the hydra-submitit launcher uses, changed with
the same overrides (`hydra.launcher.timeout_min=600`). Preempted or failed nodes requeue their task
(`--requeue`); a killed or timed-out cell leaves no record (a MuJoCo imitation cell leaves its progress, and
continues from its last evaluation: `experiments.cells.resume`). To resume after failures or time-outs, run
the same command again: the new script holds only the cells without an ok record (`--all` keeps every
cell; eval skips finished ones anyway). `nox -s status -- <same overrides>` shows progress, with the
SLURM job id and state of every cell that is queued or running (`queued_jobs`, from `squeue`).
tests/test_slurm.py submits both SLURM paths to a real single-node cluster (tests/slurm_cluster.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from encoders.storage import atomic_write_json
from experiments.plan import USER_ERRORS, Cell, cell_state, compose_jobs, plan_sweep, split_jobs

REPO = Path(__file__).resolve().parents[1]
JOB_NAME = "cortexbench"  # the default of `hydra.launcher.name` (slurm.yaml): `squeue -n cortexbench` lists both paths
SCRIPT = "sweep.sbatch"
MANIFEST = "cells.json"  # next to the script: the record path of each array task, in task order
# Where caches, weights and data live, and how to render: fixed at writing time, so a script submitted
# later from another shell still uses the same (shared) folders.
ENV_PREFIXES = ("CORTEXBENCH_", "HF_HOME", "HF_HUB_OFFLINE", "MUJOCO_GL", "PYOPENGL_PLATFORM")


def launcher_config(argv: list[str]) -> DictConfig:
    """`hydra.launcher` of the sweep with the slurm launcher config and the user's `hydra.launcher.*` overrides."""
    first_job = [o for o in split_jobs(argv)[0] if not o.startswith("hydra/launcher=")]
    return compose_jobs([[*first_job, "hydra/launcher=slurm"]], hydra_config=True)[0].hydra.launcher


def sbatch_options(launcher: DictConfig, n_tasks: int, log_dir: Path) -> list[str]:
    """`#SBATCH` options: submitit's resource keys mapped to sbatch flags, plus the array and its logs."""
    options = [
        f"--job-name={launcher.get('name') or JOB_NAME}",
        f"--array=0-{n_tasks - 1}%{launcher.array_parallelism}",
        f"--time={launcher.timeout_min}",  # minutes
        "--nodes=1",
        "--ntasks=1",
    ]
    if launcher.cpus_per_task:
        options.append(f"--cpus-per-task={launcher.cpus_per_task}")
    if launcher.gres:
        options.append(f"--gres={launcher.gres}")
    elif launcher.gpus_per_node:
        options.append(f"--gpus-per-node={launcher.gpus_per_node}")
    if launcher.mem_gb:
        options.append(f"--mem={launcher.mem_gb}G")
    for key in ("partition", "qos", "account", "constraint", "exclude", "comment"):
        if launcher.get(key):
            options.append(f"--{key}={launcher[key]}")
    for key, value in (launcher.get("additional_parameters") or {}).items():
        options.append(f"--{str(key).replace('_', '-')}={value}")
    options += [f"--output={log_dir}/%A_%a.out", "--open-mode=append", "--requeue"]
    return options


def sbatch_script(cells: list[Cell], launcher: DictConfig, log_dir: Path, sweep: str, python: str) -> str:
    """The array script: `#SBATCH` header, setup lines, and one `case` branch per cell."""
    lines = [
        "#!/bin/bash",
        f"# Written by `python -m experiments.slurm {sweep}` on {datetime.now().isoformat(timespec='seconds')}.",
        f"# {len(cells)} cells, one per array task. Submit with `sbatch {log_dir / SCRIPT}`.",
        *(f"#SBATCH {shlex.quote(option)}" for option in sbatch_options(launcher, len(cells), log_dir)),
        "set -euo pipefail",
        f"cd {shlex.quote(str(REPO))}",
        "export PYTHONUNBUFFERED=1",  # the log shows each line when printed, not when a buffer fills
        *(f"export {k}={shlex.quote(v)}" for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)),
        *(launcher.get("setup") or []),
        'case "${SLURM_ARRAY_TASK_ID:?submit this script with sbatch (or set SLURM_ARRAY_TASK_ID)}" in',
        *(f"  {i}) cell=({shlex.join(cell.command())}) ;;" for i, cell in enumerate(cells)),
        '  *) echo "no cell for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
        "esac",
        'echo "[slurm] array task ${SLURM_ARRAY_TASK_ID} on $(hostname): ${cell[*]}"',
        f'exec {shlex.quote(python)} -m experiments.eval "${{cell[@]}}"',
    ]
    return "\n".join(lines) + "\n"


def write_script(
    argv: list[str], include_done: bool = False, folder: Path | None = None, command: list[str] | None = None
) -> tuple[Path | None, int]:
    """Write the sweep's array script; returns (its path, number of cells), or (None, 0) when nothing is left.
    `command` is the command line to record in the script's header (default: `argv`)."""
    cells = plan_sweep(argv)
    if not include_done:
        cells = [cell for cell in cells if cell_state(cell)[0] != "ok"]
    if not cells:
        return None, 0
    if folder is None:
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        folder = Path(cells[0].settings.results_dir) / "slurm" / stamp
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / SCRIPT
    text = sbatch_script(cells, launcher_config(argv), folder, shlex.join(command or argv), sys.executable)
    atomic_write_json(folder / MANIFEST, [str(cell.path) for cell in cells])
    script.write_text(text)
    script.chmod(0o755)
    return script, len(cells)


# ---------------------------------------------------------------------------------------------------------------------
# Which SLURM job holds which cell (for `nox -s status`)
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueuedJob:
    """One array task in the SLURM queue: `<array id>_<task>`, its state, and why it waits or where it runs."""

    job_id: str
    state: str  # PENDING, RUNNING, COMPLETING, ...
    where: str  # the reason a pending task waits (Resources, Priority, BeginTime, ...) or the node of a running one

    def __str__(self) -> str:
        return f"slurm {self.job_id} {self.state} ({self.where})" if self.where else f"slurm {self.job_id} {self.state}"


def squeue() -> list[tuple[QueuedJob, int, Path]] | None:
    """This user's jobs in the queue (array tasks one by one), with their task index and batch script; None
    where `squeue` is missing or fails (no SLURM here, or no controller answering)."""
    if shutil.which("squeue") is None:
        return None
    try:
        done = subprocess.run(
            ["squeue", "--me", "-h", "-r", "-o", "%i|%K|%T|%r|%N|%o"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    rows = []
    for line in done.stdout.splitlines():
        job_id, task, state, reason, node, command = line.split("|", 5)
        index = int(task) if task.isdigit() else 0  # submitit submits a sweep of one job as a plain job
        rows.append((QueuedJob(job_id, state, node if state == "RUNNING" else reason), index, Path(command)))
    return rows


def array_records(script: Path) -> dict[int, list[Path]] | None:
    """Task index -> record paths of the cells it runs, for an array submitted by either SLURM path: from
    `cells.json` next to our sbatch script, or, for hydra-submitit-launcher (batch script in
    `<sweep dir>/.submitit/`), by planning the sweep Hydra saved in `<sweep dir>/multirun.yaml` (array task i
    is Hydra job i). None for any other job."""
    try:
        if script.name == SCRIPT and (script.parent / MANIFEST).is_file():
            paths = json.loads((script.parent / MANIFEST).read_text())
            return {i: [Path(p)] for i, p in enumerate(paths)}
        if script.parent.name == ".submitit" and (saved := script.parent.parent / "multirun.yaml").is_file():
            overrides = list(OmegaConf.load(saved).hydra.overrides.task)
            records: dict[int, list[Path]] = {}
            for cell in plan_sweep(["-m", *overrides]):
                records.setdefault(cell.job, []).append(cell.path)
            return records
    except (*USER_ERRORS, OSError, ValueError):
        return None  # a sweep that no longer plans (renamed encoder, deleted folder): not one of these cells
    return None


def queued_jobs(cells: list[Cell]) -> dict[Path, list[QueuedJob]] | None:
    """Record path -> the queued or running SLURM array tasks that will run that cell (both SLURM paths);
    None where `squeue` is unavailable."""
    rows = squeue()
    if rows is None:
        return None
    wanted = {cell.path for cell in cells}
    scripts: dict[Path, dict[int, list[Path]] | None] = {}
    found: dict[Path, list[QueuedJob]] = {}
    for job, task, script in rows:
        if script not in scripts:
            scripts[script] = array_records(script)
        for path in (scripts[script] or {}).get(task, []):
            if path in wanted:
                found.setdefault(path, []).append(job)
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="nox -s slurm --",
        description="Write (and submit) one sbatch array script for a sweep: one array task per unfinished cell.",
    )
    parser.add_argument("--no-submit", action="store_true", help="write the script only (submit it with sbatch)")
    parser.add_argument("--all", action="store_true", help="include cells that already have an ok record")
    parser.add_argument("--folder", type=Path, help="where the script and logs go (default results/slurm/<time>)")
    parser.add_argument("overrides", nargs="*", help="the sweep, as for `nox -s eval -- -m ...` (-m optional)")
    args, rest = parser.parse_known_args(argv)
    overrides = [*args.overrides, *rest]
    try:
        script, n = write_script(overrides, include_done=args.all, folder=args.folder, command=argv)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if script is None:
        print("nothing to submit: every cell of this sweep has an ok record (--all resubmits them)")
        return 0
    print(f"wrote {script} ({n} array tasks; logs next to it)")
    if args.no_submit:
        print(f"submit with: sbatch {script}")
        return 0
    if shutil.which("sbatch") is None:
        print(
            f"error: sbatch is not on PATH here; submit from a SLURM login node with: sbatch {script}",
            file=sys.stderr,
        )
        return 2
    done = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"error: sbatch failed: {done.stderr.strip()}", file=sys.stderr)
        return done.returncode
    job = done.stdout.strip()
    print(f"submitted array job {job}; follow it with `squeue -j {job}` and `nox -s status -- {shlex.join(overrides)}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
