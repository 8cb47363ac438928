"""The GP layer: incremental grid posterior vs the textbook closed form and vs GPyTorch; rank-1 fake
observations vs refitting; failures leave the GP untouched."""

from __future__ import annotations

import math

import gpytorch
import numpy as np
import pytest
import scipy.linalg
import torch

from pls_core.safeopt.confidence import ConfidenceModel
from pls_core.safeopt.errors import GPNumericalError
from pls_core.safeopt.gp import GridGP, srinivas_alpha
from pls_core.safeopt.grid import TargetGrid
from pls_core.safeopt.safe_set import fake_observation_expanders, fantasy_upper_bounds
from pls_core.safeopt.synthetic import synthetic_config

LENGTHSCALE, OUTPUTSCALE, NOISE = (30.0, 5.0), 2.0, 0.05


def rbf(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (((a[:, None, :] - b[None, :, :]) / np.array(LENGTHSCALE)) ** 2).sum(-1)
    return OUTPUTSCALE * np.exp(-0.5 * d2)


def closed_form(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mean = k_z^T (K + s^2 I)^-1 y, cov = k(z, z') - k_z^T (K + s^2 I)^-1 k_z' (pls-method.md §3.1)."""
    factor = scipy.linalg.cho_factor(rbf(x, x) + NOISE * np.eye(len(x)), lower=True)
    k_xz = rbf(x, z)
    mean = k_xz.T @ scipy.linalg.cho_solve(factor, y)
    return mean, rbf(z, z) - k_xz.T @ scipy.linalg.cho_solve(factor, k_xz), k_xz


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    axes = np.meshgrid(np.linspace(0, 100, 17), np.linspace(0, 20, 9), indexing="ij")
    grid = np.stack(axes, -1).reshape(-1, 2)
    on_grid = grid[rng.choice(len(grid), 12, replace=False)]
    x = np.concatenate([on_grid, rng.uniform([0, 0], [100, 20], (4, 2))])
    x = np.concatenate([x, x[:2]])  # repeated inputs, as when a target is evaluated twice
    y = np.sin(x[:, 0] / 20) + 0.3 * x[:, 1] / 20 + 0.1 * rng.standard_normal(len(x))
    gp = GridGP(grid, LENGTHSCALE, OUTPUTSCALE, NOISE)
    for xi, yi in zip(x, y, strict=True):
        gp.add_observation(tuple(xi), yi)
    return grid, x, y, gp


def test_incremental_posterior_matches_closed_form(data):
    grid, x, y, gp = data
    mean, cov, _ = closed_form(x, y, grid)
    assert np.abs(gp.mean - mean).max() < 1e-6
    assert np.abs(gp.variance - np.diag(cov)).max() < 1e-6
    rows, cols = np.arange(0, len(grid), 7), np.arange(3, len(grid), 5)
    assert np.abs(gp.covariance(rows, cols) - cov[np.ix_(rows, cols)]).max() < 1e-6


def test_posterior_matches_gpytorch_exact_gp(data):
    grid, x, y, gp = data
    model = gp.reference_model()
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False):
        prediction = model(torch.as_tensor(grid, dtype=torch.float64))
    assert np.abs(prediction.mean.numpy() - gp.mean).max() < 1e-6
    assert np.abs(prediction.variance.numpy() - gp.variance).max() < 1e-6


def test_off_grid_posterior_and_full_refactorisation_agree(data):
    grid, x, y, gp = data
    points = np.array([[12.3, 4.56], [99.0, 0.1], [50.5, 19.9]])
    mean, cov, _ = closed_form(x, y, points)
    m, v = gp.posterior_at(points)
    assert np.abs(m - mean).max() < 1e-6 and np.abs(v - np.diag(cov)).max() < 1e-6
    fresh = GridGP(grid, LENGTHSCALE, OUTPUTSCALE, NOISE)
    fresh.set_data(x, y)
    assert np.abs(fresh.mean - gp.mean).max() < 1e-9 and np.abs(fresh.variance - gp.variance).max() < 1e-9


def test_rank_one_fake_observation_matches_gpytorch_refit(data):
    grid, x, y, gp = data
    prior_mean, scale, alpha = 0.1 * grid[:, 1], 3.0, 2.5
    candidates, targets = np.array([5, 40, 100]), np.arange(0, len(grid), 3)
    fake_raw = np.array([-1.0, 0.4, 2.0])
    upper = fantasy_upper_bounds(gp, prior_mean, scale, fake_raw, alpha, candidates, targets)
    for row, (c, raw) in enumerate(zip(candidates, fake_raw, strict=True)):
        y_fake = (raw - prior_mean[c]) / scale
        refit_gp = GridGP(grid, LENGTHSCALE, OUTPUTSCALE, NOISE)
        refit_gp.set_data(np.vstack([x, grid[c]]), np.append(y, y_fake))
        refit = refit_gp.reference_model()
        with torch.no_grad(), gpytorch.settings.fast_pred_var(False):
            p = refit(torch.as_tensor(grid[targets]))
        expected = prior_mean[targets] + scale * (p.mean.numpy() + alpha * np.sqrt(p.variance.numpy()))
        assert np.abs(upper[row] - expected).max() < 1e-6


def test_vectorised_expanders_equal_brute_force_refits():
    config = synthetic_config()
    model = ConfidenceModel(config, TargetGrid.from_config(config))
    for target, cost in [((15.0, 4.0), 3.0), ((10.0, 2.0), 2.5), ((20.0, 6.0), 5.0)]:
        model.observe(target, 20.0, cost)
    candidates, scale = np.flatnonzero(model.safe), model.cost_scale
    fast = model.expanders(candidates)
    brute = []
    for c in candidates:  # refit with the optimistic observation, then look for a newly safe point
        gp = GridGP(model.grid.points, config.cost_lengthscale, config.cost_kernel_variance,
                    model.cost_gp.noise_variance)
        fake_y = (model.cost_lower[c] - model.cost_prior_mean[c]) / scale
        gp.set_data(np.vstack([model.cost_gp.train_inputs, model.grid.points[c]]),
                    np.append(model.cost_gp.train_targets, fake_y))
        upper = model.cost_prior_mean + scale * (gp.mean + model.alpha * np.sqrt(gp.variance))
        brute.append(bool(((upper <= config.threshold) & ~model.safe).any()))
    assert fast.tolist() == brute
    assert any(brute) and not all(brute)  # the case discriminates


def test_expander_pruning_keeps_answer():
    """Skipping unsafe points with lower bound > b must not change any expander answer."""
    config = synthetic_config()
    model = ConfidenceModel(config, TargetGrid.from_config(config))
    model.observe((15.0, 4.0), 20.0, 9.5)
    candidates = np.flatnonzero(model.safe)
    unsafe = np.flatnonzero(~model.safe)
    upper = fantasy_upper_bounds(model.cost_gp, model.cost_prior_mean, model.cost_scale,
                                 model.cost_lower[candidates], model.alpha, candidates, unsafe)
    unpruned = (upper <= config.threshold).any(axis=1)
    pruned = fake_observation_expanders(model.cost_gp, model.cost_prior_mean, model.cost_scale,
                                        model.cost_lower, model.safe, config.threshold, model.alpha,
                                        candidates)
    assert pruned.tolist() == unpruned.tolist()


def test_srinivas_alpha_formula():
    assert srinivas_alpha(861, 1, 0.05) == pytest.approx(math.sqrt(2 * math.log(861 * math.pi ** 2 / 0.3)))
    assert srinivas_alpha(861, 20, 0.05) > srinivas_alpha(861, 2, 0.05) > srinivas_alpha(861, 2, 0.5)


def test_zero_noise_repeat_fails_and_leaves_state_unchanged():
    grid = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    gp = GridGP(grid, 1.0, 1.0, 0.0)
    gp.add_observation((0.0, 0.0), 1.0)
    before = gp.mean, gp.variance
    with pytest.raises(GPNumericalError, match="noise"):
        gp.add_observation((0.0, 0.0), 2.0)
    assert gp.num_observations == 1
    assert np.array_equal(gp.mean, before[0]) and np.array_equal(gp.variance, before[1])


def test_log_marginal_likelihood_matches_gpytorch(data):
    """The evidence the reward prior is chosen by (confidence.py): GPyTorch's exact MLL, times N."""
    grid, x, y, gp = data
    model = gp.reference_model()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
    model.train()
    with torch.no_grad():
        expected = float(mll(model(model.train_inputs[0]), model.train_targets)) * len(y)
    assert abs(gp.log_marginal_likelihood - expected) < 1e-6 * max(1.0, abs(expected))
    assert GridGP(grid, LENGTHSCALE, OUTPUTSCALE, NOISE).log_marginal_likelihood == 0.0  # no data


def test_hyperparameter_fit_raises_marginal_likelihood(data):
    grid, x, y, _ = data
    gp = GridGP(grid, (5.0, 5.0), 0.2, NOISE)  # deliberately poor start
    gp.set_data(x, y)

    def log_marginal(g: GridGP) -> float:
        model = g.reference_model()
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
        model.train()
        with torch.no_grad():
            return float(mll(model(model.train_inputs[0]), model.train_targets))

    start = log_marginal(gp)
    gp.commit(gp.prepare_fit(gp.state, iterations=40))
    assert log_marginal(gp) > start
    assert gp.lengthscale != (5.0, 5.0)
