"""Errors the optimizer raises on purpose; each message names the problem and the fix."""

from __future__ import annotations


class OptimizerConfigError(ValueError):
    """A configuration key is unknown, missing or out of range."""


class InvalidEpisodeError(ValueError):
    """An episode result cannot be used (non-finite, out of range, duplicate). Nothing was recorded."""


class StaleEpisodeError(InvalidEpisodeError):
    """An episode was run with a target other than `TargetOptimizer.current.target`."""


class StoreMismatchError(RuntimeError):
    """The SQLite store was written by a different configuration or does not replay to its decisions."""


class GPNumericalError(ArithmeticError):
    """A GP update produced a non-positive pivot or non-finite values; the update was not applied."""


class SafetyInvariantError(RuntimeError):
    """Internal guard: a proposal fell outside the current safe set. Always a bug, never user error."""
