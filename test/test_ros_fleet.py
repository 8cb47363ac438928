"""A fleet through the ROS graph: `pls sim --robots 2`, two sims and two policies against one supervisor.

The graph (pls_ros.graph.SIM with robots:=2) starts robot k's pls_sim and pls_policy in namespace /robot<k>
on /robot<k>/pls/*, and one pls_supervisor that proposes a batch of two verified-safe targets per round.
A separate process listens on both robots' topics and records which robot published each EpisodeResult
(by its header stamp) and which targets each robot was sent. The run ends by itself (max_episodes), and
the test checks, against the supervisor's own store:

* every result the supervisor counted came from the robot whose decision it was counted for (iteration
  round x 2 + k is robot k's), and ran with that decision's target: each robot's episodes are attributed
  to the target it ran;
* both robots completed the first round (varpi episodes each) and were sent their own next target;
* no result was rejected as stale: a robot done with its round waits for the other (its status says its
  evaluation is complete) instead of running an episode with an old target;
* every published target is verified safe (cost upper bound <= b).
Episode values are never compared with stored numbers (physics differs between processors).

A second test runs the fleet's supervisor alone, this process playing both robots: per-robot targets and
round waits, a result carrying the other robot's target not counted, and a SIGKILL + restart that
republishes each robot's target and decides as an uninterrupted in-process fleet does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pls_interfaces.msg import EpisodeResult, SupervisorStatus, TargetReturn
from test_ros_closed_loop import Lines, run_to_end
from test_ros_nodes_supervisor import result
from test_ros_nodes_support import CONFIG, DISCOVERY_TIMEOUT, NodeProcess, Probe, wait_until

from pls_core.safeopt import EpisodeRecord, OptimizerConfig
from pls_core.safeopt.fleet import build_fleet
from pls_ros import graph as G
from pls_ros import qos
from pls_ros.conversions import episode_id, stamp_ns
from pls_ros.launcher import stop_process

ROBOTS = 2
VARPI = 2
MAX_EPISODES = 2 * VARPI  # per robot: two rounds
THRESHOLD = 25.0
STEPS = 100  # short episodes: the fleet's bookkeeping is under test, not the task

LISTENER = r"""
import json, signal, sys, rclpy
from pls_interfaces.msg import EpisodeResult, TargetReturn
from pls_ros.echo import message_to_dict, monitor_qos
from pls_ros import graph as G
rclpy.init()
node = rclpy.create_node("pls_test_fleet_listener")
def keep(robot, kind):
    def callback(msg):
        print(json.dumps({"robot": robot, "kind": kind, **message_to_dict(msg, truncate=None)}), flush=True)
    return callback
for robot in range(int(sys.argv[1])):
    for cls, kind, topic in ((TargetReturn, "target", G.TARGET_RETURN),
                             (EpisodeResult, "result", G.EPISODE_RESULT)):
        node.create_subscription(cls, G.robot_topic(topic, robot), keep(robot, kind), monitor_qos(topic))
stop = []
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
print(json.dumps({"kind": "ready"}), flush=True)
while not stop:
    rclpy.spin_once(node, timeout_sec=0.1)
node.destroy_node()
rclpy.shutdown()
"""


def stamp(msg: dict) -> int:
    return msg["header"]["stamp"]["sec"] * 10**9 + msg["header"]["stamp"]["nanosec"]


@pytest.mark.timeout(480)
def test_two_simulated_robots_against_one_supervisor_each_counted_for_its_own_target(ros_env, tmp_path,
                                                                                      model_path):
    env = {**ros_env, "OMP_NUM_THREADS": "1"}
    listener = subprocess.Popen([sys.executable, "-c", LISTENER, str(ROBOTS)], env=env,
                                stdout=subprocess.PIPE, text=True)
    heard = Lines(listener)
    try:
        heard.wait_for(lambda ls: any('"ready"' in line for line in ls), 60, "the listener")
        cmd = [sys.executable, "-m", "pls_core.cli", "sim", "--robots", str(ROBOTS), "--model",
               str(model_path), "--mode", "lockstep", "--max-episodes", str(MAX_EPISODES),
               "--episodes-per-evaluation", str(VARPI), "--threshold", str(THRESHOLD), "--config", "",
               "--store-path", str(tmp_path / "store.sqlite"),
               "--param", f"pls_sim.max_episode_steps={STEPS}"]
        launcher, log = run_to_end(cmd, env, tmp_path, 420)
        text = "\n".join(log)
        assert launcher.returncode == 0, text[-6000:]
        # One sim and one policy per robot, in its namespace; one supervisor. A robot's sim ends the run.
        for robot in range(ROBOTS):
            for node in ("pls_sim", "pls_policy"):
                assert any(line.startswith(f"[pls] started robot{robot}/{node} (pid ") for line in log), text
        assert sum(line.startswith("[pls] started pls_supervisor (pid ") for line in log) == 1, text
        ended = "[pls] required node pls_sim finished (exit code 0)"
        assert any(line.startswith(ended) for line in log), text
        folder = Path(next(line for line in log if line.startswith("[pls] node logs in "))
                      .split("/: ")[0].removeprefix("[pls] node logs in "))
        sim_logs = [(folder / f"robot{k}.pls_sim.log").read_text() for k in range(ROBOTS)]
        supervisor_log = (folder / "pls_supervisor.log").read_text()
        assert f"a fleet of {ROBOTS} robots on /robot0..{ROBOTS - 1}/pls/*" in supervisor_log
        # The first robot done with round 0 was told so and waited for the other.
        assert any("waiting for the other robots of the fleet" in sim_log for sim_log in sim_logs), sim_logs
        assert not any("without the supervisor's acknowledgement" in sim_log for sim_log in sim_logs)
        heard.wait_for(lambda ls: sum('"kind": "result"' in line for line in ls) >= ROBOTS * VARPI, 30,
                       "the first round's results at the listener")
    finally:
        stop_process(listener, timeout_s=20)
    messages = [json.loads(line) for line in heard.snapshot()]
    robot_of = {stamp(m): m["robot"] for m in messages if m["kind"] == "result"}
    sent = {robot: [(m["iteration"], m["reward_return"], m["cost_return"]) for m in messages
                    if m["kind"] == "target" and m["robot"] == robot] for robot in range(ROBOTS)}

    from pls_core.safeopt.store import OptimizerStore

    store = OptimizerStore(tmp_path / "store.sqlite")
    try:
        decisions, counted, rejections = store.decisions(), store.episodes(), store.rejection_count()
        fleet_size = store.fleet_size()
    finally:
        store.close()
    assert fleet_size == ROBOTS
    assert [d.iteration for d in decisions] == list(range(len(decisions)))
    assert len(decisions) >= 2 * ROBOTS, decisions  # round 0's batch and round 1's
    assert all(d.verified_safe and d.cost_bounds[1] <= THRESHOLD + 1e-9 for d in decisions)
    assert rejections == 0, f"{rejections} results rejected (run with a stale target?)"

    # Each counted result: from the robot whose decision it counts for, at that decision's target.
    assert counted
    for iteration, rec in counted:
        assert robot_of[rec.episode] == iteration % ROBOTS, (iteration, rec)
        assert rec.target == decisions[iteration].target, (iteration, rec)
    per_iteration = {}
    for iteration, _ in counted:
        per_iteration[iteration] = per_iteration.get(iteration, 0) + 1
    assert all(per_iteration.get(k) == VARPI for k in range(ROBOTS)), per_iteration  # round 0 complete
    # Each robot was sent its own targets, round by round: round r's is decision r x ROBOTS + k.
    for robot in range(ROBOTS):
        assert sent[robot], f"robot {robot} heard no target"
        for iteration, reward, cost in sent[robot]:
            assert iteration % ROBOTS == robot and (reward, cost) == decisions[iteration].target
        assert max(i for i, _, _ in sent[robot]) >= ROBOTS + robot  # its round-1 target reached it


# --- the supervisor of a fleet as a process: per-robot targets, attribution, restart ------------------
@pytest.mark.timeout(240)
def test_fleet_supervisor_sends_each_robot_its_target_and_resumes_after_sigkill(ros_env, tmp_path):
    """robots: 2 on the real node over DDS, this process playing both robots on /robot<k>/pls/*: each gets
    its own verified-safe target; a robot done with its round is told so (its status counts varpi) and
    gets nothing new until the other is done; a result carrying the other robot's target does not count;
    after a SIGKILL the restarted node republishes each robot's target and decides as an uninterrupted
    in-process fleet does from the same episodes."""
    config = OptimizerConfig.for_task("SafetyHalfCheetahVelocity-v1", threshold=20.0,
                                      episodes_per_evaluation=VARPI)
    yaml_path = tmp_path / "optimizer.yaml"
    yaml_path.write_text(yaml.safe_dump(config.to_dict()))
    store = tmp_path / "store.sqlite"
    probe = Probe()
    publishers = []
    for k in range(ROBOTS):
        probe.subscribe(f"target{k}", TargetReturn, G.robot_topic(G.TARGET_RETURN, k), qos.TARGET_RETURN_QOS)
        probe.subscribe(f"status{k}", SupervisorStatus, G.robot_topic(G.SUPERVISOR_STATUS, k),
                        qos.SUPERVISOR_STATUS_QOS)
        publishers.append(probe.publisher(EpisodeResult, G.robot_topic(G.EPISODE_RESULT, k),
                                          qos.EPISODE_RESULT_QOS))
    sent: list[tuple[int, EpisodeResult]] = []

    def send(robot, target, cost=4.0):
        msg = result(len(sent), target, cost=cost)
        sent.append((robot, msg))
        publishers[robot].publish(msg)

    def start(name):
        return NodeProcess("supervisor_node", ros_env, params_file=CONFIG / "supervisor.yaml", log_name=name,
                           params={"optimizer_config": str(yaml_path), "store_path": str(store),
                                   "status_period_s": 0.5, "robots": ROBOTS})

    def target_of(robot, iteration):
        found = wait_until(lambda: [m for m in probe.messages(f"target{robot}") if m.iteration == iteration],
                           DISCOVERY_TIMEOUT, f"robot {robot}'s target of iteration {iteration}")
        return found[-1].reward_return, found[-1].cost_return

    def status_of(robot, predicate, what):
        def found():
            return next((s for s in reversed(probe.messages(f"status{robot}")) if predicate(s)), None)
        return wait_until(found, DISCOVERY_TIMEOUT, what)

    first = start("fleet_supervisor_1")
    try:
        t0, t1 = target_of(0, 0), target_of(1, 1)  # round 0: decision 0 for robot 0, 1 for robot 1
        assert t0 != t1
        for _ in range(VARPI):
            send(0, t0)
        last = episode_id(sent[-1][1])
        done = status_of(0, lambda s: stamp_ns(s.last_result_stamp) == last, "robot 0's acknowledgement")
        assert done.episodes_at_current_target == done.episodes_per_evaluation == VARPI  # wait for robot 1
        send(1, t0)  # robot 1 reporting robot 0's target: not counted for robot 1's
        ignored = episode_id(sent[-1][1])
        status_of(1, lambda s: stamp_ns(s.last_result_stamp) == ignored and "ignored" in s.message,
                  "robot 1's stale result ignored")
        for _ in range(VARPI):
            send(1, t1)
        t2, t3 = target_of(0, 2), target_of(1, 3)  # round 1
        assert status_of(0, lambda s: s.iteration == 2, "robot 0's new round").episodes_at_current_target == 0
        send(0, t2)
        last0 = episode_id(sent[-1][1])
        status_of(0, lambda s: stamp_ns(s.last_result_stamp) == last0, "robot 0's result at t2 taken")
        first.proc.send_signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
    finally:
        first.kill()
    before = [len(probe.messages(f"target{k}")) for k in range(ROBOTS)]
    statuses_before = len(probe.messages("status0"))
    second = start("fleet_supervisor_2")
    try:
        again = [wait_until(lambda k=k: probe.messages(f"target{k}")[before[k]:], DISCOVERY_TIMEOUT,
                            f"robot {k}'s republished target")[0] for k in range(ROBOTS)]
        assert [(m.reward_return, m.cost_return, m.iteration) for m in again] == [(*t2, 2), (*t3, 3)]
        second.wait_for_log(r"resumed from")
        # Its first word to robot 0 acknowledges robot 0's last stored result (from the store: published
        # before any result is taken, so no re-delivery is needed for a waiting robot to go on).
        first_word = wait_until(lambda: probe.messages("status0")[statuses_before:], DISCOVERY_TIMEOUT,
                                "the restarted supervisor's status to robot 0")[0]
        assert stamp_ns(first_word.last_result_stamp) == last0
        for _ in range(VARPI - 1):
            send(0, t2)
        for _ in range(VARPI):
            send(1, t3)
        t4, t5 = target_of(0, 4), target_of(1, 5)
        assert second.stop() == 0
    finally:
        second.kill()
        probe.close()
    # The same episodes, in the same robot order, through an in-process fleet: the same decisions.
    reference = build_fleet(config, ROBOTS)
    counted = [(robot, msg) for robot, msg in sent if episode_id(msg) != ignored]
    for robot, msg in counted:
        reference.report_episode(robot, EpisodeRecord((msg.target_reward_return, msg.target_cost_return),
                                                      msg.reward_return, msg.cost_return, msg.length))
    assert [d.target for d in reference.history] == [t0, t1, t2, t3, t4, t5]


# --- a fleet of real robots: `pls robot --robots 2`, this process playing both drivers -------------------
@pytest.mark.timeout(240)
def test_pls_robot_fleet_serves_each_driver_on_its_own_topics(ros_env, tmp_path, model_path):
    """Each driver topic names robot k's with {robot}: robot k's policy answers on /arm<k>/..., each with
    its robot's own target, and the supervisor counts a driver's result for that robot only."""
    import numpy as np
    import rclpy
    from pls_interfaces.msg import Action, Observation
    from rclpy.executors import SingleThreadedExecutor
    from test_ros_nodes_support import Launched

    topics = {"observation": "/arm{robot}/observation", "action": "/arm{robot}/action",
              "episode-result": "/arm{robot}/episode_result"}
    args = ["--robots", str(ROBOTS), "--model", str(model_path), "--episodes-per-evaluation", "2",
            "--threshold", "25", "--config", "", "--store-path", str(tmp_path / "store.sqlite"), "--verbose",
            *(f"--{name}-topic={value}" for name, value in topics.items())]
    run = Launched("robot", args, ros_env, tmp_path)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        run.wait_for("[pls_supervisor] ", "a fleet of 2 robots")
        node = rclpy.create_node("pls_test_drivers", context=context)
        actions = {k: [] for k in range(ROBOTS)}
        statuses = {k: [] for k in range(ROBOTS)}
        observe, report = [], []
        for k in range(ROBOTS):
            node.create_subscription(Action, f"/arm{k}/action", actions[k].append,
                                     qos.ACTION_SUBSCRIPTION_QOS)
            node.create_subscription(SupervisorStatus, G.robot_topic(G.SUPERVISOR_STATUS, k),
                                     statuses[k].append, qos.SUPERVISOR_STATUS_QOS)
            observe.append(node.create_publisher(Observation, f"/arm{k}/observation", qos.CONTROL_QOS))
            report.append(node.create_publisher(EpisodeResult, f"/arm{k}/episode_result",
                                                qos.EPISODE_RESULT_QOS))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        rng = np.random.default_rng(0)

        def answered(k):
            return next((a for a in actions[k] if a.step == 0 and not a.fallback), None)

        deadline = time.monotonic() + 90
        while not all(answered(k) for k in range(ROBOTS)) and time.monotonic() < deadline:
            for k in range(ROBOTS):  # step 0 until each policy has its target and answers with it
                msg = Observation(episode=0, step=0, reward=0.0, cost=0.0)
                msg.header.stamp = node.get_clock().now().to_msg()
                msg.observation = rng.standard_normal(17).astype(np.float32).tolist()
                observe[k].publish(msg)
            until = time.monotonic() + 0.3
            while time.monotonic() < until:
                executor.spin_once(timeout_sec=0.05)
        firsts = [answered(k) for k in range(ROBOTS)]
        assert all(firsts), run.text()[-4000:]
        targets = [(a.target_reward_return, a.target_cost_return) for a in firsts]
        assert targets[0] != targets[1]  # each robot runs its own member of the round's batch
        # Robot 1's driver reports an episode at robot 1's target: counted for robot 1 only.
        done = EpisodeResult(episode=0, target_reward_return=targets[1][0], target_cost_return=targets[1][1],
                             reward_return=100.0, cost_return=3.0, length=1000, truncated=True,
                             reason="time_limit")
        done.header.stamp = node.get_clock().now().to_msg()
        report[1].publish(done)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(s.episodes_at_current_target == 1 for s in statuses[1]):
            executor.spin_once(timeout_sec=0.05)
        assert any(s.episodes_at_current_target == 1 for s in statuses[1]), run.text()[-4000:]
        assert all(s.episodes_at_current_target == 0 for s in statuses[0])
    finally:
        rclpy.shutdown(context=context)
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0, run.text()[-5000:]
