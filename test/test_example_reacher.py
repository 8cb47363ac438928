"""The example robot (examples/reacher): its driver and controllers as separate processes over real DDS.

* A calm and an aggressive behaviour controller each drive a driver for 3 lockstep episodes (two pairs on
  their own topics, at once): Observations start every episode at step 0 and count steps 0..49, episodes
  0, 1, 2 in order; results have unique non-zero stamps, 50 steps, `time_limit`, no fallback steps, the
  controllers' NaN target, and returns that agree with the per-step values; the calm episodes cost 0, the
  aggressive ones many steps.
* With a supervisor (this test plays it): the driver holds the next episode until the status acknowledges
  the last result, publishes a result again when a later status does not acknowledge it, and on SIGTERM
  keeps an unacknowledged result in its spool file.
* Watchdog: when the policy stops answering, the driver drives the rest of the episode with its own safe
  action (zeros), counts fallback steps and reports the episode aborted; a fallback at step 0 does not
  start an episode; a halted supervisor stops the driver (exit 3).
* Bad options: exit 2 with one clear line, no traceback.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_ros_nodes_support import Probe, wait_until

from pls_ros.launcher import stop_process

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "reacher"
STEPS = 50
TIMEOUT = 60.0  # bound on each wait: process start (rclpy, gymnasium, MuJoCo) and discovery under load


class Script:
    """One of the example's scripts as a child process, stdout and stderr in a log file."""

    def __init__(self, script: str, args: list[str], env: dict, log_dir: Path, name: str):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, str(EXAMPLE / script), *args],
                                     env={**env, "OMP_NUM_THREADS": "1"}, cwd=REPO, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout:.0f} s:\n"
                                 f"{self.output()[-3000:]}") from None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        code = stop_process(self.proc, sig, 20.0)
        self._log.close()
        return code


@pytest.fixture
def scripts():
    started: list[Script] = []
    yield started
    for script in started:
        script.stop()


@pytest.fixture
def probe(ros_env):
    p = Probe("reacher_test_probe")
    yield p
    p.close()


def control_qos(depth: int = 1):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos(depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def topics(prefix: str) -> dict[str, str]:
    return {"observation": f"{prefix}/pls/observation", "action": f"{prefix}/pls/action",
            "result": f"{prefix}/pls/episode_result"}


def driver_args(t: dict[str, str], *extra: str) -> list[str]:
    return ["--observation-topic", t["observation"], "--action-topic", t["action"],
            "--episode-result-topic", t["result"], *extra]


def controller_args(t: dict[str, str], *extra: str) -> list[str]:
    return ["--observation-topic", t["observation"], "--action-topic", t["action"], *extra]


def listen(probe: Probe, name: str, t: dict[str, str]) -> None:
    from pls_interfaces.msg import EpisodeResult, Observation

    probe.subscribe(f"{name}/obs", Observation, t["observation"], control_qos(depth=200))
    probe.subscribe(f"{name}/result", EpisodeResult, t["result"], latched_qos(1000))


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def episodes_of(observations: list) -> dict[int, list]:
    """Observations by episode, in arrival order, a step published again (step 0's retries) kept once."""
    out: dict[int, list] = {}
    for msg in observations:
        steps = out.setdefault(msg.episode, [])
        if not steps or steps[-1].step != msg.step:
            steps.append(msg)
    return out


def check_contract(observations: list, results: list, n: int, realtime: bool = False) -> list[float]:
    """The contract's checks on n episodes driven by a behaviour controller; their cost returns."""
    order = [msg.episode for msg in observations]
    assert order == sorted(order), "episode numbers went back"
    by_episode = episodes_of(observations)
    assert sorted(by_episode) == list(range(n)), f"episodes {sorted(by_episode)}"
    assert len(results) == n, [r.episode for r in results]
    stamps = [stamp_ns(r.header.stamp) for r in results]
    assert all(s > 0 for s in stamps) and len(set(stamps)) == n and stamps == sorted(stamps), stamps
    obs_stamps = [stamp_ns(m.header.stamp) for m in observations]
    assert all(s > 0 for s in obs_stamps)
    costs = []
    for result, episode in zip(results, range(n), strict=True):
        steps = by_episode[episode]
        assert [m.step for m in steps] == list(range(STEPS)), f"episode {episode}: {[m.step for m in steps]}"
        assert steps[0].reward == 0.0 and steps[0].cost == 0.0
        assert all(len(m.observation) == 11 and m.header.frame_id == "ReacherSpeedLimit-v0" for m in steps)
        assert all(m.cost in (0.0, 1.0) for m in steps)
        assert result.episode == episode and result.length == STEPS
        assert result.truncated and not result.terminated, result
        if realtime:  # a controller late by more than 3 periods (a loaded machine) costs fallback steps
            assert (result.reason == "time_limit" if result.fallback_steps <= 5 else
                    result.reason.startswith(f"aborted: {result.fallback_steps} of 50 steps")), result
        else:
            assert result.reason == "time_limit" and result.fallback_steps == 0, result
        assert math.isnan(result.target_reward_return) and math.isnan(result.target_cost_return)
        # Steps 1..49 carry the reward and cost of transitions 0..48; the 50th transition ends the episode,
        # so its reward (in [-2.5, 0]: distance + squared action) and cost (0 or 1) are only in the result.
        last_reward = result.reward_return - sum(m.reward for m in steps)
        last_cost = result.cost_return - sum(m.cost for m in steps)
        assert -2.5 <= last_reward <= 0.0, (result.reward_return, last_reward)
        assert last_cost in (0.0, 1.0), (result.cost_return, last_cost)
        costs.append(result.cost_return)
    return costs


@pytest.mark.timeout(180)
def test_calm_and_aggressive_controllers_drive_the_driver_by_the_contract(ros_env, probe, scripts, tmp_path):
    log_dir = Path(ros_env["ROS_LOG_DIR"])
    pairs = {"calm": topics("/calm"), "aggressive": topics("/aggressive")}
    drivers = {}
    for name, t in pairs.items():
        listen(probe, name, t)
        drivers[name] = Script("driver.py", driver_args(t, "--episodes", "3", "--seed", "7"), ros_env,
                               log_dir, f"{name}_driver")
    # The driver publishes step 0 again every 0.5 s until a controller answers it: once this test's
    # subscriber has it, no observation goes out before the subscriber is matched.
    for name in pairs:
        wait_until(lambda name=name: probe.messages(f"{name}/obs"), TIMEOUT, f"{name} driver's step 0")
    controllers = [Script("controllers.py", controller_args(t, "--controller", name), ros_env, log_dir,
                          f"{name}_controller") for name, t in pairs.items()]
    scripts.extend([*drivers.values(), *controllers])
    for name, driver in drivers.items():
        code = driver.wait(TIMEOUT)
        assert code == 0, driver.output()[-3000:]
        assert "reacher driver: stopped (done) after 3 episodes" in driver.output()
        wait_until(lambda name=name: len(probe.messages(f"{name}/result")) >= 3, TIMEOUT, f"{name} results")
    costs = {name: check_contract(probe.messages(f"{name}/obs"), probe.messages(f"{name}/result"), 3)
             for name in pairs}
    # The calm controller caps joint speeds at 1.5 rad/s (measured peak 2.3 < the 3 rad/s limit); the
    # aggressive one swings at up to ~28 rad/s and spends most steps above the limit (README.md).
    assert costs["calm"] == [0.0, 0.0, 0.0], costs
    assert min(costs["aggressive"]) >= 15 and sum(costs["aggressive"]) / 3 >= 30, costs
    for controller in controllers:
        assert controller.stop(signal.SIGTERM) == 0
        out = controller.output()
        # At least 150 actions: a step 0 published again before the controller was matched is answered too.
        assert re.search(r"reacher controller: stopped \(SIGTERM\); 1[5-9]\d actions over 3 episodes", out), (
            out[-2000:])
        assert "Traceback" not in out


@pytest.mark.timeout(120)
def test_realtime_mode_steps_at_50_hz(ros_env, probe, scripts):
    t = topics("/robot")
    listen(probe, "robot", t)
    log_dir = Path(ros_env["ROS_LOG_DIR"])
    driver = Script("driver.py", driver_args(t, "--episodes", "2", "--mode", "realtime"), ros_env, log_dir,
                    "driver")
    scripts.append(driver)
    wait_until(lambda: probe.messages("robot/obs"), TIMEOUT, "the driver's step 0")
    scripts.append(Script("controllers.py", controller_args(t, "--controller", "calm"), ros_env, log_dir,
                          "controller"))
    assert driver.wait(TIMEOUT) == 0, driver.output()[-3000:]
    wait_until(lambda: len(probe.messages("robot/result")) >= 2, TIMEOUT, "two results")
    check_contract(probe.messages("robot/obs"), probe.messages("robot/result"), 2, realtime=True)
    timed = probe.timed("robot/obs")
    for episode in (0, 1):
        arrivals = [ns for ns, m in timed if m.episode == episode and m.step in (1, 49)]
        # Steps 1..49 at 50 Hz: 48 periods of 20 ms (less than 1.5x that with the delivery jitter).
        assert 0.8 <= (max(arrivals) - min(arrivals)) / 1e9 <= 1.5, arrivals


def test_driver_and_controllers_import_only_rclpy_numpy_gymnasium_and_the_messages():
    import ast

    allowed = {"__future__", "argparse", "dataclasses", "json", "math", "pathlib", "signal", "sys", "time",
               "traceback", "numpy", "gymnasium", "rclpy", "builtin_interfaces", "pls_interfaces"}
    for script in ("driver.py", "controllers.py"):
        tree = ast.parse((EXAMPLE / script).read_text())
        modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for alias in node.names}
        modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}
        assert modules <= allowed, (script, modules - allowed)


def status_msg(last_result_ns: int = 0, phase: int = 1):
    from builtin_interfaces.msg import Time
    from pls_interfaces.msg import SupervisorStatus

    msg = SupervisorStatus(phase=phase, target_reward_return=math.nan, target_cost_return=math.nan,
                           threshold=5.0, message="the test's supervisor")
    msg.last_result_stamp = Time(sec=last_result_ns // 1_000_000_000, nanosec=last_result_ns % 1_000_000_000)
    return msg


def publish_status(probe: Probe, pub, last_result_ns: int = 0, phase: int = 1) -> int:
    msg = status_msg(last_result_ns, phase)
    msg.header.stamp = probe.node.get_clock().now().to_msg()
    pub.publish(msg)
    return stamp_ns(msg.header.stamp)


@pytest.mark.timeout(180)
def test_driver_waits_for_the_supervisor_resends_and_spools_on_sigterm(ros_env, probe, scripts, tmp_path):
    from pls_interfaces.msg import SupervisorStatus

    t = topics("/robot")
    listen(probe, "robot", t)
    status = probe.publisher(SupervisorStatus, "/pls/supervisor_status", latched_qos(1))
    publish_status(probe, status)  # a supervisor is there, nothing taken yet
    spool = tmp_path / "store.sqlite.unacknowledged.jsonl"
    log_dir = Path(ros_env["ROS_LOG_DIR"])
    driver = Script("driver.py", driver_args(t, "--episodes", "2", "--supervisor-wait-s", "60", "--resend-s",
                                             "1", "--unacknowledged-wait-s", "1", "--spool", str(spool)),
                    ros_env, log_dir, "driver")
    scripts.append(driver)
    wait_until(lambda: probe.messages("robot/obs"), TIMEOUT, "the driver's step 0")
    scripts.append(Script("controllers.py", controller_args(t, "--controller", "calm"), ros_env, log_dir,
                          "controller"))

    def results():
        return probe.messages("robot/result")

    wait_until(lambda: results(), TIMEOUT, "episode 0's result")
    first = stamp_ns(results()[0].header.stamp)
    # The driver holds episode 1 while the supervisor has not taken episode 0's result.
    time.sleep(1.5)
    assert {m.episode for m in probe.messages("robot/obs")} == {0}
    # A status stamped more than --resend-s after the result that does not acknowledge it: sent again.
    publish_status(probe, status)
    wait_until(lambda: len(results()) >= 2, 20.0, "episode 0's result published again")
    assert {stamp_ns(r.header.stamp) for r in results()} == {first}  # the same result, not a new one
    acked_at = time.monotonic_ns()
    publish_status(probe, status, last_result_ns=first)
    wait_until(lambda: any(r.episode == 1 for r in results()), TIMEOUT, "episode 1's result")
    starts = [ns for ns, m in probe.timed("robot/obs") if m.episode == 1 and m.step == 0]
    assert starts and min(starts) > acked_at
    second = [r for r in results() if r.episode == 1][0]
    # Episode 1's result is not acknowledged: on SIGTERM the driver waits 1 s, then keeps it in the spool.
    assert driver.stop(signal.SIGTERM) == 0
    out = driver.output()
    assert f"unacknowledged results kept in {spool}" in out and "Traceback" not in out, out[-3000:]
    lines = spool.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["stamp_ns"] == stamp_ns(second.header.stamp) and record["episode"] == 1
    assert record["reason"] == "time_limit" and record["length"] == STEPS


@pytest.mark.timeout(180)
def test_watchdog_drives_with_zeros_when_the_policy_stops_and_a_halt_stops_it(ros_env, probe, scripts):
    from pls_interfaces.msg import Action, Observation, SupervisorStatus

    t = topics("/robot")
    listen(probe, "robot", t)
    action_pub = probe.publisher(Action, t["action"], control_qos())

    def answer(msg) -> None:
        """A policy that answers steps 0..9 of episode 0, then nothing, and only fallbacks later."""
        if msg.episode == 0 and msg.step >= 10:
            return
        action = Action(episode=msg.episode, step=msg.step, action=[0.1, -0.1], target_reward_return=-9.0,
                        target_cost_return=0.0, fallback=msg.episode > 0,
                        reason="no target return received yet" if msg.episode > 0 else "")
        action_pub.publish(action)

    probe.node.create_subscription(Observation, t["observation"], answer, control_qos())
    log_dir = Path(ros_env["ROS_LOG_DIR"])
    driver = Script("driver.py", driver_args(t, "--lockstep-timeout-s", "0.1", "--retry-s", "0.2",
                                             "--unacknowledged-wait-s", "0.5"), ros_env, log_dir, "driver")
    scripts.append(driver)
    wait_until(lambda: probe.messages("robot/result"), TIMEOUT, "episode 0's result")
    result = probe.messages("robot/result")[0]
    # Steps 10..49 went without an answer (one more if an answer came later than 0.1 s under load).
    assert result.length == STEPS and result.fallback_steps in (40, 41), result
    assert result.reason.startswith(f"aborted: {result.fallback_steps} of 50 steps were not driven by the "
                                    "policy (last: no action for step"), result.reason
    assert (result.target_reward_return, result.target_cost_return) == (-9.0, 0.0)
    # Episode 1: the policy answers step 0 only with fallbacks, so the driver publishes step 0 again and
    # never starts the episode.
    wait_until(lambda: sum(m.episode == 1 for m in probe.messages("robot/obs")) >= 3, TIMEOUT,
               "step 0 of episode 1 published again")
    assert {m.step for m in probe.messages("robot/obs") if m.episode == 1} == {0}
    status = probe.publisher(SupervisorStatus, "/pls/supervisor_status", latched_qos(1))
    publish_status(probe, status, phase=SupervisorStatus.PHASE_HALTED)
    assert driver.wait(TIMEOUT) == 3, driver.output()[-3000:]
    out = driver.output()
    assert "the supervisor halted" in out and "reacher driver: stopped (the supervisor halted" in out, out
    assert "Traceback" not in out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("script, args, message", [
    ("driver.py", ["--speed-limit", "0"], "--speed-limit must be a finite number > 0"),
    ("driver.py", ["--episodes", "-1"], "--episodes must be >= 0"),
    ("driver.py", ["--action-topic", "no spaces"], "--action-topic 'no spaces' is not a valid ROS topic"),
    ("controllers.py", ["--aggressiveness", "2"], "--aggressiveness must be in [0, 1]"),
])
def test_bad_options_exit_2_with_a_clear_message(ros_env, script, args, message):
    run = subprocess.run([sys.executable, str(EXAMPLE / script), *args], env=ros_env, cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr, run.stderr
