"""The cells of a sweep: eval's command line -> Hydra jobs -> cells (task x seed) -> records and their state.

`nox -s eval -- -m ...` (its checks before launching and its summary after), `nox -s status -- ...`
and `python -m experiments.slurm ...` all plan with this module, which names records with eval's own
code (`plan`, `resolve_settings`, `cell_path`), so the three agree on which cells a sweep has and
where their records are.

A job is one combination of the sweep's overrides, expanded as Hydra's basic sweeper expands them
(the cartesian product, in command-line order); a group name in `task=` becomes one job per task.
A job holds one cell per seed it asks for (every protocol seed when `seed` is not given).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from experiments.protocol import CellSettings

MULTIRUN_FLAGS = ("-m", "--multirun")
CONF_DIR = Path(__file__).resolve().parent / "conf"
STATES = ("ok", "failed", "running", "missing")


@dataclass(frozen=True)
class Cell:
    job: int  # index of the Hydra job that runs it
    overrides: tuple[str, ...]  # that job's overrides
    settings: CellSettings
    path: Path  # its record

    @property
    def label(self) -> str:
        """The encoder label of the record path (name, weights tag, policy tag)."""
        return self.path.parent.parent.name

    def command(self) -> list[str]:
        """Overrides that run exactly this cell with a plain (not multirun) `python -m experiments.eval`."""
        keep = [o for o in self.overrides if _key(o) not in ("task", "seed") and not _key(o).startswith("hydra")]
        return [*keep, f"task={self.settings.task}", f"seed={self.settings.seed}"]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def is_multirun(argv: list[str]) -> bool:
    return bool(set(MULTIRUN_FLAGS) & set(argv))


def plan_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input (a name, a missing file or simulator, a malformed override), not a bug."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from experiments.eval import USER_ERRORS

    return (*USER_ERRORS, HydraException, OmegaConfBaseException)


def split_jobs(argv: list[str]) -> list[list[str]]:
    """One override list per job, for eval's arguments with or without `-m`."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from experiments.eval import expand_sweep_groups

    args = [a for a in argv if a not in MULTIRUN_FLAGS]
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise ValueError(f"cannot plan a sweep with {' '.join(flags)}: pass key=value overrides (and -m) only")
    args = expand_sweep_groups([MULTIRUN_FLAGS[0], *args])[1:]
    parsed = OverridesParser.create().parse_overrides(args)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def compose_jobs(jobs: list[list[str]], hydra_config: bool = False) -> list[DictConfig]:
    """Each job's config, composed from `experiments/conf` as the eval entry point composes it.

    A full Hydra compose takes ~0.2 s, which a sweep of hundreds of jobs would feel. Jobs differ mostly
    in plain values (task, seed, encoder), so each distinct set of config-group choices (`protocol=...`)
    is composed once and the value overrides are applied to a copy, the way Hydra applies them after
    composing the defaults (its `_apply_overrides_to_config`; hydra-core is pinned in constraints.txt,
    and tests/test_sweeps.py checks the result against a full compose). Without `hydra_config`, the
    `hydra...` overrides only concern the launcher and are left out.
    """
    import copy

    from hydra import compose, initialize_config_dir
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    bases: dict[tuple[str, ...], DictConfig] = {}
    configs = []
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        for job in jobs:
            if hydra_config:
                configs.append(compose("config", overrides=job, return_hydra_config=True))
                continue
            parsed = [o for o in parser.parse_overrides(job) if not o.key_or_group.startswith("hydra")]
            groups = tuple(o.input_line for o in parsed if (CONF_DIR / o.key_or_group).is_dir() or o.package)
            if groups not in bases:
                bases[groups] = compose("config", overrides=list(groups))
            cfg = copy.deepcopy(bases[groups])
            ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if o.input_line not in groups], cfg)
            configs.append(cfg)
    return configs


def _weights_for_label(spec, weights: str, required: bool):
    """Resolved weights; when not `required`, missing released weights still name their records
    (the label of `pretrained` does not depend on the file), so status works where weights are absent."""
    from encoders.weights import ResolvedWeights, WeightsNotFoundError, resolve_weights

    try:
        return resolve_weights(spec, weights)
    except WeightsNotFoundError:
        if required or weights != "pretrained":
            raise
        return ResolvedWeights(kind="pretrained", path=None, origin="not resolved", sha256=None)


def plan_sweep(argv: list[str], weights_required: bool = False) -> list[Cell]:
    """Every cell of the sweep eval would run for `argv`, in launch order, each once."""
    from experiments.cell_common import cell_path
    from experiments.eval import plan
    from experiments.protocol import resolve_settings

    jobs = split_jobs(argv)
    cells: list[Cell] = []
    seen: set[Path] = set()
    weights: dict[tuple[str, str], object] = {}
    for index, (overrides, cfg) in enumerate(zip(jobs, compose_jobs(jobs), strict=True)):
        spec, pairs = plan(cfg)
        key = (spec.name, str(cfg.weights))
        if key not in weights:
            weights[key] = _weights_for_label(spec, str(cfg.weights), weights_required)
        resolved = weights[key]
        for task, seed in pairs:
            settings = resolve_settings(cfg, task, spec, seed)
            path = cell_path(settings, resolved.kind, resolved.sha256)
            if path not in seen:
                seen.add(path)
                cells.append(Cell(index, tuple(overrides), settings, path))
    return cells


def cell_state(cell: Cell) -> tuple[str, str]:
    """(state, detail): ok or failed from the record; running while a job holds the cell's lock; else missing."""
    from encoders.storage import is_locked
    from experiments.records import SCHEMA_VERSION, is_done, lock_path, read_record

    if is_done(cell.path):
        return "ok", str(cell.path)
    if is_locked(lock_path(cell.path)):
        return "running", "a job holds this cell's lock"
    record = read_record(cell.path)
    if record and record.get("status") == "failed":
        error = record.get("error") or {}
        message = (str(error.get("message", "")).strip().splitlines() or [""])[0]
        return "failed", f"{error.get('type', 'error')}: {message}"
    if record:
        return "missing", f"record has schema_version {record.get('schema_version')!r}, not {SCHEMA_VERSION}: rerun it"
    return "missing", ""


def states(cells: list[Cell]) -> list[tuple[Cell, str, str]]:
    return [(cell, *cell_state(cell)) for cell in cells]


def counts(table: list[tuple[Cell, str, str]]) -> dict[str, int]:
    found = Counter(state for _, state, _ in table)
    return {state: found.get(state, 0) for state in STATES}


def format_counts(table: list[tuple[Cell, str, str]]) -> str:
    return ", ".join(f"{n} {state}" for state, n in counts(table).items())


def format_table(table: list[tuple[Cell, str, str]], only: tuple[str, ...] = STATES) -> str:
    """One line per cell: state, protocol, encoder label, task, seed, and the record path or the error."""
    rows = [
        [state, cell.settings.protocol, cell.label, cell.settings.task, f"seed={cell.settings.seed}", detail]
        for cell, state, detail in table
        if state in only
    ]
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join([*(v.ljust(w) for v, w in zip(row, widths, strict=False)), row[5]]).rstrip() for row in rows
    )
