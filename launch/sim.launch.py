"""PLS in simulation: `ros2 launch pls_ros sim.launch.py [task:=...] [model:=...] [threshold:=...] ...`

The nodes, their parameter files, the launch arguments (with defaults from the parameter files) and how each
argument maps to node parameters all come from pls_ros.graph.SIM, the description `pls sim` runs too.
Run `ros2 launch pls_ros sim.launch.py --show-args` for the arguments.
"""
# ruff: noqa: I001  (the repo's launch/ folder makes ruff take the ROS `launch` package for first-party)

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.substitutions import LaunchConfiguration
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
    for spec in GRAPH.nodes:
        overrides = {param.name: ParameterValue(LaunchConfiguration(arg_name), value_type=param.type)
                     for param, arg_name in graph.node_parameter_arguments(GRAPH, spec.name)}
        remappings = [(topic, LaunchConfiguration(arg_name))
                      for topic, arg_name in graph.node_remappings(GRAPH, spec.name)]
        actions.append(Node(package=graph.PACKAGE, executable=spec.executable, name=spec.name,
                            parameters=[str(config / spec.params_file), overrides], remappings=remappings,
                            output="screen",
                            on_exit=Shutdown(reason=f"{spec.name} exited") if spec.required else None))
    return LaunchDescription(actions)
