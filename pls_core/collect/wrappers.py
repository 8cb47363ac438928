"""Gymnasium view of a Safety-Gymnasium env for stable-baselines3, which knows only a scalar reward."""

from __future__ import annotations

import gymnasium


class CostPenaltyEnv(gymnasium.Wrapper):
    """Standard 5-tuple env whose reward is r - penalty * c.

    Training behaviour policies with a fixed cost penalty gives policies of graded safety; the raw reward
    and cost stay in `info["reward"]` / `info["cost"]` so evaluation reports the real quantities.
    """

    def __init__(self, env: gymnasium.Env, cost_penalty: float):
        super().__init__(env)
        self.cost_penalty = float(cost_penalty)

    def step(self, action):
        obs, reward, cost, terminated, truncated, info = self.env.step(action)
        info = {**info, "reward": float(reward), "cost": float(cost)}
        return obs, float(reward) - self.cost_penalty * float(cost), terminated, truncated, info
