"""A monitor that is busy for a moment still sees every target the supervisor published.

The supervisor publishes /pls/target_return latched with depth 1 (a late policy node gets only the current
target). A monitor (the launcher's progress lines, a test listener) that subscribed with the same depth
loses target #2 when #3 arrives before its thread takes #2: CI saw exactly that once. `monitor_qos` keeps a
deep reader history; this test holds the reader still while a publisher in another process sends a burst.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

BURST = 5
TALKER = r"""
import sys, time, rclpy
from pls_interfaces.msg import TargetReturn
from pls_ros import qos
rclpy.init()
node = rclpy.create_node("pls_test_burst_talker")
pub = node.create_publisher(TargetReturn, qos.TARGET_RETURN_TOPIC, qos.TARGET_RETURN_QOS)
deadline = time.monotonic() + 60
while pub.get_subscription_count() < 2 and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
print("matched" if pub.get_subscription_count() >= 2 else "unmatched", flush=True)
sys.stdin.readline()  # the readers have matched this writer too
for i in range(int(sys.argv[1])):
    pub.publish(TargetReturn(iteration=i))
pub.wait_for_all_acked(rclpy.duration.Duration(seconds=10))
print("sent", flush=True)
time.sleep(30)
"""


@pytest.mark.timeout(120)
def test_monitor_qos_keeps_a_burst_that_depth_one_loses(ros_env):
    import rclpy
    from pls_interfaces.msg import TargetReturn

    from pls_ros import qos
    from pls_ros.echo import monitor_qos, qos_for

    context = rclpy.Context()
    rclpy.init(context=context)
    talker = None
    try:
        node = rclpy.create_node("pls_test_monitors", context=context)
        got: dict[str, list[int]] = {"monitor": [], "depth1": []}
        topic = qos.TARGET_RETURN_TOPIC
        subscriptions = [
            node.create_subscription(TargetReturn, topic, lambda m: got["monitor"].append(m.iteration),
                                     monitor_qos(topic)),
            node.create_subscription(TargetReturn, topic, lambda m: got["depth1"].append(m.iteration),
                                     qos_for(topic)),
        ]
        talker = subprocess.Popen([sys.executable, "-c", TALKER, str(BURST)], env=ros_env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert talker.stdout.readline().strip() == "matched", "the talker saw no two readers within 60 s"
        # Discovery is not symmetric: a reader that has not matched the writer yet drops its samples and
        # then gets only the latched last one. Wait (DDS threads match without spinning) until both have.
        deadline = time.monotonic() + 30
        while any(sub.get_publisher_count() < 1 for sub in subscriptions):
            assert time.monotonic() < deadline, "the readers did not match the talker within 30 s"
            time.sleep(0.05)
        talker.stdin.write("go\n")
        talker.stdin.flush()
        # Do not spin while the burst arrives: the readers hold what their history depth allows.
        assert talker.stdout.readline().strip() == "sent"
        deadline = time.monotonic() + 5
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        while time.monotonic() < deadline and len(got["monitor"]) < BURST:
            executor.spin_once(timeout_sec=0.1)
        for _ in range(10):
            executor.spin_once(timeout_sec=0.05)
        assert got["monitor"] == list(range(BURST))
        assert got["depth1"] == [BURST - 1]  # what the launcher's monitor used to see
    finally:
        if talker is not None:
            talker.kill()
            talker.wait()
        rclpy.shutdown(context=context)
