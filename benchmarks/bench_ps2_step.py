"""Per-step cost of a PS2 phase II policy (pls_core.shield.ps2) beside the shielded CDT step, on one core.

A PS2 step is: the layer's parameters at the state (backup action, margin and its gradient: nu + 1 full
rollouts), the SAC actor with the layer (torch), then the runtime shield's verdict on its output. An actor
on the task observation (`actor_input: task`) runs without the layer: its raw action goes to the shield,
and the layer column reads 0. The CDT
row is benchmarks/bench_shield.py's: the shipped CDT (onnxruntime) and the same shield. Thread CPU times,
p50 / p99 in ms, and the ratio of the p99 totals, from one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_ps2_step.py [--tasks ...] [--steps 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_shield import bench_task  # noqa: E402

from pls_core.shield.backup import shield_dir  # noqa: E402
from pls_core.shield.layer import layer_params  # noqa: E402
from pls_core.shield.ps2 import PS2Policy  # noqa: E402
from pls_core.shield.shield import ShieldConfig  # noqa: E402
from pls_core.shield.sim import SimState  # noqa: E402


def bench_ps2(task: str, steps: int, model_dir: Path | None = None) -> dict:
    policy = PS2Policy(model_dir or shield_dir(task) / "ps2")
    env = policy.env
    times = {"layer": [], "actor": [], "shield": []}
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        state = SimState.from_env(env.env)
        t0 = time.thread_time()
        if policy.runtime == "layer":
            layer_params(env.shield, state)
        t1 = time.thread_time()
        action = policy.act(obs)
        t2 = time.thread_time()
        env.shield.filter(state, action)
        t3 = time.thread_time()
        for name, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            times[name].append(dt * 1e3)
        obs, _, terminated, truncated, _ = env.step(action)  # the layer's runtime recomputes its parameters
        if terminated or truncated:
            obs, _ = env.reset()
    policy.close()
    total = np.sum([times[k] for k in times], axis=0)
    return {k: np.percentile(v, [50, 99]) for k, v in {**times, "total": total}.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=[p.parent.parent.name for p in
                                                        sorted(shield_dir("SafetyHalfCheetahVelocity-v1")
                                                               .parent.glob("*/ps2/checkpoint.zip"))])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--model", type=Path, default=None,
                        help="a trained PS2 folder to time instead of the shipped one (one task)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    print(f"{'task':29s} | {'layer p50/p99':>15s} | {'actor p50/p99':>15s} | {'shield p50/p99':>15s} | "
          f"{'PS2 total':>15s} | {'CDT+shield':>15s} | {'p99 ratio':>9s}")
    for task in args.tasks:
        ps2 = bench_ps2(task, args.steps, args.model)
        cdt = bench_task(task, args.steps, ShieldConfig())
        print(f"{task:29s} | " + " | ".join("{:6.2f}/{:6.2f}ms".format(*ps2[k])
                                            for k in ("layer", "actor", "shield", "total"))
              + " | {:6.2f}/{:6.2f}ms | {:9.2f}".format(*cdt["total"], ps2["total"][1] / cdt["total"][1]),
              flush=True)


if __name__ == "__main__":
    main()
