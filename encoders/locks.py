"""Advisory file locks for caches and records shared by concurrent jobs (one machine or a shared filesystem).

Every cache and record commits with an atomic rename, so a lock is never what keeps data valid: it
keeps two jobs from doing the same expensive work (rendering the same demos, embedding the same
frames, downloading the same checkpoint, running the same cell). The second job waits for the lock,
then finds the finished result and reuses it.

A lock is `flock(2)` on an empty `<name>.lock` file next to what it guards. On Linux, `flock` on NFS
is carried out as a POSIX byte-range lock (NFSv4, or NFSv3 with lockd), and the kernel (or the NFS
server once the client's lease lapses) releases the lock of a killed process: a crash never leaves a
stale lock. Where the filesystem has no working locks (`flock` fails: some FUSE mounts, Lustre
mounted without `-o flock`), the lock is skipped with one warning; jobs may then repeat work, and the
results stay valid. `CORTEXBENCH_LOCKS=off` skips locking outright, for mounts where `flock` hangs
instead of failing. Lock files are left in place: deleting one while another process waits on it
would let a third process lock a new file under the same name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


def _warn_once(path: Path, err: OSError) -> None:
    folder = str(path.parent)
    if folder not in _warned:
        _warned.add(folder)
        warnings.warn(
            f"file locks do not work in {folder} ({err}); concurrent jobs may repeat work there "
            f"(results stay valid: commits are atomic renames). Set {LOCKS_ENV}=off to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )


@contextlib.contextmanager
def file_lock(path: Path | str, blocking: bool = True, waiting: str | None = None) -> Iterator[Lock]:
    """Hold an exclusive lock on `path` (created, with its folder, if missing) for the `with` block.

    `blocking=False` returns at once with `busy=True` when another process holds it. When blocking and
    the lock is taken, `waiting` (what the other process is doing) is printed once before waiting.
    """
    path = Path(path)
    lock = Lock(path)
    if not locks_enabled():
        yield lock
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:  # read-only cache, permissions: work without a lock
        _warn_once(path, err)
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
            _warn_once(path, err)
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
