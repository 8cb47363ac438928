"""pls_policy: the frozen return-conditioned policy (ONNX, via pls_core.runtime.PolicyRunner) at control rate.

* Start: loads the model, compares its contract with `expected_task_id/obs_dim/act_dim` and refuses to
  start (exit 2, one error line naming the mismatch and the fix) when they differ. Unset (""/0, the
  obs/act defaults), they are taken from the model contract: any task's model runs without extra flags.
  Every Observation is still checked against the model's obs_dim.
* Targets: follows the latest TargetReturn, applied when an episode starts (step 0), never mid-episode.
  The same step sent again (a lockstep retry) gets the answer that step got, also when the watchdog has
  published a fallback since; step 0 sent again after a new target arrived starts the episode over with it.
  Without a target, or after joining an episode in the middle, it answers with the fallback action.
* Halt: a PHASE_HALTED TargetReturn (the episode data refute the supervisor's seed set: no target is
  safe) drops the target at once, mid-episode too, and every action is the fallback action until a new
  verified target arrives; that target is applied from the next episode start like any other.
* Which observations count: only one from the episode being followed or the next one (episode + 1) may
  touch the policy's state, and only a step at most `max_step_jump` ahead of the newest one: anything
  else (a foreign episode, a step of 4e9, step 0 replayed after the episode has moved on) is ignored with
  a warning, not answered, and the running episode goes on. Once the robot side has been silent for
  `stale_after_periods` periods, any observation is taken again (a restarted driver counts from 0).
* States (one at a time, `State`): waiting_for_target -> waiting_for_observation (a target, no episode
  followed) -> running (following an episode) <-> fallback (following it, but its input went stale or
  invalid); halted from any state on a PHASE_HALTED target, left by the next verified target.
* Trigger: `timer` publishes one action per tick of `control_rate_hz` (the newest observation's answer,
  held while no newer one arrives); `observation` answers each observation at once (lockstep sim).
* Watchdog (both triggers, checked every control period): an observation that is stale (received, or
  stamped, more than `stale_after_periods` control periods ago), has the wrong length or holds NaN/inf
  yields `fallback_action` with fallback=True and the reason in the Action, once per period while it
  lasts; the reason is logged (throttled). A lockstep sim ignores fallbacks for steps it has left.
* Health: PolicyStatus about once per second (state, latency p50/p99 from observation received to action
  published, deadline overruns, fallback count); a warning when inference alone exceeds the period.
* SIGTERM/SIGINT: publishes the fallback action once, then exits 0.
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass

import numpy as np
from pls_interfaces.msg import Action, Observation, PolicyStatus, TargetReturn
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from pls_ros import diagnostics, node_params, qos
from pls_ros.conversions import float32_array, from_float32_field, stamp_ns
from pls_ros.lifecycle import ReleasingLifecycleNode
from pls_ros.params import declare_parameters
from pls_ros.paths import resolve_existing
from pls_ros.spin import StartupError, node_main

NODE_NAME = "pls_policy"


PARAMS = node_params.POLICY


class State(enum.Enum):
    """What the policy node is doing; PolicyStatus.state carries the value."""

    UNCONFIGURED = "unconfigured"  # managed node not configured: no model loaded, no topics
    INACTIVE = "inactive"  # configured, not active: every answer is the fallback
    WAITING_FOR_TARGET = "waiting_for_target"  # no verified target yet: every answer is the fallback
    WAITING_FOR_EPISODE = "waiting_for_observation"  # a target, no episode followed: next step 0 starts one
    RUNNING = "running"  # following an episode with the policy's actions
    FALLBACK = "fallback"  # following an episode, but its last input was stale or invalid
    HALTED = "halted"  # the supervisor found no safe target: fallback until a new verified target


@dataclass
class Followed:
    """The episode the runner's context belongs to."""

    episode: int
    target: tuple[float, float]
    step: int = -1  # last step acted on
    accounted: int = 0  # last step whose reward/cost is in pending_* (or already recorded)
    acted: bool = False  # runner.act() awaits its record()
    pending_reward: float = 0.0  # rewards/costs received but not yet recorded
    pending_cost: float = 0.0


class PolicyNode(ReleasingLifecycleNode):
    """A managed (lifecycle) node: configure loads and checks the model, activate starts control,
    deactivate holds the fallback action, cleanup and shutdown release the model and the topics. With
    `autostart` (the default) it configures and activates itself at start and exits 2 when configuring
    fails; without, a lifecycle manager (`ros2 lifecycle set`) drives it."""

    def __init__(self, **node_kwargs):
        # node_kwargs (context, parameter_overrides, ...) are for in-process use such as tests.
        super().__init__(NODE_NAME, **node_kwargs)
        self.p = declare_parameters(self, PARAMS)
        self.executor_kind = self.p["executor"]  # run_node spins the node with this executor
        from pls_core.runtime import ContractError

        self.ContractError = ContractError
        self.state = State.UNCONFIGURED
        self.contract = self.runner = self.action_pub = None
        self.entities: list = []  # publishers, subscriptions and timers made by configure
        self.configure_error = ""
        self.target: tuple[float, float] | None = None  # latest verified-safe target from the supervisor
        self.target_iteration = -1
        self.halt_reason = ""
        self.followed: Followed | None = None  # set exactly in RUNNING and FALLBACK
        self.ticks = self.overruns = self.fallback_count = self.skipped = self.ignored = 0
        self.shield, self.shield_skip, self.shield_interventions = None, 0, 0
        self.last_fallback_reason = ""
        self.latencies_ms: list[float] = []
        self.latency = (math.nan, math.nan)  # p50, p99 [ms] of the last status window
        diagnostics.Diagnostics(self, "control", self.diagnose)
        if self.p["autostart"]:
            if self.trigger_configure() is not TransitionCallbackReturn.SUCCESS:
                raise StartupError(self.configure_error or "configuring failed")
            self.trigger_activate()

    # --- managed-node transitions -----------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (StartupError, ValueError, OSError, KeyError) as exc:  # ContractError is a ValueError
            self.configure_error = str(exc)
            self.get_logger().error(f"configuring failed: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.state = State.INACTIVE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.state = (State.HALTED if self.halt_reason else
                      State.WAITING_FOR_EPISODE if self.target is not None else State.WAITING_FOR_TARGET)
        self.get_logger().info(f"active: {self.state.value}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.state, self.followed = State.INACTIVE, None
        if self.last_obs is not None:
            last = self.last_obs[0]
            self.publish_fallback(last.episode, last.step, "the policy node was deactivated", None)
        self.get_logger().info("inactive: every observation is answered with the fallback action")
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Back to unconfigured: drop the model and every topic and timer configure made."""
        for entity in self.entities:
            kind = type(entity).__name__
            {"Publisher": self.destroy_publisher, "Subscription": self.destroy_subscription,
             "Timer": self.destroy_timer}[kind](entity)
        self.entities = []
        self.contract = self.runner = self.action_pub = self.shield = None
        self.state, self.followed = State.UNCONFIGURED, None

    def _configure(self) -> None:
        p = self.p
        from pls_core.runtime import ContractError, ModelContract, PolicyRunner, shipped_model_path

        if not p["model_path"] and not p["expected_task_id"]:
            raise StartupError("model_path is empty and so is expected_task_id; set model_path to an ONNX "
                               "file, or expected_task_id to use the model shipped for that task")
        try:
            path = resolve_existing(p["model_path"], "model_path") if p["model_path"] \
                else shipped_model_path(p["expected_task_id"])
        except (FileNotFoundError, ContractError) as exc:
            raise StartupError(f"{exc}. Fix: set model_path to an ONNX file written by `pls export`") \
                from None
        self.contract = ModelContract.from_onnx(path)
        self._check_contract(path)
        self.runner = PolicyRunner(path, num_envs=1, intra_op_threads=1)
        c = self.contract
        fallback = np.asarray(p["fallback_action"] or [0.0] * c.act_dim, dtype=np.float32)
        if fallback.shape != (c.act_dim,):
            raise StartupError(f"fallback_action has {fallback.size} entries but the model's actions have "
                               f"{c.act_dim}; set fallback_action to {c.act_dim} numbers, or [] for zeros")
        low, high = np.asarray(c.act_low) - 1e-6, np.asarray(c.act_high) + 1e-6
        if np.any(fallback < low) or np.any(fallback > high):
            raise StartupError(f"fallback_action {fallback.tolist()} lies outside the model's action bounds "
                               f"[{list(c.act_low)}, {list(c.act_high)}]; choose a safe action inside them")
        self.fallback = fallback
        self.shield = self._load_shield() if p["shield"] else None
        self._warm_up()

        self.period_ns = int(1e9 / p["control_rate_hz"])
        self.stale_ns = int(p["stale_after_periods"] * self.period_ns)
        # Newest observation let through (episode, step, receipt ns): what "current" and "next" mean.
        self.seen: tuple[int, int, int] | None = None
        self._ignore_logged: dict[str, float] = {}  # kind of ignored observation -> when last logged
        self.pending: tuple[Observation, int] | None = None  # newest unprocessed observation (timer mode)
        self.last_obs: tuple[Observation, int] | None = None  # newest observation seen, with receipt time
        self.last_action: Action | None = None  # newest Action published, watchdog fallbacks included
        self.step_answer: Action | None = None  # newest answer to an observation (never a watchdog fallback)

        self.action_pub = self.create_publisher(Action, qos.ACTION_TOPIC, qos.CONTROL_PUBLISHER_QOS)
        self.status_pub = self.create_publisher(PolicyStatus, qos.POLICY_STATUS_TOPIC, qos.POLICY_STATUS_QOS)
        self.entities = [
            self.action_pub, self.status_pub,
            # The target subscription first: when a new target and the next episode's step 0 are both
            # waiting, the executor takes them in creation order, so step 0 starts with the new target.
            self.create_subscription(TargetReturn, qos.TARGET_RETURN_TOPIC, self.on_target,
                                     qos.TARGET_RETURN_QOS),
            self.create_subscription(Observation, qos.OBSERVATION_TOPIC, self.on_observation,
                                     qos.CONTROL_QOS),
            self.create_timer(1.0 / p["control_rate_hz"], self.on_tick),
            self.create_timer(p["status_period_s"], self.publish_status),
        ]
        self.get_logger().info(
            f"model {path} (task {c.task_id}, obs {c.obs_dim}, act {c.act_dim}, context {c.context_len}); "
            f"trigger {p['trigger']} at {p['control_rate_hz']:g} Hz, stale after "
            f"{p['stale_after_periods']:g} periods; waiting for a target on {qos.TARGET_RETURN_TOPIC}")

    # --- start-up -------------------------------------------------------------------------------------

    def _load_shield(self):
        """The per-step shield of the model's task on the robot's (or the task's) MJCF model, and how its
        observations map to that model's state. Imports MuJoCo: only when `shield` is on."""
        from pls_core.shield.safe_set import ShieldError
        from pls_core.shield.shield import Shield, ShieldConfig

        p, task = self.p, self.contract.task_id
        model_path = ""
        try:
            if p["shield_model_path"]:
                model_path = str(resolve_existing(p["shield_model_path"], "shield_model_path"))
            config = ShieldConfig(horizon=p["shield_horizon"] or None, substeps=p["shield_substeps"] or None,
                                  margin=p["shield_margin"], iterations=p["shield_iterations"])
            shield = Shield.for_task(task, config, model_path)
            self.shield_skip = shield.check.sim.observation_layout(self.contract.obs_dim)
        except (FileNotFoundError, ShieldError, ValueError, KeyError) as exc:
            raise StartupError(f"shield: {exc}. Fix: the shield_* parameter it names (shield_model_path: the "
                               "robot's MJCF model), or shield:=false") from None
        self.get_logger().info(f"shield on: {task}'s safe set, horizon {shield.check.horizon} control steps, "
                               f"model {model_path or 'of the task'}")
        return shield

    def _check_contract(self, path) -> None:
        c, p = self.contract, self.p
        problems = []
        if p["expected_task_id"] and c.task_id != p["expected_task_id"]:
            problems.append(f"it was trained for task {c.task_id!r} but expected_task_id is "
                            f"{p['expected_task_id']!r}")
        for name, have in (("obs_dim", c.obs_dim), ("act_dim", c.act_dim)):
            want = p[f"expected_{name}"]
            if want and have != want:
                problems.append(f"its {name} is {have} but expected_{name} is {want}")
        if problems:
            raise StartupError(
                f"model contract mismatch for {path}: {'; '.join(problems)}. Fix: set model_path to a model "
                f"exported for this robot, or correct the expected_* parameters (config/policy.yaml) if the "
                f"robot really is {c.task_id!r} with obs_dim {c.obs_dim} and act_dim {c.act_dim}")

    def _warm_up(self) -> None:
        """First ORT runs allocate; do them before the first real observation, then forget them."""
        zeros = np.zeros(self.contract.obs_dim, dtype=np.float32)
        self.runner.reset((0.0, 0.0))
        for _ in range(3):
            self.runner.act(zeros)
            self.runner.record(0.0, 0.0)

    # --- inputs ---------------------------------------------------------------------------------------

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def on_target(self, msg: TargetReturn) -> None:
        if msg.phase == TargetReturn.PHASE_HALTED:
            self.halt(msg)
            return
        target = (float(msg.reward_return), float(msg.cost_return))
        if not all(math.isfinite(v) for v in target):
            self.get_logger().error(f"ignoring a non-finite target {target}")
            return
        halted = self.state is State.HALTED
        if target != self.target:
            self.get_logger().info(f"target (R={target[0]:.2f}, G={target[1]:.2f}) from iteration "
                                   f"{msg.iteration}; applied from the next episode start"
                                   + ("; that ends the halt" if halted else ""))
        self.target, self.target_iteration = target, int(msg.iteration)
        self.halt_reason = ""
        if self.state in (State.WAITING_FOR_TARGET, State.HALTED):
            self.state = State.WAITING_FOR_EPISODE

    def halt(self, msg: TargetReturn) -> None:
        """The supervisor found no safe target: the one being followed is refuted, so stop following it
        now, not at the next episode start, and answer with the fallback action until a new target."""
        if self.state is not State.HALTED:
            self.get_logger().error(
                f"the supervisor halted at iteration {msg.iteration}: the episode data refute its seed "
                f"set, no target is verified safe (the last one, R={msg.reward_return:.2f} "
                f"G={msg.cost_return:.2f}, is not). Publishing the fallback action until a new verified "
                "target arrives")
        self.halt_reason = (f"halted by the supervisor at iteration {msg.iteration}: no target is verified "
                            "safe; holding the fallback action until a new verified target")
        self.target, self.target_iteration = None, int(msg.iteration)
        was_following = self.followed is not None
        if self.state is State.INACTIVE:  # noted; activation starts halted
            return
        self.state, self.followed = State.HALTED, None
        if was_following and self.last_obs is not None:  # replace the last policy action (timer mode holds)
            last = self.last_obs[0]
            self.publish_fallback(last.episode, last.step, self.halt_reason, None)

    def admit(self, msg: Observation, received: int) -> bool:
        """Whether `msg` may touch the policy's state: an observation of the current or the next episode,
        at most max_step_jump steps ahead of the newest one; after stale_after_periods of silence from the
        robot side, any (a restarted driver counts from 0 again). Others are logged and dropped."""
        episode, step = int(msg.episode), int(msg.step)
        kind = problem = ""
        if self.seen is not None:
            seen_episode, seen_step, seen_ns = self.seen
            quiet = received - seen_ns > self.stale_ns
            jump = self.p["max_step_jump"]
            if episode == seen_episode:
                if step == 0 and seen_step > 0:
                    kind, problem = "replay", (
                        f"step 0 of episode {episode} again after step {seen_step}: a replayed or duplicated "
                        "observation; the policy's context is not restarted")
                elif step > seen_step + jump:
                    kind, problem = "jump", (
                        f"step {step} of episode {episode} is {step - seen_step} steps ahead of the newest "
                        f"({seen_step}); more than max_step_jump ({jump})")
            elif episode == seen_episode + 1:
                if step > jump:
                    kind, problem = "jump", (f"step {step} of the next episode {episode} is more than "
                                             f"max_step_jump ({jump}) steps into it")
            else:
                kind, problem = "foreign", (
                    f"episode {episode} is neither the current ({seen_episode}) nor the next one")
            if problem and quiet:  # the robot side was silent: it may have restarted, so follow it
                self.get_logger().info(
                    f"observation {episode}/{step} after {(received - seen_ns) / 1e6:.0f} ms of silence "
                    f"(last: {seen_episode}/{seen_step}): following the robot side from here")
                problem = ""
            elif step < seen_step and episode == seen_episode and not problem and not quiet:
                return False  # out of date (overtaken by a newer one): nothing to say
        if problem:
            self.ignored += 1
            now = time.monotonic()
            if now - self._ignore_logged.get(kind, -math.inf) >= 2.0:  # each kind at most every 2 s
                self._ignore_logged[kind] = now
                self.get_logger().warning(
                    f"ignored observation {episode}/{step}: {problem}. Only the current or the next "
                    f"episode's observations are used ({self.ignored} ignored so far)")
            return False
        self.seen = (episode, step, received)
        return True

    def on_observation(self, msg: Observation) -> None:
        received = self.now_ns()
        if not self.admit(msg, received):
            return
        if self.state is State.INACTIVE:
            self.last_obs = (msg, received)
            self.publish_fallback(msg.episode, msg.step, "the policy node is inactive (managed node): "
                                  "activate it to run the policy", received)
            return
        if self.p["trigger"] == "observation":
            self.ticks += 1
            self.process(msg, received)
            self._account(received)
        else:
            if self.pending is not None and self.pending[0].step == 0:
                self.process(*self.pending)  # never drop an episode start: answer it now, off-tick
            elif self.pending is not None:
                self._accumulate(self.pending[0])
                self.skipped += 1
                self.get_logger().warning(
                    f"{self.skipped} observations skipped so far: they arrive faster than control_rate_hz "
                    f"({self.p['control_rate_hz']:g} Hz)", throttle_duration_sec=10.0)
            self.pending = (msg, received)
        self.last_obs = (msg, received)

    def on_tick(self) -> None:
        if self.state is State.INACTIVE:
            return
        start = self.now_ns()
        if self.p["trigger"] == "timer":
            self.ticks += 1
            if self.pending is not None:
                msg, received = self.pending
                self.pending = None
                self.process(msg, received)
            elif self.last_obs is not None:
                self.hold(start)
            self._account(start)
        elif self.last_obs is not None and start - self.last_obs[1] > self.stale_ns:
            self.hold(start)  # observation trigger: only the watchdog runs here

    def _account(self, start_ns: int) -> None:
        if self.now_ns() - start_ns > self.period_ns:
            self.overruns += 1

    # --- the policy step ------------------------------------------------------------------------------

    def _accumulate(self, msg: Observation) -> None:
        """Count the reward/cost an observation reports for its episode (also when it is not acted on)."""
        f = self.followed
        if f is not None and msg.episode == f.episode and msg.step > f.accounted:
            f.accounted = msg.step
            if math.isfinite(msg.reward) and math.isfinite(msg.cost):
                f.pending_reward += msg.reward
                f.pending_cost += msg.cost
            else:
                self.get_logger().error(f"observation {msg.episode}/{msg.step} reports a non-finite reward "
                                        "or cost; not counted", throttle_duration_sec=5.0)

    def _invalid(self, msg: Observation, received: int) -> tuple[np.ndarray, str]:
        """The observation vector, and why it must not be acted on ('' when it may)."""
        obs = from_float32_field(msg.observation)
        reason = self._stale_reason(msg, received)
        if not reason:
            try:
                self.contract.check_observation(obs)
            except self.ContractError as exc:
                reason = str(exc)
        return obs, reason

    def process(self, msg: Observation, received: int) -> None:
        f = self.followed
        same_episode = f is not None and msg.episode == f.episode
        if same_episode and msg.step == f.step and self.last_action is not None:
            # Step 0 again before any other step, after a newer target arrived (the lockstep sim refused
            # the old one; nothing has been applied yet): start over with the new target. Otherwise the
            # same observation again (lockstep retry): the same answer.
            if not (msg.step == 0 and self.target is not None and self.target != f.target):
                self.answer_retry(msg, received)
                return
            self.get_logger().info(f"episode {msg.episode}: step 0 sent again after the new target "
                                   f"{self.target} arrived; starting the episode over with it")
        elif same_episode and msg.step < f.step:
            return  # out of date
        obs, reason = self._invalid(msg, received)
        if msg.step == 0 and not reason and self.state not in (State.WAITING_FOR_TARGET, State.HALTED):
            self.start_episode(msg)
        elif not same_episode and self.followed is not None:
            self.state, self.followed = State.WAITING_FOR_EPISODE, None  # left the followed episode
        self._accumulate(msg)
        f = self.followed
        if f is None:
            reason = self._idle_reason() or reason or (
                f"joined episode {msg.episode} at step {msg.step}; the policy starts at the next episode")
            self.publish_fallback(msg.episode, msg.step, reason, received)
            return
        if reason:
            self.state = State.FALLBACK
            self.publish_fallback(msg.episode, msg.step, reason, received)
            return
        if f.acted:
            self.runner.record(f.pending_reward, f.pending_cost)
            f.pending_reward = f.pending_cost = 0.0
        start = time.perf_counter()
        action = self.runner.act(obs)
        infer_s = time.perf_counter() - start
        f.acted, f.step = True, msg.step
        if infer_s * 1e9 > self.period_ns:
            self.get_logger().warning(f"inference took {infer_s * 1e3:.1f} ms, more than the control period "
                                      f"{self.period_ns / 1e6:.1f} ms", throttle_duration_sec=5.0)
        if not np.all(np.isfinite(action)):
            self.state = State.FALLBACK
            self.publish_fallback(msg.episode, msg.step, "the model returned NaN/inf", received)
            return
        shielded = False
        if self.shield is not None:  # certify the action from the state the observation describes
            state = self.shield.check.sim.state_from_observation(obs, self.shield_skip)
            action, info = self.shield.filter(state, action)
            shielded = info["intervened"]
            self.shield_interventions += int(shielded)
        self.state = State.RUNNING
        self.publish_action(msg.episode, msg.step, action, "", received, shielded=shielded)

    def start_episode(self, msg: Observation) -> None:
        if self.target is None:  # not reached: only WAITING_FOR_EPISODE/RUNNING/FALLBACK start episodes
            return
        self.runner.reset(self.target)
        self.followed = Followed(episode=int(msg.episode), target=self.target)
        self.state = State.RUNNING

    def _idle_reason(self) -> str:
        """Why no episode can be followed at all ('' when one can)."""
        if self.state is State.HALTED:
            return self.halt_reason
        if self.state is State.WAITING_FOR_TARGET:
            return "no target return received yet"
        return ""

    def _stale_reason(self, msg: Observation, received: int) -> str:
        limit = f"more than {self.p['stale_after_periods']:g} control periods"
        age = self.now_ns() - received
        if age > self.stale_ns:
            return f"stale observation: received {age / 1e6:.1f} ms ago ({limit})"
        if self.p["check_stamp_age"] and (msg.header.stamp.sec or msg.header.stamp.nanosec):
            age = self.get_clock().now().nanoseconds - stamp_ns(msg.header.stamp)
            if age > self.stale_ns:
                return f"stale observation: stamped {age / 1e6:.1f} ms ago ({limit})"
        return ""

    def hold(self, now: int) -> None:
        """No new observation this tick: repeat the last answer while fresh, else fall back."""
        msg, received = self.last_obs
        age = now - received
        if age > self.stale_ns:
            if self.state is State.RUNNING:
                self.state = State.FALLBACK
            # Without a target the missing target is the cause, not the silence: say that, not "stale".
            reason = self._idle_reason() or (f"stale observation: none for {age / 1e6:.1f} ms (more than "
                                             f"{self.p['stale_after_periods']:g} control periods)")
            self.publish_fallback(msg.episode, msg.step, reason, None)
        elif self.last_action is not None:
            self.republish(self.last_action, None)

    def answer_retry(self, msg: Observation, received: int) -> None:
        """The same observation again: the answer this step got, not a watchdog fallback published since
        (the retry shows the robot side is alive; the fallback's "none for N ms" no longer holds)."""
        answer = self.step_answer
        if answer is None or (answer.episode, answer.step) != (msg.episode, msg.step):
            answer = self.last_action
        if not answer.fallback and self.state is State.FALLBACK:
            self.state = State.RUNNING
        self.republish(answer, received)

    # --- outputs --------------------------------------------------------------------------------------

    def publish_action(self, episode: int, step: int, action, reason: str, received: int | None,
                       fallback: bool = False, shielded: bool = False) -> None:
        out = Action()
        out.header.stamp = self.get_clock().now().to_msg()
        out.episode, out.step = int(episode), int(step)
        out.action = float32_array(action)
        f = self.followed
        target = f.target if f is not None and episode == f.episode else (math.nan, math.nan)
        out.target_reward_return, out.target_cost_return = target
        out.fallback, out.reason, out.shielded = fallback, reason, shielded
        self.action_pub.publish(out)
        self.last_action = out
        if received is not None:
            self.step_answer = out
            self.latencies_ms.append((self.now_ns() - received) / 1e6)

    def publish_fallback(self, episode: int, step: int, reason: str, received: int | None) -> None:
        self.fallback_count += 1
        self.last_fallback_reason = reason
        self.get_logger().warning(f"fallback action: {reason}", throttle_duration_sec=2.0)
        self.publish_action(episode, step, self.fallback, reason, received, fallback=True)

    def republish(self, out: Action, received: int | None) -> None:
        out.header.stamp = self.get_clock().now().to_msg()
        if out.fallback:
            self.fallback_count += 1
        self.action_pub.publish(out)
        self.last_action = out
        if received is not None:
            self.latencies_ms.append((self.now_ns() - received) / 1e6)

    def publish_status(self) -> None:
        msg = PolicyStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.state = self.state.value
        msg.task_id = self.contract.task_id if self.contract is not None else ""
        msg.target_reward_return, msg.target_cost_return = (
            self.followed.target if self.followed is not None else (math.nan, math.nan))
        if self.latencies_ms:
            p50, p99 = np.percentile(self.latencies_ms, [50, 99])
            self.latency = (float(p50), float(p99))
        else:
            self.latency = (math.nan, math.nan)
        msg.latency_p50_ms, msg.latency_p99_ms = self.latency
        msg.ticks, msg.deadline_overruns = self.ticks, self.overruns
        msg.fallback_actions, msg.last_fallback_reason = self.fallback_count, self.last_fallback_reason
        msg.shield_interventions = self.shield_interventions
        self.status_pub.publish(msg)
        self.get_logger().info(
            f"{msg.state}: latency p50 {msg.latency_p50_ms:.2f} ms, p99 {msg.latency_p99_ms:.2f} ms, ticks "
            f"{self.ticks}, overruns {self.overruns}, fallbacks {self.fallback_count}",
            throttle_duration_sec=30.0)
        self.latencies_ms = []

    def diagnose(self) -> tuple[int, str, dict]:
        """/diagnostics: the control loop's health (keys in docs/ros.md)."""
        level = {State.RUNNING: diagnostics.OK, State.HALTED: diagnostics.ERROR}.get(self.state,
                                                                                    diagnostics.WARN)
        message = self.state.value
        if self.state is State.FALLBACK:
            message += f": {self.last_fallback_reason}"
        target = self.followed.target if self.followed is not None else (math.nan, math.nan)
        return level, message, {
            "state": self.state.value, "trigger": self.p["trigger"],
            "control_rate_hz": self.p["control_rate_hz"], "ticks": self.ticks,
            "deadline_misses": self.overruns, "latency_p50_ms": self.latency[0],
            "latency_p99_ms": self.latency[1], "fallback_actions": self.fallback_count,
            "last_fallback_reason": self.last_fallback_reason, "ignored_observations": self.ignored,
            "shield": self.shield is not None, "shield_interventions": self.shield_interventions,
            "skipped_observations": self.skipped, "target_reward_return": target[0],
            "target_cost_return": target[1],
            "task_id": self.contract.task_id if self.contract is not None else "",
        }

    def finish(self, reason: str) -> None:
        """Last words before the process exits (pls_ros.spin.run_node): the fallback action, once."""
        if self.action_pub is None:  # not configured: nothing was ever published
            self.get_logger().info(f"stopped ({reason}); {self.state.value}")
            return
        episode, step = (self.last_obs[0].episode, self.last_obs[0].step) if self.last_obs else (0, 0)
        self.publish_fallback(episode, step, f"policy node stopping ({reason})", None)
        self.publish_status()
        self.action_pub.wait_for_all_acked(Duration(seconds=1.0))
        self.get_logger().info(f"stopped ({reason}); published the fallback action")


main = node_main(PolicyNode, NODE_NAME)


if __name__ == "__main__":
    main()
