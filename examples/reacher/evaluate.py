"""What a trained model does with its targets on the example robot, without ROS: `pls evaluate` for a robot
pls cannot simulate itself.

Runs an exported policy (ONNX, through pls's one inference path, `PolicyRunner`) on the driver's own
ReacherTask (the same Reacher-v4, cost and episode seeds as driver.py) at every target (R, G) asked for,
and prints the mean reward and cost return per target; `--out` writes them as JSON.

    .venv/bin/python examples/reacher/evaluate.py --model policy.onnx --rewards -6 --costs 0,5,10,20
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver import DEFAULT_SPEED_LIMIT, EPISODE_LEN, ReacherTask  # noqa: E402


def evaluate(model: Path, targets: list[tuple[float, float]], episodes: int, seed: int = 5000,
             speed_limit: float = DEFAULT_SPEED_LIMIT) -> list[dict]:
    """Per target: mean and sd of the reward and cost returns over `episodes` episodes (seeds seed + e)."""
    from pls_core.runtime import PolicyRunner

    task = ReacherTask(speed_limit, seed)
    runner = PolicyRunner(model, num_envs=1)
    rows = []
    try:
        for target in targets:
            rewards, costs = [], []
            for episode in range(episodes):
                obs = task.reset(episode)
                runner.reset([target])
                reward_return = cost_return = 0.0
                for _ in range(EPISODE_LEN):
                    action = runner.act(obs[None].astype(np.float32))[0]
                    obs, reward, cost, terminated, truncated = task.step(action)
                    runner.record([reward], [cost])
                    reward_return += reward
                    cost_return += cost
                    if terminated or truncated:
                        break
                rewards.append(reward_return)
                costs.append(cost_return)
            rows.append({"target_reward": target[0], "target_cost": target[1], "episodes": episodes,
                         "reward_mean": float(np.mean(rewards)), "reward_sd": float(np.std(rewards)),
                         "cost_mean": float(np.mean(costs)), "cost_sd": float(np.std(costs))})
    finally:
        task.close()
    return rows


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="exported ONNX policy (`pls export`)")
    parser.add_argument("--rewards", type=_floats, required=True, help="target reward returns R (a,b,...)")
    parser.add_argument("--costs", type=_floats, required=True, help="target cost returns G (a,b,...)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per target (default 20)")
    parser.add_argument("--seed", type=int, default=5000,
                        help="episode e is reset with seed + e (default 5000: not the recording's seeds)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    if not args.model.is_file():
        parser.error(f"--model {args.model} does not exist; export one with `pls export`")
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    rows = evaluate(args.model, [(r, g) for r in args.rewards for g in args.costs], args.episodes, args.seed)
    print("| R | G | reward return (mean ± sd) | cost return (mean ± sd) |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['target_reward']:g} | {row['target_cost']:g} | {row['reward_mean']:.2f} ± "
              f"{row['reward_sd']:.2f} | {row['cost_mean']:.1f} ± {row['cost_sd']:.1f} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
