"""The environments one process holds (`EnvGroup`) and the evaluation worker process that serves them.

A worker is started as `python -m experiments.envworker <fd>` (experiments.cells.envpool), not with
multiprocessing's spawn: spawn re-imports the parent's main module in every child (`experiments.eval`, i.e.
torch, timm, torchvision: ~680 MiB and seconds before the first environment). This module imports only the
standard library and numpy, and a `make_env` that unpickles to `task_env` imports only `tasks`, so a worker
holds the environments and little else.
"""

from __future__ import annotations

import resource
import sys
import traceback
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

StepResult = tuple[dict, float, bool, dict]  # observation, reward, terminated, info


def peak_rss_mb_of_this_process() -> float:
    """This process's peak resident memory in MiB (ru_maxrss is in KiB on Linux, in bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


class EnvGroup:
    """The environments held by one process (local indices 0..n-1); finished (terminated) ones repeat
    their last observation."""

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

    def step(self, actions: np.ndarray, active: np.ndarray, indices: Sequence[int] | None = None) -> list[StepResult]:
        """Step the envs at `indices` (default: all), the k-th of them with actions[k] if active[k]."""
        results: list[StepResult] = []
        for k, i in enumerate(range(len(self.envs)) if indices is None else indices):
            if active[k]:
                obs, reward, terminated, _, info = self.envs[i].step(actions[k])
                self._last[i] = obs
                results.append((obs, float(reward), bool(terminated), info))
            else:
                results.append((self._last[i], 0.0, True, {}))
        return results

    def attribute(self, name: str, indices: Sequence[int]) -> list:
        """`env.<name>` of the envs at `indices` (None where an env has no such attribute)."""
        return [getattr(self.envs[i], name, None) for i in indices]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def serve(connection) -> None:
    """Receive `(make_env, n)`, then serve reset/reset_some/step/attribute/stats/close commands for those `n`
    environments, in order, until told to stop or the main process goes away."""
    group = None
    try:
        make_env, n = connection.recv()
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
            elif command == "attribute":
                connection.send(("ok", group.attribute(*payload)))
            elif command == "stats":
                stats = {"peak_rss_mb": peak_rss_mb_of_this_process(), "imports_torch": "torch" in sys.modules}
                connection.send(("ok", stats))
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


def task_env(task: str, **kwargs) -> object:
    import tasks

    return tasks.get(task).make_env(**kwargs)


def task_env_factory(task: str, **kwargs) -> Callable[[], object]:
    """A picklable `make_env` for worker processes: `tasks.get(task).make_env(**kwargs)`."""
    return partial(task_env, task, **kwargs)


if __name__ == "__main__":
    from multiprocessing.connection import Connection

    serve(Connection(int(sys.argv[1])))
