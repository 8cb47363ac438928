"""pls_sim as a real process over DDS: a lockstep episode driven by pls_policy, realtime without a policy.

The other engineer's closed-loop test runs the whole graph with the supervisor; here the test process
publishes the target itself.
"""

from __future__ import annotations

import math
import signal

import pytest
from pls_interfaces.msg import EpisodeResult, Observation, TargetReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from test_ros_nodes_support import CONFIG, DISCOVERY_TIMEOUT, NodeProcess, Probe, publish_target, wait_until

from pls_ros import qos

STEPS = 200  # short episodes (max_episode_steps): the tests here are about the loop, not the task's length


@pytest.fixture
def probe(ros_env):
    probe = Probe()
    probe.subscribe("result", EpisodeResult, qos.EPISODE_RESULT_TOPIC, qos.EPISODE_RESULT_QOS)
    probe.subscribe("obs", Observation, qos.OBSERVATION_TOPIC,
                    QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT))  # a light listener
    probe.target = probe.publisher(TargetReturn, qos.TARGET_RETURN_TOPIC, qos.TARGET_RETURN_QOS)
    yield probe
    probe.close()


def test_lockstep_episode_with_the_policy_node_and_frames(ros_env, probe, tmp_path):
    from test_cdt_support import tiny_artifacts

    frames = tmp_path / "frames"
    sim = NodeProcess("sim_node", ros_env, params_file=CONFIG / "sim.yaml",
                      params={"mode": "lockstep", "max_episodes": 1, "seed": 3, "max_episode_steps": STEPS,
                              "record_video_dir": str(frames), "render_every_n_steps": 50})
    policy = NodeProcess("policy_node", ros_env, params_file=CONFIG / "policy.yaml",
                         params={"model_path": str(tiny_artifacts().onnx), "trigger": "observation"})
    try:
        publish_target(probe.target, 300.0, 10.0)
        # The sim holds step 0 until the policy answers with a policy action, then runs the episode and,
        # with max_episodes 1, exits 0 by itself.
        assert sim.wait(180) == 0, sim.output()[-3000:]
        result = wait_until(lambda: probe.messages("result"), DISCOVERY_TIMEOUT, "the episode result")[0]
        assert (result.episode, result.length, result.truncated, result.terminated) == (0, STEPS, True, False)
        assert (result.target_reward_return, result.target_cost_return) == (300.0, 10.0)
        assert result.reason == "time_limit" and math.isfinite(result.reward_return)
        assert result.fallback_steps <= 5  # max_fallback_steps; a policy answered (nearly) every step
        assert result.cost_return >= 0.0 and result.header.stamp.sec > 0
        assert "stopped (done) after 1 episodes" in sim.output()
        assert sorted(p.name for p in (frames / "episode_00000").iterdir()) == [
            f"step_{s:05d}.png" for s in range(0, STEPS + 1, 50)]
        assert policy.stop() == 0
    finally:
        sim.kill()
        policy.kill()


def test_realtime_without_policy_applies_the_fallback_and_stops_on_sigterm(ros_env, probe):
    sim = NodeProcess("sim_node", ros_env, params_file=CONFIG / "sim.yaml",
                      params={"mode": "realtime", "control_rate_hz": 500.0, "max_episode_steps": STEPS})
    try:
        result = wait_until(lambda: probe.messages("result"), 120, "the first episode result")[0]
        assert result.reason.startswith(f"aborted: no policy action in {STEPS} steps")
        assert math.isnan(result.target_reward_return) and result.length == STEPS
        assert result.fallback_steps == STEPS  # every step was the sim's own fallback
        seen = probe.messages("obs")
        assert seen and all(len(m.observation) == 17 for m in seen)
        sim.send(signal.SIGTERM)
        assert sim.wait(30) == 0
        assert "stopped (received SIGTERM)" in sim.output()
    finally:
        sim.kill()


def test_refuses_a_fallback_action_of_the_wrong_size(ros_env):
    sim = NodeProcess("sim_node", ros_env, params_file=CONFIG / "sim.yaml", params={"fallback_action": [0.0]})
    try:
        assert sim.wait(DISCOVERY_TIMEOUT) == 2
        assert "fallback_action has 1 entries but SafetyHalfCheetahVelocity-v1 takes 6" in sim.output()
    finally:
        sim.kill()


def test_refuses_episodes_longer_than_the_task_s(ros_env):
    sim = NodeProcess("sim_node", ros_env, params_file=CONFIG / "sim.yaml",
                      params={"max_episode_steps": 1001})
    try:
        assert sim.wait(DISCOVERY_TIMEOUT) == 2
        out = sim.output()
        assert "max_episode_steps 1001 exceeds the 1000-step episodes of SafetyHalfCheetahVelocity-v1" in out
        assert "Traceback" not in out
    finally:
        sim.kill()
