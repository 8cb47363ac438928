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
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_ros_closed_loop import Lines

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
    launcher = None
    try:
        heard.wait_for(lambda ls: any('"ready"' in line for line in ls), 60, "the listener")
        cmd = [sys.executable, "-m", "pls_core.cli", "sim", "--robots", str(ROBOTS), "--model",
               str(model_path), "--mode", "lockstep", "--max-episodes", str(MAX_EPISODES),
               "--episodes-per-evaluation", str(VARPI), "--threshold", str(THRESHOLD), "--config", "",
               "--store-path", str(tmp_path / "store.sqlite"),
               "--param", f"pls_sim.max_episode_steps={STEPS}"]
        launcher = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        out = Lines(launcher)
        deadline = time.monotonic() + 420
        while launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert launcher.poll() is not None, "pls sim did not finish:\n" + "\n".join(out.snapshot()[-60:])
        out.thread.join(timeout=10)
        log = out.snapshot()
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
        if launcher is not None and launcher.poll() is None:
            stop_process(launcher, timeout_s=20)
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
