"""Crash safety: a process killed with SIGKILL mid-run resumes from its SQLite store and continues exactly
as an uninterrupted run would; a store from another configuration is refused."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pls_core.safeopt import EpisodeRecord, InvalidEpisodeError, StoreMismatchError, build_optimizer
from pls_core.safeopt.store import OptimizerStore
from pls_core.safeopt.synthetic import SyntheticProblem, run, synthetic_config

REPO = Path(__file__).resolve().parent.parent
SEED, EVALUATIONS = 5, 24

CHILD = f"""
import sys, time
from pls_core.safeopt import build_optimizer
from pls_core.safeopt.synthetic import SyntheticProblem, run, synthetic_config
config = synthetic_config(seed={SEED})
optimizer = build_optimizer(config, sys.argv[1])
status = optimizer.status()
print("start", optimizer.iteration, status["episodes_total"], optimizer.current.target, flush=True)
def slow(o):
    print("episode", o.status()["episodes_total"], flush=True)
    time.sleep(float(sys.argv[2]))
run(optimizer, SyntheticProblem.sample(config, {SEED}), int(sys.argv[3]), on_episode=slow)
print("done", optimizer.iteration, flush=True)
"""


def child(store: Path, pause: float, evaluations: int = EVALUATIONS, threads: int = 1) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(store), str(pause), str(evaluations)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def uninterrupted() -> list:
    """The reference run, in this process with one torch thread like the children: the bounds' last bits
    depend on the thread count (summation order), and the decisions are compared in full."""
    config = synthetic_config(seed=SEED)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(build_optimizer(config), SyntheticProblem.sample(config, SEED), EVALUATIONS)
    finally:
        torch.set_num_threads(threads)


def test_sigkill_mid_run_then_resume_matches_uninterrupted_run(tmp_path):
    store = tmp_path / "run.sqlite"
    killed = child(store, 0.02)
    episodes_seen = 0
    for line in killed.stdout:  # kill in the middle of an evaluation (5 episodes each)
        if line.startswith("episode"):
            episodes_seen = int(line.split()[1])
            if episodes_seen >= 37:
                break
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.read()

    resumed = child(store, 0.0)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    start = out.splitlines()[0].split(maxsplit=3)
    iteration, episodes = int(start[1]), int(start[2])
    assert episodes >= 37 and 0 < iteration < EVALUATIONS  # it really resumed mid-run

    reference = uninterrupted()
    assert start[3] == str(reference[iteration].target)  # the same next proposal
    reopened = OptimizerStore(store)
    assert reopened.journal_mode() == "wal"
    assert reopened.decisions() == reference  # and the same run from there on
    assert len(reopened.episodes()) == EVALUATIONS * 5


def test_resume_in_process_restores_partial_evaluation_rejections_and_missing_decision(tmp_path):
    config = synthetic_config(seed=SEED)
    problem = SyntheticProblem.sample(config, SEED)
    store = tmp_path / "run.sqlite"
    first = build_optimizer(config, store)
    run(first, problem, 6)
    target = first.current.target
    with pytest.raises(InvalidEpisodeError):
        first.report_episode(EpisodeRecord(target, float("nan"), 0.0, 10))
    first.report_episode(EpisodeRecord(target, 50.0, 1.0, 1000, episode=10_000))
    status = first.status()

    again = build_optimizer(config, store)
    assert again.current == first.current and again.history == first.history
    restored = again.status()
    for key in ("episodes_at_target", "episodes_total", "episodes_rejected", "num_observations", "target"):
        assert restored[key] == status[key], key
    with pytest.raises(InvalidEpisodeError, match="already recorded"):
        again.report_episode(EpisodeRecord(target, 50.0, 1.0, 1000, episode=10_000))

    with sqlite3.connect(store) as db:  # as if killed between an episode's write and its decision's write
        db.execute("DELETE FROM decisions WHERE iteration = (SELECT MAX(iteration) FROM decisions)")
    third = build_optimizer(config, store)
    assert third.history == first.history
    assert OptimizerStore(store).decisions() == first.history


def test_store_from_another_config_is_refused(tmp_path):
    store = tmp_path / "run.sqlite"
    build_optimizer(synthetic_config(seed=1), store)
    with pytest.raises(StoreMismatchError, match="keys differ: seed"):
        build_optimizer(synthetic_config(seed=2), store)


def test_replay_under_another_thread_count_reproduces_the_choices(tmp_path):
    """The store may be resumed by a process with a different BLAS thread count than the one that wrote it."""
    store = tmp_path / "run.sqlite"
    writer = child(store, 0.0, evaluations=8, threads=2)
    _, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    config = synthetic_config(seed=SEED)
    resumed = build_optimizer(config, store)  # this process: OMP_NUM_THREADS=1 under the test command
    assert [d.target for d in resumed.history] == [d.target for d in uninterrupted()[:9]]
