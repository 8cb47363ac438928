"""PLS on a real robot: `ros2 launch pls_ros robot.launch.py observation_topic:=... action_topic:=... ...`

The nodes, their parameter files, the launch arguments (with defaults from the parameter files) and how each
argument maps to node parameters all come from pls_ros.graph.ROBOT, the description `pls robot` runs too.
The robot's driver (started separately) publishes pls_interfaces/Observation and EpisodeResult and consumes
pls_interfaces/Action on the topics named by observation_topic, episode_result_topic and action_topic; every
node here is remapped onto them. Run `ros2 launch pls_ros robot.launch.py --show-args` for the arguments.
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

GRAPH = graph.ROBOT


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
