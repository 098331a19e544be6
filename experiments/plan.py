"""Planning: a request (eval's command line: Hydra overrides, with or without `-m`) becomes the list of
its cells, each with its settings, its resolved weights and its record path. `nox -s eval` (its checks
before launching and its summary after), each Hydra job of eval, `nox -s status` and `nox -s slurm` all
plan here, so they agree on which cells a request has and where their records are.

A job is one combination of the sweep's overrides, expanded as Hydra's basic sweeper expands them (the
cartesian product, in command-line order); a group name in `task=` becomes one job per task. A job holds
one cell per seed it asks for (every protocol seed when `seed` is not given). Only Hydra's public API is
used (`hydra.compose`, the override parser, OmegaConf), so the hydra-core pin is not load-bearing.
"""

from __future__ import annotations

import copy
import itertools
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

import encoders
import tasks
from encoders.checkpoints import CheckpointFormatError, CheckpointMismatchError
from encoders.frozen import DeviceUnavailableError, resolve_device
from encoders.lookup import UnknownNameError
from encoders.radio import RadioCodeMissingError
from encoders.spec import EncoderSpec
from encoders.storage import FolderNotWritableError, check_writable, is_locked
from encoders.weights import (
    ChecksumMismatchError,
    ResolvedWeights,
    WeightsNotFoundError,
    WeightsNotSupportedError,
    resolve_weights,
)
from experiments.records import SCHEMA_VERSION, cell_record_path, inspect_record, is_done, lock_path, resume_path
from experiments.settings import CellSettings, SettingError, resolve_settings
from policies import get_policy
from tasks.demos import DemosNotFoundError
from tasks.spec import SimulatorMissingError

MULTIRUN_FLAGS = ("-m", "--multirun")
CONF_DIR = Path(__file__).resolve().parent / "conf"
STATES = ("ok", "failed", "running", "corrupt", "missing")

# Bad input (a name, a setting, a missing file, simulator or device), not a bug: printed in one line, exit 2.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UnknownNameError,
    SettingError,
    WeightsNotFoundError,
    ChecksumMismatchError,
    CheckpointMismatchError,
    CheckpointFormatError,
    WeightsNotSupportedError,
    SimulatorMissingError,
    RadioCodeMissingError,
    DemosNotFoundError,
    DeviceUnavailableError,
    FolderNotWritableError,
    HydraException,  # a malformed override, an unknown config group option
    OmegaConfBaseException,  # a value of the wrong type (seed=abc), a missing mandatory key
)


@dataclass(frozen=True)
class Cell:
    job: int  # index of the Hydra job that runs it
    overrides: tuple[str, ...]  # that job's overrides
    settings: CellSettings
    weights: ResolvedWeights
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


def expand_sweep_groups(argv: list[str]) -> list[str]:
    """In a multirun (-m), turn `task=<group>` into `task=<t1>,<t2>,...` so each task is its own job."""
    if not is_multirun(argv):
        return argv
    return [("task=" + ",".join(tasks.expand(a.split("=", 1)[1])) if a.startswith("task=") else a) for a in argv]


def split_jobs(argv: list[str]) -> list[list[str]]:
    """One override list per job, for eval's arguments with or without `-m` (Hydra's basic sweeper order:
    the cartesian product of every sweep override's values, in command-line order)."""
    args = [a for a in argv if a not in MULTIRUN_FLAGS]
    if flags := [a for a in args if a.startswith("-")]:
        raise SettingError(f"cannot plan a sweep with {' '.join(flags)}: pass key=value overrides (and -m) only")
    args = expand_sweep_groups([MULTIRUN_FLAGS[0], *args])[1:]
    options = []
    for override in OverridesParser.create().parse_overrides(args):
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise SettingError(f"{override.input_line}: only comma lists and choice() sweeps are supported")
            options.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            options.append([f"{key}={override.get_value_element_as_str()}"])
    return [list(job) for job in itertools.product(*options)]


def _apply(cfg: DictConfig, override: Override) -> None:
    """Apply one value override to a composed config as Hydra does after composing the defaults."""
    key = override.key_or_group
    if override.is_sweep_override():
        raise ConfigCompositionException(
            f"Ambiguous value for argument '{override.input_line}': to sweep over it, add -m (--multirun); "
            f"to use it as a string, quote the value: {key}='{override.get_value_element_as_str()}'"
        )
    if override.type == OverrideType.DEL:
        with open_dict(cfg):
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            if node is None or leaf not in node:
                raise ConfigCompositionException(f"Could not delete from config. '{key}' does not exist.")
            del node[leaf]
        return
    exists = _has_key(cfg, key)
    if override.type == OverrideType.ADD and exists:
        raise ConfigCompositionException(f"Could not append to config. An item is already at '{key}'.")
    if override.type == OverrideType.CHANGE and not exists:
        raise ConfigCompositionException(
            f"Could not override '{key}'. No match in config.\nTo append to your config use +{override.input_line}"
        )
    if override.type in (OverrideType.ADD, OverrideType.FORCE_ADD):
        with open_dict(cfg):
            OmegaConf.update(cfg, key, override.value(), merge=True)
    else:
        OmegaConf.update(cfg, key, override.value(), merge=True)


def _has_key(cfg: DictConfig, key: str) -> bool:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
    return isinstance(node, DictConfig) and leaf in list(node.keys())  # `in node` is False for ??? values


def compose_jobs(jobs: list[list[str]], hydra_config: bool = False) -> list[DictConfig]:
    """Each job's config, composed from `experiments/conf` as the eval entry point composes it.

    A full Hydra compose takes ~0.2 s, which a sweep of hundreds of jobs would feel. Jobs differ mostly
    in plain values (task, seed, encoder), so each distinct set of config-group choices (`protocol=...`)
    is composed once and the value overrides are applied to a copy, as Hydra applies them after composing
    the defaults (tests/test_sweeps.py checks the result against a full compose). Without `hydra_config`,
    the `hydra...` overrides only concern the launcher and are left out.
    """
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
            for override in parsed:
                if override.input_line not in groups:
                    _apply(cfg, override)
            configs.append(cfg)
    return configs


def weights_for(spec: EncoderSpec, weights: str, required: bool = True) -> ResolvedWeights:
    """Resolved weights (hashed once per process: `encoders.weights`); when not `required`, missing released
    weights still name their records (the label of `pretrained` does not depend on the file), so status
    works where the weights are absent."""
    try:
        return resolve_weights(spec, weights)
    except WeightsNotFoundError:
        if required or weights != "pretrained":
            raise
        return ResolvedWeights(kind="pretrained", path=None, origin="not resolved", sha256=None)


def plan_job(
    cfg: DictConfig,
    job: int = 0,
    overrides: tuple[str, ...] = (),
    weights_required: bool = True,
    resolved: dict[tuple[str, str], ResolvedWeights] | None = None,
) -> list[Cell]:
    """The cells of one job's config: its encoder x its tasks x its seeds (every protocol seed when
    `seed` is not given), each validated (`experiments.settings`)."""
    spec = encoders.get_spec(str(cfg.encoder))
    resolve_device(str(cfg.device))  # a GPU asked for where there is none fails now, not after the demos
    task_specs = [tasks.get(name) for name in tasks.expand(str(cfg.task))]
    seeds = [cfg.seed] if cfg.seed is not None else list(cfg.protocol.seeds)
    resolved = {} if resolved is None else resolved
    key = (spec.name, str(cfg.weights))
    if key not in resolved:
        resolved[key] = weights_for(spec, str(cfg.weights), weights_required)
    weights = resolved[key]
    cells = []
    for task in task_specs:
        for seed in seeds:
            if not isinstance(seed, int) or isinstance(seed, bool):
                raise SettingError(f"seed={seed!r}: seeds are whole numbers >= 0 (e.g. seed=100 or -m seed=100,200)")
            settings = resolve_settings(cfg, task, spec, seed)
            cells.append(Cell(job, tuple(overrides), settings, weights, cell_record_path(settings, weights)))
    return cells


def plan_sweep(argv: list[str], weights_required: bool = False) -> list[Cell]:
    """Every cell eval would run for `argv`, in launch order, each once."""
    jobs = split_jobs(argv)
    cells: list[Cell] = []
    seen: set[Path] = set()
    resolved: dict[tuple[str, str], ResolvedWeights] = {}
    for index, (overrides, cfg) in enumerate(zip(jobs, compose_jobs(jobs), strict=True)):
        for cell in plan_job(cfg, index, tuple(overrides), weights_required, resolved):
            if cell.path not in seen:
                seen.add(cell.path)
                cells.append(cell)
    return cells


def command_main(run: Callable[[list[str]], object], doc: str, argv: list[str] | None = None) -> int:
    """The `main` of a command that plans like eval (`nox -s entropy`, `nox -s screen`): `--help` prints `doc`;
    bad input is one line on stderr and exit code 2, as for eval."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(doc)
        return 0
    try:
        run(argv)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def check_cells(cells: list[Cell]) -> None:
    """What can be checked without running anything, for the cells that will run: simulators installed,
    demos on disk, results folders writable (a cell must never run for hours and then fail to save its record)."""
    for name in dict.fromkeys(cell.settings.task for cell in cells):
        tasks.get(name).require_simulator()
    imitation = [c.settings for c in cells if get_policy(c.settings.policy).learning == "il"]
    for task, source, path in dict.fromkeys((s.task, s.demo_source, s.demo_path) for s in imitation):
        tasks.get(task).check_demos(source, path)  # official demos that are not on disk: named now
    for folder in dict.fromkeys([*(Path(c.settings.results_dir) for c in cells), *(c.path.parent for c in cells)]):
        check_writable(folder)


def cell_state(cell: Cell) -> tuple[str, str]:
    """(state, detail): ok or failed from the record; running while a job holds the cell's lock; else missing."""
    if is_done(cell.path):
        return "ok", str(cell.path)
    if is_locked(lock_path(cell.path)):
        return "running", "a job holds this cell's lock"
    record, problem = inspect_record(cell.path)
    if problem:
        return "corrupt", f"{cell.path} {problem} (the next run keeps it aside and runs the cell again)"
    if record and record.get("status") == "failed":
        error = record.get("error") or {}
        message = (str(error.get("message", "")).strip().splitlines() or [""])[0]
        return "failed", f"{error.get('type', 'error')}: {message}"
    if record:
        return "missing", f"record has schema_version {record.get('schema_version')!r}, not {SCHEMA_VERSION}: rerun it"
    if resume_path(cell.path).exists():
        return "missing", "stopped part-way: the next run continues after its last evaluation"
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
