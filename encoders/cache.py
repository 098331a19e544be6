"""On-disk cache of demo embeddings, keyed by encoder fingerprint x demo-set fingerprint.

Embeddings are computed once per (encoder, demo set, output kind, storage dtype) and shared by
every seed and policy. An entry is a folder of `.npy` arrays plus `meta.json` holding their shapes,
dtypes and blake2b digests. It is written to a temporary folder and renamed into place, so readers
never see a partial entry and two writers racing on one key both end with a valid entry (the first
rename wins, the loser discards its copy). Reads memory-map the arrays; an entry whose files do not
match its meta (truncated, corrupted, half-deleted) is removed and recomputed.

Concurrent jobs (one machine, or a shared filesystem such as NFS): `load_or_compute` holds a lock
per key (`encoders.storage`), so when several jobs need the same entry one computes it and the others
wait and read it; the lock holder also clears temporary folders a killed writer left behind. Without
working locks both compute, and the atomic rename still leaves one valid entry. `refresh` replaces an
entry by renaming it away first: a job on the same machine that already memory-mapped the old arrays
keeps reading them, but on NFS another machine reading that entry at that moment may get a stale
file handle, so do not refresh entries a running sweep is using.

Modes (`cache=`): off (neither read nor write), read (read only), readwrite (default),
refresh (recompute and replace). Location: `$CORTEXBENCH_CACHE/embeddings` (default
`~/.cache/cortexbench/embeddings`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.storage import embeddings_root, file_digest, file_lock, move_aside, temp_dir

MODES = ("off", "read", "readwrite", "refresh")
STORAGE_DTYPES = ("float32", "float16")  # how cached embeddings are stored
FORMAT_VERSION = 1


def _digest(path: Path) -> str:
    return file_digest(path, "blake2b", digest_size=16)


@dataclass
class CacheEntry:
    key: str
    path: Path
    arrays: dict[str, np.ndarray]  # memory-mapped when read from disk
    meta: dict
    hit: bool


class EmbeddingCache:
    def __init__(self, root: Path | str | None = None, mode: str = "readwrite"):
        if mode not in MODES:
            raise ValueError(f"cache mode {mode!r} is not one of {MODES}")
        self.root = Path(root) if root else embeddings_root()
        self.mode = mode

    @staticmethod
    def key(encoder_fingerprint: str, data_fingerprint: str, kind: str, dtype: str) -> str:
        return f"{encoder_fingerprint}/{data_fingerprint}-{kind}-{dtype}-f{FORMAT_VERSION}"

    def _dir(self, key: str) -> Path:
        return self.root / key

    @staticmethod
    def _read(folder: Path) -> tuple[dict[str, np.ndarray], dict]:
        """Memory-map a committed entry, checking every file against its meta; raises if it does not match."""
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {}
        for name, info in meta["arrays"].items():
            file = folder / f"{name}.npy"
            if _digest(file) != info["digest"]:
                raise ValueError(f"{file} does not match its digest")
            array = np.load(file, mmap_mode="r")
            if list(array.shape) != info["shape"] or str(array.dtype) != info["dtype"]:
                raise ValueError(f"{file} has shape {array.shape} {array.dtype}, meta says {info}")
            arrays[name] = array
        return arrays, meta

    def load(self, key: str) -> CacheEntry | None:
        """A valid entry for `key`, or None (missing, invalid, or not read in this mode). Invalid entries are removed."""
        if self.mode in ("off", "refresh"):
            return None
        folder = self._dir(key)
        if not folder.exists():
            return None
        try:
            arrays, meta = self._read(folder)
        except (ValueError, OSError, KeyError) as err:  # truncated, corrupted or half-written by a crashed writer
            if self.mode != "read":
                move_aside(folder, f"unreadable embedding cache entry ({type(err).__name__}: {err})")
            return None
        return CacheEntry(key, folder, arrays, meta, hit=True)

    def load_or_compute(self, key: str, compute: Callable[[], tuple[dict[str, np.ndarray], dict]]) -> CacheEntry:
        """The entry for `key`, computing `(arrays, meta) = compute()` and storing it when there is none.

        Concurrent callers on one key compute it once: the others wait on the key's lock, then load it.
        """
        if self.mode in ("off", "read"):  # writes nothing, so nothing to lock (read-only caches stay untouched)
            entry = self.load(key)
            return entry if entry is not None else self.store(key, *compute())
        final = self._dir(key)
        with file_lock(final.parent / f".{final.name}.lock", waiting="waiting for another job computing") as lock:
            if lock.held:  # nobody else is writing this key: leftovers of killed writers can go
                for leftover in final.parent.glob(f".{final.name}.tmp-*"):
                    shutil.rmtree(leftover, ignore_errors=True)
                for leftover in final.parent.glob(f".{final.name}.old-*"):
                    shutil.rmtree(leftover, ignore_errors=True)
            entry = self.load(key)
            return entry if entry is not None else self.store(key, *compute())

    def store(self, key: str, arrays: dict[str, np.ndarray], meta: dict) -> CacheEntry:
        """Commit `arrays` under `key` atomically (when the mode writes) and return the entry (hit=False)."""
        final = self._dir(key)
        if self.mode in ("off", "read"):
            return CacheEntry(key, final, arrays, meta, hit=False)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_dir(final, "tmp")
        try:
            info = {}
            for name, array in arrays.items():
                file = tmp / f"{name}.npy"
                np.save(file, np.ascontiguousarray(array))
                info[name] = {"shape": list(array.shape), "dtype": str(array.dtype), "digest": _digest(file)}
            (tmp / "meta.json").write_text(
                json.dumps({**meta, "arrays": info, "format": FORMAT_VERSION}, indent=1, sort_keys=True)
            )
            if final.exists() and self.mode == "refresh":
                trash = temp_dir(final, "old")
                os.replace(final, trash / "entry")
                shutil.rmtree(trash, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:  # another process committed this key first: keep theirs, drop ours
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        stored, stored_meta = self._read(final)
        return CacheEntry(key, final, stored, stored_meta, hit=False)
