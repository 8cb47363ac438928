"""pls_ros (ament_python) and the ROS-free pls_core library, installed together.

`pip install -e .` gives pip-only users the `pls` command; `colcon build` installs the same package as a
ROS 2 ament_python package with its launch and config files and the node executables under lib/pls_ros/.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "pls_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Provably lifetime-safe RL: offline CDT, ONNX runtime, GP safe target tuning, ROS 2 nodes",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["pls_core", "pls_core.*", "pls_ros", "pls_ros.*"]),
    package_data={"pls_core": ["models/*/*", "shields/*/*", "shields/*/ps2/*", "task_specs/*.yaml",
                               "py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "pls = pls_core.cli:main",
            "sim_node = pls_ros.sim_node:main",
            "policy_node = pls_ros.policy_node:main",
            "supervisor_node = pls_ros.supervisor_node:main",
            "recorder_node = pls_ros.recorder_node:main",
        ],
    },
)
