"""Converting between pls messages and the optimizer's values (EpisodeRecord, Decision, Phase).

Only the supervisor imports this module: it is the one place the ROS side touches pls_core.safeopt's
records (which are torch-free at import), so the robot-side policy node never loads the optimizer.
"""

from __future__ import annotations

import math

from builtin_interfaces.msg import Time
from pls_interfaces.msg import EpisodeResult, SupervisorStatus, TargetReturn

from pls_core.safeopt.records import Decision, EpisodeRecord, Phase
from pls_ros.conversions import carried_target, episode_id, time_msg

# The message constants and the optimizer's Phase codes must agree; checked at import.
_MSG_PHASES = (TargetReturn.PHASE_SEED, TargetReturn.PHASE_SAFE_EXPLORATION,
               TargetReturn.PHASE_REWARD_MAXIMISATION, TargetReturn.PHASE_OPERATION,
               TargetReturn.PHASE_HALTED)
assert tuple(p.code for p in Phase) == _MSG_PHASES
assert Phase.OPERATION.code == SupervisorStatus.PHASE_OPERATION
assert Phase.HALTED.code == SupervisorStatus.PHASE_HALTED


def target_of(decision: Decision) -> tuple[float, float]:
    return float(decision.target[0]), float(decision.target[1])


def episode_record(msg: EpisodeResult) -> EpisodeRecord:
    """The optimizer's record of an EpisodeResult; `episode` is `episode_id(msg)`, the robot-side index is
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
    """The status for `decision` (the optimizer's current one). The message documents candidate_set_size
    as the size of the candidate grid Z and best_predicted_reward as the reward lower confidence bound at
    the best target: pass the optimizer status()'s "grid_size" and "best_reward_lower" (the Decision's own
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
