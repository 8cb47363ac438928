"""Safe sets and expanders over the grid (numpy, vectorised); the set logic of Algorithm 1.

Two forms, as in SafeOpt (Berkenkamp) and Sui et al. 2015:

* No Lipschitz constant (None or 0, the paper's setting): the safe set is {z : u(z) <= b}, and a safe z is
  an expander if an optimistic fake observation y = l(z) at z would bring some currently unsafe z' to
  u(z') <= b. The fake observation is a rank-1 update of the GP posterior, in closed form:
      mean'(z') = mean(z') + cov(z, z') (y - mean(z)) / (var(z) + noise)
      var'(z')  = var(z')  - cov(z, z')^2            / (var(z) + noise)
* Lipschitz constant L > 0 (Euclidean distance in raw (R, G) units):
      Y_N = union over z in Y_{N-1} of {z' : u(z) + L d(z, z') <= b},
      z is an expander if l(z) + L d(z, z') <= b for some unsafe z'.
  Algorithm 1 prints the expander test as l - L d <= b: that is SafeOpt's f >= f_min form with the sign
  carried over; for a cost that must stay below b the optimistic bound at z' is l(z) + L d.
"""

from __future__ import annotations

import numpy as np

from pls_core.safeopt.gp import GridGP

CHUNK_ELEMENTS = 2_000_000  # cap on the size of any (candidates x targets) block held at once


def lipschitz_safe_set(points: np.ndarray, upper: np.ndarray, previous_safe: np.ndarray, threshold: float,
                       lipschitz: float) -> np.ndarray:
    """Y_N from Y_{N-1}: every z' within (b - u(z)) / L of some z in Y_{N-1} with u(z) <= b."""
    sources = np.flatnonzero(previous_safe & (upper <= threshold))
    safe = np.zeros(len(points), dtype=bool)
    if len(sources) == 0:
        return safe
    reach = (threshold - upper[sources]) / lipschitz
    step = max(1, CHUNK_ELEMENTS // len(sources))
    for start in range(0, len(points), step):
        d = _distances(points[start:start + step], points[sources])
        safe[start:start + step] = (d <= reach[None, :]).any(axis=1)
    return safe


def lipschitz_expanders(points: np.ndarray, lower: np.ndarray, safe: np.ndarray, threshold: float,
                        lipschitz: float, candidates: np.ndarray) -> np.ndarray:
    """For each candidate index: could l(z) + L d(z, z') <= b hold for some unsafe z'?"""
    unsafe = np.flatnonzero(~safe)
    if len(unsafe) == 0 or len(candidates) == 0:
        return np.zeros(len(candidates), dtype=bool)
    nearest = np.empty(len(candidates))
    step = max(1, CHUNK_ELEMENTS // len(unsafe))
    for start in range(0, len(candidates), step):
        block = candidates[start:start + step]
        nearest[start:start + step] = _distances(points[block], points[unsafe]).min(axis=1)
    return lower[candidates] + lipschitz * nearest <= threshold


def fake_observation_expanders(cost_gps: GridGP | list[GridGP], prior_mean: np.ndarray, output_scale: float,
                               lower: np.ndarray, safe: np.ndarray, threshold: float, alpha: float,
                               candidates: np.ndarray) -> np.ndarray:
    """For each candidate index: would observing y = l(z) there make some unsafe z' safe, under every
    cost GP in `cost_gps` (one GP, or the plausible kernels of a kernel-robust certificate)?

    Unsafe points where any GP's current lower bound already exceeds b are skipped: one more observation
    can lower that GP's upper bound at z' at most to its current lower bound (|cov| <= sd(z) sd(z') and
    |l(z) - mean(z)| <= alpha sd(z)), so skipping them changes no answer.
    """
    gps = cost_gps if isinstance(cost_gps, list) else [cost_gps]
    if len(candidates) == 0:
        return np.zeros(0, dtype=bool)
    gp_lower = np.max([prior_mean + output_scale * (gp.mean - alpha * np.sqrt(gp.variance)) for gp in gps],
                      axis=0)
    targets = np.flatnonzero(~safe & (gp_lower <= threshold))
    result = np.zeros(len(candidates), dtype=bool)
    if len(targets) == 0:
        return result
    step = max(1, CHUNK_ELEMENTS // len(targets))
    for start in range(0, len(candidates), step):
        block = candidates[start:start + step]
        upper = np.max([fantasy_upper_bounds(gp, prior_mean, output_scale, lower[block], alpha, block,
                                             targets) for gp in gps], axis=0)
        result[start:start + step] = (upper <= threshold).any(axis=1)
    return result


def fantasy_upper_bounds(gp: GridGP, prior_mean: np.ndarray, output_scale: float, fake_y: np.ndarray,
                         alpha: float, candidates: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(len(candidates), len(targets)) upper bounds m + s (mean' + alpha sd') at `targets` after adding one
    observation of raw value fake_y[i] at candidates[i] (each candidate separately), by rank-1 update."""
    mean, var = gp.mean, gp.variance
    y = (np.asarray(fake_y) - prior_mean[candidates]) / output_scale
    denominator = var[candidates] + gp.noise_variance
    cov = gp.covariance(candidates, targets)
    new_mean = mean[targets][None, :] + cov * ((y - mean[candidates]) / denominator)[:, None]
    new_var = np.maximum(var[targets][None, :] - cov * cov / denominator[:, None], 0.0)
    return prior_mean[targets][None, :] + output_scale * (new_mean + alpha * np.sqrt(new_var))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
