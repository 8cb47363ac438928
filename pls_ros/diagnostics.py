"""/diagnostics from every pls node: diagnostic_msgs/DiagnosticArray, as the standard robot tools read it.

Each node publishes one DiagnosticStatus about once per second, named `<node>: <what>` with hardware_id
`pls`, a level (OK, WARN, ERROR) and a message, and its figures as key/value pairs (snake_case keys,
listed in docs/ros.md). rqt_robot_monitor and the diagnostic aggregator read /diagnostics as it is;
PolicyStatus and SupervisorStatus stay for pls's own tools.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.qos import QoSProfile

TOPIC = "/diagnostics"
QOS = QoSProfile(depth=10)  # reliable, volatile: what diagnostic_updater publishes with
OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def text(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Diagnostics:
    """Publishes `collect()` -> (level, message, {key: value}) as one DiagnosticStatus every `period_s`."""

    def __init__(self, node, what: str, collect: Callable[[], tuple[int, str, Mapping[str, object]]],
                 period_s: float = 1.0):
        self.node, self.collect = node, collect
        self.name = f"{node.get_name()}: {what}"
        self.publisher = node.create_publisher(DiagnosticArray, TOPIC, QOS)
        node.create_timer(period_s, self.publish)

    def publish(self) -> None:
        level, message, values = self.collect()
        status = DiagnosticStatus(level=level, name=self.name, message=message, hardware_id="pls",
                                  values=[KeyValue(key=k, value=text(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.node.get_clock().now().to_msg()
        self.publisher.publish(array)
