"""`nox -s entropy -- encoder=<name> [task=mujoco] [protocol=...] [weights=...]`: the pooled feature-norm
entropy of an encoder (definition 2, the Theia paper's per-model statistic), written as its own record.

For every task of the group (default: the 12 MuJoCo tasks of the Theia paper), the training demos are
loaded as the protocol's cells load them and embedded through the shared embedding cache (so a later
`nox -s eval` with the same settings reuses the embeddings, and the other way round); the seeded 1%
token-norm samples of all tasks then go into one histogram (`encoders.stats.pooled_entropy_record`).
The record, with the histogram and every task's own (v1) value, lands in
`<results_dir>/entropy/<protocol>/<encoder label>/<group>.json`; the leaderboard's entropy-score
analysis reads it. It uses the eval session's settings and checks (`key=value`, exit code 2 for bad input).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import OmegaConf

from encoders.cache import EmbeddingCache
from encoders.stats import pooled_entropy_record
from encoders.storage import atomic_write_json
from experiments.conformance import deviations
from experiments.plan import Cell, check_cells, command_main, compose_jobs, plan_sweep
from experiments.provenance import provenance
from experiments.settings import SettingError
from policies import get_policy

RECORD_KIND = "feature-norm-entropy-pooled"
SCHEMA_VERSION = 1
DEFAULT_GROUP = "mujoco"


def entropy_path(results_dir: str | Path, protocol: str, label: str, group: str) -> Path:
    return Path(results_dir) / "entropy" / protocol / label / f"{group.replace(',', '+')}.json"


def one_cell_per_task(cells: list[Cell]) -> list[Cell]:
    """Demos do not depend on the seed: the first planned cell of each task stands for it."""
    return list({cell.settings.task: cell for cell in reversed(cells)}.values())[::-1]


def pooled_entropy(argv: list[str]) -> dict:
    import encoders
    import tasks
    from experiments.cells.features import cell_demos, embed_demos

    if not any(a.startswith("task=") for a in argv):
        argv = [*argv, f"task={DEFAULT_GROUP}"]
    group = next(a.split("=", 1)[1] for a in argv if a.startswith("task="))
    cells = one_cell_per_task(plan_sweep(argv, weights_required=True))
    if encoders.get_spec(cells[0].settings.encoder).input == "state":
        raise SettingError("encoder=state: the state reference has no feature norms, so no entropy (n/a)")
    check_cells(cells)
    first = cells[0]
    config = OmegaConf.to_container(compose_jobs([list(first.overrides)])[0], resolve=True)
    encoder = encoders.load(first.settings.encoder, weights=first.weights, device=first.settings.device)
    norms, demos_used = {}, {}
    for cell in cells:
        s = cell.settings
        task = tasks.get(s.task)
        kwargs = {"split": "train"} if task.suite == "trifinger" else {}
        demos = cell_demos(task, s, **kwargs)
        kind = get_policy(s.policy).input_kind  # the cells' cache entry, shared with `nox -s eval`
        _, norms[s.task], _ = embed_demos(
            encoder, demos, kind, EmbeddingCache(mode=s.cache), s.cache_dtype, progress=s.progress
        )
        demos_used[s.task] = demos.describe()
        print(f"[entropy] {s.task}: {len(norms[s.task])} sampled frames", flush=True)
    found = deviations(config, first.settings, first.weights.kind)
    record = {
        "kind": RECORD_KIND,
        "schema_version": SCHEMA_VERSION,
        "protocol": {"name": first.settings.protocol},
        "group": group,
        "label": first.label,
        "encoder": encoder.describe(),
        "feature_norm_entropy": pooled_entropy_record(norms, first.settings.entropy_bins),
        "demos": demos_used,
        "conformance": {"protocol": first.settings.protocol, "conforms": not found, "deviations": found},
        "provenance": provenance(str(encoder.device)) | {"config": config},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = entropy_path(first.settings.results_dir, first.settings.protocol, first.label, group)
    atomic_write_json(path, record)
    value = record["feature_norm_entropy"]["value"]
    print(f"[entropy] {first.label} on {group} ({len(cells)} tasks): {value:.4f} nats -> {path}", flush=True)
    return record | {"_path": str(path)}


def main(argv: list[str] | None = None) -> int:
    return command_main(pooled_entropy, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
