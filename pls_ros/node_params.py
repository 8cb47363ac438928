"""The parameter table of every pls node: name, type, default, description, range or choices.

Plain data (no rclpy), so that the launchers can check every value a graph would pass before starting any
node (pls_ros.graph.resolve), and the nodes declare exactly these (pls_ros.params.declare_parameters).
config/<node>.yaml lists the same parameters with the same defaults (test_ros_nodes_params checks it).
"""

from __future__ import annotations

from pls_core.tasks import DEFAULT_TASK, TASKS
from pls_ros.params import ParamSpec

SIM = (
    ParamSpec("task_id", "str", DEFAULT_TASK, "Safety-Gymnasium task to simulate",
              choices=tuple(sorted(t for t, spec in TASKS.items() if spec.simulated))),
    ParamSpec("seed", "int", 0, "episode e is reset with seed + e (reproducible initial states)",
              0, 2**31 - 1),
    ParamSpec("mode", "str", "lockstep", "lockstep: advance when the action for the current step arrives, "
              "as fast as possible; realtime: step at control_rate_hz with the latest action",
              choices=("lockstep", "realtime")),
    ParamSpec("control_rate_hz", "float", 20.0, "realtime mode step rate [Hz] (HalfCheetah's simulated dt "
              "is 0.05 s, so 20 Hz is wall-clock real time); unused in lockstep", 1.0, 1000.0),
    ParamSpec("max_episode_steps", "int", 0, "episode length limit [steps]; 0 = the task's (pls_core.tasks); "
              "at most the task's, which the policy was trained for", 0, 10**6),
    ParamSpec("max_episodes", "int", 0, "stop cleanly (exit 0) after this many episodes; 0 = unlimited",
              0, 10**9),
    ParamSpec("fallback_action", "float_list", [], "action applied when no valid policy action is available "
              "(realtime); empty = zeros", -1e6, 1e6),
    ParamSpec("action_timeout_periods", "float", 3.0, "realtime: an action older than this many control "
              "periods is not applied (fallback instead)", 0.5, 1000.0),
    ParamSpec("lockstep_retry_s", "float", 0.5, "lockstep: publish the observation again when no action "
              "answers it within this time [s]", 0.05, 60.0),
    ParamSpec("sync_with_supervisor", "bool", True, "lockstep: start the next episode only once the "
              "supervisor has acknowledged the last EpisodeResult (a /pls/supervisor_status whose "
              "last_result_stamp is that result's stamp), so step 0 runs with any new target; no waiting "
              "while no supervisor publishes status, once supervisor_sync_timeout_s has passed since the "
              "start"),
    ParamSpec("supervisor_sync_timeout_s", "float", 5.0, "lockstep: start the next episode anyway (with a "
              "warning) when the supervisor has not acknowledged the last result within this time [s]",
              0.0, 3600.0),
    ParamSpec("result_resend_s", "float", 2.0, "publish an episode result again when a supervisor status "
              "this long [s] or more after it still does not acknowledge it (last_result_stamp)",
              0.1, 3600.0),
    ParamSpec("unacknowledged_wait_s", "float", 5.0, "on a stop signal, wait up to this long [s] for the "
              "supervisor to acknowledge the results it has not yet (no wait while no supervisor is there)",
              0.0, 60.0),
    ParamSpec("supervisor_store_path", "str", "", "the supervisor's store_path: results still "
              "unacknowledged when the sim stops are written to <store_path>.unacknowledged.jsonl, which the "
              "supervisor takes at its next start; empty = they are only logged"),
    ParamSpec("watchdog_timeout_s", "float", 120.0, "stop with exit code 3, naming the node that is stuck, "
              "when the lockstep sim has not advanced for this long (no policy action for its observation) "
              "or a result has waited this long for the supervisor's acknowledgement; 0 = never",
              0.0, 86400.0),
    ParamSpec("max_fallback_steps", "int", 5, "episodes with more steps than this not driven by a policy "
              "action are reported as 'aborted: ...'", 0, 10**6),
    ParamSpec("record_video_dir", "str", "", "write rendered frames (MUJOCO_GL=egl) under this folder, one "
              "subfolder per recorded episode; empty = no rendering"),
    ParamSpec("video_format", "str", "png", "png: one PNG per rendered frame; mp4: one video per episode "
              "(needs imageio-ffmpeg)", choices=("png", "mp4")),
    ParamSpec("render_every_n_steps", "int", 5, "render one frame every N steps of a recorded episode",
              1, 10**6),
    ParamSpec("record_every_n_episodes", "int", 1, "record episodes 0, N, 2N, ...", 1, 10**6),
)


POLICY = (
    ParamSpec("model_path", "str", "", "exported ONNX policy; empty = the model shipped for "
              "expected_task_id; a relative path is looked up in the working directory, the pls_ros share "
              "directory, then next to the pls_core package"),
    ParamSpec("expected_task_id", "str", DEFAULT_TASK, "refuse a model trained for another task; empty = "
              "any task (the model contract's)"),
    ParamSpec("expected_obs_dim", "int", 0, "refuse a model with another observation size; 0 = the model "
              "contract's (observations are always checked against the model)", 0, 100000),
    ParamSpec("expected_act_dim", "int", 0, "refuse a model with another action size; 0 = the model "
              "contract's", 0, 100000),
    ParamSpec("trigger", "str", "observation", "observation: answer each observation at once (needed by the "
              "lockstep sim, quickest in realtime); timer: act once per control period on the newest "
              "observation", choices=("observation", "timer")),
    ParamSpec("control_rate_hz", "float", 20.0, "control rate [Hz]: timer rate, watchdog rate and the "
              "deadline for inference", 1.0, 1000.0),
    ParamSpec("stale_after_periods", "float", 3.0, "an observation older than this many control periods is "
              "stale: the fallback action is published instead", 0.5, 1000.0),
    ParamSpec("max_step_jump", "int", 100, "an observation more than this many steps ahead of the newest "
              "one (or this far into the next episode) is ignored as implausible, unless the robot side was "
              "silent for stale_after_periods", 1, 10**9),
    ParamSpec("check_stamp_age", "bool", True, "also judge staleness by the observation's header stamp "
              "(needs clocks synchronised with the robot); receipt age is always checked"),
    ParamSpec("fallback_action", "float_list", [], "safe action published on stale/invalid observations, "
              "without a target and at shutdown; empty = zeros; must lie within the model's bounds",
              -1e6, 1e6),
    ParamSpec("autostart", "bool", True, "managed node: configure and activate at start (exit 2 when "
              "configuring fails); false = wait for a lifecycle manager (`ros2 lifecycle set`)"),
    ParamSpec("executor", "str", "single_threaded", "rclpy executor that runs the node: single_threaded "
              "(rclpy.executors.SingleThreadedExecutor) or events (rclpy.experimental.EventsExecutor, "
              "which dispatches from C++); benchmarks/bench_dds_control_loop.py compares them",
              choices=("single_threaded", "events")),
    ParamSpec("status_period_s", "float", 1.0, "PolicyStatus publication period [s]", 0.05, 3600.0),
    ParamSpec("shield", "bool", False, "per-step shield (pls_core.shield, velocity tasks): each action is "
              "certified by simulating the backup policy from the state the observation describes, and an "
              "inadmissible one is moved toward the backup action; loads MuJoCo into this node"),
    ParamSpec("shield_model_path", "str", "", "MJCF model the shield simulates: the robot's own; empty = "
              "the task's simulator model"),
    ParamSpec("shield_horizon", "int", 0, "backup rollout the shield simulates [control steps]; 0 = the "
              "shipped backup's horizon", 0, 10000),
    ParamSpec("shield_substeps", "int", 0, "MuJoCo steps per control step in the shield's model; 0 = the "
              "task's own (exact); fewer are faster but only a statistical certificate with a margin (docs/"
              "method.md, Per-step shield)", 0, 100),
    ParamSpec("shield_margin", "float", 0.0, "certify against (1 - margin) x the speed limit: room for the "
              "shield model's error", 0.0, 0.99),
    ParamSpec("shield_iterations", "int", 4, "bisection steps moving an inadmissible action toward the "
              "backup's (each one a check)", 0, 50),
)


SUPERVISOR = (
    ParamSpec("task_id", "str", DEFAULT_TASK, "task the policy runs: a task pls ships, or a robot's own "
              "(its task description travels in the model's contract, so model_path must name that model); "
              "must match the optimizer_config's `task` when that is set"),
    ParamSpec("optimizer_config", "str", "config/optimizer.yaml", "overrides (flat YAML of "
              "pls_core.safeopt.OptimizerConfig keys) on the defaults that the task, b and the model's "
              "contract give; empty = no overrides; relative paths are looked up in the working "
              "directory, the pls_ros share directory, then the repository"),
    ParamSpec("model_path", "str", "", "the policy's ONNX file; the grid and the seed box come from its "
              "contract (the data it was trained on: OptimizerConfig.for_model_stats); empty = the model "
              "shipped for task_id (the policy's default too), or the task's defaults if none is shipped"),
    ParamSpec("store_path", "str", "runs/robot/pls_store.sqlite", "SQLite log of the run; the node "
              "resumes from it when it exists (relative to the working directory)"),
    ParamSpec("store_owner", "str", "robot", "whose episodes the store holds: the sim graph sets `sim`, a "
              "robot's name keeps two robots apart; a store written for another owner, task, model or "
              "threshold is refused, naming both"),
    ParamSpec("threshold", "float", 0.0, "override: safety threshold b on the episode cost return; 0 = "
              "the optimizer_config value", 0.0, 1e9),
    ParamSpec("episodes_per_evaluation", "int", 0, "override: episodes averaged per target evaluation "
              "(the paper's varpi); 0 = the optimizer_config value", 0, 100000),
    ParamSpec("seed", "int", -1, "override: optimizer random seed; -1 = the optimizer_config value",
              -1, 2**31 - 1),
    ParamSpec("trusted_result_publisher", "str", "", "count EpisodeResults only from this node (full name, "
              "e.g. /pls_sim), checked by the writer's GID against the ROS graph; others are dropped and "
              "logged; empty = from any publisher (warned at start)"),
    ParamSpec("autostart", "bool", True, "managed node: configure and activate at start (exit 2 when "
              "either fails); false = wait for a lifecycle manager (`ros2 lifecycle set`)"),
    ParamSpec("status_period_s", "float", 1.0, "SupervisorStatus period [s]; it is also published on every "
              "change", 0.05, 3600.0),
    ParamSpec("robots", "int", 1, "robots tuned together (a fleet): 1 = one robot on the /pls topics; N > 1 "
              "= a batch of N verified-safe targets per round, robot k's results taken from and its target "
              "and status sent to /robot<k>/pls/*; trusted_result_publisher then names the node inside each "
              "robot's namespace (/pls_sim: /robot<k>/pls_sim), or each robot's driver with {robot} for its "
              "number (/arm{robot}_driver)", 1, 64),
)


RECORDER = (
    ParamSpec("output_dir", "str", "", "bag folder to create (rosbag2 layout: <folder>/<name>_0.mcap and "
              "metadata.yaml); it must not exist or be empty; relative to the working directory; the graph "
              "starts the recorder only when `record` sets it"),
    ParamSpec("max_episodes", "int", 0, "stop cleanly (exit 0) once this many EpisodeResults are recorded; "
              "0 = until stopped", 0, 10**9),
    ParamSpec("drain_s", "float", 1.0, "on a stop signal, keep taking messages still in flight this long "
              "[s] before the bag is closed", 0.0, 60.0),
)


# ROS node name -> its table (the names pls_ros.graph gives the nodes).
BY_NODE = {"pls_sim": SIM, "pls_policy": POLICY, "pls_supervisor": SUPERVISOR, "pls_recorder": RECORDER}
