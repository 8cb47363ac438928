"""`pls robot` as a real robot would see it, and the launcher's process supervision, with real processes.

* This test process plays the robot's driver on the driver-side topics (the robot graph's remappings): it
  publishes Observations and an EpisodeResult, and gets policy Actions carrying the supervisor's target
  back; the launcher's progress display follows the remapped episode topic.
* SIGINT and SIGTERM sent to the launcher reach every node once, and all exit 0.
* When a required node dies (the policy with a missing model exits 2), the launcher stops the others,
  names the node and its exit code, and exits with that code.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from test_ros_nodes_support import Launched

from pls_ros import graph as G

REPO = Path(__file__).resolve().parent.parent
DRIVER = {name: G.ROBOT.argument(name).default for name in
          ("observation_topic", "action_topic", "episode_result_topic")}



def robot_args(model: Path, tmp_path: Path, verbose: bool = True) -> list[str]:
    return ["--model", str(model), "--episodes-per-evaluation", "2", "--threshold", "25", "--config", "",
            "--store-path", str(tmp_path / "store.sqlite"), "--verbose" if verbose else "--no-verbose"]


STARTED = ("[pls_supervisor] ", "new run in", "[pls_policy] ", "waiting for a target")


@pytest.mark.timeout(240)
def test_pls_robot_serves_a_driver_on_its_topics_and_stops_on_sigint(ros_env, tmp_path, model_path):
    import rclpy
    from pls_interfaces.msg import Action, EpisodeResult, Observation, SupervisorStatus
    from rclpy.executors import SingleThreadedExecutor

    from pls_ros import qos

    run = Launched("robot", robot_args(model_path, tmp_path), ros_env, tmp_path)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        run.wait_for(*STARTED)
        node = rclpy.create_node("pls_test_driver", context=context)
        actions: list = []
        statuses: list = []
        node.create_subscription(Action, DRIVER["action_topic"], actions.append, qos.ACTION_SUBSCRIPTION_QOS)
        node.create_subscription(SupervisorStatus, G.SUPERVISOR_STATUS, statuses.append,
                                 qos.SUPERVISOR_STATUS_QOS)
        obs_pub = node.create_publisher(Observation, DRIVER["observation_topic"], qos.CONTROL_QOS)
        result_pub = node.create_publisher(EpisodeResult, DRIVER["episode_result_topic"],
                                           qos.EPISODE_RESULT_QOS)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)

        def spin_until(predicate, timeout: float, what: str):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if predicate():
                    return
                executor.spin_once(timeout_sec=0.05)
            raise AssertionError(f"timed out waiting for {what}\n{run.text()[-4000:]}")

        # The policy listens on the driver's topic, not on /pls/observation.
        def policy_on_driver_topics() -> bool:
            subs = node.get_subscriptions_info_by_topic(DRIVER["observation_topic"])
            pubs = node.get_publishers_info_by_topic(DRIVER["action_topic"])
            return ("pls_policy" in {i.node_name for i in subs}
                    and "pls_policy" in {i.node_name for i in pubs} and obs_pub.get_subscription_count() >= 1)

        spin_until(policy_on_driver_topics, 60, "the policy on the driver topics")
        assert not node.get_subscriptions_info_by_topic(G.OBSERVATION)

        rng = np.random.default_rng(0)

        def observe(step: int):
            msg = Observation(episode=0, step=step, reward=1.0 if step else 0.0, cost=0.0)
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.observation = rng.standard_normal(17).astype(np.float32).tolist()
            obs_pub.publish(msg)

        def answered(step: int) -> bool:
            return any(a.step == step and not a.fallback for a in actions)

        # Step 0 until the policy has the supervisor's target and answers with a policy action (as the sim).
        deadline = time.monotonic() + 60
        while not answered(0) and time.monotonic() < deadline:
            observe(0)
            until = time.monotonic() + 0.3
            while time.monotonic() < until and not answered(0):
                executor.spin_once(timeout_sec=0.05)
        assert answered(0), [(a.step, a.fallback, a.reason) for a in actions]
        for step in range(1, 5):
            observe(step)
            spin_until(lambda s=step: answered(s), 10, f"the action for step {step}")
        policy_actions = [a for a in actions if not a.fallback]
        target = (policy_actions[0].target_reward_return, policy_actions[0].target_cost_return)
        assert all(np.isfinite(target)) and all(len(a.action) == 6 for a in policy_actions)

        # The driver reports the episode; the supervisor counts it at its current target.
        result = EpisodeResult(episode=0, target_reward_return=target[0], target_cost_return=target[1],
                               reward_return=123.0, cost_return=4.0, length=1000, terminated=False,
                               truncated=True, reason="time_limit")
        result.header.stamp = node.get_clock().now().to_msg()
        result_pub.publish(result)
        spin_until(lambda: any(s.episodes_at_current_target == 1 for s in statuses), 30,
                   "the supervisor to count the driver's episode")
        # The launcher's progress display follows the remapped episode topic.
        run.wait_for("[pls] episode 0: reward 123.00  cost 4.00", timeout=30)
    finally:
        rclpy.shutdown(context=context)
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0, run.text()[-5000:]
    assert "[pls] SIGINT received: stopping all nodes" in run.lines
    assert "[pls] pls_policy: exit code 0" in run.lines and "[pls] pls_supervisor: exit code 0" in run.lines
    assert "stopped (received SIGINT)" in run.text()
    assert run.text().count("stopped (received SIGINT)") == 2  # each node got the signal exactly once


@pytest.mark.timeout(180)
def test_sigterm_is_forwarded(ros_env, tmp_path, model_path):
    run = Launched("robot", robot_args(model_path, tmp_path), ros_env, tmp_path)
    run.wait_for(*STARTED)
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 0, run.text()[-5000:]
    assert "[pls] SIGTERM received: stopping all nodes" in run.lines
    assert run.text().count("stopped (received SIGTERM)") == 2
    assert "[pls] pls_policy: exit code 0" in run.lines and "[pls] pls_supervisor: exit code 0" in run.lines


@pytest.mark.timeout(180)
def test_a_failed_required_node_stops_the_graph_with_its_exit_code(ros_env, tmp_path):
    # An explicit optimizer config: with config "" the supervisor would read the (missing) model too and
    # both nodes would race to fail first; here only the policy fails.
    args = robot_args(tmp_path / "missing.onnx", tmp_path, verbose=False)  # node output in files only
    args[args.index("--config") + 1] = "config/optimizer.yaml"
    run = Launched("robot", args, ros_env, tmp_path)
    code = run.finish(timeout=120)
    assert code == 2, run.text()[-5000:]
    assert ("[pls] required node pls_policy failed (exit code 2): stopping pls_supervisor; its log above "
            "says why") in run.lines, run.text()[-5000:]
    assert "[pls] pls_policy: exit code 2" in run.lines
    # The supervisor may still be importing when it is told to stop: it ends either way, never lingers.
    assert any(line.startswith("[pls] pls_supervisor: ") and "still running" not in line
               for line in run.lines)
    # Not verbose: the failed node's output is in its log file, and its last lines are shown on failure.
    assert any(line.startswith("[pls] last lines of ") and line.endswith("pls_policy.log:")
               for line in run.lines)
    assert any(line.startswith("[pls_policy] ") and "missing.onnx" in line for line in run.lines)
    assert not any(line.startswith("[pls_supervisor] ") for line in run.lines)
