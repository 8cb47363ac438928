"""Named QoS profiles and default topic names for the pls node graph.

Every profile is chosen for what the topic carries. Publishers use the "strongest" settings of their
topic (RELIABLE, and TRANSIENT_LOCAL where history matters) because DDS matches a strong publisher with a
weaker subscriber but never the other way round: a best-effort or volatile tool (`pls echo`, a plotter)
can always listen in, and nobody has to guess which side must be upgraded.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# Default topic names; every one is remappable (`--ros-args -r /pls/action:=/robot/cmd`).
OBSERVATION_TOPIC = "/pls/observation"
ACTION_TOPIC = "/pls/action"
EPISODE_RESULT_TOPIC = "/pls/episode_result"
TARGET_RETURN_TOPIC = "/pls/target_return"
SUPERVISOR_STATUS_TOPIC = "/pls/supervisor_status"
POLICY_STATUS_TOPIC = "/pls/policy_status"

# Observation and Action: the control loop. Only the newest sample matters (depth 1: a late one is
# replaced, never queued behind), and nothing is kept for late joiners (VOLATILE: an old observation is
# dangerous to act on). RELIABLE rather than best effort because the lockstep sim waits for the answer to
# one exact (episode, step): a dropped sample would stall it until its retry; on one machine (shared
# memory, ~0.4 ms round trip) reliability costs nothing measurable.
CONTROL_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

# The control loop's publishers (Observation, Action): CONTROL_QOS with a deeper writer history. A reliable
# keep-last-1 writer replaces a sample that a reader has not yet acknowledged with the next one, so a
# reader starved of CPU for a few steps (a recorder on a loaded machine) loses samples for good. With
# CONTROL_PUBLISHER_HISTORY samples kept (2 s at 50 Hz) it catches up. Readers that act keep depth 1,
# so nobody acts on an old sample; the depth is not part of QoS matching. Keep-last never blocks the
# publisher.
CONTROL_PUBLISHER_HISTORY = 100
CONTROL_PUBLISHER_QOS = QoSProfile(
    history=CONTROL_QOS.history,
    depth=CONTROL_PUBLISHER_HISTORY,
    reliability=CONTROL_QOS.reliability,
    durability=CONTROL_QOS.durability,
)

# TargetReturn: a latched setpoint. RELIABLE + TRANSIENT_LOCAL depth 1, so a policy node that starts (or
# restarts) after the supervisor still gets the current verified-safe target at once, and only that one.
TARGET_RETURN_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# EpisodeResult: data the optimizer must never lose. RELIABLE + TRANSIENT_LOCAL with a deep history: the
# robot side keeps its last EPISODE_RESULT_HISTORY results, so a supervisor that crashed and restarted is
# sent every result it missed (it drops the ones already in its SQLite store). 1000 results of ~150 bytes
# cover a whole PLS run (about 400 episodes) and cost nothing.
EPISODE_RESULT_HISTORY = 1000
EPISODE_RESULT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=EPISODE_RESULT_HISTORY,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# SupervisorStatus: state, published on change and periodically. TRANSIENT_LOCAL depth 1 so a monitor
# that starts late sees the current state immediately instead of waiting for the next period.
SUPERVISOR_STATUS_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# PolicyStatus: a heartbeat. VOLATILE on purpose: a late joiner must not be shown a "running" heartbeat
# from a node that has since died; a small queue keeps a slow monitor from missing beats.
POLICY_STATUS_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

# The sim's Action subscription keeps a short queue (compatible with the control publishers): the policy's
# watchdog may publish a fallback for a step right after its real answer to that step; with depth 1 the
# fallback could replace the answer before the sim reads it. The sim reads in order and ignores answers to
# steps it has already left, and in realtime mode it still applies only the newest.
ACTION_SUBSCRIPTION_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

# The recorder (pls_recorder) on Observation and Action: RELIABLE and VOLATILE like the control loop's
# publishers (a transient-local reader would not match them), but a deep queue, so a recorder that falls
# behind for a moment (a slow disk, a loaded machine) catches up instead of losing samples (within the
# publishers' own history: CONTROL_PUBLISHER_HISTORY). On
# EpisodeResult it uses EPISODE_RESULT_QOS: transient local with the robot side's depth, so the results
# published before it joined are recorded too.
RECORD_CONTROL_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
