"""Caches shared by concurrent jobs: real processes racing on one embedding entry, one demo set, one lock."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from encoders.cache import EmbeddingCache
from encoders.storage import LOCKS_ENV, file_lock, is_locked
from tests.conftest import REPO

SPAWN = multiprocessing.get_context("spawn")  # fresh interpreters, as separate jobs would be


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "embeddings": rng.standard_normal((300, 64)).astype(np.float32),
        "norms": rng.random((8, 4)).astype(np.float32),
    }


def _embed_worker(root: str, key: str, how: str, barrier, marker_dir: str, results) -> None:
    """One job that needs the entry `key`: computes it slowly (1 s) unless it finds it, then checks what it got."""
    if how == "locks off":
        os.environ[LOCKS_ENV] = "off"
    cache = EmbeddingCache(root)

    def compute():
        (Path(marker_dir) / f"computed-by-{os.getpid()}").touch()
        time.sleep(1.0)  # long enough that the other process is computing or waiting meanwhile
        return _arrays(), {"writer": os.getpid()}

    barrier.wait(timeout=120)
    if how == "store race":  # both compute, then both commit at the same instant
        arrays, meta = compute()
        barrier.wait(timeout=120)
        entry = cache.store(key, arrays, meta)
    else:
        entry = cache.load_or_compute(key, compute)
    valid = all(np.array_equal(entry.arrays[k], v) for k, v in _arrays().items())
    results.put({"pid": os.getpid(), "valid": valid, "hit": entry.hit, "path": str(entry.path)})


@pytest.mark.parametrize("how", ["locked", "locks off", "store race"])
def test_two_processes_computing_one_embedding_entry_both_end_with_a_valid_entry(tmp_path, how):
    root, markers = tmp_path / "embeddings", tmp_path / "markers"
    markers.mkdir()
    key = EmbeddingCache.key("encoder-fp", "demos-fp", "vector", "float32")
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    workers = [
        SPAWN.Process(target=_embed_worker, args=(str(root), key, how, barrier, str(markers), results))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert [o["valid"] for o in outcomes] == [True, True]
    assert len({o["path"] for o in outcomes}) == 1
    computed = len(list(markers.iterdir()))
    if how == "locked":  # one computed it; the other waited on the lock and read it
        assert computed == 1 and sorted(o["hit"] for o in outcomes) == [False, True]
    else:  # no lock: both computed, the first rename won, the loser reads the winner's entry
        assert computed == 2
    on_disk = EmbeddingCache(root, mode="read").load(key)
    assert on_disk is not None and np.array_equal(on_disk.arrays["embeddings"], _arrays()["embeddings"])
    assert on_disk.meta["writer"] in {o["pid"] for o in outcomes}
    leftovers = [p.name for p in on_disk.path.parent.iterdir() if p.name != on_disk.path.name]
    assert all(name.endswith(".lock") for name in leftovers), leftovers  # no temp folders


def test_load_or_compute_clears_what_a_killed_writer_left(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = cache.key("enc", "demos", "vector", "float32")
    folder = cache.root / "enc"
    (folder / f".{key.split('/')[1]}.tmp-abc123").mkdir(parents=True)  # as `store` leaves it when SIGKILLed
    (folder / f".{key.split('/')[1]}.tmp-abc123" / "embeddings.npy").write_bytes(b"half")
    entry = cache.load_or_compute(key, lambda: (_arrays(), {}))
    assert not entry.hit and sorted(p.name for p in folder.iterdir()) == sorted(
        [entry.path.name, f".{entry.path.name}.lock"]
    )
    again = cache.load_or_compute(key, lambda: pytest.fail("recomputed a cached entry"))
    assert again.hit


def _demos_worker(cache_dir: str, barrier, results) -> None:
    os.environ["CORTEXBENCH_CACHE"] = cache_dir
    import tasks

    barrier.wait(timeout=120)
    demos = tasks.get("metaworld-drawer-open").demos(n=2, source="scripted", render_size=64, quality="fast", horizon=6)
    results.put((demos.fingerprint, [len(d) for d in demos.demos], [d.frames.shape for d in demos.demos]))


@pytest.mark.sim_metaworld
def test_two_processes_rendering_the_same_scripted_demos_agree_on_one_demo_set(tmp_path):
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    workers = [SPAWN.Process(target=_demos_worker, args=(str(tmp_path), barrier, results)) for _ in range(2)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert outcomes[0] == outcomes[1]  # same files, so the same fingerprint (and one embedding cache key)
    assert outcomes[0][2] == [(6, 64, 64, 3), (6, 64, 64, 3)]
    folder = next((tmp_path / "demos" / "scripted").iterdir())
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == [
        "seed-10000.npz",
        "seed-10001.npz",
    ]


def _probe(lock: Path, **env: str) -> str:
    """Ask another process whether it can take `lock` without waiting."""
    code = (
        "import sys; from encoders.storage import file_lock, is_locked\n"
        "with file_lock(sys.argv[1], blocking=False) as l: print('held' if l.held else 'busy' if l.busy else 'none')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(lock)], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_lock_is_exclusive_across_processes_and_released_with_its_holder(tmp_path):
    lock = tmp_path / "sub" / ".entry.lock"
    assert not is_locked(lock)  # no lock file yet
    with file_lock(lock) as held:
        assert held.held and is_locked(lock)
        assert _probe(lock) == "busy"
        assert _probe(lock, **{LOCKS_ENV: "off"}) == "none"  # locks off: go ahead without one
    assert not is_locked(lock) and _probe(lock) == "held"
    assert lock.stat().st_size == 0
