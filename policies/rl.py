"""Reinforcement-learning heads on frozen features: a stable-baselines3 `VecEnv` whose observations
are frozen-encoder features, and the model builders for `policy=ppo|sac`.

`FrozenFeatureVecEnv` wraps an env pool (`experiments.cells.envpool`: N task environments stepped together,
in this process or in worker processes). Every `step_wait` runs ONE batched encoder forward over the
frames of all N environments, then fuses each environment's frame history exactly as the imitation
heads see it (FLARE deltas over the last K embeddings, `policies.fusion`) and appends proprioception:

    observation[i] = concat(flatten(fuse(history_i)), proprio_i)        # float32 [K * D + P]

Episode boundaries (autoreset, as SB3's own `DummyVecEnv` does it): when environment i finishes, its
final observation (the history with the last frame pushed) goes to `infos[i]["terminal_observation"]`,
`infos[i]["TimeLimit.truncated"]` says whether the time limit ended it (so PPO/SAC bootstrap from the
final value), the environment is reset with the next training seed, and its history restarts from
the first frame of the new episode (padded, as `HistoryBuffer.reset` does at evaluation). The final
frames of finished environments are encoded in the same batched forward as everyone's next frame.
Time limits: every suite's env truncates at the horizon it was built with; the pool reports only
`terminated`, so the wrapper counts steps and truncates at the same horizon.

The encoder is frozen: `FrozenEncoder.encode` runs the module in eval mode under
`torch.inference_mode()` with `requires_grad_(False)`, and SB3 only ever sees numpy features, so no
gradient can reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvStepReturn

from policies.fusion import fuse

ALGORITHMS = ("ppo", "sac")  # `policy=` values (policies.RL_POLICIES), trained by experiments/cells/rl.py


class FrozenFeatureVecEnv(VecEnv):
    """N environments of one task as an SB3 VecEnv of frozen-encoder features (+ history, proprio).

    `pool`: an env pool (`reset(seeds)`, `reset_some(indices, seeds)`, `step(actions, active)`, `close()`);
    `encode(frames uint8 [B,H,W,3]) -> [B, D]` one batched forward of the frozen encoder;
    `episode_seeds`: the seed of every training episode, in the order environments are (re)set.
    """

    def __init__(
        self,
        pool,
        encode: Callable[[np.ndarray], torch.Tensor],
        *,
        embed_dim: int,
        history: int,
        fusion: str,
        proprio_dim: int,
        horizon: int,
        action_space: gym.spaces.Box,
        episode_seeds: Iterator[int],
    ):
        self.pool = pool
        self.encode = encode
        self.history = history
        self.fusion = fusion
        self.proprio_dim = proprio_dim
        self.horizon = horizon
        self.episode_seeds = episode_seeds
        n = len(pool)
        observation_space = gym.spaces.Box(-np.inf, np.inf, (history * embed_dim + proprio_dim,), np.float32)
        super().__init__(n, observation_space, action_space)
        self._hist: torch.Tensor | None = None  # [N, K, D], oldest first
        self._steps = np.zeros(n, dtype=np.int64)  # steps into the current episode
        self._returns = np.zeros(n, dtype=np.float64)
        self._actions: np.ndarray | None = None
        self.seeds_used: list[list[int]] = [[] for _ in range(n)]  # the seed of every episode each env ran
        self.frames_encoded = 0

    # --- observation assembly -------------------------------------------------------------
    def _observation(self, hist: torch.Tensor, proprio: np.ndarray) -> np.ndarray:
        fused = fuse(hist, self.fusion).flatten(1)
        proprio_t = torch.as_tensor(np.asarray(proprio, dtype=np.float32).reshape(len(hist), self.proprio_dim))
        return torch.cat([fused, proprio_t], dim=1).numpy().astype(np.float32, copy=False)

    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        self.frames_encoded += len(frames)
        with torch.inference_mode():
            features = torch.as_tensor(self.encode(frames), dtype=torch.float32)
        return features.clone()  # outside inference mode: an ordinary tensor the history can be edited in

    def _next_seeds(self, indices) -> list[int]:
        seeds = [int(next(self.episode_seeds)) for _ in indices]
        for i, s in zip(indices, seeds, strict=True):
            self.seeds_used[i].append(s)
        return seeds

    # --- VecEnv API -----------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        obs = self.pool.reset(self._next_seeds(range(self.num_envs)))
        first = self._encode(obs["pixels"])
        self._hist = first.unsqueeze(1).repeat_interleave(self.history, dim=1)
        self._steps[:] = 0
        self._returns[:] = 0.0
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self._observation(self._hist, obs["proprio"])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._hist is not None and self._actions is not None, "reset() before step()"
        n = self.num_envs
        obs, rewards, terminated, pool_infos = self.pool.step(self._actions, np.ones(n, dtype=bool))
        self._steps += 1
        self._returns += rewards
        truncated = self._steps >= self.horizon
        dones = np.asarray(terminated, dtype=bool) | truncated
        finished = np.flatnonzero(dones)
        infos: list[dict[str, Any]] = [dict(info) for info in pool_infos]

        final_frames = obs["pixels"][finished].copy()
        final_proprio = obs["proprio"][finished].copy()
        if finished.size:  # autoreset: the next observation of a finished env is the first of its next episode
            fresh = self.pool.reset_some(finished.tolist(), self._next_seeds(finished.tolist()))
            for key in obs:
                obs[key][finished] = fresh[key]

        # One batched forward: every env's next frame, then the final frames of the finished ones.
        features = self._encode(np.concatenate([obs["pixels"], final_frames]) if finished.size else obs["pixels"])
        current, final = features[:n], features[n:]

        pushed = torch.cat([self._hist[:, 1:], current.unsqueeze(1)], dim=1)
        if finished.size:
            terminal_hist = torch.cat([self._hist[finished, 1:], final.unsqueeze(1)], dim=1)
            terminal_obs = self._observation(terminal_hist, final_proprio)
            pushed[finished] = current[finished].unsqueeze(1).repeat_interleave(self.history, dim=1)
            for row, i in enumerate(finished):
                infos[i]["terminal_observation"] = terminal_obs[row]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                infos[i]["episode"] = {"r": float(self._returns[i]), "l": int(self._steps[i])}  # SB3 Monitor keys
            self._steps[finished] = 0
            self._returns[finished] = 0.0
        self._hist = pushed
        return self._observation(self._hist, obs["proprio"]), rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.pool.close()

    # Attribute access to the underlying envs is not offered: they may live in worker processes.
    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if attr_name == "render_mode":  # nothing is rendered for display
            return [None] * len(list(self._get_indices(indices)))
        raise AttributeError(f"FrozenFeatureVecEnv does not expose env attribute {attr_name!r}")

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        raise AttributeError(f"FrozenFeatureVecEnv cannot set env attribute {attr_name!r}")

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        raise AttributeError(f"FrozenFeatureVecEnv cannot call env method {method_name!r}")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * self.num_envs

    def get_images(self):
        return [None] * self.num_envs


def build_model(policy: str, venv: VecEnv, hyperparameters: dict, seed: int, device: str):
    """A stable-baselines3 PPO or SAC model on `venv` with an MLP of `net_arch` (our protocol's values)."""
    from stable_baselines3 import PPO, SAC

    if policy not in ALGORITHMS:
        raise ValueError(f"unknown RL policy {policy!r}; choose one of {list(ALGORITHMS)}")
    kwargs = dict(hyperparameters)
    net_arch = list(kwargs.pop("net_arch", [256, 256]))
    algorithm = PPO if policy == "ppo" else SAC
    return algorithm(
        "MlpPolicy", venv, policy_kwargs={"net_arch": net_arch}, seed=seed, device=device, verbose=0, **kwargs
    )


class DeterministicActor(torch.nn.Module):
    """An SB3 model as a head for `experiments.cells.rollout`: (fused history [1,K,D], proprio [1,P]) -> action.

    The observation is assembled exactly as `FrozenFeatureVecEnv` assembles it; actions are the
    deterministic ones (PPO: the Gaussian mean, clipped to the action space; SAC: tanh of the mean).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, history: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        obs = torch.cat([history.flatten(1), proprio.reshape(len(history), -1)], dim=1).cpu().numpy()
        action, _ = self.model.predict(obs.astype(np.float32), deterministic=True)
        return torch.as_tensor(np.asarray(action), dtype=torch.float32)
