"""The one description of pls's ROS 2 node graphs, shared by the launch files and the pip-only launcher.

`launch/sim.launch.py`, `launch/robot.launch.py` (for `ros2 launch` on a ROS 2 install) and
`pls_ros.launcher` (for `pls sim` / `pls robot` with pip only) all build their node list, launch arguments,
parameter overrides and remappings from the data below, so the two ways of starting pls cannot drift apart.
Plain data and small functions only: nothing here imports `launch`, `launch_ros` or rclpy.

A graph is:
  * nodes: ROS node name, console-script executable (lib/pls_ros/<executable> under colcon), Python module
    (`python -m <module>` for the pip launcher), parameter file in the config folder, and whether the whole
    graph stops when the node exits;
  * arguments: launch arguments (`name:=value`), each landing on one or more (node, parameter) pairs; the
    default is the value in that node's parameter file unless the argument gives its own;
  * remappings: our topic -> the topic named by an argument (robot graph: the robot driver's topics),
    applied to every node of the graph;
  * fixed parameters: set for the graph whatever the arguments (the sim graph's supervisor trusts only
    pls_sim's episode results);
  * a fleet (the sim graph's `robots` argument): with N > 1 robots the per-robot nodes (sim and policy)
    start once per robot, robot k's in namespace /robot<k> with every pls topic remapped under it
    (/pls/action -> /robot0/pls/action), and the one supervisor proposes a target per robot on those
    topics (pls_core.safeopt.fleet).
"""

from __future__ import annotations

import json
import math
import signal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PACKAGE = "pls_ros"
CONFIG_FOLDER = "config"  # share/pls_ros/config when installed, <repo>/config in a checkout
PARAMS_KEY = "ros__parameters"


# --------------------------------------------------------------------------------------------------------
# Topics (names, types, QoS): used by `pls echo`, the progress monitor, the benchmark and the docs.
@dataclass(frozen=True)
class Topic:
    name: str
    type: str  # "pkg/msg/Name"
    qos: str  # name of the QoS profile in pls_ros.qos that the publisher uses
    publisher: str  # who publishes it (node name, or "robot driver")
    description: str


OBSERVATION = "/pls/observation"
ACTION = "/pls/action"
EPISODE_RESULT = "/pls/episode_result"
TARGET_RETURN = "/pls/target_return"
SUPERVISOR_STATUS = "/pls/supervisor_status"
POLICY_STATUS = "/pls/policy_status"

# A fleet: robot k's nodes live in namespace /robot<k> and its topics are the pls topics under it. The
# supervisor is shared: it takes each robot's EpisodeResults and sends each its own TargetReturn and
# SupervisorStatus there; its fleet-wide status stays on /pls/supervisor_status.
ROBOT_TOPICS = (OBSERVATION, ACTION, EPISODE_RESULT, TARGET_RETURN, SUPERVISOR_STATUS, POLICY_STATUS)
MAX_ROBOTS = 64
FLEET_SEED_STRIDE = 100_000  # robot k's sim seeds its episodes from seed + k x this: no two robots repeat


def robot_namespace(robot: int) -> str:
    return f"/robot{robot}"


def robot_topic(topic: str, robot: int) -> str:
    """Robot `robot`'s name for the pls topic `topic` in a fleet (/pls/action -> /robot0/pls/action)."""
    return robot_namespace(robot) + topic


# In a fleet of real robots, each driver-topic argument names robot k's topic with this placeholder
# (observation_topic:=/arm{robot}/observation): robot k's policy and the supervisor use it with k.
ROBOT_PLACEHOLDER = "{robot}"


def for_robot(name: str, robot: int) -> str:
    """`name` with the fleet placeholder filled in with robot `robot`'s number."""
    return name.replace(ROBOT_PLACEHOLDER, str(robot))


def robot_remaps(remaps: list[tuple[str, str]], robot: int) -> list[tuple[str, str]]:
    """Robot `robot`'s remappings in a fleet: the graph's own (driver topics, placeholder filled in) and
    every other pls topic under /robot<k>."""
    driver = {topic: for_robot(target, robot) for topic, target in remaps}
    return [(topic, driver.get(topic, robot_topic(topic, robot))) for topic in ROBOT_TOPICS]

TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic(OBSERVATION, "pls_interfaces/msg/Observation", "CONTROL_PUBLISHER_QOS",
              "pls_sim / robot driver",
              "one control-step observation with the reward and cost of the step that led to it"),
        Topic(ACTION, "pls_interfaces/msg/Action", "CONTROL_PUBLISHER_QOS", "pls_policy",
              "the action answering one observation (or the fallback action)"),
        Topic(EPISODE_RESULT, "pls_interfaces/msg/EpisodeResult", "EPISODE_RESULT_QOS",
              "pls_sim / robot driver",
              "reward and cost return of each finished episode, and the target it ran with"),
        Topic(TARGET_RETURN, "pls_interfaces/msg/TargetReturn", "TARGET_RETURN_QOS", "pls_supervisor",
              "the next verified-safe target z = (R, G); latched, so late joiners get the current one"),
        Topic(SUPERVISOR_STATUS, "pls_interfaces/msg/SupervisorStatus", "SUPERVISOR_STATUS_QOS",
              "pls_supervisor",
              "iteration, phase, safe-set size and best safe target of the safe optimizer"),
        Topic(POLICY_STATUS, "pls_interfaces/msg/PolicyStatus", "POLICY_STATUS_QOS", "pls_policy",
              "policy node health: state, latency percentiles, deadline overruns, fallbacks"),
    )
}


# --------------------------------------------------------------------------------------------------------
# Graph description.
@dataclass(frozen=True)
class Param:
    """Where a launch argument lands: parameter `name` of node `node`, typed as `type`."""

    node: str
    name: str
    type: type = str


@dataclass(frozen=True)
class Argument:
    name: str
    description: str
    targets: tuple[Param, ...] = ()
    # None: the default is the value of the first target in its node's parameter file.
    default: str | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Remap:
    """Topic `topic` is renamed to the value of launch argument `argument` in every node of the graph."""

    topic: str
    argument: str


@dataclass(frozen=True)
class NodeSpec:
    name: str  # ROS node name (and the key of its parameter file)
    executable: str  # console script, installed to lib/pls_ros/ by colcon (launch_ros looks there)
    module: str  # `python -m <module>` for the pip-only launcher
    params_file: str  # file name in the config folder
    required: bool = True  # the whole graph stops when this node exits
    # A launch argument: the node starts only when that argument is non-empty (the recorder: `record`).
    enabled_by: str = ""
    # One per robot in a fleet (the sim and the policy); the supervisor serves the whole fleet.
    per_robot: bool = False


@dataclass(frozen=True)
class Graph:
    name: str
    description: str
    nodes: tuple[NodeSpec, ...]
    arguments: tuple[Argument, ...]
    remappings: tuple[Remap, ...] = field(default=())
    # (node, parameter, value) every node of the graph gets whatever the arguments say (`-p` may override)
    fixed: tuple[tuple[str, str, object], ...] = field(default=())
    # The launch argument giving the number of robots (a fleet); "": one robot, no namespaces.
    fleet_argument: str = ""

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(f"graph {self.name!r} has no node {name!r}")

    def argument(self, name: str) -> Argument:
        for arg in self.arguments:
            if arg.name == name:
                return arg
        known = ", ".join(a.name for a in self.arguments)
        raise KeyError(f"graph {self.name!r} has no argument {name!r}; arguments: {known}")


SIM_NODE = NodeSpec("pls_sim", "sim_node", "pls_ros.sim_node", "sim.yaml", per_robot=True)
POLICY_NODE = NodeSpec("pls_policy", "policy_node", "pls_ros.policy_node", "policy.yaml", per_robot=True)
SUPERVISOR_NODE = NodeSpec("pls_supervisor", "supervisor_node", "pls_ros.supervisor_node", "supervisor.yaml")
# Records the robot side's Observation, Action and EpisodeResult topics to a rosbag2 MCAP bag (`record`).
RECORDER_NODE = NodeSpec("pls_recorder", "recorder_node", "pls_ros.recorder_node", "recorder.yaml",
                         enabled_by="record")

_SIM, _POL, _SUP = SIM_NODE.name, POLICY_NODE.name, SUPERVISOR_NODE.name
_REC = RECORDER_NODE.name

# Arguments both graphs share (the policy and the supervisor run in both).
_TASK_TARGETS = (Param(_POL, "expected_task_id"), Param(_SUP, "task_id"))
_COMMON = (
    Argument("model", "exported ONNX policy; empty: the model shipped for task. A relative path is looked "
             "up in the working directory, share/pls_ros, then next to the pls_core package (shipped "
             "models). The supervisor reads its contract for the grid and seed box when config is empty",
             (Param(_POL, "model_path"), Param(_SUP, "model_path"))),
    Argument("threshold", "safety threshold b on the episode cost return",
             (Param(_SUP, "threshold", float),)),
    Argument("config", "optimizer config YAML for the supervisor; empty: the task's defaults",
             (Param(_SUP, "optimizer_config"),)),
    Argument("episodes_per_evaluation", "episodes averaged per target evaluation (the paper's varpi)",
             (Param(_SUP, "episodes_per_evaluation", int),)),
    Argument("shield", "per-step shield after the policy: certify each action on the task's (or the "
             "robot's, pls_policy.shield_model_path) MuJoCo model, else move it toward the backup's",
             (Param(_POL, "shield", bool),)),
    Argument("record", "record the Observation, Action and EpisodeResult topics (as the graph names them) "
             "to this new rosbag2 bag folder (MCAP; `pls dataset from-bag` reads it); empty: no recording",
             (Param(_REC, "output_dir"),)),
)
_STORE_PATH = "where the supervisor persists its observations (resume after restart)"

SIM = Graph(
    name="sim",
    description="PLS in MuJoCo: simulated robot (pls_sim), frozen policy (pls_policy), "
                "safe BO (pls_supervisor)",
    nodes=(SIM_NODE, POLICY_NODE, SUPERVISOR_NODE, RECORDER_NODE),
    arguments=(
        Argument("task", "Safety-Gymnasium task id", (Param(_SIM, "task_id"), *_TASK_TARGETS)),
        *_COMMON,
        # The sim keeps results the supervisor has not acknowledged next to its store when it must stop.
        Argument("store_path", _STORE_PATH,
                 (Param(_SUP, "store_path"), Param(_SIM, "supervisor_store_path")),
                 default="runs/sim/pls_store.sqlite"),
        Argument("mode", "lockstep: the sim waits for each action; realtime: the sim steps at control rate",
                 (Param(_SIM, "mode"),), choices=("lockstep", "realtime")),
        Argument("control_rate_hz", "control rate of the sim (realtime mode) and the policy",
                 (Param(_SIM, "control_rate_hz", float), Param(_POL, "control_rate_hz", float))),
        # The policy answers each observation at once: lockstep needs it; in realtime it is the quickest.
        Argument("trigger", "observation: answer every observation; timer: act at control rate on the latest",
                 (Param(_POL, "trigger"),), default="observation", choices=("observation", "timer")),
        Argument("max_episodes", "stop the sim (and with it the graph) after this many episodes; 0: never",
                 (Param(_SIM, "max_episodes", int),)),
        Argument("seed", "sim seed (robot k of a fleet: seed + 100000 k)", (Param(_SIM, "seed", int),)),
        Argument("robots", "simulated robots tuned together by the one supervisor, each with its own sim "
                 "and policy in namespace /robot<k> (a batch of verified-safe targets per round, one per "
                 "robot); 1: a single robot on the /pls topics", (Param(_SUP, "robots", int),)),
    ),
    # The supervisor counts episode results only from the sim (pls_ros.result_trust); in a fleet, robot
    # k's only from the sim in its namespace (/robot<k>/pls_sim).
    fixed=((_SUP, "trusted_result_publisher", "/" + _SIM), (_SUP, "store_owner", "sim")),
    fleet_argument="robots",
)

_DRIVER_TOPICS = (
    Argument("observation_topic", "driver topic carrying pls_interfaces/Observation",
             default="/robot/pls/observation"),
    Argument("action_topic", "driver topic consuming pls_interfaces/Action",
             default="/robot/pls/action"),
    Argument("episode_result_topic", "driver topic carrying pls_interfaces/EpisodeResult",
             default="/robot/pls/episode_result"),
)
_DRIVER_REMAPS = (
    Remap(OBSERVATION, "observation_topic"),
    Remap(ACTION, "action_topic"),
    Remap(EPISODE_RESULT, "episode_result_topic"),
)

ROBOT = Graph(
    name="robot",
    description="PLS on a real robot: the robot's driver replaces pls_sim through the remapped topics",
    nodes=(POLICY_NODE, SUPERVISOR_NODE, RECORDER_NODE),
    arguments=(
        Argument("task", "task id the model was trained for, or the path of a robot's task description YAML",
                 _TASK_TARGETS),
        *_COMMON,
        Argument("store_path", _STORE_PATH, (Param(_SUP, "store_path"),)),
        Argument("control_rate_hz", "policy control rate", (Param(_POL, "control_rate_hz", float),)),
        Argument("trigger", "observation: answer every observation; timer: act at control rate on the latest",
                 (Param(_POL, "trigger"),), choices=("observation", "timer")),
        *_DRIVER_TOPICS,
        Argument("robots", "robots tuned together by the one supervisor, each with its own policy in "
                 "namespace /robot<k>; with N > 1 every driver topic names robot k's with {robot} "
                 "(observation_topic:=/arm{robot}/observation)", (Param(_SUP, "robots", int),)),
    ),
    remappings=_DRIVER_REMAPS,
    fleet_argument="robots",
)

# Recording alone: whatever drives the robot (a teleoperation or scripted controller publishing Actions is
# a behaviour policy) is recorded for `pls dataset from-bag`, with no policy or supervisor running.
RECORD = Graph(
    name="record",
    description="recording only: the robot driver's Observation, Action and EpisodeResult topics to a "
                "rosbag2 bag, whoever drives the robot; no policy, no supervisor",
    nodes=(RECORDER_NODE,),
    arguments=(
        next(a for a in _COMMON if a.name == "record"),
        Argument("max_episodes", "stop after this many recorded EpisodeResults; 0: when stopped",
                 (Param(_REC, "max_episodes", int),)),
        *_DRIVER_TOPICS,
    ),
    remappings=_DRIVER_REMAPS,
)

GRAPHS: dict[str, Graph] = {g.name: g for g in (SIM, ROBOT, RECORD)}


def get_graph(name: str) -> Graph:
    try:
        return GRAPHS[name]
    except KeyError:
        raise KeyError(f"unknown graph {name!r}; graphs: {', '.join(GRAPHS)}") from None


def node_parameter_arguments(graph: Graph, node: str) -> list[tuple[Param, str]]:
    """(parameter, argument name) for every launch argument that lands on `node`."""
    return [(p, arg.name) for arg in graph.arguments for p in arg.targets if p.node == node]


def node_remappings(graph: Graph, node: str) -> list[tuple[str, str]]:
    """(our topic, argument name) pairs for `node` (every remap applies to every node of the graph)."""
    graph.node(node)
    return [(r.topic, r.argument) for r in graph.remappings]


# --------------------------------------------------------------------------------------------------------
# Parameter files and values.
def config_dir() -> Path:
    """The folder of sim.yaml/policy.yaml/supervisor.yaml.

    A source checkout (or editable install) uses <repo>/config; an installed package uses
    <prefix>/share/pls_ros/config (pip data_files or colcon), found via sys.prefix or the ament index.
    """
    candidates = [Path(__file__).resolve().parent.parent / CONFIG_FOLDER,
                  Path(sys.prefix) / "share" / PACKAGE / CONFIG_FOLDER]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / CONFIG_FOLDER)
    except Exception:  # not on a ROS install / not in the ament index
        pass
    for path in candidates:
        if (path / SIM_NODE.params_file).is_file():
            return path
    raise FileNotFoundError("pls_ros parameter files not found; looked in " + ", ".join(map(str, candidates)))


def read_params(path: str | Path, node: str) -> dict:
    """The `ros__parameters` of `node` in a ROS 2 parameter file (also under `/**` or `/<node>`)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    for key in (node, f"/{node}", "/**", "**"):
        section = data.get(key)
        if isinstance(section, dict) and PARAMS_KEY in section:
            return dict(section[PARAMS_KEY] or {})
    return {}


def format_value(value: object) -> str:
    """A parameter value as a launch-argument string (what `name:=value` would say)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def coerce(value: str, kind: type) -> object:
    """A launch-argument string as the typed parameter value (as launch_ros ParameterValue would)."""
    if kind is str:
        return value
    if kind is bool:
        low = value.strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    try:
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
    except ValueError:
        raise ValueError(f"not {'an integer' if kind is int else 'a number'}") from None
    raise TypeError(f"unsupported parameter type {kind!r}")


def yaml_scalar(value: object) -> str:
    """A typed value in the YAML form `--ros-args -p name:=<yaml>` parses back to the same type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        mantissa, _, exponent = repr(value).partition("e")  # YAML 1.1 floats need a dot and a signed exponent
        if "." not in mantissa:
            mantissa += ".0"
        if exponent and exponent[0] not in "+-":
            exponent = "+" + exponent
        return mantissa + ("e" + exponent if exponent else "")
    return json.dumps(str(value))  # a JSON string is a YAML string: quotes keep "1.0"/"" as strings


def argument_defaults(graph: Graph, config: str | Path | None = None) -> dict[str, str]:
    """Default value of every launch argument, as a string (parameter-file value unless the graph says)."""
    folder = Path(config) if config is not None else config_dir()
    params = {spec.name: read_params(folder / spec.params_file, spec.name) for spec in graph.nodes}
    defaults = {}
    for arg in graph.arguments:
        if arg.default is not None:
            defaults[arg.name] = arg.default
            continue
        first = arg.targets[0]
        if first.name not in params[first.node]:
            raise KeyError(f"argument {arg.name!r}: parameter {first.name!r} missing from "
                           f"{graph.node(first.node).params_file} ({first.node})")
        defaults[arg.name] = format_value(params[first.node][first.name])
    return defaults


@dataclass(frozen=True)
class ResolvedNode:
    """One node ready to start: the same thing a launch_ros Node action describes."""

    spec: NodeSpec
    params_file: Path
    overrides: dict[str, object]
    remappings: list[tuple[str, str]]
    namespace: str = ""  # "/robot<k>" for a fleet's per-robot nodes; "": the root namespace

    @property
    def label(self) -> str:
        """The node's full name without the leading slash: unique in the graph (robot0/pls_sim)."""
        return f"{self.namespace.strip('/')}/{self.spec.name}" if self.namespace else self.spec.name

    def ros_args(self) -> list[str]:
        """`--ros-args ...` for this node: name, namespace, parameter file, typed overrides, remappings."""
        args = ["--ros-args", "-r", f"__node:={self.spec.name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.namespace}"]
        args += ["--params-file", str(self.params_file)]
        for name, value in self.overrides.items():
            args += ["-p", f"{name}:={yaml_scalar(value)}"]
        for src, dst in self.remappings:
            args += ["-r", f"{src}:={dst}"]
        return args

    def command(self, python: str | None = None) -> list[str]:
        return [python or sys.executable, "-m", self.spec.module, *self.ros_args()]


class LaunchError(ValueError):
    """A launch argument or node parameter the graph cannot start with; the message names it and the fix.

    Raised by `resolve` before any node is started: `pls sim`/`pls robot` exit with code 2, and the launch
    files stop `ros2 launch` with code 2, so a bad value never leaves half a graph running.
    """


def resolve(graph: Graph, values: Mapping[str, str] | None = None, config: str | Path | None = None,
            extra_params: Iterable[tuple[str, str, object]] = ()) -> list[ResolvedNode]:
    """Bind argument values (strings, as `name:=value`; missing ones take their defaults) to the graph.

    Every argument becomes an explicit override on its target parameters, exactly as the launch files pass
    them; `extra_params` are further (node, parameter, value) overrides. Every value a node would get (its
    parameter file, the arguments, the extras) is checked against the node's parameter table
    (pls_ros.node_params: names, types, ranges, choices) here, so a misspelled name or an out-of-range
    value is refused with LaunchError (a KeyError for an unknown argument or node) before any node starts.
    """
    from pls_ros.node_params import BY_NODE
    from pls_ros.params import ParameterError, check_values

    folder = Path(config) if config is not None else config_dir()
    values = dict(values or {})
    extra_params = list(extra_params)
    for name in values:
        graph.argument(name)  # unknown argument -> KeyError listing the known ones
    unknown = {node for node, _, _ in extra_params} - {s.name for s in graph.nodes}
    if unknown:
        raise KeyError(f"graph {graph.name!r} has no node(s) {', '.join(sorted(unknown))}; its nodes: "
                       f"{', '.join(s.name for s in graph.nodes)}")
    bound = {**argument_defaults(graph, folder), **values}
    if bound.get("task"):
        simulates = any(spec.name == SIM_NODE.name for spec in graph.nodes)
        bound["task"] = task_argument(bound["task"], bound.get("model", ""), simulates)
    for arg in graph.arguments:
        if arg.choices and bound[arg.name] not in arg.choices:
            raise LaunchError(f"launch argument {arg.name}:={bound[arg.name]!r}: "
                              f"choose one of {', '.join(arg.choices)}")
    robots = fleet_size(graph, bound)
    check_fleet_topics(graph, bound, robots)
    resolved = []
    for spec in graph.nodes:
        table = BY_NODE[spec.name]
        params_file = folder / spec.params_file
        try:
            check_values(read_params(params_file, spec.name), table, spec.name)
        except ParameterError as exc:
            raise LaunchError(f"{params_file}: {exc}. Fix: correct that file") from None
        overrides: dict[str, object] = {}
        for param, arg_name in node_parameter_arguments(graph, spec.name):
            given = bound[arg_name]
            try:
                value = coerce(given, param.type)
                overrides.update(check_values({param.name: value}, table, spec.name))
            except ValueError as exc:  # ParameterError included
                what = graph.argument(arg_name).description
                raise LaunchError(f"launch argument {arg_name}:={given!r}: {exc}. Fix: give {arg_name} "
                                  f"({what}) a valid value") from None
        for node, name, value in (*graph.fixed, *extra_params):
            if node == spec.name:
                try:
                    overrides.update(check_values({name: value}, table, spec.name))
                except ParameterError as exc:
                    raise LaunchError(f"parameter {node}.{name}={value!r}: {exc}. Fix: correct the "
                                      f"parameter's name or value") from None
        remaps = [(topic, bound[arg_name]) for topic, arg_name in node_remappings(graph, spec.name)]
        if spec.enabled_by and not str(bound[spec.enabled_by]).strip():
            continue  # an optional node (the recorder) that its argument leaves off: checked, not started
        if spec.name == RECORDER_NODE.name:
            check_new_bag_folder(bound[spec.enabled_by])
            if robots > 1:
                raise LaunchError(f"launch argument record:={bound[spec.enabled_by]!r} with robots:="
                                  f"{robots}: the recorder records one robot's topics. Fix: record a single "
                                  "robot (robots:=1), or record /robot<k>/pls/* with a rosbag2 recorder of "
                                  "your own")
        if robots > 1 and spec.per_robot:
            resolved += [robot_node(spec, params_file, overrides, remaps, k, table) for k in range(robots)]
            continue
        if robots > 1:  # the supervisor: robot k's driver topics stand for /robot<k>/pls/...
            remaps = [(robot_topic(topic, k), for_robot(target, k)) for k in range(robots)
                      for topic, target in remaps]
        resolved.append(ResolvedNode(spec, params_file, overrides, remaps))
    if not resolved:
        raise LaunchError(f"graph {graph.name!r} has nothing to start: give the bag folder with record:=DIR "
                          "(pls: --out DIR)")
    return resolved


def fleet_size(graph: Graph, bound: Mapping[str, str]) -> int:
    """How many robots the bound arguments ask for (1 for a graph without a fleet argument)."""
    if not graph.fleet_argument:
        return 1
    given = bound[graph.fleet_argument]
    try:
        robots = coerce(given, int)
    except ValueError:
        robots = 0
    if not 1 <= robots <= MAX_ROBOTS:
        raise LaunchError(f"launch argument {graph.fleet_argument}:={given!r}: the number of robots, 1 to "
                          f"{MAX_ROBOTS}. Fix: give {graph.fleet_argument} a whole number in that range")
    return robots


def robot_node(spec: NodeSpec, params_file: Path, overrides: dict, remaps: list, robot: int,
               table) -> ResolvedNode:
    """Robot `robot`'s copy of a per-robot node: its namespace, its topics, its own episode seeds."""
    from pls_ros.params import ParameterError, check_values

    overrides = dict(overrides)
    if spec.name == SIM_NODE.name and "seed" in overrides:
        seed = overrides["seed"] + FLEET_SEED_STRIDE * robot
        try:
            overrides.update(check_values({"seed": seed}, table, spec.name))
        except ParameterError as exc:
            raise LaunchError(f"robot {robot}'s sim seed {seed} (seed + {FLEET_SEED_STRIDE} x {robot}): "
                              f"{exc}. Fix: a smaller seed") from None
    return ResolvedNode(spec, params_file, overrides, robot_remaps(remaps, robot), robot_namespace(robot))


def check_fleet_topics(graph: Graph, bound: Mapping[str, str], robots: int) -> None:
    """In a fleet every remapped (driver) topic names each robot's own, with the placeholder; alone, none
    may hold it."""
    for remap in graph.remappings:
        value = bound[remap.argument]
        if robots > 1 and ROBOT_PLACEHOLDER not in value:
            raise LaunchError(f"launch argument {remap.argument}:={value!r} with robots:={robots}: each "
                              f"robot's driver has its own topic. Fix: name it with {ROBOT_PLACEHOLDER} for "
                              f"the robot's number, e.g. {remap.argument}:=/robot{ROBOT_PLACEHOLDER}/pls/"
                              f"{remap.topic.rsplit('/', 1)[-1]}")
        if robots == 1 and ROBOT_PLACEHOLDER in value:
            raise LaunchError(f"launch argument {remap.argument}:={value!r}: {ROBOT_PLACEHOLDER} stands for "
                              "a fleet robot's number. Fix: give robots:=N (N > 1), or name the one driver's "
                              "topic")


def check_new_bag_folder(value: str) -> None:
    """LaunchError unless `record` names a folder the recorder can create (or an empty one): one bag per
    folder, refused before any node starts rather than by the recorder once the graph runs."""
    folder = Path(value).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise LaunchError(f"launch argument record:={value!r}: {folder} already exists and is not an empty "
                          "folder. Fix: record into a new folder (a bag folder holds one recording)")


def task_argument(value: str, model: str, simulates: bool = False) -> str:
    """The task id a `task` argument names: a task pls ships, or the task_id of a task description YAML
    (a robot's own task, whose model must then be given: nothing is shipped for it). `simulates`: the
    graph runs pls_sim, which needs a task pls can simulate."""
    from pls_core.tasks import SHIPPED_TASKS, TaskSpecError, require_simulator, resolve_task

    try:
        spec = resolve_task(value)
        if simulates:
            require_simulator(spec)
    except (KeyError, TaskSpecError) as exc:
        raise LaunchError(f"launch argument task:={value!r}: {exc.args[0]}") from None
    task_id = spec.task_id
    if task_id not in SHIPPED_TASKS and not model:
        raise LaunchError(f"launch argument task:={value!r}: pls ships no model for {task_id}; give the "
                          "policy you trained and exported for it with model:=FILE (pls: --model FILE)")
    return task_id


EXIT_USAGE = 2  # a bad launch argument or parameter: the project's exit code for a user error


def launch_error_text(exc: BaseException) -> str:
    """The one line printed for a LaunchError (or an unknown argument/node, a KeyError) before exit 2."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return f"[pls] cannot launch: {text}"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit code {code}"


def exit_is_failure(code: int | None) -> bool:
    """A required node's exit that must make the whole launch fail: non-zero, or killed by a signal."""
    return code is not None and code != 0


def exit_message(spec: NodeSpec, code: int | None, others: Iterable[str] = ()) -> str:
    """What the launchers say when a required node ends (the launch files' shutdown reason too); `others`
    are the nodes still running, which are stopped now."""
    stopping = ", ".join(others) or "the graph"
    if not exit_is_failure(code):
        return f"required node {spec.name} finished ({describe_exit(code)}): stopping {stopping}"
    return (f"required node {spec.name} failed ({describe_exit(code)}): stopping {stopping}; its log above "
            "says why")


def progress_topics(graph: Graph, values: Mapping[str, str] | None = None,
                    config: str | Path | None = None) -> dict[str, list[str]]:
    """The topics a progress display follows, by kind ("target", "status", "episode"): the graph's
    names after its remappings; in a fleet, every robot's targets and results and the fleet's status."""
    bound = {**argument_defaults(graph, config), **dict(values or {})}
    robots = fleet_size(graph, bound)
    if robots > 1:
        driver = [(r.topic, bound[r.argument]) for r in graph.remappings]
        return {"target": [robot_topic(TARGET_RETURN, k) for k in range(robots)],
                "status": [SUPERVISOR_STATUS],
                "episode": [dict(robot_remaps(driver, k))[EPISODE_RESULT] for k in range(robots)]}
    return {"target": [TARGET_RETURN], "status": [SUPERVISOR_STATUS],
            "episode": [topic_in_graph(graph, EPISODE_RESULT, values, config)]}


def topic_in_graph(graph: Graph, topic: str, values: Mapping[str, str] | None = None,
                   config: str | Path | None = None) -> str:
    """The name `topic` actually has in the running graph (after the graph's remappings)."""
    if not graph.remappings:
        return topic
    bound = {**argument_defaults(graph, config), **dict(values or {})}
    for remap in graph.remappings:
        if remap.topic == topic:
            return bound[remap.argument]
    return topic
