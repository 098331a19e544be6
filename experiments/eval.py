"""Hydra entry point: `python -m experiments.eval encoder=<name> task=<task|suite|group> [protocol=...] [seed=...]`.

Runs every (task, seed) cell of the request in this process, loading the encoder once. Everything
that can be checked cheaply is checked before any work starts (names, weights, simulators), so bad
input fails in seconds with a message that says how to fix it. Finished cells are skipped.
With `-m`, group names in `task=` expand to one job per task (see `expand_sweep_groups`).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from encoders.checkpoints import CheckpointMismatchError
from encoders.lookup import UnknownNameError
from encoders.weights import ChecksumMismatchError, WeightsNotFoundError
from tasks.demos import DemosNotFoundError
from tasks.spec import SimulatorMissingError

USER_ERRORS = (
    UnknownNameError,
    WeightsNotFoundError,
    ChecksumMismatchError,
    CheckpointMismatchError,
    SimulatorMissingError,
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


def run(cfg: DictConfig) -> int:
    import encoders
    import tasks
    from encoders.weights import resolve_weights
    from experiments.cell import cell_path, run_cell
    from experiments.protocol import resolve_settings
    from experiments.records import is_done

    spec, cells = plan(cfg)
    weights = resolve_weights(spec, str(cfg.weights))  # fast: names the missing file before anything heavy
    settings = [resolve_settings(cfg, task, spec, seed) for task, seed in cells]
    todo = [s for s in settings if cfg.overwrite or not is_done(cell_path(s, weights.kind, weights.sha256))]
    for s in settings:
        if s not in todo:
            print(
                f"[skip] {s.protocol} {spec.name} {s.task} seed={s.seed}: finished record exists (overwrite=true reruns it)"
            )
    if not todo:
        return 0
    for task_name in dict.fromkeys(s.task for s in todo):
        tasks.get(task_name).require_simulator()

    encoder = encoders.load(spec.name, weights=str(cfg.weights), device=str(cfg.device))
    config = OmegaConf.to_container(cfg, resolve=True)
    failed = 0
    for s in todo:
        print(f"[run ] {s.protocol} {spec.name} {s.task} seed={s.seed} policy={s.policy}", flush=True)
        record = run_cell(s, encoder, config)
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
    try:
        code = run(cfg)
    except USER_ERRORS as err:
        _fail(str(err))
    if code:
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


if __name__ == "__main__":
    try:
        sys.argv = [sys.argv[0], *expand_sweep_groups(sys.argv[1:])]
    except UnknownNameError as err:
        _fail(str(err))
    main()
