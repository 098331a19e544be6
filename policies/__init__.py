"""The policy table: every policy the harness trains on frozen features, in one place.

A policy names what it reads from the encoder (`input_kind`), which suites it runs on, which training
loop (cell body, `experiments/cells/`) trains it, and how its head is built. Planning checks a request
against this table (a policy on a suite it does not support is refused before any work), and the cell
lifecycle runs the body named here; nothing else decides which loop runs. Bodies and heads are lazy
"module:attr" references, as in the encoder registry, so this table imports no training code.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from encoders.lookup import UnknownNameError, resolve, unknown_name

MUJOCO_SUITES = ("metaworld", "dmc", "adroit")
HABITAT_SUITES = ("imagenav", "objectnav", "mobilepick")


@dataclass(frozen=True)
class PolicySpec:
    name: str
    input_kind: str  # the encoder output the policy reads: "vector" (pooled / CLS) or "spatial" (tokens)
    suites: tuple[str, ...]  # the suites whose tasks it can be trained on
    body: str  # "module:attr" of the cell body (the training loop) that trains it
    head: str | None = None  # "module:attr" of the head class, for heads built by `build_head`
    learning: str = "il"  # il (imitation from demos) or rl (from interaction)
    hidden: tuple[int, ...] = ()  # the head's hidden sizes in its reference code (a protocol's `hidden: null`)
    record_name: str | None = None  # the name in records when it differs from `name`
    description: str = ""

    def load_body(self):
        return resolve(self.body)


POLICIES: dict[str, PolicySpec] = {
    p.name: p
    for p in (
        PolicySpec(
            "bc-mlp",
            "vector",
            MUJOCO_SUITES,
            "experiments.cells.bc:train_and_evaluate",
            head="policies.bc_mlp:MLPHead",
            hidden=(256, 256, 256),
            description="CortexBench's BC head: mjrl BatchNormMLP on the fused history of the vector output",
        ),
        PolicySpec(
            "bc-conv",
            "spatial",
            MUJOCO_SUITES,
            "experiments.cells.bc:train_and_evaluate",
            head="policies.bc_conv:ConvHead",
            hidden=(256, 256, 256),
            description="Theia's BC head: conv neck (with the released code's LayerNorms) on the spatial tokens, "
            "then mjrl's BatchNormMLP",
        ),
        PolicySpec(
            "trifinger-mlp",
            "vector",
            ("trifinger",),
            "experiments.cells.trifinger:train_and_evaluate",
            head="policies.trifinger_mlp:TriFingerMLP",
            hidden=(2000, 2000),
            description="CortexBench's TriFinger head: MLP 2000-2000 on fingertips + embedding (+ goal embedding)",
        ),
        PolicySpec(
            "trifinger-conv",
            "spatial",
            ("trifinger",),
            "experiments.cells.trifinger:train_and_evaluate",
            head="policies.trifinger_conv:TriFingerConv",
            hidden=(256, 256),
            description="Theia's TriFinger head: conv neck on the spatial tokens (+ the goal image's as channels), "
            "then MLP 256-256 with the fingertips",
        ),
        PolicySpec(
            "ppo",
            "vector",
            MUJOCO_SUITES,
            "experiments.cells.rl:train_and_evaluate",
            learning="rl",
            description="stable-baselines3 PPO on frozen features",
        ),
        PolicySpec(
            "sac",
            "vector",
            MUJOCO_SUITES,
            "experiments.cells.rl:train_and_evaluate",
            learning="rl",
            description="stable-baselines3 SAC on frozen features",
        ),
        PolicySpec(
            "cortexbench-habitat",
            "spatial",
            HABITAT_SUITES,
            "experiments.cells.habitat:train_and_evaluate",
            learning="rl",
            description="CortexBench's Habitat policy, trained by habitat-baselines (ImageNav/MobilePick RL, ObjectNav IL)",
        ),
    )
}
RL_POLICIES = tuple(name for name, p in POLICIES.items() if p.learning == "rl" and p.suites == MUJOCO_SUITES)


def get_policy(name: str) -> PolicySpec:
    if name not in POLICIES:
        error = unknown_name("policy", name, POLICIES, "nox -s list -- policies")
        raise UnknownNameError(f"{error} Policies: {', '.join(POLICIES)}.")
    return POLICIES[name]


def counterpart(policy: str, suite: str) -> str | None:
    """The policy that stands for `policy` on a suite it does not train on: the suite's only policy
    (Habitat), else the suite's one policy reading the same input kind (bc-conv -> trifinger-conv,
    bc-mlp -> trifinger-mlp); None when there is no single such policy."""
    fits = [p for p in POLICIES.values() if suite in p.suites]
    if len(fits) == 1:
        return fits[0].name
    same = [p.name for p in fits if p.input_kind == input_kind(policy)]
    return same[0] if len(same) == 1 else None


def input_kind(policy: str) -> str:
    """Which encoder output a policy consumes: 'vector' or 'spatial'."""
    return get_policy(policy).input_kind


def build_head(policy: str, *, history: int, encoder_spec, proprio_dim: int, action_dim: int, **hparams) -> nn.Module:
    """Construct the head of `policy` sized for the encoder and task (BC and TriFinger heads)."""
    spec = get_policy(policy)
    if spec.head is None:
        raise ValueError(f"policy {policy!r} has no BC head to build (its cell body builds its own model)")
    head = resolve(spec.head)
    if spec.input_kind == "vector":
        return head(history, encoder_spec.embed_dim, proprio_dim, action_dim, **hparams)
    return head(history, encoder_spec.token_dim, encoder_spec.grid, proprio_dim, action_dim, **hparams)
