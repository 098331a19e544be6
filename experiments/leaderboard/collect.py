"""The leaderboard's inputs besides the published numbers: run records and the protocols' headline selection.

- Records are read from `<runs>/<protocol>/<label>/<task>/seed=<seed>.json` and checked with
  `experiments.records.validate` (unknown schema versions are rejected). A record that cannot be used is
  reported by path and skipped; the others still count. Only `status: ok` records become a `Run`;
  failed ones are kept as a `Problem` so that the tables can list them.
- A protocol's configured headline selection is the `headline` of its config file, following its
  `defaults` chain; records that carry `scores.headline` take precedence (decided in `build`).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from experiments.records import SCHEMA_VERSION, validate

SELECTIONS = ("best", "final")  # the two evaluations every record scores (`scores.best`, `scores.final`)
PROTOCOL_CONFIGS = "experiments/conf/protocol"  # where the protocols are configured, relative to the repository


@dataclass(frozen=True)
class Run:
    """One ok record, reduced to what the leaderboard uses."""

    path: Path
    protocol: str
    label: str
    encoder: str
    task: str
    suite: str
    version: object
    seed: int
    best: float
    final: float
    headline: str | None
    entropy: float | None
    deviations: tuple[str, ...] = ()  # from the record's conformance stamp; () = conforms to its protocol
    demo_score: float | None = None  # the task score of the cell's own demonstrations (`demo_score`)
    per_eval: tuple[tuple[float, float], ...] = ()  # (epoch, score) of every evaluation, for learning curves


@dataclass(frozen=True)
class Problem:
    """A record that was not aggregated, or a group that was not averaged, and why."""

    kind: str  # malformed | failed | mixed-versions | conflict
    path: str  # relative to the runs folder
    message: str


@dataclass
class Collection:
    """What `collect` found under a runs folder: the usable runs, the problems, and how many record files."""

    runs: list[Run] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse(path: Path, rel: str) -> Run | Problem:
    """A record file -> Run, or the Problem that keeps it out."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return Problem("malformed", rel, f"not readable JSON ({type(err).__name__}: {err})")
    if not isinstance(record, dict):
        return Problem("malformed", rel, "not a JSON object")
    if record.get("schema_version") != SCHEMA_VERSION:
        return Problem(
            "malformed",
            rel,
            f"schema_version {record.get('schema_version')!r} is not {SCHEMA_VERSION}, the version this "
            "leaderboard reads; rerun the cell with this harness (overwrite=true)",
        )
    issues = validate(record)
    if issues:
        return Problem("malformed", rel, "; ".join(issues))
    parts = Path(rel).parts
    if len(parts) != 4 or not parts[3].startswith("seed="):
        return Problem("malformed", rel, "not at <protocol>/<label>/<task>/seed=<seed>.json")
    protocol, label, task_dir, _ = parts
    try:
        task, encoder, scores = record["task"], record["encoder"], record["scores"]
        names = (record["protocol"]["name"], task["name"], task["suite"], encoder["name"])
    except (KeyError, TypeError) as err:
        return Problem("malformed", rel, f"missing protocol.name, task.name/suite or encoder.name ({err})")
    if record["status"] == "failed":
        error = record.get("error") or {}
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        kind = error.get("type", "error") if isinstance(error, dict) else "error"
        first_line = (str(message).strip().splitlines() or [""])[0][:160]
        return Problem("failed", rel, f"{kind}: {first_line}".rstrip(": "))
    if (names[0], names[1]) != (protocol, task_dir):
        return Problem(
            "malformed", rel, f"the record says protocol {names[0]!r} task {names[1]!r}; its path says otherwise"
        )
    if not isinstance(scores, dict) or not all(_finite(scores.get(k)) for k in SELECTIONS):
        return Problem("malformed", rel, "status ok but scores.best / scores.final are not finite numbers")
    if not isinstance(record.get("seed"), int) or parts[3] != f"seed={record['seed']}.json":
        return Problem("malformed", rel, f"seed {record.get('seed')!r} does not match the file name")
    entropy = record.get("feature_norm_entropy")
    entropy = entropy.get("value") if isinstance(entropy, dict) else None
    return Run(
        deviations=deviations_of(record),
        path=path,
        protocol=protocol,
        label=label,
        encoder=str(names[3]),
        task=str(names[1]),
        suite=str(names[2]),
        version=task.get("version"),
        seed=record["seed"],
        best=float(scores["best"]),
        final=float(scores["final"]),
        headline=scores.get("headline") or (record["protocol"] or {}).get("headline"),
        entropy=float(entropy) if _finite(entropy) else None,
        demo_score=demo_score(record),
        per_eval=tuple((float(e), float(v)) for e, v in scores.get("per_eval") or () if _finite(e) and _finite(v)),
    )


def demo_score(record: dict) -> float | None:
    """The score the cell's demonstrations themselves get on the task's metric (0-100): the ceiling imitation is
    measured against. Success-scored tasks: the demos' success rate; DMC: their mean return / 10; TriFinger:
    their mean final scaled success. None when the record's demo block does not say."""
    demos = record.get("demos") if isinstance(record.get("demos"), dict) else {}
    metric = (record.get("scores") or {}).get("metric")
    if metric == "return_div_10":
        value, scale = demos.get("mean_return"), 0.1
    elif metric == "scaled_success":
        value, scale = demos.get("mean_scaled_success"), 100.0
    else:
        value, scale = demos.get("success_rate"), 100.0
    return float(value) * scale if _finite(value) else None


NOT_STAMPED = "conformance not recorded (a record older than the conformance stamp: rerun it)"


def deviations_of(record: dict) -> tuple[str, ...]:
    """The record's deviations from its protocol; a record without a stamp cannot be shown to conform."""
    stamp = record.get("conformance")
    if not isinstance(stamp, dict) or not isinstance(stamp.get("deviations"), list):
        return (NOT_STAMPED,)
    if stamp.get("conforms") is True and not stamp["deviations"]:
        return ()
    return tuple(str(d) for d in stamp["deviations"]) or ("marked as not conforming",)


STDERR = "stderr"  # resolved when called, so that redirected streams (pytest's capsys) are honoured


def collect(runs_dir: str | Path, warn=STDERR) -> Collection:
    """Every record under `runs_dir`; unusable ones are reported (by path, on `warn`: a stream, STDERR or
    None) and skipped."""
    warn = sys.stderr if warn == STDERR else warn
    runs_dir = Path(runs_dir)
    out = Collection()
    if not runs_dir.is_dir():
        return out
    for path in sorted(runs_dir.rglob("seed=*.json")):
        out.files += 1
        rel = path.relative_to(runs_dir).as_posix()
        parsed = _parse(path, rel)
        if isinstance(parsed, Problem):
            out.problems.append(parsed)
            if warn is not None and parsed.kind == "malformed":
                print(f"leaderboard: skipped {path}: {parsed.message}", file=warn)
        else:
            out.runs.append(parsed)
    return out


POOLED_KIND = "feature-norm-entropy-pooled"  # records of `nox -s entropy` (experiments.entropy)
PREFERRED_GROUP = "mujoco"  # the Theia paper's pooled statistic is over the 12 MuJoCo tasks


def collect_pooled_entropy(folder: str | Path, warn=STDERR) -> dict[tuple[str, str], tuple[float, str]]:
    """(protocol, label) -> (pooled feature-norm entropy, group) from `<folder>/<protocol>/<label>/<group>.json`;
    where a label has several groups, `mujoco` is used, else the first by name. Unreadable files are reported."""
    warn = sys.stderr if warn == STDERR else warn
    folder = Path(folder)
    found: dict[tuple[str, str], tuple[float, str]] = {}
    for path in sorted(folder.glob("*/*/*.json"), key=lambda p: (p.stem != PREFERRED_GROUP, p.as_posix())):
        protocol, label = path.parent.parent.name, path.parent.name
        try:
            record = json.loads(path.read_text())
            block = record["feature_norm_entropy"]
            value, group = float(block["value"]), str(record["group"])
            if record.get("kind") != POOLED_KIND or not math.isfinite(value):
                raise ValueError(f"not a {POOLED_KIND} record with a finite value")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
            if warn is not None:
                print(f"leaderboard: skipped {path}: {type(err).__name__}: {err}", file=warn)
            continue
        found.setdefault((protocol, label), (value, group))
    return found


def protocol_headlines(protocol_dir: Path) -> dict[str, str]:
    """Protocol name -> the `headline` of `<protocol_dir>/<name>.yaml`, following its `defaults` chain
    (protocols that name none are left out)."""
    headlines = {}
    for path in sorted(protocol_dir.glob("*.yaml")):
        headline = _headline(path.stem, protocol_dir)
        if headline is not None:
            headlines[path.stem] = headline
    return headlines


def _headline(protocol: str, protocol_dir: Path) -> str | None:
    seen = set()
    queue = [protocol]
    while queue:
        name = queue.pop(0)
        path = protocol_dir / f"{name}.yaml"
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        cfg = OmegaConf.to_container(OmegaConf.load(path))
        if cfg.get("headline"):
            return str(cfg["headline"])
        queue += [d for d in cfg.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    return None


SCREENING_KIND = "screening"  # `nox -s screen` records (experiments/screen.py), never mixed with cell records


def read_screening(folder: str | Path, warn=STDERR) -> list[dict]:
    """Every screening record under `folder` (<label>/<task>.json); unreadable ones are reported and skipped."""
    warn = sys.stderr if warn == STDERR else warn
    records = []
    for path in sorted(Path(folder).glob("*/*.json")):
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or record.get("kind") != SCREENING_KIND:
                raise ValueError(f"not a {SCREENING_KIND} record")
            if not isinstance(record.get("proxies"), dict) or not isinstance(record.get("task"), dict):
                raise ValueError("no proxies or task block")
        except (OSError, UnicodeDecodeError, ValueError) as err:
            if warn is not None:
                print(f"screening: skipped {path}: {type(err).__name__}: {err}", file=warn)
            continue
        records.append(record)
    return records


def collect_screening(folder: str | Path | None, warn=STDERR) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """protocol -> proxy -> label -> task -> value, from `<folder>/<protocol>/<label>/<task>.json` (finite values
    only; the label is the record's folder, as for run records)."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    if folder is None or not Path(folder).is_dir():
        return out
    for protocol_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        for record in read_screening(protocol_dir, warn):
            label, task = str(record.get("label")), str(record["task"].get("name"))
            for proxy, value in record["proxies"].items():
                if _finite(value):
                    out.setdefault(protocol_dir.name, {}).setdefault(proxy, {}).setdefault(label, {})[task] = float(
                        value
                    )
    return out
