"""PLS behaviour (phases, safety invariant, determinism, robustness) and the baselines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pls_core.safeopt import (
    EpisodeRecord,
    InvalidEpisodeError,
    OptimizerConfigError,
    Phase,
    StaleEpisodeError,
    build_optimizer,
)
from pls_core.safeopt.synthetic import SyntheticProblem, run, synthetic_config

PHASE_ORDER = [Phase.SEED, Phase.SAFE_EXPLORATION, Phase.REWARD_MAXIMISATION, Phase.OPERATION]


def episode(target, reward=10.0, cost=1.0, length=1000, **kw) -> EpisodeRecord:
    return EpisodeRecord(target, reward, cost, length, **kw)


@pytest.fixture(scope="module")
def pls_run():
    config = synthetic_config(seed=4)
    problem = SyntheticProblem.sample(config, 4)
    optimizer = build_optimizer(config)
    run(optimizer, problem, config.max_exploration_iterations + config.max_maximisation_iterations + 2)
    return config, problem, optimizer


def test_phases_follow_algorithm_one(pls_run):
    config, _, optimizer = pls_run
    phases = [d.phase for d in optimizer.history]
    first = optimizer.grid.index_of(optimizer.history[0].target)
    assert phases[0] is Phase.SEED and optimizer.grid.seed_mask[first]
    ranks = [PHASE_ORDER.index(p) for p in phases]
    assert ranks == sorted(ranks)  # never goes back a stage
    assert Phase.SAFE_EXPLORATION in phases and Phase.REWARD_MAXIMISATION in phases
    assert phases[-1] is Phase.OPERATION
    explored = phases.count(Phase.SEED) + phases.count(Phase.SAFE_EXPLORATION)
    assert explored <= config.max_exploration_iterations
    assert phases.count(Phase.REWARD_MAXIMISATION) <= config.max_maximisation_iterations
    assert [d.iteration for d in optimizer.history] == list(range(len(phases)))
    assert [d.num_observations for d in optimizer.history] == list(range(len(phases)))


def test_every_proposal_is_certified_safe_and_the_safe_set_grows(pls_run):
    config, problem, optimizer = pls_run
    for d in optimizer.history:
        assert d.verified_safe and d.cost_bounds[1] <= config.threshold
        assert d.best_cost_upper <= config.threshold
    sizes = [d.safe_set_size for d in optimizer.history]
    assert sizes[-1] > sizes[0] == int(optimizer.grid.seed_mask.sum())
    safe = optimizer.model.safe
    assert (problem.cost[safe] <= config.threshold).all()  # certified points are truly safe here
    operation = optimizer.history[-1]
    assert operation.target == operation.best_target
    status = optimizer.status()
    assert status["best_reward_lower"] <= operation.best_predicted_reward <= operation.reward_bounds[1]


def test_stage_one_ends_when_no_wide_expander_is_left():
    config = synthetic_config(zeta=1e6)  # every width is below zeta: nothing to explore
    optimizer = build_optimizer(config)
    assert optimizer.current.phase is Phase.REWARD_MAXIMISATION
    assert optimizer.current.candidate_set_size == optimizer.current.safe_set_size
    capped = build_optimizer(synthetic_config(max_exploration_iterations=3, max_maximisation_iterations=2))
    run(capped, SyntheticProblem.sample(capped.config, 0), 6)
    assert [d.phase for d in capped.history] == [Phase.SEED] + [Phase.SAFE_EXPLORATION] * 2 + \
        [Phase.REWARD_MAXIMISATION] * 2 + [Phase.OPERATION] * 2


def test_same_seed_same_run_and_seed_changes_tie_breaks():
    config = synthetic_config(seed=11)
    problem = SyntheticProblem.sample(config, 11)
    first = run(build_optimizer(config), problem, 8)
    second = run(build_optimizer(config), problem, 8)
    assert first == second
    first_targets = {build_optimizer(synthetic_config(seed=s)).current.target for s in range(6)}
    assert len(first_targets) > 1  # all seeds tie at the start; the seeded RNG picks among them


def test_episodes_are_averaged_over_the_evaluation():
    optimizer = build_optimizer(synthetic_config(episodes_per_evaluation=3))
    target = optimizer.current.target
    assert optimizer.report_episode(episode(target, 10.0, 1.0)) is None
    assert optimizer.report_episode(episode(target, 20.0, 2.0)) is None
    assert optimizer.status()["episodes_at_target"] == 2
    decision = optimizer.report_episode(episode(target, 30.0, 3.0))
    assert decision is optimizer.current and decision.iteration == 1 and decision.num_observations == 1
    assert optimizer.evaluations == [(target, 20.0, 2.0)]


def test_stale_and_invalid_episodes_are_rejected_and_not_counted():
    optimizer = build_optimizer(synthetic_config())
    target = optimizer.current.target
    stale = (target[0] + 5.0, target[1])
    with pytest.raises(StaleEpisodeError, match="current target") as info:
        optimizer.report_episode(episode(stale))
    assert isinstance(info.value, ValueError)
    cases = [
        (episode(target, reward=math.nan), "reward_return is nan.*not finite"),
        (episode(target, cost=math.inf), "cost_return is inf"),
        (episode(target, cost=-0.5 - 1e6), "cost_return .* outside"),
        (episode(target, length=0), "length must be an integer >= 1"),
        (episode(target, length=5000), "exceeds max_episode_length"),
        (episode(target, reward="12"), "reward_return must be a number"),
        (EpisodeRecord((target[0],), 1.0, 1.0, 10), "target must be a pair"),
    ]
    for rec, message in cases:
        with pytest.raises(InvalidEpisodeError, match=message):
            optimizer.report_episode(rec)
    optimizer.report_episode(episode(target, episode=7))
    with pytest.raises(InvalidEpisodeError, match="episode 7 was already recorded"):
        optimizer.report_episode(episode(target, episode=7))
    status = optimizer.status()
    assert status["episodes_at_target"] == 1 and status["episodes_total"] == 1
    assert status["episodes_rejected"] == len(cases) + 2 and "already recorded" in status["last_rejection"]


def test_target_rounded_through_float32_is_accepted():
    optimizer = build_optimizer(synthetic_config(reward_range=(0.0, 100.3), seed_reward_range=(0.0, 15.1)))
    target = optimizer.current.target
    rounded = tuple(float(np.float32(v)) for v in target)
    optimizer.report_episode(episode(rounded))
    assert optimizer.status()["episodes_at_target"] == 1


def test_cost_limits_follow_episode_length_by_default():
    optimizer = build_optimizer(synthetic_config(cost_return_limits=(0.0, None), max_episode_length=50))
    with pytest.raises(InvalidEpisodeError, match=r"outside \[0.0, 50.0\]"):
        optimizer.report_episode(episode(optimizer.current.target, cost=51.0, length=50))


def test_gp_numerical_failure_keeps_last_verified_safe_target():
    """Noise-free GPs on a 2x2 grid of seeds: once every point is observed, Safe-UCB repeats a point and the
    exact-interpolation Cholesky breaks down. The optimizer must keep its last safe target and say why."""
    config = synthetic_config(grid_resolution=(2, 2), reward_range=(0.0, 10.0), cost_range=(0.0, 4.0),
                              seed_reward_range=(0.0, 10.0), seed_cost_range=(0.0, 4.0),
                              reward_noise_variance=0.0, cost_noise_variance=0.0, episodes_per_evaluation=1)
    optimizer = build_optimizer(config)
    problem = SyntheticProblem.sample(config, 0)
    run(optimizer, problem, 8)
    failures = [i for i, d in enumerate(optimizer.history) if d.note]
    assert failures, "expected a GP failure on the repeated noise-free observation"
    first = failures[0]
    kept, before = optimizer.history[first], optimizer.history[first - 1]
    assert "GP numerical failure" in kept.note and "kept the last verified safe target" in kept.note
    assert kept.target == before.target and kept.verified_safe
    assert kept.num_observations == before.num_observations  # the failed update was not applied
    status = optimizer.status()
    assert status["gp_failures"] >= 1 and "Cholesky" in status["last_gp_error"]


def test_contradicting_data_removes_a_point_from_the_safe_set(pls_run):
    config, problem, _ = pls_run
    optimizer = build_optimizer(config)
    run(optimizer, problem, 6)
    index = optimizer.grid.index_of(optimizer.current.target)
    assert optimizer.model.safe[index] and not optimizer.grid.seed_mask[index]
    for _ in range(config.episodes_per_evaluation):
        optimizer.report_episode(episode(optimizer.current.target, cost=2 * config.threshold))
    assert not optimizer.model.safe[index]
    assert optimizer.status()["confidence_conflicts"] >= 1
    assert optimizer.current.target != optimizer.grid.target(index) and optimizer.current.verified_safe


def test_each_evaluation_carries_its_measured_noise_with_the_configured_floor():
    """An evaluation whose episodes spread widely must not be believed as precisely as the configured noise
    says: its GP noise is the sample variance over the episode count, and its cost bound is wider."""
    config = synthetic_config(seed=4)
    n, b = config.episodes_per_evaluation, config.threshold
    scale = config.effective_cost_output_scale  # the cost GP works in units of this scale
    spread = [0.2 * b if k % 2 else 0.6 * b for k in range(n)]  # mean 0.4 b, per-episode sd ~0.2 b
    fixed = build_optimizer(synthetic_config(seed=4, noise_from_episodes=False))
    measured = build_optimizer(config)
    target = measured.current.target
    for optimizer in (fixed, measured):
        for cost in spread:
            optimizer.report_episode(episode(target, cost=cost))
    expected = np.var(spread, ddof=1) / n / scale ** 2
    assert expected > config.cost_noise_variance / scale ** 2
    assert measured.model.cost_gp.train_noise[0] == pytest.approx(expected)
    assert fixed.model.cost_gp.train_noise[0] == pytest.approx(config.cost_noise_variance / scale ** 2)
    index = measured.grid.index_of(target)
    assert measured.model.cost_omega()[1][index] > fixed.model.cost_omega()[1][index]
    # A tight evaluation is floored at the configured noise, never believed more than configured.
    tight = build_optimizer(config)
    for _ in range(n):
        tight.report_episode(episode(tight.current.target, cost=0.4 * b))
    assert tight.model.cost_gp.train_noise[0] == pytest.approx(config.cost_noise_variance / scale ** 2)


def test_episode_cost_margin_observes_an_upper_level_of_one_episodes_cost():
    """With episode_cost_margin_sd = k the cost GP sees mean + k sd of the evaluation's episodes, with that
    statistic's noise, so a target whose mean is safe but whose episodes scatter past b gets a higher cost
    bound; k = 0 is the paper's mean."""
    b = synthetic_config().threshold
    n = synthetic_config().episodes_per_evaluation
    costs = [0.1 * b] * (n - 2) + [1.5 * b, 1.5 * b]  # mean well below b, two episodes above it
    runs = {}
    for k in (0.0, 1.645):
        optimizer = build_optimizer(synthetic_config(seed=4, episode_cost_margin_sd=k))
        target = optimizer.current.target
        for cost in costs:
            optimizer.report_episode(episode(target, cost=cost))
        runs[k] = optimizer
    mean, sd = float(np.mean(costs)), float(np.std(costs, ddof=1))
    assert runs[0.0].evaluations[0][2] == pytest.approx(mean)
    assert runs[1.645].evaluations[0][2] == pytest.approx(mean + 1.645 * sd)
    scale = runs[0.0].config.effective_cost_output_scale
    expected = sd ** 2 * (1 / n + 1.645 ** 2 / (2 * (n - 1))) / scale ** 2
    assert runs[1.645].model.cost_gp.train_noise[0] == pytest.approx(expected)
    index = runs[0.0].grid.index_of(runs[0.0].evaluations[0][0])
    assert runs[1.645].model.cost_omega()[1][index] > runs[0.0].model.cost_omega()[1][index] + 1.0
    assert runs[1.645].model.safe.sum() <= runs[0.0].model.safe.sum()
    with pytest.raises(OptimizerConfigError, match="episode_cost_margin_sd must be a number >= 0"):
        synthetic_config(episode_cost_margin_sd=-1.0)


def test_a_seed_box_the_data_refute_halts_pls_and_no_baseline_breaks():
    """Assumption 7 (Z0 safe) is checked, not trusted forever: one evaluation with a cost far above b at a
    seed refutes it, PLS halts (unverified, no proposal) and refuses further episodes."""
    config = synthetic_config(seed=3)
    optimizer = build_optimizer(config)
    decisions = []
    while optimizer.current.phase is not Phase.HALTED and len(decisions) < 30:
        target = optimizer.current.target
        assert optimizer.grid.seed_mask[optimizer.grid.index_of(target)] and optimizer.current.verified_safe
        for _ in range(config.episodes_per_evaluation):
            decision = optimizer.report_episode(episode(target, cost=8 * config.threshold))
        decisions.append(decision)
    halted = optimizer.current
    assert len(decisions) == 1  # the first evaluation refutes its seed: no second seed is tried
    assert halted.phase is Phase.HALTED and not halted.verified_safe and halted.safe_set_size == 0
    assert "refute" in halted.note and optimizer.model.refuted_seeds.any()
    with pytest.raises(StaleEpisodeError, match="halted"):
        optimizer.report_episode(episode(halted.target))
    # Costs just under b at the seeds do not refute anything.
    calm = build_optimizer(config)
    for _ in range(3 * config.episodes_per_evaluation):
        calm.report_episode(episode(calm.current.target, cost=0.9 * config.threshold))
    assert calm.current.phase is not Phase.HALTED and not calm.model.refuted_seeds.any()
    for method in ("fixed", "gp_ucb", "random"):  # no safety logic, but an empty safe set must not crash
        baseline = build_optimizer(synthetic_config(method=method, seed=3))
        for _ in range(4 * config.episodes_per_evaluation):
            baseline.report_episode(episode(baseline.current.target, cost=8 * config.threshold))
        assert baseline.current.phase is not Phase.HALTED


def test_lipschitz_variant_grows_only_by_the_lipschitz_rule():
    config = synthetic_config(lipschitz=0.05, seed=2)
    optimizer = build_optimizer(config)
    run(optimizer, SyntheticProblem.sample(config, 2), 10)
    model, points = optimizer.model, optimizer.grid.points
    assert all(d.verified_safe for d in optimizer.history)
    assert any(d.cost_bounds[1] > config.threshold for d in optimizer.history)  # safe through a neighbour
    safe = np.flatnonzero(model.safe)
    assert len(safe) > int(optimizer.grid.seed_mask.sum())
    for z in safe:
        reach = model.cost_upper[safe] + config.lipschitz * np.linalg.norm(points[safe] - points[z], axis=1)
        assert reach.min() <= config.threshold


def test_fixed_baseline_runs_cdt_target_forever():
    config = synthetic_config(method="fixed", dataset_reward_max=97.3, episodes_per_evaluation=2)
    optimizer = build_optimizer(config)
    for _ in range(6):
        optimizer.report_episode(episode(optimizer.current.target))
    assert {d.target for d in optimizer.history} == {(97.3, config.threshold)}
    assert {d.phase for d in optimizer.history} == {Phase.OPERATION}
    assert optimizer.current.num_observations == 3
    assert build_optimizer(synthetic_config(method="fixed")).current.target == (100.0, config.threshold)


def test_gp_ucb_ignores_cost_and_random_search_is_reproducible():
    config = synthetic_config(method="gp_ucb", seed=1)
    problem = SyntheticProblem.sample(config, 1)
    ucb = build_optimizer(config)
    run(ucb, problem, 12)
    assert any(not problem.is_safe(d.target) for d in ucb.history)
    assert not all(d.verified_safe for d in ucb.history)
    random_config = synthetic_config(method="random", seed=1)
    searcher = build_optimizer(random_config)
    first = run(searcher, problem, 31)
    assert first == run(build_optimizer(random_config), problem, 31)
    assert len({d.target for d in first[:30]}) > 20 and first[-1].phase is Phase.OPERATION
    feasible = [e for e in searcher.evaluations[:30] if e[2] <= random_config.threshold]
    assert feasible and first[-1].target == max(feasible, key=lambda e: e[1])[0]


def test_fitted_hyperparameters_change_the_kernel_and_keep_the_invariant():
    config = synthetic_config(fit_hyperparameters=True, fit_iterations=5, seed=3)
    optimizer = build_optimizer(config)
    run(optimizer, SyntheticProblem.sample(config, 3), 6)
    assert optimizer.model.cost_gp.lengthscale != config.cost_lengthscale
    assert all(d.verified_safe for d in optimizer.history)


def test_episodes_may_be_reported_from_another_thread(tmp_path):
    import threading

    optimizer = build_optimizer(synthetic_config(episodes_per_evaluation=2), tmp_path / "run.sqlite")
    decisions = []
    worker = threading.Thread(target=lambda: decisions.extend(
        optimizer.report_episode(episode(optimizer.current.target)) for _ in range(2)))
    worker.start()
    worker.join()
    assert decisions[0] is None and decisions[1].iteration == 1


def test_operation_target_is_an_evaluated_target_not_a_prior_guess():
    """A policy that under-delivers by 700 everywhere: unexplored safe targets keep the optimistic prior
    (J = z) and so a high lower bound, but the target held for operation must be one that was run."""
    from pls_core.safeopt import EpisodeRecord, OptimizerConfig, build_optimizer

    repo = Path(__file__).resolve().parent.parent
    config = OptimizerConfig.from_yaml(repo / "config" / "optimizer.yaml",
                                       task="SafetyHalfCheetahVelocity-v1", episodes_per_evaluation=1)
    optimizer = build_optimizer(config)
    evaluated = []
    for _ in range(4):
        target = optimizer.current.target
        evaluated.append(target)
        optimizer.report_episode(EpisodeRecord(target, target[0] - 700.0, 0.5 * target[1], 1000))
    assert optimizer.current.best_target in evaluated


@pytest.mark.parametrize("margin", [2.0, None])
def test_operation_skips_a_target_whose_own_costs_do_not_clear_b(margin):
    """A seed target is safe by assumption whatever it measured; with the margin, operation holds the
    target whose measured cost clears b, even at a lower reward (OptimizerConfig's "Operation" note)."""
    config = synthetic_config(seed=1, operation_cost_margin_se=margin)
    optimizer = build_optimizer(config)
    b, k = config.threshold, config.episodes_per_evaluation
    seed_target = optimizer.current.target
    # Mean cost 0.76 b (not refuted: its lower bound stays below b) but a spread of ~b per episode.
    for cost in [0.0, 0.0, 1.9 * b, 0.0, 1.9 * b][:k]:
        optimizer.report_episode(episode(seed_target, reward=90.0, cost=cost))
    other = optimizer.current.target
    assert other != seed_target and optimizer.current.phase is not Phase.HALTED
    for _ in range(k):
        optimizer.report_episode(episode(other, reward=60.0, cost=0.1 * b))
    grid = optimizer.grid
    assert optimizer.model.safe[grid.index_of(seed_target)] and optimizer.model.safe[grid.index_of(other)]
    held = grid.target(optimizer.best_safe_index())
    assert held == (other if margin is not None else seed_target)
    assert optimizer.operation_note(grid.index_of(held)) == ""


def test_operation_says_so_when_no_measured_cost_clears_b():
    config = synthetic_config(seed=1, max_exploration_iterations=1, max_maximisation_iterations=0)
    optimizer = build_optimizer(config)
    target = optimizer.current.target
    for cost in [0.0, 0.0, 1.9, 0.0, 1.9][:config.episodes_per_evaluation]:
        optimizer.report_episode(episode(target, reward=90.0, cost=cost * config.threshold))
    assert optimizer.current.phase is Phase.OPERATION and optimizer.current.target == target
    assert "measured cost clears b" in optimizer.current.note
