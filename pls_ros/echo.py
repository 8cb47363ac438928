"""`pls echo`: print the messages on a topic the way `ros2 topic echo` does (ros2cli is not on PyPI).

Each message is dumped as YAML (field by field, nested messages indented, arrays as YAML lists, long
arrays truncated) followed by a `---` line. The message type comes from `--type`, from pls's own topic
table (pls_ros.graph.TOPICS) or, for other topics, from the graph once a publisher is seen. QoS: our
topics use the QoS their publisher offers (transient_local for /pls/target_return, so an echo started late
still gets the current target); for other topics it adapts to the publishers, as ros2cli does.
"""

from __future__ import annotations

import array
import importlib
import sys
import time
from collections.abc import Callable
from typing import TextIO

import yaml

from pls_ros import graph as G


def load_message_type(name: str):
    """`pkg/msg/Name` (or `pkg/Name`) -> the generated Python message class."""
    parts = name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"message type must look like pkg/msg/Name, got {name!r}")
    pkg, kind, cls = parts
    module = importlib.import_module(f"{pkg}.{kind}")
    try:
        return getattr(module, cls)
    except AttributeError:
        raise ValueError(f"{pkg}.{kind} has no message {cls!r}") from None


def qos_for(topic: str, *, reliability: str | None = None, durability: str | None = None,
            depth: int | None = None):
    """The QoS profile pls's publisher of `topic` uses (pls_ros.qos via graph.TOPICS), or the ROS default
    (reliable, volatile, depth 10) for other topics, with optional overrides."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    from pls_ros import qos as Q

    spec = G.TOPICS.get(topic)
    base = getattr(Q, spec.qos) if spec else QoSProfile(depth=10)
    profile = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=base.depth, reliability=base.reliability,
                         durability=base.durability)
    if depth is not None:
        profile.depth = depth
    if reliability is not None:
        profile.reliability = (ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
                               else ReliabilityPolicy.RELIABLE)
    if durability is not None:
        profile.durability = (DurabilityPolicy.TRANSIENT_LOCAL if durability == "transient_local"
                              else DurabilityPolicy.VOLATILE)
    return profile


# A subscriber that logs every message keeps more than the publisher's latched depth: with depth 1 a
# monitor whose thread is held up for a moment sees target #3 and never #2 (the reader overwrites).
MONITOR_DEPTH = 100


def monitor_qos(topic: str):
    """qos_for(topic) with a history deep enough that a briefly busy monitor misses nothing."""
    profile = qos_for(topic)
    profile.depth = max(profile.depth, MONITOR_DEPTH)
    return profile


def _plain(value, truncate: int | None):
    if hasattr(value, "get_fields_and_field_types"):
        return message_to_dict(value, truncate)
    if isinstance(value, (list, tuple, array.array)) or type(value).__module__ == "numpy":
        if type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
            return value.item()
        items = [_plain(v, truncate) for v in value]
        if truncate is not None and len(items) > truncate:
            return [*items[:truncate], "..."]
        return items
    if isinstance(value, bytes):
        return list(value)
    return value


def message_to_dict(msg, truncate: int | None = 128) -> dict:
    """Field name -> plain Python value, in declaration order (what ros2 topic echo serialises)."""
    return {name: _plain(getattr(msg, name), truncate) for name in msg.get_fields_and_field_types()}


def message_to_yaml(msg, truncate: int | None = 128) -> str:
    return yaml.safe_dump(message_to_dict(msg, truncate), default_flow_style=False, sort_keys=False,
                          allow_unicode=True, width=sys.maxsize)


def _choose_qos_from_publishers(node, topic: str):
    """As ros2cli: reliable/transient_local only when every publisher offers it."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    if not infos:
        return None
    rel = "reliable" if all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos) \
        else "best_effort"
    dur = "transient_local" if all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                   for i in infos) else "volatile"
    return rel, dur


def echo(topic: str, *, msg_type: str | None = None, count: int = 0, timeout_s: float | None = None,
         reliability: str | None = None, durability: str | None = None, depth: int | None = None,
         truncate: int | None = 128, out: TextIO | None = None,
         on_message: Callable[[object], None] | None = None) -> int:
    """Print messages on `topic` until `count` arrived (0: forever) or `timeout_s` passed.

    Returns 0 when the wanted count arrived (or the echo was interrupted), 2 on timeout / unknown type.
    The caller sets up the DDS environment (pls_ros.dds.local_dds_environment) before calling.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException

    out = out or sys.stdout
    err = sys.stderr
    if not topic.startswith("/"):
        topic = "/" + topic
    deadline = None if not timeout_s else time.monotonic() + timeout_s
    received = 0
    rclpy.init()
    node = rclpy.create_node(f"pls_echo_{abs(hash((topic, time.time()))) % 10**8}",
                             start_parameter_services=False)
    try:
        type_name = msg_type or (G.TOPICS[topic].type if topic in G.TOPICS else None)
        # A topic pls does not know: learn its type (unless given) and copy its publishers' QoS, as ros2cli
        # does. With --type the echo subscribes at once (default QoS) and re-subscribes with the publishers'
        # QoS when they are discovered later, so a late-discovered latched publisher is still heard.
        adapt = topic not in G.TOPICS and not (reliability and durability)
        qos_choice = None
        if adapt and type_name is None:
            while True:
                types = dict(node.get_topic_names_and_types()).get(topic)
                qos_choice = _choose_qos_from_publishers(node, topic)
                if types and qos_choice:
                    type_name = types[0]
                    break
                if deadline is not None and time.monotonic() > deadline:
                    err.write(f"pls echo: no publisher on {topic} within {timeout_s:g} s; "
                              "pass --type to subscribe anyway\n")
                    return 2
                rclpy.spin_once(node, timeout_sec=0.05)
        try:
            cls = load_message_type(type_name)
        except (ImportError, ValueError) as exc:
            err.write(f"pls echo: cannot load message type {type_name!r}: {exc}\n")
            return 2

        def profile(choice):
            rel, dur = reliability, durability
            if choice is not None:
                rel, dur = rel or choice[0], dur or choice[1]
            return qos_for(topic, reliability=rel, durability=dur,
                           depth=depth if depth is not None else monitor_qos(topic).depth)

        def callback(msg) -> None:
            nonlocal received
            received += 1
            out.write(message_to_yaml(msg, truncate))
            out.write("---\n")
            out.flush()
            if on_message is not None:
                on_message(msg)

        current = profile(qos_choice)
        subscription = node.create_subscription(cls, topic, callback, current)
        adapt = adapt and qos_choice is None
        next_look = time.monotonic()
        while count <= 0 or received < count:
            now = time.monotonic()
            remaining = None if deadline is None else deadline - now
            if remaining is not None and remaining <= 0:
                err.write(f"pls echo: timed out after {timeout_s:g} s with {received}"
                          + (f" of {count}" if count > 0 else "") + f" message(s) on {topic}\n")
                return 2 if count > 0 else 0
            if adapt and now >= next_look:
                next_look = now + 0.2
                qos_choice = _choose_qos_from_publishers(node, topic)
                if qos_choice is not None:
                    adapt = False
                    wanted = profile(qos_choice)
                    if received == 0 and (wanted.reliability, wanted.durability) != (current.reliability,
                                                                                     current.durability):
                        node.destroy_subscription(subscription)
                        current = wanted
                        subscription = node.create_subscription(cls, topic, callback, current)
            rclpy.spin_once(node, timeout_sec=0.1 if remaining is None else min(0.1, remaining))
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
