"""Driver of the example robot: Gymnasium's MuJoCo Reacher-v4 behind pls's real-robot driver contract.

pls does not ship this robot. This process speaks only the contract of docs/ros.md ("Real-robot contract
(`robot` graph)"), so it imports rclpy, numpy, gymnasium/MuJoCo and the pls_interfaces messages, and
nothing of pls_core or pls_ros. Any driver for a real robot has the same shape.

The robot: a two-joint arm in the plane reaching for a random target (Reacher-v4: 11 observations, 2
actions in [-1, 1], dt 0.02 s = 50 Hz, 50-step episodes, never terminates early). Reward: Reacher's own,
-(fingertip-to-target distance [m]) - (squared action norm), per step. Safety cost, the example's: 1 for
every step after which either joint's angular speed |qvel| exceeds `--speed-limit` (3 rad/s; README.md
says how it was measured), else 0; so an episode's cost return counts its fast steps, 0..50.

The contract, as implemented here:
* Observation on --observation-topic (reliable, volatile, keep last 100), one per step: header.stamp (ROS
  time of the measurement), episode (0, 1, ...), step (0 right after reset), the 11 observations, and the
  reward and cost of the step that led to it (0 at step 0).
* Action on --action-topic (reliable, volatile): an action is applied only for the step it answers
  (episode, step), clipped to [-1, 1]. Step 0 is published again every --retry-s until an action that is
  not a fallback answers it (and, with a supervisor, carries the target its status names): the arm stays
  at rest until a policy drives it. Watchdog: when no action comes (lockstep: within --lockstep-timeout-s;
  realtime: none received within --watchdog-periods control periods), the driver applies its own safe
  action (zeros: the motors off) and counts the step as a fallback step, as it does for an Action with
  fallback true or an invalid one (wrong size, NaN). In realtime mode an answer to one of the last
  --watchdog-periods steps still counts (a policy acting on its own timer may answer one step late).
* EpisodeResult on --episode-result-topic (reliable, transient local, keep last 1000), one per episode:
  a unique, non-zero stamp, the target (R, G) carried by the episode's policy Actions (NaN when none did),
  the undiscounted reward and cost returns (sums of the per-step values published in the Observations),
  length, truncated (the 50-step limit), fallback_steps, reason time_limit / terminated / "aborted: ..."
  (more than --max-fallback-steps fallback steps, no policy action at all, or the target changed within
  the episode: the supervisor does not learn from those).
* Every result is kept until a SupervisorStatus on --supervisor-status-topic acknowledges it
  (last_result_stamp at or after its stamp) and published again every --resend-s while a status stamped
  that long after it still does not. Between episodes, while a supervisor publishes status (and in the
  first --supervisor-wait-s after the start, before one is discovered), the next episode starts only
  once the status names the last result (at most --supervisor-wait-s). On a stop
  signal the driver waits up to --unacknowledged-wait-s for acknowledgements, then appends what is still
  unacknowledged to --spool (the supervisor's `<store_path>.unacknowledged.jsonl`), if given.
* A status in PHASE_HALTED (no target is verified safe) stops the driver: exit code 3.

Modes: lockstep (default) steps as soon as the action for the current step arrives (the simulated arm
waits for the policy); realtime steps at 50 Hz with whatever action is there, like a real robot.

Exit codes: 0 (done, or SIGINT/SIGTERM: a one-line summary on stdout), 2 (bad options), 3 (the supervisor
halted). Run `python examples/reacher/driver.py --help`.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TASK_ID = "ReacherSpeedLimit-v0"
GYM_ID = "Reacher-v4"
EPISODE_LEN = 50
OBS_SIZE, ACT_SIZE = 11, 2
DEFAULT_SPEED_LIMIT = 3.0  # rad/s; README.md, "Choosing the speed limit"
EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_HALTED = 0, 1, 2, 3
RESULT_HISTORY = 1000
OBSERVATION_HISTORY = 100  # 2 s of steps at 50 Hz
NODE_NAME = "reacher_driver"


class ReacherTask:
    """Reacher-v4 with the example's safety cost (ROS-free: measure.py uses it too)."""

    def __init__(self, speed_limit: float = DEFAULT_SPEED_LIMIT, seed: int = 0):
        import gymnasium as gym

        self.env = gym.make(GYM_ID, max_episode_steps=EPISODE_LEN)
        self.speed_limit = float(speed_limit)
        self.seed = int(seed)
        self.dt = float(self.env.unwrapped.dt)
        space = self.env.action_space
        self.act_low = np.asarray(space.low, np.float64)
        self.act_high = np.asarray(space.high, np.float64)
        assert self.env.observation_space.shape == (OBS_SIZE,) and space.shape == (ACT_SIZE,)

    def reset(self, episode: int) -> np.ndarray:
        """Episode e starts from the state seeded with seed + e (reproducible)."""
        obs, _info = self.env.reset(seed=self.seed + int(episode))
        return np.asarray(obs, dtype=np.float64)

    def joint_speeds(self) -> np.ndarray:
        return np.abs(np.asarray(self.env.unwrapped.data.qvel[:2], dtype=np.float64))

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, float, bool, bool]:
        """(observation, reward, cost, terminated, truncated); cost 1 if a joint is faster than the limit."""
        action = np.clip(np.asarray(action, np.float64), self.act_low, self.act_high)
        obs, reward, terminated, truncated, _info = self.env.step(action.astype(np.float32))
        cost = 1.0 if float(self.joint_speeds().max()) > self.speed_limit else 0.0
        return np.asarray(obs, dtype=np.float64), float(reward), cost, bool(terminated), bool(truncated)

    def close(self) -> None:
        self.env.close()


# --- options ------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="driver.py", description="The example Reacher robot (Gymnasium Reacher-v4, cost: joint speed "
        "over a limit) behind pls's real-robot driver contract (docs/ros.md).")
    add = parser.add_argument
    add("--observation-topic", default="/robot/pls/observation", help="Observation topic (published)")
    add("--action-topic", default="/robot/pls/action", help="Action topic (subscribed)")
    add("--episode-result-topic", default="/robot/pls/episode_result", help="EpisodeResult topic")
    add("--supervisor-status-topic", default="/pls/supervisor_status",
        help="SupervisorStatus topic (acknowledgements, halt)")
    add("--mode", choices=["lockstep", "realtime"], default="lockstep",
        help="lockstep: step when the action for the current step arrives (default); realtime: step at "
        "the control rate (50 Hz)")
    add("--episodes", type=int, default=0, help="stop after this many episodes; 0 = unlimited (default)")
    add("--seed", type=int, default=0, help="episode e is reset with seed + e (default 0)")
    add("--speed-limit", type=float, default=DEFAULT_SPEED_LIMIT,
        help=f"joint speed limit [rad/s]: a step with a faster joint costs 1 (default "
        f"{DEFAULT_SPEED_LIMIT:g})")
    add("--watchdog-periods", type=float, default=3.0,
        help="realtime: no action received within this many control periods -> the driver's safe action "
        "(zeros), counted as a fallback step (default 3)")
    add("--lockstep-timeout-s", type=float, default=1.0,
        help="lockstep: no action for the current step within this time [s] -> the safe action (default 1)")
    add("--retry-s", type=float, default=0.5, help="publish step 0 again after this long without a policy "
        "action answering it [s] (default 0.5)")
    add("--min-subscribers", type=int, default=1,
        help="start the first episode once this many subscribers take the observations: 1 = the policy "
        "or a controller; 2 with `pls record` listening too, so the bag holds every step (default 1)")
    add("--max-fallback-steps", type=int, default=5,
        help="an episode with more fallback steps is reported as aborted (default 5)")
    add("--supervisor-wait-s", type=float, default=5.0,
        help="wait at most this long [s] for the supervisor to acknowledge a result before the next "
        "episode; 0 = do not wait (default 5)")
    add("--resend-s", type=float, default=2.0, help="publish an unacknowledged result again when a "
        "supervisor status stamped this long [s] after it does not acknowledge it (default 2)")
    add("--unacknowledged-wait-s", type=float, default=5.0,
        help="on a stop, wait up to this long [s] for the supervisor's acknowledgements (default 5)")
    add("--spool", default="", help="append results still unacknowledged at the stop to this JSONL file "
        "(the supervisor's <store_path>.unacknowledged.jsonl; default: none)")
    args = parser.parse_args(argv)

    def positive(name: str, value: float, zero_ok: bool = False) -> None:
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            parser.error(f"--{name} must be a finite number {'>= 0' if zero_ok else '> 0'}, got {value:g}")

    if args.episodes < 0:
        parser.error(f"--episodes must be >= 0 (0 = unlimited), got {args.episodes}")
    if args.min_subscribers < 1:
        parser.error(f"--min-subscribers must be >= 1, got {args.min_subscribers}")
    if args.max_fallback_steps < 0:
        parser.error(f"--max-fallback-steps must be >= 0, got {args.max_fallback_steps}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    positive("speed-limit", args.speed_limit)
    positive("watchdog-periods", args.watchdog_periods)
    positive("lockstep-timeout-s", args.lockstep_timeout_s)
    positive("retry-s", args.retry_s)
    positive("supervisor-wait-s", args.supervisor_wait_s, zero_ok=True)
    positive("resend-s", args.resend_s)
    positive("unacknowledged-wait-s", args.unacknowledged_wait_s, zero_ok=True)
    if args.spool and Path(args.spool).is_dir():
        parser.error(f"--spool {args.spool!r} is a folder; name a file (<store_path>.unacknowledged.jsonl)")
    return args


def check_topics(args: argparse.Namespace) -> str:
    """'' when every topic name is valid, else the message naming the first bad one."""
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.validate_topic_name import validate_topic_name

    for option in ("observation_topic", "action_topic", "episode_result_topic", "supervisor_status_topic"):
        name = getattr(args, option)
        try:
            validate_topic_name(name)
        except InvalidTopicNameException as exc:
            return (f"--{option.replace('_', '-')} {name!r} is not a valid ROS topic name: "
                    f"{str(exc).splitlines()[0]}")
    return ""


# --- the driver node ----------------------------------------------------------------------------------


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def same_target(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Equal targets, NaN equal to NaN (a behaviour controller carries no target: NaN)."""
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


@dataclass
class Episode:
    index: int
    step: int = 0
    started: bool = False  # a policy action answered step 0
    reward_return: float = 0.0
    cost_return: float = 0.0
    fallback_steps: int = 0
    last_fallback_reason: str = ""
    targets: list = field(default_factory=list)  # distinct targets carried by the policy actions
    published_ns: int = 0  # monotonic time the current observation was published


class Driver:
    """The ROS side: built after rclpy.init, run by `spin` until done, a signal or a halt."""

    def __init__(self, args: argparse.Namespace, task: ReacherTask):
        from pls_interfaces.msg import Action, EpisodeResult, Observation, SupervisorStatus
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        self.msgs = {"Observation": Observation, "EpisodeResult": EpisodeResult}
        self.halted_phase = SupervisorStatus.PHASE_HALTED
        self.args, self.task = args, task
        self.node = Node(NODE_NAME)
        self.log = self.node.get_logger()

        def profile(depth: int, durability) -> QoSProfile:
            return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                              reliability=ReliabilityPolicy.RELIABLE, durability=durability)

        # Keep last OBSERVATION_HISTORY: a reliable keep-last-1 writer replaces a sample that a slow reader
        # (a recorder on a loaded machine) has not acknowledged yet, and that reader loses it for good.
        self.obs_pub = self.node.create_publisher(Observation, args.observation_topic,
                                                  profile(OBSERVATION_HISTORY, DurabilityPolicy.VOLATILE))
        results_qos = profile(RESULT_HISTORY, DurabilityPolicy.TRANSIENT_LOCAL)
        self.result_pub = self.node.create_publisher(EpisodeResult, args.episode_result_topic, results_qos)
        # A short queue (compatible with keep-last-1 publishers): a late fallback for a step must not
        # replace the real answer before it is read; answers to other steps are ignored.
        self.node.create_subscription(Action, args.action_topic, self.on_action,
                                      profile(10, DurabilityPolicy.VOLATILE))
        self.node.create_subscription(SupervisorStatus, args.supervisor_status_topic, self.on_status,
                                      profile(1, DurabilityPolicy.TRANSIENT_LOCAL))
        self.period_s = task.dt
        self.lockstep = args.mode == "lockstep"
        self.episode: Episode | None = None
        self.obs: np.ndarray | None = None
        self.last_obs_msg = None
        self.latest_action = None  # realtime: (monotonic s, Action) of the newest action of this episode
        self.episodes_done = 0
        self.returns: list[tuple[float, float]] = []  # (reward, cost) of every finished episode
        self.fallback_total = 0
        self.last_stamp_ns = 0
        self.last_result_ns = 0
        self.unacked: dict[int, object] = {}  # results not yet acknowledged, by stamp (ns)
        self.status_ns = 0
        self.status_heard = False  # a SupervisorStatus arrived: a supervisor is part of this graph
        self.started_at = time.monotonic()
        self.supervisor_target: tuple[float, float] | None = None
        self.awaiting_since: float | None = None  # waiting for the acknowledgement of the last result
        self.target_mismatch_since: float | None = None
        self.last_resend = time.monotonic()
        self.finished = False  # --episodes reached: no further episode
        self.halted = ""
        self.node.create_timer(0.01, self.housekeeping)
        if not self.lockstep:
            self.node.create_timer(self.period_s, self.realtime_tick)
        self.log.info(f"{TASK_ID} ({GYM_ID}) in {args.mode} mode, {1 / self.period_s:g} Hz, "
                      f"{EPISODE_LEN}-step episodes, speed limit {args.speed_limit:g} rad/s, episodes "
                      f"{args.episodes or 'unlimited'}; observations on {args.observation_topic}")

    # --- helpers --------------------------------------------------------------------------------------

    def unique_stamp(self):
        """A ROS-time stamp, strictly later than every stamp this driver gave before (never 0)."""
        from builtin_interfaces.msg import Time

        ns = max(self.node.get_clock().now().nanoseconds, self.last_stamp_ns + 1)
        self.last_stamp_ns = ns
        return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def supervisor_present(self) -> bool:
        return self.node.count_publishers(self.args.supervisor_status_topic) > 0

    def supervisor_expected(self) -> bool:
        """Wait for acknowledgements: a supervisor publishes status, or none has been heard yet and the
        driver started less than --supervisor-wait-s ago (discovery can lag the first short episode;
        a supervisor still unseen after that is taken as absent)."""
        if self.supervisor_present():
            return True
        return not self.status_heard and time.monotonic() - self.started_at < self.args.supervisor_wait_s

    @property
    def done(self) -> bool:
        return (self.finished and self.awaiting_since is None) or bool(self.halted)

    # --- episodes -------------------------------------------------------------------------------------

    def start_episode(self) -> None:
        index = self.episodes_done
        self.obs = self.task.reset(index)
        self.episode = Episode(index=index)
        self.latest_action = None
        self.target_mismatch_since = None
        self.publish_observation(0.0, 0.0)

    def publish_observation(self, reward: float, cost: float) -> None:
        msg = self.msgs["Observation"]()
        msg.header.stamp = self.unique_stamp()
        msg.header.frame_id = TASK_ID
        msg.episode = self.episode.index
        msg.step = self.episode.step
        msg.observation = [float(v) for v in self.obs]
        msg.reward, msg.cost = float(reward), float(cost)
        self.last_obs_msg = msg
        self.obs_pub.publish(msg)
        self.episode.published_ns = time.monotonic_ns()

    def check_action(self, msg) -> tuple[np.ndarray | None, str]:
        action = np.asarray(msg.action, dtype=np.float64)
        if action.shape != (ACT_SIZE,):
            return None, f"action has {action.size} entries, Reacher takes {ACT_SIZE}"
        if not np.all(np.isfinite(action)):
            return None, "action has NaN/inf"
        return np.clip(action, self.task.act_low, self.task.act_high), ""

    def apply(self, action: np.ndarray | None, msg, reason: str) -> None:
        """One step with the policy's action (msg not a fallback) or the driver's safe action (zeros)."""
        ep = self.episode
        if action is None or msg is None or msg.fallback:
            ep.fallback_steps += 1
            ep.last_fallback_reason = reason or (msg.reason if msg is not None else "") or "fallback"
            if action is None:
                action = np.zeros(ACT_SIZE)
        else:
            target = (float(msg.target_reward_return), float(msg.target_cost_return))
            if not any(same_target(target, t) for t in ep.targets):
                ep.targets.append(target)
        self.obs, reward, cost, terminated, truncated = self.task.step(action)
        ep.step += 1
        ep.reward_return += reward
        ep.cost_return += cost
        if terminated or truncated:
            self.finish_episode(terminated, truncated)
        else:
            self.publish_observation(reward, cost)

    def finish_episode(self, terminated: bool, truncated: bool) -> None:
        ep = self.episode
        reason = "terminated" if terminated else "time_limit"
        if not ep.targets:
            reason = f"aborted: no policy action in {ep.step} steps (last: {ep.last_fallback_reason})"
        elif len(ep.targets) > 1:
            reason = f"aborted: the target changed within the episode ({ep.targets})"
        elif ep.fallback_steps > self.args.max_fallback_steps:
            reason = (f"aborted: {ep.fallback_steps} of {ep.step} steps were not driven by the policy "
                      f"(last: {ep.last_fallback_reason})")
        target = ep.targets[0] if ep.targets else (math.nan, math.nan)
        msg = self.msgs["EpisodeResult"]()
        msg.header.stamp = self.unique_stamp()
        msg.header.frame_id = TASK_ID
        msg.episode = ep.index
        msg.target_reward_return, msg.target_cost_return = target
        msg.reward_return, msg.cost_return = ep.reward_return, ep.cost_return
        msg.length = ep.step
        msg.terminated, msg.truncated = terminated, truncated
        msg.fallback_steps = ep.fallback_steps
        msg.reason = reason
        self.result_pub.publish(msg)
        self.last_result_ns = stamp_ns(msg.header.stamp)
        self.unacked[self.last_result_ns] = msg
        while len(self.unacked) > RESULT_HISTORY:  # the publisher's history holds no more either
            del self.unacked[next(iter(self.unacked))]
        self.log.info(f"episode {ep.index}: reward {ep.reward_return:.2f}, cost {ep.cost_return:.0f}, length "
                      f"{ep.step} ({ep.fallback_steps} fallback), target ({target[0]:g}, {target[1]:g}), "
                      f"{reason}")
        self.episodes_done += 1
        self.fallback_total += ep.fallback_steps
        self.returns.append((ep.reward_return, ep.cost_return))
        self.episode = None
        if self.args.episodes and self.episodes_done >= self.args.episodes:
            self.finished = True
        if self.args.supervisor_wait_s > 0 and self.supervisor_expected():
            self.awaiting_since = time.monotonic()
        elif not self.finished:
            self.start_episode()

    def acknowledged(self) -> None:
        self.awaiting_since = None
        if not self.finished and not self.halted:
            self.start_episode()

    # --- callbacks ------------------------------------------------------------------------------------

    def on_status(self, msg) -> None:
        self.status_heard = True
        self.status_ns = max(self.status_ns, stamp_ns(msg.header.stamp))
        taken = stamp_ns(msg.last_result_stamp)
        for stamp in [s for s in self.unacked if s <= taken]:  # results arrive in order: all up to it
            del self.unacked[stamp]
        if msg.phase == self.halted_phase and not self.halted:
            self.halted = f"the supervisor halted: {msg.message or 'no target is verified safe any more'}"
            self.log.error(f"{self.halted}; stopping the robot after {self.episodes_done} episodes")
            return
        target = (float(msg.target_reward_return), float(msg.target_cost_return))
        self.supervisor_target = target if all(math.isfinite(v) for v in target) else None
        if self.awaiting_since is not None and taken == self.last_result_ns:
            self.log.debug(f"result acknowledged after {time.monotonic() - self.awaiting_since:.3f} s")
            self.acknowledged()

    def step0_accepts(self, msg, action: np.ndarray | None, problem: str) -> bool:
        """Whether this answer to step 0 may start the episode (a policy action with the right target)."""
        ep = self.episode
        if msg.fallback or action is None:
            self.log.info(f"episode {ep.index} waits for a policy action at step 0 (got: "
                          f"{problem or msg.reason or 'fallback'})", throttle_duration_sec=5.0)
            return False
        carried = (float(msg.target_reward_return), float(msg.target_cost_return))
        wanted = self.supervisor_target
        if wanted is not None and self.args.supervisor_wait_s > 0 and not same_target(carried, wanted):
            now = time.monotonic()
            self.target_mismatch_since = self.target_mismatch_since or now
            if now - self.target_mismatch_since < self.args.supervisor_wait_s:
                self.log.info(f"episode {ep.index} waits for the policy to take the supervisor's target "
                              f"{wanted} (its step-0 action carries {carried})", throttle_duration_sec=5.0)
                return False
            self.log.warning(f"episode {ep.index} starts with target {carried}, not the supervisor's "
                             f"{wanted}, after {self.args.supervisor_wait_s:g} s", throttle_duration_sec=5.0)
        ep.started = True
        return True

    def on_action(self, msg) -> None:
        ep = self.episode
        if ep is None or self.finished or self.halted or msg.episode != ep.index:
            return
        if not self.lockstep:
            latest = self.latest_action
            # The newest answer to a step reached so far; a late copy of an older step does not replace it.
            if msg.step <= ep.step and (latest is None or msg.step >= latest[1].step):
                self.latest_action = (time.monotonic(), msg)
            return
        if msg.step != ep.step:
            return  # an answer to a step we are no longer at (a duplicate after a retry, a late fallback)
        action, problem = self.check_action(msg)
        if not ep.started and not self.step0_accepts(msg, action, problem):
            return  # housekeeping publishes step 0 again after --retry-s
        self.apply(action, msg, problem)

    def realtime_tick(self) -> None:
        ep = self.episode
        if ep is None or self.finished or self.halted:
            return
        latest = self.latest_action
        window_s = self.args.watchdog_periods * self.period_s
        fresh = latest is not None and time.monotonic() - latest[0] <= window_s
        msg = latest[1] if fresh else None
        if msg is not None and msg.step <= ep.step - self.args.watchdog_periods:
            msg = None  # an answer to a step too long ago
        if not ep.started:
            if msg is None or msg.step != 0:
                return
            action, problem = self.check_action(msg)
            if not self.step0_accepts(msg, action, problem):
                return
            self.apply(action, msg, problem)
            return
        if msg is None:
            self.apply(None, None, f"no action within {self.args.watchdog_periods:g} control periods")
            return
        action, problem = self.check_action(msg)
        self.apply(action, msg, problem)

    def housekeeping(self) -> None:
        """Every 10 ms: start, step-0 retries, the lockstep watchdog, the supervisor wait, resends."""
        now = time.monotonic()
        self.resend_due(now)
        if self.halted:
            return
        if self.awaiting_since is not None:
            waited = now - self.awaiting_since
            expected = self.supervisor_expected()
            if waited >= self.args.supervisor_wait_s or not expected:
                why = ("no supervisor publishes status" if not expected else
                       f"no status acknowledged it within {self.args.supervisor_wait_s:g} s")
                self.log.warning(f"going on without the supervisor's acknowledgement of episode "
                                 f"{self.episodes_done - 1}'s result: {why}")
                self.acknowledged()
            return
        if self.finished:
            return
        ep = self.episode
        if ep is None:
            if self.obs_pub.get_subscription_count() < self.args.min_subscribers:
                self.log.info(f"waiting for {self.args.min_subscribers} subscriber(s) to the observations",
                              throttle_duration_sec=10.0)
                return
            self.start_episode()
            return
        waited = (time.monotonic_ns() - ep.published_ns) / 1e9
        if not ep.started:
            if waited >= self.args.retry_s:
                self.last_obs_msg.header.stamp = self.unique_stamp()
                self.obs_pub.publish(self.last_obs_msg)
                ep.published_ns = time.monotonic_ns()
        elif self.lockstep and waited >= self.args.lockstep_timeout_s:
            self.apply(None, None, f"no action for step {ep.step} within {self.args.lockstep_timeout_s:g} s")

    def resend_due(self, now: float) -> None:
        """Publish again the results that a status stamped --resend-s or more after them did not take."""
        resend_ns = int(self.args.resend_s * 1e9)
        due = [m for stamp, m in self.unacked.items() if stamp + resend_ns <= self.status_ns]
        if due and now - self.last_resend >= self.args.resend_s:
            for msg in due:
                self.result_pub.publish(msg)
            self.last_resend = now
            self.log.info(f"published {len(due)} unacknowledged result(s) again")

    # --- stopping -------------------------------------------------------------------------------------

    def spool_unacknowledged(self) -> str:
        if not self.unacked or not self.args.spool:
            return ""
        fields = ("episode", "target_reward_return", "target_cost_return", "reward_return", "cost_return",
                  "length", "terminated", "truncated", "fallback_steps", "reason")
        lines = []
        for stamp, msg in self.unacked.items():
            record = {name: getattr(msg, name) for name in fields}
            record.update(stamp_ns=stamp, frame_id=msg.header.frame_id)
            lines.append(json.dumps(record) + "\n")
        path = Path(self.args.spool)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.writelines(lines)
        except OSError as exc:
            self.log.error(f"could not keep the unacknowledged results in {path}: {exc}")
            return ""
        self.unacked.clear()
        return str(path)

    def summary(self, reason: str, spooled: str) -> str:
        n = len(self.returns)
        rewards = [r for r, _ in self.returns]
        costs = [c for _, c in self.returns]
        figures = (f", reward mean {np.mean(rewards):.2f}, cost mean {np.mean(costs):.2f} "
                   f"(max {max(costs):.0f})" if n else "")
        held = (f", {len(self.unacked)} result(s) unacknowledged by the supervisor"
                if self.unacked and self.status_ns else "")
        kept = f", unacknowledged results kept in {spooled}" if spooled else ""
        return (f"reacher driver: stopped ({reason}) after {n} episodes{figures}, {self.fallback_total} "
                f"fallback steps{held}{kept}")


def spin(driver: Driver, received: list[str]) -> str:
    """Spin until done, a signal or a halt; then drain acknowledgements (bounded). Returns the reason."""
    from rclpy.duration import Duration
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(driver.node)
    while not received and not driver.done:
        executor.spin_once(timeout_sec=0.05)
    reason = received[0] if received else driver.halted or "done"
    if driver.episode is not None and driver.episode.step > 0:
        driver.log.info(f"stopping in episode {driver.episode.index} at step {driver.episode.step}: no "
                        "result is published for an unfinished episode")
    driver.finished, driver.awaiting_since, driver.episode = True, None, None
    deadline = time.monotonic() + driver.args.unacknowledged_wait_s
    while (driver.unacked and driver.supervisor_present() and len(received) < 2
           and time.monotonic() < deadline):
        executor.spin_once(timeout_sec=0.05)
    # Results are transient local and die with this process: give subscribers (a recorder, the
    # supervisor) time to acknowledge the last ones at the DDS level.
    driver.result_pub.wait_for_all_acked(Duration(seconds=3.5))
    executor.remove_node(driver.node)
    return reason


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    from rclpy.utilities import remove_ros_args

    args = parse_args(remove_ros_args(argv)[1:])
    problem = check_topics(args)
    if problem:
        print(f"driver.py: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    received: list[str] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: received.append(signal.Signals(signum).name))
    task = ReacherTask(args.speed_limit, args.seed)
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    driver = None
    code = EXIT_OK
    try:
        driver = Driver(args, task)
        reason = spin(driver, received)
        if driver.halted and not received:
            code = EXIT_HALTED
        # Results are transient local, but only while this process lives: give every matched reader (a
        # supervisor, `pls record`) a bounded moment to acknowledge them before the publisher goes.
        from rclpy.duration import Duration

        driver.result_pub.wait_for_all_acked(Duration(seconds=2.0))
        spooled = driver.spool_unacknowledged()
        print(driver.summary(reason, spooled), flush=True)
    except Exception as exc:  # a bug, not a user error: say so, with the traceback for the report
        import traceback

        print(f"reacher driver: crashed: {exc!r}\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        code = EXIT_CRASH
    finally:
        if driver is not None:
            driver.node.destroy_node()
        rclpy.try_shutdown()
        task.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
