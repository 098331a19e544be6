"""Augmented random search (ARS, Mania, Guy & Recht 2018, arXiv:1803.07055) for linear state policies.

Version V2-t of the paper: the policy is `a = clip(W @ (s - mean) / std + b)` with the state statistics
updated from every state visited during training; each iteration perturbs the parameters along N
random directions (both signs, the same episode seed for the pair), keeps the `top` best directions
and steps along their return differences, scaled by the standard deviation of the returns used.
It needs no gradients and no replay buffer, and a rollout costs only simulator steps, so it reaches
good returns on this CPU in minutes where SAC needs hours (reference/feasibility.md section 4).
Everything is seeded: the same config and seed give the same parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ARSConfig:
    iterations: int = 300
    directions: int = 16  # N: random directions per iteration (2N rollouts)
    top: int = 8  # b: directions kept for the update
    step_size: float = 0.02  # alpha
    noise: float = 0.03  # nu: exploration noise on the parameters
    train_horizon: int = 1000  # episode length during training (evaluation uses the task's horizon)
    eval_every: int = 10
    eval_episodes: int = 5
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class LinearPolicy:
    """`a = clip(W @ (s - mean) / std + b, low, high)`: the whole expert, a few KB of numbers."""

    def __init__(self, W: np.ndarray, b: np.ndarray, mean: np.ndarray, std: np.ndarray, low, high):
        self.W, self.b, self.mean, self.std = W, b, mean, std
        self.low, self.high = np.asarray(low, np.float64), np.asarray(high, np.float64)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return np.clip(self.W @ ((state - self.mean) / self.std) + self.b, self.low, self.high)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"W": self.W, "b": self.b, "mean": self.mean, "std": self.std, "low": self.low, "high": self.high}

    @classmethod
    def from_arrays(cls, z) -> LinearPolicy:
        return cls(z["W"], z["b"], z["mean"], z["std"], z["low"], z["high"])


class RunningStat:
    """Mean and variance of every state seen, merged batch by batch (Chan et al.'s parallel update)."""

    def __init__(self, dim: int):
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def update(self, batch: np.ndarray) -> None:
        if not len(batch):
            return
        n_b, mean_b = len(batch), batch.mean(axis=0)
        m2_b = ((batch - mean_b) ** 2).sum(axis=0)
        delta, total = mean_b - self.mean, self.n + n_b
        self.mean = self.mean + delta * n_b / total
        self.m2 = self.m2 + m2_b + delta**2 * self.n * n_b / total
        self.n = total

    @property
    def std(self) -> np.ndarray:
        var = self.m2 / max(self.n - 1, 1)
        return np.where(var < 1e-8, 1.0, np.sqrt(var))


def episode_return(env, policy: Callable[[np.ndarray], np.ndarray], seed: int, horizon: int, states=None) -> float:
    """Return of one episode on the env's `state` observation; appends visited states to `states`."""
    obs, _ = env.reset(seed=int(seed))
    total = 0.0
    for _ in range(horizon):
        if states is not None:
            states.append(obs["state"])
        obs, reward, terminated, truncated, _ = env.step(policy(obs["state"]))
        total += reward
        if terminated or truncated:
            break
    return total


def train_ars(
    env,
    config: ARSConfig,
    evaluate: Callable[[LinearPolicy], float],
    log: Callable[[str], None] = print,
) -> tuple[LinearPolicy, list[dict]]:
    """Train a linear policy on `env` (obs["state"] -> action); returns the best evaluated policy and the log."""
    rng = np.random.default_rng(config.seed)
    state_dim = env.observation_space["state"].shape[0]
    low, high = env.action_space.low, env.action_space.high
    params = np.zeros((len(low), state_dim + 1))  # [W | b]
    stat = RunningStat(state_dim)
    stat.update(np.stack([env.reset(seed=int(s))[0]["state"] for s in rng.integers(2**31, size=8)]))
    best, best_score, history = None, -np.inf, []
    start = time.perf_counter()

    def policy_of(theta: np.ndarray, mean: np.ndarray, std: np.ndarray) -> LinearPolicy:
        return LinearPolicy(theta[:, :-1].copy(), theta[:, -1].copy(), mean.copy(), std.copy(), low, high)

    for iteration in range(1, config.iterations + 1):
        mean, std = stat.mean.copy(), stat.std.copy()  # frozen within an iteration
        deltas = rng.standard_normal((config.directions, *params.shape))
        seeds = rng.integers(2**31, size=config.directions)
        returns = np.zeros((config.directions, 2))
        visited: list[np.ndarray] = []
        for k in range(config.directions):
            for j, sign in enumerate((1.0, -1.0)):
                candidate = policy_of(params + sign * config.noise * deltas[k], mean, std)
                returns[k, j] = episode_return(env, candidate, seeds[k], config.train_horizon, visited)
        order = np.argsort(returns.max(axis=1))[-config.top :]
        sigma = returns[order].std() or 1.0
        params += (
            config.step_size
            / (config.top * sigma)
            * np.einsum("k,kij->ij", returns[order, 0] - returns[order, 1], deltas[order])
        )
        stat.update(np.stack(visited))
        if iteration % config.eval_every == 0 or iteration == config.iterations:
            policy = policy_of(params, stat.mean, stat.std)
            score = evaluate(policy)
            history.append(
                {
                    "iteration": iteration,
                    "eval_return": score,
                    "train_return": float(returns.mean()),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            log(
                f"iter {iteration:4d}  train {returns.mean():8.1f}  eval {score:8.1f}  "
                f"({time.perf_counter() - start:6.0f} s)"
            )
            if score > best_score:
                best, best_score = policy, score
    assert best is not None
    return best, history
