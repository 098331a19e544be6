"""The encoder registry: every entry builds, aliases and plug-ins resolve, bad names get suggestions."""

from __future__ import annotations

import math
import sys
import textwrap
from importlib.metadata import EntryPoint

import numpy as np
import pytest
import torch

import encoders
from encoders import registry as registry_module
from encoders.frozen import build_module
from encoders.lookup import resolve
from encoders.radio import RadioCodeMissingError
from encoders.registry import Registry
from tests.conftest import build_for_shapes

SPECS = [s for s in encoders.available() if s.input == "pixels"]  # the state reference: test_state_reference.py
SMALL = [s for s in SPECS if s.n_parameters <= 25_000_000]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_entry_builds_with_the_declared_parameter_count(spec):
    try:
        module = build_for_shapes(lambda: resolve(spec.builder)(**spec.builder_kwargs))
    except RadioCodeMissingError as err:  # RADIO / E-RADIO only: NVIDIA's code is not on PyPI and not bundled
        pytest.skip(f"{spec.name} needs NVIDIA's RADIO code, absent here: {str(err).splitlines()[0]}")
    assert sum(p.numel() for p in module.backbone.parameters()) == spec.n_parameters
    assert spec.license and spec.citation
    assert spec.gmacs > 0 or (math.isnan(spec.gmacs) and "GMACs not measured" in spec.notes)
    assert spec.vector_output in spec.outputs or spec.vector_output == "pooled"


@pytest.mark.parametrize("spec", SMALL, ids=lambda s: s.name)
def test_small_entries_encode_frames_with_the_declared_shapes(spec):
    enc = encoders.load(spec.name, weights="random")
    frames = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    out = enc.encode(frames)
    assert out.vector.shape == (2, spec.embed_dim)
    assert out.tokens.shape == (2, spec.n_tokens, spec.token_dim)
    assert out.grid == spec.grid
    assert torch.isfinite(out.tokens).all()
    assert not any(p.requires_grad for p in enc.module.parameters())
    assert not enc.module.training


def test_random_init_is_seeded_and_identical_across_builds():
    spec = encoders.get_spec("random-vit-tiny")
    a, b = build_module(spec), build_module(spec)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name


def test_aliases_point_at_the_headline_sizes():
    assert encoders.get_spec("theia").name == "theia-base"
    assert encoders.get_spec("vc1").name == "vc1-large"
    headline = {
        "r3m": "r3m-rn50",
        "vip": "vip-rn50",
        "mvp": "mvp-vitl",
        "clip": "clip-vitl14",
        "dinov2": "dinov2-vitl14",
        "vit": "vit-huge-in21k",
        "radio": "radio-v2.1",
        "e-radio": "e-radio-v2",
    }
    assert {alias: encoders.get_spec(alias).name for alias in headline} == headline


def test_unknown_encoder_suggests_close_names():
    with pytest.raises(KeyError) as err:
        encoders.get_spec("thea")
    assert "theia" in str(err.value) and "nox -s list" in str(err.value)


def test_duplicate_names_are_refused():
    spec = encoders.get_spec("random-vit-tiny")
    with pytest.raises(ValueError, match="registered twice"):
        Registry([spec, spec])


def test_plugins_register_through_the_entry_point_group(tmp_path, monkeypatch):
    (tmp_path / "toy_encoders.py").write_text(
        textwrap.dedent("""
        import dataclasses
        from encoders.zoo.random_vit import RANDOM_VIT_TINY
        TOY = dataclasses.replace(RANDOM_VIT_TINY, name="toy-vit", aliases=("toy",))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint(name="toy", value="toy_encoders:TOY", group=registry_module.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [ep] if group == ep.group else [])
    registry_module.registry.cache_clear()
    try:
        assert encoders.get_spec("toy").name == "toy-vit"
        assert "toy-vit" in [s.name for s in encoders.available()]
    finally:
        registry_module.registry.cache_clear()
        sys.modules.pop("toy_encoders", None)
