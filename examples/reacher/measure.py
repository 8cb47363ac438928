"""The measurements behind the example's speed limit and seed box (README.md), without ROS.

Runs the behaviour controllers of controllers.py on the driver's ReacherTask (the same Reacher-v4, seeds
and cost as driver.py) in-process, and prints per aggressiveness: the episode reward return, the peak
joint speed |qvel| of each episode, and the episode cost return (steps with a joint faster than the limit)
at several candidate limits; then the calm controller's and the mix's return distributions.

    .venv/bin/python examples/reacher/measure.py --episodes 50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controllers import controller_for  # noqa: E402
from driver import DEFAULT_SPEED_LIMIT, EPISODE_LEN, ReacherTask  # noqa: E402


def run_episode(task: ReacherTask, controller, episode: int) -> tuple[float, np.ndarray]:
    """(reward return, the larger joint speed after each of the 50 steps)."""
    obs = task.reset(episode)
    reward_return, speeds = 0.0, []
    for _ in range(EPISODE_LEN):
        obs, reward, _cost, terminated, truncated = task.step(controller.act(obs))
        reward_return += reward
        speeds.append(float(task.joint_speeds().max()))
        if terminated or truncated:
            break
    return reward_return, np.asarray(speeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50, help="episodes per controller (default 50)")
    parser.add_argument("--seed", type=int, default=1000, help="first episode seed (default 1000: other "
                        "episodes than the driver's default seed 0)")
    parser.add_argument("--limits", default="2,2.5,3,3.5,4,5", help="candidate speed limits [rad/s]")
    parser.add_argument("--aggressiveness", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.8,1",
                        help="aggressiveness values to measure")
    args = parser.parse_args()
    limits = [float(v) for v in args.limits.split(",")]
    levels = [float(v) for v in args.aggressiveness.split(",")]
    task = ReacherTask(DEFAULT_SPEED_LIMIT, args.seed)
    n = args.episodes

    print(f"Reacher-v4, {n} episodes per row (reset seeds {args.seed}..{args.seed + n - 1}); peak = the "
          "episode's largest joint speed [rad/s]; cost@L = mean steps per episode with a joint faster than L")
    print("| aggressiveness | reward return mean ± sd | peak mean | peak p95 | peak max | "
          + " | ".join(f"cost@{v:g}" for v in limits) + " |")
    print("| --- " * (5 + len(limits)) + "|")
    calm_rewards = None
    for level in levels:
        rewards, peaks, costs = [], [], []
        for episode in range(n):
            reward, speeds = run_episode(task, controller_for("mix", level, 0, episode), episode)
            rewards.append(reward)
            peaks.append(speeds.max())
            costs.append([(speeds > v).sum() for v in limits])
        rewards, peaks, costs = np.asarray(rewards), np.asarray(peaks), np.asarray(costs, dtype=float)
        if level == 0.0:
            calm_rewards = rewards
        print(f"| {level:g} | {rewards.mean():.2f} ± {rewards.std():.2f} | {peaks.mean():.2f} | "
              f"{np.percentile(peaks, 95):.2f} | {peaks.max():.2f} | "
              + " | ".join(f"{c:.1f}" for c in costs.mean(axis=0)) + " |", flush=True)

    if calm_rewards is not None:
        q = np.percentile(calm_rewards, [10, 25, 50, 75, 90])
        print(f"\ncalm (aggressiveness 0) reward return: min {calm_rewards.min():.2f}, p10 {q[0]:.2f}, "
              f"p25 {q[1]:.2f}, median {q[2]:.2f}, p75 {q[3]:.2f}, p90 {q[4]:.2f}, "
              f"max {calm_rewards.max():.2f}")

    rows = []
    for episode in range(n):
        controller = controller_for("mix", None, 0, episode)
        reward, speeds = run_episode(task, controller, episode)
        rows.append((controller.aggressiveness, reward, float((speeds > DEFAULT_SPEED_LIMIT).sum())))
    rows = np.asarray(rows)
    print(f"mix (aggressiveness u^2), limit {DEFAULT_SPEED_LIMIT:g}: cost return mean "
          f"{rows[:, 2].mean():.1f}, "
          f"max {rows[:, 2].max():.0f}, episodes at cost 0: {int((rows[:, 2] == 0).sum())} of {n}; reward "
          f"return min {rows[:, 1].min():.2f}, max {rows[:, 1].max():.2f}; corr(aggressiveness, cost) "
          f"{np.corrcoef(rows[:, 0], rows[:, 2])[0, 1]:.2f}")
    task.close()


if __name__ == "__main__":
    main()
