"""The reward GP's answers to a model that does not follow R: the learned linear trend (exact
marginalisation), and the prior mean chosen by evidence; what each changes in the choice."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from pls_core.safeopt.confidence import ConfidenceModel
from pls_core.safeopt.gp import GridGP
from pls_core.safeopt.grid import TargetGrid
from pls_core.safeopt.synthetic import synthetic_config
from pls_core.safeopt.trend import LinearTrend

SD, NOISE = 3.0, 0.5


def test_trend_posterior_is_the_gp_with_the_trend_in_its_kernel():
    """beta ~ N(0, sd^2 I) marginalised = a GP with kernel k + sd^2 h(z)^T h(z') (R&W eq. 2.41)."""
    rng = np.random.default_rng(0)
    axes = np.meshgrid(np.linspace(500, 2000, 16), np.linspace(0, 30, 7), indexing="ij")
    grid = np.stack(axes, -1).reshape(-1, 2)
    gp = GridGP(grid, (100.0, 10.0), 100.0, NOISE)
    trend = LinearTrend(grid, (500.0, 2000.0), SD)
    x = np.concatenate([grid[rng.choice(len(grid), 6, replace=False)], [[777.0, 3.3]]])
    y = 5.0 * rng.standard_normal(len(x))
    for xi, yi in zip(x, y, strict=True):
        gp.add_observation(tuple(xi), yi)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            k = gp.kernel(torch.as_tensor(a), torch.as_tensor(b)).to_dense().numpy()
        return k + SD ** 2 * trend.basis(a).T @ trend.basis(b)

    factor = scipy.linalg.cho_factor(kernel(x, x) + NOISE * np.eye(len(x)), lower=True)
    k_xz = kernel(x, grid)
    mean = k_xz.T @ scipy.linalg.cho_solve(factor, y)
    var = np.diag(kernel(grid, grid)) - np.einsum("ij,ij->j", k_xz, scipy.linalg.cho_solve(factor, k_xz))
    got_mean, got_var = trend.posterior(gp)
    assert np.abs(got_mean - mean).max() < 1e-8
    assert np.abs(got_var - var).max() < 1e-8
    off_mean, off_var = trend.posterior_at(gp, grid[:9] + 0.0)
    assert np.abs(off_mean - mean[:9]).max() < 1e-8 and np.abs(off_var - var[:9]).max() < 1e-8
    prior_mean, prior_var = trend.posterior(GridGP(grid, (100.0, 10.0), 100.0, NOISE))
    assert np.abs(prior_mean).max() == 0.0 and prior_var.min() >= 100.0 + SD ** 2


def fed_models(variants: dict, reward_of_r) -> dict:
    """One model per config variant (reward lengthscale 10), all fed the same five evaluations along R at
    G = 2 with reward `reward_of_r(R)` and cost 1."""
    grid = TargetGrid.from_config(synthetic_config())
    models = {key: ConfidenceModel(synthetic_config(reward_lengthscale=10.0, **overrides), grid)
              for key, overrides in variants.items()}
    for model in models.values():
        for r in (0.0, 15.0, 30.0, 45.0, 60.0):
            model.observe((r, 2.0), reward=reward_of_r(r), cost=1.0)
    return models


def test_flat_reward_pulls_the_unmeasured_top_of_the_grid_down():
    """A model whose reward ignores R (Hopper): the paper's prior keeps promising R at the grid's top;
    the trend learns the flat level from low-R evaluations and stops promising it."""
    models = fed_models({sd: dict(reward_trend_slope_sd=sd, reward_prior_mean="target") for sd in (0.0, 1.0)},
                        lambda r: 20.0)
    top = int(np.argmax(models[0.0].grid.points[:, 0]))
    plain_top, trend_top = models[0.0].reward_mean()[top], models[1.0].reward_mean()[top]
    assert plain_top > 90.0  # prior mean R = 100 there, untouched by data 40 away
    assert abs(trend_top - 20.0) < 15.0  # the slope prior shrinks the fit a little towards J = R
    (lo, hi), _ = models[1.0].bounds_at((100.0, 2.0))
    (_, plain_hi), _ = models[0.0].bounds_at((100.0, 2.0))
    assert lo < 20.0 < hi < plain_hi  # the slope's own uncertainty widens the interval, not past J = R
    measured = models[1.0].grid.index_of((20.0, 2.0))
    assert abs(models[1.0].reward_mean()[measured] - 20.0) < 1.0


def evidence_models(reward_of_r) -> dict[str, ConfidenceModel]:
    """Models under each reward prior mean, fed the same evaluations."""
    return fed_models({name: dict(reward_prior_mean=name) for name in ("target", "zero", "evidence")},
                      reward_of_r)


def test_evidence_keeps_the_papers_prior_for_a_model_that_follows_r():
    models = evidence_models(lambda r: r + 3.0)
    assert models["evidence"].reward_prior == "target"
    for a, b in zip(models["evidence"].reward_bounds(), models["target"].reward_bounds(), strict=True):
        assert np.array_equal(a, b)  # the very same bounds: the choice changes nothing here


def test_evidence_drops_the_papers_prior_for_a_model_whose_reward_stays_flat():
    """Hopper's shape: ~20 whatever R. J ~ z would keep promising R = 100 at the unmeasured top."""
    models = evidence_models(lambda r: 20.0)
    model = models["evidence"]
    assert model.reward_prior == "zero"
    for a, b in zip(model.reward_bounds(), models["zero"].reward_bounds(), strict=True):
        assert np.array_equal(a, b)
    top = int(np.argmax(model.grid.points[:, 0]))
    assert models["target"].reward_mean()[top] > 90.0 > model.reward_bounds()[1][top]
    assert model.bounds_at((99.0, 3.0)) == models["zero"].bounds_at((99.0, 3.0))  # off the grid too
    # The cost side is untouched by the reward prior: same intervals, same safe set.
    assert np.array_equal(model.cost_upper, models["target"].cost_upper)
    assert np.array_equal(model.safe, models["target"].safe)
