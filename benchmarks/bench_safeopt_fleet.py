"""A fleet of N robots tuned by one optimizer (pls_core/safeopt/fleet.py), printed side by side for
N in {1, 2, 4, 8} on the same problems (nothing is asserted; test/test_safeopt_fleet.py asserts a small set).

Per problem and N, the fleet runs as many rounds as one robot's run (synthetic: 20 + 10 stage caps = 30;
stress: 8 + 12 = 20); a round is N evaluations of varpi episodes, one per robot, run side by side.

* rounds to N=1 final: the first round after which the operation choice (Decision.best_target: the
  evaluated safe target with the best measured reward) has a true simple regret <= the N = 1 run's final
  one. Regret = (best reward reachable from Z0 through points with J_g <= 0.8 b - reward there) / reward
  range; a truly unsafe choice never counts. Not reached within the run: counted as rounds + 1 (so the
  mean is a lower bound when "not reached" > 0). "ratio" = mean rounds of N / mean rounds of N = 1.
* unsafe /400 ep: search episodes with cost return > b, per 400 search episodes.
* regret at E episodes: mean regret after E search episodes (N x varpi x rounds = E).
* members verified: batch members whose cost upper bound on the real posterior was <= b when proposed
  (checked on the model, independently of Decision.verified_safe), of all members; unsafe proposals:
  members whose true mean cost exceeded b.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_safeopt_fleet.py [--seeds 0:30] [--stress-seeds 0:10]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pls_core.safeopt.fleet import build_fleet, run_fleet  # noqa: E402
from pls_core.safeopt.stress import FAMILIES, MARGIN, sample_problem, stress_config  # noqa: E402
from pls_core.safeopt.synthetic import SyntheticProblem, synthetic_config  # noqa: E402

SIZES = (1, 2, 4, 8)


class StressAdapter:
    """A stress problem behind synthetic's `episode(target, rng, number)`; time t = the fleet's round."""

    def __init__(self, problem) -> None:
        self.problem, self.config, self.grid = problem, problem.config, problem.grid
        self.reward, self.fleet = problem.reward, None

    def cost_now(self) -> np.ndarray:
        return self.problem.cost_at(self.fleet.round)

    def reference(self, t: int) -> float:
        return self.problem.best_reachable_reward(t)

    def episode(self, target, rng, number):
        return self.problem.episode(self.grid.index_of(target), self.fleet.round, rng, number)


class SyntheticAdapter:
    def __init__(self, problem) -> None:
        self.problem, self.config, self.grid = problem, problem.config, problem.grid
        self.reward, self.fleet = problem.reward, None

    def cost_now(self) -> np.ndarray:
        return self.problem.cost

    def reference(self, t: int) -> float:
        return self.problem.best_reachable_reward(MARGIN * self.config.threshold)

    def episode(self, target, rng, number):
        return self.problem.episode(target, rng, number)


def measure(problem, size: int, rounds: int) -> dict:
    """One fleet run: regret after each round, unsafe episodes, and every member's certificate."""
    config, b = problem.config, problem.config.threshold
    fleet = build_fleet(config, size)
    problem.fleet = fleet
    members = {"n": 0, "verified": 0, "unsafe": 0}
    episodes = {"n": 0, "unsafe": 0}

    def on_round(f) -> None:
        upper, truth = f.optimizer.model.cost_upper, problem.cost_now()
        for d in f.batch:
            i = f.optimizer.grid.index_of(d.target)
            members["n"] += 1
            members["verified"] += int(d.verified_safe and upper[i] <= b)
            members["unsafe"] += int(truth[i] > b)

    original = problem.episode

    def episode(target, rng, number):
        rec = original(target, rng, number)
        episodes["n"] += 1
        episodes["unsafe"] += int(rec.cost_return > b)
        return rec

    problem.episode = episode  # counts this run's episodes only: the class's method is back afterwards
    started = time.perf_counter()
    try:
        history = run_fleet(fleet, problem, rounds, on_round=on_round)
    finally:
        del problem.episode
    spread = float(np.ptp(problem.reward))
    truth = problem.cost_now()
    regret = []
    for r in range(1, rounds + 1):
        d = history[min(r * size, len(history) - size)]  # member 0 of round r: chosen on rounds 0..r-1
        i = problem.grid.index_of(d.best_target)
        regret.append((problem.reference(r) - problem.reward[i]) / spread if truth[i] <= b else math.inf)
    return {"regret": regret, "episodes": episodes, "members": members, "halted": fleet.halted,
            "varpi": config.episodes_per_evaluation, "seconds": time.perf_counter() - started}


def rounds_to(regret: list[float], target: float) -> int:
    """First round (1-based) whose regret is <= target; len + 1 if none."""
    return next((r for r, x in enumerate(regret, 1) if x <= target + 1e-12), len(regret) + 1)


def study(label: str, problems: list, rounds: int, sizes=SIZES, equal_episodes=(40, 80, 120)) -> None:
    runs = {n: [measure(p, n, rounds) for p in problems] for n in sizes}
    reference = [r["regret"][-1] for r in runs[1]]
    base_rounds = [rounds_to(r["regret"], x) for r, x in zip(runs[1], reference, strict=True)]
    print(f"\n{label}: {len(problems)} problems, {rounds} rounds per run")
    head = (f"{'N':>2s} {'rounds to N=1 final':>20s} {'not reached':>11s} {'ratio':>6s} "
            f"{'final regret':>12s} {'unsafe/400 ep':>13s} {'members verified':>16s} {'unsafe props':>12s} "
            + " ".join(f"{f'regret@{e}ep':>11s}" for e in equal_episodes) + f" {'s/run':>6s}")
    print(head)
    for n in sizes:
        reached = [rounds_to(r["regret"], x) for r, x in zip(runs[n], reference, strict=True)]
        missing = sum(k > rounds for k in reached)
        episodes = sum(r["episodes"]["n"] for r in runs[n])
        unsafe = sum(r["episodes"]["unsafe"] for r in runs[n])
        members = sum(r["members"]["n"] for r in runs[n])
        verified = sum(r["members"]["verified"] for r in runs[n])
        props = sum(r["members"]["unsafe"] for r in runs[n])
        finals = [r["regret"][-1] for r in runs[n]]
        at = []
        for e in equal_episodes:
            values = []
            for r in runs[n]:
                k = e / (n * r["varpi"])
                values.append(r["regret"][int(k) - 1] if k.is_integer() and 1 <= k <= rounds else math.nan)
            at.append(float(np.mean(values)))
        ratio = np.mean(reached) / np.mean(base_rounds)
        print(f"{n:2d} {np.mean(reached):12.2f} (med {np.median(reached):4.1f}) "
              f"{missing:5d}/{len(problems):<5d} {ratio:6.2f} {_mean(finals):12.3f} "
              f"{400 * unsafe / episodes:13.2f} {verified:8d}/{members:<7d}"
              f" {props:12d} " + " ".join(f"{x:11.3f}" for x in at)
              + f" {np.mean([r['seconds'] for r in runs[n]]):6.1f}", flush=True)


def _mean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if len(finite) == len(values) else math.inf


def _seeds(text: str) -> range:
    lo, hi = (int(v) for v in text.split(":"))
    return range(lo, hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0:30", help="synthetic problem seeds lo:hi")
    parser.add_argument("--stress-seeds", default="0:10", help="stress problem seeds per family lo:hi")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = tuple(int(v) for v in args.sizes.split(","))
    config = synthetic_config()
    rounds = config.max_exploration_iterations + config.max_maximisation_iterations
    problems = [SyntheticAdapter(SyntheticProblem.sample(synthetic_config(seed=s), s))
                for s in _seeds(args.seeds)]
    study(f"synthetic (seeds {args.seeds})", problems, rounds, sizes)
    stress = stress_config()
    rounds = stress.max_exploration_iterations + stress.max_maximisation_iterations
    for family in filter(None, args.families.split(",")):
        problems = []
        for s in _seeds(args.stress_seeds):
            problem = sample_problem(family, s)
            problem.config = problem.config.replace(seed=s)
            problems.append(StressAdapter(problem))
        study(f"stress {family} (seeds {args.stress_seeds})", problems, rounds, sizes,
              equal_episodes=(160, 320))


if __name__ == "__main__":
    main()
