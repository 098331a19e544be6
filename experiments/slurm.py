"""Fire-and-forget SLURM sweeps: one sbatch array script per sweep, one array task per unfinished cell.

    nox -s slurm -- encoder=theia,vc1 task=mujoco seed=100,200,300 hydra.launcher.partition=gpu
    nox -s slurm -- --no-submit encoder=...        # write the script only; submit it later with sbatch

`sbatch` returns once SLURM has queued the array, so no shell has to stay alive: array task i runs
`python -m experiments.eval <the sweep's overrides> task=<t> seed=<s>` for cell i, which writes that
cell's record (ok, or failed with the error) and exits; its log is `<folder>/<array id>_<i>.out`.
Resources come from `experiments/conf/hydra/launcher/slurm.yaml`, the config the hydra-submitit
launcher uses, changed with the same overrides (`hydra.launcher.timeout_min=600`). Preempted or failed
nodes requeue their task (`--requeue`); a killed cell leaves no record and simply runs again. To resume
after failures or time-outs, run the same command again: the new script holds only the cells without
an ok record (`--all` keeps every cell; eval skips finished ones anyway). `nox -s status -- <same
overrides>` shows progress. SLURM is not installed where this harness is developed: the tests run the
generated script's array tasks with bash, which reads the `#SBATCH` lines as comments; no sbatch ran.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig

from experiments.plan import USER_ERRORS, Cell, cell_state, compose_jobs, plan_sweep, split_jobs

REPO = Path(__file__).resolve().parents[1]
JOB_NAME = "cortexbench"
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
        f"--job-name={JOB_NAME}",
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
        f"# {len(cells)} cells, one per array task. Submit with `sbatch {log_dir / 'sweep.sbatch'}`.",
        *(f"#SBATCH {shlex.quote(option)}" for option in sbatch_options(launcher, len(cells), log_dir)),
        "set -euo pipefail",
        f"cd {shlex.quote(str(REPO))}",
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
    script = folder / "sweep.sbatch"
    text = sbatch_script(cells, launcher_config(argv), folder, shlex.join(command or argv), sys.executable)
    script.write_text(text)
    script.chmod(0o755)
    return script, len(cells)


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
