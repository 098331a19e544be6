"""Policy heads trained on frozen features: CortexBench's BC MLP and Theia's conv neck for spatial tokens."""

from __future__ import annotations

from torch import nn

HEADS = {
    "bc-mlp": "vector",  # input: fused history of the encoder's vector output
    "bc-conv": "spatial",  # input: fused history of spatial tokens
}


def input_kind(policy: str) -> str:
    """Which encoder output a head consumes: 'vector' or 'spatial'."""
    if policy not in HEADS:
        raise ValueError(f"unknown policy {policy!r}; choose one of {sorted(HEADS)}")
    return HEADS[policy]


def build_head(policy: str, *, history: int, encoder_spec, proprio_dim: int, action_dim: int, **hparams) -> nn.Module:
    """Construct a head for `policy` sized for the encoder and task."""
    if input_kind(policy) == "vector":
        from policies.bc_mlp import MLPHead

        return MLPHead(history, encoder_spec.embed_dim, proprio_dim, action_dim, **hparams)
    from policies.bc_conv import ConvHead

    return ConvHead(history, encoder_spec.token_dim, encoder_spec.grid, proprio_dim, action_dim, **hparams)
