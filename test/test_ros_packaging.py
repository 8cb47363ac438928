"""What a ROS user installs: package.xml's rosdep keys and the requirement sets by role.

* Every third-party module pls_core and pls_ros import has a rosdep key in package.xml, or is named there
  as having none (and is then in requirements/ros.txt or no-deps.txt), so a new import forces a decision.
* requirements/robot.txt (the policy node only), requirements/ros.txt (all of pls on a ROS install): no
  ros-* wheels, no dev tools, no torch; versions as in requirements/base.txt (what the tests run), numpy
  a range.
* The robot set is enough for the policy node: it loads the shipped model with everything else blocked.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REQ = REPO / "requirements"

ROSDEP_KEYS = {  # import name -> rosdep key (ROS packages: their name; Python: rosdistro rosdep/python.yaml)
    "rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces", "ament_index_python": "ament_index_python",
    "builtin_interfaces": "builtin_interfaces", "std_msgs": "std_msgs", "pls_interfaces": "pls_interfaces",
    "launch": "launch", "launch_ros": "launch_ros", "diagnostic_msgs": "diagnostic_msgs",
    "numpy": "python3-numpy", "onnxruntime": "python3-onnxruntime-pip", "yaml": "python3-yaml",
    "torch": "python3-torch", "scipy": "python3-scipy", "h5py": "python3-h5py",
    "mujoco": "python3-mujoco-pip", "gymnasium": "python3-gymnasium-pip",
    "stable_baselines3": "python3-stable-baselines3-pip", "matplotlib": "python3-matplotlib",
    "imageio": "python3-imageio", "rich": "python3-rich", "typer": "python3-typer",
}
NO_KEY = {"gpytorch": "gpytorch", "onnx": "onnx", "safety_gymnasium": "safety-gymnasium",
          "mcap": "mcap", "mcap_ros2": "mcap-ros2-support", "ray": "ray",
          "imageio_ffmpeg": None}  # None: optional (mp4 video), named in the error that asks for it
DEV_TOOLS = ("pytest", "ruff", "colcon")


def third_party_imports() -> set[str]:
    found = set()
    for path in [*REPO.glob("pls_core/**/*.py"), *REPO.glob("pls_ros/**/*.py"), *REPO.glob("launch/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {n.split(".")[0] for n in names}
    return {n for n in found if n not in sys.stdlib_module_names and n not in ("pls_core", "pls_ros")}


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, spec = re.match(r"([A-Za-z0-9_.\-]+)(.*)", line).groups()
            out[name.lower()] = spec
    return out


def test_every_import_has_a_rosdep_key_or_is_named_as_having_none():
    xml = (REPO / "package.xml").read_text()
    declared = {e.text for e in ET.fromstring(xml) if e.tag in ("depend", "exec_depend", "build_depend")}
    imports = third_party_imports()
    assert not imports - set(ROSDEP_KEYS) - set(NO_KEY), "decide the rosdep key of each new import"
    for module in imports & set(ROSDEP_KEYS):
        assert ROSDEP_KEYS[module] in declared, f"{module}: package.xml lacks {ROSDEP_KEYS[module]}"
    comment = " ".join(re.findall(r"<!--(.*?)-->", xml, re.S))
    ros, no_deps = pins(REQ / "ros.txt"), pins(REQ / "no-deps.txt")
    for module in imports & set(NO_KEY):
        if NO_KEY[module] is None:
            continue
        assert NO_KEY[module] in comment, f"package.xml does not say {NO_KEY[module]} has no rosdep key"
        assert NO_KEY[module] in ros or NO_KEY[module] in no_deps, NO_KEY[module]


@pytest.mark.parametrize("role", ["robot.txt", "ros.txt"])
def test_role_requirements_hold_no_ros_wheels_dev_tools_or_torch_and_match_base(role):
    have, base = pins(REQ / role), pins(REQ / "base.txt")
    assert not [n for n in have if n.startswith("ros-") or n.startswith(DEV_TOOLS) or n == "torch"], have
    for name, spec in have.items():
        assert name in base, f"{role}: {name} is not in base.txt (what the tests run)"
        if name == "numpy":
            low, high = re.fullmatch(r">=([\d.]+),<(\d+)", spec).groups()
            assert spec != base[name] and int(base[name].lstrip("=").split(".")[0]) < int(high)
        elif role == "ros.txt":
            assert spec == base[name], f"{role}: {name}{spec} differs from base.txt's {base[name]}"
    if role == "robot.txt":
        assert set(have) == {"numpy", "onnxruntime"}
    else:  # everything base.txt installs for pls itself, without ROS, dev tools and torch
        wanted = {n for n in base if not n.startswith("ros-") and not n.startswith(DEV_TOOLS)
                  and n not in ("torch", "catkin-pkg")}
        assert set(have) == wanted, set(have) ^ wanted


ROBOT_PROBE = """
import sys
for name in ("torch", "gpytorch", "scipy", "h5py", "mujoco", "gymnasium", "safety_gymnasium",
             "matplotlib", "typer", "rich"):
    sys.modules[name] = None  # not installed on the robot computer (PyYAML is: rclpy needs it)
import rclpy
from pls_ros import policy_node
rclpy.init(args=["x", "--ros-args", "-p", "model_path:={model}"])
node = policy_node.PolicyNode()
node.destroy_node()
rclpy.shutdown()
print("LOADED")
"""


def test_the_robot_set_is_enough_for_the_policy_node(ros_env):
    model = REPO / "pls_core" / "models" / "SafetyHalfCheetahVelocity-v1" / "policy.onnx"
    out = subprocess.run([sys.executable, "-c", ROBOT_PROBE.format(model=model)], capture_output=True,
                         text=True, timeout=120, env=ros_env, cwd=REPO)
    assert "LOADED" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
