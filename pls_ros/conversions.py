"""Converting between pls message fields and plain values (numpy vectors, stamps, carried targets).

Used by every node, the robot-side policy node included, so it imports only numpy and the message
packages: the optimizer's types (pls_core.safeopt) are converted in pls_ros.supervisor_messages, which only
the supervisor imports.
"""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time


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


def episode_id(msg) -> int:
    """Identity of one published EpisodeResult: its header stamp in nanoseconds.

    The robot-side episode index repeats when the robot side restarts; the stamp does not, and a result
    that DDS delivers again (history replay to a restarted supervisor) carries the same stamp. 0 means the
    publisher did not stamp the result.
    """
    return stamp_ns(msg.header.stamp)


def carried_target(msg) -> tuple[float, float]:
    """(R, G) from a message's target_reward_return/target_cost_return (Action, EpisodeResult,
    SupervisorStatus)."""
    return float(msg.target_reward_return), float(msg.target_cost_return)
