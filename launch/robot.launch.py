"""PLS on a real robot: `ros2 launch pls_ros robot.launch.py observation_topic:=... action_topic:=... ...`

The nodes, their parameter files, the launch arguments (with defaults from the parameter files) and how each
argument maps to node parameters all come from pls_ros.graph.ROBOT, the description `pls robot` runs too;
pls_ros.launch_description turns it into the launch description. The robot's driver (started separately)
publishes pls_interfaces/Observation and EpisodeResult and consumes pls_interfaces/Action on the topics
named by observation_topic, episode_result_topic and action_topic; every node here is remapped onto them.
Run `ros2 launch pls_ros robot.launch.py --show-args` for the arguments.
"""

from pls_ros import graph
from pls_ros.launch_description import generate


def generate_launch_description():
    return generate(graph.ROBOT)
