"""Recordings -> datasets without DDS: the bag format, fault injection, and the CLI's errors.

* A bag written by pls_core.bag (the recorder's writer) is rosbag2's MCAP layout: profile ros2, ros2msg
  schemas with the full definition, cdr channels with offered QoS, a summary, metadata.yaml.
* A recording with injected faults (a dropped EpisodeResult, a repeated stamp and a duplicated message, an
  episode cut short, a wrong observation length, disagreeing totals, an aborted and an unfinished episode,
  an episode index used again after a driver restart)
  converts with every fault counted, every excluded episode named with its reason, and no episode lost or
  merged: the kept ones are exactly the clean ones, with their own lengths and returns.
* Bad input (missing path, not MCAP, no pls topics, unknown task) is one line and exit code 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pls_core.bag import BagWriter, qos_profile

REPO = Path(__file__).resolve().parent.parent
TASK = "SafetyHalfCheetahVelocity-v1"
OBS, ACT = 17, 6
STEPS = 12
TOPICS = {"obs": ("/robot/pls/observation", "pls_interfaces/msg/Observation"),
          "act": ("/robot/pls/action", "pls_interfaces/msg/Action"),
          "res": ("/robot/pls/episode_result", "pls_interfaces/msg/EpisodeResult")}
TARGET = (2100.0, 5.0)


def pls(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pls_core.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})


class Recording:
    """Writes pls messages, serialized by rclpy as the recorder receives them, with the recorder's writer."""

    def __init__(self, folder: Path, chunk_size: int = 256 * 1024):
        self.bag = BagWriter(folder, library="test", chunk_size=chunk_size)
        control = qos_profile(reliability="reliable", durability="volatile", depth=1)
        results = qos_profile(reliability="reliable", durability="transient_local", depth=1000)
        for key, (topic, kind) in TOPICS.items():
            self.bag.add_topic(topic, kind, [results if key == "res" else control])
        self.clock = 1_700_000_000_000_000_000
        self.rng = np.random.default_rng(0)

    def tick(self, ns: int = 5_000_000) -> int:
        self.clock += ns
        return self.clock

    def write(self, key: str, msg, stamp: int | None = None) -> None:
        from rclpy.serialization import serialize_message

        stamp = self.tick() if stamp is None else stamp
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        # Kept as written: CDR alignment padding is not zeroed by the serializer, so serializing the same
        # message again may give other bytes in the padding.
        self.last_bytes = serialize_message(msg)
        self.bag.write(TOPICS[key][0], self.last_bytes, self.tick(1000))
        self.last_stamp = stamp

    def observation(self, episode: int, step: int, reward: float, cost: float, size: int = OBS, stamp=None):
        from pls_interfaces.msg import Observation

        msg = Observation(episode=episode, step=step, reward=reward, cost=cost)
        msg.observation = self.rng.standard_normal(size).astype(np.float32).tolist()
        self.write("obs", msg, stamp)
        self.last_obs_stamp = self.last_stamp
        return msg

    def action(self, episode: int, step: int, fallback: bool = False):
        from pls_interfaces.msg import Action

        msg = Action(episode=episode, step=step, target_reward_return=TARGET[0],
                     target_cost_return=TARGET[1], fallback=fallback)
        msg.action = self.rng.uniform(-1, 1, ACT).astype(np.float32).tolist()
        self.write("act", msg)

    def result(self, episode: int, length: int, reward: float, cost: float, reason: str = "time_limit"):
        from pls_interfaces.msg import EpisodeResult

        msg = EpisodeResult(episode=episode, length=length, reward_return=reward, cost_return=cost,
                            truncated=reason == "time_limit", terminated=reason == "terminated",
                            target_reward_return=TARGET[0], target_cost_return=TARGET[1], reason=reason)
        self.write("res", msg)
        return msg

    def episode(self, episode: int, *, steps: int = STEPS, length: int = STEPS, result: bool = True,
                reason: str = "time_limit", extra_cost: float = 0.0, bad_length_at: int | None = None,
                duplicate_at: int | None = None, same_stamp_at: int | None = None) -> tuple[float, float]:
        """One episode: observation t, action t, ...; the result's returns = the per-step sums."""
        rewards = self.rng.uniform(-1.0, 3.0, length)
        costs = (self.rng.uniform(size=length) < 0.3).astype(float)
        for t in range(steps):
            reward, cost = (rewards[t - 1], costs[t - 1]) if t else (0.0, 0.0)
            size = OBS - 1 if t == bad_length_at else OBS
            stamp = self.last_obs_stamp if t == same_stamp_at else None  # the clock did not advance
            msg = self.observation(episode, t, reward, cost, size, stamp)
            if t == duplicate_at:  # the same message delivered twice
                self.write("obs", msg, self.last_obs_stamp)
            self.action(episode, t)
        totals = float(rewards.sum()), float(costs.sum()) + extra_cost
        if result:
            self.result(episode, length, *totals, reason=reason)
        return totals


def test_the_writer_makes_a_rosbag2_mcap_bag(tmp_path):
    from mcap.reader import make_reader
    from pls_interfaces.msg import Observation
    from rclpy.serialization import deserialize_message

    rec = Recording(tmp_path / "bag")
    msg = rec.observation(0, 0, 0.0, 0.0)
    written = rec.last_bytes
    rec.bag.close()
    rec.bag.close()  # idempotent
    files = sorted((tmp_path / "bag").iterdir())
    assert [f.name for f in files] == ["bag_0.mcap", "metadata.yaml"]
    with open(files[0], "rb") as f:
        reader = make_reader(f)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert summary.statistics.message_count == 1 and summary.chunk_indexes
        schemas = {s.name: s for s in summary.schemas.values()}
        assert set(schemas) == {kind for _, kind in TOPICS.values()}
        obs_schema = schemas["pls_interfaces/msg/Observation"]
        assert obs_schema.encoding == "ros2msg"
        text = obs_schema.data.decode()
        assert text.startswith((REPO / "msg" / "Observation.msg").read_text())
        assert f"\n{'=' * 80}\nMSG: std_msgs/Header\n" in text
        assert f"\n{'=' * 80}\nMSG: builtin_interfaces/Time\n" in text
        channels = {c.topic: c for c in summary.channels.values()}
        assert all(c.message_encoding == "cdr" for c in channels.values())
        offered = yaml.safe_load(channels[TOPICS["res"][0]].metadata["offered_qos_profiles"])
        assert offered[0]["durability"] == "transient_local" and offered[0]["depth"] == 1000
        assert channels[TOPICS["obs"][0]].metadata["topic_type_hash"].startswith("RIHS01_")
        ((_, _, message),) = list(reader.iter_messages())
        assert message.data == written  # the bytes as given, not re-encoded
        assert deserialize_message(message.data, Observation) == msg
        assert [m.name for m in reader.iter_metadata()] == ["rosbag2"]
    info = yaml.safe_load(files[1].read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 9 and info["storage_identifier"] == "mcap" and info["message_count"] == 1
    assert info["relative_file_paths"] == ["bag_0.mcap"]
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]}
    assert counts == {TOPICS["obs"][0]: 1, TOPICS["act"][0]: 0, TOPICS["res"][0]: 0}
    with pytest.raises(ValueError, match="not an empty folder"):
        BagWriter(tmp_path / "bag")


@pytest.mark.timeout(300)
def test_injected_faults_are_each_reported_and_no_episode_is_lost_or_merged(tmp_path):
    rec = Recording(tmp_path / "faulty")
    rec.result(1000, STEPS, 1.0, 0.0)  # an episode that ended before the recording started
    totals = {0: rec.episode(0)}  # clean
    rec.episode(1, result=False)  # its EpisodeResult was dropped
    totals[2] = rec.episode(2, duplicate_at=3, same_stamp_at=5)  # a duplicated message, a repeated stamp
    rec.episode(3, steps=8)  # cut short: 8 of its 12 steps recorded
    rec.episode(4, bad_length_at=6)  # one observation of the wrong length
    totals[5] = rec.episode(5, length=7, steps=7, reason="terminated")  # clean, ended by the task
    rec.episode(6, extra_cost=50.0)  # its result's cost return disagrees with the steps
    rec.episode(7, reason="aborted: e-stop")
    totals["0 (#2)"] = rec.episode(0)  # the driver restarted and counts from 0 again: a new episode
    rec.episode(8, steps=5, result=False)  # still running when the recording ended
    rec.bag.close()

    out, report = tmp_path / "ds.hdf5", tmp_path / "report.json"
    run = pls("dataset", "from-bag", str(tmp_path / "faulty"), "--task", TASK, "--out", str(out),
              "--report", str(report))
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(report.read_text())
    faults = {key: value["count"] for key, value in data["faults"].items()}
    assert faults == {"no_result": 1, "unfinished": 1, "cut_short": 1, "duplicate_messages": 1,
                      "duplicate_stamps": 1, "wrong_observation_length": 1, "observation_length_changes": 2,
                      "totals_disagree": 1, "aborted": 1, "results_without_steps": 1,
                      "episode_index_reused": 1}, data["faults"]
    assert data["faults"]["episode_index_reused"]["episodes"] == ["0 (#2)"]
    excluded = {item["episode"]: item for item in data["excluded"]}
    assert set(excluded) == {"1", "3", "4", "6", "7", "8"}
    assert excluded["3"]["faults"] == ["cut_short"] and "8 of its 12 steps" in excluded["3"]["reason"]
    assert excluded["4"]["faults"] == ["wrong_observation_length"]
    assert excluded["1"]["faults"] == ["no_result"] and excluded["8"]["faults"] == ["unfinished"]
    assert data["episodes"] == {"recorded": 10, "kept": 4, "excluded": 6}  # every episode accounted for
    # The printed report names every fault and every excluded episode with its reason.
    for key in faults:
        assert f"  {key}: " in run.stdout, key
    for label, item in excluded.items():
        assert f"  episode {label}: {item['reason']}" in run.stdout

    from pls_core.dataset import load_dataset

    ds = load_dataset(out)
    rewards, costs, lengths = ds.episode_returns()
    kept = (0, 2, 5, "0 (#2)")
    assert lengths.tolist() == [STEPS, STEPS, 7, STEPS]  # none merged, none lost
    np.testing.assert_allclose(rewards, [totals[e][0] for e in kept], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(costs, [totals[e][1] for e in kept], rtol=1e-5, atol=1e-4)
    assert ds.episode_terminated().tolist() == [False, False, True, False]
    assert ds.attrs["task_id"] == TASK and "observation_size: 17" in ds.attrs["task_spec"]
    assert json.loads(ds.attrs["source_bags"]) == [str(tmp_path / "faulty")]
    assert ds.attrs["episodes_kept"] == 4 and ds.attrs["episodes_excluded"] == 6


def test_a_file_cut_off_by_a_killed_recorder_is_read_up_to_the_cut(tmp_path):
    from pls_core.recording import convert
    from pls_core.tasks import resolve_task

    rec = Recording(tmp_path / "bag", chunk_size=2048)  # many chunks, as a long recording has
    for episode in range(6):
        rec.episode(episode)
    rec.bag.close()
    data = (tmp_path / "bag" / "bag_0.mcap").read_bytes()
    (tmp_path / "cut.mcap").write_bytes(data[: len(data) * 7 // 10])  # no summary, a chunk cut in half
    report = convert([tmp_path / "cut.mcap"], resolve_task(TASK)).report
    assert report["faults"]["truncated_file"]["count"] == 1
    kept, excluded = report["episodes"]["kept"], report["episodes"]["excluded"]
    assert kept >= 3 and kept + excluded == report["episodes"]["recorded"] <= 6
    assert all(item["faults"] in (["unfinished"], ["cut_short"]) for item in report["excluded"])


@pytest.mark.timeout(300)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path):
    not_mcap = tmp_path / "notes.mcap"
    not_mcap.write_text("hello\n")
    other = BagWriter(tmp_path / "chatter", library="test")
    other.add_topic("/chatter", "std_msgs/msg/String")
    other.close()
    (tmp_path / "empty").mkdir()
    out = str(tmp_path / "ds.hdf5")
    cases = [((str(tmp_path / "missing"), "--task", TASK), "does not exist"),
             ((str(not_mcap), "--task", TASK), "is not an MCAP file"),
             ((str(tmp_path / "empty"), "--task", TASK), "holds no .mcap file"),
             ((str(tmp_path / "chatter"), "--task", TASK), "holds no pls topics"),
             ((str(tmp_path / "chatter"), "--task", "NoSuchTask-v0"), "unknown task")]
    for args, message in cases:
        run = pls("dataset", "from-bag", *args, "--out", out)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in run.stderr, (args, run.stderr)
        assert lines[0].startswith("pls dataset from-bag: error: ")
    assert not Path(out).exists()
