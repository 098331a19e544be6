"""Hydra entry point: `python -m experiments.eval encoder=<name> task=<task|suite|group> [protocol=...] [seed=...]`.

Runs every (task, seed) cell of the request in this process, loading the encoder once. Everything
that can be checked cheaply is checked before any work starts (names, weights, simulators), so bad
input fails in seconds with a message that says how to fix it. Finished cells are skipped.
With `-m`, group names in `task=` expand to one job per task (see `expand_sweep_groups`).

Sweeps (`-m`, Hydra multirun; README "Sweeps"): every job of the sweep is planned and checked before
any is launched, and the sweep ends with a summary of its cells. A failed cell writes a `failed`
record with the error and the sweep goes on; jobs never exit the process. The sweep exits 0 when
every cell has an ok record, 1 otherwise (failed, or missing because a job died), 2 on bad input.
A job runs a cell only while holding the cell's lock, so a second sweep over the same cells (a
resubmission while the first still runs) leaves running cells alone (`[busy]`) instead of repeating them.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from encoders.checkpoints import CheckpointMismatchError
from encoders.lookup import UnknownNameError
from encoders.radio import RadioCodeMissingError
from encoders.weights import ChecksumMismatchError, WeightsNotFoundError
from tasks.demos import DemosNotFoundError
from tasks.spec import SimulatorMissingError

USER_ERRORS = (
    UnknownNameError,
    WeightsNotFoundError,
    ChecksumMismatchError,
    CheckpointMismatchError,
    SimulatorMissingError,
    RadioCodeMissingError,
    DemosNotFoundError,
    ValueError,
)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def plan(cfg: DictConfig):
    """(encoder spec, [(task spec, seed), ...]) for this request, validated."""
    import encoders
    import tasks

    spec = encoders.get_spec(str(cfg.encoder))
    task_names = tasks.expand(str(cfg.task))
    seeds = [int(cfg.seed)] if cfg.seed is not None else list(cfg.protocol.seeds)
    return spec, [(tasks.get(name), seed) for name in task_names for seed in seeds]


def cell_runner(settings):
    """The training loop that runs a cell: behaviour cloning on the MuJoCo suites unless a suite or
    policy needs its own loop (each such loop lives in its own `experiments/*_cell.py`)."""
    import tasks
    from experiments.cell import run_cell
    from tasks.habitat import HabitatTaskSpec

    if isinstance(tasks.get(settings.task), HabitatTaskSpec):  # ImageNav / ObjectNav / MobilePick: habitat-baselines
        from experiments.habitat_cell import run_habitat_cell

        return run_habitat_cell
    if settings.rl is not None:  # policy=ppo|sac: stable-baselines3 on frozen features
        from experiments.rl_cell import run_rl_cell

        return run_rl_cell
    if tasks.get(settings.task).suite == "trifinger":
        from experiments.trifinger_cell import run_trifinger_cell

        return run_trifinger_cell
    return run_cell


def run(cfg: DictConfig) -> int:
    import encoders
    import tasks
    from encoders.storage import file_lock, leftover_temp_files
    from encoders.weights import resolve_weights
    from experiments.cell_common import cell_path
    from experiments.protocol import resolve_settings
    from experiments.records import is_done, lock_path

    spec, cells = plan(cfg)
    weights = resolve_weights(spec, str(cfg.weights))  # fast: names the missing file before anything heavy
    settings = [resolve_settings(cfg, task, spec, seed) for task, seed in cells]
    todo = [s for s in settings if cfg.overwrite or not is_done(cell_path(s, weights.kind, weights.sha256))]
    for s in settings:
        if s not in todo:
            print(
                f"[skip] {s.protocol} {spec.name} {s.task} seed={s.seed}: finished record exists (overwrite=true reruns it)",
                flush=True,
            )
    if not todo:
        return 0
    for task_name in dict.fromkeys(s.task for s in todo):
        tasks.get(task_name).require_simulator()

    encoder = encoders.load(spec.name, weights=str(cfg.weights), device=str(cfg.device))
    config = OmegaConf.to_container(cfg, resolve=True)
    failed = 0
    for s in todo:
        path = cell_path(s, weights.kind, weights.sha256)
        with file_lock(lock_path(path), blocking=False) as lock:
            if lock.busy:
                print(f"[busy] {s.task} seed={s.seed}: another job is running this cell; left to it", flush=True)
                continue
            if lock.held:  # nobody else writes this record now: temp files of a killed writer can go
                for leftover in leftover_temp_files(path):
                    leftover.unlink(missing_ok=True)
            if not cfg.overwrite and is_done(path):
                print(f"[skip] {s.task} seed={s.seed}: another job finished it meanwhile", flush=True)
                continue
            print(f"[run ] {s.protocol} {spec.name} {s.task} seed={s.seed} policy={s.policy}", flush=True)
            record = cell_runner(s)(s, encoder, config)
        if record["status"] == "ok":
            scores = record["scores"]
            print(
                f"[done] {s.task} seed={s.seed}: best {scores['best']:.2f} final {scores['final']:.2f} "
                f"({scores['metric']}), entropy {record['feature_norm_entropy']['value']:.3f} -> {record['_path']}",
                flush=True,
            )
        else:
            failed += 1
            print(
                f"[FAIL] {s.task} seed={s.seed}: {record['error']['type']}: {record['error']['message']} -> {record['_path']}",
                file=sys.stderr,
                flush=True,
            )
    return 1 if failed else 0


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    """One Hydra job. In a multirun it never exits the process (that would end the whole sweep): failed
    cells are in their records, bad input is printed, and `sweep` sets the exit code at the end."""
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        code = run(cfg)
    except USER_ERRORS as err:
        if multirun:
            print(f"error: {err}", file=sys.stderr, flush=True)
            return
        _fail(str(err))
    if code and not multirun:
        sys.exit(code)


def expand_sweep_groups(argv: list[str]) -> list[str]:
    """In a multirun (-m), turn `task=<group>` into `task=<t1>,<t2>,...` so each task is its own job."""
    if not ({"-m", "--multirun"} & set(argv)):
        return argv
    import tasks

    out = []
    for arg in argv:
        if arg.startswith("task="):
            arg = "task=" + ",".join(tasks.expand(arg.split("=", 1)[1]))
        out.append(arg)
    return out


def sweep(argv: list[str]) -> int:
    """A multirun: check every job before launching any (names, weights, simulators: seconds, not one
    failure per job), launch through Hydra's launcher, then print where each cell stands."""
    import tasks
    from experiments.sweep import format_counts, format_table, plan_errors, plan_sweep, split_jobs, states

    try:
        cells = plan_sweep(argv, weights_required=True)
        table = states(cells)
        for task_name in dict.fromkeys(cell.settings.task for cell, state, _ in table if state != "ok"):
            tasks.get(task_name).require_simulator()
    except plan_errors() as err:
        _fail(str(err))
    print(f"[sweep] {len(split_jobs(argv))} jobs, {len(cells)} cells: {format_counts(table)}", flush=True)
    if all(state == "ok" for _, state, _ in table) and not any(cell.settings.overwrite for cell in cells):
        print("[sweep] nothing to run: every cell has an ok record (overwrite=true reruns them)")
        return 0
    try:
        main()
    except SystemExit as stop:  # Hydra exits 1 when a job or the launcher crashed: still report the cells
        print(f"[sweep] the launcher stopped with exit code {stop.code}", file=sys.stderr)
    table = states(cells)
    left = format_table(table, only=("failed", "running", "missing"))
    print(f"[sweep] finished: {format_counts(table)}" + (f"\n{left}" if left else ""), flush=True)
    if left:
        print("[sweep] the same command reruns the cells above; ok cells are skipped", flush=True)
    return 0 if all(state == "ok" for _, state, _ in table) else 1


if __name__ == "__main__":
    from experiments.sweep import MULTIRUN_FLAGS, is_multirun

    argv = sys.argv[1:]
    try:
        argv = expand_sweep_groups(argv)
    except UnknownNameError as err:
        _fail(str(err))
    sys.argv = [sys.argv[0], *argv]
    hydra_flags = [a for a in argv if a.startswith("-") and a not in MULTIRUN_FLAGS]  # --help, --cfg job, ...
    if is_multirun(argv) and not hydra_flags:
        sys.exit(sweep(argv))
    main()
