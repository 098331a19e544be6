"""`nox -s screen -- encoder=a,b,... task=<task|suite|group> [protocol=...] [weights=...]`: cheap predictors of
the protocol score, from the demonstrations and the embedding cache only (no policy training, no rollouts).

Per encoder and task, on the protocol's training demos split by demonstration (the last fifth held out):

1. feature-norm entropy: the task's own (definition 1, `encoders.stats`) and, over all requested tasks,
   pooled (definition 2, as `nox -s entropy`): Theia (Shang et al., 2024, arXiv:2407.20179) reports that it
   correlates with CortexBench scores;
2. state probe: ridge regression from the frozen vector features to the simulator state (standardised),
   its regularisation chosen by 5-fold cross-validation over the training demos, held-out R^2 (Dong et al.,
   2026, arXiv:2602.04880, report that such a probe tracks policy success);
3. action probe: the same from the policy's input (fused history + proprioception) to the expert action,
   held-out R^2 and MSE;
4. nearest-neighbour action error: each held-out step takes the action of its nearest training step in that
   input (DynaMo's kNN probe, Cui et al., 2024, arXiv:2409.12192), MSE.

The state targets of rendered demos come from the same experts' demos collected without rendering (same
seeds, same trajectories: rendering does not touch the physics); TriFinger demos carry their cube state.
Records (`kind: screening`, never mixed with cell records) go to
`<results_dir>/screen/<protocol>/<label>/<task>.json`; a ranked table is printed and written to
`<results_dir>/screen/<protocol>/screening.md`, with a bar chart per proxy beside it (`screening.svg`). The
state reference (`encoder=state`) is the check that the probe works (its state R^2 is ~1); random-weight
encoders give the floor.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from encoders.storage import atomic_write_json, atomic_write_text
from experiments.leaderboard.collect import SCREENING_KIND, read_screening
from experiments.plan import Cell, check_cells, command_main, plan_sweep
from experiments.provenance import provenance
from experiments.settings import SettingError

RECORD_KIND = SCREENING_KIND
SCHEMA_VERSION = 1
HELD_OUT_FRACTION = 0.2
FOLDS = 5
RIDGE_LAMBDAS = tuple(10.0**k for k in range(-6, 6))  # on standardised features, per training sample
PROXIES = ("entropy", "entropy_pooled", "state_r2", "action_r2", "action_mse", "nn_action_mse")
HIGHER_IS_BETTER = {"entropy": True, "entropy_pooled": True, "state_r2": True, "action_r2": True}


def screen_path(results_dir: str | Path, protocol: str, label: str, task: str) -> Path:
    return Path(results_dir) / "screen" / protocol / label / f"{task}.json"


# --- the probes ----------------------------------------------------------------------------------------------
def split_by_demo(lengths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows) of the concatenated demo steps: the last fifth of the demos (at least one)
    is held out, whole, so no held-out step has a neighbour from its own trajectory in training."""
    n_held = max(1, round(len(lengths) * HELD_OUT_FRACTION))
    if len(lengths) - n_held < 1:
        raise SettingError(f"screening needs at least 2 demos ({len(lengths)} given): raise protocol.n_demos")
    cut = sum(lengths[: len(lengths) - n_held])
    rows = np.arange(sum(lengths))
    return rows[:cut], rows[cut:]


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return [(a - mean) / std for a in (train, *others)]


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Closed-form ridge on centred data: weights [D+1, T] (last row: intercept). `lam` is per sample."""
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - xm, y - ym
    gram = xc.T @ xc + lam * len(x) * np.eye(x.shape[1])
    w = np.linalg.solve(gram, xc.T @ yc)
    return np.vstack([w, ym - xm @ w])


def predict(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return x @ weights[:-1] + weights[-1]


def r2(y: np.ndarray, prediction: np.ndarray) -> float:
    """Held-out R^2 against predicting the training mean: 1 - SSE / SST, SST taken about the training mean (zero:
    targets are standardised on the training demos, so every dimension weighs the same). About the held-out
    mean instead, a dimension constant within an episode (a goal, an object's size) would have no variance in
    one held-out demo and sink the score."""
    sst = float((y**2).sum())
    return 1.0 - float(((y - prediction) ** 2).sum()) / sst if sst > 0 else float("nan")


def choose_lambda(x: np.ndarray, y: np.ndarray, demo_of_row: np.ndarray) -> float:
    """The ridge regularisation with the lowest mean squared error over FOLDS folds of whole training demos
    (with a single training demo, as in the smoke protocol: FOLDS contiguous blocks of its steps)."""
    if len(np.unique(demo_of_row)) < 2:
        demo_of_row = np.repeat(np.arange(FOLDS), [len(b) for b in np.array_split(demo_of_row, FOLDS)])
    demos = np.unique(demo_of_row)
    folds = np.array_split(demos, min(FOLDS, len(demos)))
    errors = []
    for lam in RIDGE_LAMBDAS:
        total = 0.0
        for fold in folds:
            test = np.isin(demo_of_row, fold)
            w = ridge(x[~test], y[~test], lam)
            total += float(((predict(w, x[test]) - y[test]) ** 2).sum())
        errors.append(total)
    return RIDGE_LAMBDAS[int(np.argmin(errors))]


def probe(x: np.ndarray, y: np.ndarray, train: np.ndarray, held: np.ndarray, demo_of_row: np.ndarray) -> dict:
    """Ridge probe x -> y: held-out R^2 and MSE (on standardised targets, so tasks and dimensions compare)."""
    keep = y[train].std(axis=0) > 1e-8  # a constant target dimension (e.g. a fixed goal) has nothing to explain
    xs_train, xs_held = _standardise(x[train], x[held])
    ys_train, ys_held = _standardise(y[train][:, keep], y[held][:, keep])
    lam = choose_lambda(xs_train, ys_train, demo_of_row[train])
    prediction = predict(ridge(xs_train, ys_train, lam), xs_held)
    return {
        "r2": r2(ys_held, prediction),
        "mse": float(((prediction - ys_held) ** 2).mean()),
        "lambda": lam,
        "target_dims": int(keep.sum()),
        "constant_dims_dropped": int((~keep).sum()),
    }


def nearest_neighbour_error(x: np.ndarray, y: np.ndarray, train: np.ndarray, held: np.ndarray) -> float:
    """MSE of the action of each held-out step's nearest training step (standardised inputs and actions)."""
    xs_train, xs_held = _standardise(x[train], x[held])
    ys_train, ys_held = _standardise(y[train], y[held])
    errors = []
    squared_train = (xs_train**2).sum(1)[None, :]
    for start in range(0, len(xs_held), 128):  # 128 x (training steps) distances at a time
        chunk = xs_held[start : start + 128]
        nearest = (squared_train - 2 * chunk @ xs_train.T).argmin(axis=1)  # |a|^2 is the same for every candidate
        errors.append(((ys_train[nearest] - ys_held[start : start + 128]) ** 2).mean(axis=1))
    return float(np.concatenate(errors).mean())


# --- one encoder x one task ----------------------------------------------------------------------------------
def demo_states(task, s, demos) -> tuple[np.ndarray | None, str]:
    """Every demo step's simulator state, and where it came from (None with the reason when there is none)."""
    from experiments.cells.features import cell_demos

    if all(d.states is not None for d in demos.demos):
        return np.concatenate([d.states for d in demos.demos]).astype(np.float64), "the demos' own states"
    if s.demo_source not in ("scripted", "expert"):
        return None, f"demos.source={s.demo_source} carries no simulator states"
    twins = cell_demos(task, s, render=False)  # the same experts, seeds and trajectories, not rendered
    if [len(d) for d in twins.demos] != [len(d) for d in demos.demos]:
        return None, "the state demos differ in length from the rendered ones"
    return np.concatenate([d.states for d in twins.demos]).astype(np.float64), "the experts' demos, not rendered"


def screen_task(encoder, cell: Cell) -> tuple[dict, np.ndarray | None]:
    """The screening record of one task (and the entropy sample's token norms, for the pooled value)."""
    import torch

    import tasks
    from encoders.cache import EmbeddingCache
    from encoders.state import sized_for
    from experiments.cells.features import cell_demos, demo_features, entropy_block
    from policies.fusion import fuse

    s = cell.settings
    task = tasks.get(s.task)
    encoder = sized_for(encoder, task)
    observation = encoder.observation
    extra = {"split": "train"} if task.suite == "trifinger" else {}
    start = time.perf_counter()
    demos = cell_demos(task, s, render=observation == "pixels", **extra)
    feats = demo_features(encoder, demos, "vector", s.history, EmbeddingCache(mode=s.cache), s.cache_dtype, s.progress)
    lengths = [len(d) for d in demos.demos]
    demo_of_row = np.repeat(np.arange(len(lengths)), lengths)
    train, held = split_by_demo(lengths)
    vectors = np.asarray(feats.embeddings, dtype=np.float64)
    fused = fuse(torch.from_numpy(np.asarray(feats.embeddings, dtype=np.float32)[feats.history_index]), s.fusion)
    policy_input = np.concatenate([fused.flatten(1).numpy(), feats.proprio], axis=1).astype(np.float64)
    actions = np.asarray(feats.actions, dtype=np.float64)
    states, states_from = demo_states(task, s, demos)
    state = probe(vectors, states, train, held, demo_of_row) if states is not None else None
    action = probe(policy_input, actions, train, held, demo_of_row)
    entropy = entropy_block(feats.norms, s.entropy_bins)
    record = {
        "kind": RECORD_KIND,
        "schema_version": SCHEMA_VERSION,
        "protocol": {"name": s.protocol},
        "label": cell.label,
        "task": {"name": task.name, "suite": task.suite, "version": task.version},
        "encoder": encoder.describe(),
        "demos": demos.describe(),
        "split": {
            "train_demos": len(lengths) - len(set(demo_of_row[held])),
            "held_out_demos": len(set(demo_of_row[held])),
        },
        "proxies": {
            "entropy": entropy["value"],
            "state_r2": state["r2"] if state else None,
            "action_r2": action["r2"],
            "action_mse": action["mse"],
            "nn_action_mse": nearest_neighbour_error(policy_input, actions, train, held),
        },
        "state_probe": (state or {}) | {"targets": states_from},
        "action_probe": action | {"input": f"fused history ({s.history}, {s.fusion}) + proprio", "target": "action"},
        "feature_norm_entropy": entropy,
        "timing": {"total": round(time.perf_counter() - start, 3), "embed_cache_hit": feats.cache.get("hit")},
        "provenance": provenance(str(encoder.device)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return record, feats.norms


# --- the command ---------------------------------------------------------------------------------------------
def one_cell_per_task(cells: list[Cell]) -> dict[str, list[Cell]]:
    """label -> one cell per task (demos do not depend on the seed), in planning order."""
    by_label: dict[str, dict[str, Cell]] = defaultdict(dict)
    for cell in cells:
        by_label[cell.label].setdefault(cell.settings.task, cell)
    return {label: list(tasks.values()) for label, tasks in by_label.items()}


def ranked_table(records: list[dict]) -> str:
    """Markdown: one row per encoder label, each proxy's mean over the tasks screened, ranked by state R^2."""
    by_label: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_label[record["label"]].append(record)
    columns = ("entropy_pooled", "entropy", "state_r2", "action_r2", "action_mse", "nn_action_mse")

    def mean(label: str, key: str) -> float | None:
        values = [r["proxies"].get(key) for r in by_label[label]]
        values = [v for v in values if v is not None and np.isfinite(v)]
        return float(np.mean(values)) if values else None

    order = sorted(by_label, key=lambda label: -(mean(label, "state_r2") or -np.inf))
    lines = [
        "| rank | encoder | tasks | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for rank, label in enumerate(order, 1):
        values = [mean(label, key) for key in columns]
        text = ["n/a" if v is None else f"{v:.4f}" for v in values]
        lines.append(f"| {rank} | `{label}` | {len(by_label[label])} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


def plot(records: list[dict], path: Path) -> None:
    """One panel per proxy: each encoder's mean over its tasks (horizontal bars), as an SVG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    by_label: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_label[record["label"]].append(record)
    labels = sorted(by_label)
    fig, axes = plt.subplots(1, len(PROXIES), figsize=(2.4 * len(PROXIES), 0.35 * len(labels) + 1.2), sharey=True)
    for ax, proxy in zip(axes, PROXIES, strict=True):
        values = [[r["proxies"].get(proxy) for r in by_label[label]] for label in labels]
        means = [
            float(np.mean([v for v in vs if v is not None])) if any(v is not None for v in vs) else 0.0 for vs in values
        ]
        ax.barh(range(len(labels)), means, color="#1f77b4")
        ax.set_title(proxy + (" (lower is better)" if proxy.endswith("mse") else ""), fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(axis="x", linewidth=0.3)
    axes[0].set_yticks(range(len(labels)), labels)
    fig.tight_layout()
    with matplotlib.rc_context({"svg.hashsalt": "cortexbench-screen"}):
        fig.savefig(path, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)


def screen(argv: list[str]) -> list[dict]:
    import encoders
    from encoders.stats import pooled_entropy_record

    if not any(a.startswith("task=") for a in argv):
        raise SystemExit("error: name the tasks to screen: task=<task|suite|group> (e.g. task=metaworld)")
    group = next(a.split("=", 1)[1] for a in argv if a.startswith("task="))
    by_label = one_cell_per_task(plan_sweep(argv, weights_required=True))
    check_cells([c for cells in by_label.values() for c in cells])
    written = []
    for label, cells in by_label.items():
        first = cells[0].settings
        encoder = encoders.load(first.encoder, weights=cells[0].weights, device=first.device)
        records, norms = [], {}
        for cell in cells:
            record, task_norms = screen_task(encoder, cell)
            records.append(record)
            if task_norms is not None:
                norms[cell.settings.task] = task_norms
            p = record["proxies"]
            state = "n/a" if p["state_r2"] is None else f"{p['state_r2']:.3f}"
            print(
                f"[screen] {label} {cell.settings.task}: state R2 {state}, action R2 {p['action_r2']:.3f}, "
                f"action MSE {p['action_mse']:.3f}, NN action MSE {p['nn_action_mse']:.3f}",
                flush=True,
            )
        pooled = pooled_entropy_record(norms, first.entropy_bins)["value"] if norms else None
        for cell, record in zip(cells, records, strict=True):
            record["proxies"]["entropy_pooled"] = pooled
            record["entropy_pooled_over"] = {"group": group, "tasks": sorted(norms)}
            path = screen_path(first.results_dir, first.protocol, label, cell.settings.task)
            atomic_write_json(path, record)
            written.append(record | {"_path": str(path)})
    protocol = written[0]["protocol"]["name"]
    results_dir = Path(by_label[next(iter(by_label))][0].settings.results_dir)
    every = [r for r in read_screening(results_dir / "screen" / protocol)]
    table = ranked_table(every)
    atomic_write_text(results_dir / "screen" / protocol / "screening.md", SCREEN_HEADER + table)
    plot(every, results_dir / "screen" / protocol / "screening.svg")
    print(table, end="")
    return written


SCREEN_HEADER = (
    "<!-- Written by `nox -s screen`: every screening record under this folder. -->\n\n"
    "# Screening\n\nMeans over the tasks each encoder was screened on (held-out demos; MSE on standardised "
    "actions). Not a protocol score: see the leaderboard's screening section for how well each proxy ranks "
    "encoders like the protocol does.\n\n"
)


def main(argv: list[str] | None = None) -> int:
    return command_main(screen, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
