"""The values that cross the optimizer's boundary: phases, episode results in, decisions out.

Kept free of numpy/torch so that the ROS supervisor can import them cheaply and serialise them as plain
JSON (`to_dict` / `from_dict`) for the SQLite store and for logging.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum


class Phase(StrEnum):
    """Where the optimizer is in Algorithm 1; `code` is the integer the ROS messages carry."""

    SEED = "seed"
    SAFE_EXPLORATION = "safe_exploration"
    REWARD_MAXIMISATION = "reward_maximisation"
    OPERATION = "operation"
    HALTED = "halted"  # no target is verified safe any more: the data refute the seed set (Assumption 7)

    @property
    def code(self) -> int:
        return _PHASE_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> Phase:
        for phase, phase_code in _PHASE_CODES.items():
            if phase_code == code:
                return phase
        raise ValueError(f"unknown phase code {code!r}; known codes: {sorted(_PHASE_CODES.values())}")


_PHASE_CODES = {Phase.SEED: 0, Phase.SAFE_EXPLORATION: 1, Phase.REWARD_MAXIMISATION: 2, Phase.OPERATION: 3,
                Phase.HALTED: 4}


@dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode run with target returns `target` = (R, G); returns are raw (unnormalised)."""

    target: tuple[float, float]
    reward_return: float
    cost_return: float
    length: int
    terminated: bool = False
    truncated: bool = False
    episode: int | None = None  # the caller's episode counter, if any; repeats are rejected
    reason: str = ""  # why the episode ended, free text from the caller

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EpisodeRecord:
        return cls(**{**d, "target": tuple(d["target"])})


@dataclass(frozen=True)
class Decision:
    """The target to run next and the evidence behind it; bounds and returns are in raw units.

    `iteration` counts evaluations (0 = the first target, chosen before any data). `reward_bounds` is the
    reward GP's confidence interval at `target`, `cost_bounds` the monotone cost interval there.
    `candidate_set_size` is what the phase chose from: the safe points whose cost width still exceeds
    zeta (safe exploration), the safe set (reward maximisation), or 1 (operation, fixed target).
    `best_target` is the operation choice: the evaluated safe target with the highest measured reward.
    `verified_safe` is true when `target` is in the current safe set (off the grid: when its cost upper
    bound is <= threshold; with a Lipschitz constant a point can be safe through a neighbour's bound,
    so `cost_bounds[1]` may then exceed the threshold). `note` says why a
    decision departs from the rule (e.g. a GP numerical failure kept the last verified safe target).
    """

    iteration: int
    phase: Phase
    target: tuple[float, float]
    reward_bounds: tuple[float, float]
    cost_bounds: tuple[float, float]
    safe_set_size: int
    candidate_set_size: int
    num_observations: int
    best_target: tuple[float, float]
    best_predicted_reward: float
    best_cost_upper: float
    threshold: float
    verified_safe: bool
    note: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["phase"] = self.phase.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Decision:
        pairs = ("target", "reward_bounds", "cost_bounds", "best_target")
        return cls(**{**d, "phase": Phase(d["phase"]), **{k: tuple(d[k]) for k in pairs}})
