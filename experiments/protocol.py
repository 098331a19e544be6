"""Resolve one cell's settings from the Hydra config: protocol values, then task defaults, then overrides.

A protocol value of `null` means "the task's own value" (eval episodes, demo count, horizon, render
size); `policy: auto` means Theia's rule: spatial tokens + conv neck for transformers, the vector
output + MLP for CNNs. A suite with its own training loop has its own block in the protocol (e.g.
`trifinger:`), whose keys replace the top-level ones for that suite's tasks; there `epochs: null` and
`eval_every: null` mean the task's own schedule (`TriFingerTaskSpec.epochs` / `.eval_every`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from encoders.spec import EncoderSpec
from tasks.spec import TaskSpec

RL_POLICIES = ("ppo", "sac")  # trained by experiments/rl_cell.py from the protocol's `rl:` block


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
        raise ValueError(f"policy={policy} needs an `rl:` block with `{policy}:` hyperparameters in the protocol")
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

    def as_dict(self) -> dict:
        return asdict(self)


def policy_for(choice: str, spec: EncoderSpec) -> str:
    if choice == "auto":
        return "bc-conv" if spec.backbone_type == "transformer" and "spatial" in spec.outputs else "bc-mlp"
    return choice


def resolve_settings(cfg, task: TaskSpec, encoder: EncoderSpec, seed: int) -> CellSettings:
    p = cfg.protocol
    suite = p.get(task.suite)  # the suite's own block of knobs, if it has one

    def knob(key: str):
        return suite[key] if suite is not None and key in suite else p[key]

    def pick(value, task_default):
        return task_default if value is None else value

    default_policy = policy_for(knob("policy"), encoder)
    policy = policy_for(cfg.policy or knob("policy"), encoder)
    return CellSettings(
        protocol=p.name,
        encoder=encoder.name,
        weights=str(cfg.weights),
        task=task.name,
        seed=int(seed),
        policy=policy,
        default_policy=default_policy,
        epochs=int(pick(knob("epochs"), getattr(task, "epochs", None))),
        eval_every=int(pick(knob("eval_every"), getattr(task, "eval_every", None))),
        batch_size=int(knob("batch_size")),
        lr=float(knob("lr")),
        eval_episodes=int(pick(p.eval_episodes, task.eval_episodes)),
        n_demos=int(pick(p.n_demos, task.n_demos)),
        horizon=int(pick(knob("horizon"), task.horizon)),
        render_size=int(pick(p.render_size, task.render_size)),
        render_quality=str(cfg.render_quality or p.render_quality),
        demo_source=str(cfg.demos.source or p.demo_source),
        demo_path=cfg.demos.path,
        history=int(pick(knob("history"), task.history)),
        fusion=str(pick(knob("fusion"), task.fusion)),
        hidden=tuple(knob("hidden")),
        dropout=float(p.dropout),
        small_init=str(p.small_init),
        headline=str(p.headline),
        device=str(cfg.device),
        workers=cfg.workers,
        cache=str(cfg.cache),
        cache_dtype=str(cfg.cache_dtype),
        entropy_bins=int(cfg.entropy_bins),
        results_dir=str(cfg.results_dir),
        overwrite=bool(cfg.overwrite),
        progress=bool(cfg.progress),
        rl=_rl_settings(p, policy) if policy in RL_POLICIES else None,
    )
