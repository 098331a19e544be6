"""Everything the harness keeps on disk goes through here: atomic writes, file hashing, the cache and
data folders, the offline flag and file locks. One home for each, so they behave the same everywhere.

Atomic writes: a temp file in the target's folder, then a rename over the target, so a reader never
sees half a file and a killed writer leaves only a hidden `.<name>.*.tmp` file. Files get the mode
the user's umask allows (not mkstemp's 0600), so colleagues sharing a results folder or cache can read
them.

Locks: advisory file locks for caches and records shared by concurrent jobs (one machine or a shared
filesystem). Every cache and record commits with an atomic rename, so a lock is never what keeps data
valid: it keeps two jobs from doing the same expensive work (rendering the same demos, embedding the
same frames, downloading the same checkpoint, running the same cell). The second job waits for the
lock, then finds the finished result and reuses it. A lock is `flock(2)` on an empty `<name>.lock`
file next to what it guards. On Linux, `flock` on NFS is carried out as a POSIX byte-range lock (NFSv4,
or NFSv3 with lockd), and the kernel (or the NFS server once the client's lease lapses) releases the
lock of a killed process: a crash never leaves a stale lock. Where the filesystem has no working locks
(`flock` fails: some FUSE mounts, Lustre mounted without `-o flock`), the lock is skipped with one
warning; jobs may then repeat work, and the results stay valid. `CORTEXBENCH_LOCKS=off` skips locking
outright, for mounts where `flock` hangs instead of failing. Lock files are left in place: deleting one
while another process waits on it would let a third process lock a new file under the same name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# --------------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------------
CACHE_ENV = "CORTEXBENCH_CACHE"
DATA_ENV = "CORTEXBENCH_DATA"
WEIGHTS_ENV = "CORTEXBENCH_WEIGHTS"
HABITAT_DATA_ENV = "CORTEXBENCH_HABITAT_DATA"
DEFAULT_ROOT = Path("~/.cache/cortexbench")


def _folder(env: str, default: Path) -> Path:
    value = os.environ.get(env, "").strip()
    return Path(value).expanduser() if value else default.expanduser()


def cache_root() -> Path:
    """Rendered demos and embeddings: $CORTEXBENCH_CACHE, else ~/.cache/cortexbench."""
    return _folder(CACHE_ENV, DEFAULT_ROOT)


def embeddings_root() -> Path:
    """The embedding cache: `<cache_root>/embeddings`."""
    return cache_root() / "embeddings"


def demos_cache_root() -> Path:
    """Demos rendered by the harness (scripted, re-rendered official, Minari): `<cache_root>/demos`."""
    return cache_root() / "demos"


def data_root() -> Path:
    """Downloaded data sets (official demos, Habitat): $CORTEXBENCH_DATA, else ~/.cache/cortexbench/data."""
    return _folder(DATA_ENV, DEFAULT_ROOT / "data")


def weights_root() -> Path:
    """Downloaded checkpoints: $CORTEXBENCH_WEIGHTS, else ~/.cache/cortexbench/weights."""
    return _folder(WEIGHTS_ENV, DEFAULT_ROOT / "weights")


def habitat_data_root() -> Path:
    """Habitat scenes and episodes: $CORTEXBENCH_HABITAT_DATA, else `<data_root>/habitat`."""
    return _folder(HABITAT_DATA_ENV, data_root() / "habitat")


# --------------------------------------------------------------------------------------------------
# The offline flag
# --------------------------------------------------------------------------------------------------
OFFLINE_ENVS = ("CORTEXBENCH_OFFLINE", "HF_HUB_OFFLINE")
TRUE_VALUES = ("1", "true", "yes", "on")
FALSE_VALUES = ("", "0", "false", "no", "off")


def offline() -> bool:
    """Whether downloads are off: CORTEXBENCH_OFFLINE or HF_HUB_OFFLINE set to 1/true/yes/on (as the
    Hugging Face hub reads its own flag); 0/false/no/off or unset mean online. Any other value is
    refused, so a typo never silently flips the meaning."""
    for name in OFFLINE_ENVS:
        value = os.environ.get(name, "").strip().lower()
        if value in TRUE_VALUES:
            return True
        if value not in FALSE_VALUES:
            raise ValueError(f"{name}={os.environ[name]!r}: use 1 (no downloads) or 0 (downloads allowed)")
    return False


# --------------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------------
CHUNK = 1 << 22


def file_digest(path: Path | str, algorithm: str = "sha256", digest_size: int | None = None) -> str:
    """Hex digest of a file's bytes, read in chunks (checkpoints are GBs). `blake2b` takes `digest_size`."""
    digest = hashlib.new(algorithm, digest_size=digest_size) if digest_size else hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path | str) -> str:
    return file_digest(path, "sha256")


def sha256_text(text: str) -> str:
    """sha256 of a string (fingerprints of settings, lists of file digests)."""
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_json(payload: object) -> str:
    """sha256 of a JSON-serialisable value in canonical form (sorted keys), for fingerprints."""
    return sha256_text(json.dumps(payload, sort_keys=True, default=str))


# --------------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def shared_mode(directory: bool = False) -> int:
    """The mode a plain `open()` (or `mkdir`) would give: 0666 (0777) less the umask."""
    return (0o777 if directory else 0o666) & ~_umask()


def temp_path(path: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden name beside `path` for a file that will be renamed onto it (each writer its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, shared_mode())
    return Path(tmp)


def temp_dir(path: Path, tag: str = "tmp") -> Path:
    """A fresh hidden folder beside `path` (`.<name>.<tag>-*`) for an entry renamed onto it when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{tag}-"))
    os.chmod(tmp, shared_mode(directory=True))
    return tmp


def leftover_temp_files(path: Path) -> list[Path]:
    """Temp files of atomic writes of `path` killed before their rename (remove them under `path`'s lock)."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], None], replace: bool = True) -> bool:
    """Write `path` through `write(binary file)` into a temp file, fsync, then rename it into place.

    `replace=False` keeps a file that is already there (a concurrent writer's; files whose checksum is
    part of a fingerprint must never change): the temp file is hard-linked into place, which fails when
    the name exists. Returns whether this call's bytes are now at `path`.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False  # another job committed this file first: keep theirs
        except OSError:  # no hard links on this filesystem
            os.replace(tmp, path)
            return True
        tmp.unlink()
        return True
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes, replace: bool = True) -> bool:
    return atomic_write(path, lambda f: f.write(data), replace=replace)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path | str, payload: object) -> None:
    """Pretty, key-sorted JSON with a final newline (NaN refused: it is not JSON)."""
    text = json.dumps(payload, indent=1, sort_keys=True, allow_nan=False, default=str) + "\n"
    atomic_write_text(path, text)


def move_aside(path: Path | str, problem: str) -> Path:
    """Keep a broken file or folder for inspection instead of deleting it: rename it to
    `<name>.corrupt-<UTC time>` beside itself (so the caller can recompute it) and say so on stderr."""
    from datetime import datetime, timezone

    path = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    kept = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, kept)
    print(f"[repair] {path}: {problem}; kept as {kept.name}, computing it again", file=sys.stderr, flush=True)
    return kept


# --------------------------------------------------------------------------------------------------
# File locks
# --------------------------------------------------------------------------------------------------
LOCKS_ENV = "CORTEXBENCH_LOCKS"
_warned: set[str] = set()


def locks_enabled() -> bool:
    return os.environ.get(LOCKS_ENV, "on").strip().lower() not in ("0", "off", "false", "no")


@dataclass
class Lock:
    """The outcome of `file_lock`: `held` (this process has it), `busy` (another process has it and we
    did not wait), or neither (locks are off or unsupported here: go ahead without one)."""

    path: Path
    held: bool = False
    busy: bool = False


def _warn_unsupported(path: Path, err: OSError) -> None:
    folder = str(path.parent)
    if folder not in _warned:
        _warned.add(folder)
        warnings.warn(
            f"file locks do not work in {folder} ({err}); concurrent jobs may repeat work there "
            f"(results stay valid: commits are atomic renames). Set {LOCKS_ENV}=off to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )


class FolderNotWritableError(PermissionError):
    """A folder the harness must write to cannot be created or written; the message names it."""


def _not_writable(folder: Path, err: OSError) -> FolderNotWritableError:
    return FolderNotWritableError(
        f"cannot write in {folder} ({err.strerror or err}): make it writable, or choose another folder"
    )


@contextlib.contextmanager
def file_lock(path: Path | str, blocking: bool = True, waiting: str | None = None) -> Iterator[Lock]:
    """Hold an exclusive lock on `path` (created, with its folder, if missing) for the `with` block.

    `blocking=False` returns at once with `busy=True` when another process holds it. When blocking and
    the lock is taken, `waiting` (what the other process is doing) is printed once before waiting. A
    folder that cannot be written raises `FolderNotWritableError` (the work could not be saved there
    either); a filesystem without working locks only warns.
    """
    path = Path(path)
    lock = Lock(path)
    if not locks_enabled():
        yield lock
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST):
            raise _not_writable(path.parent, err) from err
        _warn_unsupported(path, err)
        yield lock
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock.held = True
        except BlockingIOError:
            if not blocking:
                lock.busy = True
            else:
                print(f"[wait] {waiting or 'another process holds'} {path}", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
                lock.held = True
        except OSError as err:  # ENOLCK, EOPNOTSUPP, ...: this filesystem has no working flock
            _warn_unsupported(path, err)
        yield lock
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_locked(path: Path | str) -> bool:
    """Whether another process holds the lock at `path` now (False when there is no such lock file)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def check_writable(folder: Path | str) -> None:
    """Fail now, naming the folder, when files cannot be created in `folder` (before hours of work)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temp_path(folder / ".write-probe")
        probe.unlink()
    except OSError as err:
        raise _not_writable(folder, err) from err
