"""PLS in simulation: `ros2 launch pls_ros sim.launch.py [task:=...] [model:=...] [threshold:=...] ...`

The nodes, their parameter files, the launch arguments (with defaults from the parameter files) and how each
argument maps to node parameters all come from pls_ros.graph.SIM, the description `pls sim` runs too.
Run `ros2 launch pls_ros sim.launch.py --show-args` for the arguments.

* Every argument is checked (pls_ros.graph.resolve: types, ranges, choices of the node parameters it sets)
  before any node is created: a bad value prints the problem and its fix, and `ros2 launch` exits with
  code 2 with no node started.
* Every node is required: when one exits the launch shuts down; when it exited with a non-zero code (or
  a signal) outside a requested shutdown, `ros2 launch` ends with a non-zero exit code and says which
  node failed.
"""
# ruff: noqa: I001  (the repo's launch/ folder makes ruff take the ROS `launch` package for first-party)

import sys
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from pls_ros import graph

GRAPH = graph.SIM


def generate_launch_description() -> LaunchDescription:
    config = Path(get_package_share_directory(graph.PACKAGE)) / graph.CONFIG_FOLDER
    defaults = graph.argument_defaults(GRAPH, config)
    actions = []
    for arg in GRAPH.arguments:
        extra = {"choices": list(arg.choices)} if arg.choices else {}
        actions.append(DeclareLaunchArgument(arg.name, default_value=defaults[arg.name],
                                             description=arg.description, **extra))
    actions.append(OpaqueFunction(function=start_nodes, args=[config]))
    return LaunchDescription(actions)


def start_nodes(context, config):
    """The node actions, created only once every argument value passed graph.resolve's checks."""
    values = {arg.name: context.launch_configurations[arg.name] for arg in GRAPH.arguments}
    try:
        resolved = graph.resolve(GRAPH, values, config)
    except (KeyError, ValueError) as exc:
        print(graph.launch_error_text(exc), file=sys.stderr, flush=True)
        raise SystemExit(graph.EXIT_USAGE) from None  # nothing is running yet: leave at once
    return [Node(package=graph.PACKAGE, executable=node.spec.executable, name=node.spec.name,
                 parameters=[str(node.params_file),
                             {name: ParameterValue(value, value_type=type(value))
                              for name, value in node.overrides.items()}],
                 remappings=node.remappings, output="screen", on_exit=on_exit(node.spec))
            for node in resolved]


def on_exit(spec):
    """A required node's exit shuts the launch down; a failure (outside a requested shutdown) raises, which
    `ros2 launch` reports as an error and turns into a non-zero exit code."""
    if not spec.required:
        return None

    def handler(event, context):
        message = graph.exit_message(spec, event.returncode)
        if graph.exit_is_failure(event.returncode) and not context.is_shutdown:
            raise RuntimeError(message)
        return [Shutdown(reason=message)]
    return handler
