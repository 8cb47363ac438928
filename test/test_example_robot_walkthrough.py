"""The bring-your-own-robot walk-through on an example robot pls does not ship (examples/reacher).

Separate processes over real DDS, as a user runs them: `pls record` records while a scripted controller
drives the robot's driver; `pls dataset from-bag` turns the bag into a dataset of the robot's own task
(its YAML description); `pls train --preset tiny` and `pls export` make a model that carries the
description; `pls robot --task reacher.yaml --model ...` with the driver then runs PLS on it: the supervisor
publishes only verified targets and counts the robot's episodes, in the robot graph's own store.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys

import pytest
from pls_interfaces.msg import SupervisorStatus, TargetReturn
from test_example_reacher import EXAMPLE, Script
from test_ros_nodes_support import Launched, Probe, wait_until

from pls_ros import qos

RECORDED_EPISODES = 40
SPEC = EXAMPLE / "reacher.yaml"


def pls(*args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pls_core.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.timeout(900)
def test_record_build_train_export_deploy_and_tune_the_example_robot(ros_env, tmp_path):
    logs = tmp_path / "logs"
    bag, data, run, onnx = tmp_path / "bag", tmp_path / "reacher.hdf5", tmp_path / "run", tmp_path / "p.onnx"

    # 1. Record behaviour episodes: a scripted controller (aggressiveness drawn per episode) drives.
    recorder = Launched("record", ["--out", str(bag), "--episodes", str(RECORDED_EPISODES), "--no-progress",
                                   "--verbose"], ros_env, tmp_path)
    scripts = []
    try:
        recorder.wait_for("recording /robot/pls/observation")
        scripts.append(Script("controllers.py", ["--controller", "mix", "--seed", "0"], ros_env, logs,
                              "controller"))
        recorder.wait_for("/robot/pls/action: 1 publisher(s) recorded")
        # The driver starts once the controller and the recorder take its observations.
        scripts.append(Script("driver.py", ["--episodes", str(RECORDED_EPISODES), "--seed", "0",
                                            "--min-subscribers", "2"], ros_env, logs, "driver"))
        assert recorder.finish(timeout=300) == 0, recorder.text()[-4000:]
        assert scripts[1].wait(120) == 0, scripts[1].output()[-3000:]
    finally:
        recorder.kill()
        for script in scripts:
            script.stop()

    # 2. The bag becomes a dataset of the robot's own task; every recorded episode is kept.
    made = pls("dataset", "from-bag", str(bag), "--task", str(SPEC), "--out", str(data), "--report",
               str(tmp_path / "report.json"), env=ros_env, cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["episodes"]["kept"] == RECORDED_EPISODES and report["excluded"] == [], report

    # 3. Train and export: the contract carries the task description.
    # 300 steps of the tiny preset (seconds): enough to imitate the data's calm episodes at the seed box.
    trained = pls("train", "--dataset", str(data), "--out", str(run), "--preset", "tiny", "--steps", "300",
                  "--no-progress", env=ros_env, cwd=tmp_path)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    exported = pls("export", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(onnx), env=ros_env,
                   cwd=tmp_path)
    assert exported.returncode == 0, exported.stdout + exported.stderr

    # 4. Deploy on the robot graph with the driver: PLS tunes the targets of the example robot.
    probe = Probe("walkthrough_probe")
    probe.subscribe("target", TargetReturn, qos.TARGET_RETURN_TOPIC, qos.TARGET_RETURN_QOS)
    probe.subscribe("status", SupervisorStatus, qos.SUPERVISOR_STATUS_TOPIC, qos.SUPERVISOR_STATUS_QOS)
    robot = Launched("robot", ["--task", str(SPEC), "--model", str(onnx), "--threshold", "20",
                               "--episodes-per-evaluation", "2", "--no-progress", "--verbose"], ros_env,
                     tmp_path)
    driver = None
    try:
        robot.wait_for("new run in")
        driver = Script("driver.py", ["--episodes", "6", "--seed", "100"], ros_env, logs, "driver_deployed")
        status = wait_until(lambda: next((s for s in probe.messages("status") if s.iteration >= 3), None),
                            240.0, "three evaluations (six episodes) counted by the supervisor")
        assert status.threshold == 20.0
        assert driver.wait(120) == 0, driver.output()[-3000:]
        robot.proc.send_signal(signal.SIGINT)
        assert robot.finish(timeout=120) == 0, robot.text()[-4000:]
    finally:
        robot.kill()
        if driver is not None:
            driver.stop()
        probe.close()
    published = probe.messages("target")
    assert published and all(t.cost_upper <= 20.0 for t in published if t.phase != TargetReturn.PHASE_HALTED)
    # The robot graph's default store, with its owner and the robot's task; never the sim's.
    store = tmp_path / "runs" / "robot" / "pls_store.sqlite"
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        identity = json.loads(db.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()[0])
        episodes = db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
    assert identity["owner"] == "robot" and identity["task"] == "ReacherSpeedLimit-v0"
    assert episodes == 6
