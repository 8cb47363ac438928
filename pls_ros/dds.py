"""DDS settings that keep pls traffic on this machine unless the user deliberately says otherwise.

Every process pls starts (nodes, `pls sim`, `pls echo`, tests) goes through `local_dds_environment`, so
discovery stays on localhost, logs land in a folder we choose, and tests get a domain of their own.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path

_domain_counter = itertools.count()


def unique_domain_id() -> int:
    """A ROS domain id (1..100) that differs between concurrent processes and between calls."""
    return 1 + (os.getpid() * 17 + next(_domain_counter) * 7) % 100


def local_dds_environment(base: Mapping[str, str] | None = None, *, domain_id: int | None = None,
                          log_dir: str | Path | None = None) -> dict[str, str]:
    """Environment for a ROS process: localhost-only discovery, an explicit domain id and log folder.

    Values already present in `base` win for the domain and the log folder (a deployment chooses those),
    but discovery is forced to LOCALHOST unless PLS_ALLOW_NETWORK_DDS=1 is set, because a simulation
    must never announce itself to a robot network by accident.
    """
    env = dict(os.environ if base is None else base)
    if env.get("PLS_ALLOW_NETWORK_DDS") != "1":
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    else:
        env.setdefault("ROS_DOMAIN_ID", str(unique_domain_id()))
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        env["ROS_LOG_DIR"] = str(log_dir)
    else:
        env.setdefault("ROS_LOG_DIR", str(Path("build") / "ros_log"))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
