"""A linear trend along R, learned with the reward GP: J(z) = m(z) + beta_0 + beta_1 r(z) + f(z).

Why: the paper's prior mean m(z) = R (Theorem 1: J(pi_z) ~ z) holds inside the dataset's support and
fails above it. A model whose reward stops following R (Hopper: ~350 at every R up to the grid's 2000)
leaves the GP's residual f, with a ~10-unit spread and a short lengthscale, to correct a misfit of
over 1000, one evaluation's neighbourhood at a time, so reward maximisation keeps sampling the
unmeasured top of the grid, where the episodes are poor and their cost tail is long.

beta ~ N(0, sd^2 I) over the basis h(z) = (1, r(z)), r = (R - centre) / half-width of the grid's R
range, is marginalised exactly (Rasmussen & Williams 2006, §2.7, eqs. 2.41-2.42): with the GP's
factor L L^T = K_XX + diag(noise), A = L^-1 H^T, a = L^-1 y and W = L^-1 K_XZ,
    M = I / sd^2 + A^T A,   beta_bar = M^-1 A^T a,   Q(z) = h(z) - A^T W(z)
    mean(z) = W^T a + Q^T beta_bar,   var(z) = k(z, z) - colsum(W * W) + colsum(Q * M^-1 Q)
which is the GP with kernel k + sd^2 h(z)^T h(z'): tests compare it with that GP's closed form.
Only the reward GP carries it: it steers the choice, never the safety certificate.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from pls_core.safeopt.gp import GridGP


class LinearTrend:
    """The trend's basis over the grid and its posterior given the GP's current data."""

    def __init__(self, grid_points: np.ndarray, reward_range: tuple[float, float], sd: float) -> None:
        self.centre = 0.5 * (reward_range[0] + reward_range[1])
        self.half_width = max(0.5 * (reward_range[1] - reward_range[0]), 1e-12)
        self.sd = float(sd)
        self._grid_basis = self.basis(grid_points)

    @classmethod
    def with_slope_sd(cls, grid_points: np.ndarray, reward_range: tuple[float, float], slope_sd: float,
                      scale: float) -> LinearTrend:
        """The trend whose slope along R has prior sd `slope_sd` (reward per unit of R; the config's
        reward_trend_slope_sd) in a GP whose unit is `scale` raw reward."""
        trend = cls(grid_points, reward_range, 0.0)
        trend.sd = float(slope_sd) * trend.half_width / scale
        return trend

    def basis(self, points: np.ndarray) -> np.ndarray:
        """h(z) for each row of `points` (m, 2): shape (2, m)."""
        r = (np.asarray(points, dtype=float).reshape(-1, 2)[:, 0] - self.centre) / self.half_width
        return np.vstack([np.ones_like(r), r])

    def posterior(self, gp: GridGP) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance over the grid of the GP plus this trend (GP units)."""
        return self._combine(gp, gp.state.factor.w.numpy(), gp.mean, gp.variance, self._grid_basis)

    def posterior_at(self, gp: GridGP, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same at arbitrary points (m, 2)."""
        mean, var = gp.posterior_at(points)
        return self._combine(gp, gp.whitened_cross(points), mean, var, self.basis(points))

    def _solve(self, gp: GridGP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chol = gp.state.factor.chol.numpy()
        h_train = self.basis(gp.train_inputs)
        a_h = solve_triangular(chol, h_train.T, lower=True) if chol.shape[0] else np.zeros((0, 2))
        m = np.eye(2) / self.sd ** 2 + a_h.T @ a_h
        return a_h, np.linalg.inv(m), gp.state.factor.a.numpy()

    def _combine(self, gp: GridGP, w: np.ndarray, mean: np.ndarray, var: np.ndarray,
                 basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a_h, m_inv, a = self._solve(gp)
        q = basis - a_h.T @ w
        beta = m_inv @ (a_h.T @ a)
        return mean + q.T @ beta, var + np.einsum("im,ij,jm->m", q, m_inv, q)
