"""Typed settings: the schema of eval's Hydra config (validated at compose time), and one cell's
settings resolved from it: protocol values, then task defaults, then overrides, then range checks.

A protocol value of `null` means "the task's own value" (eval episodes, demo count, horizon, render
size); `policy: auto` means Theia's rule: spatial tokens + conv neck for transformers, the vector
output + MLP for CNNs. A suite with its own training loop has its own block in the protocol (e.g.
`trifinger:`), whose keys replace the top-level ones for that suite's tasks; there `epochs: null` and
`eval_every: null` mean the task's own schedule (`TriFingerTaskSpec.epochs` / `.eval_every`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from encoders.cache import MODES as CACHE_MODES
from encoders.cache import STORAGE_DTYPES
from encoders.spec import EncoderSpec
from policies import POLICIES, RL_POLICIES, counterpart, get_policy
from tasks.rendering import QUALITIES
from tasks.spec import EVAL_STARTS, TaskSpec

EVAL_GROUPS = ("auto", 1, 2)  # groups of evaluation envs a rollout pipelines (`eval_groups`)


class SettingError(ValueError):
    """A setting the user passed is out of range or not one of its choices; the message names the key,
    the value, what is allowed and the fix. Bad input, not a bug: eval prints it and exits 2."""


# --------------------------------------------------------------------------------------------------
# The schema of `experiments/conf/config.yaml`: Hydra checks every override's type against it when it
# composes the config (seed=abc or seed=1.5 fail there, naming the key). Choices and ranges are checked
# per cell by `resolve_settings`, which knows the task and the protocol.
# --------------------------------------------------------------------------------------------------
@dataclass
class DemosConfig:
    source: str | None = None  # null: the protocol's; official | expert (= scripted) | minari | <path>
    path: str | None = None  # folder or file holding the official pickles; minari: a dataset id


@dataclass
class EvalConfig:
    encoder: str = MISSING  # a registry name or alias (`nox -s list -- encoders`)
    task: str = MISSING  # a task, a suite or a group; comma-separated works too
    weights: str = "pretrained"  # pretrained | random | <path to a checkpoint file or folder>
    seed: int | None = None  # null: every seed of the protocol
    policy: str | None = None  # null: the protocol's
    demos: DemosConfig = field(default_factory=DemosConfig)
    render_quality: str | None = None  # null: the protocol's
    device: str = "auto"
    workers: Any = "auto"  # auto (one per CPU core) or a number of processes (1: in-process)
    eval_groups: Any = "auto"  # auto | 1 | 2: env groups an evaluation pipelines (experiments.cells.rollout)
    cache: str = "readwrite"
    cache_dtype: str = "float32"
    entropy_bins: int = 100
    results_dir: str = "results"
    overwrite: bool = False
    progress: bool = True
    protocol: dict[str, Any] = field(default_factory=dict)  # the `protocol=` group's file


def choices(kind: str) -> str:
    """The registry's names, one line, for eval's --help (an OmegaConf resolver: `${cortexbench_choices:...}`)."""
    if kind == "encoders":
        import encoders

        return ", ".join(spec.name for spec in encoders.available())
    if kind == "tasks":
        import tasks

        return ", ".join(spec.name for spec in tasks.available())
    if kind == "groups":
        import tasks

        return ", ".join(tasks.groups())
    if kind == "policies":
        return ", ".join(POLICIES)
    raise ValueError(f"unknown choice list {kind!r}")


def register_configs() -> None:
    """Store the schema (used by config.yaml's defaults list) and the --help resolver; idempotent."""
    ConfigStore.instance().store(name="eval_schema", node=EvalConfig)
    if not OmegaConf.has_resolver("cortexbench_choices"):
        OmegaConf.register_new_resolver("cortexbench_choices", choices)


register_configs()


@dataclass(frozen=True)
class RLSettings:
    """The `rl:` block of the protocol for one RL cell (policy=ppo|sac): budget, schedule, SB3 hyperparameters."""

    total_steps: int  # environment steps, all training environments together
    eval_every: int  # evaluate every this many environment steps, and at the end
    n_envs: int  # training environments stepped together
    hyperparameters: tuple[tuple[str, object], ...]  # the algorithm's SB3 keyword arguments (sorted, hashable)

    def kwargs(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.hyperparameters}


def _rl_settings(protocol, policy: str) -> RLSettings:
    from omegaconf import OmegaConf

    block = OmegaConf.to_container(protocol.rl, resolve=True) if protocol.get("rl") is not None else {}
    if policy not in block:
        raise SettingError(f"policy={policy} needs an `rl:` block with `{policy}:` hyperparameters in the protocol")
    hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in block[policy].items()}
    return RLSettings(
        total_steps=int(block["total_steps"]),
        eval_every=int(block["eval_every"]),
        n_envs=int(block["n_envs"]),
        hyperparameters=tuple(sorted(hyper.items())),
    )


@dataclass(frozen=True)
class CellSettings:
    protocol: str
    encoder: str
    weights: str
    task: str
    seed: int
    policy: str
    default_policy: str
    epochs: int
    eval_every: int
    batch_size: int
    lr: float
    eval_episodes: int
    n_demos: int
    horizon: int
    render_size: int
    render_quality: str
    demo_source: str
    demo_path: str | None
    history: int
    fusion: str
    hidden: tuple[int, ...]
    dropout: float
    small_init: str
    headline: str
    device: str
    workers: int | str
    cache: str
    cache_dtype: str
    entropy_bins: int
    results_dir: str
    overwrite: bool
    progress: bool
    rl: RLSettings | None = None  # policy=ppo|sac only
    eval_starts: str = "reference"  # protocol.eval_starts: tasks.spec.EVAL_STARTS
    eval_groups: int | str = "auto"  # EVAL_GROUPS; the number used is in the record's provenance

    def as_dict(self) -> dict:
        return asdict(self)


def policy_for(choice: str, spec: EncoderSpec, suite: str | None = None) -> str:
    """The policy a choice means on `suite`. `auto` is Theia's rule: spatial tokens and a conv neck for
    transformers (bc-conv; trifinger-conv on TriFinger), the vector output and an MLP for CNNs (bc-mlp;
    on TriFinger CortexBench's trifinger-mlp, as Theia's release has no TriFinger head for vectors). A
    policy that does not train on the suite stands for its counterpart there (`policies.counterpart`)."""
    if choice == "auto":
        choice = "bc-conv" if spec.backbone_type == "transformer" and "spatial" in spec.outputs else "bc-mlp"
    if suite and choice in POLICIES and suite not in POLICIES[choice].suites:
        return counterpart(choice, suite) or choice
    return choice


def check_policy(policy: str, task: TaskSpec) -> None:
    spec = get_policy(policy)
    if task.suite not in spec.suites:
        fits = [name for name, p in POLICIES.items() if task.suite in p.suites]
        raise SettingError(
            f"policy={policy} does not train on {task.suite} tasks ({task.name}); "
            f"choose one of {', '.join(fits)}, or drop policy= to use the protocol's"
        )


def check_state_reference(policy: str) -> None:
    """The state reference feeds one vector to an imitation head; spatial heads and RL are not defined for it."""
    spec = get_policy(policy)
    if spec.input_kind != "vector" or spec.learning != "il":
        fits = [name for name, p in POLICIES.items() if p.input_kind == "vector" and p.learning == "il"]
        raise SettingError(
            f"policy={policy} with encoder=state: the state reference trains the vector imitation heads only "
            f"({', '.join(fits)}); drop policy= to use the protocol's"
        )


def _at_least(key: str, value, low: int) -> None:
    if value < low:
        raise SettingError(f"{key}={value}: must be at least {low}")


def _one_of(key: str, value, allowed) -> None:
    if value not in allowed:
        raise SettingError(f"{key}={value!r} is not one of {', '.join(map(str, allowed))}")


def validate(s: CellSettings) -> None:
    """Ranges and choices of every setting of a cell, checked before any work (the message names the key)."""
    _at_least("seed", s.seed, 0)
    for key in ("epochs", "eval_every", "batch_size", "eval_episodes", "n_demos", "horizon", "render_size", "history"):
        _at_least(key if key in ("seed",) else f"protocol.{key}", getattr(s, key), 1)
    _at_least("entropy_bins", s.entropy_bins, 2)
    _one_of("render_quality", s.render_quality, QUALITIES)
    _one_of("cache", s.cache, CACHE_MODES)
    _one_of("cache_dtype", s.cache_dtype, STORAGE_DTYPES)
    _one_of("protocol.eval_starts", s.eval_starts, EVAL_STARTS)
    if s.workers != "auto" and (isinstance(s.workers, bool) or not isinstance(s.workers, int) or s.workers < 1):
        raise SettingError(f"workers={s.workers!r}: use auto or a whole number of processes >= 1 (1: in-process)")
    if not (s.eval_groups == "auto" or (type(s.eval_groups) is int and s.eval_groups in EVAL_GROUPS)):
        raise SettingError(
            f"eval_groups={s.eval_groups!r} is not one of {', '.join(map(str, EVAL_GROUPS))} "
            "(auto: 2 with the encoder on a GPU, worker processes and at least 4 episodes, else 1; 1: lockstep)"
        )
    if s.rl is not None:
        for key in ("total_steps", "eval_every", "n_envs"):
            _at_least(f"protocol.rl.{key}", getattr(s.rl, key), 1)


def _auto_or_number(value):
    """`auto`, or a whole number (Hydra passes `workers=2` as an int, a quoted '2' as a string)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def resolve_settings(cfg, task: TaskSpec, encoder: EncoderSpec, seed: int) -> CellSettings:
    p = cfg.protocol
    suite = p.get(task.suite)  # the suite's own block of knobs, if it has one

    def knob(key: str):
        return suite[key] if suite is not None and key in suite else p[key]

    def pick(value, task_default):
        return task_default if value is None else value

    def whole(key: str, value) -> int:
        """A protocol count as an int; anything else (two, 1.5, true) names its key."""
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise SettingError(f"protocol.{key}={value!r}: expected a whole number")
        return int(value)

    def real(key: str, value) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingError(f"protocol.{key}={value!r}: expected a number")
        return float(value)

    default_policy = policy_for(knob("policy"), encoder, task.suite)
    policy = policy_for(cfg.policy, encoder) if cfg.policy else default_policy
    check_policy(policy, task)
    demo_source = str(cfg.demos.source or p.demo_source)
    if encoder.input == "state":
        check_state_reference(policy)
        if demo_source == "official" and task.suite != "trifinger":
            demo_source = "expert"  # only the experts' demos carry the MuJoCo state here (a recorded deviation)
    settings = CellSettings(
        protocol=p.name,
        encoder=encoder.name,
        weights=str(cfg.weights),
        task=task.name,
        seed=int(seed),
        policy=policy,
        default_policy=default_policy,
        epochs=whole("epochs", pick(knob("epochs"), getattr(task, "epochs", None))),
        eval_every=whole("eval_every", pick(knob("eval_every"), getattr(task, "eval_every", None))),
        batch_size=whole("batch_size", knob("batch_size")),
        lr=real("lr", knob("lr")),
        eval_episodes=whole("eval_episodes", pick(p.eval_episodes, task.eval_episodes)),
        n_demos=whole("n_demos", pick(p.n_demos, task.n_demos)),
        horizon=whole("horizon", pick(knob("horizon"), task.horizon)),
        render_size=whole("render_size", pick(p.render_size, task.render_size)),
        render_quality=str(cfg.render_quality or p.render_quality),
        demo_source=demo_source,
        demo_path=cfg.demos.path,
        history=whole("history", pick(knob("history"), task.history)),
        fusion=str(pick(knob("fusion"), task.fusion)),
        hidden=tuple(pick(knob("hidden"), get_policy(policy).hidden)),
        dropout=real("dropout", p.dropout),
        small_init=str(p.small_init),
        headline=str(p.headline),
        device=str(cfg.device),
        workers=_auto_or_number(cfg.workers),
        cache=str(cfg.cache),
        cache_dtype=str(cfg.cache_dtype),
        entropy_bins=int(cfg.entropy_bins),
        results_dir=str(cfg.results_dir),
        overwrite=bool(cfg.overwrite),
        progress=bool(cfg.progress),
        rl=_rl_settings(p, policy) if policy in RL_POLICIES else None,
        eval_starts=str(p.get("eval_starts", "reference")),
        eval_groups=_auto_or_number(cfg.eval_groups),
    )
    validate(settings)
    return settings
