"""What every method knows about the grid: the two GPs, the monotone cost intervals, the safe set.

Confidence intervals (pls-method.md §3.2), all in raw return units:
    Omega_N(z) = m(z) + s * [mean_{N-1}(z) -+ alpha_N sd_{N-1}(z)]      (m: prior mean, s: output scale)
    Lambda_N(z) = Lambda_{N-1}(z) intersected with Omega_N(z)          (cost only; monotone)
    Lambda_0(z) = [c_min, b] on seeds Z0,  [c_min, c_max] elsewhere    (c_min, c_max: valid cost returns)
N counts observations + 1, so the first decision uses alpha_1 and the prior.
Kernel-robust certificate: the cost GP is kept under every kernel of `cost_lengthscale_factors` (one exact
grid GP each, same data and noise) and Omega_N is the union of their intervals, so a target is certified
only if it is safe under every kernel (with `cost_kernel_evidence`, every kernel the data have not ruled
out). alpha_N is per kernel: the certificate needs only the kernel that describes the truth.

An empty intersection means the data contradict the confidence model at z (the <= Delta failure event,
or a misspecified kernel). Then a non-seed point restarts from the current interval Omega_N (it may
leave the safe set: we never keep believing a point is safe against the data). A seed point keeps its
upper bound (Assumption 7 says Z0 is safe) unless the data say its cost exceeds b with confidence
(Omega's lower bound above b, with data: the prior alone refutes nothing): then Assumption 7 is refuted
there, the point restarts from Omega like any other and leaves the safe set (`refuted_seeds`); a model
that cannot keep its own seed box safe must not be kept running on it. All conflicts are counted in
`conflicts`.
The reward interval is the current Omega_N, not intersected (the paper does not intersect it, and it
is only used for choosing, never for safety).
With `reward_prior_mean: evidence` the reward GP is kept under both prior means, the commanded R (the
paper's J ~ z) and zero, and the bounds come from the one whose log marginal likelihood on the
evaluations so far is higher (type-II maximum likelihood over the two; the paper's on a tie, so before
any data). The cost GP's prior is fixed: the safety certificate never depends on such a choice.
"""

from __future__ import annotations

import copy

import numpy as np

from pls_core.safeopt.config import OptimizerConfig
from pls_core.safeopt.gp import GridGP, srinivas_alpha
from pls_core.safeopt.grid import TargetGrid
from pls_core.safeopt.safe_set import fake_observation_expanders, lipschitz_expanders, lipschitz_safe_set
from pls_core.safeopt.trend import LinearTrend


class ConfidenceModel:
    def __init__(self, config: OptimizerConfig, grid: TargetGrid) -> None:
        self.config, self.grid = config, grid
        points = grid.points
        self.threshold = config.threshold
        self.reward_scale = config.reward_output_scale
        self.cost_scale = config.effective_cost_output_scale
        zeros = np.zeros(grid.size)
        self.cost_prior_mean = points[:, 1].copy() if config.cost_prior_mean == "target" else zeros.copy()
        # One reward GP per candidate prior mean (two under "evidence"), the paper's first: ties keep it.
        names = ("target", "zero") if config.reward_prior_mean == "evidence" else (config.reward_prior_mean,)
        self.reward_gps = {name: GridGP(points, config.reward_lengthscale, config.reward_kernel_variance,
                                        config.reward_noise_variance / self.reward_scale ** 2)
                           for name in names}
        self._reward_prior_means = {"target": points[:, 0].copy(), "zero": zeros.copy()}
        self.reward_prior = names[0]  # the prior mean the reward bounds use now
        self.reward_trend = None
        if config.reward_trend_slope_sd > 0:
            self.reward_trend = LinearTrend.with_slope_sd(points, config.reward_range,
                                                          config.reward_trend_slope_sd, self.reward_scale)
        # One cost GP per plausible kernel (cost_lengthscale x each factor, one number or one per axis).
        l_r, l_g = config.cost_lengthscale if isinstance(config.cost_lengthscale, tuple) \
            else (config.cost_lengthscale, config.cost_lengthscale)
        factors = [f if isinstance(f, tuple) else (f, f) for f in config.cost_lengthscale_factors]
        self.cost_gps = [GridGP(points, (l_r * f_r, l_g * f_g), config.cost_kernel_variance,
                                config.cost_noise_variance / self.cost_scale ** 2) for f_r, f_g in factors]
        self.cost_plausible = np.ones(len(self.cost_gps), dtype=bool)  # kernels the data have not ruled out
        self.cost_lower = np.full(grid.size, float(config.cost_return_limits[0]))
        self.cost_upper = np.where(grid.seed_mask, self.threshold, config.cost_return_ceiling)
        self.safe = grid.seed_mask.copy()
        self.conflicts = 0
        self.refuted_seeds = np.zeros(grid.size, dtype=bool)
        self.fantasies = 0  # fantasised observations in the GPs (a `fantasised` copy); never in a real model
        self._intersect_cost_intervals()

    # --- updates --------------------------------------------------------------------------------------

    @property
    def num_observations(self) -> int:
        """Real observations (a fantasised copy's fantasies do not count, so alpha is the real one)."""
        return self.cost_gp.num_observations - self.fantasies

    @property
    def cost_gp(self) -> GridGP:
        """The cost GP with the configured kernel (the first of `cost_gps`)."""
        return self.cost_gps[0]

    @property
    def plausible_cost_gps(self) -> list[GridGP]:
        return [gp for gp, keep in zip(self.cost_gps, self.cost_plausible, strict=True) if keep]

    @property
    def reward_gp(self) -> GridGP:
        return self.reward_gps[self.reward_prior]

    @property
    def reward_prior_mean(self) -> np.ndarray:
        """The reward prior mean over the grid, of the prior in use."""
        return self._reward_prior_means[self.reward_prior]

    def observe(self, target: tuple[float, float], reward: float, cost: float,
                reward_noise: float | None = None, cost_noise: float | None = None) -> None:
        """Add one evaluation (mean returns at `target`) to both GPs, then tighten the cost intervals.

        `*_noise` is the evaluation's own noise variance (raw units^2); None uses the configured one.
        Atomic: on GPNumericalError neither GP nor any interval changes.
        """
        r_noise = None if reward_noise is None else reward_noise / self.reward_scale ** 2
        g_noise = None if cost_noise is None else cost_noise / self.cost_scale ** 2
        reward_states = {name: gp.prepare_observation(
            target, (reward - self._reward_prior_at(target, name)) / self.reward_scale, r_noise)
            for name, gp in self.reward_gps.items()}
        cost_y = (cost - self._cost_prior_at(target)) / self.cost_scale
        cost_states = [gp.prepare_observation(target, cost_y, g_noise) for gp in self.cost_gps]
        if self.config.fit_hyperparameters:
            reward_states = {name: self.reward_gps[name].prepare_fit(state, self.config.fit_iterations)
                             for name, state in reward_states.items()}
            cost_states = [gp.prepare_fit(state, self.config.fit_iterations)
                           for gp, state in zip(self.cost_gps, cost_states, strict=True)]
        for name, state in reward_states.items():
            self.reward_gps[name].commit(state)
        for gp, state in zip(self.cost_gps, cost_states, strict=True):
            gp.commit(state)
        if self.config.cost_kernel_evidence is not None:
            log_evidence = np.array([gp.log_marginal_likelihood for gp in self.cost_gps])
            self.cost_plausible = log_evidence >= log_evidence.max() - self.config.cost_kernel_evidence
        evidence = {name: gp.log_marginal_likelihood for name, gp in self.reward_gps.items()}
        self.reward_prior = max(evidence, key=evidence.get)  # the first (the paper's) on a tie
        self._intersect_cost_intervals()

    def fantasised(self, targets: tuple[tuple[float, float], ...]) -> ConfidenceModel:
        """A copy for choosing the next member of a batch while `targets` are pending (proposed, not yet
        evaluated): every GP conditioned on its own posterior mean at each pending target (kriging
        believer, GridGP.fantasised), so the means are unchanged and the widths shrink around the pending
        targets, and a method's width- or bound-based rule looks elsewhere.

        It certifies nothing: `safe`, `refuted_seeds`, `num_observations` (so alpha) and the plausible
        kernels stay the real model's, and its cost intervals are the real ones intersected with the
        fantasised Omega (where that is empty, the real one), so they only narrow. The proposal it picks
        is checked against, and reported with the bounds of, the real model (base._decide).
        """
        other = copy.copy(self)
        other.reward_gps = {name: gp.fantasised(list(targets)) for name, gp in self.reward_gps.items()}
        other.cost_gps = [gp.fantasised(list(targets)) for gp in self.cost_gps]
        other.fantasies = self.fantasies + len(targets)
        omega_lo, omega_hi = other.cost_omega()
        lower, upper = np.maximum(self.cost_lower, omega_lo), np.minimum(self.cost_upper, omega_hi)
        empty = lower > upper
        other.cost_lower = np.where(empty, self.cost_lower, lower)
        other.cost_upper = np.where(empty, self.cost_upper, upper)
        other.safe, other.refuted_seeds = self.safe.copy(), self.refuted_seeds.copy()
        return other

    def _intersect_cost_intervals(self) -> None:
        omega_lo, omega_hi = self.cost_omega()
        lower = np.maximum(self.cost_lower, omega_lo)
        upper = np.minimum(self.cost_upper, omega_hi)
        empty = lower > upper
        refuted = empty & self.grid.seed_mask & (omega_lo > self.threshold) & (self.num_observations > 0)
        trusted_seeds = self.grid.seed_mask & ~refuted & ~self.refuted_seeds
        lower = np.where(empty & ~trusted_seeds, omega_lo, lower)
        upper = np.where(empty & ~trusted_seeds, omega_hi, upper)
        lower = np.where(empty & trusted_seeds, upper, lower)
        self.refuted_seeds |= refuted
        self.conflicts += int(empty.sum())
        self.cost_lower, self.cost_upper = lower, upper
        if self.config.lipschitz:
            self.safe = lipschitz_safe_set(self.grid.points, upper, self.safe, self.threshold,
                                           self.config.lipschitz)
        else:
            self.safe = upper <= self.threshold

    # --- bounds (raw units) ---------------------------------------------------------------------------

    @property
    def alpha(self) -> float:
        return srinivas_alpha(self.grid.size, self.num_observations + 1, self.config.delta)

    def _reward_posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """The reward GP's mean and variance over the grid, with the learned trend when configured."""
        if self.reward_trend is None:
            return self.reward_gp.mean, self.reward_gp.variance
        return self.reward_trend.posterior(self.reward_gp)

    def reward_mean(self) -> np.ndarray:
        return self.reward_prior_mean + self.reward_scale * self._reward_posterior()[0]

    def reward_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self._reward_posterior()
        mean = self.reward_prior_mean + self.reward_scale * mean
        half = self.alpha * self.reward_scale * np.sqrt(var)
        return mean - half, mean + half

    def cost_mean(self) -> np.ndarray:
        return self.cost_prior_mean + self.cost_scale * self.cost_gp.mean

    def cost_omega(self) -> tuple[np.ndarray, np.ndarray]:
        """The widest interval over the plausible cost kernels: a target counts as safe only if it is
        safe under every cost model the data do not rule out."""
        lows, highs = [], []
        for gp in self.plausible_cost_gps:
            mean = self.cost_prior_mean + self.cost_scale * gp.mean
            half = self.alpha * self.cost_scale * np.sqrt(gp.variance)
            lows.append(mean - half)
            highs.append(mean + half)
        return np.min(lows, axis=0), np.max(highs, axis=0)

    def cost_width(self) -> np.ndarray:
        return self.cost_upper - self.cost_lower

    def bounds_at(self, target: tuple[float, float]) -> tuple[tuple[float, float], tuple[float, float]]:
        """(reward interval, cost interval) at any target; grid points use the monotone cost interval."""
        index = self.grid.index_of(target)
        if index is not None:
            r_lo, r_hi = self.reward_bounds()
            return (float(r_lo[index]), float(r_hi[index])), \
                (float(self.cost_lower[index]), float(self.cost_upper[index]))
        r_prior, g_prior = self._reward_prior_at(target, self.reward_prior), self._cost_prior_at(target)
        (r_mean,), (r_var,) = self.reward_gp.posterior_at(np.array([target])) if self.reward_trend is None \
            else self.reward_trend.posterior_at(self.reward_gp, np.array([target]))
        r_half = self.alpha * self.reward_scale * np.sqrt(r_var)
        r_mid = r_prior + self.reward_scale * r_mean
        g_lo, g_hi = np.inf, -np.inf
        for gp in self.plausible_cost_gps:
            (g_mean,), (g_var,) = gp.posterior_at(np.array([target]))
            g_mid, g_half = g_prior + self.cost_scale * g_mean, self.alpha * self.cost_scale * np.sqrt(g_var)
            g_lo, g_hi = min(g_lo, g_mid - g_half), max(g_hi, g_mid + g_half)
        return (float(r_mid - r_half), float(r_mid + r_half)), (float(g_lo), float(g_hi))

    @staticmethod
    def _reward_prior_at(target: tuple[float, float], name: str) -> float:
        return float(target[0]) if name == "target" else 0.0

    def _cost_prior_at(self, target: tuple[float, float]) -> float:
        return float(target[1]) if self.config.cost_prior_mean == "target" else 0.0

    # --- expanders ------------------------------------------------------------------------------------

    def expanders(self, candidates: np.ndarray) -> np.ndarray:
        """For each candidate grid index (all safe): could sampling it grow the safe set?"""
        if self.config.lipschitz:
            return lipschitz_expanders(self.grid.points, self.cost_lower, self.safe, self.threshold,
                                       self.config.lipschitz, candidates)
        return fake_observation_expanders(self.plausible_cost_gps, self.cost_prior_mean, self.cost_scale,
                                          self.cost_lower, self.safe, self.threshold, self.alpha, candidates)
