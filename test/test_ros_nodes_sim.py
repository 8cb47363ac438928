"""pls_sim as a real process over DDS: a lockstep episode driven by pls_policy, realtime without a policy.

The other engineer's closed-loop test runs the whole graph with the supervisor; here the test process
publishes the target itself.
"""

from __future__ import annotations

import math
import re
import signal
import time

import pytest
from pls_interfaces.msg import EpisodeResult, Observation, SupervisorStatus, TargetReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from test_ros_nodes_support import CONFIG, DISCOVERY_TIMEOUT, NodeProcess, Probe, publish_target, wait_until

from pls_ros import qos
from pls_ros.conversions import stamp_ns, time_msg

STEPS = 200  # short episodes (max_episode_steps): the tests here are about the loop, not the task's length


def unique_results(probe) -> list:
    """The episode results received, each once: the sim publishes a result again until it is acknowledged."""
    seen, out = set(), []
    for msg in probe.messages("result"):
        if stamp_ns(msg.header.stamp) not in seen:
            seen.add(stamp_ns(msg.header.stamp))
            out.append(msg)
    return out


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
        # The sim exits right after its one episode: its result reaches only a subscriber it has matched
        # by then, so let discovery finish before the target starts the episode (a fresh-clone run lost
        # the result once).
        wait_until(lambda: probe.node.count_publishers(qos.EPISODE_RESULT_TOPIC) >= 1, DISCOVERY_TIMEOUT,
                   "the sim's EpisodeResult publisher")
        publish_target(probe.target, 300.0, 10.0)
        # The sim holds step 0 until the policy answers with a policy action, then runs the episode and,
        # with max_episodes 1, exits 0 by itself.
        assert sim.wait(180) == 0, sim.output()[-3000:]
        result = wait_until(lambda: unique_results(probe), DISCOVERY_TIMEOUT, "the episode result")[0]
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


def publish_status(pub, iteration, count, phase=0, message="", target=(math.nan, math.nan), taken=None):
    """The test playing the supervisor: a SupervisorStatus stamped now, naming `target` (NaN: none) and the
    result `taken` last (None: none yet)."""
    msg = SupervisorStatus(iteration=iteration, episodes_at_current_target=count, phase=phase,
                           message=message, target_reward_return=target[0], target_cost_return=target[1])
    msg.header.stamp = time_msg(time.time_ns())
    if taken is not None:
        msg.last_result_stamp = taken.header.stamp
    pub.publish(msg)


def start_lockstep_sim_and_policy(ros_env, *, max_episodes, supervisor_sync_timeout_s):
    """A lockstep sim (50-step episodes) and a policy node running the tiny CDT."""
    from test_cdt_support import tiny_artifacts

    sim = NodeProcess("sim_node", ros_env, params_file=CONFIG / "sim.yaml",
                      params={"mode": "lockstep", "max_episodes": max_episodes, "max_episode_steps": 50,
                              "supervisor_sync_timeout_s": supervisor_sync_timeout_s})
    policy = NodeProcess("policy_node", ros_env, params_file=CONFIG / "policy.yaml",
                         params={"model_path": str(tiny_artifacts().onnx), "trigger": "observation"})
    return sim, policy


def test_lockstep_starts_an_episode_only_after_the_supervisor_acknowledged_the_last_result(ros_env, probe):
    """The test plays the supervisor: it answers a result with a new target, then with a SupervisorStatus."""

    status_pub = probe.publisher(SupervisorStatus, qos.SUPERVISOR_STATUS_TOPIC, qos.SUPERVISOR_STATUS_QOS)

    def status(iteration, count, target=(math.nan, math.nan), taken=None):
        publish_status(status_pub, iteration, count, target=target, taken=taken)

    def results(n):
        return wait_until(lambda: len(unique_results(probe)) >= n and unique_results(probe), 120,
                          f"{n} episode result(s)")

    def episodes_seen():
        return {m.episode for m in probe.messages("obs")}

    # A supervisor is there (the sim waits for it), but the sim gets no status of it before the first result
    # ends, as when discovery is slow under load.
    sim, policy = start_lockstep_sim_and_policy(ros_env, max_episodes=3, supervisor_sync_timeout_s=2.0)
    try:
        # The sim waits only for a supervisor it knows of: let discovery finish before the run starts.
        wait_until(lambda: status_pub.get_subscription_count() >= 1, DISCOVERY_TIMEOUT, "the sim's status "
                   "subscription")
        publish_target(probe.target, 300.0, 10.0)
        first = results(1)[0]
        # A status stamped after the result that does not name it (a periodic status that left before the
        # supervisor took the result) is no acknowledgement: episode 1 does not start. (Judged by a newer
        # stamp and a state other than the last one seen, this one let episode 1 start.)
        status(0, 0)
        time.sleep(0.5)
        assert len(unique_results(probe)) == 1, "episode 1 ran without the acknowledgement"
        assert 1 not in episodes_seen(), "episode 1 started without the acknowledgement"
        # The supervisor's answer: a new target, then the status of the new state, which names it. Here the
        # target reaches the policy late (as under load, the two travel separately): the go-ahead alone
        # does not start episode 1 with the old target; step 0 waits until the policy carries the new one.
        status(1, 0, target=(500.0, 2.0), taken=first)
        sim.wait_for_log(r"episode 1 waits for the policy to take the supervisor's target \(500\.0, 2\.0\)")
        assert len(unique_results(probe)) == 1
        assert not any(m.episode == 1 and m.step > 0 for m in probe.messages("obs")), \
            "episode 1 started with the old target"
        publish_target(probe.target, 500.0, 2.0, iteration=1)
        second = results(2)[1]
        assert (first.target_reward_return, first.target_cost_return) == (300.0, 10.0)
        assert (second.target_reward_return, second.target_cost_return) == (500.0, 2.0), \
            "episode 1 started before the new target reached the policy"
        # No acknowledgement of episode 1's result: the sim goes on after supervisor_sync_timeout_s.
        third = results(3)[2]
        sim.wait_for_log(r"starting episode 2 without the supervisor's acknowledgement of episode 1's result")
        assert stamp_ns(third.header.stamp) - stamp_ns(second.header.stamp) > 2.0e9
        # After the last episode the sim stops only once the supervisor has taken the result.
        status(1, 1, target=(500.0, 2.0), taken=third)
        assert sim.wait(30) == 0, sim.output()[-3000:]
        assert all(r.fallback_steps <= 5 and r.reason == "time_limit" for r in (first, second, third))
        assert "stopping without the supervisor's acknowledgement" not in sim.output()
        assert policy.stop() == 0
    finally:
        sim.kill()
        policy.kill()


def test_lockstep_run_ends_when_the_supervisor_halts(ros_env, probe):
    """A HALTED supervisor has no safe target left: the sim ends the run instead of waiting forever."""

    status_pub = probe.publisher(SupervisorStatus, qos.SUPERVISOR_STATUS_TOPIC, qos.SUPERVISOR_STATUS_QOS)
    publish_status(status_pub, 0, 0)
    sim, policy = start_lockstep_sim_and_policy(ros_env, max_episodes=5, supervisor_sync_timeout_s=60.0)
    try:
        wait_until(lambda: status_pub.get_subscription_count() >= 1, DISCOVERY_TIMEOUT, "the sim's status "
                   "subscription")
        publish_target(probe.target, 300.0, 10.0)
        wait_until(lambda: unique_results(probe), 120, "the first episode result")
        publish_status(status_pub, 1, 0, SupervisorStatus.PHASE_HALTED, "no target is verified safe")
        assert sim.wait(30) == 0, sim.output()[-3000:]
        assert "the supervisor halted (no target is verified safe); ending the run after 1 episodes" \
            in sim.output()
        assert len(unique_results(probe)) == 1
        assert policy.stop() == 0
    finally:
        sim.kill()
        policy.kill()


def test_realtime_without_policy_applies_the_fallback_and_stops_on_sigterm(ros_env, probe):
    sim = NodeProcess("sim_node", ros_env, params_file=CONFIG / "sim.yaml",
                      params={"mode": "realtime", "control_rate_hz": 500.0, "max_episode_steps": STEPS})
    try:
        result = wait_until(lambda: unique_results(probe), 120, "the first episode result")[0]
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


def test_watchdog_names_the_stuck_node_and_exits_3(ros_env):
    """No progress for watchdog_timeout_s: the sim says which node holds it up and why, and exits 3 (the
    launchers turn that into a failed graph) instead of waiting forever. (No probe here: a listener on
    /pls/observation would count as a policy.)"""
    from test_cdt_support import tiny_artifacts

    alone = NodeProcess("sim_node", ros_env, params_file=CONFIG / "sim.yaml", log_name="sim_alone",
                        params={"mode": "lockstep", "max_episode_steps": 20, "watchdog_timeout_s": 2.0})
    try:
        assert alone.wait(DISCOVERY_TIMEOUT) == 3, alone.output()[-3000:]
        assert "watchdog: pls_policy is stuck: no node has subscribed to /pls/observation" in alone.output()
    finally:
        alone.kill()
    # A policy without a target answers step 0 only with its fallback: the supervisor is the one missing.
    policy = NodeProcess("policy_node", ros_env, params_file=CONFIG / "policy.yaml",
                         params={"model_path": str(tiny_artifacts().onnx), "trigger": "observation"})
    sim = None
    try:
        policy.wait_for_log("waiting for a target")
        sim = NodeProcess("sim_node", ros_env, params_file=CONFIG / "sim.yaml",
                          params={"mode": "lockstep", "max_episode_steps": 20, "watchdog_timeout_s": 3.0})
        assert sim.wait(DISCOVERY_TIMEOUT) == 3, sim.output()[-3000:]
        assert re.search(r"watchdog: pls_supervisor is stuck: the policy has answered observation 0/0 only "
                         r"with the fallback action for \d+ s \(its reason: no target return received yet\)",
                         sim.output()), sim.output()[-3000:]
        assert "stopped (exit code 3) after 0 episodes" in sim.output()
        assert policy.stop() == 0
    finally:
        if sim is not None:
            sim.kill()
        policy.kill()
