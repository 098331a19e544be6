"""N evaluation environments stepped together, in this process or in worker processes.

Simulation and (CPU) rendering are the expensive part of an evaluation step, so `ProcessEnvPool`
spreads the environments over worker processes that step and render in parallel, while the main
process runs the encoder on their frames. Both pools have the same interface and give identical
observations: each environment is reset with its own seed (and reset options, where given) and stepped
with its own action, whichever process holds it.

Steps can also be asynchronous, per group of environments (`group_ranges`: G contiguous ranges of env
indices): `submit_step(group, ...)` starts a step and `wait_step(group)` returns its results, so the
main process can encode one group's frames while the workers step and render another. A process pool
places env i on worker i % workers, so every worker holds part of every group (of at least `workers`
envs) and none idles while a group steps. The serial pool does the step at submit time (lockstep).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection

import numpy as np

from experiments.envworker import EnvGroup, StepResult, peak_rss_mb_of_this_process, task_env_factory

__all__ = ["ProcessEnvPool", "SerialEnvPool", "choose_groups", "group_ranges", "make_pool", "task_env_factory"]


def group_ranges(n: int, groups: int) -> list[range]:
    """The indices of n envs split into `groups` contiguous ranges, sizes differing by at most one."""
    if not 1 <= groups <= n:
        raise ValueError(f"cannot split {n} envs into {groups} groups")
    sizes = [n // groups + (1 if g < n % groups else 0) for g in range(groups)]
    return [range(sum(sizes[:g]), sum(sizes[: g + 1])) for g in range(groups)]


def _stack_observations(observations: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([o[k] for o in observations]) for k in observations[0]}


def _stack_results(results: list[StepResult]):
    obs = _stack_observations([r[0] for r in results])
    return obs, np.array([r[1] for r in results]), np.array([r[2] for r in results]), [r[3] for r in results]


class PendingSteps:
    """The groups whose steps were submitted and not yet waited for, oldest first: a worker answers its
    commands in order, so steps must be waited for in the order they were submitted."""

    def __init__(self):
        self.queue: deque[tuple[range, object]] = deque()

    def push(self, group: range, ticket: object) -> None:
        self.queue.append((group, ticket))

    def pop(self, group: range) -> object:
        if not self.queue or self.queue[0][0] != group:
            expected = self.queue[0][0] if self.queue else "none"
            raise RuntimeError(f"wait_step({group}): the oldest submitted step is {expected}; wait in submit order")
        return self.queue.popleft()[1]

    def check_idle(self, what: str) -> None:
        if self.queue:
            raise RuntimeError(f"{what} while steps of {[g for g, _ in self.queue]} are pending; wait for them first")


class SerialEnvPool:
    """All environments in this process, stepped one after another; `submit_step` steps right away."""

    def __init__(self, make_env: Callable[[], object], n: int):
        self.group = EnvGroup(make_env, n)
        self.pending = PendingSteps()

    def __len__(self) -> int:
        return len(self.group.envs)

    def reset(self, seeds: Sequence[int], options: Sequence[dict | None] | None = None) -> dict[str, np.ndarray]:
        self.pending.check_idle("reset")
        return _stack_observations(self.group.reset(seeds, options))

    def reset_some(self, indices: Sequence[int], seeds: Sequence[int]) -> dict[str, np.ndarray]:
        """Reset the envs at `indices` (ascending) with `seeds`; their stacked observations, in that order."""
        self.pending.check_idle("reset_some")
        return _stack_observations(self.group.reset_some(list(indices), list(seeds)))

    def step(self, actions: np.ndarray, active: np.ndarray):
        """-> stacked observations, rewards [N], terminated [N], infos (list of N dicts)."""
        self.pending.check_idle("step")
        self.submit_step(range(len(self)), actions, active)
        return self.wait_step(range(len(self)))

    def submit_step(self, group: range, actions: np.ndarray, active: np.ndarray) -> None:
        """Step the envs of `group` (a range of env indices) with actions[k], active[k] for its k-th env."""
        self.pending.push(group, self.group.step(actions, active, list(group)))

    def wait_step(self, group: range):
        """The results of `group`'s submitted step: observations, rewards, terminated, infos of its envs."""
        return _stack_results(self.pending.pop(group))

    def attribute(self, name: str) -> list:
        """`env.<name>` of every env, in order (None where an env has no such attribute)."""
        self.pending.check_idle("attribute")
        return self.group.attribute(name, range(len(self)))

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak resident memory in MiB: {"main": ...} (the environments live in this process)."""
        return {"main": peak_rss_mb_of_this_process()}

    def close(self) -> None:
        self.group.close()


class ProcessEnvPool:
    """Environments spread over `workers` processes (fresh interpreters running experiments.envworker, so
    EGL and torch state are never forked and the workers import neither torch nor the main module),
    env i on worker i % workers; commands go to every worker concerned first, then replies are collected,
    so the workers step and render in parallel (and, with `submit_step`, while this process encodes).

    Commands are small and replies large: a worker that has finished a step may wait in `send` until its
    reply is read, but never while this process waits to send it a command, so nothing deadlocks."""

    def __init__(self, make_env: Callable[[], object], n: int, workers: int):
        self.workers = max(1, min(workers, n))
        self.n = n
        self.connections, self.processes = [], []
        # the workers find what the main process finds (its sys.path: the checkout, tests/ under pytest)
        env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}
        for w in range(self.workers):
            parent, child = socket.socketpair()
            process = subprocess.Popen(
                [sys.executable, "-m", "experiments.envworker", str(child.fileno())], pass_fds=[child.fileno()], env=env
            )
            child.close()
            connection = Connection(parent.detach())
            connection.send((make_env, len(range(w, n, self.workers))))
            self.connections.append(connection)
            self.processes.append(process)
        for connection in self.connections:
            self._receive(connection)
        self.pending = PendingSteps()

    def __len__(self) -> int:
        return self.n

    def _receive(self, connection):
        try:
            status, payload = connection.recv()
        except EOFError as err:
            raise RuntimeError("an evaluation worker process died (see its output above)") from err
        if status == "error":
            raise RuntimeError(f"evaluation worker failed:\n{payload}")
        return payload

    def _send(self, command: str, indices: Sequence[int], payload: Callable[[list[int], list[int]], tuple]):
        """Send `command` to each worker holding some of the envs `indices`, with `payload(positions, local)`:
        the positions in `indices` of the envs it holds and their indices on the worker. -> the routes."""
        routes = []
        for w, connection in enumerate(self.connections):
            positions = [k for k, i in enumerate(indices) if i % self.workers == w]
            if positions:
                connection.send((command, payload(positions, [indices[k] // self.workers for k in positions])))
                routes.append((w, positions))
        return routes

    def _collect(self, routes, count: int) -> list:
        """The workers' replies to the command sent along `routes`, one item per env, in the envs' order."""
        items = [None] * count
        for w, positions in routes:
            for k, item in zip(positions, self._receive(self.connections[w]), strict=True):
                items[k] = item
        return items

    def reset(self, seeds: Sequence[int], options: Sequence[dict | None] | None = None) -> dict[str, np.ndarray]:
        self.pending.check_idle("reset")
        seeds = list(seeds)
        options = list(options) if options is not None else [None] * len(seeds)

        def payload(positions: list[int], _) -> tuple:
            return [seeds[k] for k in positions], [options[k] for k in positions]

        routes = self._send("reset", range(self.n), payload)
        return _stack_observations(self._collect(routes, self.n))

    def reset_some(self, indices: Sequence[int], seeds: Sequence[int]) -> dict[str, np.ndarray]:
        """Reset the envs at `indices` (ascending) with `seeds`; their stacked observations, in that order."""
        self.pending.check_idle("reset_some")
        indices, seeds = list(indices), list(seeds)
        if len(indices) != len(seeds):
            raise ValueError(f"{len(indices)} indices for {len(seeds)} seeds")
        if indices != sorted(indices):
            raise ValueError(f"indices must be ascending, got {indices}")
        routes = self._send("reset_some", indices, lambda positions, local: (local, [seeds[k] for k in positions]))
        return _stack_observations(self._collect(routes, len(indices)))

    def step(self, actions: np.ndarray, active: np.ndarray):
        """-> stacked observations, rewards [N], terminated [N], infos (list of N dicts)."""
        self.pending.check_idle("step")
        self.submit_step(range(self.n), actions, active)
        return self.wait_step(range(self.n))

    def submit_step(self, group: range, actions: np.ndarray, active: np.ndarray) -> None:
        """Start stepping the envs of `group` (a range of env indices) with actions[k], active[k] for its
        k-th env; the workers step while this process goes on. `wait_step(group)` collects the results."""
        routes = self._send("step", group, lambda positions, local: (actions[positions], active[positions], local))
        self.pending.push(group, routes)

    def wait_step(self, group: range):
        """The results of `group`'s submitted step: observations, rewards, terminated, infos of its envs."""
        return _stack_results(self._collect(self.pending.pop(group), len(group)))

    def attribute(self, name: str) -> list:
        """`env.<name>` of every env, in order (None where an env has no such attribute)."""
        self.pending.check_idle("attribute")
        routes = self._send("attribute", range(self.n), lambda positions, local: (name, local))
        return self._collect(routes, self.n)

    def worker_stats(self) -> list[dict]:
        """Per worker: its peak resident memory (`peak_rss_mb`) and whether it imported torch (`imports_torch`)."""
        self.pending.check_idle("worker_stats")
        for connection in self.connections:
            connection.send(("stats", None))
        return [self._receive(connection) for connection in self.connections]

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak resident memory in MiB of this process and of each worker: {"main": ..., "worker0": ...}."""
        workers = {f"worker{w}": stats["peak_rss_mb"] for w, stats in enumerate(self.worker_stats())}
        return {"main": peak_rss_mb_of_this_process(), **workers}

    def close(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(BrokenPipeError, OSError):
                connection.send(("close", None))
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait()


AUTO_MIN_ENVS = 4  # below this, spawning workers costs more than it saves


def usable_cpus() -> int:
    """The cores this process may use: a SLURM job's `--cpus-per-task`, else the CPU affinity mask (a job
    or container limited to some cores), else the machine's count."""
    if (slurm := os.environ.get("SLURM_CPUS_PER_TASK", "")).isdigit() and int(slurm) > 0:
        return int(slurm)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def make_pool(make_env: Callable[[], object], n: int, workers: int | str = "auto"):
    """A process pool when several workers help, else a serial pool. `make_env` must be picklable.

    `workers="auto"`: one worker per usable core (`usable_cpus`) when there are at least AUTO_MIN_ENVS
    environments."""
    if workers == "auto":
        workers = usable_cpus() if n >= AUTO_MIN_ENVS else 1
    workers = min(int(workers), n)
    return ProcessEnvPool(make_env, n, workers) if workers > 1 else SerialEnvPool(make_env, n)


def choose_groups(setting: int | str, pool, encoder_device: str = "cpu") -> int:
    """The number of groups G a rollout on `pool` uses (setting `eval_groups`). `auto`: 2 when the encoder runs
    on an accelerator while worker processes step at least AUTO_MIN_ENVS envs (the encoder then works on one
    group while the CPUs step the other), else 1 (lockstep). On a CPU-only machine the encoder and the workers
    share the cores, and overlapping them measured slower (`nox -s bench`: 6.9 vs 9.3 frames/s, docs/speed.md).
    A number is capped at one group per env."""
    if setting == "auto":
        overlap = encoder_device != "cpu" and isinstance(pool, ProcessEnvPool) and len(pool) >= AUTO_MIN_ENVS
        return 2 if overlap else 1
    return min(int(setting), len(pool))
