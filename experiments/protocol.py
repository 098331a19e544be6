"""Resolve one cell's settings from the Hydra config: protocol values, then task defaults, then overrides.

A protocol value of `null` means "the task's own value" (eval episodes, demo count, horizon, render
size); `policy: auto` means Theia's rule: spatial tokens + conv neck for transformers, the vector
output + MLP for CNNs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from encoders.spec import EncoderSpec
from tasks.spec import TaskSpec


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
    cache: str
    cache_dtype: str
    entropy_bins: int
    results_dir: str
    overwrite: bool
    progress: bool

    def as_dict(self) -> dict:
        return asdict(self)


def policy_for(choice: str, spec: EncoderSpec) -> str:
    if choice == "auto":
        return "bc-conv" if spec.backbone_type == "transformer" and "spatial" in spec.outputs else "bc-mlp"
    return choice


def resolve_settings(cfg, task: TaskSpec, encoder: EncoderSpec, seed: int) -> CellSettings:
    p = cfg.protocol

    def pick(value, task_default):
        return task_default if value is None else value

    default_policy = policy_for(p.policy, encoder)
    return CellSettings(
        protocol=p.name,
        encoder=encoder.name,
        weights=str(cfg.weights),
        task=task.name,
        seed=int(seed),
        policy=policy_for(cfg.policy or p.policy, encoder),
        default_policy=default_policy,
        epochs=int(p.epochs),
        eval_every=int(p.eval_every),
        batch_size=int(p.batch_size),
        lr=float(p.lr),
        eval_episodes=int(pick(p.eval_episodes, task.eval_episodes)),
        n_demos=int(pick(p.n_demos, task.n_demos)),
        horizon=int(pick(p.horizon, task.horizon)),
        render_size=int(pick(p.render_size, task.render_size)),
        render_quality=str(cfg.render_quality or p.render_quality),
        demo_source=str(cfg.demos.source or p.demo_source),
        demo_path=cfg.demos.path,
        history=int(pick(p.history, task.history)),
        fusion=str(pick(p.fusion, task.fusion)),
        hidden=tuple(p.hidden),
        dropout=float(p.dropout),
        small_init=str(p.small_init),
        headline=str(p.headline),
        device=str(cfg.device),
        cache=str(cfg.cache),
        cache_dtype=str(cfg.cache_dtype),
        entropy_bins=int(cfg.entropy_bins),
        results_dir=str(cfg.results_dir),
        overwrite=bool(cfg.overwrite),
        progress=bool(cfg.progress),
    )
