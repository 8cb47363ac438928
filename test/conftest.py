"""Test-wide safety for ROS: every test talks DDS on localhost only, in a domain of its own.

`make test` runs the whole session inside a loopback-only network namespace (scripts/netns-run) where the
machine allows it; these settings hold on top of that, and on their own where it does not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pls_ros.dds import local_dds_environment, unique_domain_id

REPO = Path(__file__).resolve().parent.parent
ROS_LOG_ROOT = REPO / "build" / "ros_log"
# Under pytest-xdist (`make test` runs two workers) each worker takes its own residue class of domain ids,
# so two workers' graphs never share a domain.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def test_domain_id() -> int:
    """A ROS domain id (1..100) for one test, never one another xdist worker uses."""
    return 1 + (_WORKER + _WORKERS * unique_domain_id()) % (100 - 100 % _WORKERS)


test_domain_id.__test__ = False  # a helper, not a test

# The test process itself (for in-process rclpy) gets the same treatment as the children it starts.
os.environ.update(local_dds_environment(domain_id=test_domain_id(), log_dir=ROS_LOG_ROOT / "pytest"))


@pytest.fixture
def ros_env(request) -> dict[str, str]:
    """Environment for ROS child processes of one test: fresh domain id, log dir inside the build tree."""
    domain = test_domain_id()
    env = local_dds_environment(domain_id=domain, log_dir=ROS_LOG_ROOT / request.node.name)
    os.environ["ROS_DOMAIN_ID"] = str(domain)  # in-process rclpy in this test joins the same domain
    return env


# `PLS_TESTS=core` (make test's Python 3.12 pass, where the ROS wheels do not exist): only the test files
# that use neither rclpy nor pls_ros nor the messages.
_ROS_WORDS = ("rclpy", "pls_ros", "pls_interfaces", "ros_support")


def pytest_ignore_collect(collection_path, config):
    if os.environ.get("PLS_TESTS") != "core" or collection_path.suffix != ".py" or \
            not collection_path.name.startswith("test_"):
        return None
    text = collection_path.read_text()
    return True if any(word in text for word in _ROS_WORDS) else None


SHIPPED_MODEL = REPO / "pls_core" / "models" / "SafetyHalfCheetahVelocity-v1" / "policy.onnx"


@pytest.fixture(scope="module")
def model_path() -> Path:
    """An ONNX policy for graph tests: the shipped HalfCheetah model, else a tiny one trained here."""
    if SHIPPED_MODEL.is_file():
        return SHIPPED_MODEL
    try:
        from test_cdt_support import tiny_artifacts

        return tiny_artifacts().onnx
    except Exception as exc:  # pragma: no cover - only when neither a shipped nor a tiny model can be made
        pytest.skip(f"no shipped model and a tiny one could not be made: {exc!r}")
