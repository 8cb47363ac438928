"""Baselines behind the same interface, on the same budget as PLS.

Each baseline evaluates `max_exploration_iterations + max_maximisation_iterations` targets, then operates;
they keep the same GPs and cost intervals only to report bounds (`verified_safe` says whether the
target happened to be certified safe). None of them restricts itself to the safe set.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from pls_core.safeopt.base import STREAM_RANDOM_SEARCH, Choice, TargetOptimizer
from pls_core.safeopt.records import Phase

# Only PLS's operation choice reads the measured-cost margin (random search falls back to the base rule
# before any evaluation, when there is nothing measured to check), and only PLS's safe set the cost kernels.
_BASELINE_UNUSED = frozenset({"operation_cost_margin_se", "cost_lengthscale_factors", "cost_kernel_evidence"})


class FixedTargetOptimizer(TargetOptimizer):
    """CDT as OSRL evaluates it: R = the dataset's max return (grid maximum if unknown), G = b, forever."""

    method = "fixed"
    unused_config_fields = _BASELINE_UNUSED

    def _choose(self) -> Choice:
        reward = self.config.dataset_reward_max
        reward = float(self.config.reward_range[1] if reward is None else reward)
        return Choice((reward, float(self.config.threshold)), Phase.OPERATION, 1)


class _BudgetedBaseline(TargetOptimizer):
    unused_config_fields = _BASELINE_UNUSED

    @property
    def budget(self) -> int:
        return self.config.max_exploration_iterations + self.config.max_maximisation_iterations

    def _choose(self) -> Choice:
        if len(self._round_phases()) < self.budget:  # rounds decided (one robot: decisions)
            return Choice(self.grid.target(self._explore()), Phase.REWARD_MAXIMISATION, self.grid.size)
        return Choice(self._operate(), Phase.OPERATION, 1)

    @abstractmethod
    def _explore(self) -> int:
        """Grid index of the next evaluation."""

    @abstractmethod
    def _operate(self) -> tuple[float, float]:
        """The target to operate on once the budget is spent."""


class GPUCBOptimizer(_BudgetedBaseline):
    """Unconstrained GP-UCB (Srinivas et al.): argmax of the reward upper bound over all of Z, then the
    highest reward lower bound over all of Z. Shows what ignoring the cost costs."""

    method = "gp_ucb"

    def _explore(self) -> int:
        _, upper = self.model.reward_bounds()
        return self.pick(np.arange(self.grid.size), upper)

    def _operate(self) -> tuple[float, float]:
        lower, _ = self.model.reward_bounds()
        return self.grid.target(self.pick(np.arange(self.grid.size), lower))


class RandomSearchOptimizer(_BudgetedBaseline):
    """Uniform random grid points, then the best evaluated target whose observed mean cost was <= b (the
    least costly one if none was)."""

    method = "random"

    def _explore(self) -> int:
        return int(self.rng(STREAM_RANDOM_SEARCH).integers(self.grid.size))

    def _operate(self) -> tuple[float, float]:
        if not self.evaluations:
            return self.grid.target(self.best_safe_index())
        feasible = [e for e in self.evaluations if e[2] <= self.config.threshold]
        if feasible:
            return max(feasible, key=lambda e: e[1])[0]
        return min(self.evaluations, key=lambda e: e[2])[0]
