"""Per-task recipes for data from a budget-conditioned PPO-Lagrangian behaviour policy
(pls_core.collect.lagrangian): the budget ladder it trains on, its step budget, and how its rollouts are
perturbed. Tasks listed here are collected this way; the others keep the fixed-penalty SAC recipes
(pls_core.collect.recipes).
"""

from __future__ import annotations

from dataclasses import dataclass

from pls_core.collect.grid_filter import GridSpec
from pls_core.collect.lagrangian import LagrangianRecipe

POLICY_NAME = "budget"  # <behaviour root>/<task>/budget.zip (+ .vecnormalize.pkl, .multiplier.pt)


@dataclass(frozen=True)
class BudgetCollection:
    task_id: str
    policy: LagrangianRecipe
    # Raw episodes rolled out before the grid filter keeps an even spread of them.
    episodes: int = 4000
    max_action_noise: float = 0.3
    min_throttle: float = 0.6
    # Episodes that hold a low budget all earn about the same reward, so they share a few grid cells: at
    # 2 per cell the filter kept 55 of Hopper's 1,265 raw episodes under cost 30 and 900 of its ~1,000
    # others from the falls that the perturbed high-budget episodes spread over many reward cells. 6 per
    # cell of the finished episodes spreads the kept ones evenly over the cost bands up to 120 (chosen on
    # that coverage, docs/method.md).
    grid: GridSpec = GridSpec(per_cell=6, drop_falls=True)

    @property
    def max_budget(self) -> float:
        return max(self.policy.budgets)


# Episode cost budgets from 0 to DSRL's dataset cost range (250; Walker2d 300), spaced so that the low
# costs users constrain to (b = 20, 40) lie between close rungs.
_LADDER = (0.0, 10.0, 20.0, 40.0, 80.0, 150.0, 250.0)

BUDGET_RECIPES: dict[str, BudgetCollection] = {
    c.task_id: c
    for c in (
        # Hopper's policy was trained before falls were charged discounted; it does not fall at low budgets.
        # Throttled below about 0.85 it falls far more often than unthrottled, and the grid filter drops
        # every fall, so weaker throttles only cost rollouts (measurements: docs/method.md).
        BudgetCollection("SafetyHopperVelocity-v1",
                         LagrangianRecipe(_LADDER, timesteps=2_000_000, fall_charge="remaining"),
                         min_throttle=0.85),
        # 2M like the others: Walker2d's training episodes held their budgets best around 2.0-2.1M steps
        # and drifted to longer-than-budget costs and falls by 2.8M (the dual ascent lagging a faster gait).
        BudgetCollection("SafetyWalker2dVelocity-v1",
                         LagrangianRecipe((*_LADDER[:-1], 300.0), timesteps=2_000_000)),
        BudgetCollection("SafetyHalfCheetahVelocity-v1", LagrangianRecipe(_LADDER, timesteps=2_000_000)),
        BudgetCollection("SafetyAntVelocity-v1", LagrangianRecipe(_LADDER, timesteps=3_000_000,
                                                                  net_arch=(128, 128))),
    )
}
