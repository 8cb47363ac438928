"""PLS settings compared on a surrogate of one task's measured (R, G) response, in seconds instead of hours.

The surrogate is the grid sweep a `pls experiment` run measured (out/<run>/sweep/<task>_b<b>.json): the mean
reward and cost return per swept target, interpolated linearly (extrapolated at the edges), plus Gaussian
episode noise with the sweep's pooled per-episode standard deviations. Each setting runs the real
optimizer (pls_core.safeopt, same budget split as `pls experiment`) on it for several seeds and prints
the final target, its surrogate reward (normalised) and cost (/b), and the unsafe episodes of the search.
This is how the cost lengthscales along R and G and the cost output scale were chosen
(pls_core.safeopt.config.for_task, OptimizerConfig); the surrogate's means carry the sweep's noise (a
few episodes per target), so differences of ~0.02 are not significant, and its one pooled noise level
overstates unsafe episodes where the real cost spread is small.

    python benchmarks/bench_safeopt_surrogate.py out/experiment/sweep/SafetyHalfCheetahVelocity-v1_b40.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from pls_core.experiment.settings import ExperimentSettings
from pls_core.safeopt import OptimizerConfig, build_optimizer
from pls_core.safeopt.records import EpisodeRecord

SETTINGS = {  # name -> OptimizerConfig overrides; a value "b" or "b/2" is that part of the threshold
    "cost l_R 100 (paper reward scale)": {"cost_lengthscale": [100.0, "b/2"]},
    "cost l_R 300": {"cost_lengthscale": [300.0, "b/2"]},
    "cost l_G 5 (the paper's 5)": {"cost_lengthscale": [500.0, 5.0]},
    "cost l_G b": {"cost_lengthscale": [500.0, "b"]},
    "cost output scale b (prior sd b)": {"cost_output_scale": "b"},
    "default (l_R 500, l_G b/2, scale b/2)": {},
    "fixed target (CDT)": {"method": "fixed"},
}


class Surrogate:
    def __init__(self, sweep_path: Path):
        sweep = json.loads(sweep_path.read_text())
        rewards, costs = defaultdict(list), defaultdict(list)
        for ep in sweep["episodes"]:
            key = (ep["target_reward"], ep["target_cost"])
            rewards[key].append(ep["reward_return"])
            costs[key].append(ep["cost_return"])
        r_axis, g_axis = sorted({k[0] for k in rewards}), sorted({k[1] for k in rewards})

        def interpolator(table):
            means = np.array([[np.mean(table[(r, g)]) for g in g_axis] for r in r_axis])
            return RegularGridInterpolator((r_axis, g_axis), means, bounds_error=False, fill_value=None)

        def pooled_sd(table):
            return float(np.sqrt(np.mean([np.var(v, ddof=1) for v in table.values() if len(v) > 1])))

        self.reward, self.cost = interpolator(rewards), interpolator(costs)
        self.reward_sd, self.cost_sd = pooled_sd(rewards), pooled_sd(costs)
        self.reward_range = tuple(sweep["fingerprint"]["reward_range"])

    def normalised(self, target, b: float) -> tuple[float, float]:
        lo, hi = self.reward_range
        return (float(self.reward([target])[0]) - lo) / (hi - lo), float(self.cost([target])[0]) / b


def per_threshold(overrides: dict, b: float) -> dict:
    """Overrides with every "b" / "b/2" value replaced by its value at threshold b."""
    fractions = {"b": 1.0, "b/2": 0.5}

    def value(v):
        return [value(x) for x in v] if isinstance(v, list) else fractions[v] * b if v in fractions else v

    return {key: value(v) for key, v in overrides.items()}


def run(surrogate: Surrogate, config: OptimizerConfig, iterations: int, seed: int) -> dict:
    optimizer = build_optimizer(config)
    rng = np.random.default_rng([seed, 2025])
    unsafe = episode = 0
    while optimizer.iteration < iterations:
        target = optimizer.current.target
        reward = float(surrogate.reward([target])[0]) + rng.normal() * surrogate.reward_sd
        cost = max(0.0, float(surrogate.cost([target])[0]) + rng.normal() * surrogate.cost_sd)
        unsafe += cost > config.threshold
        optimizer.report_episode(EpisodeRecord(tuple(target), reward, cost, 1000, truncated=True,
                                               episode=episode))
        episode += 1
    target = optimizer.current.target
    reward, cost = surrogate.normalised(target, config.threshold)
    return {"target": target, "reward": reward, "cost": cost, "unsafe": unsafe, "episodes": episode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="out/<experiment>/sweep/<task>_b<b>.json (the largest b's: "
                        "its grid covers the smaller b's)")
    parser.add_argument("--thresholds", default="20,40")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-reward-range", default=None, help="lo,hi (default: the task's box)")
    parser.add_argument("--dataset-cost-max", type=float, default=None)
    args = parser.parse_args()
    task = args.sweep.stem.rsplit("_b", 1)[0]
    surrogate = Surrogate(args.sweep)
    defaults = ExperimentSettings()
    explore = math.ceil(defaults.pls_exploration_fraction * defaults.iterations)
    seed_box = tuple(float(v) for v in args.seed_reward_range.split(",")) if args.seed_reward_range else None
    print(f"{task}: surrogate episode sd reward {surrogate.reward_sd:.1f}, cost {surrogate.cost_sd:.2f}; "
          f"{defaults.iterations} evaluations x {defaults.episodes_per_evaluation} episodes, "
          f"{args.seeds} seeds")
    print(f"{'setting':36s} {'b':>4s} {'reward':>11s} {'cost':>11s} {'unsafe':>11s}  final targets (R, G)")
    for b in (float(v) for v in args.thresholds.split(",")):
        for name, overrides in SETTINGS.items():
            results = []
            for seed in range(args.seeds):
                config = OptimizerConfig.for_task(
                    task, b, dataset_reward_min=surrogate.reward_range[0],
                    dataset_reward_max=surrogate.reward_range[1], dataset_cost_max=args.dataset_cost_max,
                    seed_reward_range=seed_box, **{
                        "seed": seed, "episodes_per_evaluation": defaults.episodes_per_evaluation,
                        "max_exploration_iterations": explore,
                        "max_maximisation_iterations": defaults.iterations - explore,
                        **per_threshold(overrides, b)})
                results.append(run(surrogate, config, defaults.iterations, seed))

            def stat(key, results=results):
                values = np.array([r[key] for r in results], float)
                return f"{values.mean():5.2f}±{values.std():4.2f}"

            targets = " ".join(f"({r['target'][0]:.0f},{r['target'][1]:.0f})" for r in results)
            print(f"{name:36s} {b:4g} {stat('reward'):>11s} {stat('cost'):>11s} {stat('unsafe'):>11s}  "
                  f"{targets}", flush=True)


if __name__ == "__main__":
    main()
