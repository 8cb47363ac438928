"""pls_sim: a Safety-Gymnasium task in MuJoCo standing in for the robot.

Publishes one Observation per control step (episode, step, and the reward and cost of the step that led
to it), applies the policy's Actions, and publishes an EpisodeResult when an episode ends. The target
(R, G) in the result is the one the episode's policy actions carried, so the supervisor can tell results
for its current target from stale ones.

Modes (parameter `mode`):
* lockstep: the sim advances as soon as the action answering the current (episode, step) arrives, as fast
  as the loop allows (experiments). An episode starts only once the policy answers step 0 with a policy
  action (not a fallback): a policy without a target yet holds the sim instead of wasting episodes. If no
  answer comes within `lockstep_retry_s` the observation is published again.
  With `sync_with_supervisor` (default), after an EpisodeResult the next episode's step 0 waits until the
  supervisor has acknowledged that result: a /pls/supervisor_status whose last_result_stamp is the
  result's own stamp. The supervisor publishes it after processing the result and after publishing any
  new TargetReturn, so the policy holds the new target before step 0 instead of running a whole episode
  with the old one (which the supervisor would discard as stale).
  The status names that target, and step 0 is taken only from an action carrying it: the target and the
  status reach the policy and the sim separately, so under load the policy can still hold the old target
  when the go-ahead reaches the sim. The sim then publishes step 0 again after `lockstep_retry_s`, and the
  policy, holding the new target by then, starts the episode over with it.
  After `supervisor_sync_timeout_s` without one the sim warns and goes on; while no supervisor publishes
  status it does not wait at all, except in its first `supervisor_sync_timeout_s`, before one has been
  discovered (discovery can lag a short first episode).
  In a fleet (one supervisor, several robots), an acknowledgement whose episodes_at_current_target has
  reached episodes_per_evaluation says that this robot's evaluation of the round is complete and its
  next target comes when every robot's is: the sim holds until a status names fewer (the next round's
  target), up to `watchdog_timeout_s`, after which it stops as stuck.
* realtime: a timer at `control_rate_hz` steps the sim with the latest action of the current episode;
  with none, or one older than `action_timeout_periods`, it applies `fallback_action` (zeros by default).

An episode with more than `max_fallback_steps` steps not driven by the policy is reported with a reason
starting "aborted:", which the supervisor does not learn from.

No result is lost: each EpisodeResult is kept until a SupervisorStatus names it (or a later one) as taken
(last_result_stamp), and published again every `result_resend_s` while it is not. On a stop signal the
sim waits up to `unacknowledged_wait_s` for those acknowledgements (while a supervisor is there), then
writes what is still unacknowledged next to the supervisor's store (`supervisor_store_path`,
pls_ros.result_spool), where the supervisor takes it at its next start.

Watchdog (`watchdog_timeout_s`): when the lockstep sim has not advanced for that long (no policy action
answers its observation) or a result has waited that long for the supervisor, it logs which node is stuck
and why and exits with code 3 (EXIT_STUCK), so the launcher stops the graph with a non-zero exit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pls_interfaces.msg import Action, EpisodeResult, Observation, SupervisorStatus
from rclpy.duration import Duration
from rclpy.node import Node

from pls_core.tasks import TASKS
from pls_ros import diagnostics, node_params, qos, result_spool
from pls_ros.conversions import carried_target, float32_array, from_float32_field, stamp_ns
from pls_ros.params import declare_parameters
from pls_ros.paths import resolve_output
from pls_ros.spin import EXIT_STUCK, StartupError, node_main

NODE_NAME = "pls_sim"

PARAMS = node_params.SIM


@dataclass
class Episode:
    """Book-keeping of the running episode."""

    index: int
    step: int = 0
    reward_return: float = 0.0
    cost_return: float = 0.0
    fallback_steps: int = 0
    shield_interventions: int = 0  # steps whose policy action the policy node's shield changed
    last_fallback_reason: str = ""
    targets: list = field(default_factory=list)  # distinct (R, G) carried by this episode's policy actions
    started: bool = False  # lockstep: step 0 has been answered by a policy action
    frames: object | None = None  # FrameWriter while recording


class FrameWriter:
    """Streams rendered frames of one episode to disk (PNG files or an mp4), never holding them in memory."""

    def __init__(self, folder: Path, fmt: str, fps: float):
        import imageio.v2 as imageio

        self._imageio = imageio
        self.folder = folder
        self.count = 0
        folder.parent.mkdir(parents=True, exist_ok=True)
        self._writer = imageio.get_writer(str(folder) + ".mp4", fps=fps) if fmt == "mp4" else None
        if self._writer is None:
            folder.mkdir(parents=True, exist_ok=True)

    def add(self, frame: np.ndarray, step: int) -> None:
        if self._writer is not None:
            self._writer.append_data(frame)
        else:
            self._imageio.imwrite(self.folder / f"step_{step:05d}.png", frame)
        self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class SimNode(Node):
    def __init__(self, **node_kwargs):
        # node_kwargs (context, parameter_overrides, ...) are for in-process use such as tests.
        super().__init__(NODE_NAME, **node_kwargs)
        self.p = declare_parameters(self, PARAMS)
        from pls_core.envs import make_env

        self.recording = bool(self.p["record_video_dir"])
        if self.recording and self.p["video_format"] == "mp4":
            try:
                import imageio_ffmpeg  # noqa: F401
            except ImportError:
                raise StartupError("video_format 'mp4' needs the imageio-ffmpeg package, which is not "
                                   "installed; use video_format:=png or install imageio-ffmpeg") from None
        task_len = TASKS[self.p["task_id"]].episode_len
        if self.p["max_episode_steps"] > task_len:
            raise StartupError(f"max_episode_steps {self.p['max_episode_steps']} exceeds the "
                               f"{task_len}-step episodes of {self.p['task_id']} (the policy was trained on "
                               f"those, and the supervisor rejects longer episodes); set 1..{task_len}, or "
                               "0 for the task's length")
        self.episode_len = self.p["max_episode_steps"] or task_len
        self.env = make_env(self.p["task_id"], render_mode="rgb_array" if self.recording else None,
                            max_episode_steps=self.episode_len)
        space = self.env.action_space
        self.act_low, self.act_high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        self.act_dim = int(np.prod(space.shape))
        fallback = self.p["fallback_action"] or [0.0] * self.act_dim
        if len(fallback) != self.act_dim:
            raise StartupError(f"fallback_action has {len(fallback)} entries but {self.p['task_id']} takes "
                               f"{self.act_dim}; set fallback_action to {self.act_dim} numbers or [] for "
                               "zeros")
        self.fallback = np.clip(np.asarray(fallback, np.float64), self.act_low, self.act_high)
        self.sim_dt = float(getattr(self.env.unwrapped, "dt", 1.0 / self.p["control_rate_hz"]))

        self.obs_pub = self.create_publisher(Observation, qos.OBSERVATION_TOPIC, qos.CONTROL_PUBLISHER_QOS)
        self.result_pub = self.create_publisher(EpisodeResult, qos.EPISODE_RESULT_TOPIC,
                                                qos.EPISODE_RESULT_QOS)
        self.create_subscription(Action, qos.ACTION_TOPIC, self.on_action, qos.ACTION_SUBSCRIPTION_QOS)
        self.sync = self.p["mode"] == "lockstep" and self.p["sync_with_supervisor"]
        self.supervisor_target: tuple[float, float] | None = None  # the target the newest status names
        self.last_result_ns = 0
        # While waiting for the supervisor to acknowledge the result stamped last_result_ns: since when
        # (time.monotonic()).
        self.awaiting: float | None = None
        # A fleet: since when this robot's evaluation of the round is complete and it waits for the others.
        self.round_wait: float | None = None
        # Acknowledgements (and the halt) come in the supervisor's status, in every mode.
        # Its name after remapping (a fleet's /robot<k>/...): count_publishers does not remap by itself.
        self.status_topic = self.resolve_topic_name(qos.SUPERVISOR_STATUS_TOPIC)
        self.create_subscription(SupervisorStatus, qos.SUPERVISOR_STATUS_TOPIC, self.on_supervisor_status,
                                 qos.SUPERVISOR_STATUS_QOS)
        self.unacked: dict[int, EpisodeResult] = {}  # published, not yet acknowledged results, by stamp (ns)
        self.last_resend = time.monotonic()
        self.status_ns = 0  # header stamp of the newest SupervisorStatus
        self.supervisor_seen = False  # a SupervisorStatus arrived: a supervisor is part of this graph
        self.started_at = time.monotonic()
        self.progress = time.monotonic()  # when the sim last advanced (an episode start or a step)
        self.stuck = ""  # the watchdog's verdict: set, the sim stops with EXIT_STUCK
        self.exit_code = 0
        self.drain_timeout_s = self.p["unacknowledged_wait_s"]
        self.create_timer(0.5, self.watch)
        diagnostics.Diagnostics(self, "robot side", self.diagnose)

        self.finished = False  # max_episodes reached; `done` once the last result is acknowledged
        self.episodes_finished = 0
        self.episode: Episode | None = None
        self.obs: np.ndarray | None = None
        self.last_action: Action | None = None
        self.last_action_ns = 0
        self.last_publish_ns = 0
        self.period_ns = int(1e9 / self.p["control_rate_hz"])
        self.lockstep = self.p["mode"] == "lockstep"
        if self.lockstep:
            # Checks discovery and retries at 20 Hz; the step itself runs in on_action.
            self.create_timer(0.05, self.lockstep_watch)
        else:
            self.create_timer(1.0 / self.p["control_rate_hz"], self.realtime_tick)
        self.get_logger().info(
            f"{self.p['task_id']} in {self.p['mode']} mode"
            + ("" if self.lockstep else f" at {self.p['control_rate_hz']:g} Hz")
            + f", act_dim {self.act_dim}, {self.episode_len}-step episodes, max_episodes "
            + f"{self.p['max_episodes'] or 'unlimited'}"
            + (f", recording to {self.p['record_video_dir']}" if self.recording else ""))

    # --- episode life cycle ---------------------------------------------------------------------------

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def start_episode(self) -> None:
        index = self.episodes_finished
        obs, _info = self.env.reset(seed=self.p["seed"] + index)
        self.episode = Episode(index=index)
        self.progress = time.monotonic()
        self.obs = np.asarray(obs, dtype=np.float32)
        if self.recording and index % self.p["record_every_n_episodes"] == 0:
            folder = Path(self.p["record_video_dir"]) / f"episode_{index:05d}"
            fps = 1.0 / (self.sim_dt * self.p["render_every_n_steps"])
            self.episode.frames = FrameWriter(folder, self.p["video_format"], fps)
            self.render(0)
        self.publish_observation(0.0, 0.0)

    def publish_observation(self, reward: float, cost: float) -> None:
        msg = Observation()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.p["task_id"]
        msg.episode = self.episode.index
        msg.step = self.episode.step
        msg.observation = float32_array(self.obs)
        msg.reward = float(reward)
        msg.cost = float(cost)
        self.last_obs_msg = msg
        self.obs_pub.publish(msg)
        self.last_publish_ns = self.now_ns()

    def render(self, step: int) -> None:
        frames = self.episode.frames
        if frames is not None and step % self.p["render_every_n_steps"] == 0:
            frames.add(self.env.render(), step)

    def step(self, action: np.ndarray, msg: Action | None, fallback_reason: str) -> None:
        """Apply one action; msg is the policy's Action it came from (None: the sim's own fallback)."""
        ep = self.episode
        if msg is None or msg.fallback:
            ep.fallback_steps += 1
            ep.last_fallback_reason = fallback_reason or (msg.reason if msg is not None else "")
        if msg is not None and not msg.fallback:
            ep.shield_interventions += int(msg.shielded)
            target = carried_target(msg)
            if target not in ep.targets:
                ep.targets.append(target)
        obs, reward, cost, terminated, truncated, _info = self.env.step(action.astype(np.float32))
        ep.step += 1
        self.progress = time.monotonic()
        ep.reward_return += float(reward)
        ep.cost_return += float(cost)
        self.obs = np.asarray(obs, dtype=np.float32)
        self.render(ep.step)
        if terminated or truncated:
            self.finish_episode(bool(terminated), bool(truncated))
            self.next_episode()
        else:
            self.publish_observation(float(reward), float(cost))

    def finish_episode(self, terminated: bool, truncated: bool) -> None:
        ep = self.episode
        reason = "terminated" if terminated else "time_limit"
        target = ep.targets[0] if ep.targets else (math.nan, math.nan)
        if not ep.targets:
            reason = f"aborted: no policy action in {ep.step} steps ({ep.last_fallback_reason or 'none'})"
        elif len(ep.targets) > 1:
            reason = f"aborted: the target changed mid-episode ({ep.targets})"
        elif ep.fallback_steps > self.p["max_fallback_steps"]:
            reason = (f"aborted: {ep.fallback_steps} of {ep.step} steps were not driven by the policy "
                      f"(last: {ep.last_fallback_reason})")
        msg = EpisodeResult()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.p["task_id"]
        msg.episode = ep.index
        msg.target_reward_return, msg.target_cost_return = target
        msg.reward_return = ep.reward_return
        msg.cost_return = ep.cost_return
        msg.length = ep.step
        msg.terminated = terminated
        msg.truncated = truncated
        msg.fallback_steps = ep.fallback_steps
        msg.shield_interventions = ep.shield_interventions
        msg.reason = reason
        self.result_pub.publish(msg)
        self.last_result_ns = stamp_ns(msg.header.stamp)
        self.unacked[self.last_result_ns] = msg
        if ep.frames is not None:
            ep.frames.close()
        self.get_logger().info(
            f"episode {ep.index}: reward {ep.reward_return:.1f}, cost {ep.cost_return:.1f}, "
            f"length {ep.step} ({ep.fallback_steps} fallback, {ep.shield_interventions} shielded), "
            f"target ({target[0]:.1f}, {target[1]:.1f}), "
            f"{reason}")
        self.episodes_finished += 1
        if self.p["max_episodes"] and self.episodes_finished >= self.p["max_episodes"]:
            self.get_logger().info(f"finished {self.episodes_finished} episodes (max_episodes); stopping")
            self.finished = True

    @property
    def done(self) -> bool:
        """Stop spinning: max_episodes reached and (lockstep sync) the last result acknowledged, so that the
        supervisor has taken it before a launcher stops the graph; or the watchdog found a stuck node."""
        return (self.finished and self.awaiting is None) or bool(self.stuck)

    def next_episode(self) -> None:
        """Start the next episode now, or (lockstep sync) once the supervisor has acknowledged the result."""
        if self.sync and self.supervisor_expected():
            self.awaiting = time.monotonic()
        elif not self.finished:
            self.start_episode()

    def supervisor_expected(self) -> bool:
        """Wait for acknowledgements: a supervisor publishes status, or none has been heard yet and this
        node started less than supervisor_sync_timeout_s ago (discovery can lag a short first episode; a
        supervisor still unseen after that is taken as absent)."""
        if self.count_publishers(self.status_topic) > 0:
            return True
        return (not self.supervisor_seen
                and time.monotonic() - self.started_at < self.p["supervisor_sync_timeout_s"])

    def acknowledged(self) -> None:
        self.awaiting = self.round_wait = None
        if not self.finished:
            self.start_episode()

    def on_supervisor_status(self, msg: SupervisorStatus) -> None:
        self.supervisor_seen = True
        self.status_ns = max(self.status_ns, stamp_ns(msg.header.stamp))
        taken = stamp_ns(msg.last_result_stamp)
        for stamp in [s for s in self.unacked if s <= taken]:  # results arrive in order: all up to it
            del self.unacked[stamp]
        if msg.phase == SupervisorStatus.PHASE_HALTED and not self.finished:
            # No target is verified safe any more: further episodes would only run the fallback action.
            self.get_logger().error(f"the supervisor halted ({msg.message}); ending the run after "
                                    f"{self.episodes_finished} episodes")
            self.finished, self.awaiting = True, None
            return
        target = carried_target(msg)
        self.supervisor_target = target if all(math.isfinite(v) for v in target) else None
        if self.awaiting is None:
            return
        # The supervisor names the result it took last. Judging by the status's own stamp and a change of
        # state instead let a periodic status that left before the supervisor took the result through
        # whenever the sim had missed an earlier status (e.g. before discovery finished).
        if stamp_ns(msg.last_result_stamp) == self.last_result_ns:
            if not self.finished and 0 < msg.episodes_per_evaluation <= msg.episodes_at_current_target:
                if self.round_wait is None:  # a fleet: the next targets come once every robot is done
                    self.round_wait = time.monotonic()
                    self.get_logger().info(f"this robot's {msg.episodes_at_current_target} episodes of the "
                                           "round are taken; waiting for the other robots of the fleet and "
                                           "the next target")
                return
            waited = time.monotonic() - self.awaiting
            self.get_logger().debug(f"the supervisor acknowledged the result in {waited:.3f} s")
            self.acknowledged()

    def check_sync_timeout(self) -> None:
        if self.round_wait is not None:  # acknowledged; the fleet's other robots are still at the round
            waited, timeout = time.monotonic() - self.round_wait, self.p["watchdog_timeout_s"]
            if timeout and waited > timeout:
                self.stop_stuck("pls_supervisor", f"this robot's evaluation of the round has been complete "
                                f"for {waited:.0f} s and no next target came: another robot of the fleet is "
                                "stuck or gone")
            return
        waited = time.monotonic() - self.awaiting
        timeout = self.p["supervisor_sync_timeout_s"]
        gone = not self.supervisor_expected()
        if waited < timeout and not gone:
            return
        why = ("no supervisor publishes status" if gone else
               f"no /pls/supervisor_status acknowledged it within {timeout:g} s (is the supervisor busy?)")
        last = f"episode {self.episodes_finished - 1}'s result"
        if self.finished:
            self.get_logger().warning(f"stopping without the supervisor's acknowledgement of {last}: {why}")
        else:
            self.get_logger().warning(
                f"starting episode {self.episodes_finished} without the supervisor's acknowledgement of "
                f"{last}: {why}; the episode may run with the previous target and be discarded as stale")
        self.acknowledged()

    # --- keeping results, watchdog, stopping ----------------------------------------------------------

    def watch(self) -> None:
        """Every 0.5 s: publish unacknowledged results again when due; the watchdog.

        A result is due when the supervisor has published a status result_resend_s or more after it that
        still does not acknowledge it: it is alive and had the time, so it did not get the result. (A busy
        supervisor publishes no status, so it is not sent copies it would only drop.)"""
        now = time.monotonic()
        resend_ns = int(self.p["result_resend_s"] * 1e9)
        due = [m for stamp, m in self.unacked.items() if stamp + resend_ns <= self.status_ns]
        if due and now - self.last_resend >= self.p["result_resend_s"]:
            for msg in due:
                self.result_pub.publish(msg)
            self.last_resend = now
        timeout = self.p["watchdog_timeout_s"]
        if not timeout or self.done:
            return
        if self.unacked and self.supervisor_seen:
            oldest = next(iter(self.unacked.values()))
            age = (self.now_ns() - stamp_ns(oldest.header.stamp)) / 1e9
            if age > timeout:
                gone = self.count_publishers(self.status_topic) == 0
                self.stop_stuck("pls_supervisor", f"episode {oldest.episode}'s result has waited {age:.0f} s "
                                "for its acknowledgement; " + (
                                    "no supervisor publishes /pls/supervisor_status any more" if gone else
                                    "the supervisor publishes status but does not take results"))
                return
        if self.lockstep and not self.finished and self.awaiting is None and now - self.progress > timeout:
            self.stop_stuck(*self.why_no_progress(now - self.progress))

    def diagnose(self) -> tuple[int, str, dict]:
        """/diagnostics: episodes, results held for the supervisor, the watchdog (keys in docs/ros.md)."""
        ep = self.episode
        level = diagnostics.ERROR if self.stuck else diagnostics.WARN if self.unacked else diagnostics.OK
        message = self.stuck or (f"{len(self.unacked)} result(s) not yet acknowledged" if self.unacked
                                 else "running")
        return level, message, {
            "task_id": self.p["task_id"], "mode": self.p["mode"], "episodes_finished": self.episodes_finished,
            "episode": ep.index if ep is not None else -1, "step": ep.step if ep is not None else -1,
            "unacknowledged_results": len(self.unacked),
            "seconds_since_progress": time.monotonic() - self.progress, "watchdog": self.stuck or "ok",
        }

    def why_no_progress(self, waited: float) -> tuple[str, str]:
        """(the node that keeps the lockstep sim from advancing, why)."""
        ep = self.episode
        if self.obs_pub.get_subscription_count() == 0:
            return "pls_policy", f"no node has subscribed to {qos.OBSERVATION_TOPIC} for {waited:.0f} s"
        where = f"observation {ep.index}/{ep.step}" if ep is not None else "the first observation"
        last = self.last_action
        if last is None or ep is None or (last.episode, last.step) != (ep.index, ep.step):
            return "pls_policy", f"no action has answered {where} for {waited:.0f} s"
        if last.fallback:
            who = "pls_supervisor" if "no target" in last.reason or "halted" in last.reason else "pls_policy"
            return who, (f"the policy has answered {where} only with the fallback action for {waited:.0f} s "
                         f"(its reason: {last.reason})")
        return "pls_policy", (f"its step-0 action carries the target {carried_target(last)}, not the "
                              f"supervisor's {self.supervisor_target}, for {waited:.0f} s")

    def stop_stuck(self, who: str, why: str) -> None:
        self.stuck = (f"watchdog: {who} is stuck: {why} (watchdog_timeout_s "
                      f"{self.p['watchdog_timeout_s']:g} s); stopping with exit code {EXIT_STUCK}")
        self.get_logger().error(self.stuck)
        self.exit_code = EXIT_STUCK

    def prepare_shutdown(self) -> None:
        """A stop signal arrived: start no further episode or step while acknowledgements are awaited."""
        self.finished, self.awaiting = True, None

    def pending_work(self) -> str:
        """What a stop should wait for (run_node waits up to drain_timeout_s): '' when nothing."""
        if not self.unacked or self.count_publishers(self.status_topic) == 0:
            return ""  # nothing held, or no supervisor left to acknowledge it
        return f"the supervisor has not acknowledged {len(self.unacked)} episode result(s) yet"

    def keep_unacknowledged(self) -> None:
        """At the end: write the results the supervisor has not acknowledged where it will take them."""
        if not self.unacked:
            return
        held = list(self.unacked.values())
        what = ", ".join(f"episode {m.episode} (reward {m.reward_return:.1f}, cost {m.cost_return:.1f})"
                         for m in held)
        store = self.p["supervisor_store_path"]
        if not store:
            self.get_logger().error(
                f"stopping with {len(held)} episode result(s) the supervisor has not acknowledged: {what}; "
                "they are kept nowhere because supervisor_store_path is empty (the sim graph sets it)")
            return
        try:
            path = result_spool.append(result_spool.spool_path(resolve_output(store), self.get_namespace()),
                                        held)
        except OSError as exc:
            self.get_logger().error(f"could not keep the unacknowledged results ({what}): {exc}")
            return
        self.get_logger().warning(
            f"stopping with {len(held)} episode result(s) the supervisor has not acknowledged: {what}; kept "
            f"in {path}, which the supervisor takes when it starts again on {store}")
        self.unacked.clear()

    # --- actions --------------------------------------------------------------------------------------

    def check_action(self, msg: Action) -> tuple[np.ndarray | None, str]:
        action = from_float32_field(msg.action)
        if action.shape != (self.act_dim,):
            return None, f"action has {action.size} entries, the task takes {self.act_dim}"
        if not np.all(np.isfinite(action)):
            return None, "action has NaN/inf"
        return np.clip(action.astype(np.float64), self.act_low, self.act_high), ""

    def on_action(self, msg: Action) -> None:
        self.last_action, self.last_action_ns = msg, self.now_ns()
        ep = self.episode
        if not self.lockstep or self.finished or ep is None or self.awaiting is not None:
            return
        if msg.episode != ep.index or msg.step != ep.step:
            return  # an answer to an observation we are no longer at (e.g. a duplicate after a retry)
        action, problem = self.check_action(msg)
        if ep.step == 0 and not ep.started:
            if msg.fallback or action is None:
                self.get_logger().info(
                    f"episode {ep.index} waits for a policy action at step 0 (got: "
                    f"{problem or msg.reason or 'fallback'})", throttle_duration_sec=5.0)
                return  # lockstep_watch publishes step 0 again after lockstep_retry_s
            carried = carried_target(msg)
            if self.sync and self.supervisor_target is not None and carried != self.supervisor_target:
                self.get_logger().info(
                    f"episode {ep.index} waits for the policy to take the supervisor's target "
                    f"{self.supervisor_target} (its step-0 action carries {carried})",
                    throttle_duration_sec=5.0)
                return  # an episode run with it would be discarded as stale; step 0 goes out again
            ep.started = True
        if action is None:
            self.get_logger().warning(f"invalid action for step {ep.step}: {problem}; applying fallback",
                                   throttle_duration_sec=2.0)
            self.step(self.fallback, None, problem)
        else:
            self.step(action, msg, "")

    def lockstep_watch(self) -> None:
        if self.done:
            return
        if self.awaiting is not None:
            self.check_sync_timeout()
            return
        if self.obs_pub.get_subscription_count() == 0:
            self.get_logger().info("waiting for a policy to subscribe to observations",
                                   throttle_duration_sec=10.0)
            return
        if self.episode is None:
            self.start_episode()
        elif self.now_ns() - self.last_publish_ns > self.p["lockstep_retry_s"] * 1e9:
            self.last_obs_msg.header.stamp = self.get_clock().now().to_msg()
            self.obs_pub.publish(self.last_obs_msg)
            self.last_publish_ns = self.now_ns()

    def realtime_tick(self) -> None:
        if self.done:
            return
        if self.episode is None:
            self.start_episode()
            return
        msg, reason = self.last_action, ""
        if msg is None:
            reason = "no action received yet"
        elif msg.episode != self.episode.index:
            reason = f"latest action is for episode {msg.episode}, not {self.episode.index}"
        elif self.now_ns() - self.last_action_ns > self.p["action_timeout_periods"] * self.period_ns:
            reason = f"latest action is older than {self.p['action_timeout_periods']:g} periods"
        action = None
        if not reason:
            action, reason = self.check_action(msg)
        if action is None:
            self.step(self.fallback, None, reason)
        else:
            self.step(action, msg, "")

    def finish(self, reason: str) -> None:
        ep = self.episode
        if self.awaiting is not None:
            self.get_logger().info(f"stopping ({reason}) while waiting for the supervisor to acknowledge "
                                   f"episode {ep.index}'s result")
        elif ep is not None and not self.finished and ep.step > 0:
            self.get_logger().info(f"stopping ({reason}) in episode {ep.index} at step {ep.step}; "
                                   "no result is published for an unfinished episode")
        if ep is not None and ep.frames is not None:
            ep.frames.close()
        self.keep_unacknowledged()
        # Results are TRANSIENT_LOCAL and die with this process: give subscribers time to acknowledge the
        # last ones (Fast DDS asks for acknowledgements with its heartbeat, every 3 s by default).
        if not self.result_pub.wait_for_all_acked(Duration(seconds=3.5)):
            self.get_logger().info("not every subscriber acknowledged the last episode results within 3.5 s")
        self.env.close()
        self.get_logger().info(f"stopped ({reason}) after {self.episodes_finished} episodes")


main = node_main(SimNode, NODE_NAME)


if __name__ == "__main__":
    main()
