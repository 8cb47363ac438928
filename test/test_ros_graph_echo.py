"""`pls echo` in its own process prints what another process publishes, field for field, as ros2 topic echo.

Real processes over real DDS (localhost discovery, a domain per test from the `ros_env` fixture):
* a TargetReturn published on /pls/target_return *before* the echo starts still reaches it (the latched
  transient_local target) and every field survives the YAML dump;
* an Observation (float32[] field, nested header) on the volatile control topic, published once the echo's
  subscription is matched, comes out with its array intact;
* an unknown topic works with --type, and times out with exit status 2 when nothing is published.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

TARGET = dict(reward_return=2345.678901234, cost_return=17.25, iteration=4_000_000_000, phase=2,
              reward_lower=2100.5, reward_upper=2500.125, cost_lower=3.0625, cost_upper=19.875)
OBS = dict(episode=7, step=123, observation=[0.5, -1.25, 3.0, 1e-3], reward=1.5, cost=1.0)

# Publishes one message of `kind` on `topic` with the QoS pls uses for it (durability overridable), after
# `wait_sub` subscribers have matched (0: at once), then stays up (latched data lives with its publisher).
PUBLISHER = r"""
import sys, time, rclpy
from pls_interfaces import msg as pls_msg
from pls_ros.echo import qos_for
kind, topic, fields, wait_sub = sys.argv[1], sys.argv[2], eval(sys.argv[3]), int(sys.argv[4])
durability = sys.argv[5] or None
rclpy.init()
node = rclpy.create_node("pls_test_publisher")
pub = node.create_publisher(getattr(pls_msg, kind), topic, qos_for(topic, durability=durability))
deadline = time.monotonic() + 60
while pub.get_subscription_count() < wait_sub and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
msg = getattr(pls_msg, kind)(**fields)
msg.header.stamp.sec, msg.header.stamp.nanosec = 1700000000, 123456789
msg.header.frame_id = "pls_test"
pub.publish(msg)
print("published", flush=True)
while time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
"""


def pls(*args: str) -> list[str]:
    return [sys.executable, "-m", "pls_core.cli", *args]


def start_publisher(ros_env, kind, topic, fields, wait_sub=0, durability="") -> subprocess.Popen:
    cmd = [sys.executable, "-c", PUBLISHER, kind, topic, repr(fields), str(wait_sub), durability]
    return subprocess.Popen(cmd, env=ros_env, stdout=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if text in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"{text!r} not seen from pid {proc.pid}")


def documents(stdout: str) -> list[dict]:
    """Split ros2-topic-echo style output into messages: YAML documents each followed by a `---` line."""
    assert stdout.endswith("---\n"), stdout
    chunks = stdout.split("---\n")[:-1]
    return [yaml.safe_load(chunk) for chunk in chunks]


@pytest.mark.timeout(120)
def test_late_echo_gets_the_latched_target_with_every_field(ros_env):
    publisher = start_publisher(ros_env, "TargetReturn", "/pls/target_return", TARGET)
    try:
        wait_for_line(publisher, "published")
        echo = subprocess.run(pls("echo", "/pls/target_return", "--count", "1", "--timeout", "60"),
                              env=ros_env, capture_output=True, text=True, timeout=90)
        assert echo.returncode == 0, echo.stderr
        docs = documents(echo.stdout)
        assert len(docs) == 1
        doc = docs[0]
        # Same layout as ros2 topic echo: nested header first, then the fields in declaration order.
        assert list(doc) == ["header", *TARGET]
        assert doc["header"] == {"stamp": {"sec": 1700000000, "nanosec": 123456789}, "frame_id": "pls_test"}
        for name, value in TARGET.items():
            assert doc[name] == value, (name, doc[name], value)
            assert type(doc[name]) is type(value), name
        assert echo.stdout.startswith("header:\n  stamp:\n    sec: 1700000000\n")
    finally:
        publisher.kill()
        publisher.wait()


@pytest.mark.timeout(120)
def test_echo_prints_arrays_of_a_volatile_topic(ros_env):
    echo = subprocess.Popen(pls("echo", "/pls/observation", "--count", "1", "--timeout", "60"),
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    publisher = start_publisher(ros_env, "Observation", "/pls/observation", OBS, wait_sub=1)
    try:
        out, err = echo.communicate(timeout=90)
        assert echo.returncode == 0, err
        (doc,) = documents(out)
        assert doc["observation"] == [0.5, -1.25, 3.0, pytest.approx(1e-3, rel=1e-6)]
        assert "observation:\n- 0.5\n- -1.25\n" in out
        for name in ("episode", "step", "reward", "cost"):
            assert doc[name] == OBS[name]
    finally:
        echo.kill()
        publisher.kill()
        publisher.wait()


@pytest.mark.timeout(120)
def test_echo_other_topic_with_type_and_timeout(ros_env):
    publisher = start_publisher(ros_env, "TargetReturn", "/elsewhere/target", TARGET,
                                durability="transient_local")
    try:
        wait_for_line(publisher, "published")
        # Publisher is transient_local; echo adapts its QoS to the publisher it discovers, so it gets it too.
        echo = subprocess.run(pls("echo", "/elsewhere/target", "--type", "pls_interfaces/msg/TargetReturn",
                                  "--count", "1", "--timeout", "60"),
                              env=ros_env, capture_output=True, text=True, timeout=90)
        assert echo.returncode == 0, echo.stderr
        assert documents(echo.stdout)[0]["reward_return"] == TARGET["reward_return"]
    finally:
        publisher.kill()
        publisher.wait()
    silent = subprocess.run(pls("echo", "/nobody/here", "--type", "std_msgs/msg/Float64", "--count", "1",
                                "--timeout", "1.5"), env=ros_env, capture_output=True, text=True, timeout=60)
    assert silent.returncode == 2
    assert "timed out" in silent.stderr
    assert silent.stdout == ""
