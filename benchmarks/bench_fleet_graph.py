"""A fleet through the ROS node graph: `pls sim --robots N` for N = 1 and 2, wall clock per round.

Each run is the sim graph in lockstep on the shipped HalfCheetah model with the demo's optimizer
overrides (`config/optimizer_demo.yaml`: 3 episodes per evaluation), until every robot has run
`--rounds` rounds (max_episodes = rounds x varpi per robot). From the supervisor's store it reads what
the run decided; from the clock, how long it took. Printed per N, side by side:

* rounds: rounds whose batch was evaluated in full (every robot's varpi episodes stored); the graph
  stops when the first sim is done, so another robot's last episode may be cut off;
* episodes, wall s: episodes stored, seconds from `pls sim` start to its end (process start, model
  loading and DDS discovery included);
* s / round: wall seconds over the rounds' worth of stored episodes (episodes / (N x varpi)), and its
  ratio to the first N's (1 would be perfect scaling: N robots' rounds as quick as one robot's);
* evaluations / min: targets evaluated per minute of wall clock, the rate at which a fleet learns;
* best: the last decision's best verified-safe target and its posterior mean reward.

What a fleet buys in rounds to a given regret is measured in-process (benchmarks/bench_safeopt_fleet.py);
this benchmark measures what the graph adds around it. Run on an otherwise idle machine:
    scripts/netns-run .venv/bin/python benchmarks/bench_fleet_graph.py [--rounds 6] [--robots 1 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pls_core.safeopt.store import OptimizerStore  # noqa: E402
from pls_ros.dds import local_dds_environment, unique_domain_id  # noqa: E402

VARPI = 3  # config/optimizer_demo.yaml's episodes_per_evaluation


def run(robots: int, rounds: int, folder: Path, timeout_s: float) -> dict:
    store = folder / f"store{robots}.sqlite"
    env = {**local_dds_environment(domain_id=unique_domain_id(), log_dir=folder / f"log{robots}"),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pls_core.cli", "sim", "--robots", str(robots), "--mode", "lockstep",
           "--config", str(REPO / "config" / "optimizer_demo.yaml"), "--max-episodes", str(rounds * VARPI),
           "--store-path", str(store), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=folder, capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"pls sim --robots {robots} exited {proc.returncode}:\n{proc.stdout[-3000:]}")
    db = OptimizerStore(store)
    try:
        decisions, episodes = db.decisions(), db.episodes()
    finally:
        db.close()
    per_decision: dict[int, int] = {}
    for iteration, _ in episodes:
        per_decision[iteration] = per_decision.get(iteration, 0) + 1
    full = 0  # rounds whose every member was evaluated in full
    while all(per_decision.get(full * robots + k, 0) >= VARPI for k in range(robots)):
        full += 1
    last = decisions[-1]
    return dict(robots=robots, rounds=full, episodes=len(episodes), wall=wall,
                evaluations=sum(n >= VARPI for n in per_decision.values()),
                best=last.best_target, best_reward=last.best_predicted_reward)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--robots", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=900.0, help="per run [s]")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; HalfCheetah, shipped "
          f"model, config/optimizer_demo.yaml (varpi {VARPI}), lockstep, {args.rounds} rounds per robot\n")
    results = []
    with tempfile.TemporaryDirectory(prefix="pls-fleet-bench-") as tmp:
        for robots in args.robots:
            results.append(run(robots, args.rounds, Path(tmp), args.timeout))
            r = results[-1]
            print(f"N = {robots} done: {r['rounds']} rounds, {r['episodes']} episodes in {r['wall']:.1f} s",
                  flush=True)
    def per_round(r):
        return r["wall"] / max(r["episodes"] / (r["robots"] * VARPI), 1e-9)

    base = per_round(results[0])
    print("\n| N | rounds | episodes | wall s | s / round | ratio to first | evaluations / min | best target "
          "(R, G) | its mean reward |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['robots']} | {r['rounds']} | {r['episodes']} | {r['wall']:.1f} | {per_round(r):.1f} | "
              f"{per_round(r) / base:.2f} | {60 * r['evaluations'] / r['wall']:.2f} | "
              f"({r['best'][0]:.0f}, {r['best'][1]:.0f}) | {r['best_reward']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
