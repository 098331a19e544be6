"""RADIO and E-RADIO (NVIDIA, AM-RADIO), built and loaded with NVIDIA's own code from a local clone.

RADIO's architecture (CPE patch generator, one CLS token per teacher, registers) and E-RADIO's
hybrid `eradio` network live only in github:NVlabs/RADIO (read at c0f3701), which is not on PyPI
and is licensed NVIDIA Source Code License-NC; the harness does not copy it. Its authors document
`torch.hub.load('NVlabs/RADIO', 'radio_model', version=...)`, or, offline, a local clone plus a local
checkpoint: `torch.hub.load(<clone>, 'radio_model', source='local', version=<file.pth.tar>)`.

- The clone is found through `$RADIO_REPO`, else torch hub's cache (`<hub dir>/NVlabs_RADIO_main`,
  filled by any earlier `torch.hub.load('NVlabs/RADIO', ...)`). Absent: `RadioCodeMissingError`
  names the variable, the clone command and the checkpoint URL.
- `weights=random` builds the architecture from the `args` stored in the spec the way the hub and
  the Hugging Face wrapper do (`create_model_from_args` + `RADIOModel`): the real `args` live
  inside each checkpoint, so the spec holds a reconstruction, and a released checkpoint whose
  architecture differs is refused by the strict load with the differing keys named.
- `weights=pretrained | <path>` runs the authors' `hubconf.radio_model(version=<file>)` and takes
  its state dict. RADIO checkpoints are pickles (an argparse `args` inside), so the hub loads them
  with `weights_only=False`: only load files you trust.
- Input: RGB in [0, 1]; the model's `input_conditioner` applies the OpenAI-CLIP mean/std inside.
  radio_v2.1 is a bf16 checkpoint; here the model runs in fp32 (CPU).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import torch
from torch import nn

RADIO_REPO_ENV = "RADIO_REPO"
RADIO_GIT = "https://github.com/NVlabs/RADIO"
CHECKPOINT_URLS = {
    "radio_v2.1": "https://huggingface.co/nvidia/RADIO/resolve/main/radio_v2.1_bf16.pth.tar",
    "e-radio_v2": "https://huggingface.co/nvidia/RADIO/resolve/main/eradio_v2.pth.tar",
}

# Every field `radio.radio_model.create_model_from_args` reads, at inference values; a spec's
# `args` override these (a checkpoint's `args` hold the whole training namespace).
_CREATE_MODEL_DEFAULTS = {
    "model": None,
    "model_kwargs": {},
    "pretrained": False,
    "in_chans": None,
    "input_size": None,
    "num_classes": 0,
    "drop": 0.0,
    "drop_path": None,
    "drop_block": None,
    "gp": None,
    "bn_momentum": None,
    "bn_eps": None,
    "torchscript": False,
    "initial_checkpoint": None,
    "model_norm": False,
    "cpe_max_size": None,
    "teachers": [],
    "cls_token_per_teacher": False,
    "register_multiple": None,
    "cpe_num_registers": None,
}


class RadioCodeMissingError(ImportError):
    """NVIDIA's RADIO code (not on PyPI, not vendored) is not available; the message says how to get it."""


def _missing(reason: str, version: str | None = None) -> RadioCodeMissingError:
    url = CHECKPOINT_URLS.get(version or "", CHECKPOINT_URLS["radio_v2.1"])
    return RadioCodeMissingError(
        f"RADIO / E-RADIO need NVIDIA's RADIO code, which is not on PyPI and is not bundled here: {reason}\n"
        f"  1. git clone {RADIO_GIT} /path/to/RADIO   (licence: NVIDIA Source Code License-NC, non-commercial)\n"
        f"  2. export {RADIO_REPO_ENV}=/path/to/RADIO\n"
        f"  3. pip install einops   (its torch-hub dependencies: torch, timm, einops)\n"
        f"Pretrained weights then come from {url} (weights=pretrained, or weights=<path to the .pth.tar>)."
    )


def radio_repo(version: str | None = None) -> Path:
    """The RADIO clone: `$RADIO_REPO`, else torch hub's cached checkout of NVlabs/RADIO."""
    configured = os.environ.get(RADIO_REPO_ENV)
    candidates = [Path(configured).expanduser()] if configured else []
    candidates.append(Path(torch.hub.get_dir()) / "NVlabs_RADIO_main")
    for folder in candidates:
        if (folder / "hubconf.py").is_file() and (folder / "radio" / "radio_model.py").is_file():
            return folder.resolve()
    if configured:
        raise _missing(f"${RADIO_REPO_ENV}={configured} holds no hubconf.py + radio/radio_model.py", version)
    raise _missing(f"${RADIO_REPO_ENV} is not set and torch hub has no cached NVlabs/RADIO", version)


def _import_radio(repo: Path, version: str | None = None):
    """Import `radio.*` from the clone (as torch hub's `source='local'` does: the clone goes on sys.path)."""
    if str(repo) in sys.path:  # first on the path, so another checkout on it cannot shadow this one
        sys.path.remove(str(repo))
    sys.path.insert(0, str(repo))
    importlib.invalidate_caches()
    try:
        radio_model = importlib.import_module("radio.radio_model")
        common = importlib.import_module("radio.common")
        conditioner = importlib.import_module("radio.input_conditioner")
    except ImportError as err:
        raise _missing(f"importing radio from {repo} failed: {err}", version) from err
    origin = Path(radio_model.__file__).resolve()
    if repo not in origin.parents:  # PyPI's unrelated `radio` package must not stand in for NVIDIA's
        raise _missing(f"`radio` was imported from {origin}, not from {repo}", version)
    return radio_model, common, conditioner


class RadioEncoder(nn.Module):
    """Wraps RADIO's `RADIOModel`; the checkpoint loads into `self.backbone`.

    Outputs: `pooled` = RADIO's summary (the per-teacher CLS tokens of the summary teachers,
    concatenated; for E-RADIO the mean of the dense features), `tokens` = its spatial features.
    """

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        summary, features = self.backbone(x)  # RadioOutput(summary, features), features NLC
        return {"pooled": summary, "tokens": features}


def _summary_idxs(args: argparse.Namespace) -> torch.Tensor:
    """hubconf's rule: with one CLS token per teacher, the first index of each summary teacher's name."""
    if not getattr(args, "cls_token_per_teacher", True):
        return torch.tensor([0], dtype=torch.int64)
    first: dict[str, int] = {}
    for i, teacher in enumerate(args.teachers):
        if teacher.get("use_summary", True):
            first.setdefault(teacher["name"], i)
    return torch.tensor(sorted(first.values()), dtype=torch.int64)


def build_radio(version: str, args: dict) -> RadioEncoder:
    """A randomly initialised RADIO/E-RADIO of `version` from the architecture `args` (fp32)."""
    repo = radio_repo(version)
    radio_model, common, conditioner = _import_radio(repo, version)
    namespace = argparse.Namespace(**{**_CREATE_MODEL_DEFAULTS, **args})
    namespace.model_kwargs = dict(namespace.model_kwargs)  # create_model_from_args pops from it: use a copy
    resource = common.RESOURCE_MAP[version]
    model = radio_model.RADIOModel(
        radio_model.create_model_from_args(namespace),
        conditioner.get_default_conditioner(),
        patch_size=resource.patch_size,
        max_resolution=resource.max_resolution,
        preferred_resolution=resource.preferred_resolution,
        summary_idxs=_summary_idxs(namespace),
    )
    return RadioEncoder(_to_fp32(model))


def _to_fp32(model: nn.Module) -> nn.Module:
    model = model.float()
    model.input_conditioner.dtype = torch.float32  # the hub sets the checkpoint's dtype (bf16 for v2.1)
    return model


def radio_checkpoint(path: Path, backbone: nn.Module) -> dict[str, torch.Tensor]:
    """A RADIO `.pth.tar`, read by the authors' loader: `hubconf.radio_model(version=<file>)` from the clone."""
    repo = radio_repo()
    _import_radio(repo)
    loaded = torch.hub.load(str(repo), "radio_model", source="local", version=str(path), progress=False)
    return dict(_to_fp32(loaded).state_dict())
