"""Hydra entry point: `python -m experiments.eval encoder=<name> task=<task|suite|group> [protocol=...] [seed=...]`.

plan -> run cells -> summary. The request is planned (`experiments.plan`) before anything heavy runs:
names, settings (types, ranges, choices), weights, simulators and the results folder are checked first,
so bad input fails in seconds with one line that says how to fix it (exit 2), for every job of a sweep
before any job starts. Then the encoder is loaded once per job and each cell runs through the one cell
lifecycle (`experiments.cells`). Finished cells are skipped.

Exit codes (also through nox): 0 every cell has an ok record; 1 some cell failed (or is missing because a
job died); 2 bad input. A failed cell writes a `failed` record with the error and the sweep goes on; jobs
never exit the process. A bug (any other exception) keeps its traceback. A job runs a cell only while
holding the cell's lock, so a second sweep over the same cells (a resubmission while the first still
runs) leaves running cells alone (`[busy]`) instead of repeating them.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from experiments.plan import (
    MULTIRUN_FLAGS,
    USER_ERRORS,
    check_cells,
    compose_jobs,
    expand_sweep_groups,
    format_counts,
    format_table,
    is_multirun,
    plan_job,
    plan_sweep,
    split_jobs,
    states,
)
from experiments.settings import register_configs

register_configs()


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def run(cfg: DictConfig) -> int:
    """One job: plan its cells, skip finished ones, load the encoder once, run the rest."""
    import encoders
    from experiments.cells import run_cell
    from experiments.records import is_done

    cells = plan_job(cfg)
    todo = [c for c in cells if cfg.overwrite or not is_done(c.path)]
    for cell in cells:
        if cell not in todo:
            s = cell.settings
            print(
                f"[skip] {s.protocol} {s.encoder} {s.task} seed={s.seed}: finished record exists (overwrite=true reruns it)",
                flush=True,
            )
    if not todo:
        return 0
    check_cells(todo)
    encoder = encoders.load(todo[0].settings.encoder, weights=todo[0].weights, device=str(cfg.device))
    config = OmegaConf.to_container(cfg, resolve=True)
    failed = 0
    for cell in todo:
        s = cell.settings
        print(f"[run ] {s.protocol} {s.encoder} {s.task} seed={s.seed} policy={s.policy}", flush=True)
        record = run_cell(s, encoder, cell.path, config)
        outcome = record["_outcome"]
        if outcome == "busy":
            print(f"[busy] {s.task} seed={s.seed}: another job is running this cell; left to it", flush=True)
        elif outcome == "skipped":
            print(f"[skip] {s.task} seed={s.seed}: another job finished it meanwhile", flush=True)
        elif record["status"] == "ok":
            scores = record["scores"]
            entropy = (record["feature_norm_entropy"] or {}).get("value")
            entropy_text = "n/a" if entropy is None else f"{entropy:.3f}"
            print(
                f"[done] {s.task} seed={s.seed}: best {scores['best']:.2f} final {scores['final']:.2f} "
                f"({scores['metric']}), entropy {entropy_text} -> {record['_path']}",
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
        fail(str(err))
    if code and not multirun:
        sys.exit(code)


def check_request(argv: list[str]) -> list:
    """Plan the whole request and check what can be checked before Hydra starts any job; bad input exits 2."""
    try:
        cells = plan_sweep(argv, weights_required=True)
        check_cells([c for c in cells if c.settings.overwrite or c not in _finished(cells)])
    except USER_ERRORS as err:
        fail(str(err))
    return cells


def _finished(cells) -> set:
    return {cell for cell, state, _ in states(cells) if state == "ok"}


def wait_for_running(cells) -> None:
    """Cells another sweep is running (it holds their locks) are waited for, so that two identical sweeps
    at once both end with the same, complete summary instead of one reporting the other's cells as running."""
    from encoders.storage import file_lock
    from experiments.records import lock_path

    for cell, state, _ in states(cells):
        if state == "running":
            with file_lock(lock_path(cell.path), waiting="waiting for another job to finish"):
                pass


def sweep(argv: list[str]) -> int:
    """A multirun: check every job before launching any, launch through Hydra's launcher, then print where
    each cell stands."""
    cells = check_request(argv)
    table = states(cells)
    print(f"[sweep] {len(split_jobs(argv))} jobs, {len(cells)} cells: {format_counts(table)}", flush=True)
    if all(state == "ok" for _, state, _ in table) and not any(cell.settings.overwrite for cell in cells):
        print("[sweep] nothing to run: every cell has an ok record (overwrite=true reruns them)")
        return 0
    try:
        main()
    except SystemExit as stop:  # Hydra exits 1 when a job or the launcher crashed: still report the cells
        print(f"[sweep] the launcher stopped with exit code {stop.code}", file=sys.stderr)
    wait_for_running(cells)
    table = states(cells)
    left = format_table(table, only=("failed", "running", "missing"))
    print(f"[sweep] finished: {format_counts(table)}" + (f"\n{left}" if left else ""), flush=True)
    if left:
        print("[sweep] the same command reruns the cells above; ok cells are skipped", flush=True)
    return 0 if all(state == "ok" for _, state, _ in table) else 1


def entry(argv: list[str]) -> None:
    """`python -m experiments.eval ...`: Hydra's own flags (--help, --cfg job, ...) go straight to Hydra;
    a request is planned and checked first (exit 2 on bad input), then run (a sweep with -m)."""
    try:
        argv = expand_sweep_groups(argv)
    except USER_ERRORS as err:
        fail(str(err))
    sys.argv = [sys.argv[0], *argv]
    hydra_flags = [a for a in argv if a.startswith("-") and a not in MULTIRUN_FLAGS]
    if hydra_flags:
        main()
        return
    if is_multirun(argv):
        sys.exit(sweep(argv))
    try:
        compose_jobs([argv])  # type-checks every override (and refuses sweep syntax without -m)
    except USER_ERRORS as err:
        fail(str(err))
    check_request(argv)
    main()


if __name__ == "__main__":
    entry(sys.argv[1:])
