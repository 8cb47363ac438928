"""The finite candidate set Z of target returns (R, G) and the seed set Z0 inside it.

Points are stored R-major (index = i_R * n_G + i_G), so any per-point array reshapes to (n_R, n_G) for
plotting. Targets handed out are always exact grid values, so an episode's target can be matched back to
its grid index with a tolerance far below the grid step (float32 round trips through ROS survive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pls_core.safeopt.config import OptimizerConfig
from pls_core.safeopt.errors import OptimizerConfigError

MATCH_FRACTION_OF_STEP = 1e-3  # a target within this fraction of a grid step of a point is that point


@dataclass(frozen=True, eq=False)
class TargetGrid:
    reward_values: np.ndarray  # (n_R,) target reward returns R
    cost_values: np.ndarray  # (n_G,) target cost returns G
    seed_mask: np.ndarray  # (n,) True where the point is in Z0

    @classmethod
    def from_config(cls, config: OptimizerConfig) -> TargetGrid:
        n_r, n_g = config.grid_resolution
        reward_values = np.linspace(*config.reward_range, n_r)
        cost_values = np.linspace(*config.cost_range, n_g)
        rr, gg = np.meshgrid(reward_values, cost_values, indexing="ij")
        tol_r = MATCH_FRACTION_OF_STEP * (reward_values[1] - reward_values[0])
        tol_g = MATCH_FRACTION_OF_STEP * (cost_values[1] - cost_values[0])
        (r_lo, r_hi), (g_lo, g_hi) = config.seed_reward_range, config.seed_cost_range
        seed = ((rr >= r_lo - tol_r) & (rr <= r_hi + tol_r) & (gg >= g_lo - tol_g) & (gg <= g_hi + tol_g))
        if not seed.any():
            raise OptimizerConfigError(
                f"the seed box R in {config.seed_reward_range}, G in {config.seed_cost_range} contains no "
                f"grid point (grid steps: R {reward_values[1] - reward_values[0]:.4g}, G "
                f"{cost_values[1] - cost_values[0]:.4g}); widen the seed box or raise grid_resolution")
        return cls(reward_values, cost_values, seed.ravel())

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.reward_values), len(self.cost_values)

    @property
    def size(self) -> int:
        return len(self.reward_values) * len(self.cost_values)

    @property
    def points(self) -> np.ndarray:
        """(n, 2) array of (R, G), R-major."""
        rr, gg = np.meshgrid(self.reward_values, self.cost_values, indexing="ij")
        return np.stack([rr.ravel(), gg.ravel()], axis=1)

    @property
    def steps(self) -> tuple[float, float]:
        return (float(self.reward_values[1] - self.reward_values[0]),
                float(self.cost_values[1] - self.cost_values[0]))

    def target(self, index: int) -> tuple[float, float]:
        i_r, i_g = divmod(int(index), len(self.cost_values))
        return float(self.reward_values[i_r]), float(self.cost_values[i_g])

    def index_of(self, target: tuple[float, float]) -> int | None:
        """Grid index of `target`, or None when it is not (within tolerance) a grid point."""
        (r, g), (step_r, step_g) = target, self.steps
        i_r = int(np.argmin(np.abs(self.reward_values - r)))
        i_g = int(np.argmin(np.abs(self.cost_values - g)))
        if abs(self.reward_values[i_r] - r) > MATCH_FRACTION_OF_STEP * step_r or \
                abs(self.cost_values[i_g] - g) > MATCH_FRACTION_OF_STEP * step_g:
            return None
        return i_r * len(self.cost_values) + i_g

    def dilate(self, mask: np.ndarray) -> np.ndarray:
        """Per-point mask of points that are in `mask` or have a grid neighbour (8-connected) in it."""
        image = self.as_image(mask)
        padded = np.pad(image, 1)
        out = np.zeros_like(image)
        for dr in (0, 1, 2):
            for dg in (0, 1, 2):
                out |= padded[dr:dr + image.shape[0], dg:dg + image.shape[1]]
        return out.ravel()

    def as_image(self, values: np.ndarray) -> np.ndarray:
        """Per-point values reshaped to (n_R, n_G)."""
        return np.asarray(values).reshape(self.shape)
