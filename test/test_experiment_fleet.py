"""`pls experiment --fleet N` on the tiny Swimmer: N targets a round, each robot's episodes at its target."""

from __future__ import annotations

from dataclasses import replace

from test_experiment_harness import tiny_settings
from test_experiment_support import TASK

from pls_core.experiment.harness import run_experiment
from pls_core.experiment.loop import RunKey, RunRecord

B = 20.0


def test_a_fleet_run_proposes_one_target_per_robot_and_attributes_each_episode(tmp_path):
    settings = replace(tiny_settings(), methods=("pls",), fleet=2)
    run_experiment(settings, tmp_path, progress=False)
    path = RunKey(TASK, B, "pls", 0, fleet=2).path(tmp_path)
    assert path.parent.name == "pls-fleet2"
    record = RunRecord.load(path)
    assert record.fingerprint["fleet"] == 2 and record.key.fleet == 2
    rows, varpi = record.iterations, settings.episodes_per_evaluation
    rounds = len(rows) // 2
    assert len(rows) == 2 * rounds and 1 <= rounds <= settings.iterations
    assert [(r["round"], r["robot"]) for r in rows] == [(i // 2, i % 2) for i in range(len(rows))]
    assert [r["iteration"] for r in rows] == list(range(len(rows)))
    assert all(r["verified_safe"] for r in rows if r["phase"] != "halted")
    assert len(record.episodes) == varpi * len(rows)
    for row in rows:  # every episode ran, and counted for, its own robot's target
        mine = [e for e in record.episodes if e["iteration"] == row["iteration"]]
        assert len(mine) == varpi and {e["robot"] for e in mine} == {row["robot"]}
        assert all([e["target_reward"], e["target_cost"]] == row["target"] for e in mine)
        assert row["unsafe"] == sum(e["unsafe"] for e in mine)
    seeds = [e["seed"] for e in record.episodes]
    assert len(set(seeds)) == len(seeds)  # no two robots share an episode seed


def test_one_robot_keeps_the_runs_folder_and_fingerprint_of_before_fleets():
    key = RunKey(TASK, B, "pls", 0)
    assert key.fleet == 1 and key.path(".").parent.name == "pls"
    assert "fleet" not in tiny_settings().to_dict()
