"""Faults of the running graph, through `pls sim` as a user runs it: a killed supervisor loses no episode.

The supervisor is frozen (SIGSTOP) so that the sim finishes episodes it cannot acknowledge, then killed
(SIGKILL): the launcher stops the graph with a non-zero exit, the sim writes the results it still holds
next to the store, and the next `pls sim` on that store takes them. Every result the sim published is then
in the store exactly once (counted or rejected, by its stamp).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from pls_interfaces.msg import EpisodeResult
from test_ros_nodes_support import Launched, Probe, wait_until

from pls_ros import qos
from pls_ros.conversions import stamp_ns
from pls_ros.result_spool import spool_path

REPO = Path(__file__).resolve().parent.parent


def stored_stamps(store: Path) -> list[int]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        stamps = [row[0] for row in db.execute("SELECT episode FROM episodes")]
        stamps += [json.loads(body).get("episode") for (body,) in db.execute("SELECT body FROM rejections")]
    return stamps


@pytest.mark.timeout(400)
def test_a_killed_supervisor_loses_no_finished_episode(ros_env, tmp_path):
    store = tmp_path / "store.sqlite"
    args = ["--store-path", str(store), "--episodes-per-evaluation", "50", "--no-progress", "--verbose",
            "-p", "pls_sim.max_episode_steps=20"]
    quick = ["-p", "pls_sim.supervisor_sync_timeout_s=0.5", "-p", "pls_sim.unacknowledged_wait_s=1.0"]
    probe = Probe()
    probe.subscribe("result", EpisodeResult, qos.EPISODE_RESULT_TOPIC, qos.EPISODE_RESULT_QOS)

    def published() -> set[int]:
        return {stamp_ns(m.header.stamp) for m in probe.messages("result")}

    first = Launched("sim", args + quick, ros_env, REPO)
    try:
        wait_until(lambda: len(published()) >= 2, 240, "two episode results of the first run")
        pid = int(re.search(r"started pls_supervisor \(pid (\d+)\)", first.text()).group(1))
        os.kill(pid, signal.SIGSTOP)  # frozen: takes no result, acknowledges nothing
        frozen_at = len(published())
        wait_until(lambda: len(published()) >= frozen_at + 2, 120, "episodes finished while it is frozen")
        os.kill(pid, signal.SIGKILL)
        assert first.finish(timeout=60) == 1, first.text()[-5000:]  # killed by a signal: a failed run
    finally:
        first.kill()
    out = first.text()
    assert "required node pls_supervisor failed (killed by SIGKILL)" in out, out[-5000:]
    assert re.search(r"\[pls_sim\] .*episode result\(s\) the supervisor has not acknowledged: .* kept in "
                     + re.escape(str(spool_path(store))), out), out[-5000:]
    time.sleep(0.5)  # the last resends may still be on their way to the probe
    sent = published()
    probe.close()

    second = Launched("sim", args + ["--max-episodes", "1"], ros_env, REPO)
    try:
        assert second.finish(timeout=240) == 0, second.text()[-5000:]
    finally:
        second.kill()
    assert re.search(r"\[pls_supervisor\] .*took \d+ of \d+ episode result\(s\) the robot side stopped with",
                     second.text()), second.text()[-5000:]
    assert not spool_path(store).exists()
    stamps = stored_stamps(store)
    assert len(stamps) == len(set(stamps)), "a result was stored twice"
    missing = sent - set(stamps)
    assert not missing, f"{len(missing)} of {len(sent)} published results are not in the store"
    assert len(stamps) == len(sent) + 1  # and the second run's one episode
