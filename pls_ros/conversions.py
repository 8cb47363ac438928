"""Converting between pls messages and pls_core values (numpy arrays, EpisodeRecord, Decision, Phase).

Kept in one place so that field-by-field mapping is written (and tested) once. Imports only
pls_core.safeopt.records, which is free of numpy/torch at import time.
"""

from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Time
from pls_interfaces.msg import EpisodeResult, SupervisorStatus, TargetReturn

from pls_core.safeopt.records import Decision, EpisodeRecord, Phase

# The message constants and the optimiser's Phase codes must agree; checked at import.
_MSG_PHASES = (TargetReturn.PHASE_SEED, TargetReturn.PHASE_SAFE_EXPLORATION,
               TargetReturn.PHASE_REWARD_MAXIMISATION, TargetReturn.PHASE_OPERATION,
               TargetReturn.PHASE_HALTED)
assert tuple(p.code for p in Phase) == _MSG_PHASES
assert Phase.OPERATION.code == SupervisorStatus.PHASE_OPERATION
assert Phase.HALTED.code == SupervisorStatus.PHASE_HALTED


def float32_array(values) -> array.array:
    """A float32[] message field value from any array-like (fast path: no per-element checks)."""
    return array.array("f", np.ascontiguousarray(values, dtype=np.float32).ravel().tobytes())


def from_float32_field(field) -> np.ndarray:
    """A float32[] message field as a float32 numpy vector (a copy: messages may be reused)."""
    if isinstance(field, array.array):
        return np.frombuffer(field, dtype=np.float32).copy()
    return np.asarray(field, dtype=np.float32)


def stamp_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def time_msg(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def target_of(decision: Decision) -> tuple[float, float]:
    return float(decision.target[0]), float(decision.target[1])


def episode_id(msg: EpisodeResult) -> int:
    """Identity of one published episode result: its header stamp in nanoseconds.

    The robot-side episode index repeats when the robot side restarts; the stamp does not, and a result
    that DDS delivers again (history replay to a restarted supervisor) carries the same stamp. 0 means the
    publisher did not stamp the result.
    """
    return stamp_ns(msg.header.stamp)


def carried_target(msg) -> tuple[float, float]:
    """(R, G) from a message's target_reward_return/target_cost_return (Action, EpisodeResult,
    SupervisorStatus)."""
    return float(msg.target_reward_return), float(msg.target_cost_return)


def episode_record(msg: EpisodeResult) -> EpisodeRecord:
    """The optimiser's record of an EpisodeResult; `episode` is `episode_id(msg)`, the robot-side index is
    kept in `reason`."""
    return EpisodeRecord(
        target=carried_target(msg),
        reward_return=float(msg.reward_return),
        cost_return=float(msg.cost_return),
        length=int(msg.length),
        terminated=bool(msg.terminated),
        truncated=bool(msg.truncated),
        episode=episode_id(msg),
        reason=f"{msg.reason} [robot episode {msg.episode}]",
    )


def target_return_msg(decision: Decision, stamp: Time) -> TargetReturn:
    msg = TargetReturn()
    msg.header.stamp = stamp
    msg.reward_return, msg.cost_return = target_of(decision)
    msg.iteration = int(decision.iteration)
    msg.phase = int(decision.phase.code)
    msg.reward_lower, msg.reward_upper = (float(v) for v in decision.reward_bounds)
    msg.cost_lower, msg.cost_upper = (float(v) for v in decision.cost_bounds)
    return msg


def supervisor_status_msg(decision: Decision, stamp: Time, *, grid_size: int, best_reward_lower: float,
                          episodes_at_current_target: int, episodes_per_evaluation: int,
                          message: str, published_target: tuple[float, float] | None,
                          last_result_ns: int) -> SupervisorStatus:
    """The status for `decision` (the optimiser's current one). The message documents candidate_set_size
    as the size of the candidate grid Z and best_predicted_reward as the reward lower confidence bound at
    the best target: pass the optimiser status()'s "grid_size" and "best_reward_lower" (the Decision's own
    candidate_set_size and best_predicted_reward are the phase's candidates and the posterior mean).
    `published_target` is the target last published on /pls/target_return (None before the first and
    once halted): the one results are counted for, which can differ from `decision`'s when that is held
    back as not verified safe. `last_result_ns` is the stamp of the result taken last (0: none yet)."""
    msg = SupervisorStatus()
    msg.header.stamp = stamp
    msg.iteration = int(decision.iteration)
    msg.phase = int(decision.phase.code)
    msg.num_observations = int(decision.num_observations)
    msg.safe_set_size = int(decision.safe_set_size)
    msg.candidate_set_size = int(grid_size)
    msg.best_reward_return, msg.best_cost_return = (float(v) for v in decision.best_target)
    msg.best_predicted_reward = float(best_reward_lower)
    msg.best_predicted_cost_upper = float(decision.best_cost_upper)
    msg.threshold = float(decision.threshold)
    msg.target_reward_return, msg.target_cost_return = (
        (math.nan, math.nan) if published_target is None else (float(v) for v in published_target))
    msg.episodes_at_current_target = int(episodes_at_current_target)
    msg.last_result_stamp = time_msg(last_result_ns)
    msg.episodes_per_evaluation = int(episodes_per_evaluation)
    msg.message = message
    return msg
