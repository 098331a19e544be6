"""`nox -s status -- <the overrides of a sweep>`: which of its cells are done, failed, running or missing.

    nox -s status -- -m encoder=theia,vc1 task=mujoco seed=100,200,300     # -m optional
    nox -s status -- --only failed,missing encoder=...                      # just what is left to do

Reads the records where `nox -s eval` writes them (same planning code, `experiments.plan`): `ok`
and `failed` come from the cell's record (failed with the error's first line), `running` means a job
holds the cell's lock right now (on this machine, or on a shared filesystem with working locks), and
`missing` is everything else, including cells whose job was killed. Where `squeue` works, a cell that a
SLURM array task will run or is running shows that task (`slurm 12_3 PENDING (Resources)`, `slurm 12_0
RUNNING (node7)`), for sweeps submitted by either SLURM path, and a line counts them. Exits 0; `--check`
exits 1 unless every cell is ok (for scripts that wait on a sweep).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from experiments.plan import STATES, USER_ERRORS, format_counts, format_table, plan_sweep, split_jobs, states
from experiments.slurm import queued_jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s status --", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(STATES), help=f"comma list of states to list ({','.join(STATES)})")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every cell is ok")
    parser.add_argument("--no-slurm", action="store_true", help="do not ask squeue which SLURM jobs hold the cells")
    parser.add_argument("overrides", nargs="*", help="the sweep, as given to `nox -s eval -- -m ...`")
    args, rest = parser.parse_known_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    if unknown := [s for s in only if s not in STATES]:
        parser.error(f"unknown state(s) {unknown}; choose from {list(STATES)}")
    overrides = [*args.overrides, *rest]
    try:
        cells = plan_sweep(overrides)
        jobs = len(split_jobs(overrides))
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = states(cells)
    queue = None if args.no_slurm else queued_jobs(cells)
    if queue:
        table = [
            (cell, state, "; ".join([detail, *map(str, queue.get(cell.path, []))]).strip("; "))
            for cell, state, detail in table
        ]
    listing = format_table(table, only)
    if listing:
        print(listing)
    if queue:
        tally = Counter(job.state for jobs in queue.values() for job in jobs)
        print(
            f"slurm: {len(queue)} cells in the queue: {', '.join(f'{n} {state}' for state, n in sorted(tally.items()))}"
        )
    print(f"sweep: {jobs} jobs, {len(cells)} cells: {format_counts(table)}")
    return 1 if args.check and any(state != "ok" for _, state, _ in table) else 0


if __name__ == "__main__":
    sys.exit(main())
