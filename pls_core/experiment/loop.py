"""One optimizer run in-process: the supervisor's loop, with the ROS graph replaced by a batched rollout.

Each iteration: the optimizer's current target -> `episodes_per_evaluation` episodes at it, stepped as one
batch -> every episode reported to the optimizer (which updates its GPs after the last) -> next target.
After `iterations` evaluations the run's final target is the method's operation choice (the current
target once in operation, else `best_target`: PLS's highest reward lower bound in the safe set), run for
`episodes_per_evaluation` fresh episodes. Everything is recorded in raw return units.
A PLS run that halts (its data refute the seed box, so no target is verified safe) stops there: no more
search episodes and no final evaluation; the robot would be holding its safe action.
With a fleet (`pls experiment --fleet N`), each iteration is a round: N targets (safeopt/fleet.py), each
run for `episodes_per_evaluation` episodes and reported for the robot that ran it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pls_core.experiment.rollouts import Rollouts
from pls_core.experiment.settings import FINAL_OFFSET, SEED_STRIDE


@dataclass(frozen=True)
class RunKey:
    task: str
    threshold: float
    method: str
    seed: int
    fleet: int = 1  # robots tuned together (safeopt/fleet.py); 1: one robot, the paper's setting

    def path(self, out_dir: Path) -> Path:
        method = self.method if self.fleet == 1 else f"{self.method}-fleet{self.fleet}"
        folder = Path(out_dir) / "runs" / self.task / f"b{self.threshold:g}" / method
        return folder / f"seed{self.seed}.json"

    def label(self) -> str:
        fleet = "" if self.fleet == 1 else f" fleet {self.fleet}"
        return f"{self.task} b={self.threshold:g} {self.method}{fleet} seed {self.seed}"


@dataclass
class RunRecord:
    """Everything one run did. `fingerprint` is what the result depends on (optimizer config, budget,
    model hash): a stored run is reused only when it matches exactly."""

    key: RunKey
    fingerprint: dict
    iterations: list[dict]  # per evaluation: the decision that chose the target, and what was observed
    episodes: list[dict]  # every search episode, in order
    final: dict  # the operation target, why it was chosen, its fresh episodes and their means
    wall_time_s: float

    @property
    def unsafe_episodes(self) -> int:
        """Search episodes whose cost return exceeded the threshold b (the paper's Table 8 count)."""
        return sum(e["unsafe"] for e in self.episodes)

    def save(self, path: Path) -> None:
        """Written to a temporary file and renamed, so a killed process never leaves a half-written run."""
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(asdict(self), indent=1))
        os.replace(scratch, path)

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        d = json.loads(Path(path).read_text())
        return cls(**{**d, "key": RunKey(**d["key"])})


def run_optimizer(rollouts: Rollouts, config, key: RunKey, iterations: int, fingerprint: dict,
                  on_iteration: Callable[[dict], None] | None = None) -> RunRecord:
    """Run `iterations` evaluations of `config`'s method, then evaluate its final target. With a fleet
    (`key.fleet` > 1), `iterations` rounds of one evaluation per robot (`run_fleet_optimizer`)."""
    from pls_core.safeopt import EpisodeRecord, Phase, build_optimizer

    if key.fleet > 1:
        return run_fleet_optimizer(rollouts, config, key, iterations, fingerprint, on_iteration)
    started = time.perf_counter()
    optimizer = build_optimizer(config)
    varpi = config.episodes_per_evaluation
    b = config.threshold
    iteration_rows, episode_rows = [], []
    for iteration in range(iterations):
        decision = optimizer.current
        if decision.phase == Phase.HALTED:
            break
        first = iteration * varpi
        results = rollouts.run_jobs([decision.target] * varpi, seed=key.seed * SEED_STRIDE + first)
        for offset, result in enumerate(results):
            optimizer.report_episode(EpisodeRecord(decision.target, result.reward_return, result.cost_return,
                                                   result.length, episode=first + offset))
            episode_rows.append({"iteration": iteration, **asdict(result), **rollouts.last_counts[offset],
                                 "unsafe": result.cost_return > b})
        row = {"iteration": iteration, "phase": decision.phase.value, "target": list(decision.target),
               "verified_safe": decision.verified_safe, "cost_upper": decision.cost_bounds[1],
               "safe_set_size": decision.safe_set_size, **_means(results),
               "unsafe": sum(r.cost_return > b for r in results)}
        iteration_rows.append(row)
        if on_iteration is not None:
            on_iteration(row)

    final = _final(rollouts, key, optimizer.current, len(iteration_rows), varpi, b)
    return RunRecord(key, fingerprint, iteration_rows, episode_rows, final, time.perf_counter() - started)


def run_fleet_optimizer(rollouts: Rollouts, config, key: RunKey, rounds: int, fingerprint: dict,
                        on_iteration: Callable[[dict], None] | None = None) -> RunRecord:
    """`rounds` rounds of a fleet of `key.fleet` robots (safeopt/fleet.py): each round, every robot's target
    is run for `episodes_per_evaluation` episodes (all robots' episodes stepped in one call, robot k's
    episodes reset with seeds right after robot k - 1's), and each episode is reported for the robot, so
    the target, that ran it. Rows: one per robot and round (`round`, `robot`; `iteration` is the decision's
    number, round x N + robot), and every episode with its round and robot. Then the final evaluation, as
    for one robot: the operation target, else the best target, for `episodes_per_evaluation` episodes.
    `on_iteration` is called once per round with that round's first robot's row."""
    from pls_core.safeopt import EpisodeRecord
    from pls_core.safeopt.fleet import build_fleet

    started = time.perf_counter()
    fleet = build_fleet(config, key.fleet)
    varpi, b, n = config.episodes_per_evaluation, config.threshold, key.fleet
    iteration_rows, episode_rows = [], []
    for round_ in range(rounds):
        if fleet.halted:
            break
        batch = fleet.batch
        first = round_ * n * varpi
        results = rollouts.run_jobs([d.target for d in batch for _ in range(varpi)],
                                    seed=key.seed * SEED_STRIDE + first)
        counts = rollouts.last_counts
        for robot, decision in enumerate(batch):
            mine = results[robot * varpi:(robot + 1) * varpi]
            for offset, result in enumerate(mine):
                number = first + robot * varpi + offset
                fleet.report_episode(robot, EpisodeRecord(decision.target, result.reward_return,
                                                          result.cost_return, result.length, episode=number))
                episode_rows.append({"iteration": decision.iteration, "round": round_, "robot": robot,
                                     **asdict(result), **counts[robot * varpi + offset],
                                     "unsafe": result.cost_return > b})
            iteration_rows.append({
                "iteration": decision.iteration, "round": round_, "robot": robot,
                "phase": decision.phase.value, "target": list(decision.target),
                "verified_safe": decision.verified_safe, "cost_upper": decision.cost_bounds[1],
                "safe_set_size": decision.safe_set_size, **_means(mine),
                "unsafe": sum(r.cost_return > b for r in mine)})
        if on_iteration is not None:
            on_iteration(iteration_rows[-n])

    final = _final(rollouts, key, fleet.batch[0], len(iteration_rows) // n, varpi, b)
    return RunRecord(key, fingerprint, iteration_rows, episode_rows, final, time.perf_counter() - started)


def run_fixed_policy(rollouts, key: RunKey, iterations: int, varpi: int, fingerprint: dict,
                     on_iteration: Callable[[dict], None] | None = None) -> RunRecord:
    """A method without targets (PS2 phase II: one shielded policy): `iterations` evaluations of `varpi`
    episodes, seeded as an optimizer run's, so its unsafe count is over the same number of episodes, then
    the final evaluation on the final seeds. Rows carry no target."""
    started = time.perf_counter()
    b = key.threshold
    iteration_rows, episode_rows = [], []
    for iteration in range(iterations):
        first = iteration * varpi
        results = rollouts.run_episodes(varpi, seed=key.seed * SEED_STRIDE + first)
        for offset, result in enumerate(results):
            episode_rows.append({"iteration": iteration, **asdict(result), **rollouts.last_counts[offset],
                                 "unsafe": result.cost_return > b})
        row = {"iteration": iteration, "phase": "fixed policy", "target": None, "verified_safe": None,
               "cost_upper": None, "safe_set_size": None, **_means(results),
               "unsafe": sum(r.cost_return > b for r in results)}
        iteration_rows.append(row)
        if on_iteration is not None:
            on_iteration(row)
    results = rollouts.run_episodes(varpi, seed=key.seed * SEED_STRIDE + FINAL_OFFSET)
    final = {"target": None, "phase": "fixed policy", "rule": "the policy itself (no target)",
             **_means(results), "unsafe": sum(r.cost_return > b for r in results),
             "episodes": [asdict(r) for r in results]}
    return RunRecord(key, fingerprint, iteration_rows, episode_rows, final, time.perf_counter() - started)


def _means(results) -> dict:
    n = len(results)
    return {"reward_mean": sum(r.reward_return for r in results) / n,
            "cost_mean": sum(r.cost_return for r in results) / n}


def _final(rollouts: Rollouts, key: RunKey, decision, evaluations: int, varpi: int, b: float) -> dict:
    """The run's final target (the held one in operation, else the best safe one) evaluated over varpi
    episodes; a halted run has none."""
    from pls_core.safeopt import Phase

    if decision.phase == Phase.HALTED:
        return {"target": list(decision.target), "phase": decision.phase.value, "rule": "halted",
                "halted": True, "note": decision.note, "halted_after": evaluations,
                "reward_mean": None, "cost_mean": None, "unsafe": 0, "episodes": []}
    in_operation = decision.phase == Phase.OPERATION
    target = decision.target if in_operation else decision.best_target
    results = rollouts.run_jobs([target] * varpi, seed=key.seed * SEED_STRIDE + FINAL_OFFSET)
    return {"target": list(target), "phase": decision.phase.value,
            "rule": "operation target" if in_operation else "best_target (highest reward lower bound, safe)",
            **_means(results), "unsafe": sum(r.cost_return > b for r in results),
            "episodes": [asdict(r) for r in results]}
