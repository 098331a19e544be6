"""`nox -s bench -- encoder=theia-tiny weights=random task=metaworld-assembly`: where evaluation time goes.

Measured in one run, on the same frames and machine, so the ratios mean something; every rate is the median of
`repeats` measurements (default 3) with their min and max beside it, and the JSON carries the git commit and
package versions (`provenance`):
- encoder-only throughput (batched forward over rendered frames), at the encoder's default batch size and at
  each of `batch_sizes` (the table to read on a GPU machine: `device=cuda`);
- environment-only throughput (step + render, the same worker pool the harness uses), and what renders
  (the OpenGL renderer string: Mesa's llvmpipe on a CPU, the GPU's driver where MuJoCo renders on a GPU);
- the harness's evaluation throughput, overlapped (`eval_groups`: one env group steps while the encoder runs
  on the other) and lockstep (one group), against the bound an overlapped loop can reach, min(encoder, env);
- peak resident memory of the pool's workers and of this process (a `cortexbench` cell's evaluation pool);
- a reference-style loop as eai-vc runs it: one environment, a PIL round-trip and a batch-1 forward
  per step (`FrozenEmbeddingWrapper.observation`), and per-seed demo re-encoding with per-frame PIL
  transforms in chunks of 20 (`train_loop.compute_embeddings`; demo encoding is compared with the fastest of
  the chunk sizes in `batch_sizes` too);
- one BC training epoch at the protocol's dataset size;
- one smoke cell end to end with a cold and a warm embedding cache, and `nox -s screen` on the task likewise
  (screening is demo encoding, once, then a few ridge solves: the warm run is what a second look costs).

Rates are steady-state: an episode's reset is timed apart from its steps (a shortened run would
otherwise charge a whole reset to a few steps) and projected once per episode, for both loops.
The full-protocol time of one task with 3 seeds (demo encoding, training, all evaluations) is then
projected for both by counting frames, with the formula printed. The reference also runs a second,
logging-only rollout set of the same size at every evaluation (eai-vc `train_loop.py`), counted here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

KEYS = {
    "encoder": "theia-tiny",
    "weights": "random",
    "task": "metaworld-assembly",
    "render_quality": "faithful",
    "policy": "bc-mlp",
    "eval_episodes": 0,  # lockstep batch; 0: the task's CortexBench episode count
    "steps": 6,  # evaluation steps measured per episode (>= 2)
    "reference_steps": 40,  # steps of the reference-style loop
    "demo_frames": 64,  # frames used to time demo encoding
    "repeats": 3,  # each rate is the median of this many measurements (min and max are reported beside it)
    "workers": "auto",
    "eval_groups": "auto",  # the harness's env groups (auto | 1 | 2); lockstep (1) is always measured too
    "device": "auto",  # the encoder's device: auto | cpu | cuda
    "batch_sizes": "8,20,32,64",  # encoder-only rates and reference demo-encoding chunks at these sizes
    "smoke_cell": True,  # also time one smoke cell with a cold and a warm cache
    "screen": True,  # and `nox -s screen` on the task (smoke budget), cold and warm
    "out": "results/bench",
}


def parse(argv: list[str]) -> dict:
    from encoders.lookup import parse_key_values

    args = parse_key_values(argv, KEYS, "nox -s bench --")
    if args["encoder"] == "state":
        raise SystemExit("error: encoder=state is the simulator's state: there is no encoder to benchmark")
    try:
        args["batch_sizes"] = [int(b) for b in str(args["batch_sizes"]).split(",")]
        assert all(b > 0 for b in args["batch_sizes"])
    except (ValueError, AssertionError):
        raise SystemExit(
            f"error: batch_sizes={args['batch_sizes']!r}: give positive integers, e.g. 8,20,32,64"
        ) from None
    if args["steps"] < 2:
        raise SystemExit(
            "error: steps must be at least 2 (the harness rate is the difference of a steps- and a 1-step rollout)"
        )
    return args


def _rate(frames: int, seconds: float) -> float:
    return frames / seconds if seconds > 0 else float("inf")


def _repeated(out: dict, name: str, frames: int, measure, repeats: int) -> None:
    """`out[name]`: the median rate of `repeats` calls of `measure() -> seconds` over `frames` frames;
    `out["spread"][name]`: [min, max] of those rates (this machine's timings move by a third run to run)."""
    rates = sorted(_rate(frames, measure()) for _ in range(repeats))
    out[name] = float(np.median(rates))
    out.setdefault("spread", {})[name] = [rates[0], rates[-1]]


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def reference_transform(spec):
    """The per-frame PIL path of eai-vc (`load_pretrained_model`: Image.fromarray -> transforms -> unsqueeze)."""
    from PIL import Image
    from torchvision import transforms as T

    p = spec.preprocess
    interpolation = T.InterpolationMode.BICUBIC if p.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    resize = (
        [T.Resize(p.resize, interpolation), T.CenterCrop(p.size)]
        if p.resize
        else [T.Resize((p.size, p.size), interpolation)]
    )
    tf = T.Compose([*resize, T.ToTensor(), T.Normalize(p.mean, p.std)])
    return lambda frame: tf(Image.fromarray(frame)).unsqueeze(0)


def run(args: dict) -> dict:
    import encoders
    import tasks
    from experiments.cells.envpool import SerialEnvPool, choose_groups, make_pool, task_env_factory, usable_cpus
    from experiments.cells.rollout import rollout
    from experiments.provenance import provenance
    from policies import build_head, input_kind
    from tasks.rendering import gl_renderer

    encoder = encoders.load(args["encoder"], weights=args["weights"], device=args["device"])
    spec = tasks.get(args["task"])
    n = args["eval_episodes"] or spec.eval_episodes
    steps, kind, repeats = args["steps"], input_kind(args["policy"]), args["repeats"]
    factory = task_env_factory(spec.name, quality=args["render_quality"], horizon=spec.horizon)
    torch.manual_seed(0)
    head = build_head(
        args["policy"],
        history=spec.history,
        encoder_spec=encoder.spec,
        proprio_dim=spec.proprio_dim,
        action_dim=spec.action_dim,
    ).eval()
    rng = np.random.default_rng(0)
    out: dict = {
        "config": args | {"eval_episodes": n},
        "device": str(encoder.device),
        "torch_threads": torch.get_num_threads(),
        "cpus": usable_cpus(),
        "provenance": provenance(str(encoder.device)),  # git commit and state, package versions, platform
        "render_backend": gl_renderer(),
    }

    def embed(obs):
        o = encoder.encode(obs["pixels"])
        return o.vector if kind == "vector" else o.tokens

    print(
        f"[bench] {encoder.spec.name} on {spec.name}: {n} envs in lockstep, {steps} steps, quality={args['render_quality']}",
        flush=True,
    )
    pool = make_pool(factory, n, args["workers"])
    try:
        # Steady-state rates: resets are timed apart from steps (an episode has one reset per `horizon`
        # steps, so a shortened run must not charge them to its few steps) and projected per episode.
        # environment only: a reset, then `steps` steps, all rendered, with the pool the harness uses
        t_reset, _ = _timed(lambda: pool.reset(range(n)))

        def env_steps() -> float:
            actions = [rng.uniform(-1, 1, (n, spec.action_dim)).astype(np.float32) for _ in range(steps)]
            return _timed(lambda: [pool.step(a, np.ones(n, bool)) for a in actions])[0]

        _repeated(out, "env_fps", n * steps, env_steps, repeats)
        frames = pool.reset(range(n))["pixels"]
        # encoder only: batched forwards over the same rendered frames
        encoder.encode(frames[:2])  # warm-up

        def encode_steps(batch_size: int | None) -> float:
            return _timed(lambda: [encoder.encode(frames, batch_size=batch_size) for _ in range(steps)])[0]

        _repeated(out, "encoder_fps", n * steps, lambda: encode_steps(None), repeats)
        out["encoder_batch_size"] = encoder.batch_size
        for size in args["batch_sizes"]:
            _repeated(out, f"encoder_fps_batch_{size}", n * steps, lambda size=size: encode_steps(size), repeats)

        # the harness: rollouts (reset + steps, one batched forward per env group and step); the difference of a
        # `steps`-step and a 1-step rollout is `steps - 1` steady-state steps
        def harness(horizon: int, groups: int) -> float:
            return _timed(
                lambda: rollout(pool, list(range(n)), horizon, embed, head, spec.history, spec.fusion, groups=groups)
            )[0]

        out["eval_groups"] = choose_groups(args["eval_groups"], pool, encoder.device.type)
        _repeated(
            out,
            "harness_fps",
            n * (steps - 1),
            lambda: harness(steps, out["eval_groups"]) - harness(1, out["eval_groups"]),
            repeats,
        )
        _repeated(out, "harness_lockstep_fps", n * (steps - 1), lambda: harness(steps, 1) - harness(1, 1), repeats)
        peaks = pool.peak_rss_mb()
    finally:
        pool.close()
    workers = [v for k, v in sorted(peaks.items()) if k != "main"]
    out["memory"] = {
        "main_mb": peaks["main"],  # this process: the encoder, the policy, the frames (the envs too without workers)
        "workers_mb": workers,
        "per_env_mb": (sum(workers) or peaks["main"]) / n,
        "cell_mb": peaks["main"] + sum(workers),
    }
    out["env_reset_s"] = t_reset / n  # per episode, resets spread over the pool
    out["pipeline_bound_fps"] = 1.0 / (1.0 / out["env_fps"] + 1.0 / out["encoder_fps"])  # lockstep's bound
    out["overlap_bound_fps"] = min(out["env_fps"], out["encoder_fps"])  # an overlapped loop's bound
    print(
        f"[bench] env {out['env_fps']:.1f} f/s, encoder {out['encoder_fps']:.1f} f/s, harness {out['harness_fps']:.1f} f/s",
        flush=True,
    )

    # reference-style loop: one env, PIL + batch-1 forward per step
    transform = reference_transform(encoder.spec)
    single = SerialEnvPool(factory, 1)
    try:
        t_ref_reset, obs = _timed(lambda: single.reset([0]))

        def reference_loop():
            nonlocal obs
            for _ in range(args["reference_steps"]):
                with torch.inference_mode():
                    x = transform(obs["pixels"][0]).to(encoder.device)
                    o = encoder.module(x)
                    feat = o["tokens"] if kind == "spatial" else encoder._vector(o)
                    history = feat.unsqueeze(1).repeat_interleave(spec.history, 1)
                    action = head(history, torch.as_tensor(obs["proprio"], dtype=torch.float32)).numpy()
                obs = single.step(action, np.ones(1, bool))[0]

        _repeated(out, "reference_fps", args["reference_steps"], lambda: _timed(reference_loop)[0], repeats)
    finally:
        single.close()
    out["reference_reset_s"] = t_ref_reset

    # demo encoding: batched (harness) vs per-frame PIL transform + chunks of 20 (reference)
    demo = np.concatenate([frames] * (args["demo_frames"] // len(frames) + 1))[: args["demo_frames"]]

    def reference_demo_encoding(chunk: int) -> float:
        def run_it():
            x = torch.cat([transform(f) for f in demo])
            with torch.inference_mode():
                for i in range(0, len(x), chunk):
                    encoder.module(x[i : i + chunk].to(encoder.device))

        return _timed(run_it)[0]

    _repeated(out, "demo_encode_fps_harness", len(demo), lambda: _timed(lambda: encoder.encode(demo))[0], repeats)
    for size in sorted({20, *args["batch_sizes"]}):  # 20: eai-vc's chunk
        name = f"demo_encode_fps_reference_{size}"
        _repeated(out, name, len(demo), lambda size=size: reference_demo_encoding(size), repeats)
    out["demo_encode_fps_reference"] = out["demo_encode_fps_reference_20"]
    out["demo_encode_fps_reference_best"] = max(
        out[f"demo_encode_fps_reference_{size}"] for size in {20, *args["batch_sizes"]}
    )

    # one BC epoch at the protocol's dataset size, timed on a fraction and scaled
    out["train_epoch_s"] = _train_epoch_seconds(head, encoder.spec, spec, kind)
    out["smoke_cell"] = _cold_and_warm(args, "experiments.eval", "seed=*.json") if args["smoke_cell"] else None
    out["screen"] = _cold_and_warm(args, "experiments.screen", f"{args['task']}.json") if args["screen"] else None
    out["projection"] = project(out, spec)
    return out


def _train_epoch_seconds(head, encoder_spec, spec, kind: str, batches: int = 8) -> float:
    from experiments.cells.bc import bc_epoch
    from experiments.cells.features import DemoFeatures
    from policies.fusion import history_indices

    n_frames = spec.n_demos * spec.horizon
    size = 256 * batches
    shape = (encoder_spec.embed_dim,) if kind == "vector" else (encoder_spec.n_tokens, encoder_spec.token_dim)
    feats = DemoFeatures(
        embeddings=np.random.default_rng(0).standard_normal((size, *shape)).astype(np.float32),
        proprio=np.zeros((size, spec.proprio_dim), np.float32),
        actions=np.zeros((size, spec.action_dim), np.float32),
        history_index=history_indices([size], spec.history),
        norms=np.zeros((1, 1)),
        cache={},
    )
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    seconds, _ = _timed(
        lambda: bc_epoch(head, optimizer, feats, 256, spec.fusion, torch.Generator().manual_seed(0), "cpu")
    )
    head.eval()
    return seconds * n_frames / size


def _cold_and_warm(args: dict, module: str, records: str) -> dict:
    """`python -m <module>` (eval or screen) at the smoke budget, with a cold then a warm embedding cache (a
    private cache folder); per run its wall time and what its record says about the cache."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"CORTEXBENCH_CACHE": str(Path(tmp) / "cache")}
        base = [
            sys.executable,
            "-m",
            module,
            f"encoder={args['encoder']}",
            f"weights={args['weights']}",
            f"task={args['task']}",
            "protocol=smoke",
            f"results_dir={tmp}/results",
            "progress=false",
            *(["overwrite=true"] if module == "experiments.eval" else []),
        ]
        times = {}
        for name in ("cold", "warm"):
            seconds, result = _timed(lambda: subprocess.run(base, env=env, capture_output=True, text=True))
            if result.returncode != 0:
                raise RuntimeError(f"{module} failed:\n{result.stderr[-2000:]}")
            record = json.loads(next(Path(tmp, "results").rglob(records)).read_text())
            hit = record["cache"]["hit"] if "cache" in record else record["timing"]["embed_cache_hit"]
            times[name] = {"wall_s": round(seconds, 2), "cache_hit": hit, "embed_s": record["timing"].get("embed")}
        return times


def project(m: dict, spec) -> dict:
    """Time of one full CortexBench task (3 seeds) for the harness and the reference-style loop."""
    seeds, evaluations = len(spec.seeds), 20  # epochs 5, 10, ..., 95, 99
    f_demo = spec.n_demos * spec.horizon
    resets = evaluations * spec.eval_episodes  # episodes per seed
    f_eval = resets * spec.horizon  # per seed
    train = seeds * 100 * m["train_epoch_s"]
    harness = (
        f_demo / m["demo_encode_fps_harness"]
        + train
        + seeds * f_eval / m["harness_fps"]
        + seeds * resets * m["env_reset_s"]
    )
    reference = (
        seeds * f_demo / m["demo_encode_fps_reference"]
        + train
        + seeds * 2 * f_eval / m["reference_fps"]
        + seeds * 2 * resets * m["reference_reset_s"]
    )
    formula = (
        f"harness   = F_demo/demo_fps_h + S*E*t_epoch + S*F_eval/harness_fps + S*R*reset_s_h"
        f" = {f_demo}/{m['demo_encode_fps_harness']:.1f} + {seeds}*100*{m['train_epoch_s']:.2f}"
        f" + {seeds}*{f_eval}/{m['harness_fps']:.2f} + {seeds}*{resets}*{m['env_reset_s']:.3f} = {harness:.0f} s\n"
        f"reference = S*F_demo/demo_fps_r + S*E*t_epoch + S*2*F_eval/reference_fps + S*2*R*reset_s_r"
        f" = {seeds}*{f_demo}/{m['demo_encode_fps_reference']:.1f} + {seeds}*100*{m['train_epoch_s']:.2f}"
        f" + {seeds}*2*{f_eval}/{m['reference_fps']:.2f} + {seeds}*2*{resets}*{m['reference_reset_s']:.3f}"
        f" = {reference:.0f} s\n"
        f"(F_demo = {spec.n_demos} demos x {spec.horizon} steps; R = 20 evaluations x {spec.eval_episodes} episodes;"
        f" F_eval = R x {spec.horizon} steps; S = {seeds} seeds; E = 100 epochs; reset_s: seconds per episode reset"
        f" (the pool's, spread over its workers, and one env's); the reference's extra logging-only rollout set"
        f" doubles its evaluation frames and resets)"
    )
    return {"harness_s": harness, "reference_s": reference, "speedup": reference / harness, "formula": formula}


def _smoke_rows(smoke: dict | None) -> list[tuple[str, str, str]]:
    if smoke is None:
        return []
    cold, warm = smoke["cold"], smoke["warm"]
    return [
        ("smoke cell, cold cache", f"{cold['wall_s']:.1f} s", f"embed {cold['embed_s']:.2f} s"),
        (
            "smoke cell, warm cache",
            f"{warm['wall_s']:.1f} s",
            f"embed {warm['embed_s']:.2f} s, cache hit {warm['cache_hit']}",
        ),
    ]


def _screen_rows(screen: dict | None) -> list[tuple[str, str, str]]:
    if screen is None:
        return []
    cold, warm = screen["cold"], screen["warm"]
    return [
        ("screening (smoke demos), cold cache", f"{cold['wall_s']:.1f} s", ""),
        ("screening (smoke demos), warm cache", f"{warm['wall_s']:.1f} s", f"cache hit {warm['cache_hit']}"),
    ]


def _fps(r: dict, name: str) -> str:
    """A rate as `median frames/s (min-max)` over the repeats."""
    low, high = r.get("spread", {}).get(name, (None, None))
    spread = f" ({low:.1f}–{high:.1f})" if low is not None else ""
    return f"{r[name]:.1f} frames/s{spread}"


def markdown(r: dict) -> str:
    c, p = r["config"], r["projection"]
    m = r["memory"]
    rows = [
        (f"encoder only (batched forward, batch {r['encoder_batch_size']})", _fps(r, "encoder_fps"), ""),
        *[(f"encoder only, batch {size}", _fps(r, f"encoder_fps_batch_{size}"), "") for size in c["batch_sizes"]],
        ("environment only (step + render, worker pool)", _fps(r, "env_fps"), f"renderer: {r['render_backend']}"),
        ("lockstep bound 1/(1/encoder + 1/env)", f"{r['pipeline_bound_fps']:.1f} frames/s", ""),
        ("overlap bound min(encoder, env)", f"{r['overlap_bound_fps']:.1f} frames/s", ""),
        ("episode reset, worker pool / one env", f"{r['env_reset_s']:.3f} s / {r['reference_reset_s']:.3f} s", ""),
        (
            f"harness evaluation ({r['eval_groups']} env group(s))",
            _fps(r, "harness_fps"),
            f"{r['harness_fps'] / r['overlap_bound_fps']:.2f}x overlap bound",
        ),
        (
            "harness evaluation, lockstep (1 group)",
            _fps(r, "harness_lockstep_fps"),
            f"{r['harness_lockstep_fps'] / r['pipeline_bound_fps']:.2f}x lockstep bound",
        ),
        (
            "reference-style loop (PIL + batch-1 per step)",
            _fps(r, "reference_fps"),
            f"harness {r['harness_fps'] / r['reference_fps']:.2f}x faster per frame",
        ),
        (
            f"demo encoding, harness (batch {r['encoder_batch_size']})",
            _fps(r, "demo_encode_fps_harness"),
            f"{r['demo_encode_fps_harness'] / r['demo_encode_fps_reference']:.2f}x reference (20), "
            f"{r['demo_encode_fps_harness'] / r['demo_encode_fps_reference_best']:.2f}x its fastest chunk",
        ),
        *[
            (f"demo encoding, reference (PIL, chunks of {size})", _fps(r, f"demo_encode_fps_reference_{size}"), "")
            for size in sorted({20, *c["batch_sizes"]})
        ],
        (
            "peak memory, evaluation pool",
            f"{m['cell_mb']:.0f} MiB",
            f"this process {m['main_mb']:.0f}, workers {', '.join(f'{w:.0f}' for w in m['workers_mb']) or '-'};"
            f" {m['per_env_mb']:.0f} MiB per env",
        ),
        ("BC epoch at protocol size", f"{r['train_epoch_s']:.2f} s", ""),
        *_smoke_rows(r["smoke_cell"]),
        *_screen_rows(r.get("screen")),
        ("full protocol, 1 task x 3 seeds: harness", f"{p['harness_s'] / 3600:.1f} h", ""),
        (
            "full protocol, 1 task x 3 seeds: reference-style",
            f"{p['reference_s'] / 3600:.1f} h",
            f"harness {p['speedup']:.1f}x faster",
        ),
    ]
    head = (
        f"# Benchmark: {c['encoder']} ({c['weights']} weights) on {c['task']}\n\n"
        f"{c['eval_episodes']} environments, {c['steps']} steps each, render quality {c['render_quality']}; "
        f"rates: median (min–max) of {c.get('repeats', 1)} repeats; "
        f"policy {c['policy']}; device {r['device']}, {r['cpus']} CPUs, {r['torch_threads']} torch threads.\n\n"
    )
    table = "| measurement | value | ratio |\n|---|---|---|\n" + "\n".join(f"| {a} | {b} | {x} |" for a, b, x in rows)
    return head + table + "\n\nProjection:\n\n```\n" + p["formula"] + "\n```\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__ + "\nOptions (key=value): " + ", ".join(f"{k}={v}" for k, v in KEYS.items()))
        return
    args = parse(argv)
    result = run(args)
    text = markdown(result)
    print(text)
    out = Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args['encoder']}_{args['task']}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    (out / f"{stem}.md").write_text(text)
    print(f"[bench] wrote {out / stem}.json and .md")


if __name__ == "__main__":
    main()
