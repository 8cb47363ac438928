"""PLS in simulation: `ros2 launch pls_ros sim.launch.py [task:=...] [model:=...] [threshold:=...] ...`

The nodes, their parameter files, the launch arguments (with defaults from the parameter files) and how each
argument maps to node parameters all come from pls_ros.graph.SIM, the description `pls sim` runs too;
pls_ros.launch_description turns it into the launch description (argument checks before any node starts,
a failed required node fails the launch). Run `ros2 launch pls_ros sim.launch.py --show-args`.
"""

from pls_ros import graph
from pls_ros.launch_description import generate


def generate_launch_description():
    return generate(graph.SIM)
