"""Rollouts and the evaluation report: reproducible episodes, batching-independent, DSRL scores, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_cdt_support import tiny_artifacts

from pls_core.evaluate import TargetSummary, cost_following, evaluate_grid, markdown_table, write_report
from pls_core.normalise import normalised_cost, normalised_reward
from pls_core.rollout import run_episodes
from pls_core.runtime import PolicyRunner

TASK = "SafetyHalfCheetahVelocity-v1"


def test_dsrl_normalisation():
    assert normalised_reward(1500.0, 500.0, 2500.0) == pytest.approx(0.5)
    assert normalised_cost(30.0, 20.0) == pytest.approx(1.5)
    assert normalised_cost(0.0, 0.0) == pytest.approx(1.0)  # b = 0: DSRL adds 1 to both sides
    assert normalised_cost(2.0, 0.0) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        normalised_reward(1.0, 5.0, 5.0)


def _row(reward: float, costs: dict[float, float]) -> list[TargetSummary]:
    return [TargetSummary(reward, g, 20, 1000.0, 10.0, c, 5.0, 0.5, c / 20, 0.4) for g, c in costs.items()]


@pytest.mark.parametrize(("costs", "rises", "misses"), [
    ({0: 9.7, 10: 12.8, 20: 19.1, 40: 23.4}, True, []),  # within max(5, G/2) at 10, 20, 40
    ({0: 13.0, 10: 16.8, 20: 13.4, 40: 29.1}, False, [10.0]),  # not rising; 6.8 from 10
    ({0: 5.2, 10: 6.4, 20: 6.9, 40: 7.9}, True, [20.0, 40.0]),  # rising, far below G
    ({0: 0.0, 10: 4.0, 20: 20.0, 40: 40.0}, True, [10.0]),  # 6 from 10 is outside max(5, 5)
])
def test_cost_following_rule(costs, rises, misses):
    (verdict,) = cost_following(_row(1500.0, costs))
    assert (verdict["rises"], verdict["outside_tolerance_at"]) == (rises, misses)
    assert verdict["follows"] == (rises and not misses)


def test_cost_following_is_judged_per_target_reward_in_g_order():
    summaries = (_row(1500.0, {40: 30.0, 0: 1.0, 10: 9.0}) + _row(1400.0, {0: 3.0, 10: 2.0})
                 + _row(1300.0, {0: 1.0}))
    verdicts = cost_following(summaries)
    assert [v["target_reward"] for v in verdicts] == [1400.0, 1500.0]  # one G alone says nothing
    assert [v["follows"] for v in verdicts] == [False, True]
    assert verdicts[1]["target_costs"] == [0.0, 10.0, 40.0]


def test_seed_box_check_fails_when_any_corner_spends_more_than_b_on_average():
    from pls_core.evaluate import describe_seed_box, seed_box_check
    from pls_core.rollout import EpisodeResult

    corners = [(1000.0, 0.0), (1000.0, 5.0), (1200.0, 0.0), (1200.0, 5.0)]

    def results(costs_at_last_corner):
        safe = [EpisodeResult(r, g, 900.0, 3.0, 1000, i) for r, g in corners[:3] for i in range(2)]
        last = [EpisodeResult(1200.0, 5.0, 900.0, c, 1000, i) for i, c in enumerate(costs_at_last_corner)]
        return safe + last

    check = seed_box_check(results([10.0, 30.0]), corners, 20.0)  # mean 20: within b, half the episodes above
    assert check["holds"] and check["corners"][3]["share_above_b"] == 0.5
    assert "50 % of episodes above b" in describe_seed_box(check)
    assert "safe on average, but up to 50 % of single episodes" in describe_seed_box(check)
    assert describe_seed_box(seed_box_check(results([10.0]), corners, 20.0)).endswith(": safe")
    check = seed_box_check(results([12.0, 30.0]), corners, 20.0)  # mean 21
    assert not check["holds"] and "NOT safe" in describe_seed_box(check)
    assert not seed_box_check(results([]), corners, 20.0)["holds"]  # a corner that was not run is not safe


def test_episodes_are_reproducible_and_do_not_depend_on_batching():
    targets = [(300.0, 0.0), (300.0, 40.0)]
    one_at_a_time = run_episodes(PolicyRunner(tiny_artifacts().onnx, num_envs=1), TASK, targets, 2, seed=5)
    batched = run_episodes(PolicyRunner(tiny_artifacts().onnx, num_envs=3), TASK, targets, 2, seed=5)
    assert [(r.target_reward, r.target_cost, r.seed) for r in batched] == [
        (300.0, 0.0, 5),
        (300.0, 0.0, 6),
        (300.0, 40.0, 7),
        (300.0, 40.0, 8),
    ]
    for a, b in zip(one_at_a_time, batched, strict=True):
        assert a.length == b.length == 1000
        assert a.reward_return == pytest.approx(b.reward_return, abs=1e-3)
        assert a.cost_return == pytest.approx(b.cost_return, abs=1e-6)
    assert len({round(r.reward_return, 3) for r in batched}) > 1  # different seeds, different episodes


def test_grid_report_summarises_every_target(tmp_path):
    summaries, results = evaluate_grid(
        tiny_artifacts().onnx, [100.0, 300.0], [0.0, 20.0], 1, 20.0, reward_range=(-500.0, 500.0), num_envs=4
    )
    assert len(summaries) == 4 and len(results) == 4
    for s in summaries:
        assert s.normalised_reward == pytest.approx((s.reward_mean + 500.0) / 1000.0)
        assert s.normalised_cost == pytest.approx(s.cost_mean / 20.0)
        # DSRL's scale beside ours: DSRL's published HalfCheetah range, not the one asked for
        assert s.dsrl_reward == pytest.approx((s.reward_mean - 5.7510) / (2806.9331 - 5.7510))
    paths = write_report(tmp_path, summaries, results, 20.0, "tiny", {"model": "tiny"})
    table = markdown_table(summaries)
    assert table.count("\n") == 2 + 4 and "| norm. reward (ours) | norm. reward (DSRL) |" in table
    assert f"| {summaries[0].dsrl_reward:.3f} |" in table
    report = json.loads(paths["json"].read_text())
    assert report["threshold"] == 20.0 and len(report["cost_following"]) == 2  # one per target R
    assert "Cost following:" in paths["markdown"].read_text()
    assert paths["heatmaps"].stat().st_size > 1000


def test_cli_train_export_evaluate_end_to_end(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    dataset = str(tiny_artifacts().dataset)

    def pls(*args):
        done = subprocess.run(
            [sys.executable, "-m", "pls_core.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    pls(
        "train",
        "--dataset",
        dataset,
        "--out",
        str(tmp_path / "run"),
        "--preset",
        "tiny",
        "--steps",
        "12",
        "--no-progress",
        "--set",
        "eval_every=12",
    )
    assert (tmp_path / "run" / "eval.csv").read_text().count("\n") == 1 + 3  # header + 3 eval targets
    # The in-training export carries what `pls export` records, so it can be shipped as it is.
    from pls_core.runtime import ModelContract

    recorded = ModelContract.from_onnx(tmp_path / "run" / "eval_policy.onnx").train_config
    assert (recorded["preset"], recorded["step"], recorded["seed"]) == ("tiny", 12, 0)
    out = pls(
        "export", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--out", str(tmp_path / "p.onnx")
    )
    assert "max |onnxruntime - torch|" in out
    stdout = pls(
        "evaluate",
        "--seed-box",
        "--model",
        str(tmp_path / "p.onnx"),
        "--dataset",
        dataset,
        "--rewards",
        "200",
        "--costs",
        "0,20",
        "--episodes",
        "1",
        "--threshold",
        "20",
        "--out",
        str(tmp_path / "report"),
    )
    report = json.loads((tmp_path / "report" / "results.json").read_text())
    assert [s["target_cost"] for s in report["summaries"]] == [0.0, 20.0]
    assert np.isfinite(report["summaries"][0]["normalised_reward"])
    assert np.isfinite(report["summaries"][0]["dsrl_reward"])  # the task has DSRL constants
    # --seed-box: the four corners of the optimiser's Z0 for this model and b, run beside the grid
    from pls_core.evaluate import seed_box_targets

    corners = seed_box_targets(ModelContract.from_onnx(tmp_path / "p.onnx"), 20.0)
    box = report["seed_box"]
    assert [(c["target_reward"], c["target_cost"]) for c in box["corners"]] == corners
    assert len(set(corners)) == 4
    assert all(c["episodes"] == 1 for c in box["corners"])
    assert box["holds"] == all(c["cost_mean"] <= 20.0 for c in box["corners"])
    assert "seed box Z0 at b = 20" in stdout
    assert "seed box Z0" in (tmp_path / "report" / "table.md").read_text()
