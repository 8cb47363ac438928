"""Shield on / off / with a wrong model, at one target: steps with cost > 0, reward, interventions.

A robot's shield integrates its MJCF, never the robot itself: `--model-error 0.1` scales every body mass
and geom friction of the shield's copy by a factor in [0.9, 1.1] (one draw per episode seed) while the
simulated robot keeps the true model. Episodes are seeded 0..n-1 in every condition.

    python -m pls_core.shield.study --task SafetyHalfCheetahVelocity-v1 --episodes 5 --cost 20
"""

from __future__ import annotations

import argparse

import numpy as np

from pls_core.shield.shield import Shield, ShieldConfig, ShieldedEnv


def run(task: str, target: tuple[float, float], episodes: int, config: ShieldConfig | None,
        threshold: float) -> dict:
    from pls_core.envs import make_env
    from pls_core.runtime import PolicyRunner, shipped_model_path

    runner = PolicyRunner(shipped_model_path(task))
    rows = []
    for episode in range(episodes):
        base = make_env(task)
        shield = None
        if config is not None:
            shield = Shield.from_env(base, ShieldConfig(**{**config.__dict__, "model_seed": episode}))
        env = ShieldedEnv(base, shield)
        obs, _ = env.reset(seed=episode)
        runner.reset(np.array([target]))
        reward = cost = length = 0
        while True:
            obs, r, c, terminated, truncated, _ = env.step(runner.act(obs[None])[0])
            runner.record(np.array([r]), np.array([c]))
            reward, cost, length = reward + r, cost + c, length + 1
            if terminated or truncated:
                break
        rows.append((reward, cost, env.cost_steps, env.interventions, length))
        env.close()
    a = np.array(rows, dtype=float)
    return {"reward": a[:, 0].mean(), "cost": a[:, 1].mean(), "cost_steps": a[:, 2].sum(),
            "interventions_per_episode": a[:, 3].mean(), "length": a[:, 4].mean(),
            "unsafe_episodes": int((a[:, 1] > threshold).sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--reward", type=float, default=None, help="target R (default: seed box top)")
    parser.add_argument("--cost", type=float, default=20.0, help="target G")
    parser.add_argument("--threshold", type=float, default=20.0, help="b: an episode over it is unsafe")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--model-error", type=float, default=0.1)
    parser.add_argument("--margin", type=float, default=0.05, help="speed margin of the last condition")
    args = parser.parse_args(argv)
    from pls_core.runtime import ModelContract, shipped_model_path
    from pls_core.tasks import get_task

    stats = ModelContract.from_onnx(shipped_model_path(args.task)).dataset_stats
    box = stats.get("seed_reward_range") or get_task(args.task).seed_reward_range
    reward = args.reward or float(box[1])
    target = (reward, args.cost)
    conditions = {"no shield": None, "shield (exact model)": ShieldConfig(),
                  f"shield (model +-{args.model_error:g})": ShieldConfig(model_error=args.model_error),
                  f"  + margin {args.margin:g}": ShieldConfig(model_error=args.model_error,
                                                              margin=args.margin)}
    print(f"{args.task} target R={reward:.0f} G={args.cost:g}, b={args.threshold:g}, "
          f"{args.episodes} episodes "
          "per condition")
    print(f"{'condition':26s} {'reward':>8s} {'cost':>6s} {'cost>0 steps':>12s} {'unsafe eps':>10s} "
          f"{'interv./ep':>10s} {'length':>7s}")
    for name, config in conditions.items():
        r = run(args.task, target, args.episodes, config, args.threshold)
        print(f"{name:26s} {r['reward']:8.1f} {r['cost']:6.1f} {r['cost_steps']:12.0f} "
              f"{r['unsafe_episodes']:10d} {r['interventions_per_episode']:10.1f} {r['length']:7.0f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
