"""N evaluation environments stepped together, in this process or in worker processes.

Simulation and (CPU) rendering are the expensive part of an evaluation step, so `ProcessEnvPool`
spreads the environments over worker processes that step and render in parallel, while the main
process runs one batched encoder forward over all their frames. Both pools have the same interface
and give identical observations: each environment is reset with its own seed (and reset options, where
given) and stepped with its own action, whichever process holds it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

StepResult = tuple[dict, float, bool, dict]  # observation, reward, terminated, info


class EnvGroup:
    """Environments held by one process; finished (terminated) ones repeat their last observation."""

    def __init__(self, make_env: Callable[[], object], n: int):
        self.envs = [make_env() for _ in range(n)]
        self._last: list[dict] = []

    def reset(self, seeds: Sequence[int], options: Sequence[dict | None] | None = None) -> list[dict]:
        """Reset env i with seeds[i] and, if given, the env's reset options[i] (e.g. a start state's generator)."""
        options = options if options is not None else [None] * len(self.envs)
        self._last = [
            env.reset(seed=int(s), **({} if o is None else {"options": o}))[0]
            for env, s, o in zip(self.envs, seeds, options, strict=True)
        ]
        return self._last

    def reset_some(self, indices: Sequence[int], seeds: Sequence[int]) -> list[dict]:
        """Reset only the envs at `indices` (local to this group), each with its seed (RL autoreset)."""
        for i, s in zip(indices, seeds, strict=True):
            self._last[i] = self.envs[i].reset(seed=int(s))[0]
        return [self._last[i] for i in indices]

    def step(self, actions: np.ndarray, active: np.ndarray) -> list[StepResult]:
        results: list[StepResult] = []
        for i, env in enumerate(self.envs):
            if active[i]:
                obs, reward, terminated, _, info = env.step(actions[i])
                self._last[i] = obs
                results.append((obs, float(reward), bool(terminated), info))
            else:
                results.append((self._last[i], 0.0, True, {}))
        return results

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _stack_observations(observations: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([o[k] for o in observations]) for k in observations[0]}


def _stack_results(results: list[StepResult]):
    obs = _stack_observations([r[0] for r in results])
    return obs, np.array([r[1] for r in results]), np.array([r[2] for r in results]), [r[3] for r in results]


class SerialEnvPool:
    """All environments in this process, stepped one after another."""

    def __init__(self, make_env: Callable[[], object], n: int):
        self.group = EnvGroup(make_env, n)

    def __len__(self) -> int:
        return len(self.group.envs)

    def reset(self, seeds: Sequence[int], options: Sequence[dict | None] | None = None) -> dict[str, np.ndarray]:
        return _stack_observations(self.group.reset(seeds, options))

    def reset_some(self, indices: Sequence[int], seeds: Sequence[int]) -> dict[str, np.ndarray]:
        """Reset the envs at `indices` (ascending) with `seeds`; their stacked observations, in that order."""
        return _stack_observations(self.group.reset_some(list(indices), list(seeds)))

    def step(self, actions: np.ndarray, active: np.ndarray):
        """-> stacked observations, rewards [N], terminated [N], infos (list of N dicts)."""
        return _stack_results(self.group.step(actions, active))

    def close(self) -> None:
        self.group.close()


def _worker(connection, make_env: Callable[[], object], n: int) -> None:
    """Serve reset/step/close commands for `n` environments until told to stop."""
    group = None
    try:
        group = EnvGroup(make_env, n)
        connection.send(("ready", None))
        while True:
            command, payload = connection.recv()
            if command == "reset":
                connection.send(("ok", group.reset(*payload)))
            elif command == "step":
                connection.send(("ok", group.step(*payload)))
            elif command == "reset_some":
                connection.send(("ok", group.reset_some(*payload)))
            elif command == "close":
                break
    except (EOFError, KeyboardInterrupt):  # the main process went away
        pass
    except Exception:
        connection.send(("error", traceback.format_exc()))
    finally:
        if group is not None:
            group.close()
        connection.close()


class ProcessEnvPool:
    """Environments split into contiguous slices over `workers` processes (spawned, so EGL and torch
    state are never forked); commands go to every worker first, then replies are collected, so the
    workers step and render in parallel."""

    def __init__(self, make_env: Callable[[], object], n: int, workers: int):
        workers = max(1, min(workers, n))
        sizes = [n // workers + (1 if w < n % workers else 0) for w in range(workers)]
        self.slices = [slice(sum(sizes[:w]), sum(sizes[: w + 1])) for w in range(workers)]
        context = mp.get_context("spawn")
        self.connections, self.processes = [], []
        for size in sizes:
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child, make_env, size), daemon=True)
            process.start()
            child.close()
            self.connections.append(parent)
            self.processes.append(process)
        for connection in self.connections:
            self._receive(connection)
        self.n = n

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

    def _broadcast(self, command: str, payloads: list) -> list:
        for connection, payload in zip(self.connections, payloads, strict=True):
            connection.send((command, payload))
        return [item for connection in self.connections for item in self._receive(connection)]

    def reset(self, seeds: Sequence[int], options: Sequence[dict | None] | None = None) -> dict[str, np.ndarray]:
        seeds = list(seeds)
        options = list(options) if options is not None else [None] * len(seeds)
        return _stack_observations(self._broadcast("reset", [(seeds[s], options[s]) for s in self.slices]))

    def reset_some(self, indices: Sequence[int], seeds: Sequence[int]) -> dict[str, np.ndarray]:
        """Reset the envs at `indices` (ascending) with `seeds`; their stacked observations, in that order."""
        pairs = list(zip(indices, seeds, strict=True))
        if [i for i, _ in pairs] != sorted(i for i, _ in pairs):
            raise ValueError(f"indices must be ascending, got {list(indices)}")
        payloads = [
            (
                [i - s.start for i, _ in pairs if s.start <= i < s.stop],
                [seed for i, seed in pairs if s.start <= i < s.stop],
            )
            for s in self.slices
        ]
        return _stack_observations(self._broadcast("reset_some", payloads))

    def step(self, actions: np.ndarray, active: np.ndarray):
        return _stack_results(self._broadcast("step", [(actions[s], active[s]) for s in self.slices]))

    def close(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(BrokenPipeError, OSError):
                connection.send(("close", None))
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()


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


def _task_env(task: str, **kwargs) -> object:
    import tasks

    return tasks.get(task).make_env(**kwargs)


def task_env_factory(task: str, **kwargs) -> Callable[[], object]:
    """A picklable `make_env` for worker processes: `tasks.get(task).make_env(**kwargs)`."""
    return partial(_task_env, task, **kwargs)
