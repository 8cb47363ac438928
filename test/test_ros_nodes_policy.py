"""pls_policy as a real process over DDS: contract refusal, watchdog fallbacks, target hand-over, SIGTERM.

The test process plays the robot (Observations) and the supervisor (TargetReturn). Fallback latency is
counted in control ticks, from the Action stamps (one Action per tick in timer mode), never asserted on
wall-clock seconds: a loaded machine stretches ticks but must not add any.
"""

from __future__ import annotations

import math
import signal
import time

import numpy as np
import pytest
from pls_interfaces.msg import Action, Observation, PolicyStatus, TargetReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from test_ros_nodes_support import (
    CONFIG,
    DISCOVERY_TIMEOUT,
    NodeProcess,
    Probe,
    assert_configure_fails,
    publish_target,
    wait_until,
)

from pls_ros import qos
from pls_ros.conversions import float32_array, from_float32_field, stamp_ns, time_msg

RATE_HZ = 20.0
PERIOD_NS = int(1e9 / RATE_HZ)
OBS_DIM = 17
HOPPER = "SafetyHopperVelocity-v1"


@pytest.fixture(scope="module")
def model():
    from test_cdt_support import tiny_artifacts

    return tiny_artifacts().onnx


@pytest.fixture(scope="module")
def hopper_model(tmp_path_factory):
    """A tiny CDT for another task (Hopper: obs 11, act 3), from a few short random-action episodes."""
    from pls_core.cdt.trainer import train
    from pls_core.dataset import OfflineDataset, save_dataset
    from pls_core.envs import make_env
    from pls_core.export import export_checkpoint

    root = tmp_path_factory.mktemp("hopper")
    env, rng = make_env(HOPPER, max_episode_steps=100), np.random.default_rng(0)
    keys = ("observations", "next_observations", "actions", "rewards", "costs", "terminals", "timeouts")
    columns = {key: [] for key in keys}
    for episode in range(6):
        obs, _ = env.reset(seed=episode)
        done = False
        while not done:
            action = np.clip(rng.normal(0.0, 0.6, size=env.action_space.shape), -1, 1).astype(np.float32)
            next_obs, reward, cost, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            for key, value in zip(keys, (obs, next_obs, action, reward, cost, terminated,
                                         truncated and not terminated), strict=True):
                columns[key].append(value)
            obs = next_obs
    env.close()
    save_dataset(root / "hopper.hdf5", OfflineDataset(**{k: np.asarray(v) for k, v in columns.items()},
                                                      attrs={"task_id": HOPPER}))
    result = train(root / "hopper.hdf5", root / "run", preset_name="tiny", seed=0, progress=False)
    export_checkpoint(result.checkpoint, root / "policy.onnx")
    return root / "policy.onnx"


@pytest.fixture
def probe(ros_env):
    probe = Probe()
    # Keep every action (a deeper queue than the control QoS; compatible with it).
    probe.subscribe("action", Action, qos.ACTION_TOPIC,
                    QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    probe.subscribe("status", PolicyStatus, qos.POLICY_STATUS_TOPIC, qos.POLICY_STATUS_QOS)
    probe.obs = probe.publisher(Observation, qos.OBSERVATION_TOPIC, qos.CONTROL_QOS)
    probe.target = probe.publisher(TargetReturn, qos.TARGET_RETURN_TOPIC, qos.TARGET_RETURN_QOS)
    yield probe
    probe.close()


def start_policy(ros_env, model, **params):
    return NodeProcess("policy_node", ros_env, params_file=CONFIG / "policy.yaml",
                       params={"model_path": str(model), "control_rate_hz": RATE_HZ, **params})


def now_ns() -> int:
    return time.time_ns()


def observation(episode: int, step: int, values=None, stamp_ns: int | None = None, reward: float = 1.0):
    msg = Observation(episode=episode, step=step, reward=reward if step else 0.0, cost=0.0)
    rng = np.random.default_rng(episode * 1000 + step)
    msg.observation = float32_array(rng.normal(0, 0.5, OBS_DIM) if values is None else values)
    msg.header.stamp = time_msg(now_ns() if stamp_ns is None else stamp_ns)
    return msg


def answer(probe, episode, step, since=0, fallback=None):
    """First action for (episode, step) after index `since`; fallback None = either kind."""
    for action in probe.messages("action")[since:]:
        if action.episode == episode and action.step == step and fallback in (None, action.fallback):
            return action
    return None


def publish_until_answered(probe, msg, fallback=False, timeout=DISCOVERY_TIMEOUT):
    """Publish `msg` (re-stamped) every 0.1 s until the policy answers it (discovery takes a while)."""
    deadline = time.monotonic() + timeout
    while True:
        msg.header.stamp = time_msg(now_ns())
        probe.obs.publish(msg)
        for _ in range(5):
            got = answer(probe, msg.episode, msg.step, fallback=fallback)
            if got is not None:
                return got
            time.sleep(0.02)
        if time.monotonic() > deadline:
            raise AssertionError(f"no {'fallback' if fallback else 'policy'} answer to observation "
                                 f"{msg.episode}/{msg.step} within {timeout:.0f} s")


def ask(probe, msg, timeout: float = 10.0, **kw):
    """Publish `msg` once (the policy is already matched) and wait for its answer."""
    since = len(probe.messages("action"))
    probe.obs.publish(msg)
    return wait_until(lambda: answer(probe, msg.episode, msg.step, since=since, **kw), timeout,
                      f"the answer to {msg.episode}/{msg.step}")


def ticks_until_fallback(probe, after_ns: int, reason: str) -> tuple[int, int]:
    """(ticks, fallback stamp): actions stamped after `after_ns` up to the first fallback whose reason
    contains `reason` (1 = the very first tick after `after_ns` fell back)."""
    def find():
        actions = [a for a in probe.messages("action") if stamp_ns(a.header.stamp) > after_ns]
        for i, action in enumerate(actions):
            if action.fallback and reason in action.reason:
                return i + 1, stamp_ns(action.header.stamp)
        return None
    return wait_until(find, 30, f"a fallback action for {reason!r}")


def refusal(ros_env, log_name: str | None = None, **params) -> str:
    """The output of a policy node that must refuse to start: it exits 2, without a traceback."""
    node = NodeProcess("policy_node", ros_env, params_file=CONFIG / "policy.yaml", params=params,
                       log_name=log_name)
    try:
        assert node.wait(DISCOVERY_TIMEOUT) == 2
        out = node.output()
        assert "Traceback" not in out
        return out
    finally:
        node.kill()


def test_refuses_a_model_with_another_observation_size(ros_env, model):
    out = refusal(ros_env, model_path=str(model), expected_obs_dim=5)
    assert "model contract mismatch" in out and "its obs_dim is 17 but expected_obs_dim is 5" in out
    assert "Fix: set model_path" in out


def test_runs_another_task_s_model_with_the_dimensions_of_its_contract(ros_env, hopper_model, probe):
    # config/policy.yaml's defaults leave obs/act sizes to the model; the task id is what `pls sim --task`
    # sets, and a mismatch there is still refused.
    out = refusal(ros_env, log_name="policy_wrong_task", model_path=str(hopper_model))
    assert f"it was trained for task {HOPPER!r} but expected_task_id is 'SafetyHalfCheetahVelocity-v1'" in out
    node = start_policy(ros_env, hopper_model, trigger="observation", expected_task_id="''")  # any task
    try:
        node.wait_for_log(rf"task {HOPPER}, obs 11, act 3")
        publish_target(probe.target, 300.0, 10.0)
        start = publish_until_answered(probe, observation(0, 0, values=np.zeros(11)))
        assert not start.fallback and len(start.action) == 3
        step = ask(probe, observation(0, 1, values=np.full(11, 0.1)))
        assert not step.fallback and len(step.action) == 3
        # Observations are still checked against the model: HalfCheetah's 17 values are refused.
        wrong = ask(probe, observation(0, 2, values=np.zeros(OBS_DIM)))
        assert wrong.fallback and "expects [11]" in wrong.reason and list(wrong.action) == [0.0] * 3
        assert node.stop() == 0
    finally:
        node.kill()


def test_shield_settings_reach_the_shield_and_a_bad_one_is_refused_at_configure(ros_env, model):
    """shield_substeps above the task's frame skip (HalfCheetah: 5) cannot be a coarser model: exit 2,
    the setting named, no traceback."""
    out = refusal(ros_env, model_path=str(model), shield=True, shield_substeps=7, shield_margin=0.03,
                  shield_iterations=1)
    assert "shield substeps 7 exceed the env's frame_skip 5" in out and "use 1..5 or None" in out
    assert "Fix: the shield_* parameter it names" in out


def test_refuses_a_missing_model(ros_env, tmp_path):
    assert "nope.onnx does not exist" in refusal(ros_env, model_path=str(tmp_path / "nope.onnx"))


def test_timer_watchdog_falls_back_on_nan_and_stale_observations_within_two_ticks(ros_env, model, probe):
    stale_periods = 2.0
    node = start_policy(ros_env, model, trigger="timer", stale_after_periods=stale_periods)
    try:
        publish_target(probe.target, 300.0, 10.0)
        first = publish_until_answered(probe, observation(0, 0))
        assert (first.target_reward_return, first.target_cost_return) == (300.0, 10.0)
        for step in range(1, 6):  # a few normal control steps, paced at the control rate
            probe.obs.publish(observation(0, step))
            time.sleep(1.0 / RATE_HZ)
        wait_until(lambda: answer(probe, 0, 5, fallback=False), 10, "the answer to step 5")
        action = from_float32_field(answer(probe, 0, 5).action)
        assert action.shape == (6,) and np.all(np.abs(action) <= 1.0)

        # NaN observation: the tick that takes it publishes the fallback.
        nan_obs = observation(0, 6, values=[math.nan] + [0.0] * (OBS_DIM - 1))
        probe.obs.publish(nan_obs)
        nan_ticks, nan_stamp = ticks_until_fallback(probe, stamp_ns(nan_obs.header.stamp), "NaN")
        fallback = answer(probe, 0, 6, fallback=True)
        assert from_float32_field(fallback.action).tolist() == [0.0] * 6
        assert "NaN/inf" in fallback.reason

        # Recovery, then silence: the observation goes stale after `stale_periods` periods.
        last_obs = observation(0, 7)
        recovered = ask(probe, last_obs, fallback=False)
        # Stale from (receipt + limit), which is no earlier than (our publication stamp + limit).
        stale_from = stamp_ns(last_obs.header.stamp) + int(stale_periods * PERIOD_NS)
        stale_ticks, stale_stamp = ticks_until_fallback(probe, stale_from, "stale observation")
        held = [a for a in probe.messages("action")
                if stamp_ns(recovered.header.stamp) <= stamp_ns(a.header.stamp) < stale_from]
        assert held and all(not a.fallback and a.step == 7 for a in held), "fresh answers are held per tick"

        nan_periods = (nan_stamp - stamp_ns(nan_obs.header.stamp)) / PERIOD_NS
        print(f"\nfallback after NaN: tick {nan_ticks} ({nan_periods:.2f} periods); after going stale: "
              f"tick {stale_ticks} "
              f"({(stale_stamp - stale_from) / PERIOD_NS:.2f} periods past the stale limit)")
        assert nan_ticks <= 2, f"NaN observation answered by the fallback only at tick {nan_ticks}"
        assert stale_ticks <= 2, f"stale observation answered by the fallback only at tick {stale_ticks}"

        # Statuses come once per second: wait for one taken after the observation went stale. (By its
        # stamp: under load the NaN observation can also go stale before step 7 recovers, and a status
        # from then reports "running" with a stale-observation reason.)
        status = wait_until(lambda: [s for s in probe.messages("status")
                                     if stamp_ns(s.header.stamp) > stale_stamp
                                     and "stale observation" in s.last_fallback_reason], 10,
                            "a status reporting the stale fallback")[-1]
        assert status.state == "fallback" and status.ticks > 0 and status.fallback_actions >= 2
        assert status.task_id == "SafetyHalfCheetahVelocity-v1"
        assert "stale observation" in status.last_fallback_reason
        with_latency = [s for s in probe.messages("status") if not math.isnan(s.latency_p50_ms)]
        assert with_latency and 0 < with_latency[-1].latency_p50_ms <= with_latency[-1].latency_p99_ms

        before = len(probe.messages("action"))
        node.send(signal.SIGTERM)
        assert node.wait(30) == 0
        last = wait_until(lambda: probe.messages("action")[before:] and
                          [a for a in probe.messages("action")[before:] if "stopping" in a.reason], 10,
                          "the shutdown fallback")[-1]
        assert last.fallback and from_float32_field(last.action).tolist() == [0.0] * 6
    finally:
        node.kill()


def test_observation_trigger_targets_only_at_episode_start_and_contract_fallbacks(ros_env, model, probe):
    node = start_policy(ros_env, model, trigger="observation", stale_after_periods=3.0,
                        fallback_action=[0.1, -0.1, 0.0, 0.0, 0.0, 0.0])
    try:
        no_target = publish_until_answered(probe, observation(0, 0), fallback=True)
        assert "no target return" in no_target.reason
        assert from_float32_field(no_target.action).tolist() == pytest.approx([0.1, -0.1, 0, 0, 0, 0])

        publish_target(probe.target, 300.0, 10.0)
        node.wait_for_log(r"target \(R=300\.00, G=10\.00\)")
        start = publish_until_answered(probe, observation(0, 0), timeout=10)
        assert (start.target_reward_return, start.target_cost_return) == (300.0, 10.0)

        assert not ask(probe, observation(0, 1)).fallback
        publish_target(probe.target, 500.0, 2.0, iteration=1)  # mid-episode: must wait for the next start
        node.wait_for_log(r"target \(R=500\.00, G=2\.00\)")
        mid = ask(probe, observation(0, 2))
        assert not mid.fallback and (mid.target_reward_return, mid.target_cost_return) == (300.0, 10.0)
        new = ask(probe, observation(1, 0))
        assert not new.fallback and (new.target_reward_return, new.target_cost_return) == (500.0, 2.0)
        again = ask(probe, observation(1, 0))  # the same observation again (lockstep retry): same answer
        assert list(again.action) == list(new.action) and not again.fallback
        # Silence: the watchdog falls back. The retry that follows gets the step's own answer back, not
        # that fallback (the robot side is alive again; a depth-1 reader may have missed the answer).
        since = len(probe.messages("action"))
        wait_until(lambda: answer(probe, 1, 0, since=since, fallback=True), 10, "the watchdog's fallback")
        retried = ask(probe, observation(1, 0), fallback=False)
        assert list(retried.action) == list(new.action)

        short = ask(probe, observation(1, 1, values=[0.0] * 5))
        assert short.fallback and "expects [17]" in short.reason
        old = ask(probe, observation(1, 2, stamp_ns=now_ns() - 10 * PERIOD_NS))
        assert old.fallback and "stale observation: stamped" in old.reason
        ok = ask(probe, observation(1, 3))
        assert not ok.fallback and ok.target_reward_return == 500.0
        joined = ask(probe, observation(2, 12))  # the next episode, its start missed
        assert joined.fallback and "joined episode 2 at step 12" in joined.reason

        status = wait_until(lambda: [s for s in probe.messages("status") if s.ticks >= 8], 10, "status")[-1]
        assert status.deadline_overruns <= status.ticks
        assert node.stop() == 0
        assert "stopped (received SIGTERM)" in node.output()
    finally:
        node.kill()


def test_only_the_current_or_the_next_episode_touches_the_policy(ros_env, model, probe):
    """One bad message must not break an episode: a foreign episode's NaN step 0, a step of 4e9 and a
    replayed step 0 are ignored (and logged), and the running episode goes on with its target."""
    # 2 s of silence before the policy re-synchronises to any episode: far longer than a test step takes.
    node = start_policy(ros_env, model, trigger="observation", stale_after_periods=40.0)
    try:
        publish_target(probe.target, 300.0, 10.0)
        node.wait_for_log(r"target \(R=300\.00, G=10\.00\)")
        assert not publish_until_answered(probe, observation(0, 0)).fallback
        assert not ask(probe, observation(0, 1)).fallback

        since = len(probe.messages("action"))
        probe.obs.publish(observation(5, 0, values=[math.nan] * OBS_DIM))
        node.wait_for_log(r"ignored observation 5/0: episode 5 is neither the current \(0\) nor the next")
        after_foreign = ask(probe, observation(0, 2))
        assert not after_foreign.fallback and after_foreign.target_reward_return == 300.0

        probe.obs.publish(observation(0, 4_000_000_000))
        node.wait_for_log(r"ignored observation 0/4000000000: .* more than max_step_jump")
        after_jump = ask(probe, observation(0, 3))
        assert not after_jump.fallback and after_jump.target_reward_return == 300.0

        probe.obs.publish(observation(0, 0))
        node.wait_for_log(r"ignored observation 0/0: step 0 of episode 0 again after step 3: .*not restarted")
        after_replay = ask(probe, observation(0, 4))
        assert not after_replay.fallback and after_replay.target_reward_return == 300.0
        # The ignored observations were not answered: a realtime driver would have applied those answers.
        assert not [a for a in probe.messages("action")[since:] if (a.episode, a.step) in {(5, 0), (0, 0)}]
        assert not [a for a in probe.messages("action") if a.step == 4_000_000_000]

        assert not ask(probe, observation(1, 0)).fallback  # the next episode starts as usual
        # A driver that restarts and counts from 0 again is followed once it was silent long enough.
        time.sleep(2.5)
        restarted = publish_until_answered(probe, observation(0, 0), timeout=10)
        assert not restarted.fallback and restarted.target_reward_return == 300.0
        node.wait_for_log(r"observation 0/0 after \d+ ms of silence .*following the robot side")
        status = wait_until(lambda: [s for s in probe.messages("status") if s.state == "running"], 10,
                            "a running status")[-1]
        assert status.target_reward_return == 300.0
        assert node.stop() == 0
    finally:
        node.kill()


def test_a_halt_gives_the_safe_action_until_a_new_target_starts_an_episode(ros_env, model, probe):
    safe = [0.1, -0.1, 0.0, 0.0, 0.0, 0.0]
    node = start_policy(ros_env, model, trigger="observation", fallback_action=safe)
    try:
        publish_target(probe.target, 300.0, 10.0)
        node.wait_for_log(r"target \(R=300\.00, G=10\.00\)")
        assert not publish_until_answered(probe, observation(0, 0)).fallback
        assert not ask(probe, observation(0, 1)).fallback

        # The supervisor halts: the followed target is refuted too, so the safe action applies at once.
        probe.target.publish(TargetReturn(reward_return=300.0, cost_return=10.0, iteration=1,
                                          phase=TargetReturn.PHASE_HALTED))
        node.wait_for_log(r"the supervisor halted at iteration 1")
        replaced = wait_until(lambda: answer(probe, 0, 1, fallback=True), 10, "the halt's fallback")
        assert "halted by the supervisor" in replaced.reason
        for msg in (observation(0, 2), observation(1, 0), observation(1, 1)):  # also at an episode start
            got = ask(probe, msg)
            assert got.fallback and "halted by the supervisor" in got.reason, (msg.episode, msg.step)
            assert from_float32_field(got.action).tolist() == pytest.approx(safe)
            assert math.isnan(got.target_reward_return)
        wait_until(lambda: [s for s in probe.messages("status") if s.state == "halted"], 10, "halted status")

        # A new verified target ends the halt from the next episode start, like any target.
        publish_target(probe.target, 500.0, 2.0, iteration=2)
        node.wait_for_log(r"target \(R=500\.00, G=2\.00\) from iteration 2; .*that ends the halt")
        mid = ask(probe, observation(1, 2))
        assert mid.fallback and from_float32_field(mid.action).tolist() == pytest.approx(safe)
        new = ask(probe, observation(2, 0))
        assert not new.fallback and (new.target_reward_return, new.target_cost_return) == (500.0, 2.0)
        assert not ask(probe, observation(2, 1)).fallback
        # Not "running" necessarily: without further observations the watchdog reports "fallback".
        status = wait_until(lambda: [s for s in probe.messages("status")[-1:] if s.state != "halted"], 10,
                            "a status after the halt")[0]
        assert status.target_reward_return == 500.0
        assert node.output().count("the supervisor halted") == 1  # logged once
        assert node.stop() == 0
    finally:
        node.kill()


def call(probe, client, request, timeout: float = 30.0):
    """A service call from the probe's node (its executor thread spins), bounded."""
    wait_until(lambda: client.service_is_ready(), DISCOVERY_TIMEOUT, f"service {client.srv_name}")
    future = client.call_async(request)
    wait_until(future.done, timeout, f"the answer of {client.srv_name}")
    return future.result()


def test_managed_node_transitions_over_dds(ros_env, model, probe, tmp_path):
    """configure loads the model (a bad one fails and stays unconfigured), activate starts control,
    deactivate holds the fallback action, cleanup releases the model and the topics."""
    from lifecycle_msgs.msg import State as LState
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    node = start_policy(ros_env, model, trigger="observation", autostart=False)
    bad = None
    change = probe.node.create_client(ChangeState, "/pls_policy/change_state")
    get = probe.node.create_client(GetState, "/pls_policy/get_state")

    def transition(client, tid):
        return call(probe, client, ChangeState.Request(transition=Transition(id=tid))).success

    def state():
        return call(probe, get, GetState.Request()).current_state.id

    try:
        assert state() == LState.PRIMARY_STATE_UNCONFIGURED
        assert transition(change, Transition.TRANSITION_CONFIGURE)
        assert state() == LState.PRIMARY_STATE_INACTIVE
        publish_target(probe.target, 300.0, 10.0)
        inactive = publish_until_answered(probe, observation(0, 0), fallback=True)
        assert "inactive" in inactive.reason

        assert transition(change, Transition.TRANSITION_ACTIVATE)
        assert state() == LState.PRIMARY_STATE_ACTIVE
        running = ask(probe, observation(1, 0))
        assert not running.fallback and running.target_reward_return == 300.0
        assert not ask(probe, observation(1, 1)).fallback

        since = len(probe.messages("action"))
        assert transition(change, Transition.TRANSITION_DEACTIVATE)
        held = wait_until(lambda: [a for a in probe.messages("action")[since:] if a.fallback], 10,
                          "the fallback action on deactivation")[0]
        assert "deactivated" in held.reason and from_float32_field(held.action).tolist() == [0.0] * 6
        assert ask(probe, observation(1, 2)).fallback

        assert transition(change, Transition.TRANSITION_CLEANUP)
        assert state() == LState.PRIMARY_STATE_UNCONFIGURED
        wait_until(lambda: probe.node.count_subscribers(qos.OBSERVATION_TOPIC) == 0, 10,
                   "the observation subscription to go")
        # Configured again (the same parameters), it runs again.
        assert transition(change, Transition.TRANSITION_CONFIGURE)
        assert transition(change, Transition.TRANSITION_ACTIVATE)
        again = publish_until_answered(probe, observation(2, 0), timeout=20)
        assert not again.fallback and again.target_reward_return == 300.0

        assert node.stop() == 0

        # A configure that fails (the model is missing) says why and leaves the node unconfigured.
        bad = NodeProcess("policy_node", ros_env, params_file=CONFIG / "policy.yaml", log_name="bad_policy",
                          params={"model_path": str(tmp_path / "missing.onnx"), "autostart": False})
        assert_configure_fails(bad, lambda: transition(change, Transition.TRANSITION_CONFIGURE), state,
                               r"configuring failed: .*missing\.onnx does not exist")
    finally:
        node.kill()
        if bad is not None:
            bad.kill()


def test_runs_on_rclpy_s_events_executor(ros_env, model, probe):
    """executor:=events: the same node on rclpy.experimental.EventsExecutor (benchmarked against the
    single-threaded executor by benchmarks/bench_dds_control_loop.py)."""
    node = start_policy(ros_env, model, trigger="observation", executor="events")
    try:
        publish_target(probe.target, 300.0, 10.0)
        node.wait_for_log(r"target \(R=300\.00, G=10\.00\)")
        first = publish_until_answered(probe, observation(0, 0))
        assert not first.fallback and first.target_reward_return == 300.0
        assert not ask(probe, observation(0, 1)).fallback
        assert node.stop() == 0
    finally:
        node.kill()
