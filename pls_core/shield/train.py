"""Train the backup policy (PS2-RL phase I) and write pls_core/shields/<task>/{backup.npz,manifest.json}.

Safe-arrival value: an episode starts from a state the shielded policy meets (sampled from the shipped
CDT's own episodes, with the forward speed scaled up to push it toward and past the limit), and pays 1 the
first time the backup reaches its target set (forward speed <= a fraction of the limit, body upright),
0 when a step is unsafe (speed over the limit) or the body falls, 0 at the time limit. With discount
gamma < 1 the value is gamma^(arrival step) for a safe arrival, so maximising it is the time-optimal safe
backup that PS2-RL asks for, and its admissible set (states from which it recovers) is as large as the
policy class allows. stable-baselines3 PPO, a 64x64 tanh MLP, exported to numpy (backup.MLPBackup).

    python -m pls_core.shield.train --task SafetyHopperVelocity-v1 --steps 400000 --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from pls_core.shield.backup import BrakeBackup, MLPBackup, features, shield_dir
from pls_core.shield.check import AdmissibilityCheck
from pls_core.shield.safe_set import SafeSet
from pls_core.shield.sim import ShieldSim, SimState, copy_model_of


def collect_states(task_id: str, episodes: int, seed: int, every: int = 5) -> list[SimState]:
    """States along the shipped CDT's episodes, at targets spread over its reward and cost range."""
    from pls_core.envs import make_env
    from pls_core.runtime import PolicyRunner, shipped_model_path

    runner = PolicyRunner(shipped_model_path(task_id))
    stats = runner.contract.dataset_stats
    rng = np.random.default_rng(seed)
    env = make_env(task_id)
    states: list[SimState] = []
    for episode in range(episodes):
        target = (rng.uniform(0.5, 1.1) * float(stats["reward_return_max"]), rng.uniform(0.0, 80.0))
        obs, _ = env.reset(seed=seed + episode)
        runner.reset(np.array([target]))
        for t in range(10_000):
            action = runner.act(obs[None])[0]
            obs, reward, cost, terminated, truncated, _ = env.step(action)
            runner.record(np.array([reward]), np.array([cost]))
            if t % every == 0:
                states.append(SimState.from_env(env))
            if terminated or truncated:
                break
    env.close()
    return states


def push(state: SimState, rng, low: float = 0.8, high: float = 1.4) -> SimState:
    """`state` with its forward velocity scaled by U(low, high): the states a fast proposal leads to."""
    qvel = state.qvel.copy()
    qvel[0] *= rng.uniform(low, high)
    return SimState(state.qpos.copy(), qvel, state.act.copy(), state.time)


class SafeArrivalEnv(gym.Env):
    """First-hit safe arrival at the backup target set from sampled states (reward 1 once, else 0)."""

    def __init__(self, model, frame_skip: int, safe_set: SafeSet, states: list[SimState], max_steps: int,
                 seed: int):
        self.sim = ShieldSim(model, frame_skip)
        self.safe_set, self.states, self.max_steps = safe_set, states, max_steps
        self.rng = np.random.default_rng(seed)
        n_obs = len(features(self.sim.data, safe_set.planar))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n_obs,), np.float64)
        self.action_space = gym.spaces.Box(self.sim.ctrl_low, self.sim.ctrl_high, dtype=np.float64)
        self.t = 0

    def _obs(self):
        return features(self.sim.data, self.safe_set.planar)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        start = self.states[self.rng.integers(len(self.states))]
        self.sim.load(push(start, self.rng))
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        data, safe = self.sim.data, self.safe_set
        before = safe.position(data)
        self.sim.step(np.clip(action, self.sim.ctrl_low, self.sim.ctrl_high))
        self.t += 1
        speed = safe.step_speed(before, safe.position(data))
        if not safe.safe(speed) or not safe.healthy(data):
            return self._obs(), 0.0, True, False, {"arrived": False}
        if safe.in_target(data):
            return self._obs(), 1.0, True, False, {"arrived": True}
        return self._obs(), 0.0, False, self.t >= self.max_steps, {"arrived": False}


def WallClockLimit(seconds: float):  # noqa: N802 (a class made on first use: SB3 imports torch)
    from stable_baselines3.common.callbacks import BaseCallback

    class _Limit(BaseCallback):
        """Stop PPO once `seconds` of wall time have passed (a shared machine's budget)."""

        def _on_training_start(self) -> None:
            self.started = time.time()

        def _on_step(self) -> bool:
            return time.time() - self.started < seconds

    return _Limit()


def to_numpy_backup(model, vecnorm, planar: bool, low, high) -> MLPBackup:
    """The PPO actor's deterministic action (mean) as numpy weights, with VecNormalize's statistics."""
    import torch

    layers = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    layers.append(model.policy.action_net)
    weights = [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy()) for m in layers]
    return MLPBackup(weights, vecnorm.obs_rms.mean, vecnorm.obs_rms.var, low, high, planar,
                     vecnorm.clip_obs)


def export_gap(ppo, venv, backup: MLPBackup, states: list[SimState]) -> float:
    """Largest |PPO deterministic action - numpy backup action| over `states` (should be ~1e-6)."""
    sim = ShieldSim(copy_model_of(venv.venv.envs[0].sim.model), venv.venv.envs[0].sim.frame_skip)
    gap = 0.0
    for state in states:
        sim.load(state)
        x = features(sim.data, backup.planar)
        action, _ = ppo.predict(venv.normalize_obs(x[None]), deterministic=True)
        gap = max(gap, float(np.abs(action[0] - backup(sim.data)).max()))
    return gap


def admissible_share(check: AdmissibilityCheck, states: list[SimState]) -> float:
    """Share of `states` from which the backup itself is admissible (recovers for the horizon)."""
    return float(np.mean([check(s, check.backup_action(s)).admissible for s in states]))


def evaluation_states(task_id: str, seed: int, n: int) -> list[SimState]:
    rng = np.random.default_rng(seed + 12345)
    pool = collect_states(task_id, episodes=3, seed=seed + 10_000, every=3)
    return [push(pool[i], rng) for i in rng.integers(len(pool), size=n)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--steps", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--horizon", type=int, default=20, help="check horizon (control steps)")
    parser.add_argument("--episode-steps", type=int, default=60)
    parser.add_argument("--gamma", type=float, default=0.97)
    parser.add_argument("--collect-episodes", type=int, default=12)
    parser.add_argument("--eval-states", type=int, default=400)
    parser.add_argument("--max-minutes", type=float, default=8.0,
                        help="stop PPO after this wall time (the steps done are recorded)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from pls_core.collect.training_log import without_log_files
    from pls_core.envs import make_env

    torch.set_num_threads(1)
    started = time.time()
    env = make_env(args.task)
    safe_set = SafeSet.for_env(env)
    base_model, frame_skip = env.unwrapped.model, env.unwrapped.frame_skip
    states = collect_states(args.task, args.collect_episodes, args.seed)

    def make(i):
        return lambda: SafeArrivalEnv(copy_model_of(base_model), frame_skip, safe_set, states,
                                      args.episode_steps, args.seed * 100 + i)

    venv = VecNormalize(DummyVecEnv([make(i) for i in range(8)]), norm_obs=True, norm_reward=False,
                        gamma=args.gamma)
    ppo = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=10, gamma=args.gamma,
              learning_rate=3e-4, ent_coef=0.0, seed=args.seed, verbose=0, device="cpu",
              policy_kwargs=dict(net_arch=[64, 64], log_std_init=-0.5))
    without_log_files(ppo)
    ppo.learn(total_timesteps=args.steps, callback=WallClockLimit(args.max_minutes * 60.0))
    sim = ShieldSim(copy_model_of(base_model), frame_skip)
    backup = to_numpy_backup(ppo, venv, safe_set.planar, sim.ctrl_low, sim.ctrl_high)
    out = args.out or shield_dir(args.task)
    out.mkdir(parents=True, exist_ok=True)
    backup.save(out / "backup.npz")
    export_error = export_gap(ppo, venv, backup, states[:200])

    held_out = evaluation_states(args.task, args.seed, args.eval_states)
    shares = {}
    for name, policy in (("trained", backup), ("brake", BrakeBackup(sim.model))):
        shares[name] = admissible_share(AdmissibilityCheck(sim, safe_set, policy, args.horizon), held_out)
    digest = hashlib.sha256((out / "backup.npz").read_bytes()).hexdigest()
    manifest = {
        "task_id": args.task, "file": "backup.npz", "sha256": digest,
        "command": "OMP_NUM_THREADS=1 python -m pls_core.shield.train " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out" and v is not None),
        "seed": args.seed, "ppo_steps": int(ppo.num_timesteps), "gamma": args.gamma,
        "target_set": {"forward_speed_fraction": safe_set.target_fraction, "upright": True},
        "velocity_threshold": safe_set.threshold,
        "shield": {"horizon": args.horizon},
        "numpy_export_max_abs_diff": export_error,
        "admissible_share_held_out": {"states": len(held_out), "horizon": args.horizon, **shares},
        "train_wall_s": round(time.time() - started, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(manifest, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
