"""Gymnasium view of a Safety-Gymnasium env for stable-baselines3, which knows only a scalar reward."""

from __future__ import annotations

import math

import gymnasium


class CostPenaltyEnv(gymnasium.Wrapper):
    """Standard 5-tuple env whose reward is r - penalty * c.

    Training behaviour policies with a fixed cost penalty gives policies of graded safety; the raw reward
    and cost stay in `info["reward"]` / `info["cost"]` so evaluation reports the real quantities.
    With `speed_margin` < 1 (velocity tasks only) the penalty falls on every step faster than that share
    of the task's speed limit instead: a cautious policy that keeps room below the limit, so a model that
    imitates it with small errors still does not cross it.
    """

    def __init__(self, env: gymnasium.Env, cost_penalty: float, speed_margin: float = 1.0):
        super().__init__(env)
        self.cost_penalty = float(cost_penalty)
        self.speed_margin = float(speed_margin)
        self.penalised_speed = None
        if self.speed_margin < 1.0:
            limit = getattr(env.unwrapped, "_velocity_threshold", None)  # Safety-Gymnasium velocity tasks
            if limit is None:
                raise ValueError(f"speed_margin {speed_margin} needs a velocity task (one with a speed "
                                 f"limit); {type(env.unwrapped).__name__} has none")
            self.penalised_speed = self.speed_margin * float(limit)

    def step(self, action):
        obs, reward, cost, terminated, truncated, info = self.env.step(action)
        info = {**info, "reward": float(reward), "cost": float(cost)}
        if self.penalised_speed is None:
            penalised = cost
        else:  # the speed the task's cost measures: planar where it reports y (Ant), forward otherwise
            penalised = math.hypot(info["x_velocity"], info.get("y_velocity", 0.0)) > self.penalised_speed
        return obs, float(reward) - self.cost_penalty * float(penalised), terminated, truncated, info
