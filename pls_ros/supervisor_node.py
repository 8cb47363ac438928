"""pls_supervisor: tunes the policy's target returns z = (R, G) by safe Bayesian optimization.

* Counts EpisodeResults at the current target; after `episodes_per_evaluation` of them the optimizer
  updates and the node publishes the next TargetReturn (RELIABLE + TRANSIENT_LOCAL: latched).
* Only verified-safe targets are ever published (cost upper confidence bound <= threshold), so the node
  runs PLS only: the baselines (fixed, gp_ucb, random) propose outside the safe set and are refused at
  start. When anything is wrong (an optimizer exception, a decision that is not verified safe, which PLS
  never makes) the node keeps the last verified safe target and says why in SupervisorStatus.message; a
  rejected result (stale target, non-finite, aborted episode) is logged and reported there too.
* Halt: when the episode data refute the seed set, nothing is safe, the last verified target included,
  so holding it would be wrong. The optimizer's HALTED decision goes out as a PHASE_HALTED TargetReturn
  (the one TargetReturn without a verified-safe target): the policy then holds its safe fallback action.
  The optimizer refuses later episodes; the store stays halted when resumed.
* Every result it takes (counted, rejected or failed; not a re-delivered duplicate) is followed by a
  SupervisorStatus, published after any new TargetReturn, whose last_result_stamp is that result's
  stamp: the lockstep sim waits for it before starting the next episode, so no episode starts with an
  outdated target.
* Everything goes through the optimizer's SQLite store (`store_path`). After a crash the node rebuilds
  the optimizer from it, republishes the same current target, and drops re-delivered results it already
  stored: results are identified by their header stamp (ns), which stays the same when DDS replays the
  robot side's TRANSIENT_LOCAL history, and differs between episodes even when the robot side restarts
  and counts episodes from 0 again.
* A fleet (`robots` N > 1, pls_core.safeopt.fleet): robot k's results come on /robot<k>/pls/episode_result
  and its targets and status go to /robot<k>/pls/target_return and /robot<k>/pls/supervisor_status; each
  round is a batch of N verified-safe targets, one per robot, and the next batch comes once every robot's
  evaluation is in. A robot whose evaluation is complete is told so by its status (its
  episodes_at_current_target equals episodes_per_evaluation) and waits. /pls/supervisor_status carries
  the fleet's summary (robot 0's target, the round's episodes of all robots).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from functools import partial

from pls_interfaces.msg import EpisodeResult, SupervisorStatus, TargetReturn
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from pls_core.safeopt.records import Phase
from pls_ros import diagnostics, node_params, qos, result_spool
from pls_ros.conversions import episode_id
from pls_ros.graph import ROBOT_PLACEHOLDER, for_robot, robot_namespace
from pls_ros.lifecycle import ReleasingLifecycleNode
from pls_ros.params import declare_parameters
from pls_ros.paths import resolve_existing, resolve_output
from pls_ros.result_trust import TrustedResults, normalise
from pls_ros.spin import StartupError, node_main
from pls_ros.supervisor_messages import episode_record, supervisor_status_msg, target_return_msg

NODE_NAME = "pls_supervisor"

PARAMS = node_params.SUPERVISOR


@dataclass
class RobotLink:
    """One robot as the supervisor sees it: where its targets and status go, and what it was last told.
    A lone robot's topics are the /pls ones; robot k of a fleet's are under namespace /robot<k>."""

    index: int
    namespace: str  # "" for a lone robot
    target_pub: object
    status_pub: object
    results_sub: object = None
    published: object = None  # the Decision whose target is on this robot's TargetReturn topic
    last_result_ns: int = 0  # stamp of this robot's result taken last (0: none yet)

    @property
    def label(self) -> str:
        return f"robot {self.index}: " if self.namespace else ""


class SupervisorNode(ReleasingLifecycleNode):
    """A managed (lifecycle) node: configure reads the optimizer config and opens (or resumes) the store,
    activate publishes the current target and takes results, deactivate stops taking results and
    proposing (results wait in the robot side's history), cleanup and shutdown release the store. With
    `autostart` (the default) it configures and activates itself at start and exits 2 when either fails."""

    def __init__(self, **node_kwargs):
        # node_kwargs (context, parameter_overrides, ...) are for in-process use such as tests.
        super().__init__(NODE_NAME, **node_kwargs)
        self.p = declare_parameters(self, PARAMS)
        from pls_core.safeopt.errors import InvalidEpisodeError, StaleEpisodeError

        self.InvalidEpisodeError, self.StaleEpisodeError = InvalidEpisodeError, StaleEpisodeError
        self.optimizer = self.fleet = self.status_pub = None
        self.links: list[RobotLink] = []  # made by configure: one per robot
        self.entities: list = []  # made by configure: publishers, the status timer
        self.transition_error = ""
        self.message = ""
        self.duplicates = 0
        diagnostics.Diagnostics(self, "safe optimization", self.diagnose)
        if self.p["autostart"]:
            steps = (("configuring", self.trigger_configure), ("activating", self.trigger_activate))
            for name, trigger in steps:
                if trigger() is not TransitionCallbackReturn.SUCCESS:
                    raise StartupError(self.transition_error or f"{name} failed")

    # --- managed-node transitions -----------------------------------------------------------------

    def _transition(self, name: str, work) -> TransitionCallbackReturn:
        try:
            work()
        except (StartupError, ValueError, OSError, KeyError) as exc:
            self.transition_error = str(exc)
            self.get_logger().error(f"{name} failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        code = self._transition("configuring", self._configure)
        if code is not TransitionCallbackReturn.SUCCESS:
            self._release()
        return code

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("activating", self._activate)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_taking_results()
        self.message = "inactive: not taking results or proposing targets"
        self.get_logger().info(self.message)
        self.publish_status()
        return TransitionCallbackReturn.SUCCESS

    def _stop_taking_results(self) -> None:
        for link in self.links:
            if link.results_sub is not None:
                self.destroy_subscription(link.results_sub)
                link.results_sub = None

    def _release(self) -> None:
        """Back to unconfigured: the store and every topic and timer are let go."""
        self._stop_taking_results()
        for entity in self.entities:
            {"Publisher": self.destroy_publisher, "Timer": self.destroy_timer}[type(entity).__name__](entity)
        self.entities, self.links = [], []
        self.optimizer = self.fleet = self.status_pub = None

    # A lone robot's link, as the node's own attributes (tools and tests look at these).
    @property
    def published(self):
        return self.links[0].published if self.links else None

    @property
    def target_pub(self):
        return self.links[0].target_pub if self.links else None

    def _activate(self) -> None:
        """Publish each robot's current target, then take results: the trusted publisher's only, if one is
        set (in a fleet, the node of that name in each robot's namespace)."""
        why = "resumed" if self.resumed else "start"
        for link, decision in zip(self.links, self.current_batch(), strict=True):
            self.follow(decision, why, link)
        trusted = self.p["trusted_result_publisher"]
        if not trusted:
            self.get_logger().warning("trusted_result_publisher is empty: EpisodeResults from any publisher "
                                      "on the domain are counted; set it to the robot side's node name")
        for link in self.links:
            topic = link.namespace + qos.EPISODE_RESULT_TOPIC
            deliver = partial(self.on_result, link=link)
            if trusted:  # only the trusted node's results count (pls_ros.result_trust)
                deliver = TrustedResults(self, self.resolve_topic_name(topic),
                                         self.trusted_name(trusted, link), deliver).on_message
            link.results_sub = self.create_subscription(EpisodeResult, topic, deliver, qos.EPISODE_RESULT_QOS)
        self.take_spooled_results()

    @staticmethod
    def trusted_name(trusted: str, link: RobotLink) -> str:
        """Whose results count for `link`'s robot: a name with {robot} gets the robot's number (a fleet of
        real robots' drivers: /arm{robot}_driver); in a fleet any other name is inside the robot's
        namespace (the sim graph's /pls_sim: /robot<k>/pls_sim); a lone robot's, as given."""
        if ROBOT_PLACEHOLDER in trusted:
            return normalise(for_robot(trusted, link.index))
        return link.namespace + normalise(trusted)

    def current_batch(self) -> list:
        """Each robot's current Decision: a lone robot's the optimizer's current one."""
        return self.fleet.batch if self.fleet is not None else [self.optimizer.current]

    def _configure(self) -> None:
        p = self.p
        from pls_core.safeopt import OptimizerConfig, build_optimizer

        overrides = {k: p[k] for k, unset in (("threshold", 0.0), ("episodes_per_evaluation", 0),
                                               ("seed", -1)) if p[k] != unset}
        yaml_path = None  # a YAML of overrides on the defaults the task, b and the model's contract give
        if p["optimizer_config"]:
            try:
                yaml_path = resolve_existing(p["optimizer_config"], "optimizer_config")
            except FileNotFoundError as exc:
                raise StartupError(f"{exc}. Fix: set optimizer_config to a YAML of optimizer settings, or to "
                                   "an empty string for the task's defaults") from None
        if model := p["model_path"] or self._shipped_model(p["task_id"]):
            config_path, config = self._config_from_model(model, p["task_id"], overrides, yaml_path)
        elif yaml_path is not None:  # OptimizerConfigError names the key
            config_path = yaml_path
            config = OptimizerConfig.from_yaml(yaml_path, task=p["task_id"], **overrides)
        else:
            config_path = f"defaults for {p['task_id']}"
            config = OptimizerConfig.for_task(p["task_id"], **overrides)
        if config.task and config.task != p["task_id"]:
            raise StartupError(f"{config_path} is for task {config.task!r} but task_id is {p['task_id']!r}; "
                               "use the optimizer config of the task the policy runs, an empty "
                               "optimizer_config (config:=\"\") for its defaults, or fix task_id")
        if config.method != "pls":
            raise StartupError(
                f"{config_path} sets method {config.method!r}, a baseline that does not restrict its "
                "proposals to the verified safe set. The supervisor publishes only verified safe targets, "
                "so it would hold one forever and reject every result as stale. Fix: method: pls in the "
                "optimizer config; compare baselines offline with "
                f"`pls experiment --methods {config.method}`")
        self.store_path = resolve_output(p["store_path"])
        identity = {"owner": p["store_owner"], "task": p["task_id"],
                    "model_sha256": self._model_hash(model), "threshold": config.threshold}
        robots = p["robots"]
        try:
            if robots > 1:
                from pls_core.safeopt.fleet import build_fleet

                self.fleet = build_fleet(config, robots, self.store_path, identity)
                self.optimizer = self.fleet.optimizer
            else:
                self.optimizer = build_optimizer(config, self.store_path, identity)
        except Exception as exc:  # StoreMismatchError, a damaged or locked file: refuse to guess
            raise StartupError(f"cannot resume from {self.store_path}: {exc}") from None
        stored = self._stored_episode_ids()  # robot by robot
        self.known = set().union(*stored)
        self.message = ""

        self.status_pub = self.create_publisher(SupervisorStatus, qos.SUPERVISOR_STATUS_TOPIC,
                                                qos.SUPERVISOR_STATUS_QOS)
        # Each robot's last result taken is its newest stored one: a resumed node acknowledges it at once,
        # so a robot side waiting for that acknowledgement goes on without a re-delivery.
        # A lone robot's status is the node's own (/pls/supervisor_status).
        self.links = []
        for k in range(robots):
            ns = robot_namespace(k) if robots > 1 else ""
            status_pub = self.create_publisher(SupervisorStatus, ns + qos.SUPERVISOR_STATUS_TOPIC,
                                               qos.SUPERVISOR_STATUS_QOS) if ns else self.status_pub
            target_pub = self.create_publisher(TargetReturn, ns + qos.TARGET_RETURN_TOPIC,
                                               qos.TARGET_RETURN_QOS)
            self.links.append(RobotLink(k, ns, target_pub, status_pub,
                                        last_result_ns=max(stored[k], default=0)))
        self.entities = [self.status_pub, *(link.target_pub for link in self.links),
                         *(link.status_pub for link in self.links if link.status_pub is not self.status_pub),
                         self.create_timer(p["status_period_s"], self.publish_status)]

        status = self.optimizer.status()
        self.resumed = resumed = status["episodes_total"] > 0 or status["episodes_rejected"] > 0
        self.get_logger().info(
            f"{'resumed from' if resumed else 'new run in'} {self.store_path} ({config_path}): method "
            f"{config.method}, seed box R {config.seed_reward_range[0]:g}..{config.seed_reward_range[1]:g}, "
            f"threshold {config.threshold:g}, {config.episodes_per_evaluation} episodes per evaluation, "
            f"iteration {status['iteration']}, {status['episodes_total']} episodes stored"
            + (f"; a fleet of {robots} robots on /robot0..{robots - 1}/pls/*" if robots > 1 else ""))

    def take_spooled_results(self) -> None:
        """Results the robot side had to stop with before this store acknowledged them (pls_sim writes them
        next to the store, pls_ros.result_spool; one file per robot in a fleet): taken like any delivered
        result, then the file goes."""
        for link in self.links:
            self._take_spool(link, result_spool.spool_path(self.store_path, link.namespace or "/"))

    def _take_spool(self, link: RobotLink, path) -> None:
        try:
            results = result_spool.read(path)
        except (OSError, ValueError) as exc:
            raise StartupError(f"{exc}. Fix: inspect {path}; move it away to start without its results") \
                from None
        if not results:
            return
        before = len(self.known)
        for msg in results:
            self.on_result(msg, link)
        path.unlink()
        self.get_logger().info(f"took {len(self.known) - before} of {len(results)} episode result(s) the "
                               f"robot side stopped with before they were acknowledged, from {path} (the "
                               "others were already stored)")

    @staticmethod
    def _model_hash(model: str) -> str:
        """sha256 of the policy's ONNX file (part of the store's identity); "" without a model."""
        if not model:
            return ""
        import hashlib

        return hashlib.sha256(resolve_existing(model, "model_path").read_bytes()).hexdigest()

    @staticmethod
    def _shipped_model(task_id: str) -> str:
        """The model pls ships for the task (what an empty model_path means, as in pls_policy); "" if none."""
        from pls_core.runtime import ContractError, shipped_model_path

        try:
            return str(shipped_model_path(task_id))
        except ContractError:
            return ""

    @staticmethod
    def _config_from_model(model_path: str, task_id: str, overrides: dict, yaml_path=None):
        """The task's defaults on the model's own data (its seed box is one those data show safe, where
        the paper's box, tuned to DSRL data, may lie outside them), with the YAML's overrides if given."""
        from pls_core.runtime import ContractError, ModelContract
        from pls_core.safeopt import OptimizerConfig

        try:
            path = resolve_existing(model_path, "model_path")
            contract = ModelContract.from_onnx(path)
        except (FileNotFoundError, ContractError) as exc:
            raise StartupError(f"{exc}. Fix: set model_path to the policy's ONNX file (the one pls_policy "
                               "runs), or to an empty string for the task's defaults") from None
        if contract.task_id != task_id:
            raise StartupError(f"{path} is a model for {contract.task_id!r} but task_id is {task_id!r}; "
                               "use the model of the task the policy runs, or fix task_id")
        if yaml_path is not None:
            config = OptimizerConfig.from_yaml(yaml_path, task=task_id, dataset_stats=contract.dataset_stats,
                                               **overrides)
            return f"{yaml_path} on the defaults for {task_id} and the data of {path}", config
        config = OptimizerConfig.for_model_stats(task_id, contract.dataset_stats, **overrides)
        return f"defaults for {task_id} on the data of {path}", config

    def _stored_episode_ids(self) -> list[set[int]]:
        """Ids (header stamps) of the results already in the store, accepted or rejected, robot by robot."""
        robots = self.fleet.size if self.fleet is not None else 1
        try:
            if self.fleet is not None:
                return self.fleet.stored_episode_ids()
            return [self.optimizer.stored_episode_ids()]
        except (sqlite3.Error, ValueError) as exc:
            self.get_logger().warning(f"could not list stored episodes ({exc}); re-delivered results will be "
                                      "rejected by the optimizer as duplicates instead")
            return [set() for _ in range(robots)]

    # --- targets --------------------------------------------------------------------------------------

    def last_verified(self):
        for decision in reversed(self.optimizer.history):
            if decision.verified_safe and all(math.isfinite(v) for v in decision.target):
                return decision
        return None

    def follow(self, decision, why: str, link: RobotLink | None = None) -> None:
        """Publish `decision`'s target to its robot (`link`; a lone robot's by default) if it is verified
        safe; otherwise hold the last verified one, unless the optimizer halted: then no target is safe and
        the policy is told to stop."""
        link = link or self.links[0]
        if decision.phase is Phase.HALTED:
            self.publish_halt(decision, why, link)
            return
        if decision.verified_safe and all(math.isfinite(v) for v in decision.target):
            self.publish_target(decision, why, link)
            return
        held = link.published or self.last_verified()
        self.message = (f"{link.label}iteration {decision.iteration}: target {decision.target} is not "
                        f"verified safe (cost upper bound {decision.cost_bounds[1]:.3g} > threshold "
                        f"{decision.threshold:g}); "
                        + (f"holding {held.target}" if held else "no verified safe target to publish")
                        + "; the search stops: results at the held target do not count toward the "
                        "unverified one. Fix: investigate the optimizer, then restart with a new store_path")
        self.get_logger().error(self.message)
        if held is not None and held is not link.published:
            self.publish_target(held, "holding the last verified safe target", link)
        self.publish_status(link)

    def publish_target(self, decision, why: str, link: RobotLink | None = None) -> None:
        link = link or self.links[0]
        if not decision.verified_safe:  # follow() never gets here; kept as the last line of defence
            raise RuntimeError(f"refusing to publish target {decision.target}: not verified safe")
        link.target_pub.publish(target_return_msg(decision, self.get_clock().now().to_msg()))
        link.published = decision
        self.get_logger().info(
            f"{link.label}target R={decision.target[0]:.2f} G={decision.target[1]:.2f} (iteration "
            f"{decision.iteration}, {decision.phase.value}, cost upper {decision.cost_bounds[1]:.3g} <= "
            f"{decision.threshold:g}; {why})")
        self.publish_status(link)  # after the target: the lockstep sim takes this status as its go-ahead

    def publish_halt(self, decision, why: str, link: RobotLink | None = None) -> None:
        """PHASE_HALTED replaces the published target: the data refute it too, so it must not be held."""
        link = link or self.links[0]
        link.target_pub.publish(target_return_msg(decision, self.get_clock().now().to_msg()))
        link.published = decision
        reason = decision.note or "no target is verified safe"
        self.message = (f"HALTED at iteration {decision.iteration} ({why}): {reason}. The policy holds its "
                        "safe fallback action. Fix: re-examine the model or the seed set (optimizer_config), "
                        f"then restart the supervisor with a new store_path ({self.store_path} stays halted)")
        self.get_logger().error(self.message)
        self.publish_status(link)

    # --- results --------------------------------------------------------------------------------------

    def on_result(self, msg: EpisodeResult, link: RobotLink | None = None) -> None:
        """Take one of `link`'s robot's results (a lone robot's by default)."""
        link = link or self.links[0]
        key = episode_id(msg)
        label = f"{link.label}episode {msg.episode} (stamp {key})"
        if key == 0:
            self.reject(f"{label} has no header stamp; the robot side must stamp EpisodeResults (the stamp "
                        "identifies a result when it is delivered again)", link)
            return
        if key in self.known:  # delivered again (history replay, the sim's resend): acknowledge, skip
            link.last_result_ns = max(link.last_result_ns, key)
            self.duplicates += 1
            self.get_logger().debug(f"{label} is already stored; ignored")
            return
        link.last_result_ns = key  # the robot side waits for its newest result to show up in the status
        self.known.add(key)
        if msg.reason.startswith("aborted"):
            self.reject(f"{label} not used: {msg.reason}", link)
            return
        record = episode_record(msg)
        try:
            batch = self._report(link, record)
        except self.StaleEpisodeError as exc:
            self.reject(f"{label} ignored: {exc}", link, error=False)
            return
        except self.InvalidEpisodeError as exc:
            self.reject(f"{label} rejected: {exc}", link)
            return
        except Exception as exc:  # numerical or invariant failure inside the optimizer
            self.message = (f"optimizer error on {label}: {exc!r}; holding the last verified safe target "
                            f"{link.published.target if link.published else None}")
            self.get_logger().error(self.message)
            self.publish_status(link)
            return
        taken, needed = self._episodes_at_target(link), self.optimizer.config.episodes_per_evaluation
        self.get_logger().info(
            f"{label}: reward {msg.reward_return:.1f}, cost {msg.cost_return:.1f} at target "
            f"({msg.target_reward_return:.1f}, {msg.target_cost_return:.1f}); "
            + (f"{taken}/{needed} at this target" if batch is None else "evaluation complete"))
        if batch is None:
            self.publish_status(link)
            return
        self.message = batch[0].note or f"iteration {batch[0].iteration}: {batch[0].phase.value}"
        for each, decision in zip(self.links, batch, strict=True):
            self.follow(decision, "new evaluation", each)  # each robot's target, then its status
        self.publish_fleet_summary()

    def _report(self, link: RobotLink, record) -> list | None:
        """Every robot's next Decision once the evaluation (a fleet: the round) is complete, else None."""
        if self.fleet is not None:
            return self.fleet.report_episode(link.index, record)
        decision = self.optimizer.report_episode(record)
        return None if decision is None else [decision]

    def _episodes_at_target(self, link: RobotLink) -> int:
        if self.fleet is not None:
            return self.optimizer.config.episodes_per_evaluation - self.fleet.episodes_needed(link.index)
        return self.optimizer.episodes_at_target

    def reject(self, message: str, link: RobotLink | None = None, error: bool = True) -> None:
        self.message = message
        if error:
            self.get_logger().warning(message)
        else:
            self.get_logger().info(message)
        self.publish_status(link)

    # --- status ---------------------------------------------------------------------------------------

    def publish_status(self, link: RobotLink | None = None) -> None:
        """`link`'s robot's status; without one, every robot's and a fleet's summary."""
        if self.optimizer is None:  # unconfigured: nothing to report
            return
        status = self.optimizer.status()
        batch, varpi = self.current_batch(), status["episodes_per_evaluation"]
        for each in self.links if link is None else [link]:
            each.status_pub.publish(self._status_msg(status, batch[each.index],
                                                     self._episodes_at_target(each), varpi,
                                                     each.last_result_ns, each.published))
        if link is None:
            self.publish_fleet_summary(status)

    def publish_fleet_summary(self, status: dict | None = None) -> None:
        """A fleet's /pls/supervisor_status: robot 0's decision and target, the round's episodes of every
        robot, the newest result taken (a lone robot's status is its own, so nothing here). `status`: the
        optimizer's, when the caller has it."""
        if self.fleet is None:
            return
        status = status or self.optimizer.status()
        self.status_pub.publish(self._status_msg(
            status, self.fleet.batch[0], sum(map(self._episodes_at_target, self.links)),
            status["episodes_per_evaluation"] * self.fleet.size,
            max(each.last_result_ns for each in self.links), self.links[0].published))

    def _status_msg(self, status: dict, decision, episodes: int, episodes_per_evaluation: int,
                    last_result_ns: int, published) -> SupervisorStatus:
        """A SupervisorStatus for `decision` from the optimizer's `status()`; `published` is the Decision
        last sent as the target (None before the first; a halt is no target)."""
        return supervisor_status_msg(
            decision, self.get_clock().now().to_msg(), grid_size=status["grid_size"],
            best_reward_lower=status["best_reward_lower"], episodes_at_current_target=episodes,
            episodes_per_evaluation=episodes_per_evaluation, message=self.message,
            published_target=None if published is None or published.phase is Phase.HALTED
            else published.target, last_result_ns=last_result_ns)

    def diagnose(self) -> tuple[int, str, dict]:
        """/diagnostics: phase, safe set, episodes and the store's health (keys in docs/ros.md)."""
        if self.optimizer is None:
            return diagnostics.WARN, f"unconfigured: {self.transition_error or 'not configured yet'}", {}
        status = self.optimizer.status()
        halted = status["phase_code"] == Phase.HALTED.code
        store_ok = self.store_path.is_file()
        level = diagnostics.ERROR if halted or not store_ok else (
            diagnostics.WARN if status["gp_failures"] or "error" in self.message else diagnostics.OK)
        message = self.message or f"iteration {status['iteration']}: {status['phase']}"
        if not store_ok:
            message = f"the store {self.store_path} is missing; {message}"
        target = self.published.target if self.published is not None else (math.nan, math.nan)
        fleet = {"robots": len(self.links),  # a lone robot's round is its iteration
                 "round": self.fleet.round if self.fleet is not None else status["iteration"]}
        episodes = self._episodes_at_target(self.links[0])  # a fleet's robot 0, like the target
        return level, message, {
            "phase": status["phase"], "iteration": status["iteration"],
            "safe_set_size": status["safe_set_size"], "grid_size": status["grid_size"],
            "target_reward_return": target[0], "target_cost_return": target[1],
            "threshold": status["threshold"], "episodes_at_current_target": episodes,
            "episodes_per_evaluation": status["episodes_per_evaluation"],
            "episodes_stored": status["episodes_total"], "episodes_rejected": status["episodes_rejected"],
            "duplicates_dropped": self.duplicates, "gp_failures": status["gp_failures"],
            "store": str(self.store_path), "store_ok": store_ok,
            "store_bytes": self.store_path.stat().st_size if store_ok else 0, **fleet,
        }

    def finish(self, reason: str) -> None:
        if self.optimizer is None:
            self.get_logger().info(f"stopped ({reason}); not configured")
            return
        self.publish_status()
        self.status_pub.wait_for_all_acked(Duration(seconds=1.0))
        self.get_logger().info(f"stopped ({reason}); state is in {self.store_path}")


main = node_main(SupervisorNode, NODE_NAME)


if __name__ == "__main__":
    main()
