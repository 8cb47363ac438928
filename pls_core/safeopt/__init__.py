"""Online phase of PLS: choose the CDT's target returns z = (R, G) by safe Bayesian optimization.

Callers need four things: `build_optimizer(config, store_path)`, `.current` (the Decision to run),
`.report_episode(EpisodeRecord)` (returns the next Decision after `episodes_per_evaluation` episodes),
and `.status()`. The network is never touched here; only z changes between episodes.

The names below are resolved on first use (module `__getattr__`), so that importing the settings
(`pls_core.safeopt.config`), the records, the errors or the grid does not import torch or GPyTorch:
those load only where a GP is built (gp.py, through base / pls / baselines / factory).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TargetOptimizer": "base",
    "FixedTargetOptimizer": "baselines", "GPUCBOptimizer": "baselines", "RandomSearchOptimizer": "baselines",
    "OptimizerConfig": "config",
    "GPNumericalError": "errors", "InvalidEpisodeError": "errors", "OptimizerConfigError": "errors",
    "SafetyInvariantError": "errors", "StaleEpisodeError": "errors", "StoreMismatchError": "errors",
    "build_optimizer": "factory",
    "PLSOptimizer": "pls",
    "Decision": "records", "EpisodeRecord": "records", "Phase": "records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
