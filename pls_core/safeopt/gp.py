"""Exact GP regression over the candidate grid, in float64, with GPyTorch's RBF kernel and likelihood.

Why not call GPyTorch's predictive distribution every iteration: its exact prediction re-solves against
every grid point, O(N^2 |Z|) per update (seconds for N=400, |Z|=10^4 on one core). Here the posterior over
the whole grid is kept exactly and extended by one Cholesky row per observation, O(N |Z|):

    L_N = chol(K_XX + diag(noise)),  W = L_N^-1 K_XZ,  a = L_N^-1 y
    mean(Z) = W^T a,  var(Z) = k(z, z) - colsum(W * W),  cov(C, U) = K_CU - W_C^T W_U

Each observation carries its own noise variance (an evaluation's measured spread, see base.py); the GP's
`noise_variance` is the default for observations given none and for the hypothetical ones of the
expander test. GPyTorch supplies the kernel (`ScaleKernel(RBFKernel)` with one lengthscale per axis), the
likelihood (fixed per-observation noise) and the optional marginal-likelihood fit; `reference_model()`
returns the equivalent `gpytorch.models.ExactGP`, which the tests compare against (and against the
textbook closed form).
The GP works in its own output units: callers transform raw returns (see confidence.py).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import gpytorch
import numpy as np
import torch

from pls_core.safeopt.errors import GPNumericalError

DTYPE = torch.float64
# A posterior variance below -NEGATIVE_VARIANCE_TOLERANCE * outputscale is a numerical failure, not rounding.
NEGATIVE_VARIANCE_TOLERANCE = 1e-9
INITIAL_CAPACITY = 32  # observations the W buffer holds before it doubles


class _ExactModel(gpytorch.models.ExactGP):
    """Zero-mean exact GP; used for hyperparameter fitting and as the reference posterior."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, likelihood: gpytorch.likelihoods.Likelihood,
                 kernel: gpytorch.kernels.Kernel) -> None:
        super().__init__(x, y, likelihood)
        self.mean_module = gpytorch.means.ZeroMean()
        self.covar_module = kernel

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def make_kernel(lengthscale: float | tuple[float, float], outputscale: float) -> gpytorch.kernels.ScaleKernel:
    kernel = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=2)).to(DTYPE)
    scales = lengthscale if isinstance(lengthscale, tuple) else (lengthscale, lengthscale)
    kernel.base_kernel.lengthscale = torch.tensor([scales], dtype=DTYPE)
    kernel.outputscale = torch.tensor(outputscale, dtype=DTYPE)
    return kernel


@dataclass
class _Factor:
    """Everything that changes when an observation is added; swapped in whole, so updates are atomic."""

    x: torch.Tensor  # (N, 2) inputs
    y: torch.Tensor  # (N,) outputs (GP units)
    noise: torch.Tensor  # (N,) noise variance of each observation (GP units)
    chol: torch.Tensor  # (N, N) lower Cholesky factor of K_XX + diag(noise)
    w: torch.Tensor  # (N, |Z|) L^-1 K_XZ: the first N rows of `w_store`
    a: torch.Tensor  # (N,) L^-1 y
    mean: torch.Tensor  # (|Z|,) posterior mean on the grid
    var: torch.Tensor  # (|Z|,) posterior variance on the grid
    w_store: torch.Tensor  # (capacity, |Z|): rows past N are free, so adding a row copies nothing


@dataclass(frozen=True)
class GPState:
    """A kernel and the posterior it gives; produced by `prepare_*`, applied by `commit`."""

    kernel: gpytorch.kernels.ScaleKernel
    factor: _Factor


class GridGP:
    """An exact GP whose posterior over a fixed set of grid points is always up to date."""

    def __init__(self, grid_points: np.ndarray, lengthscale: float | tuple[float, float], outputscale: float,
                 noise_variance: float) -> None:
        self._grid = torch.as_tensor(np.asarray(grid_points), dtype=DTYPE)
        self.kernel = make_kernel(lengthscale, outputscale)
        self.noise_variance = float(noise_variance)
        n = self._grid.shape[0]
        with torch.no_grad():
            prior_var = self.kernel(self._grid[:1]).to_dense()[0, 0].expand(n).clone()
        w_store = torch.empty(INITIAL_CAPACITY, n, dtype=DTYPE)
        self._factor = _Factor(torch.empty(0, 2, dtype=DTYPE), torch.empty(0, dtype=DTYPE),
                               torch.empty(0, dtype=DTYPE), torch.empty(0, 0, dtype=DTYPE), w_store[:0],
                               torch.empty(0, dtype=DTYPE), torch.zeros(n, dtype=DTYPE), prior_var, w_store)

    # --- state ----------------------------------------------------------------------------------------

    @property
    def num_observations(self) -> int:
        return int(self._factor.y.shape[0])

    @property
    def mean(self) -> np.ndarray:
        return self._factor.mean.numpy().copy()

    @property
    def variance(self) -> np.ndarray:
        return self._factor.var.numpy().copy()

    @property
    def train_inputs(self) -> np.ndarray:
        return self._factor.x.numpy().copy()

    @property
    def train_targets(self) -> np.ndarray:
        return self._factor.y.numpy().copy()

    @property
    def train_noise(self) -> np.ndarray:
        return self._factor.noise.numpy().copy()

    @property
    def state(self) -> GPState:
        return GPState(self.kernel, self._factor)

    @property
    def log_marginal_likelihood(self) -> float:
        """log p(y | X) under this kernel and noise (GP units): how well the prior explains the data."""
        f = self._factor
        n = f.y.shape[0]
        log_det_half = torch.log(torch.diagonal(f.chol)).sum()
        return float(-0.5 * (f.a @ f.a) - log_det_half - 0.5 * n * math.log(2 * math.pi))

    @property
    def lengthscale(self) -> tuple[float, float]:
        ls = self.kernel.base_kernel.lengthscale.detach().reshape(-1)
        return float(ls[0]), float(ls[1])

    # --- updates --------------------------------------------------------------------------------------

    def add_observation(self, x: tuple[float, float], y: float, noise_variance: float | None = None) -> None:
        """Condition on one more noisy observation y at x (any point, on the grid or not); its noise
        variance defaults to the GP's.

        Raises GPNumericalError (state unchanged) on a non-positive Cholesky pivot or non-finite results,
        e.g. a repeated input with zero noise.
        """
        self.commit(self.prepare_observation(x, y, noise_variance))

    def prepare_observation(self, x: tuple[float, float], y: float,
                            noise_variance: float | None = None) -> GPState:
        """The state after adding (x, y), without applying it: lets a caller update two GPs atomically.

        Only the latest preparation may be committed (they share the free rows of one buffer).
        """
        f = self._factor
        noise = self.noise_variance if noise_variance is None else float(noise_variance)
        if not math.isfinite(noise) or noise < 0.0:
            raise GPNumericalError(f"observation noise variance {noise!r} is not a finite number >= 0")
        xt = torch.tensor([x], dtype=DTYPE)
        with torch.no_grad():
            k_x_grid = self.kernel(xt, self._grid).to_dense()[0]
            k_x_train = self.kernel(xt, f.x).to_dense()[0] if f.x.shape[0] else torch.empty(0, dtype=DTYPE)
            k_xx = self.kernel(xt).to_dense()[0, 0]
        l_row = torch.linalg.solve_triangular(f.chol, k_x_train[:, None], upper=False)[:, 0] \
            if f.x.shape[0] else k_x_train
        pivot_sq = k_xx + noise - l_row @ l_row
        if not bool(torch.isfinite(pivot_sq)) or float(pivot_sq) <= 0.0:
            raise GPNumericalError(f"Cholesky pivot {float(pivot_sq):.3g} <= 0 when adding x={x} "
                                   f"(repeated input with zero noise?); raise the noise variance")
        pivot = torch.sqrt(pivot_sq)
        w_row = (k_x_grid - l_row @ f.w) / pivot
        a_new = (float(y) - l_row @ f.a) / pivot
        n = f.chol.shape[0]
        chol = torch.zeros(n + 1, n + 1, dtype=DTYPE)
        chol[:n, :n] = f.chol
        chol[n, :n] = l_row
        chol[n, n] = pivot
        w_store = f.w_store
        if w_store.shape[0] == n:  # full: grow geometrically; the current state keeps the old buffer
            w_store = torch.empty(2 * n, w_store.shape[1], dtype=DTYPE)
            w_store[:n] = f.w
        w_store[n] = w_row  # row n is past the current state's view, so the current state is untouched
        new = _Factor(torch.cat([f.x, xt]), torch.cat([f.y, torch.tensor([float(y)], dtype=DTYPE)]),
                      torch.cat([f.noise, torch.tensor([noise], dtype=DTYPE)]), chol,
                      w_store[:n + 1], torch.cat([f.a, a_new.reshape(1)]), f.mean + w_row * a_new,
                      f.var - w_row * w_row, w_store)
        return GPState(self.kernel, self._checked(new, self.kernel))

    def prepare_fit(self, state: GPState, iterations: int, learning_rate: float = 0.05) -> GPState:
        """`state` after maximising the exact marginal likelihood over lengthscales and outputscale (noise
        stays fixed), starting from its kernel; returned unchanged with fewer than 3 observations."""
        f = state.factor
        if f.x.shape[0] < 3:
            return state
        model = self._exact_model(state.kernel, f.x, f.y, f.noise)
        model.train()
        model.likelihood.train()
        optimizer = torch.optim.Adam(model.covar_module.parameters(), lr=learning_rate)
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
        for _ in range(iterations):
            optimizer.zero_grad()
            loss = -mll(model(f.x), f.y)
            loss.backward()
            optimizer.step()
        kernel = model.covar_module
        if not all(bool(torch.isfinite(p.detach()).all()) for p in kernel.parameters()):
            raise GPNumericalError("hyperparameter fit diverged (non-finite kernel parameters); "
                                   "set fit_hyperparameters: false or change the initial kernel values")
        return GPState(kernel, self._factorise(kernel, f.x, f.y, f.noise))

    def commit(self, state: GPState) -> None:
        self.kernel, self._factor = state.kernel, state.factor

    def fantasised(self, points: list[tuple[float, float]]) -> GridGP:
        """A copy of this GP conditioned on one observation at each of `points` whose value is the posterior
        mean there (kriging believer) and whose noise is the GP's default: the mean stays the same
        everywhere and only the variances shrink. This GP is left unchanged (the copy has its own buffer)."""
        f = self._factor
        store = f.w_store.clone()
        other = copy.copy(self)
        other._factor = dataclasses.replace(f, w=store[:f.w.shape[0]], w_store=store)
        for point in points:
            (mean,), _ = other.posterior_at(np.array([point], dtype=float))
            try:
                other.commit(other.prepare_observation(tuple(point), float(mean)))
            except GPNumericalError:  # a repeat with zero noise: the first fantasy there already says it all
                continue
        return other

    def set_data(self, x: np.ndarray, y: np.ndarray, noise: np.ndarray | None = None) -> None:
        """Recompute the posterior from scratch (per-observation noise variances default to the GP's)."""
        xt = torch.as_tensor(np.asarray(x, dtype=float).reshape(-1, 2), dtype=DTYPE)
        yt = torch.as_tensor(np.asarray(y, dtype=float).reshape(-1), dtype=DTYPE)
        nt = torch.full_like(yt, self.noise_variance) if noise is None else \
            torch.as_tensor(np.asarray(noise, dtype=float).reshape(-1), dtype=DTYPE)
        self._factor = self._factorise(self.kernel, xt, yt, nt)

    def _factorise(self, kernel: gpytorch.kernels.Kernel, xt: torch.Tensor, yt: torch.Tensor,
                   noise: torch.Tensor) -> _Factor:
        n = self._grid.shape[0]
        with torch.no_grad():
            k_train = kernel(xt).to_dense() + torch.diag(noise)
            chol, info = torch.linalg.cholesky_ex(k_train)
            if int(info) != 0:
                raise GPNumericalError(f"K_XX + diag(noise) is not positive definite (pivot {int(info)}); "
                                       "raise the noise variance")
            w = torch.linalg.solve_triangular(chol, kernel(xt, self._grid).to_dense(), upper=False)
            a = torch.linalg.solve_triangular(chol, yt[:, None], upper=False)[:, 0]
            prior_var = kernel(self._grid[:1]).to_dense()[0, 0].expand(n)
        var = prior_var - (w * w).sum(0)
        return self._checked(_Factor(xt, yt, noise, chol, w, a, w.T @ a, var, w), kernel)

    def _checked(self, f: _Factor, kernel: gpytorch.kernels.ScaleKernel) -> _Factor:
        if not (bool(torch.isfinite(f.mean).all()) and bool(torch.isfinite(f.var).all())):
            raise GPNumericalError("GP posterior has non-finite values; check the observations and kernel")
        outputscale = float(kernel.outputscale.detach())
        if float(f.var.min()) < -NEGATIVE_VARIANCE_TOLERANCE * outputscale:
            raise GPNumericalError(f"GP posterior variance {float(f.var.min()):.3g} < 0: the factorisation "
                                   "lost precision; raise the noise variance")
        f.var = f.var.clamp_min(0.0)
        return f

    # --- queries --------------------------------------------------------------------------------------

    def covariance(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Posterior covariance between grid points `rows` and `cols` (index arrays)."""
        f = self._factor
        r, c = torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)
        with torch.no_grad():
            prior = self.kernel(self._grid[r], self._grid[c]).to_dense()
        return (prior - f.w[:, r].T @ f.w[:, c]).numpy()

    def posterior_at(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance at arbitrary points (m, 2)."""
        f = self._factor
        pt = torch.as_tensor(np.asarray(points, dtype=float).reshape(-1, 2), dtype=DTYPE)
        with torch.no_grad():
            prior_var = torch.diagonal(self.kernel(pt).to_dense())
        if f.x.shape[0] == 0:
            return np.zeros(len(pt)), prior_var.numpy().copy()
        v = torch.as_tensor(self.whitened_cross(pt.numpy()), dtype=DTYPE)
        return (v.T @ f.a).numpy(), (prior_var - (v * v).sum(0)).clamp_min(0.0).numpy()

    def whitened_cross(self, points: np.ndarray) -> np.ndarray:
        """L^-1 K_X,points (N, m): the data's whitened covariance with arbitrary points."""
        f = self._factor
        pt = torch.as_tensor(np.asarray(points, dtype=float).reshape(-1, 2), dtype=DTYPE)
        if f.x.shape[0] == 0:
            return np.zeros((0, len(pt)))
        with torch.no_grad():
            return torch.linalg.solve_triangular(f.chol, self.kernel(f.x, pt).to_dense(), upper=False).numpy()

    def reference_model(self) -> _ExactModel:
        """A GPyTorch ExactGP with this GP's kernel, noise and data, in eval mode (noise must be > 0)."""
        f = self._factor
        model = self._exact_model(self.kernel, f.x, f.y, f.noise)
        model.eval()
        model.likelihood.eval()
        return model

    def _exact_model(self, kernel: gpytorch.kernels.Kernel, x: torch.Tensor, y: torch.Tensor,
                     noise: torch.Tensor) -> _ExactModel:
        likelihood = gpytorch.likelihoods.FixedNoiseGaussianLikelihood(
            noise=noise.clamp_min(2e-12), learn_additional_noise=False).to(DTYPE)
        return _ExactModel(x, y, likelihood, copy.deepcopy(kernel)).to(DTYPE)


def srinivas_alpha(grid_size: int, n: int, delta: float) -> float:
    """alpha_n = sqrt(2 log(|Z| n^2 pi^2 / (6 delta))): Srinivas et al. 2010, Lemma 5.1 (paper eq. 8)."""
    return math.sqrt(2.0 * math.log(grid_size * n * n * math.pi ** 2 / (6.0 * delta)))
