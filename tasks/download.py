"""Download and check demonstrations: `python -m tasks.download <suite|task> ... [source=official|minari]`.

    nox -s demos -- dmc adroit              CortexBench's official archives (eai-vc cortexbench/DATASETS.md)
    nox -s demos -- adroit source=minari    Minari's D4RL expert datasets for Adroit
    nox -s demos -- dmc check=false         download and unpack only

Official archives are downloaded to `$CORTEXBENCH_DATA` (default ~/.cache/cortexbench/data) through
a temporary file (an interrupted download leaves nothing half-written behind) and unpacked there,
giving `<suite>-expert-v1.0/<env>.pickle`. Meta publishes no checksums for them, so the sha256 of
each archive is printed for the record. The check then reads every task's pickle with the
arrays-only unpickler and reports the number of paths, their lengths and the mean demo return; for
DMC it also checks the episode length and action repeat against the task spec (`tasks/dmc.py`).
Reading a pickle needs about its own size in RAM (the DMC pickles hold 256x256 frames for every step).
"""

from __future__ import annotations

import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

import tasks
from encoders.storage import atomic_write, data_root, offline, sha256_file
from tasks.demos import official_path, read_official_paths

ARCHIVES = {
    "adroit": "https://dl.fbaipublicfiles.com/eai-vc/adroit-expert-v1.0.zip",
    "metaworld": "https://dl.fbaipublicfiles.com/eai-vc/mujoco_vil_datasets/metaworld-expert-v1.0.zip",
    "dmc": "https://dl.fbaipublicfiles.com/eai-vc/mujoco_vil_datasets/dmc-expert-v1.0.zip",
}


def download(url: str, target: Path) -> str:
    """Stream `url` to `target` through an atomic write (a killed download leaves no `target`); returns the sha256."""

    def stream(out) -> None:
        with urllib.request.urlopen(url) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(1 << 22):
                out.write(block)
                done += len(block)
                if total:
                    print(f"\r  {done / 2**30:.2f} / {total / 2**30:.2f} GiB", end="", flush=True)
        print()

    atomic_write(target, stream)
    return sha256_file(target)


def fetch_official(suite: str) -> None:
    """Download and unpack one suite's archive into the data folder (skipped when already unpacked)."""
    folder = data_root() / f"{suite}-expert-v1.0"
    specs = [tasks.get(t) for t in tasks.expand(suite)]
    if all(official_path(s).is_file() for s in specs):
        print(f"{suite}: already in {folder}")
        return
    if offline():
        raise SystemExit(
            f"error: {suite} demonstrations are not in {folder} and downloads are off (CORTEXBENCH_OFFLINE)"
        )
    archive = data_root() / Path(ARCHIVES[suite]).name
    if not archive.is_file():
        print(f"{suite}: downloading {ARCHIVES[suite]}")
        sha = download(ARCHIVES[suite], archive)
        print(f"{suite}: sha256 {sha} (no published checksum to compare with; keep it for your records)")
    print(f"{suite}: unpacking {archive.name} into {data_root()}")
    with zipfile.ZipFile(archive) as z:
        z.extractall(data_root())
    missing = [str(official_path(s)) for s in specs if not official_path(s).is_file()]
    if missing:
        raise SystemExit(f"error: the archive did not contain {missing}")
    archive.unlink()


def check_official(spec) -> None:
    """Read a task's pickle and print what it holds; DMC pickles are also checked against the spec."""
    file = official_path(spec)
    paths = read_official_paths(file)
    lengths = sorted({len(p["actions"]) for p in paths})
    returns = [float(np.sum(p["rewards"])) for p in paths[: spec.n_demos]]
    keys = sorted(paths[0])
    info_keys = sorted(paths[0].get("env_infos", {}))
    line = f"{spec.name}: {len(paths)} paths, steps {lengths}, keys {keys}, env_infos {info_keys}, "
    line += f"mean return of the first {len(returns)} {np.mean(returns):.2f}"
    print(line, flush=True)
    if len(paths) < spec.n_demos:
        raise SystemExit(f"error: {file} holds {len(paths)} demonstrations, the protocol uses {spec.n_demos}")
    suite = spec.suite_module()
    if hasattr(suite, "check_official_paths"):
        print(f"  {suite.check_official_paths(spec, paths[: spec.n_demos], str(file))}")


def fetch_minari(spec) -> None:
    from tasks.demos.minari import dataset_id_for, open_dataset

    dataset = open_dataset(dataset_id_for(spec))
    print(
        f"{spec.name}: Minari {dataset.spec.dataset_id}: {dataset.total_episodes} episodes, {dataset.total_steps} steps"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    options = dict(a.split("=", 1) for a in argv if "=" in a)
    names = [a for a in argv if "=" not in a]
    source = options.get("source", "official")
    check = options.get("check", "true").lower() in ("1", "true", "yes")
    specs = [tasks.get(t) for t in tasks.expand(names)]
    if source == "minari":
        for spec in specs:
            fetch_minari(spec)
        return 0
    if source != "official":
        raise SystemExit(f"error: source={source!r}; use official or minari")
    for suite in dict.fromkeys(s.suite for s in specs):
        if suite not in ARCHIVES:
            raise SystemExit(f"error: no official archive for suite {suite!r}; known: {', '.join(ARCHIVES)}")
        fetch_official(suite)
    if check:
        for spec in specs:
            check_official(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
