"""`nox -s status -- <the overrides of a sweep>`: which of its cells are done, failed, running or missing.

    nox -s status -- -m encoder=theia,vc1 task=mujoco seed=100,200,300     # -m optional
    nox -s status -- --only failed,missing encoder=...                      # just what is left to do

Reads the records where `nox -s eval` writes them (same planning code, `experiments.plan`): `ok`
and `failed` come from the cell's record (failed with the error's first line), `running` means a job
holds the cell's lock right now (on this machine, or on a shared filesystem with working locks), and
`missing` is everything else, including cells whose job was killed. Exits 0; `--check` exits 1 unless
every cell is ok (for scripts that wait on a sweep).
"""

from __future__ import annotations

import argparse
import sys

from experiments.plan import STATES, USER_ERRORS, format_counts, format_table, plan_sweep, split_jobs, states


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s status --", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(STATES), help=f"comma list of states to list ({','.join(STATES)})")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every cell is ok")
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
    listing = format_table(table, only)
    if listing:
        print(listing)
    print(f"sweep: {jobs} jobs, {len(cells)} cells: {format_counts(table)}")
    return 1 if args.check and any(state != "ok" for _, state, _ in table) else 0


if __name__ == "__main__":
    sys.exit(main())
