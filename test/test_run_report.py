"""The run report (pls_core.report, written by `pls demo`) states what was measured at the target it
recommends: the operation choice ranks evaluated targets by their measured mean reward."""

from __future__ import annotations

import re

import numpy as np

from pls_core.report import write_run_report
from pls_core.safeopt import build_optimizer
from pls_core.safeopt.store import OptimizerStore
from pls_core.safeopt.synthetic import SyntheticProblem, run, synthetic_config


def test_report_gives_the_measured_mean_reward_at_the_best_target(tmp_path):
    config = synthetic_config(seed=3)
    store_path = tmp_path / "run.sqlite"
    optimizer = build_optimizer(config, store_path)
    run(optimizer, SyntheticProblem.sample(config, 3), 8)
    best = optimizer.current.best_target

    store = OptimizerStore(store_path)
    try:
        at_best = [rec.reward_return for _, rec in store.episodes() if tuple(rec.target) == tuple(best)]
    finally:
        store.close()
    assert at_best, "the best target of an operating run must have been evaluated"

    text = (write_run_report(store_path, tmp_path / "report")).read_text()
    line = next(row for row in text.splitlines() if "best verified safe target" in row)
    found = re.search(r"measured mean reward (-?[\d.]+) over (\d+) episodes", line)
    assert found, line
    assert float(found.group(1)) == np.round(np.mean(at_best), 1)
    assert int(found.group(2)) == len(at_best)


def test_report_gives_the_best_targets_reward_on_both_scales(tmp_path):
    """With the dataset's reward range in the config: ours beside DSRL's ('n/a' for a task without
    DSRL constants, as this synthetic one)."""
    from dataclasses import replace

    from pls_core.report import _on_both_scales

    config = replace(synthetic_config(seed=3), dataset_reward_min=0.0, dataset_reward_max=4000.0)
    store_path = tmp_path / "run.sqlite"
    optimizer = build_optimizer(config, store_path)
    run(optimizer, SyntheticProblem.sample(config, 3), 8)
    text = write_run_report(store_path, tmp_path / "report").read_text()
    line = next(row for row in text.splitlines() if "best verified safe target" in row)
    mean = float(re.search(r"measured mean reward (-?[\d.]+)", line).group(1))
    assert re.search(r"\(normalised: ours (-?[\d.]+), DSRL n/a\)", line), line
    assert abs(float(re.search(r"ours (-?[\d.]+)", line).group(1)) - mean / 4000.0) <= 0.006
    cheetah = {"task": "SafetyHalfCheetahVelocity-v1", "dataset_reward_min": 505.8,
               "dataset_reward_max": 3144.3}
    assert _on_both_scales(2780.0, cheetah) == " (normalised: ours 0.86, DSRL 0.99)"
    assert _on_both_scales(2780.0, {"task": "SafetyHalfCheetahVelocity-v1"}) == ""  # no dataset range
