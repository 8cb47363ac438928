"""Episode results the supervisor has not acknowledged, kept on disk when the robot side stops.

The sim publishes each EpisodeResult and keeps it until a SupervisorStatus names it (or a later one) as
taken. If it has to stop first (the supervisor was killed, the graph is shutting down), it appends the
results still held to `<store_path>.unacknowledged.jsonl` (a fleet's robot k: `<store_path>.robot<k>.
unacknowledged.jsonl`), next to the supervisor's store, and the
supervisor takes them at its next start on that store, dropping any it already holds (by header stamp).
One JSON object per line, the message's fields with the stamp in nanoseconds; written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from pls_ros.conversions import stamp_ns, time_msg

SUFFIX = ".unacknowledged.jsonl"
FIELDS = ("episode", "target_reward_return", "target_cost_return", "reward_return", "cost_return", "length",
          "terminated", "truncated", "fallback_steps", "reason")


def spool_path(store_path: str | Path, namespace: str = "/") -> Path:
    """Where the results unacknowledged by the supervisor that uses `store_path` are kept; in a fleet,
    one file per robot side, named by its namespace (<store>.robot0.unacknowledged.jsonl)."""
    robot = namespace.strip("/").replace("/", ".")
    return Path(str(store_path) + (f".{robot}" if robot else "") + SUFFIX)


def to_record(msg) -> dict:
    record = {name: getattr(msg, name) for name in FIELDS}
    record["stamp_ns"] = stamp_ns(msg.header.stamp)
    record["frame_id"] = msg.header.frame_id
    return record


def from_record(record: dict):
    from pls_interfaces.msg import EpisodeResult

    msg = EpisodeResult(**{name: record[name] for name in FIELDS})
    msg.header.stamp = time_msg(int(record["stamp_ns"]))
    msg.header.frame_id = str(record.get("frame_id", ""))
    return msg


def append(path: str | Path, messages: Iterable) -> Path:
    """Add `messages` to the spool at `path` (keeping what is there); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    new = "".join(json.dumps(to_record(m)) + "\n" for m in messages)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(old + new)
    os.replace(tmp, path)
    return path


def read(path: str | Path) -> list:
    """The EpisodeResults in the spool at `path` ([] when there is none); ValueError naming a bad line."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(from_record(json.loads(line)))
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise ValueError(f"{path} line {number} is not an episode result ({exc})") from None
    return out
