"""The recorder over real DDS: `pls sim --record DIR` end to end, and the recorder node on its own.

* A short sim graph run (3 episodes of 30 steps, the shipped HalfCheetah model) recorded by the graph's
  recorder converts to a dataset whose episodes are the recorded EpisodeResults: same count, same lengths,
  same returns; nothing is excluded.
* The recorder started after the robot side still records the EpisodeResults published before it joined
  (transient local), takes raw CDR bytes, and finalizes a valid MCAP with summary and metadata.yaml on
  SIGTERM; a folder that already holds files is refused with exit code 2.
* The graphs start the recorder only with `record`, remapped like every other node (robot graph).
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_ros_nodes_support import Launched, NodeProcess, Probe, wait_until

from pls_ros import graph as G
from pls_ros import qos

REPO = Path(__file__).resolve().parent.parent
TASK = "SafetyHalfCheetahVelocity-v1"
EPISODES, STEPS = 3, 30


@pytest.mark.timeout(420)
def test_a_recorded_sim_run_converts_to_its_episodes(ros_env, tmp_path, model_path):
    from pls_core.recording import RESULT, convert, read_bag
    from pls_core.tasks import resolve_task

    bag = tmp_path / "bag"
    run = Launched("sim", ["--model", str(model_path), "--record", str(bag), "--max-episodes", str(EPISODES),
                           "--episodes-per-evaluation", "2", "--store-path", str(tmp_path / "store.sqlite"),
                           "-p", f"pls_sim.max_episode_steps={STEPS}", "--no-progress", "--verbose"],
                   ros_env, tmp_path)
    try:
        assert run.finish(timeout=360) == 0, run.text()[-5000:]
    finally:
        run.kill()
    out = run.text()
    assert "[pls] pls_recorder: exit code 0" in out, out[-5000:]
    assert "[pls_recorder] " in out and "messages (" in out and f"in {bag}" in out, out[-5000:]
    assert "lost before" not in out, out[-5000:]  # the control writers keep a history: nothing lost
    assert {p.name for p in bag.iterdir()} == {"bag_0.mcap", "metadata.yaml"}

    contents = read_bag(bag)
    assert contents.topics == {"observation": [G.OBSERVATION], "action": [G.ACTION],
                               "episode_result": [G.EPISODE_RESULT]}
    results = {}
    for _, kind, msg in contents.messages:
        if kind == RESULT:
            results.setdefault(msg.episode, msg)  # a resend carries the same result
    assert sorted(results) == list(range(EPISODES))

    conversion = convert([bag], resolve_task(TASK))
    report = conversion.report
    assert report["excluded"] == [] and report["episodes"]["kept"] == EPISODES, report
    assert not [k for k, f in report["faults"].items() if "excluded" in f["decision"]], report["faults"]
    rewards, costs, lengths = conversion.dataset.episode_returns()
    ordered = [results[e] for e in range(EPISODES)]
    assert lengths.tolist() == [r.length for r in ordered] == [STEPS] * EPISODES
    np.testing.assert_allclose(rewards, [r.reward_return for r in ordered], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(costs, [r.cost_return for r in ordered], rtol=1e-5, atol=1e-3)
    assert conversion.dataset.timeouts.sum() == EPISODES  # time-limit ends

    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    offered = topics[G.EPISODE_RESULT]["topic_metadata"]["offered_qos_profiles"]
    assert offered and all(q["durability"] == "transient_local" and q["reliability"] == "reliable"
                           for q in offered)
    assert sum(t["message_count"] for t in topics.values()) == info["message_count"] == len(contents.messages)


def recorder_status(probe: Probe):
    """(level, {key: value}) of the newest `pls_recorder: recording` status the probe heard;
    (None, {}) before the first."""
    for array in reversed(probe.messages("diagnostics")):
        for status in array.status:
            if status.name == "pls_recorder: recording":
                return status.level, {v.key: v.value for v in status.values}
    return None, {}


@pytest.mark.timeout(240)
def test_the_recorder_records_late_joined_results_and_finalizes_on_sigterm(ros_env, tmp_path):
    """Results published before the recorder joined are recorded, and so is every observation published
    by a control writer (qos.CONTROL_PUBLISHER_QOS) while the recorder was frozen (SIGSTOP): they wait in
    the transport and the writer's history, and the recorder's deep queue (qos.RECORD_CONTROL_QOS) takes
    them all when it resumes."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from mcap.reader import make_reader
    from pls_interfaces.msg import EpisodeResult, Observation
    from rclpy.serialization import deserialize_message

    from pls_ros import diagnostics

    probe = Probe("pls_test_driver")
    probe.subscribe("diagnostics", DiagnosticArray, diagnostics.TOPIC, diagnostics.QOS)
    results = probe.publisher(EpisodeResult, G.EPISODE_RESULT, qos.EPISODE_RESULT_QOS)
    observations = probe.publisher(Observation, G.OBSERVATION, qos.CONTROL_PUBLISHER_QOS)
    frozen_steps = qos.CONTROL_PUBLISHER_HISTORY // 2
    sent = []
    for episode in range(3):  # published before the recorder exists
        msg = EpisodeResult(episode=episode, length=10, reward_return=float(episode), reason="time_limit")
        msg.header.stamp.sec = 100 + episode
        results.publish(msg)
        sent.append(msg)
    bag = tmp_path / "late"
    recorder = NodeProcess("recorder_node", ros_env, {"output_dir": str(bag)},
                           params_file=REPO / "config" / "recorder.yaml")

    def recorded() -> int:
        return int(recorder_status(probe)[1].get("messages", -1))

    try:
        recorder.wait_for_log(r"recording /pls/observation")
        wait_until(lambda: observations.get_subscription_count() >= 1, 60, "the recorder's subscription")
        wait_until(lambda: recorded() == 3, 60, "the recorder to count the 3 results")
        recorder.send(signal.SIGSTOP)  # a recorder starved of CPU: it neither reads nor acknowledges
        try:
            for step in range(frozen_steps):  # one step every 10 ms (100 Hz)
                obs = Observation(episode=3, step=step, reward=0.5)
                obs.observation = [float(step)] * 17
                observations.publish(obs)
                sent.append(obs)
                time.sleep(0.01)
        finally:
            recorder.send(signal.SIGCONT)
        total = 3 + frozen_steps
        wait_until(lambda: recorded() == total, 60, f"the recorder to count 3 results and {frozen_steps} "
                   "observations")
        level, values = recorder_status(probe)
        assert (values["episode_results"], values["observations"], values["actions"]) == (
            "3", str(frozen_steps), "0")
        assert values["observations_lost"] == "0" and level == DiagnosticStatus.OK, values
        documented = (REPO / "docs" / "ros.md").read_text()
        assert all(f"`{key}`" in documented for key in values), values
        recorder.send(15)  # SIGTERM
        assert recorder.wait(60) == 0, recorder.output()[-3000:]
    finally:
        recorder.stop()
        probe.close()
    assert f"stopped (received SIGTERM): {total} messages" in recorder.output(), recorder.output()[-3000:]
    with open(bag / "late_0.mcap", "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()  # finalized: summary, statistics and chunk indexes present
        assert summary is not None and summary.statistics.message_count == total
        kinds = {G.TOPICS[G.EPISODE_RESULT].type: EpisodeResult, G.TOPICS[G.OBSERVATION].type: Observation}
        got = [deserialize_message(m.data, kinds[s.name]) for s, _, m in reader.iter_messages()]
    # The CDR as it came off the wire (padding bytes may differ from a local serialization): same messages.
    assert sorted(map(repr, got)) == sorted(map(repr, sent))
    assert (bag / "metadata.yaml").is_file()

    again = NodeProcess("recorder_node", ros_env, {"output_dir": str(bag)}, log_name="refused")
    assert again.wait(60) == 2
    assert "cannot start" in again.output() and "not an empty folder" in again.output()
    again.stop()


@pytest.mark.timeout(240)
def test_the_recorder_counts_and_reports_messages_lost_before_it_read_them(ros_env, tmp_path):
    """A keep-last-1 writer publishing far more than any transport buffer holds while the recorder is
    frozen: what the middleware reports lost is counted, so received + lost = sent, and the recorder
    warns on /diagnostics and in its log."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from pls_interfaces.msg import Action

    from pls_ros import diagnostics

    sent = 10_000
    probe = Probe("pls_test_lossy_driver")
    probe.subscribe("diagnostics", DiagnosticArray, diagnostics.TOPIC, diagnostics.QOS)
    actions = probe.publisher(Action, G.ACTION, qos.CONTROL_QOS)  # keep last 1
    recorder = NodeProcess("recorder_node", ros_env, {"output_dir": str(tmp_path / "lossy")},
                           params_file=REPO / "config" / "recorder.yaml")

    try:
        recorder.wait_for_log(r"recording /pls/observation")
        wait_until(lambda: actions.get_subscription_count() >= 1, 60, "the recorder's subscription")
        wait_until(lambda: recorder_status(probe)[0] is not None, 60, "the recorder's diagnostics")
        recorder.send(signal.SIGSTOP)
        try:
            for step in range(sent):
                msg = Action(episode=0, step=step)
                msg.action = [0.0] * 6
                actions.publish(msg)
        finally:
            recorder.send(signal.SIGCONT)

        def accounted() -> bool:
            values = recorder_status(probe)[1]
            return bool(values) and int(values["actions"]) + int(values["actions_lost"]) == sent

        wait_until(accounted, 60, f"the recorder to receive or count as lost all {sent} actions")
        level, values = recorder_status(probe)
        assert int(values["actions_lost"]) > 0 and level == DiagnosticStatus.WARN, values
        recorder.send(signal.SIGTERM)
        assert recorder.wait(60) == 0, recorder.output()[-3000:]
    finally:
        recorder.stop()
        probe.close()
    out = recorder.output()
    assert "lost before the recorder read them" in out and "messages lost before they were read" in out, \
        out[-3000:]


def dry_run(*args: str) -> list[list[str]]:
    out = subprocess.run([sys.executable, "-m", "pls_core.cli", *args, "--dry-run"], capture_output=True,
                         text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr + out.stdout
    return [shlex.split(line.removeprefix("[pls] ")) for line in out.stdout.splitlines() if " -m " in line]


def test_the_graphs_start_the_recorder_only_when_asked_remapped_like_the_others(tmp_path):
    modules = [cmd[cmd.index("-m") + 1] for cmd in dry_run("sim")]
    assert G.RECORDER_NODE.module not in modules
    cmds = dry_run("robot", "--record", str(tmp_path / "rec"), "--observation-topic", "/go2/obs")
    (recorder,) = [c for c in cmds if c[c.index("-m") + 1] == G.RECORDER_NODE.module]
    text = shlex.join(recorder)
    assert f"output_dir:={tmp_path / 'rec'}" in text.replace('"', "").replace("'", "")
    assert f"{G.OBSERVATION}:=/go2/obs" in text and f"{G.ACTION}:=/robot/pls/action" in text
    # A folder that already holds a recording is refused before any node starts.
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "metadata.yaml").write_text("{}\n")
    out = subprocess.run([sys.executable, "-m", "pls_core.cli", "sim", "--record", str(tmp_path / "old")],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 2 and "not an empty folder" in out.stderr and " -m " not in out.stdout, out
