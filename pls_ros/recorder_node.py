"""pls_recorder: the robot side's Observation, Action and EpisodeResult topics, recorded to a rosbag2 bag.

Started by the graphs when `record` names a folder (`pls sim --record DIR`, `pls robot --record DIR`,
`record:=DIR` with ros2 launch). It subscribes to /pls/observation, /pls/action and /pls/episode_result,
which the robot graph's remappings rename to the driver's topics, so it records what the policy and the
supervisor see, under the names they have in the running graph.

* The bag is rosbag2's MCAP layout (pls_core.bag): `ros2 bag info DIR` and `ros2 bag play DIR` read it on
  a ROS 2 install, and `pls dataset from-bag DIR` turns it into a dataset. No `ros2` CLI is needed.
* Messages are taken raw (serialized CDR, `raw=True`) and written as they came: nothing is deserialized
  or re-serialized. Log time is the receive time, publish time the sender's source timestamp.
* QoS: reliable, volatile, keep last 1000 on Observation and Action (matches the control loop's publishers,
  and a moment's delay loses nothing); reliable, transient local, keep last 1000 on EpisodeResult, so
  results published before the recorder joined are recorded too. The offered QoS of each topic's
  publishers (as discovered) goes into the bag for `ros2 bag play`.
* Messages the middleware reports lost before the recorder read them (the message_lost event: a
  publisher's history overwrote them, or they predate the match) are counted per topic, logged and shown
  on /diagnostics (WARN): the recording misses those steps, and `pls dataset from-bag` will exclude their
  episodes. Publishers that keep a history (qos.CONTROL_PUBLISHER_QOS) avoid it.
* On SIGINT/SIGTERM or the graph's stop it keeps taking messages still in flight for `drain_s`, then
  finalizes the MCAP file (summary and statistics) and writes metadata.yaml; every wait is bounded.
* A folder that already holds files is refused at start (exit 2, the fix named): one bag per folder.
"""

from __future__ import annotations

import time

from pls_interfaces.msg import Action, EpisodeResult, Observation
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSProfile

from pls_core.bag import BagError, BagWriter, qos_profile, type_hash
from pls_ros import diagnostics, node_params, qos
from pls_ros import graph as G
from pls_ros.params import declare_parameters
from pls_ros.paths import resolve_output
from pls_ros.spin import StartupError, node_main

NODE_NAME = "pls_recorder"
PARAMS = node_params.RECORDER

# (topic as the nodes name it, message class, subscription QoS, diagnostics key of its count)
RECORDED = (
    (G.OBSERVATION, Observation, qos.RECORD_CONTROL_QOS, "observations"),
    (G.ACTION, Action, qos.RECORD_CONTROL_QOS, "actions"),
    (G.EPISODE_RESULT, EpisodeResult, qos.EPISODE_RESULT_QOS, "episode_results"),
)


def _duration(ns: int) -> dict:
    return {"sec": int(ns // 1_000_000_000), "nsec": int(ns % 1_000_000_000)}


def offered_qos(profile: QoSProfile) -> dict:
    """An rclpy QoS profile in rosbag2's metadata form (policies as rmw's strings, durations sec/nsec)."""
    return qos_profile(history=profile.history.name.lower(), depth=profile.depth,
                       reliability=profile.reliability.name.lower(),
                       durability=profile.durability.name.lower(),
                       liveliness=profile.liveliness.name.lower(),
                       deadline=_duration(profile.deadline.nanoseconds),
                       lifespan=_duration(profile.lifespan.nanoseconds),
                       lease=_duration(profile.liveliness_lease_duration.nanoseconds))


class RecorderNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.p = declare_parameters(self, PARAMS)
        if not self.p["output_dir"]:
            raise StartupError("output_dir is empty: nothing to record to; give the bag folder with "
                               "`-p output_dir:=DIR` (the graphs: record:=DIR, `pls sim/robot --record DIR`)")
        try:
            self.bag = BagWriter(resolve_output(self.p["output_dir"]), library=NODE_NAME)
        except BagError as exc:
            raise StartupError(str(exc)) from None
        self.drain_timeout_s = self.p["drain_s"]
        self._drain_until: float | None = None
        self.counts: dict[str, int] = {}
        self.lost: dict[str, int] = {}  # per topic: messages the middleware reports lost (message_lost)
        self.types: dict[str, str] = {}
        self.keys: dict[str, str] = {}
        for topic, msg_type, sub_qos, key in RECORDED:
            name = self.resolve_topic_name(topic)  # after the graph's remappings: what the bag calls it
            self.types[name] = G.TOPICS[topic].type
            self.counts[name] = 0
            self.lost[name] = 0
            self.keys[name] = key
            self.create_subscription(msg_type, topic, self._callback(name, G.TOPICS[topic].qos), sub_qos,
                                     raw=True, event_callbacks=SubscriptionEventCallbacks(
                                         matched=self._on_matched(name), message_lost=self._on_lost(name)))
        diagnostics.Diagnostics(self, "recording", self.diagnose)
        self.get_logger().info(f"recording {', '.join(self.types)} to {self.bag.folder}")

    def _on_matched(self, topic: str):
        """Say when a publisher joins or leaves a recorded topic: start driving once the bag hears it."""
        def on_matched(info) -> None:
            self.get_logger().info(f"{topic}: {info.current_count} publisher(s) recorded")
        return on_matched

    def _on_lost(self, topic: str):
        """Count the messages DDS reports lost on a recorded topic, and say so: the bag misses them."""
        def on_lost(info) -> None:
            self.lost[topic] = max(self.lost[topic], int(info.total_count))
            self.get_logger().warning(
                f"{topic}: {info.total_count_change} message(s) lost before the recorder read them "
                f"({self.lost[topic]} so far); the recording misses those steps. Publishers of the control "
                f"topics should keep a history (docs/ros.md, real-robot contract)", throttle_duration_sec=5.0)
        return on_lost

    def _callback(self, topic: str, documented_qos: str):
        def on_message(data: bytes, info) -> None:
            self.record(topic, data, info, documented_qos)
        return on_message

    def offered(self, topic: str, documented_qos: str) -> tuple[list[dict], str]:
        """The QoS the topic's publishers offer and the type hash, from discovery (else pls's own)."""
        profiles, hash_string = [], ""
        for endpoint in self.get_publishers_info_by_topic(topic):
            profiles.append(offered_qos(endpoint.qos_profile))
            candidate = str(endpoint.topic_type_hash)
            if candidate.startswith("RIHS"):
                hash_string = candidate
        if not profiles:  # the publisher is gone already: the profile pls documents for this topic
            profiles = [offered_qos(getattr(qos, documented_qos))]
        return profiles, hash_string or type_hash(self.types[topic])

    def record(self, topic: str, data: bytes, info, documented_qos: str) -> None:
        if self.bag.closed:
            return
        if topic not in self.bag.topics:
            profiles, hash_string = self.offered(topic, documented_qos)
            self.bag.add_topic(topic, self.types[topic], profiles, hash_string)
        received = int(info.get("received_timestamp") or 0) or time.time_ns()
        self.bag.write(topic, data, received, int(info.get("source_timestamp") or 0) or received)
        self.counts[topic] += 1

    @property
    def done(self) -> bool:
        """max_episodes EpisodeResults recorded, and drain_s since: the executor does not take callbacks in
        arrival order across topics, so the last episode's steps may still be queued behind its result."""
        limit = self.p["max_episodes"]
        results = sum(n for topic, n in self.counts.items() if self.keys[topic] == "episode_results")
        if not limit or results < limit:
            return False
        if self._drain_until is None:
            self._drain_until = time.monotonic() + self.drain_timeout_s
        return time.monotonic() >= self._drain_until

    def diagnose(self) -> tuple[int, str, dict]:
        values = {"folder": str(self.bag.folder), "messages": self.bag.message_count,
                  **{self.keys[topic]: n for topic, n in self.counts.items()},
                  **{f"{self.keys[topic]}_lost": n for topic, n in self.lost.items()}}
        if self.bag.closed:
            return diagnostics.WARN, "bag closed", values
        lost = sum(self.lost.values())
        if lost:
            return diagnostics.WARN, f"recording, {lost} message(s) lost before they were read", values
        return diagnostics.OK, "recording", values

    # --- stopping (pls_ros.spin) ----------------------------------------------------------------------
    def prepare_shutdown(self) -> None:
        self._drain_until = time.monotonic() + self.drain_timeout_s

    def pending_work(self) -> str:
        if self._drain_until is None or time.monotonic() >= self._drain_until:
            return ""
        return "messages may still be in flight"

    def finish(self, reason: str) -> None:
        folder = self.bag.close()
        counts = ", ".join(f"{n} on {topic}" for topic, n in self.counts.items())
        self.get_logger().info(f"stopped ({reason}): {self.bag.message_count} messages ({counts}) in "
                               f"{folder}")
        lost = ", ".join(f"{n} on {topic}" for topic, n in self.lost.items() if n)
        if lost:
            self.get_logger().warning(f"messages lost before they were read: {lost}; `pls dataset from-bag` "
                                      f"reports the episodes they belong to")


main = node_main(RecorderNode, NODE_NAME)


if __name__ == "__main__":
    main()
