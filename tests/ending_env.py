"""A task env whose episodes end early, for rollout tests; its own small module so that worker processes,
which unpickle the factory, import only `tasks` (not a test module's torch and encoders)."""

from __future__ import annotations

import tasks


class EndsEarly:
    """The task's env, terminating after `seed % 5 + 3` steps: episodes end at different steps (MetaWorld
    itself never terminates early)."""

    def __init__(self, env):
        self.env = env
        self.steps_left = 0

    def reset(self, seed: int, **kwargs):
        self.steps_left = seed % 5 + 3
        return self.env.reset(seed=seed, **kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps_left -= 1
        return obs, reward, terminated or self.steps_left == 0, truncated, info

    def close(self) -> None:
        self.env.close()


def ending_env(task: str, **kwargs) -> EndsEarly:
    """`make_env` for a pool (use it through functools.partial): the task's env, ending early."""
    return EndsEarly(tasks.get(task).make_env(**kwargs))
