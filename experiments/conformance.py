"""The conformance stamp: whether a cell ran its protocol as the protocol file defines it, and if not, how not.

One function (`stamp`) computes it for every record, from the resolved config the cell ran with, compared
with the protocol file composed without overrides. A deviation is anything that can change the score:
  - a protocol knob that differs from the protocol file (`protocol.epochs=2`, `protocol.trifinger.lr=...`);
  - demonstrations other than the protocol's (`demos.source=scripted` under `cortexbench`);
  - a render quality other than the protocol's (`render_quality=fast`);
  - a policy other than the protocol's (`policy=bc-conv` under `cortexbench`);
  - weights other than the released ones (`weights=random`, or a file that is not the pinned checkpoint);
  - embeddings stored in half precision (`cache_dtype=float16`), a non-standard entropy binning;
  - official demo frames whose gap to our renderer is above the documented threshold (`demos.frame_gap`).
Only conforming records stand beside published rows in the leaderboard; the others are shown in sections
headed by their deviations and never averaged with conforming ones. docs/protocols.md lists the known
deviations of each conforming protocol itself from the reference code.
"""

from __future__ import annotations

import functools
from pathlib import Path

from omegaconf import OmegaConf

from encoders.stats import DEFAULT_BINS

STAMP_VERSION = 1


PROTOCOL_DIR = Path(__file__).resolve().parent / "conf" / "protocol"


@functools.cache
def protocol_file(name: str, folder: Path = PROTOCOL_DIR) -> dict:
    """The protocol as its file defines it, without overrides: the file merged onto its `defaults` chain in
    order (`_self_` last unless placed), as Hydra composes a config group option. Read with OmegaConf, not
    Hydra's compose, so it also works inside a running Hydra job."""
    raw = OmegaConf.load(folder / f"{name}.yaml")
    chain = list(raw.pop("defaults", None) or [])
    if "_self_" not in chain:
        chain.append("_self_")
    merged = OmegaConf.create({})
    for entry in chain:
        merged = OmegaConf.merge(merged, raw if entry == "_self_" else protocol_file(str(entry), folder))
    return OmegaConf.to_container(merged, resolve=True)


def _differences(ran: object, defined: object, key: str) -> list[str]:
    if isinstance(ran, dict) and isinstance(defined, dict):
        out = []
        for k in sorted(set(ran) | set(defined), key=str):
            out += _differences(ran.get(k), defined.get(k), f"{key}.{k}")
        return out
    return [] if ran == defined else [f"{key}={_show(ran)} (protocol file: {_show(defined)})"]


def _show(value: object) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(_show, value)) + "]"
    return "null" if value is None else str(value)


def deviations(config: dict, settings, weights_kind: str, demos: dict | None = None) -> list[str]:
    """Every way this cell's run differs from its protocol file (empty: it conforms)."""
    protocol = config["protocol"]
    found = _differences(protocol, protocol_file(protocol["name"]), "protocol")
    if settings.demo_source != protocol.get("demo_source"):  # the settings': the state reference may switch it
        found.append(f"demos.source={settings.demo_source} (protocol: {protocol.get('demo_source')})")
    quality = config.get("render_quality")
    if quality is not None and quality != protocol.get("render_quality"):
        found.append(f"render_quality={quality} (protocol: {protocol.get('render_quality')})")
    if settings.policy != settings.default_policy:
        found.append(f"policy={settings.policy} (protocol: {settings.default_policy})")
    if weights_kind == "random":
        found.append("weights=random (the protocol evaluates the released weights)")
    elif weights_kind == "path":
        found.append("weights from a file, not the registry's released checkpoint")
    if settings.cache_dtype != "float32":
        found.append(f"cache_dtype={settings.cache_dtype} (embeddings stored in reduced precision)")
    if settings.entropy_bins != DEFAULT_BINS:
        found.append(f"entropy_bins={settings.entropy_bins} (definition: {DEFAULT_BINS})")
    gap = (demos or {}).get("frame_gap") or {}
    if isinstance(gap, dict) and gap.get("above_limit"):
        found.append(f"official demo frames differ from our renderer (frame gap {gap.get('mean_abs_diff')})")
    return found


def stamp(record: dict, settings, weights_kind: str) -> dict:
    """The record's `conformance` block. Without the resolved config (a cell run from Python with
    config=None), conformance cannot be shown and the record does not conform."""
    config = (record.get("provenance") or {}).get("config")
    if not config:
        found = ["no resolved config recorded (run through `nox -s eval` to stamp conformance)"]
    else:
        found = deviations(config, settings, weights_kind, record.get("demos"))
    return {
        "version": STAMP_VERSION,
        "protocol": settings.protocol,
        "conforms": not found,
        "deviations": found,
    }
