"""A coarser integration step in the shield's model (`ShieldConfig.substeps`): speed against verdicts.

The shield's admissibility check integrates the task's MuJoCo model frame_skip substeps per control step.
With `substeps` s < frame_skip the shield's copy takes s steps of (frame_skip / s) x the timestep per
control step: cheaper, but no longer the env's own integration, so its verdicts can differ from the exact
model's. A false admit (coarse: admissible, exact: not) breaks the shield's guarantee; a false refusal only
costs reward. A speed margin m in the coarse model (certify against (1 - m) x the limit) trades one for the
other.

States: as `pls_core.shield.train` draws its held-out states, from the shipped CDT's own episodes (random
targets over its reward and cost range, and the study's target: seed box top, G = 20) with the forward
speed scaled by U(0.8, 1.4); each state checks three candidates: the CDT's proposal there, the backup's own
action and the point halfway between (the projection's first bisection point). Two disjoint sets (other
episodes, other env seeds): the calibration set picks, for each coarse model, m0 = the smallest margin of a
grid with no false admit there, and m1 = the smallest grid margin at or above the largest underestimate of
a rollout's peak step speed there (which covers every calibration candidate, wherever its exact peak lies:
few candidates lie near the limit, so a count of false admits alone says little); the reported set (the
table) shows the verdicts at margin 0, m0 and m1.

Per check: thread CPU time (the real check, early exit at the first unsafe step) p50 / p99, and p99 of the
admissible checks alone (full horizon, the common case of a passing proposal). Verdicts at every margin
come from one full-horizon rollout per candidate (the verdict at margin m is "largest step speed <= (1-m)
x limit"; at m = 0 it is asserted equal to the check's own). Unstable: a rollout with a non-finite state, a
MuJoCo instability warning, or |qvel| > 1e3. Then, for the 125 Hz tasks, bench_shield's closed loop (policy
+ shield per step against 25 % of the period) with the steps with cost > 0 the env charged, exact and coarse.

    OMP_NUM_THREADS=1 python benchmarks/bench_shield_substeps.py [--tasks ...] [--states 400]
        [--horizons 10,20]
"""

from __future__ import annotations

import argparse
import os
import time

import mujoco
import numpy as np

from pls_core.envs import make_env
from pls_core.runtime import PolicyRunner, shipped_model_path
from pls_core.shield.shield import Shield, ShieldConfig
from pls_core.shield.sim import SimState
from pls_core.shield.train import push
from pls_core.tasks import get_task

TASKS = ("SafetyHopperVelocity-v1", "SafetyWalker2dVelocity-v1", "SafetyHalfCheetahVelocity-v1")
MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
# (horizon, bisection depth, substeps (None: the env's frame_skip), margin) of the closed-loop runs; the
# margins are the largest m1 of the 125 Hz tasks at that horizon and substeps 1 in the calibration set
# (seed 2): 0.03 at H = 20, 0.075 at H = 10 (both Walker2d).
CLOSED_LOOP = ((20, 4, None, 0.0), (20, 4, 1, 0.0), (20, 4, 1, 0.03), (20, 1, 1, 0.03), (10, 1, None, 0.0),
               (10, 1, 1, 0.075))
UNSTABLE_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQPOS,
                     mujoco.mjtWarning.mjWARN_BADQVEL)


def draw(task: str, n: int, seed: int, every: int = 3) -> list[tuple[SimState, np.ndarray]]:
    """n pushed (state, CDT proposal) pairs from the shipped CDT's episodes: half at random targets over
    its reward and cost range (train.collect_states), half at the study's (seed box top, G = 20)."""
    runner = PolicyRunner(shipped_model_path(task), intra_op_threads=1)
    stats = runner.contract.dataset_stats
    top = float((stats.get("seed_reward_range") or get_task(task).seed_reward_range)[1])
    rng = np.random.default_rng(seed)
    env = make_env(task)
    pool = []
    for episode in range(4):
        target = ((rng.uniform(0.5, 1.1) * float(stats["reward_return_max"]), rng.uniform(0.0, 80.0))
                  if episode % 2 else (top, 20.0))
        obs, _ = env.reset(seed=seed * 1000 + episode)
        runner.reset(np.array([target]))
        for t in range(10_000):
            action = runner.act(obs[None])[0]
            if t % every == 0:
                pool.append((SimState.from_env(env), np.asarray(action, np.float64)))
            obs, reward, cost, terminated, truncated, _ = env.step(action)
            runner.record(np.array([reward]), np.array([cost]))
            if terminated or truncated:
                break
    env.close()
    return [(push(pool[i][0], rng), pool[i][1]) for i in rng.integers(len(pool), size=n)]


def peak_rollout(check, state: SimState, action: np.ndarray) -> tuple[float, bool]:
    """The check's rollout over the full horizon without its early exit: (largest step speed, unstable)."""
    sim, safe = check.sim, check.safe_set
    sim.load(state)
    data = sim.data
    warned = sum(data.warning[w].number for w in UNSTABLE_WARNINGS)
    before = safe.position(data)
    top, unstable = -np.inf, False
    u = np.clip(action, sim.ctrl_low, sim.ctrl_high)
    for k in range(check.horizon + 1):
        if k > 0:
            u = check.backup(data)
        sim.step(u)
        after = safe.position(data)
        speed = safe.step_speed(before, after)
        top = max(top, speed) if np.isfinite(speed) else np.inf
        finite = np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()
        if not finite or np.abs(data.qvel).max() > 1e3:
            unstable = True
        before = after
    unstable |= sum(data.warning[w].number for w in UNSTABLE_WARNINGS) > warned
    return top, unstable


def measure(task: str, samples, horizon: int, substeps: int) -> dict:
    env = make_env(task)
    shield = Shield.from_env(env, ShieldConfig(horizon=horizon, substeps=substeps))
    env.close()
    check, limit = shield.check, shield.check.safe_set.threshold
    times, admissible, peaks, unstable = [], [], [], []
    for state, proposal in samples:
        backup = check.backup_action(state)
        for action in (proposal, backup, backup + 0.5 * (np.clip(proposal, -1, 1) - backup)):
            t0 = time.thread_time()
            result = check(state, action)
            times.append(time.thread_time() - t0)
            peak, bad = peak_rollout(check, state, action)
            assert (peak <= limit) == result.admissible, "full rollout disagrees with the check"
            admissible.append(result.admissible)
            peaks.append(peak)
            unstable.append(bad)
    return {"times_ms": np.array(times) * 1e3, "admissible": np.array(admissible),
            "peak": np.array(peaks) / limit, "unstable": int(np.sum(unstable)), "backup": check.backup.name,
            "model_dt_ms": check.sim.model.opt.timestep * 1e3}


def closed_loop(task: str, steps: int, config: ShieldConfig) -> dict:
    """bench_shield's loop (shipped CDT at the seed box's top reward, G = 20, shield before env.step), with
    the steps with cost > 0 counted: what a coarse model lets through in the env itself."""
    env = make_env(task)
    runner = PolicyRunner(shipped_model_path(task), intra_op_threads=1)
    shield = Shield.from_env(env, config)
    stats = runner.contract.dataset_stats
    target = [[float((stats.get("seed_reward_range") or get_task(task).seed_reward_range)[1]), 20.0]]
    total, hits, costs = [], 0, 0
    obs, _ = env.reset(seed=0)
    runner.reset(np.array(target))
    for _ in range(steps):
        t0 = time.thread_time()
        action, info = shield.filter(SimState.from_env(env), runner.act(obs[None])[0])
        total.append(time.thread_time() - t0)
        hits += int(info["intervened"])
        obs, reward, cost, terminated, truncated, _ = env.step(action.astype(np.float32))
        runner.record(np.array([reward]), np.array([cost]))
        costs += int(cost > 0)
        if terminated or truncated:
            obs, _ = env.reset()
            runner.reset(np.array(target))
    env.close()
    return {"total": np.percentile(np.array(total) * 1e3, [50, 99]), "interventions": hits,
            "cost_steps": costs, "period_ms": env.unwrapped.dt * 1e3}


def errors(coarse_peak: np.ndarray, exact_ok: np.ndarray, margin: float) -> tuple[int, int]:
    ok = coarse_peak <= 1.0 - margin
    return int(np.sum(ok & ~exact_ok)), int(np.sum(~ok & exact_ok))


def under(coarse: dict, exact: dict) -> np.ndarray:
    """How far the coarse model underestimates each rollout's largest step speed (/ limit, >= 0): a margin
    below it lets that candidate through falsely wherever its exact peak is just over the limit."""
    gap = exact["peak"] - coarse["peak"]
    return np.where(np.isnan(gap), np.inf, np.maximum(gap, 0.0))


def grid_at_least(value: float) -> float:
    return next((m for m in MARGINS if m >= value), np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--states", type=int, default=400, help="states per set (3 candidates each)")
    parser.add_argument("--horizons", default="10,20")
    parser.add_argument("--closed-loop-steps", type=int, default=1000, help="0: skip the closed-loop runs")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    horizons = [int(h) for h in args.horizons.split(",")]
    print(f"load average at start {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores); {args.states} states "
          f"x 3 candidates per set; margins chosen on the calibration set, verdicts counted on the reported "
          "set")
    print(f"{'task':29s} {'backup':7s} {'H':>3s} {'sub':>3s} {'dt':>6s} | {'check p50/p99':>13s} "
          f"{'p50 ratio':>9s} {'adm. p99':>8s} | {'adm.':>4s} {'near':>4s} {'FA':>3s} {'FR':>3s} | "
          f"{'m0':>5s} {'FA':>3s} {'FR':>3s} | {'m1':>5s} {'FA':>3s} {'FR':>3s} | {'under p99/max':>13s} "
          f"{'>m1':>4s} {'unstable':>8s}")
    tradeoff = []
    for task in args.tasks:
        report, calibrate = draw(task, args.states, seed=1), draw(task, args.states, seed=2)
        frame_skip = make_env(task).unwrapped.frame_skip
        levels = sorted({frame_skip, max(1, frame_skip // 2), 1}, reverse=True)
        for horizon in horizons:
            exact = {name: measure(task, s, horizon, frame_skip) for name, s in (("r", report),
                                                                                  ("c", calibrate))}
            exact_ok = {name: r["peak"] <= 1.0 for name, r in exact.items()}
            near = int(np.sum(np.abs(exact["r"]["peak"] - 1.0) <= 0.1))
            for substeps in levels:
                r = exact["r"] if substeps == frame_skip else measure(task, report, horizon, substeps)
                c = exact["c"] if substeps == frame_skip else measure(task, calibrate, horizon, substeps)
                # m0: smallest grid margin without a false admit on the calibration set; m1: at least the
                # largest underestimate of a peak there (covers every calibration candidate, near or not).
                m0 = next((m for m in MARGINS if errors(c["peak"], exact_ok["c"], m)[0] == 0), np.nan)
                m1 = grid_at_least(float(under(c, exact["c"]).max()))
                cells = []
                for m in (0.0, m0, m1):
                    fa, fr = errors(r["peak"], exact_ok["r"], m) if np.isfinite(m) else (-1, -1)
                    cells.append((m, fa, fr))
                gap = under(r, exact["r"])
                t = r["times_ms"]
                full = t[r["admissible"]]
                print(f"{task:29s} {r['backup']:7s} {horizon:3d} {substeps:3d} {r['model_dt_ms']:4.1f}ms | "
                      f"{np.percentile(t, 50):5.2f}/{np.percentile(t, 99):5.2f}ms "
                      f"{np.percentile(t, 50) / np.percentile(exact['r']['times_ms'], 50):9.2f} "
                      f"{np.percentile(full, 99) if full.size else np.nan:6.2f}ms | "
                      f"{int(r['admissible'].sum()):4d} {near:4d} {cells[0][1]:3d} {cells[0][2]:3d} | "
                      + " | ".join(f"{m:5.3f} {fa:3d} {fr:3d}" for m, fa, fr in cells[1:])
                      + f" | {np.percentile(gap, 99):6.3f}/{gap.max():6.3f} "
                      f"{int(np.sum(gap > m1)) if np.isfinite(m1) else -1:4d} {r['unstable']:8d}", flush=True)
                if substeps != frame_skip:
                    tradeoff.append((task, horizon, substeps, [errors(r["peak"], exact_ok["r"], m)
                                                               for m in MARGINS]))
    print("\nmargin trade-off on the reported set, FA/FR per margin "
          + " ".join(f"{m:g}" for m in MARGINS))
    for task, horizon, substeps, row in tradeoff:
        print(f"{task:29s} H {horizon:2d} sub {substeps}: " + " ".join(f"{a}/{b}" for a, b in row))
    if args.closed_loop_steps:
        print(f"\nclosed loop, {args.closed_loop_steps} steps from seed 0 (policy + shield, thread CPU time)")
        for task in args.tasks:
            if make_env(task).unwrapped.dt > 0.01:
                continue  # the 125 Hz tasks only
            for horizon, depth, substeps, margin in CLOSED_LOOP:
                config = ShieldConfig(horizon=horizon, iterations=depth, substeps=substeps, margin=margin)
                r = closed_loop(task, args.closed_loop_steps, config)
                budget = 0.25 * r["period_ms"]
                print(f"{task:29s} H {horizon:2d} k {depth} sub {substeps or 'env':>3} margin {margin:5.3f}: "
                      "policy + shield p50/p99 {:.2f}/{:.2f} ms, p99/budget {:.2f}, ".format(
                          *r["total"], r["total"][1] / budget)
                      + f"interventions {r['interventions']}, steps with cost {r['cost_steps']}", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}. dt: the shield model's timestep; p50 ratio: "
          "against the exact model (sub = frame_skip); adm. p99: admissible (full-horizon) checks; adm.: "
          "admissible by the coarse model at margin 0; near: candidates whose exact peak is within 10 % of "
          "the limit; FA/FR: false admits / false refusals against the exact model, of 3 x states; m0 / m1: "
          "margins (see source); under: how far the coarse peak step speed falls below the exact one, / "
          "limit; >m1: reported candidates underestimated by more than m1")


if __name__ == "__main__":
    main()
