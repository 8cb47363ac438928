"""Our message types cross a real DDS link between two processes with every field intact."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

# Field values chosen to catch truncation (float64 vs float32), unsigned overflow and string loss.
SAMPLES = {
    "TargetReturn": dict(reward_return=2345.678901234, cost_return=17.25, iteration=4_000_000_000, phase=2,
                         reward_lower=2100.5, reward_upper=2500.125, cost_lower=3.0625, cost_upper=19.875),
    "EpisodeResult": dict(episode=123456, target_reward_return=2800.0, target_cost_return=20.0,
                          reward_return=2733.123456789, cost_return=12.0, length=1000, terminated=False,
                          truncated=True, fallback_steps=4_000_000_000, reason="time_limit: 1000 steps ✓"),
    "SupervisorStatus": dict(iteration=7, phase=1, num_observations=7, safe_set_size=1234,
                             candidate_set_size=2500,
                             best_reward_return=2500.0, best_cost_return=10.0, best_predicted_reward=2450.5,
                             best_predicted_cost_upper=18.25, threshold=20.0,
                             target_reward_return=1234.5678901, target_cost_return=7.125,
                             episodes_at_current_target=3,
                             episodes_per_evaluation=20, message="expanded safe set"),
}

PUBLISHER = r"""
import sys, time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
from pls_interfaces import msg as pls_msg
samples = eval(sys.argv[1])
rclpy.init()
node = rclpy.create_node("pls_test_talker")
qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
pubs = {name: node.create_publisher(getattr(pls_msg, name), f"/pls_test/{name}", qos) for name in samples}
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    for name, fields in samples.items():
        message = getattr(pls_msg, name)(**fields)
        message.header.stamp.sec = 1700000000
        message.header.stamp.nanosec = 123456789
        message.header.frame_id = "pls_test"
        pubs[name].publish(message)
    rclpy.spin_once(node, timeout_sec=0.05)
"""


@pytest.mark.timeout(120)
def test_each_message_type_crosses_processes_intact(ros_env):
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from pls_interfaces import msg as pls_msg

    talker = subprocess.Popen([sys.executable, "-c", PUBLISHER, repr(SAMPLES)], env=ros_env)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("pls_test_listener", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        received: dict[str, object] = {}
        for name in SAMPLES:
            node.create_subscription(getattr(pls_msg, name), f"/pls_test/{name}",
                                     lambda m, n=name: received.setdefault(n, m), qos)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 60
        while len(received) < len(SAMPLES) and time.monotonic() < deadline and talker.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert set(received) == set(SAMPLES), f"received only {sorted(received)}"
        for name, fields in SAMPLES.items():
            message = received[name]
            for field, value in fields.items():
                got = getattr(message, field)
                assert got == value, f"{name}.{field}: {got!r} != {value!r}"
            assert (message.header.stamp.sec, message.header.stamp.nanosec) == (1700000000, 123456789)
            assert message.header.frame_id == "pls_test"
    finally:
        talker.kill()
        talker.wait()
        rclpy.shutdown(context=context)


def test_phase_constants_agree_between_messages():
    from pls_interfaces.msg import SupervisorStatus, TargetReturn

    for name in ("PHASE_SEED", "PHASE_SAFE_EXPLORATION", "PHASE_REWARD_MAXIMISATION", "PHASE_OPERATION"):
        assert getattr(TargetReturn, name) == getattr(SupervisorStatus, name)
