"""A trained budget-conditioned behaviour policy (pls_core.collect.lagrangian) as the rollouts use it: its
saved files, what it sees, and batched deterministic actions for given episode budgets."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def policy_files(folder: Path, name: str) -> dict[str, Path]:
    return {"model": folder / f"{name}.zip", "normaliser": folder / f"{name}.vecnormalize.pkl",
            "multiplier": folder / f"{name}.multiplier.pt"}


def augment(obs: np.ndarray, budgets: np.ndarray, scale: float) -> np.ndarray:
    """(observation, d / scale): what a budget-conditioned policy sees."""
    obs = np.asarray(obs, dtype=np.float32)
    extra = (np.asarray(budgets, dtype=np.float32) / scale).reshape(obs.shape[:-1] + (1,))
    return np.concatenate([obs, extra], axis=-1)


class BudgetPolicy:
    """A trained budget-conditioned policy for rollouts: batched deterministic actions for given budgets."""

    def __init__(self, model, obs_rms, clip_obs: float, epsilon: float, budget_scale: float):
        self.model, self.obs_rms = model, obs_rms
        self.clip_obs, self.epsilon, self.budget_scale = clip_obs, epsilon, budget_scale

    @classmethod
    def load(cls, folder: Path, name: str, budget_scale: float) -> BudgetPolicy:
        """The policy saved as <name> in `folder`; `budget_scale` is its recipe's (the top budget)."""
        import pickle

        from stable_baselines3 import PPO

        files = policy_files(Path(folder), name)
        model = PPO.load(files["model"], device="cpu")
        with open(files["normaliser"], "rb") as handle:
            normaliser = pickle.load(handle)  # a VecNormalize saved without its env
        return cls(model, normaliser.obs_rms, normaliser.clip_obs, normaliser.epsilon, budget_scale)

    def act(self, obs: np.ndarray, budgets: np.ndarray) -> np.ndarray:
        x = augment(obs, budgets, self.budget_scale)
        x = np.clip((x - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.epsilon), -self.clip_obs,
                    self.clip_obs).astype(np.float32)
        actions, _ = self.model.policy.predict(x, deterministic=True)
        return actions
