"""The repository is a ROS 2 source tree: colcon builds both packages and installs what `ros2 run` and
`ros2 launch` look for (node executables in lib/pls_ros/, launch and config files in share/pls_ros/)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)
NODES = ("sim_node", "policy_node", "supervisor_node", "recorder_node")


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("colcon")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV),
               PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [str(VENV / "bin" / "colcon"), "--log-base", str(work / "log"), "build",
         # colcon does not descend into a package folder, so the nested interface package is named too.
         "--base-paths", str(REPO), str(REPO / "pls_interfaces"),
         "--build-base", str(work / "build"), "--install-base", str(work / "install"),
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 packages finished" in result.stdout
    return work / "install"


def test_node_executables_are_where_ros2_run_looks(colcon_install):
    lib = colcon_install / "pls_ros" / "lib" / "pls_ros"
    for node in NODES:
        assert (lib / node).is_file() and os.access(lib / node, os.X_OK), f"missing lib/pls_ros/{node}"


def test_entry_points_resolve_to_node_mains(colcon_install):
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = colcon_install / "pls_ros" / "lib" / python / "site-packages"
    probe = (
        "import importlib.metadata as md\n"
        "eps = {e.name: e for e in md.distribution('pls_ros').entry_points if e.group == 'console_scripts'}\n"
        f"for name in {NODES!r} + ('pls',):\n"
        "    assert callable(eps[name].load()), name\n"
        "    print(name, eps[name].value)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ, PYTHONPATH=str(site)),
                            capture_output=True, text=True, timeout=120, cwd=colcon_install)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sim_node pls_ros.sim_node:main" in result.stdout


def test_shipped_models_and_shields_are_installed_with_the_package(colcon_install):
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    package = colcon_install / "pls_ros" / "lib" / python / "site-packages" / "pls_core"
    for kind, name in (("models", "policy.onnx"), ("shields", "backup.npz")):
        shipped = {p.parent.name for p in (REPO / "pls_core" / kind).glob(f"*/{name}")}
        installed = {p.parent.name for p in (package / kind).glob(f"*/{name}")}
        assert shipped and shipped == installed, (kind, shipped, installed)


def test_launch_and_config_files_are_installed(colcon_install):
    share = colcon_install / "pls_ros" / "share" / "pls_ros"
    assert (share / "package.xml").is_file()
    index = colcon_install / "pls_ros" / "share" / "ament_index" / "resource_index" / "packages"
    assert (index / "pls_ros").is_file()
    for launch_file in ("sim.launch.py", "robot.launch.py"):
        assert (share / "launch" / launch_file).is_file(), f"missing share/pls_ros/launch/{launch_file}"
    installed = {p.name for p in (share / "config").glob("*.yaml")}
    expected = {p.name for p in (REPO / "config").glob("*.yaml")}
    assert expected and expected <= installed


def test_interface_package_is_installed(colcon_install):
    prefix = colcon_install / "pls_interfaces"
    assert (prefix / "share" / "pls_interfaces" / "msg" / "TargetReturn.msg").is_file()
    generated = list(prefix.glob("lib/python*/site-packages/pls_interfaces/msg/_target_return.py"))
    assert generated, "rosidl did not generate the Python message module"
