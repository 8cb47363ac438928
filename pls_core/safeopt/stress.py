"""Stress problems for the safety certificate: responses the optimizer's own GP prior does not describe.

`synthetic.py` draws J_r, J_g from the very prior the optimizer assumes, so its confidence bounds hold
by construction. A robot's response is not a draw from a hand-picked kernel; these families break the
prior on purpose, each in one way that real CDT responses do:

* knee_r / knee_g: the cost is flat in R (in G: gently rising) up to a random knee, then climbs steeply
  (3 b over a third of the assumed cost lengthscale): a smoother kernel extrapolates the flat part.
* cliff: flat then a sigmoid step of 3 b across a random oblique line, rising within one third of the
  assumed lengthscales; nothing before it warns.
* heavy_tail: smooth mean, but each episode is, with a probability that grows with G, a far outlier
  (uniform 40-100 at b = 20, as Walker2d's episodes); the rest are tight. The spread of 20 episodes
  underestimates the noise whenever no outlier happens to fall among them.
* short_lengthscale: a draw from the assumed prior with both cost lengthscales 3x shorter.
* drift: a smooth response whose cost rises by b / 4 over the run (wear, a changing environment).

The problem shape follows `OptimizerConfig.for_task` for a velocity task at b = 20 (reward lengthscale
100 along R, grid step a quarter of it; cost kernel [5 x 100, b / 2], cost output scale b / 2, prior
mean "target"), on a smaller grid so that a hundred seeds run in minutes. Every problem keeps its seed
box safe (Assumption 7) and has safe targets above the box's best. `run_stress` returns the study's
numbers for one run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pls_core.safeopt.config import ROBUST_COST_LENGTHSCALE_FACTORS, OptimizerConfig
from pls_core.safeopt.grid import TargetGrid
from pls_core.safeopt.records import EpisodeRecord

FAMILIES = ("knee_r", "knee_g", "cliff", "heavy_tail", "short_lengthscale", "drift")
THRESHOLD = 20.0
EPISODE_COST_SD = 4.5  # per-episode cost noise of the Gaussian families (cost_noise_variance 1 at 20)
EPISODE_REWARD_SD = 22.0
TAIL_RANGE = (40.0, 100.0)  # heavy_tail outliers, uniform (raw cost; b = 20)
EXCEEDANCE_LIMIT = 0.1  # per-episode view: a proposal is episode-unsafe if > 10% of its episodes exceed b
MARGIN = 0.2  # regret is measured against targets with J_g <= (1 - MARGIN) b reachable from Z0


def stress_config(**overrides) -> OptimizerConfig:
    """`for_task`'s velocity-task settings at b = 20 on a 25 x 21 grid (R step 25, G step 2)."""
    b = THRESHOLD
    base = dict(
        task="stress", threshold=b, reward_range=(0.0, 600.0), cost_range=(0.0, 2 * b),
        seed_reward_range=(0.0, 100.0), seed_cost_range=(0.0, 4.0), grid_resolution=(25, 21),
        reward_lengthscale=(100.0, b / 2), reward_kernel_variance=100.0,
        cost_lengthscale=(500.0, b / 2), cost_output_scale=b / 2,
        cost_lengthscale_factors=ROBUST_COST_LENGTHSCALE_FACTORS,
        reward_noise_variance=EPISODE_REWARD_SD ** 2 / 20, cost_noise_variance=EPISODE_COST_SD ** 2 / 20,
        episodes_per_evaluation=20, max_exploration_iterations=8, max_maximisation_iterations=12,
        max_episode_length=1000, cost_return_limits=(0.0, 1000.0))
    return OptimizerConfig.from_dict({**base, **overrides})


@dataclass
class StressProblem:
    family: str
    config: OptimizerConfig
    grid: TargetGrid = field(repr=False)
    reward: np.ndarray  # true J_r on the grid
    cost: np.ndarray  # true mean J_g on the grid at evaluation 0
    drift_per_evaluation: float = 0.0  # J_g(z, t) = cost + t x this, t = evaluations made so far
    tail_probability: np.ndarray | None = None  # heavy_tail: per-point chance an episode is an outlier
    low_mean: np.ndarray | None = None  # heavy_tail: mean of the non-outlier episodes

    def cost_at(self, t: int) -> np.ndarray:
        return self.cost + self.drift_per_evaluation * t

    def exceedance(self) -> np.ndarray:
        """P(one episode's cost > b) per point (heavy_tail exact; Gaussian families from the normal)."""
        b = self.config.threshold
        if self.tail_probability is not None:
            from scipy.stats import norm

            low = norm.sf(b, self.low_mean, EPISODE_COST_SD / 3)
            return self.tail_probability + (1 - self.tail_probability) * low
        from scipy.stats import norm

        return norm.sf(b, self.cost, EPISODE_COST_SD)

    def best_reachable_reward(self, t: int) -> float:
        """max J_r over points reachable from Z0 through 8-neighbours with J_g <= (1 - MARGIN) b."""
        inside = (self.cost_at(t) <= (1 - MARGIN) * self.config.threshold) | self.grid.seed_mask
        reached = self.grid.seed_mask.copy()
        while True:
            grown = self.grid.dilate(reached) & inside
            if (grown == reached).all():
                return float(self.reward[reached].max())
            reached = grown

    def episode(self, index: int, t: int, rng: np.random.Generator, number: int) -> EpisodeRecord:
        reward = self.reward[index] + EPISODE_REWARD_SD * rng.normal()
        if self.tail_probability is not None and rng.random() < self.tail_probability[index]:
            cost = rng.uniform(*TAIL_RANGE)
        elif self.tail_probability is not None:
            cost = self.low_mean[index] + EPISODE_COST_SD / 3 * rng.normal()
        else:
            cost = self.cost_at(t)[index] + EPISODE_COST_SD * rng.normal()
        return EpisodeRecord(self.grid.target(index), float(reward), float(np.clip(cost, 0.0, 1000.0)), 1000,
                             truncated=True, episode=number)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


MAX_REDRAWS = 100


def sample_problem(family: str, seed: int, config: OptimizerConfig | None = None,
                   _redraw: int = 0) -> StressProblem:
    """One problem of `family`, drawn with `seed`; the grid and threshold come from `config`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown stress family {family!r}; choose from {', '.join(FAMILIES)}")
    config = config or stress_config()
    grid = TargetGrid.from_config(config)
    rng = np.random.default_rng([seed, FAMILIES.index(family), 271])
    r, g = grid.points[:, 0], grid.points[:, 1]
    b = config.threshold
    l_r, l_g = (config.cost_lengthscale if isinstance(config.cost_lengthscale, tuple)
                else (config.cost_lengthscale,) * 2)
    reward = r + 5.0 * g  # rises with both targets: the best safe target lies on the safe set's edge
    seed_r_hi, seed_g_hi = config.seed_reward_range[1], config.seed_cost_range[1]
    r_hi, g_hi = config.reward_range[1], config.cost_range[1]
    problem = StressProblem(family, config, grid, reward, np.zeros_like(r))
    if family == "knee_r":
        knee = rng.uniform(seed_r_hi + 25.0, 0.75 * r_hi)
        slope = 3 * b / (l_r / 3)
        width = grid.steps[0]
        problem.cost = 2.0 + 0.3 * g + slope * width * _softplus((r - knee) / width)
    elif family == "knee_g":
        knee = rng.uniform(seed_g_hi + 2.0, 0.8 * b)
        slope = 3 * b / (l_g / 3)
        width = grid.steps[1]
        problem.cost = 2.0 + 0.3 * g + 0.002 * r + slope * width * _softplus((g - knee) / width)
    elif family == "cliff":
        # The cliff line crosses the R axis at r0 (G = 0) and the G axis at g0 (R = 0), outside the seed box.
        r0 = rng.uniform(seed_r_hi + 50.0, r_hi)
        g0 = rng.uniform(seed_g_hi + 4.0, g_hi)
        distance = (r / r0 + g / g0 - 1.0) / math.hypot(l_r / r0, l_g / g0)  # in cost lengthscales
        scale = 1 / 12  # the sigmoid rises 3 b over ~4 scales = a third of a lengthscale
        problem.cost = 2.0 + 0.2 * g + 3 * b * _sigmoid(distance / scale)
    elif family == "heavy_tail":
        p = 0.02 + 0.3 * _sigmoid((g - rng.uniform(6.0, 20.0)) / 2.0)
        low = 1.0 + 0.2 * g
        problem.tail_probability, problem.low_mean = p, low
        problem.cost = (1 - p) * low + p * float(np.mean(TAIL_RANGE))
    elif family == "short_lengthscale":
        problem.cost = _gp_draw(config, grid, (l_r / 3, l_g / 3), rng)
    elif family == "drift":
        problem.cost = 2.0 + 0.5 * g + 0.004 * r
        total = config.max_exploration_iterations + config.max_maximisation_iterations
        problem.drift_per_evaluation = (b / 4) / total
    if not (problem.cost[grid.seed_mask] <= b).all():  # Assumption 7: redraw with the next seed
        if _redraw >= MAX_REDRAWS:
            raise RuntimeError(f"no {family} problem with a safe seed box in {MAX_REDRAWS} draws")
        return sample_problem(family, seed + 100_003, config, _redraw + 1)
    return problem


def _gp_draw(config: OptimizerConfig, grid: TargetGrid, lengthscale: tuple[float, float],
             rng: np.random.Generator) -> np.ndarray:
    """The cost prior (mean G, sd = output scale) with `lengthscale`, drawn on the grid."""
    points = grid.points / np.asarray(lengthscale)
    sq = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    k = np.exp(-0.5 * sq) + 1e-8 * np.eye(len(points))
    root = np.linalg.cholesky(k)
    scale = config.effective_cost_output_scale * math.sqrt(config.cost_kernel_variance)
    for _ in range(200):
        cost = grid.points[:, 1] + scale * (root @ rng.standard_normal(len(points)))
        if (cost[grid.seed_mask] <= config.threshold).all():
            return cost
    raise RuntimeError("no short-lengthscale draw with a safe seed box in 200 tries")


def run_stress(problem: StressProblem, method: str = "pls", **overrides) -> dict:
    """One run of `method` (config overrides on top of the problem's) on `problem`: the study's numbers.

    unsafe: proposals whose true mean cost at the time exceeded b; final_safe: the operation target's;
    regret: (best reachable safe reward - final reward) / reward range over the grid (inf if unsafe);
    safe_share: certified points among the truly safe ones at the end; false_certificates: certified
    points that are truly unsafe; exceedance: mean P(episode cost > b) over the proposals; episode_unsafe:
    proposals where that probability exceeds EXCEEDANCE_LIMIT.
    """
    from pls_core.safeopt.factory import build_optimizer

    config = problem.config.replace(method=method, **overrides)
    optimizer = build_optimizer(config)
    evaluations = config.max_exploration_iterations + config.max_maximisation_iterations
    b = config.threshold
    number = 0
    unsafe, exceedances = 0, []
    exceedance = problem.exceedance()
    while optimizer.iteration < evaluations and optimizer.current.phase.value != "halted":
        t = optimizer.iteration
        index = problem.grid.index_of(optimizer.current.target)
        unsafe += int(problem.cost_at(t)[index] > b)
        exceedances.append(float(exceedance[index]))
        rng = np.random.default_rng([config.seed, 104729, t])
        for _ in range(config.episodes_per_evaluation):
            optimizer.report_episode(problem.episode(index, t, rng, number))
            number += 1
    t = optimizer.iteration
    halted = optimizer.current.phase.value == "halted"
    final = problem.grid.index_of(optimizer.current.best_target if halted else optimizer.current.target)
    truth = problem.cost_at(t)
    final_safe = bool(truth[final] <= b)
    spread = float(np.ptp(problem.reward))
    regret = (problem.best_reachable_reward(t) - problem.reward[final]) / spread if final_safe else math.inf
    certified = optimizer.model.safe
    truly_safe = truth <= b
    return {"unsafe": unsafe, "proposals": len(exceedances), "final_safe": final_safe, "regret": regret,
            "safe_share": float((certified & truly_safe).sum() / max(1, truly_safe.sum())),
            "false_certificates": int((certified & ~truly_safe).sum()), "halted": halted,
            "exceedance": float(np.mean(exceedances)) if exceedances else 0.0,
            "episode_unsafe": int(sum(e > EXCEEDANCE_LIMIT for e in exceedances))}
