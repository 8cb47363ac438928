"""The online optimizer's cost and quality, printed as figures (nothing is asserted).

1. Timing: one update + proposal with ~400 observations on a 100 x 100 grid (|Z| = 10^4), both GPs,
   for the stage-1 rule (widest expander, fake-observation test) and the stage-2 rule (Safe-UCB); median
   over repeats. For scale, one GPyTorch exact prediction over the same grid (what a from-scratch
   posterior per update would cost) with --compare-gpytorch.
2. Study (the full version of test/test_safeopt_synthetic.py): N seeds of synthetic problems drawn from
   the GP prior, every method on the same problems: runs with any unsafe proposal, unsafe proposals,
   final target safe and within 5% of the reward range of the best reachable safe target (J_g <= 0.8 b),
   and the same against the best safe target overall. A misspecification row runs PLS with the paper-literal
   raw-unit cost kernel (variance 1 in raw cost units, i.e. cost_output_scale = 1) on the same problems.
3. Velocity-shaped response (not a GP draw, so the kernel is misspecified): config/optimizer.yaml on a
   deterministic CDT-like J(R, G) for HalfCheetah (reward tracks R up to a plateau at 2750; cost rises
   once R asks for speed beyond ~2450, faster for larger G), 20 noisy episodes per evaluation, 50
   evaluations; variants of the settings the paper leaves open.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_safeopt.py [--seeds 200] [--skip-study]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pls_core.safeopt import EpisodeRecord, OptimizerConfig, build_optimizer  # noqa: E402
from pls_core.safeopt.synthetic import SyntheticProblem, run, synthetic_config  # noqa: E402

TOLERANCE, MARGIN = 0.05, 0.2


def timing(observations: int, repeats: int, compare_gpytorch: bool) -> None:
    config = synthetic_config(grid_resolution=(100, 100), max_exploration_iterations=10_000,
                              max_maximisation_iterations=10_000, seed=1)
    problem = SyntheticProblem.sample(config.replace(grid_resolution=(40, 40)), 1)  # coarse, interpolated
    rng = np.random.default_rng(0)
    optimizer = build_optimizer(config)
    points = optimizer.grid.points
    true_cost = _interpolate(problem, points)
    true_reward = _interpolate(problem, points, reward=True)
    safe_points = np.flatnonzero(true_cost <= 0.8 * config.threshold)
    picks = rng.choice(safe_points, observations + repeats, replace=True)
    model = optimizer.model
    for i in picks[:observations - 1]:
        model.observe(tuple(points[i]), true_reward[i] + rng.normal(), true_cost[i] + 0.5 * rng.normal())
    print(f"state: {model.num_observations + 1} observations, |Z| = {optimizer.grid.size}, "
          f"safe set {int(model.safe.sum())}, candidates wider than zeta "
          f"{int((model.safe & (model.cost_width() > config.effective_zeta)).sum())}")
    update, stage_one, stage_two = [], [], []
    for i in picks[observations - 1:]:
        t0 = time.perf_counter()
        model.observe(tuple(points[i]), true_reward[i] + rng.normal(), true_cost[i] + 0.5 * rng.normal())
        t1 = time.perf_counter()
        index, _ = optimizer._widest_expander()
        t2 = time.perf_counter()
        _, upper = model.reward_bounds()
        safe = np.flatnonzero(model.safe)
        optimizer.pick(safe, upper[safe])
        optimizer.best_safe_index()
        t3 = time.perf_counter()
        update.append(t1 - t0)
        stage_one.append(t2 - t1)
        stage_two.append(t3 - t2)
    ms = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
    print(f"update (both GPs, cost intervals, safe set): {ms(update):7.1f} ms")
    print(f"stage-1 proposal (widest expander):          {ms(stage_one):7.1f} ms")
    print(f"stage-2 proposal (Safe-UCB + best target):   {ms(stage_two):7.1f} ms")
    print(f"update + proposal: stage 1 {ms(update) + ms(stage_one):7.1f} ms, "
          f"stage 2 {ms(update) + ms(stage_two):7.1f} ms  (aim <= 100 ms)")
    if compare_gpytorch:
        import gpytorch

        reference = model.cost_gp.reference_model()
        t0 = time.perf_counter()
        with torch.no_grad(), gpytorch.settings.fast_pred_var(False):
            prediction = reference(torch.as_tensor(points))
            _ = prediction.mean, prediction.variance
        elapsed = 1000 * (time.perf_counter() - t0)
        print(f"for scale: one GPyTorch exact prediction over Z from scratch: {elapsed:.0f} ms")


def _interpolate(problem: SyntheticProblem, points: np.ndarray, reward: bool = False) -> np.ndarray:
    """Bilinear interpolation of a coarse problem onto a finer grid (a smooth stand-in function)."""
    from scipy.interpolate import RegularGridInterpolator

    values = problem.grid.as_image(problem.reward if reward else problem.cost)
    return RegularGridInterpolator((problem.grid.reward_values, problem.grid.cost_values), values)(points)


def study(seeds: int) -> None:
    rows = [("pls", {}), ("gp_ucb", {}), ("random", {}), ("fixed", {"dataset_reward_max": 100.0}),
            ("pls, raw-unit cost kernel", {"cost_output_scale": 1.0, "cost_kernel_variance": 1.0})]
    print(f"\nstudy: {seeds} seeds, threshold 10, 21 x 11 grid, 5 episodes per evaluation, "
          "budget 30 evaluations")
    print(f"{'method':28s} {'runs unsafe':>12s} {'unsafe proposals':>17s} {'within 5% (reach.)':>19s} "
          f"{'within 5% (all safe)':>21s} {'s/run':>6s}")
    for name, overrides in rows:
        method = name.split(",")[0]
        unsafe_runs = unsafe = proposals = within = within_all = 0
        t0 = time.perf_counter()
        for seed in range(seeds):
            truth = synthetic_config(seed=seed)
            problem = SyntheticProblem.sample(truth, seed)
            config = truth.replace(method=method, **overrides)
            history = run(build_optimizer(config), problem,
                          config.max_exploration_iterations + config.max_maximisation_iterations)
            flags = [_unsafe(problem, d.target) for d in history[:-1]]
            unsafe_runs += any(flags)
            unsafe += sum(flags)
            proposals += len(flags)
            final = _true_reward(problem, history[-1].target)
            spread, final_safe = np.ptp(problem.reward), not _unsafe(problem, history[-1].target)
            reachable = problem.best_reachable_reward(MARGIN * truth.threshold)
            within += final_safe and (reachable - final) / spread <= TOLERANCE
            within_all += final_safe and (problem.best_safe_reward - final) / spread <= TOLERANCE
        per_run = (time.perf_counter() - t0) / seeds
        print(f"{name:28s} {unsafe_runs:5d}/{seeds:<6d} {unsafe:7d}/{proposals:<9d} {within / seeds:19.0%} "
              f"{within_all / seeds:21.0%} {per_run:6.2f}")


def velocity_response(r: float, g: float) -> tuple[float, float]:
    """CDT-like expected (reward, cost) returns for target (R, G) on HalfCheetah (threshold 20)."""
    reward = min(r, 2750.0) - 0.002 * max(r - 2750.0, 0.0) ** 2
    cost = max(0.0, (r - 2450.0) / 12.0) * (0.3 + g / 40.0) + 0.1 * g
    return reward, cost


def velocity_study(seeds: int) -> None:
    yaml = Path(__file__).resolve().parent.parent / "config" / "optimizer.yaml"
    rows = [("pls, config/optimizer.yaml", {}), ("pls, R step 50", {"grid_resolution": [21, 41]}),
            ("pls, literal stage-1 stop", {"boundary_fallback": False}),
            ("pls, raw-unit cost kernel", {"cost_output_scale": 1.0}),
            ("pls, the paper's one cost kernel", {"cost_lengthscale_factors": [1.0]}),
            ("fixed (R = data max, G = b)", {"method": "fixed"}), ("gp_ucb", {"method": "gp_ucb"})]
    base = OptimizerConfig.from_yaml(yaml, task="SafetyHalfCheetahVelocity-v1")
    grid_r = np.linspace(*base.reward_range, 201)
    grid_g = np.linspace(*base.cost_range, 161)
    best = max(velocity_response(r, g)[0] for r in grid_r for g in grid_g
               if velocity_response(r, g)[1] <= base.threshold)
    evaluations = base.max_exploration_iterations + base.max_maximisation_iterations
    print(f"\nvelocity-shaped response: {seeds} seeds, b = {base.threshold:g}, {evaluations} evaluations x "
          f"{base.episodes_per_evaluation} episodes, best safe J_r = {best:.0f}")
    print(f"{'variant':30s} {'unsafe evaluations':>19s} {'final J_r (mean, min)':>22s} {'final safe':>11s} "
          f"{'s/run':>6s}")
    for name, overrides in rows:
        unsafe, finals, final_safe = 0, [], 0
        t0 = time.perf_counter()
        for seed in range(seeds):
            config = base.replace(seed=seed, **overrides)
            optimizer, rng = build_optimizer(config), np.random.default_rng([seed, 17])
            while optimizer.iteration < evaluations:
                target = optimizer.current.target
                reward, cost = velocity_response(*target)
                optimizer.report_episode(EpisodeRecord(target, reward + 22.0 * rng.normal(),
                                                       max(0.0, cost + 4.5 * rng.normal()), 1000))
            unsafe += sum(velocity_response(*d.target)[1] > config.threshold for d in optimizer.history[:-1])
            final_reward, final_cost = velocity_response(*optimizer.current.target)
            finals.append(final_reward)
            final_safe += final_cost <= config.threshold
        per_run = (time.perf_counter() - t0) / seeds
        print(f"{name:30s} {unsafe:9d}/{seeds * evaluations:<9d} {np.mean(finals):12.0f}, {min(finals):7.0f} "
              f"{final_safe:6d}/{seeds:<4d} {per_run:6.1f}")


def _unsafe(problem: SyntheticProblem, target: tuple[float, float]) -> bool:
    index = problem.grid.index_of(target)
    cost = problem.cost[index] if index is not None else _interpolate(problem, np.array([target]))[0]
    return bool(cost > problem.config.threshold)


def _true_reward(problem: SyntheticProblem, target: tuple[float, float]) -> float:
    index = problem.grid.index_of(target)
    return float(problem.reward[index] if index is not None else
                 _interpolate(problem, np.array([target]), reward=True)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--velocity-seeds", type=int, default=5)
    parser.add_argument("--observations", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--skip-study", action="store_true")
    parser.add_argument("--compare-gpytorch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    timing(args.observations, args.repeats, args.compare_gpytorch)
    if not args.skip_study:
        study(args.seeds)
        velocity_study(args.velocity_seeds)


if __name__ == "__main__":
    main()
