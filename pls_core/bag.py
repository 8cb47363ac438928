"""rosbag2-compatible MCAP bags, written and opened without ROS: the recorder's storage, from-bag's input.

A bag is a folder, as `ros2 bag record` makes it: `<folder>/<name>_0.mcap` plus `metadata.yaml`. The MCAP
file follows rosbag2's MCAP storage plugin (rosbag2_storage_mcap), so `ros2 bag info` and `ros2 bag play`
read it on a ROS 2 install:

* header profile `ros2`; one schema per message type, named `pkg/msg/Type`, encoding `ros2msg`, holding
  the complete message definition: the type's .msg text, then each message type it uses, preceded by a
  line of 80 `=` and `MSG: pkg/Type` (rosbag2's LocalMessageDefinitionSource layout, dependencies in
  sorted order, depth first);
* one channel per topic, message encoding `cdr`, with the metadata `offered_qos_profiles` (YAML list of
  the publishers' QoS, rosbag2 metadata version 9 spelling) and `topic_type_hash` (`RIHS01_...`);
* messages carry the serialized CDR bytes exactly as they came off the wire; log time = receive time,
  publish time = the sender's source timestamp;
* a summary section with statistics and chunk indexes (written by `close`), a `rosbag2` metadata record
  with `serialized_metadata`, and metadata.yaml beside the file (`rosbag2_bagfile_information`, version 9).

Nothing here imports rclpy: the .msg texts and type hashes are read from the installed message packages
(`share/<pkg>/msg/<Type>.msg` and `.json` under AMENT_PREFIX_PATH or this Python's prefix; this checkout's
msg/ folder for pls_interfaces).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STORAGE_ID = "mcap"
METADATA_FILE = "metadata.yaml"
METADATA_VERSION = 9  # rosbag2_storage BagMetadata::version (QoS policies spelled as strings)
DELIMITER = "=" * 80

# rosbag2's RMW_DURATION_INFINITE as recorded, and the unspecified (default) duration.
INFINITE = {"sec": 9223372036, "nsec": 854775807}
UNSPECIFIED = {"sec": 0, "nsec": 0}

# rosbag2 LocalMessageDefinitionSource: package/type names and the field types of a .msg text.
_TYPE_NAME = re.compile(r"^([a-zA-Z0-9_]+)/(?:msg/|srv/)?([a-zA-Z0-9_]+)$")
_FIELD_TYPE = re.compile(r"(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+")
_PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
               "uint32", "int64", "uint64", "string"}


class BagError(ValueError):
    """A bag that cannot be written or read; the message names the problem and the fix."""


# --------------------------------------------------------------------------------------------------------
# Message definitions (ros2msg) and type hashes, from the installed message packages.
def share_dirs() -> list[Path]:
    """Where message packages install `share/<pkg>/`: under AMENT_PREFIX_PATH and this Python's prefix."""
    roots = [Path(p) / "share" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    roots.append(Path(sys.prefix) / "share")
    return roots


def _msg_file(package: str, name: str, suffix: str) -> Path | None:
    for root in share_dirs():
        path = root / package / "msg" / f"{name}{suffix}"
        if path.is_file():
            return path
    if package == "pls_interfaces":  # a source checkout: msg/ next to the packages
        path = Path(__file__).resolve().parent.parent / "msg" / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def _split_type(type_name: str) -> tuple[str, str]:
    match = _TYPE_NAME.match(type_name)
    if match is None:
        raise BagError(f"message type {type_name!r} is not of the form pkg/msg/Type")
    return match.group(1), match.group(2)


def _msg_text(type_name: str) -> str:
    package, name = _split_type(type_name)
    path = _msg_file(package, name, ".msg")
    if path is None:
        raise BagError(f"no {name}.msg for {type_name} under {', '.join(map(str, share_dirs()))}; install "
                       f"the {package} message package (or source its ROS setup)")
    return path.read_text(encoding="utf-8")


def _dependencies(text: str, package: str) -> list[str]:
    found = set()
    for match in _FIELD_TYPE.finditer(text):
        kind = match.group(1)
        if kind in _PRIMITIVES:
            continue
        found.add(kind if "/" in kind else f"{package}/{kind}")
    return sorted(found)


def message_definition(type_name: str) -> str:
    """The complete ros2msg definition of `type_name` ("pkg/msg/Type"), as rosbag2 writes it."""
    seen: set[str] = set()

    def expand(name: str, depth: int) -> str:
        if depth <= 0:
            raise BagError(f"message definition of {type_name} nests too deep")
        text = _msg_text(name)
        out = text
        for dep in _dependencies(text, _split_type(name)[0]):
            if dep not in seen:
                seen.add(dep)
                out += f"\n{DELIMITER}\nMSG: {dep}\n" + expand(dep, depth - 1)
        return out

    return expand(type_name, 50)


def type_hash(type_name: str) -> str:
    """The type's RIHS01 hash from its installed type description (`<Type>.json`); '' if not found."""
    package, name = _split_type(type_name)
    path = _msg_file(package, name, ".json")
    if path is None:
        return ""
    try:
        hashes = json.loads(path.read_text(encoding="utf-8")).get("type_hashes", [])
    except (OSError, ValueError):
        return ""
    wanted = f"{package}/msg/{name}"
    return next((h.get("hash_string", "") for h in hashes if h.get("type_name") == wanted), "")


def qos_profile(*, reliability: str, durability: str, depth: int, history: str = "keep_last",
                liveliness: str = "automatic", deadline: Mapping | None = None,
                lifespan: Mapping | None = None, lease: Mapping | None = None) -> dict:
    """One offered QoS profile in rosbag2's metadata-version-9 form (policies as rmw's strings)."""
    return {"history": history, "depth": int(depth), "reliability": reliability, "durability": durability,
            "deadline": dict(deadline or UNSPECIFIED), "lifespan": dict(lifespan or UNSPECIFIED),
            "liveliness": liveliness, "liveliness_lease_duration": dict(lease or UNSPECIFIED),
            "avoid_ros_namespace_conventions": False}


# --------------------------------------------------------------------------------------------------------
# Writing.
@dataclass
class _Topic:
    name: str
    type: str
    channel_id: int
    type_hash: str
    offered_qos: list[dict]
    count: int = 0


@dataclass
class BagWriter:
    """Writes one rosbag2 bag folder (one MCAP file); `close()` finalizes it (idempotent).

    `folder` must not exist or be empty (as `ros2 bag record -o`). Messages are written as given: `data`
    is the serialized CDR message.
    """

    folder: Path
    library: str = "pls recorder"
    chunk_size: int = 256 * 1024  # small chunks: a killed recorder loses little (readers recover chunks)
    topics: dict[str, _Topic] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from mcap.writer import CompressionType, Writer

        self.folder = Path(self.folder).expanduser().absolute()
        if self.folder.exists() and (not self.folder.is_dir() or any(self.folder.iterdir())):
            raise BagError(f"{self.folder} already exists and is not an empty folder; record into a new "
                           "folder (a bag folder holds one recording)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{self.folder.name}_0.mcap"
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        # No compression, as rosbag2's MCAP plugin writes by default; chunk CRCs and statistics on.
        self._writer = Writer(self._file, chunk_size=self.chunk_size, compression=CompressionType.NONE)
        import mcap

        self._writer.start(profile="ros2", library=f"{self.library} (mcap-python {mcap.__version__})")
        self._schemas: dict[str, int] = {}
        self.message_count = 0
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.closed = False

    def add_topic(self, topic: str, type_name: str, offered_qos: Iterable[Mapping] = (),
                  type_hash_string: str | None = None, definition: str | None = None) -> None:
        """Register `topic` (once; later calls are ignored) with its type's schema."""
        if topic in self.topics:
            return
        if type_name not in self._schemas:
            text = definition if definition is not None else message_definition(type_name)
            self._schemas[type_name] = self._writer.register_schema(type_name, "ros2msg",
                                                                    text.encode("utf-8"))
        qos_list = [dict(q) for q in offered_qos]
        hash_string = type_hash_string if type_hash_string is not None else type_hash(type_name)
        metadata = {"offered_qos_profiles": yaml.safe_dump(qos_list, sort_keys=False) if qos_list else "",
                    "topic_type_hash": hash_string}
        channel = self._writer.register_channel(topic, "cdr", self._schemas[type_name], metadata)
        self.topics[topic] = _Topic(topic, type_name, channel, hash_string, qos_list)

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        if self.closed:
            raise BagError(f"{self.path} is closed")
        entry = self.topics[topic]
        entry.count += 1
        self._writer.add_message(entry.channel_id, log_time=int(log_time_ns), data=bytes(data),
                                 publish_time=int(publish_time_ns if publish_time_ns else log_time_ns),
                                 sequence=entry.count)
        self.message_count += 1
        self.start_ns = log_time_ns if self.start_ns is None else min(self.start_ns, log_time_ns)
        self.end_ns = log_time_ns if self.end_ns is None else max(self.end_ns, log_time_ns)

    def metadata(self) -> dict:
        """rosbag2's BagMetadata (version 9) of this bag: metadata.yaml's `rosbag2_bagfile_information`."""
        start = self.start_ns if self.start_ns is not None else time.time_ns()
        duration = (self.end_ns - start) if self.end_ns is not None else 0
        topics = [{"topic_metadata": {"name": t.name, "type": t.type, "serialization_format": "cdr",
                                      "offered_qos_profiles": t.offered_qos,
                                      "type_description_hash": t.type_hash},
                   "message_count": t.count} for t in self.topics.values()]
        return {
            "version": METADATA_VERSION,
            "storage_identifier": STORAGE_ID,
            "duration": {"nanoseconds": int(duration)},
            "starting_time": {"nanoseconds_since_epoch": int(start)},
            "message_count": self.message_count,
            "topics_with_message_count": topics,
            "compression_format": "",
            "compression_mode": "",
            "relative_file_paths": [self.path.name],
            "files": [{"path": self.path.name, "starting_time": {"nanoseconds_since_epoch": int(start)},
                       "duration": {"nanoseconds": int(duration)}, "message_count": self.message_count}],
            "custom_data": {"recorded_by": self.library},
            "ros_distro": os.environ.get("ROS_DISTRO", ""),
        }

    def close(self) -> Path:
        """Finalize the MCAP file (summary, statistics, rosbag2 metadata record) and write metadata.yaml."""
        if self.closed:
            return self.folder
        info = self.metadata()
        self._writer.add_metadata("rosbag2", {"serialized_metadata": yaml.safe_dump(info, sort_keys=False)})
        self._writer.finish()
        self._file.close()
        self.closed = True
        text = yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False)
        tmp = self.folder / f".{METADATA_FILE}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.folder / METADATA_FILE)
        return self.folder


# --------------------------------------------------------------------------------------------------------
# Opening.
def bag_files(path: str | Path) -> list[Path]:
    """The MCAP files of a bag: a bag folder (its metadata.yaml's files, else its *.mcap) or one .mcap file.

    BagError naming the problem and the fix for a missing path, a folder without MCAP files, a file that
    is not MCAP.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise BagError(f"{path} does not exist; give a bag folder (`pls robot --record DIR`) or an .mcap "
                       "file")
    if path.is_dir():
        files: list[Path] = []
        meta = path / METADATA_FILE
        if meta.is_file():
            try:
                info = (yaml.safe_load(meta.read_text(encoding="utf-8")) or {}).get(
                    "rosbag2_bagfile_information", {})
                files = [path / name for name in info.get("relative_file_paths", [])]
                if info.get("storage_identifier") not in (None, STORAGE_ID):
                    raise BagError(f"{path} is a {info.get('storage_identifier')} bag, not MCAP; convert it "
                                   "with `ros2 bag convert` to storage mcap")
            except (yaml.YAMLError, AttributeError):
                files = []
            files = [f for f in files if f.is_file()]
        if not files:
            files = sorted(path.glob("*.mcap"))
        if not files:
            raise BagError(f"{path} holds no .mcap file; give the folder a recording was written to "
                           "(`pls robot --record DIR`) or an .mcap file")
    else:
        files = [path]
    for file in files:
        with open(file, "rb") as f:
            magic = f.read(8)
        if magic != b"\x89MCAP0\r\n":
            raise BagError(f"{file} is not an MCAP file (it does not start with the MCAP magic); give a "
                           "bag recorded with storage mcap (`pls robot --record DIR`, "
                           "`ros2 bag record -s mcap`)")
    return files
