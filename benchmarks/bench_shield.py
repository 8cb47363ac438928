"""Per-step cost of the shield (admissibility check + safeguard) beside the policy step, on one core.

For each velocity task: the shipped CDT (onnxruntime PolicyRunner, one thread) drives the env with the
shield between its action and env.step, at a target with the seed box's top reward and G = 20. Every
control step is timed in three parts: policy act(), shield filter() (one check when the proposal passes,
1 + bisection checks when it is projected) and their sum. Printed side by side: p50 / p99 in ms, the
task's control period and 25 % of it (the budget), and p99(policy + shield) / budget as a ratio (<= 1 fits).
Intervention steps are also shown alone: they are the expensive tail. Times are the thread's CPU time
(what one dedicated core would take; a shared, loaded machine inflates wall time by waiting), with the
wall-clock p99 of the total beside it. Several horizons / bisection depths run as rows of one table.

    OMP_NUM_THREADS=1 python benchmarks/bench_shield.py [--tasks ...] [--steps 1000] [--horizons 20,10]
        [--iterations 4,1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from pls_core.envs import make_env
from pls_core.runtime import PolicyRunner, shipped_model_path
from pls_core.shield.shield import Shield, ShieldConfig
from pls_core.shield.sim import SimState
from pls_core.tasks import get_task

TASKS = ("SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1", "SafetyWalker2dVelocity-v1",
         "SafetyAntVelocity-v1")


def bench_task(task: str, steps: int, config: ShieldConfig) -> dict:
    env = make_env(task)
    runner = PolicyRunner(shipped_model_path(task), intra_op_threads=1)
    shield = Shield.from_env(env, config)
    target = (runner.contract.dataset_stats.get("seed_reward_range") or get_task(task).seed_reward_range)[1]
    policy_t, shield_t, intervened, wall = [], [], [], []
    obs, _ = env.reset(seed=0)
    runner.reset(np.array([[float(target), 20.0]]))
    for _ in range(steps):
        w0, t0 = time.perf_counter(), time.thread_time()
        action = runner.act(obs[None])[0]
        t1 = time.thread_time()
        safe_action, info = shield.filter(SimState.from_env(env), action)
        t2 = time.thread_time()
        wall.append(time.perf_counter() - w0)
        policy_t.append(t1 - t0)
        shield_t.append(t2 - t1)
        intervened.append(info["intervened"])
        obs, reward, cost, terminated, truncated, _ = env.step(safe_action.astype(np.float32))
        runner.record(np.array([reward]), np.array([cost]))
        if terminated or truncated:
            obs, _ = env.reset()
            runner.reset(np.array([[float(target), 20.0]]))
    env.close()
    policy_t, shield_t = np.array(policy_t) * 1e3, np.array(shield_t) * 1e3
    total = policy_t + shield_t
    hit = np.array(intervened)
    return {"task": task, "period_ms": env.unwrapped.dt * 1e3, "backup": shield.check.backup.name,
            "horizon": shield.check.horizon, "steps": steps, "interventions": int(hit.sum()),
            "policy": np.percentile(policy_t, [50, 99]), "shield": np.percentile(shield_t, [50, 99]),
            "total": np.percentile(total, [50, 99]), "wall_p99": np.percentile(np.array(wall) * 1e3, 99),
            "shield_on_intervention": np.percentile(shield_t[hit], [50, 99]) if hit.any() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--horizons", default="manifest",
                        help="comma-separated control steps; 'manifest': the shipped shield's horizon")
    parser.add_argument("--iterations", default="4", help="comma-separated bisection depths")
    parser.add_argument("--backup", default="auto", choices=("auto", "trained", "brake"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    horizons = [None] if args.horizons == "manifest" else [int(h) for h in args.horizons.split(",")]
    depths = [int(k) for k in args.iterations.split(",")]
    print(f"{'task':29s} {'backup':7s} {'H':>3s} {'k':>2s} {'period':>7s} {'budget':>7s} | "
          f"{'policy p50/p99':>15s} | {'shield p50/p99':>15s} | {'total p50/p99':>15s} | "
          f"{'p99/budget':>10s} | "
          f"{'wall p99':>8s} | interv. {'(shield p50/p99 on them)':>24s}")
    for task in args.tasks:
        for horizon in horizons:
            for depth in depths:
                config = ShieldConfig(backup=args.backup, horizon=horizon, iterations=depth)
                r = bench_task(task, args.steps, config)
                budget = 0.25 * r["period_ms"]
                on_hit = ("-" if r["shield_on_intervention"] is None
                          else "{:.2f}/{:.2f}".format(*r["shield_on_intervention"]))
                print(f"{task:29s} {r['backup']:7s} {r['horizon']:3d} {depth:2d} {r['period_ms']:6.1f}ms "
                      f"{budget:6.2f}ms | "
                      + "{:6.2f}/{:6.2f}ms | {:6.2f}/{:6.2f}ms | {:6.2f}/{:6.2f}ms | ".format(
                          *r["policy"], *r["shield"], *r["total"])
                      + f"{r['total'][1] / budget:10.2f} | {r['wall_p99']:6.2f}ms | "
                      f"{r['interventions']:4d}/{r['steps']} {on_hit:>12s}", flush=True)


if __name__ == "__main__":
    main()
