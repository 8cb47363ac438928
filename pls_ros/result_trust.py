"""Which EpisodeResults the supervisor counts: only those of the publisher it is configured to trust.

Any process on the DDS domain can publish on /pls/episode_result. With `trusted_result_publisher` set (the
sim graph sets /pls_sim; on a robot, the driver's node name), every result is checked before it is
counted: the GID of the writer that sent it (rclpy's MessageInfo) is looked up among the topic's
publishers in the ROS graph, and the result is taken only when that writer belongs to the trusted node.
Anything else is dropped and logged. Node names travel in discovery data (ros_discovery_info), which can
arrive a little after a new writer's first sample (the graph lists the writer meanwhile, under rmw's
placeholder node name): an unnamed writer's results wait (in order, up to `UNKNOWN_WAIT_S`) for the graph
to name it. This is a check against mistakes and casual interference, not
cryptographic authentication: a process that names its own node /pls_sim passes. docs/ros.md says more.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# What rmw reports as the node of a writer whose participant's node list has not arrived yet.
UNKNOWN_NODE_NAME = "_NODE_NAME_UNKNOWN_"
UNKNOWN_WAIT_S = 5.0  # how long a result from a writer the graph does not name yet may wait
DROP_LOG_PERIOD_S = 2.0


def full_name(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}" if name else ""


def normalise(name: str) -> str:
    """'pls_sim' and '/pls_sim' mean the same node."""
    return name if not name or name.startswith("/") else "/" + name


class TrustedResults:
    """Passes results from the trusted node to `deliver`, in order; drops (and logs) the others."""

    def __init__(self, node, topic: str, trusted: str, deliver: Callable[[object], None]):
        self.node, self.topic, self.trusted, self.deliver = node, topic, normalise(trusted), deliver
        self.names: dict[bytes, str] = {}  # writer GID -> node full name, from the ROS graph
        self.waiting: deque = deque()  # (msg, gid, since): results whose writer the graph does not name yet
        self.dropped = 0
        self._logged = -float("inf")
        node.create_timer(0.2, self.flush)

    def on_message(self, msg, info) -> None:
        gid = bytes((info or {}).get("publisher_gid", {}).get("data", b"")) if info else b""
        self.waiting.append((msg, gid, time.monotonic()))
        self.flush()

    def writer_name(self, gid: bytes) -> str | None:
        if gid not in self.names:
            for endpoint in self.node.get_publishers_info_by_topic(self.topic):
                if endpoint.node_name != UNKNOWN_NODE_NAME:  # named later: ask again then, do not cache
                    self.names[bytes(endpoint.endpoint_gid)] = full_name(endpoint.node_namespace,
                                                                         endpoint.node_name)
        return self.names.get(gid)

    def flush(self) -> None:
        """Decide the waiting results in order; stop at the first whose writer is still unnamed."""
        while self.waiting:
            msg, gid, since = self.waiting[0]
            name = self.writer_name(gid) if gid else None
            if name is None and time.monotonic() - since < UNKNOWN_WAIT_S and gid:
                return
            self.waiting.popleft()
            if name == self.trusted:
                self.deliver(msg)
            else:
                self.drop(msg, name)

    def drop(self, msg, name: str | None) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._logged < DROP_LOG_PERIOD_S:
            return
        self._logged = now
        source = (f"node {name}" if name else "a writer the ROS graph does not name" if name is None
                  else "a writer of no node")
        self.node.get_logger().warning(
            f"dropped the EpisodeResult of episode {msg.episode} from {source}: only results published by "
            f"{self.trusted} are counted (trusted_result_publisher); {self.dropped} dropped so far")
