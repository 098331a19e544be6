"""docs/encoders.md "Adding an encoder from another package": the documented pyproject entry point and spec
module, taken verbatim from the docs, register through `cortexbench.encoders` and run."""

from __future__ import annotations

import re
import sys
from importlib.metadata import EntryPoint

import numpy as np
import pytest
import torch

import encoders
from encoders import registry as registry_module
from tests.conftest import REPO


def _readme_example() -> tuple[str, str]:
    readme = (REPO / "docs" / "encoders.md").read_text()
    section = readme.split("### Adding an encoder from another package", 1)[1].split("\n## ", 1)[0]
    toml = re.search(r"```toml\n(.*?)```", section, re.S)
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert toml and python, "the docs section lost its pyproject or spec example"
    return toml[1], python[1]


@pytest.fixture
def installed_example(tmp_path, monkeypatch):
    """What `pip install -e ./my-encoders` gives: the module importable, the entry point visible."""
    pyproject, module = _readme_example()
    package = tmp_path / "my_encoders"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "specs.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    group = registry_module.ENTRY_POINT_GROUP
    table = pyproject.split(f'[project.entry-points."{group}"]', 1)[1]  # (tomllib is Python >= 3.11)
    points = [
        EntryPoint(name=name, value=value, group=group)
        for name, value in re.findall(r'^([\w.-]+)\s*=\s*"([^"]+)"', table, re.M)
    ]
    monkeypatch.setattr(
        registry_module, "entry_points", lambda group: points if group == registry_module.ENTRY_POINT_GROUP else []
    )
    registry_module.registry.cache_clear()
    yield points
    registry_module.registry.cache_clear()
    for name in [m for m in sys.modules if m == "my_encoders" or m.startswith("my_encoders.")]:
        del sys.modules[name]


def test_the_readme_plugin_registers_and_encodes(installed_example):
    assert [p.name for p in installed_example] == ["r3m-rn18"]
    spec = encoders.get_spec("r3m-rn18")
    assert "r3m-rn18" in [s.name for s in encoders.available()] and "r3m-rn50" in [s.name for s in encoders.available()]
    enc = encoders.load("r3m-rn18", weights="random")
    assert sum(p.numel() for p in enc.module.backbone.parameters()) == spec.n_parameters
    out = enc.encode(np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8))
    assert out.vector.shape == (2, 512) and out.tokens.shape == (2, 49, 512) and torch.isfinite(out.vector).all()


def test_the_readme_plugin_reads_r3m_checkpoints(installed_example, tmp_path):
    enc = encoders.load("r3m-rn18", weights="random")
    state = {f"module.convnet.{k}": v for k, v in enc.module.backbone.state_dict().items()}
    path = tmp_path / "r3m_18.pt"
    torch.save({"r3m": state}, path)
    reloaded = encoders.load("r3m-rn18", weights=str(path))
    frames = np.random.default_rng(1).integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    assert torch.allclose(reloaded.encode(frames).vector, enc.encode(frames).vector)
