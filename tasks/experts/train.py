"""Train or measure the offline experts: `python -m tasks.experts.train task=<task|suite> [key=value ...]`.

    task=dmc-cheetah-run            train (seeded), save tasks/experts/params/<task>.npz, then measure it
                                    (scripted experts: measure, and record it in params/<task>.json)
    task=dmc train=false            measure the shipped experts only
    task=dmc train=false record=true   ... and store the measurement with them (parameters untouched)
    episodes=10                     evaluation episodes (seeds 10000, 10001, ...: the demo seeds)
    iterations=... seed=... (any ARSConfig field)   override the task's recipe
    out=<folder>                    write parameters elsewhere (default: the package's params folder)

The measurement runs the expert exactly as demo collection does (same env, horizon, seeds), without
rendering, and prints the mean return, the task's score and, where the metric has one, success.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

import tasks
from encoders.lookup import parse_key_values
from encoders.storage import atomic_write_bytes
from tasks.demos import SCRIPTED_SEED_BASE
from tasks.experts import as_expert, load_expert, params_path
from tasks.experts.ars import ARSConfig, LinearPolicy, episode_return, train_ars
from tasks.experts.recipes import recipe
from tasks.metrics import Episode, episode_value
from tasks.spec import TaskSpec

ARS_EVAL_SEED_BASE = 20_000  # model selection during training: neither demo nor evaluation seeds


def _state_env(spec: TaskSpec, horizon: int | None = None):
    return spec.suite_module().make_env(
        spec, render_size=64, quality="fast", horizon=horizon or spec.horizon, render=False
    )


def measure(spec: TaskSpec, expert, episodes: int, seed_base: int = SCRIPTED_SEED_BASE) -> dict:
    """Run `expert(obs) -> action` for `episodes` seeded episodes of the task's horizon, as demo collection does."""
    env = _state_env(spec)
    returns, values, successes = [], [], []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed_base + i)
            rewards, infos = [], {}
            for _ in range(spec.horizon):
                obs, reward, terminated, truncated, info = env.step(expert(obs))
                rewards.append(reward)
                for k, v in info.items():
                    infos.setdefault(k, []).append(float(v))
                if terminated or truncated:
                    break
            ep = Episode(seed_base + i, np.asarray(rewards), {k: np.asarray(v) for k, v in infos.items()})
            returns.append(ep.total_return)
            values.append(episode_value(spec.metric, ep))
            if spec.metric != "return_div_10":
                successes.append(values[-1] / 100.0)
    finally:
        env.close()
    return {
        "episodes": episodes,
        "seeds": [seed_base, seed_base + episodes - 1],
        "returns": [float(r) for r in returns],
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "score": float(np.mean(values)),
        "metric": spec.metric,
        "success_rate": float(np.mean(successes)) if successes else None,
    }


def _format(spec: TaskSpec, m: dict) -> str:
    text = f"{spec.name}: mean return {m['mean_return']:.1f} ± {m['std_return']:.1f} over {m['episodes']} episodes"
    text += f" (seeds {m['seeds'][0]}-{m['seeds'][1]}), score {m['score']:.1f} ({m['metric']})"
    if m["success_rate"] is not None:
        text += f", success {100 * m['success_rate']:.0f}%"
    return text


def train(spec: TaskSpec, overrides: dict, episodes: int, out: Path | None = None) -> Path:
    """Train the task's ARS expert with its recipe (+ overrides), save it atomically with its measurement."""
    r = recipe(spec)
    if r.kind == "scripted":  # nothing to train: measure the controller and record what it does
        measured = measure(spec, load_expert(spec), episodes)
        path = (out / f"{spec.name}.json") if out else params_path(spec).with_suffix(".json")
        meta = {"task": spec.name, "kind": r.kind, "description": r.description, "measured": measured}
        atomic_write_bytes(path, (json.dumps(meta, indent=1) + "\n").encode())
        path.chmod(0o644)  # a package file, not a private temp file
        print(f"{spec.name} is scripted; measured and recorded in {path}\n  {_format(spec, measured)}", flush=True)
        return path
    config = dataclasses.replace(r.config, **overrides)
    env = _state_env(spec, config.train_horizon)
    eval_env = _state_env(spec)

    def evaluate(policy: LinearPolicy) -> float:
        seeds = range(ARS_EVAL_SEED_BASE, ARS_EVAL_SEED_BASE + config.eval_episodes)
        return float(np.mean([episode_return(eval_env, policy, s, spec.horizon) for s in seeds]))

    print(f"training {spec.name}: {config}", flush=True)
    start = time.perf_counter()
    policy, history = train_ars(env, config, evaluate, log=lambda line: print(f"  {spec.name} {line}", flush=True))
    seconds = round(time.perf_counter() - start, 1)
    env.close()
    eval_env.close()
    measured = measure(spec, as_expert(policy), episodes)
    meta = {
        "task": spec.name,
        "task_version": spec.version,
        "kind": r.kind,
        "config": config.as_dict(),
        "train_seconds": seconds,
        "history": history,
        "measured": measured,
        "command": f"nox -s experts -- task={spec.name}",
    }
    path = (out / f"{spec.name}.npz") if out else params_path(spec)
    buffer = io.BytesIO()
    np.savez(buffer, **policy.arrays(), meta=np.asarray(json.dumps(meta)))
    atomic_write_bytes(path, buffer.getvalue())
    path.chmod(0o644)
    print(f"saved {path} ({seconds:.0f} s of training)\n  {_format(spec, measured)}", flush=True)
    return path


def rerecord(spec: TaskSpec, episodes: int) -> None:
    """Measure the shipped expert again and store that measurement with it (parameters untouched):
    for when the measuring code changes, so the recorded numbers stay those the shipped expert gives."""
    if recipe(spec).kind == "scripted":
        train(spec, {}, episodes)
        return
    path = params_path(spec)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta["measured"] = measure(spec, load_expert(spec), episodes)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, meta=np.asarray(json.dumps(meta)))
    atomic_write_bytes(path, buffer.getvalue())
    path.chmod(0o644)
    print(f"re-measured {path}\n  {_format(spec, meta['measured'])}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    fields = {f.name: f.type for f in dataclasses.fields(ARSConfig)}
    defaults = {"task": "", "episodes": 10, "train": True, "record": False, "out": "", **dict.fromkeys(fields)}
    args = parse_key_values(argv, defaults, "nox -s experts --")
    if not args["task"]:
        raise SystemExit("error: task=<task or suite> is required, e.g. task=dmc-cheetah-run")
    names = tasks.expand(args["task"])
    episodes, do_train, record = args["episodes"], args["train"], args["record"]
    out = Path(args["out"]) if args["out"] else None
    try:
        overrides = {
            k: (float(args[k]) if fields[k] == "float" else int(args[k])) for k in fields if args[k] is not None
        }
    except ValueError as err:
        raise SystemExit(f"error: a recipe override is not a number ({err})") from None
    for name in names:
        spec = tasks.get(name)
        spec.require_simulator()
        if do_train:
            train(spec, overrides, episodes, out)
        elif record:
            rerecord(spec, episodes)
        else:
            print(_format(spec, measure(spec, load_expert(spec), episodes)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
