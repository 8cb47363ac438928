"""The one launch description both launch files return: `generate(graph.SIM)`, `generate(graph.ROBOT)`.

Imported only by launch/*.launch.py under `ros2 launch` (it needs the ROS `launch` and `launch_ros`
packages, which a pip-only install lacks; `pls sim`/`pls robot` run the same graph without them).

* Every argument of the graph is declared with its default (the parameter files' values unless the graph
  gives one), description and choices.
* The nodes are created in an OpaqueFunction, once every argument value has passed pls_ros.graph.resolve
  (types, ranges, choices of the node parameters it sets): a bad value prints the problem and its fix and
  `ros2 launch` exits with code 2 before any node action exists.
* A fleet's per-robot nodes (robots:=N) come from graph.resolve like the others, each with its namespace
  (/robot<k>) and its remapped topics.
* Every node is required: when one exits the launch shuts down; when it exited with a non-zero code (or
  a signal) outside a requested shutdown, the handler raises, and `ros2 launch` reports it and ends with a
  non-zero exit code.
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


def generate(pls_graph: graph.Graph) -> LaunchDescription:
    config = Path(get_package_share_directory(graph.PACKAGE)) / graph.CONFIG_FOLDER
    defaults = graph.argument_defaults(pls_graph, config)
    actions = []
    for arg in pls_graph.arguments:
        extra = {"choices": list(arg.choices)} if arg.choices else {}
        actions.append(DeclareLaunchArgument(arg.name, default_value=defaults[arg.name],
                                             description=arg.description, **extra))
    actions.append(OpaqueFunction(function=start_nodes, args=[pls_graph, config]))
    return LaunchDescription(actions)


def start_nodes(context, pls_graph: graph.Graph, config: Path):
    """The node actions, created only once every argument value passed graph.resolve's checks."""
    values = {arg.name: context.launch_configurations[arg.name] for arg in pls_graph.arguments}
    try:
        resolved = graph.resolve(pls_graph, values, config)
    except (KeyError, ValueError) as exc:
        print(graph.launch_error_text(exc), file=sys.stderr, flush=True)
        raise SystemExit(graph.EXIT_USAGE) from None  # nothing is running yet: leave at once
    return [Node(package=graph.PACKAGE, executable=node.spec.executable, name=node.spec.name,
                 namespace=node.namespace or None,
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
