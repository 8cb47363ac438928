"""`pls experiment` on Ray: a local cluster started here (`ray start --head`, loopback only) stores the
same results as the serial path, and a worker killed mid-run loses no run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_experiment_support import TASK, models_dir

ray = pytest.importorskip("ray")

B = 20.0
RAY = str(Path(sys.executable).with_name("ray"))
# The cluster and its clients agree on no token authentication (a token `ray start` made once in ~/.ray
# would otherwise be asked of every later client), and report no usage statistics.
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}


def experiment_args(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pls_core.cli", "experiment", "--out", str(out), "--tasks", TASK,
            "--thresholds", f"{B:g}", "--methods", "pls,random", "--seeds", "2", "--episodes-per-evaluation",
            "2", "--iterations", "2", "--sweep-rewards", "2", "--sweep-costs", "2", "--sweep-episodes", "1",
            "--models-dir", str(models_dir()), "--set", "cost_noise_variance=400", "--no-progress", *extra]


def stored(out: Path) -> dict[str, dict]:
    """Every stored run and sweep, less its wall-clock time."""
    files = {}
    for path in sorted(out.rglob("*.json")):
        if path.parent == out:  # results.json: the report, with the commit and date
            continue
        data = json.loads(path.read_text())
        data.pop("wall_time_s", None)
        files[str(path.relative_to(out))] = data
    return files


@pytest.fixture(scope="module")
def cluster():
    """A one-node Ray cluster on loopback, in a short private folder (AF_UNIX paths stay < 107 bytes), in a
    session of its own: (address, session id). Only that session's processes are ever signalled, so a
    Ray the developer runs beside the tests (an experiment, a training) is left alone; `ray stop` would
    stop every Ray of this user on the machine."""
    folder = tempfile.mkdtemp(prefix="pls-ray-test-")
    port = 20000 + os.getpid() % 20000
    address = f"127.0.0.1:{port}"
    start = [RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
             "--num-cpus=2", f"--temp-dir={folder}", "--include-dashboard=false", "--disable-usage-stats"]
    head = subprocess.Popen(start, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while subprocess.run([RAY, "status", f"--address={address}"], env=ENV, capture_output=True,
                             timeout=60).returncode != 0:
            assert head.poll() is None, f"`ray start --head` exited with {head.returncode}"
            assert time.monotonic() < deadline, f"the Ray head at {address} did not come up within 120 s"
            time.sleep(1)
        yield address, head.pid
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head and its services: the workers go with the raylet
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        subprocess.run(["pkill", "-9", "-s", str(head.pid)], capture_output=True)  # any worker left over
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    subprocess.run(experiment_args(out, "--workers", "1"), check=True, capture_output=True, env=ENV,
                   timeout=600)
    return stored(out)


def test_cluster_stores_the_serial_results_and_a_killed_worker_loses_no_run(cluster, serial, tmp_path):
    assert len([k for k in serial if k.startswith("runs/")]) == 4
    assert any(k.startswith("sweep/") for k in serial)
    out = tmp_path / "ray"
    address, session = cluster
    proc = subprocess.Popen(experiment_args(out, "--address", address), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV)
    # Kill one of the cluster's workers while it computes a unit (its process title names the task), once
    # one run is stored; the cluster's workers run in its session (their own process groups).
    killed = False
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not killed:
        if (out / "runs").is_dir() and any((out / "runs").rglob("seed*.json")):
            found = subprocess.run(["pkill", "-9", "-s", str(session), "-f", "ray::_compute_in_worker"],
                                   capture_output=True)
            killed = found.returncode == 0
        time.sleep(0.2)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    assert killed, "no worker was computing a unit once the first run was stored"
    assert stored(out) == serial  # every run and sweep, as the serial path stored them


def test_embedded_ray_resumes_after_the_driver_is_killed(serial, tmp_path):
    """Killed (SIGKILL, its Ray processes with it) once a run is stored, then rerun: the stored units are
    kept and the rest computed, to the serial path's results."""
    for attempt in range(3):  # on a loaded machine every run may be stored before this poller wakes: again
        out = tmp_path / f"embedded{attempt}"
        proc = subprocess.Popen(experiment_args(out, "--workers", "2"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, env=ENV)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if (out / "runs").is_dir() and any((out / "runs").rglob("seed*.json")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the experiment finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        first = stored(out)
        if len([k for k in first if k.startswith("runs/")]) < 4:
            break
    assert 0 < len([k for k in first if k.startswith("runs/")]) < 4, "every run was stored before the kill"
    result = subprocess.run(experiment_args(out, "--workers", "2"), capture_output=True, text=True,
                            env=ENV, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(out) == serial
    assert all(stored(out)[name] == data for name, data in first.items())  # kept, not recomputed
