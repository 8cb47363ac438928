"""Configuration loading and validation, the shipped YAML, task derivation and the record types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pls_core.safeopt import (
    Decision,
    EpisodeRecord,
    OptimizerConfig,
    OptimizerConfigError,
    Phase,
    build_optimizer,
)
from pls_core.safeopt.grid import TargetGrid
from pls_core.safeopt.synthetic import synthetic_config

YAML = Path(__file__).resolve().parent.parent / "config" / "optimizer.yaml"


TASK = "SafetyHalfCheetahVelocity-v1"
DEMO_YAML = YAML.with_name("optimizer_demo.yaml")


def test_shipped_yaml_loads_and_builds_a_pls_optimizer():
    config = OptimizerConfig.from_yaml(YAML, task=TASK)
    assert (config.task, config.method, config.threshold) == (TASK, "pls", 20.0)
    assert config.cost_lengthscale == (500.0, 10.0) and config.reward_lengthscale == (100.0, 10.0)
    optimizer = build_optimizer(config)
    assert optimizer.current.phase is Phase.SEED and optimizer.current.verified_safe
    r, g = optimizer.current.target
    assert 2000.0 <= r <= 2300.0 and 0.0 <= g <= 5.0


@pytest.mark.parametrize("b", [20.0, 40.0])
def test_yaml_is_the_task_defaults_plus_its_own_keys(b, tmp_path):
    """One source of truth: a YAML holds overrides only, every other key follows task, b and the model."""
    assert OptimizerConfig.from_yaml(YAML, task=TASK, threshold=b) == OptimizerConfig.for_task(TASK, b)
    path = tmp_path / "overrides.yaml"
    path.write_text("zeta: 3.0\nepisodes_per_evaluation: 5\n")
    assert OptimizerConfig.from_yaml(path, task=TASK, threshold=b) == \
        OptimizerConfig.for_task(TASK, b, zeta=3.0, episodes_per_evaluation=5)
    stats = {"reward_return_min": 10.0, "reward_return_max": 2600.0, "cost_return_max": 120.0,
             "seed_reward_range": [2100.0, 2200.0]}
    assert OptimizerConfig.from_yaml(path, task=TASK, threshold=b, dataset_stats=stats) == \
        OptimizerConfig.for_model_stats(TASK, stats, b, zeta=3.0, episodes_per_evaluation=5)
    demo = OptimizerConfig.from_yaml(DEMO_YAML, task=TASK, threshold=b)
    assert demo.cost_range == (0.0, 2 * b) and demo.cost_lengthscale == (500.0, b / 2)  # b-relative


def test_shipped_yamls_hold_only_overrides():
    import yaml

    shipped, demo = (yaml.safe_load(p.read_text()) or {} for p in (YAML, DEMO_YAML))
    for data in (shipped, demo):
        assert not [k for k in data if k.startswith("dataset_")]  # no DSRL (or any) dataset statistic
        assert not {"threshold", "reward_range", "cost_range", "cost_lengthscale", "zeta"} & set(data)
    assert not set(shipped) & set(demo)  # the demo does not repeat the default file's keys


def test_yaml_for_another_task_or_no_task_is_refused(tmp_path):
    path = tmp_path / "hopper.yaml"
    path.write_text("task: SafetyHopperVelocity-v1\n")
    with pytest.raises(OptimizerConfigError, match="is for task 'SafetyHopperVelocity-v1'"):
        OptimizerConfig.from_yaml(path, task=TASK)
    with pytest.raises(OptimizerConfigError, match="no task named"):
        OptimizerConfig.from_yaml(YAML)


def test_seed_box_commanding_more_cost_than_b_is_refused():
    with pytest.raises(OptimizerConfigError, match=r"seed_cost_range \[30.0, 35.0\] reaches above .* b = 20"):
        OptimizerConfig.for_task(TASK, 20.0, cost_range=(0.0, 40.0), seed_cost_range=(30.0, 35.0))
    assert OptimizerConfig.for_task(TASK, 20.0, seed_cost_range=(0.0, 20.0)).seed_cost_range == (0.0, 20.0)


def test_cost_lengthscale_along_g_scales_with_the_threshold():
    """The cost's prior slope along G (prior sd b/2 over l_G) is the same at every b (config.for_task)."""
    slopes = []
    for b in (10.0, 20.0, 40.0):
        config = OptimizerConfig.for_task("SafetyHalfCheetahVelocity-v1", b)
        l_r, l_g = config.cost_lengthscale
        assert l_r == 500.0 and l_g == b / 2
        assert config.reward_lengthscale == (100.0, b / 2)  # the reward GP sees G on the cost's scale
        slopes.append(config.effective_cost_output_scale / l_g)
    assert slopes == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("task", ["SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1",
                                  "SafetyWalker2dVelocity-v1", "SafetyAntVelocity-v1"])
@pytest.mark.parametrize("b", [5.0, 20.0, 40.0])
def test_default_cost_prior_certifies_only_the_seed_box(task, b):
    """The cost output scale (b/2) may shrink only while the prior alone still leaves every untested
    target's upper bound above b: before any data, the safe set is exactly Z0."""
    from pls_core.safeopt.confidence import ConfidenceModel

    config = OptimizerConfig.for_task(task, b)
    assert config.effective_cost_output_scale == b / 2
    grid = TargetGrid.from_config(config)
    model = ConfidenceModel(config, grid)
    assert np.array_equal(model.safe, grid.seed_mask)
    _, upper = model.cost_omega()
    assert upper[~grid.seed_mask].min() > 2 * b  # alpha_1 * b/2 alone is more than twice the threshold


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(YAML.read_text() + "\nepisodes_per_evalution: 5\n")
    expected = r"episodes_per_evalution.*did you mean 'episodes_per_evaluation'"
    with pytest.raises(OptimizerConfigError, match=expected):
        OptimizerConfig.from_yaml(path, task=TASK)


@pytest.mark.parametrize(("change", "message"), [
    ({"delta": 1.5}, "delta must be in"),
    ({"grid_resolution": [1, 5]}, "grid_resolution"),
    ({"seed_reward_range": [90.0, 150.0]}, "seed box"),
    ({"method": "safeopt"}, "method must be one of"),
    ({"cost_noise_variance": -1.0}, "cost_noise_variance"),
    ({"reward_noise_variance": True}, r"reward_noise_variance must be a number >= 0 \(0: noiseless\)"),
    ({"lipschitz": True}, "lipschitz must be a number >= 0"),  # YAML `true` is no number
    ({"max_episode_length": True}, "max_episode_length must be an integer >= 1"),
    ({"reward_lengthscale": [1.0, 2.0, 3.0]}, "reward_lengthscale"),
    ({"cost_prior_mean": "mean"}, "cost_prior_mean"),
    ({"threshold": float("nan")}, "threshold"),
    ({"operation_cost_margin_se": -1.0}, "operation_cost_margin_se"),
    ({"reward_trend_slope_sd": -0.5}, "reward_trend_slope_sd"),
    ({"cost_prior_mean": "evidence"}, "cost_prior_mean must be one of target, zero,"),  # the certificate
    ({"reward_prior_mean": "evidence", "reward_trend_slope_sd": 1.0}, "do not combine"),
])
def test_invalid_values_are_rejected_with_the_key_named(change, message):
    with pytest.raises(OptimizerConfigError, match=message):
        synthetic_config(**change)


def test_missing_required_key_points_to_for_task():
    with pytest.raises(OptimizerConfigError, match="missing required.*threshold.*for_task"):
        OptimizerConfig.from_dict({k: v for k, v in synthetic_config().to_dict().items() if k != "threshold"})


def test_seed_box_between_grid_points_is_an_error():
    with pytest.raises(OptimizerConfigError, match="contains no grid point"):
        TargetGrid.from_config(synthetic_config(seed_reward_range=(1.0, 2.0), seed_cost_range=(0.5, 1.0)))


def test_for_task_fills_from_task_spec_and_dataset_stats():
    config = OptimizerConfig.for_task("SafetyHopperVelocity-v1", 40.0, dataset_reward_min=37.0,
                                      dataset_reward_max=1911.4, dataset_cost_max=60.0)
    assert config.seed_reward_range == (1200.0, 1500.0) and config.seed_cost_range == (0.0, 5.0)
    assert config.reward_range == (1200.0, 2000.0) and config.cost_range == (0.0, 60.0)
    assert config.grid_resolution == (33, 61) and config.threshold == 40.0
    assert config.max_episode_length == 1000 and config.dataset_reward_max == 1911.4
    assert OptimizerConfig.for_task("SafetyHopperVelocity-v1").threshold == 20.0
    with pytest.raises(KeyError, match="known tasks"):
        OptimizerConfig.for_task("NoSuchTask-v0")


def test_config_round_trips_through_dict():
    config = synthetic_config(lipschitz=0.5)
    assert OptimizerConfig.from_dict(config.to_dict()) == config


def test_phase_codes_are_stable():
    assert [p.code for p in Phase] == [0, 1, 2, 3, 4]
    assert [p.value for p in Phase] == ["seed", "safe_exploration", "reward_maximisation", "operation",
                                        "halted"]
    assert all(Phase.from_code(p.code) is p for p in Phase)
    with pytest.raises(ValueError, match="unknown phase code 7"):
        Phase.from_code(7)


def test_records_round_trip_through_dict():
    rec = EpisodeRecord((1.0, 2.0), 3.5, 0.0, 10, truncated=True, episode=4, reason="time limit")
    assert EpisodeRecord.from_dict(rec.to_dict()) == rec
    decision = build_optimizer(synthetic_config()).current
    assert Decision.from_dict(decision.to_dict()) == decision
    assert decision.to_dict()["phase"] == "seed"


def test_seed_box_from_dataset_returns_covers_only_demonstrated_safe_returns():
    from pls_core.safeopt.config import seed_reward_range_from_returns

    rewards = np.array([100.0, 200.0, 300.0, 400.0, 500.0, 900.0, 950.0])
    costs = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 80.0, 90.0])  # the high returns are the unsafe ones
    lo, hi = seed_reward_range_from_returns(rewards, costs, seed_cost_max=5.0)
    assert (lo, hi) == (300.0, 400.0)  # median and upper quartile of the five safe episodes
    config = OptimizerConfig.for_task("SafetyHopperVelocity-v1", 20.0, seed_reward_range=(lo, hi))
    assert config.seed_reward_range == (300.0, 400.0) and config.reward_range[0] == 300.0
    with pytest.raises(OptimizerConfigError, match="2 episodes with cost return <= 1"):
        seed_reward_range_from_returns(rewards, costs, seed_cost_max=1.0)


def test_seed_box_leaves_out_episodes_that_ended_in_a_fall():
    from pls_core.safeopt.config import seed_reward_range_from_returns

    rewards = np.array([100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0])
    costs = np.zeros(9)
    fell = np.array([True, True, True, True, False, False, False, False, False])  # the low returns fell
    assert seed_reward_range_from_returns(rewards, costs, 5.0) == (500.0, 700.0)
    assert seed_reward_range_from_returns(rewards, costs, 5.0, terminated=fell) == (700.0, 800.0)
    with pytest.raises(OptimizerConfigError, match="4 episodes that ran to their time limit"):
        seed_reward_range_from_returns(rewards, costs, 5.0, terminated=~fell)


def test_settings_records_errors_and_grid_import_without_torch():
    """The ROS nodes and the CLI read settings and records without paying for torch / GPyTorch."""
    import subprocess
    import sys

    code = ("import sys, pls_core.safeopt.config, pls_core.safeopt.records, pls_core.safeopt.errors, "
            "pls_core.safeopt.grid, pls_core.experiment.settings; "
            "from pls_core.safeopt import OptimizerConfig, Phase, EpisodeRecord; "
            "loaded = [m for m in ('torch', 'gpytorch') if m in sys.modules]; "
            "assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
