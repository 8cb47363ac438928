"""Online phase of PLS: choose the CDT's target returns z = (R, G) by safe Bayesian optimisation.

Callers need four things: `build_optimizer(config, store_path)`, `.current` (the Decision to run),
`.report_episode(EpisodeRecord)` (returns the next Decision after `episodes_per_evaluation` episodes),
and `.status()`. The network is never touched here; only z changes between episodes.
"""

from pls_core.safeopt.base import TargetOptimizer
from pls_core.safeopt.baselines import FixedTargetOptimizer, GPUCBOptimizer, RandomSearchOptimizer
from pls_core.safeopt.config import OptimizerConfig
from pls_core.safeopt.errors import (
    GPNumericalError,
    InvalidEpisodeError,
    OptimizerConfigError,
    SafetyInvariantError,
    StaleEpisodeError,
    StoreMismatchError,
)
from pls_core.safeopt.factory import build_optimizer
from pls_core.safeopt.pls import PLSOptimizer
from pls_core.safeopt.records import Decision, EpisodeRecord, Phase

__all__ = [
    "Decision", "EpisodeRecord", "FixedTargetOptimizer", "GPNumericalError", "GPUCBOptimizer",
    "InvalidEpisodeError", "OptimizerConfig", "OptimizerConfigError", "PLSOptimizer", "Phase",
    "RandomSearchOptimizer", "SafetyInvariantError", "StaleEpisodeError", "StoreMismatchError",
    "TargetOptimizer", "build_optimizer",
]
