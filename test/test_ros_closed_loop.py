"""The whole PLS loop through `pls sim`, watched from a separate process over real DDS.

`pls sim` (the pip-only launcher) starts pls_sim (MuJoCo HalfCheetah, lockstep), pls_policy (an exported
ONNX CDT: the shipped model, or a tiny one trained and exported here when none is shipped yet) and
pls_supervisor (safe BO, varpi = 2 episodes per evaluation) as three processes; a fourth process subscribes
to /pls/target_return, /pls/episode_result and /pls/supervisor_status and writes every message it gets as a
JSON line. The run ends by itself (max_episodes: the sim exits 0 and the launcher stops the rest), and
the test checks that at least two supervisor iterations completed, with the expected messages:

* EpisodeResult: exactly max_episodes of them, episodes 0..N-1, full-length (200 steps here), none aborted;
* TargetReturn: one per decision (the supervisor's store lists them), in order, the first a seed target,
  every one verified safe (cost upper bound <= b), and each evaluated target ran for >= varpi episodes;
* SupervisorStatus: the last one reports >= 2 iterations, b and varpi as passed on the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pls_ros.launcher import stop_process

REPO = Path(__file__).resolve().parent.parent
VARPI = 2
# Three evaluations of varpi episodes each. The lockstep sim starts an episode only after the supervisor has
# acknowledged the previous result (and published any new target), so no episode runs with an old target.
MAX_EPISODES = 3 * VARPI
THRESHOLD = 25.0
STEPS = 200  # short episodes (pls_sim max_episode_steps): the loop is under test, not the task's length

LISTENER = r"""
import json, signal, sys, rclpy
from pls_interfaces.msg import EpisodeResult, SupervisorStatus, TargetReturn
from pls_ros.echo import message_to_dict, monitor_qos
rclpy.init()
node = rclpy.create_node("pls_test_listener")
def keep(topic):
    def callback(msg):
        print(json.dumps({"topic": topic, **message_to_dict(msg, truncate=None)}), flush=True)
    return callback
for cls, topic in ((TargetReturn, "/pls/target_return"), (EpisodeResult, "/pls/episode_result"),
                   (SupervisorStatus, "/pls/supervisor_status")):
    node.create_subscription(cls, topic, keep(topic), monitor_qos(topic))
stop = []
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
print(json.dumps({"topic": "ready"}), flush=True)
while not stop:
    rclpy.spin_once(node, timeout_sec=0.1)
node.destroy_node()
rclpy.shutdown()
"""


class Lines:
    """Collects a process's stdout lines in a thread (so waits stay bounded and pipes never fill)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self.lock = proc, [], threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, ""):
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.lines)

    def wait_for(self, predicate, timeout: float, what: str) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.snapshot()
            if predicate(lines):
                return lines
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last lines:\n"
                             + "\n".join(self.snapshot()[-40:]))


def run_to_end(cmd: list[str], env: dict, cwd, timeout_s: float) -> tuple[subprocess.Popen, list[str]]:
    """A `pls sim ...` that ends by itself (max_episodes): (its process, every line it printed); a run
    still going after `timeout_s` fails the test with its last lines."""
    launcher = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    out = Lines(launcher)
    try:
        deadline = time.monotonic() + timeout_s
        while launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert launcher.poll() is not None, "pls sim did not finish:\n" + "\n".join(out.snapshot()[-60:])
    finally:
        if launcher.poll() is None:
            stop_process(launcher, timeout_s=20)
    out.thread.join(timeout=10)
    return launcher, out.snapshot()


@pytest.mark.timeout(420)
def test_pls_sim_runs_two_supervisor_iterations_seen_from_another_process(ros_env, tmp_path, model_path):
    env = {**ros_env, "OMP_NUM_THREADS": "1"}
    listener = subprocess.Popen([sys.executable, "-c", LISTENER], env=env, stdout=subprocess.PIPE, text=True)
    heard = Lines(listener)
    try:
        heard.wait_for(lambda ls: any('"ready"' in line for line in ls), 60, "the listener")
        cmd = [sys.executable, "-m", "pls_core.cli", "sim", "--model", str(model_path), "--mode", "lockstep",
               "--max-episodes", str(MAX_EPISODES), "--episodes-per-evaluation", str(VARPI),
               "--threshold", str(THRESHOLD), "--config", "", "--store-path", str(tmp_path / "store.sqlite"),
               "--param", f"pls_sim.max_episode_steps={STEPS}", "--shield"]  # the shield in the loop too
        launcher, log = run_to_end(cmd, env, tmp_path, 360)
        text = "\n".join(log)
        assert launcher.returncode == 0, text[-6000:]

        # The launcher: the sim ended the run, the others were stopped cleanly, output prefixed per node.
        assert "[pls] required node pls_sim finished (exit code 0): stopping pls_policy, pls_supervisor" \
            in log
        # The nodes' output is in one log file each (named at the end), not on the terminal.
        folder, names = next(line for line in log if line.startswith("[pls] node logs in ")).split("/: ")
        folder = Path(folder.removeprefix("[pls] node logs in "))
        logs = {Path(name).stem: folder / name for name in names.split(", ")}
        for name in ("pls_sim", "pls_policy", "pls_supervisor"):
            assert f"[pls] {name}: exit code 0" in log
            assert not any(line.startswith(f"[{name}] ") for line in log), name
            assert f"[{name}]" in logs[name].read_text(), name  # its rclpy log lines
        assert "shield on: SafetyHalfCheetahVelocity-v1's safe set" in logs["pls_policy"].read_text()
        assert any(line.startswith(f"[pls] episode {MAX_EPISODES - 1}: ") for line in log), text[-6000:]
        # The launcher's monitor is a late joiner too (target and status are latched, depth 1): it may see
        # only the latest of each, so require that it saw the run reach iteration 2, not every step.
        target_iterations = [int(ln.split()[2][1:]) for ln in log if ln.startswith("[pls] target  #")]
        status_iterations = [int(ln.split()[3]) for ln in log if ln.startswith("[pls] status  iteration ")]
        assert target_iterations and max(target_iterations) >= 2, text[-6000:]
        assert status_iterations and max(status_iterations) >= 2, text[-6000:]
        assert not any("without the supervisor's acknowledgement" in line for line in log), text[-6000:]

        heard.wait_for(lambda ls: sum('"/pls/episode_result"' in line for line in ls) >= MAX_EPISODES, 30,
                       "every episode result at the listener")
    finally:
        stop_process(listener, timeout_s=20)
    messages = [json.loads(line) for line in heard.snapshot()]
    by_topic = {t: [m for m in messages if m["topic"] == t]
                for t in ("/pls/target_return", "/pls/episode_result", "/pls/supervisor_status")}
    targets, results, statuses = by_topic.values()

    # EpisodeResult: every episode of the run, once, complete.
    assert [r["episode"] for r in results] == list(range(MAX_EPISODES))
    for r in results:
        assert r["length"] == STEPS and r["truncated"] and not r["terminated"], r
        assert r["reason"] == "time_limit", r
        assert 0 <= r["fallback_steps"] <= 5, r  # not aborted: at most max_fallback_steps fallback steps
        assert 0 <= r["shield_interventions"] <= r["length"] - r["fallback_steps"], r
        assert r["header"]["frame_id"] == "SafetyHalfCheetahVelocity-v1"

    # The supervisor's own log of the run: every decision, every episode it counted and at which iteration.
    from pls_core.safeopt.store import OptimizerStore

    store = OptimizerStore(tmp_path / "store.sqlite")
    try:
        decisions, counted, rejections = store.decisions(), store.episodes(), store.rejection_count()
    finally:
        store.close()
    assert [d.iteration for d in decisions] == list(range(len(decisions))) and len(decisions) >= 3
    assert decisions[0].phase.code == 0  # PHASE_SEED
    assert all(d.verified_safe and d.cost_bounds[1] <= THRESHOLD + 1e-9 for d in decisions)

    # TargetReturn: one per decision, in order, as stored. The topic is latched with depth 1, so a listener
    # matched only after the first evaluation (discovery under load vs. 200-step episodes) starts later.
    heard = [(t["iteration"], t["reward_return"], t["cost_return"]) for t in targets]
    assert heard and heard == [(d.iteration, *d.target) for d in decisions[heard[0][0]:heard[-1][0] + 1]]
    assert heard[-1][0] >= 2, heard
    for t in targets:
        assert t["phase"] in (0, 1, 2, 3)
        assert t["cost_upper"] <= THRESHOLD + 1e-9, t  # only verified-safe targets are published
        assert t["cost_lower"] <= t["cost_upper"] and t["reward_lower"] <= t["reward_upper"]
    # Lockstep sync: no episode ran with an outdated target, so none was rejected as stale; every result
    # was counted, at the iteration whose target it ran with, varpi per evaluation.
    assert rejections == 0, f"{rejections} results rejected (stale targets?); the run's log:\n{text[-8000:]}"
    iteration_of = {rec.episode: iteration for iteration, rec in counted}
    assert len(counted) == len(iteration_of) == MAX_EPISODES
    for r in results:
        iteration = iteration_of[r["header"]["stamp"]["sec"] * 10**9 + r["header"]["stamp"]["nanosec"]]
        assert (r["target_reward_return"], r["target_cost_return"]) == decisions[iteration].target, r
    assert [i for i, _ in counted] == [e // VARPI for e in range(MAX_EPISODES)]

    # SupervisorStatus: the state at the end, with b and varpi from the command line.
    assert statuses, "no SupervisorStatus received"
    last = statuses[-1]
    assert last["iteration"] >= 2 and last["iteration"] == targets[-1]["iteration"]
    assert last["num_observations"] >= 2
    assert last["threshold"] == THRESHOLD and last["episodes_per_evaluation"] == VARPI
    assert last["safe_set_size"] >= 1 and last["candidate_set_size"] >= 1
    assert {s["phase"] for s in statuses} <= {0, 1, 2, 3}
    assert {s["iteration"] for s in statuses} >= {t["iteration"] for t in targets}
    for t in targets:  # the status of each iteration reports the phase its target was chosen in
        assert t["phase"] in {s["phase"] for s in statuses if s["iteration"] == t["iteration"]}, t
    assert os.path.exists(tmp_path / "store.sqlite")
