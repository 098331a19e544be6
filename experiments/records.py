"""Run records: one JSON file per cell (protocol x encoder x task x policy x seed), written atomically.

Path: `<results_dir>/runs/<protocol>/<label>/<task>/seed=<seed>.json`, where `label` is the encoder
name, with `@random` or `@file-<sha8>` when the weights are not the released ones, and `+<policy>`
when the policy is not the protocol's default. A cell whose record exists with status ok is skipped
unless `overwrite=true`; that is how sweeps resume.
"""

from __future__ import annotations

import json
from pathlib import Path

from encoders.storage import atomic_write_json

SCHEMA_VERSION = 1
REQUIRED_FIELDS = (
    "schema_version",
    "status",
    "error",
    "encoder",
    "task",
    "protocol",
    "policy",
    "seed",
    "scores",
    "episodes",
    "feature_norm_entropy",
    "timing",
    "provenance",
)


def encoder_label(encoder: str, weights_kind: str, weights_sha256: str | None, policy: str, default_policy: str) -> str:
    label = encoder
    if weights_kind == "random":
        label += "@random"
    elif weights_kind == "path":
        label += f"@file-{(weights_sha256 or 'unknown')[:8]}"
    if policy != default_policy:
        label += f"+{policy}"
    return label


def record_path(results_dir: str | Path, protocol: str, label: str, task: str, seed: int) -> Path:
    return Path(results_dir) / "runs" / protocol / label / task / f"seed={seed}.json"


def cell_record_path(settings, weights) -> Path:
    """Where the record of a cell (`experiments.settings.CellSettings`) run with resolved `weights` lives."""
    s = settings
    label = encoder_label(s.encoder, weights.kind, weights.sha256, s.policy, s.default_policy)
    return record_path(s.results_dir, s.protocol, label, s.task, s.seed)


def write_record(path: Path, record: dict) -> None:
    """Write the record atomically (`encoders.storage`): readers never see half a record."""
    atomic_write_json(path, record)


def lock_path(path: Path) -> Path:
    """The lock a job holds while it runs the cell whose record is `path` (`encoders.storage`): a second
    job asked for the same cell skips it instead of running it twice, and `nox -s status` shows it running."""
    return path.with_name(f".{path.name}.lock")


def resume_path(path: Path) -> Path:
    """Where a cell whose record is `path` keeps its training progress until the record is written
    (`experiments.cells.resume`)."""
    return path.with_name(f".{path.name}.resume")


def inspect_record(path: Path) -> tuple[dict | None, str | None]:
    """(record, None) for a readable record; (None, None) when there is none; (None, problem) when the file
    is corrupt: not UTF-8, not JSON (e.g. truncated), not a JSON object, or an ok record missing fields."""
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, NotADirectoryError):  # no record (or results_dir is a file: checked when planning)
        return None, None
    except IsADirectoryError:
        return None, "is a folder, not a record file"
    try:
        record = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except json.JSONDecodeError as err:
        return None, f"is not valid JSON ({err.msg} at line {err.lineno}; truncated?)" if data.strip() else "is empty"
    if not isinstance(record, dict):
        return None, f"holds a JSON {type(record).__name__}, not a record object"
    if (
        record.get("status") == "ok"
        and record.get("schema_version") == SCHEMA_VERSION
        and (problems := validate(record))
    ):
        return None, "is an ok record with " + ", ".join(problems)
    return record, None


def read_record(path: Path) -> dict | None:
    """The record at `path`, or None when there is none or it is corrupt (`inspect_record` says why)."""
    return inspect_record(path)[0]


def failed_rerun_path(path: Path) -> Path:
    """Where a failed rerun of a cell that has an ok record goes: beside it, so the ok record is never lost."""
    return path.with_name(f".{path.name}.failed")


def read_ok_record(path: Path) -> dict | None:
    """The record at `path` when it is finished (status ok, current schema), else None."""
    record = read_record(path)
    if isinstance(record, dict) and record.get("status") == "ok" and record.get("schema_version") == SCHEMA_VERSION:
        return record
    return None


def is_done(path: Path) -> bool:
    return read_ok_record(path) is not None


def validate(record: dict) -> list[str]:
    """Problems with a record's shape (empty list when it is well formed)."""
    problems = [f"missing field {k!r}" for k in REQUIRED_FIELDS if k not in record]
    if record.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version {record.get('schema_version')!r} is not {SCHEMA_VERSION}")
    if record.get("status") not in ("ok", "failed"):
        problems.append(f"status {record.get('status')!r} is not ok/failed")
    return problems
