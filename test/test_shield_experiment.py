"""`pls experiment --shield`: shielded rollouts, their counts, refusal for other tasks, report columns."""

import pytest

from pls_core.experiment.loop import RunKey, RunRecord
from pls_core.experiment.report import aggregate, run_row
from pls_core.experiment.rollouts import Rollouts
from pls_core.experiment.settings import ExperimentError, ExperimentSettings
from pls_core.runtime import ModelContract, shipped_model_path

CHEETAH = "SafetyHalfCheetahVelocity-v1"


def test_shielded_episode_has_no_step_with_cost_and_counts_are_recorded():
    """With the env's own model the shield is exact: every applied action was certified (or is the
    backup's next step of a certified rollout), so no step may cost, at an aggressive target too."""
    path = shipped_model_path(CHEETAH)
    stats = ModelContract.from_onnx(path).dataset_stats
    job = (float(stats["reward_return_max"]) * 1.2, 80.0)
    plain = Rollouts(path, CHEETAH, num_envs=1)
    shielded = Rollouts(path, CHEETAH, num_envs=1, shield=True)
    try:
        [free] = plain.run_jobs([job], seed=0)
        assert plain.last_counts[0]["interventions"] == 0
        assert plain.last_counts[0]["cost_steps"] == free.cost_return  # velocity cost is 0/1 per step
        [safe] = shielded.run_jobs([job], seed=0)
        assert safe.cost_return == 0 and shielded.last_counts[0]["cost_steps"] == 0
        assert len(shielded.last_counts) == 1 and shielded.last_counts[0]["interventions"] >= 0
    finally:
        plain.close()
        shielded.close()


def test_shield_on_a_task_without_a_speed_limit_is_refused_with_the_fix():
    with pytest.raises(ExperimentError, match="velocity tasks only"):
        ExperimentSettings(tasks=("SafetyPointGoal1-v0",), shield=True)


def _record(episodes, shield):
    key = RunKey(CHEETAH, 20.0, "pls", 0)
    fingerprint = {"shield": {"backup": "brake"}} if shield else {}
    final = {"target": [2000.0, 5.0], "reward_mean": 2000.0, "cost_mean": 3.0, "episodes": []}
    return RunRecord(key, fingerprint, [], episodes, final, 1.0)


def test_report_rows_carry_costly_steps_and_interventions_per_episode():
    episodes = [{"cost_return": 4.0, "unsafe": False, "cost_steps": 4, "interventions": 10},
                {"cost_return": 30.0, "unsafe": True, "cost_steps": 30, "interventions": 2}]
    row = run_row(_record(episodes, True), (0.0, 3000.0), None)
    assert row["shield"] and row["cost_steps"] == 34 and row["interventions_per_episode"] == 6.0
    old = run_row(_record([{"cost_return": 1.0, "unsafe": False}], False), (0.0, 3000.0), None)
    assert old["cost_steps"] is None and old["interventions_per_episode"] is None
    [summary] = aggregate([row])
    assert summary["cost_steps_mean"] == 34 and summary["interventions_per_episode_mean"] == 6.0


def test_cli_shield_on_a_navigation_task_is_one_line_and_exit_2(tmp_path):
    from typer.testing import CliRunner

    from pls_core.cli import app

    result = CliRunner().invoke(app, ["experiment", "--out", str(tmp_path / "out"), "--tasks",
                                      "SafetyPointGoal1-v0", "--shield", "--no-progress"])
    assert result.exit_code == 2
    assert "velocity tasks only" in result.output and "Traceback" not in result.output
