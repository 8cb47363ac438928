"""PS2-RL phase II: a task policy trained end to end through a control-invariant layer in front of the shield.

Phase I (`pls_core.shield.train`) gave the backup policy, whose forward rollouts define the admissible
set. Phase II trains a policy whose every action passes through a differentiable layer that maps it into
that set, so that the RL gradient sees the safeguard (PS2-RL; docs/method.md, "Per-step shield").

The layer. At state s the shield knows the backup action a_b and, by forward integration, the margin
m(a) = threshold - the largest step speed of the rollout "a, then the backup for H steps" (>= 0 exactly when
a is admissible). PS2's layer projects onto that constraint linearised in the action; here it is
linearised at a_b by finite differences, m(a) ~ m_b + g . (a - a_b), and the layer is the runtime
projection toward a_b along the segment, with its fraction t taken from the linear model:

    t(a) = 1 if m_b + g . (a - a_b) >= 0, else m_b / (-g . (a - a_b)) (0 if m_b <= 0)
    a_s = a_b + t(a) (a - a_b)

so the gradient includes d t / d a, which a MuJoCo rollout cannot give by itself. The linear model is never
trusted for safety: the executed action is always the runtime shield's verdict on the layer's output (the
exact check, and segment bisection when it fails), and the critic learns from that executed action.

The layer's parameters (a_b, m_b, g) are computed once per state (nu + 1 rollouts) and appended to the
observation, so stable-baselines3's SAC trains with its own loop: `CILActor` applies the layer to its
squashed action when acting and in the actor update, and `ExecutedActionBuffer` stores the executed action.

What the actor reads (`actor_input`): `task` (the default), the task observation alone; `layer`, also the
layer's parameters. A task-input actor needs the parameters only for the layer, that is for its gradient
in training: at run time the exact shield takes the layer's place (its bisection along the same segment
toward a_b is what the layer linearises), so a step costs the actor and one shield verdict, as a shielded
CDT step does, instead of nu + 1 more rollouts.

    python -m pls_core.shield.ps2 train --task SafetyHalfCheetahVelocity-v1 --steps 100000 --out runs/ps2_hc
    python -m pls_core.shield.ps2 evaluate --model runs/ps2_hc --episodes 10
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from pls_core.shield.layer import FD_STEP, layer_params
from pls_core.shield.safe_set import ShieldError
from pls_core.shield.shield import Shield, ShieldConfig
from pls_core.shield.sim import SimState

CHECKPOINT = "checkpoint.zip"
REPLAY = "replay.pkl"
PROGRESS = "episodes.csv"
MANIFEST = "manifest.json"
EVALUATION_SEED = 1_000_000  # evaluation episodes reset with seeds from here on


class LayeredEnv(gym.Wrapper):
    """A Safety-Gymnasium velocity env behind the shield, in Gymnasium's API (for stable-baselines3).

    Observation: the task's, then the layer's parameters at that state (a_b, m_b, g); the task's alone with
    `observe_layer=False` (a task-input actor at run time). Action: what the policy's layer gave; the
    runtime shield certifies it (or moves it toward a_b) before the env steps.
    info: cost, executed_action, intervened."""

    def __init__(self, env, shield: Shield, observe_layer: bool = True):
        super().__init__(env)
        if not (np.allclose(shield.low, -1.0) and np.allclose(shield.high, 1.0)):
            raise ShieldError("PS2's layer works in the policy's squashed action space [-1, 1]; this task's "
                              f"actuator range is {shield.low}..{shield.high}")
        self.shield, self.observe_layer = shield, observe_layer
        self.obs_dim = int(env.observation_space.shape[0])
        self.nu = int(shield.low.size)
        size = self.obs_dim + (2 * self.nu + 1 if observe_layer else 0)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.nu,), np.float32)

    def _observe(self, obs) -> np.ndarray:
        if not self.observe_layer:
            return np.asarray(obs, np.float32)
        params = layer_params(self.shield, SimState.from_env(self.env))
        return np.concatenate([np.asarray(obs, np.float32), params.flat()])

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._observe(obs), info

    def step(self, action):
        executed, verdict = self.shield.filter(SimState.from_env(self.env), action)
        obs, reward, cost, terminated, truncated, info = self.env.step(executed.astype(np.float32))
        info = {**info, "cost": float(cost), "executed_action": executed.astype(np.float32),
                "intervened": bool(verdict["intervened"])}
        return self._observe(obs), float(reward), terminated, truncated, info


def sb3_classes():
    """(CILPolicy, ExecutedActionBuffer) from `ps2_sb3`, imported on first use: stable-baselines3 imports
    torch."""
    from pls_core.shield.ps2_sb3 import CILPolicy, ExecutedActionBuffer

    return CILPolicy, ExecutedActionBuffer


ACTOR_INPUTS = ("task", "layer")
RUNTIMES = {"layer": "the linearised layer, then the exact runtime shield",
            "shield": "the exact runtime shield alone (its bisection in the layer's place)"}


def make_layered_env(task_id: str, horizon: int | None = None, observe_layer: bool = True) -> LayeredEnv:
    from pls_core.envs import make_env

    env = make_env(task_id)
    return LayeredEnv(env, Shield.from_env(env, ShieldConfig(horizon=horizon)), observe_layer)


def episode_logger(path: Path):
    """An SB3 callback appending one row per finished training episode: reward, cost, steps with cost,
    interventions, length."""
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeLog(BaseCallback):
        def _on_training_start(self) -> None:
            self.totals = np.zeros(4)  # reward, cost, cost steps, interventions
            self.length = 0
            fresh = not path.exists()
            self.handle = path.open("a", newline="")
            self.writer = csv.writer(self.handle)
            if fresh:
                self.writer.writerow(["timestep", "reward", "cost", "cost_steps", "interventions", "length"])

        def _on_step(self) -> bool:
            info, reward, done = self.locals["infos"][0], self.locals["rewards"][0], self.locals["dones"][0]
            self.totals += (reward, info["cost"], info["cost"] > 0, info["intervened"])
            self.length += 1
            if done:
                self.writer.writerow([self.num_timesteps, *np.round(self.totals, 3), self.length])
                self.handle.flush()
                self.totals[:] = 0
                self.length = 0
            return True

        def _on_training_end(self) -> None:
            self.handle.close()

    return EpisodeLog()


def train(task_id: str, out_dir: Path, steps: int, seed: int = 0, horizon: int | None = None,
          net_arch: tuple[int, ...] = (128, 128), learning_starts: int = 5000,
          checkpoint_every: int = 10_000, buffer_size: int | None = None, actor_input: str = "task") -> Path:
    """SAC through the layer for `steps` env steps, checkpointed (policy and replay buffer) every
    `checkpoint_every`; an existing checkpoint in `out_dir` is resumed (its replay buffer keeps the size
    it was made with: `buffer_size`, default `steps`, and its `actor_input`). Returns the checkpoint."""
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv

    from pls_core.collect.training_log import without_log_files
    from pls_core.shield.ps2_sb3 import TaskObservation

    if actor_input not in ACTOR_INPUTS:
        raise ShieldError(f"actor_input {actor_input!r}: choose one of {', '.join(ACTOR_INPUTS)}")
    torch.set_num_threads(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint, replay = out_dir / CHECKPOINT, out_dir / REPLAY
    venv = DummyVecEnv([lambda: make_layered_env(task_id, horizon)])
    policy, buffer = sb3_classes()
    if checkpoint.exists():
        model = SAC.load(checkpoint, env=venv, device="cpu", custom_objects={"policy_class": policy,
                                                                             "replay_buffer_class": buffer})
        if replay.exists():
            model.load_replay_buffer(replay)
        actor_input = read_actor_input(model)
    else:
        venv.seed(seed)
        policy_kwargs = {"net_arch": list(net_arch)}
        if actor_input == "task":
            policy_kwargs.update(features_extractor_class=TaskObservation,
                                 features_extractor_kwargs={"obs_dim": venv.envs[0].obs_dim})
        model = SAC(policy, venv, learning_starts=learning_starts, buffer_size=buffer_size or max(steps, 1),
                    replay_buffer_class=buffer, policy_kwargs=policy_kwargs, seed=seed, device="cpu",
                    verbose=0)
    without_log_files(model)
    log = episode_logger(out_dir / PROGRESS)
    started = time.perf_counter()
    while model.num_timesteps < steps:
        chunk = min(checkpoint_every, steps - model.num_timesteps)
        model.learn(chunk, callback=log, reset_num_timesteps=False)
        scratch = out_dir / "checkpoint.tmp.zip"
        model.save(scratch)
        model.save_replay_buffer(out_dir / "replay.tmp.pkl")
        scratch.replace(checkpoint)
        (out_dir / "replay.tmp.pkl").replace(replay)
        print(f"{task_id}: {model.num_timesteps} of {steps} steps, {time.perf_counter() - started:.0f} s",
              flush=True)
    manifest = {"task_id": task_id, "algorithm": "SAC (stable-baselines3) through the linearised layer",
                "steps": int(model.num_timesteps), "seed": seed, "horizon": horizon,
                "net_arch": list(net_arch), "actor_input": actor_input,
                "learning_starts": learning_starts, "fd_step": FD_STEP}
    manifest["command"] = train_command(manifest)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    venv.close()
    return checkpoint


def read_actor_input(model) -> str:
    """What a trained model's actor reads: "task" when its features stop at the task observation."""
    from pls_core.shield.ps2_sb3 import TaskObservation

    return "task" if isinstance(model.actor.features_extractor, TaskObservation) else "layer"


class PS2Policy:
    """A trained phase II policy behind the runtime shield, on an env of its own: what `evaluate` and `pls
    experiment --methods ps2` run (deterministic actions).

    `runtime`: "layer" applies the linearised layer before the shield, as in training (it needs the layer's
    parameters at every state); "shield" gives the raw action to the exact shield, whose bisection toward
    a_b takes the layer's place (a task-input actor only); "auto" picks "shield" where it can."""

    def __init__(self, model_dir: Path, runtime: str = "auto"):
        import torch
        from stable_baselines3 import SAC

        torch.set_num_threads(1)
        model_dir = Path(model_dir)
        if not (model_dir / MANIFEST).is_file() or not (model_dir / CHECKPOINT).is_file():
            raise ShieldError(f"{model_dir} holds no trained PS2 policy ({MANIFEST} and {CHECKPOINT}); train "
                              "one with `python -m pls_core.shield.ps2 train --task <task> --out <folder>`")
        self.manifest = json.loads((model_dir / MANIFEST).read_text())
        self.task_id = self.manifest["task_id"]
        policy, buffer = sb3_classes()
        self.model = SAC.load(model_dir / CHECKPOINT, device="cpu",
                              custom_objects={"policy_class": policy, "replay_buffer_class": buffer})
        self.actor_input = read_actor_input(self.model)
        if runtime == "auto":
            runtime = "shield" if self.actor_input == "task" else "layer"
        if runtime not in RUNTIMES or (runtime == "shield" and self.actor_input != "task"):
            raise ShieldError(f"runtime {runtime!r}: choose layer, or shield for an actor on the task "
                              f"observation (this one reads {self.actor_input})")
        self.runtime = runtime
        self.env = make_layered_env(self.task_id, self.manifest.get("horizon"),
                                    observe_layer=runtime == "layer")

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action handed to the runtime shield."""
        if self.runtime == "layer":
            return self.model.predict(obs, deterministic=True)[0]
        import torch

        with torch.no_grad():
            return self.model.actor.raw_action(torch.as_tensor(obs[None])).numpy()[0]

    def episode(self, seed: int) -> dict:
        """One episode reset with `seed`: reward and cost returns, steps with cost, interventions, length."""
        obs, _ = self.env.reset(seed=seed)
        totals, length, done = np.zeros(4), 0, False
        while not done:
            obs, reward, terminated, truncated, info = self.env.step(self.act(obs))
            totals += (reward, info["cost"], info["cost"] > 0, info["intervened"])
            length += 1
            done = terminated or truncated
        return {"reward": float(totals[0]), "cost": float(totals[1]), "cost_steps": int(totals[2]),
                "interventions": int(totals[3]), "length": length}

    def evaluate(self, episodes: int, seed: int = EVALUATION_SEED) -> list[dict]:
        """`episodes` episodes, reset with seeds `seed`, `seed` + 1, ..."""
        return [self.episode(seed + i) for i in range(episodes)]

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> PS2Policy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


EPISODE_KEYS = ("reward", "cost", "cost_steps", "interventions", "length")


def summarise(rows: list[dict]) -> dict:
    """Mean and sd over episodes of each of PS2Policy.episode's figures."""
    columns = {key: np.array([r[key] for r in rows], float) for key in EPISODE_KEYS}
    return {key: {"mean": float(v.mean()), "std": float(v.std())} for key, v in columns.items()}


def train_command(manifest: dict) -> str:
    """The command that trains the policy a manifest describes (from its own fields)."""
    horizon = "" if manifest.get("horizon") is None else f" --horizon {manifest['horizon']}"
    return (f"OMP_NUM_THREADS=1 python -m pls_core.shield.ps2 train --task {manifest['task_id']} "
            f"--out <folder> --steps {manifest['steps']} --seed {manifest['seed']} --learning-starts "
            f"{manifest['learning_starts']}{horizon} --actor-input {manifest.get('actor_input', 'layer')}")


def ship(model_dir: Path, episodes: int, dest_root: Path | None = None) -> Path:
    """Copy a trained policy into the package (pls_core/shields/<task>/ps2/, where `pls experiment
    --methods ps2` finds it) with a manifest: how it was trained, its hash, and its evaluation."""
    import hashlib
    import shutil

    from pls_core.experiment.provenance import provenance
    from pls_core.normalise import dsrl_normalised_reward
    from pls_core.shield.backup import shield_dir

    manifest = json.loads((model_dir / MANIFEST).read_text())
    dest = (Path(dest_root) / manifest["task_id"] if dest_root else shield_dir(manifest["task_id"])) / "ps2"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_dir / CHECKPOINT, dest / CHECKPOINT)
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1))  # evaluate reads it beside the checkpoint
    with PS2Policy(dest) as policy:
        rows, runtime = policy.evaluate(episodes), policy.runtime
    summary = summarise(rows)
    summary["reward_dsrl"] = dsrl_normalised_reward(summary["reward"]["mean"], manifest["task_id"])
    manifest.update({
        "command": train_command(manifest), "file": CHECKPOINT,
        "sha256": hashlib.sha256((dest / CHECKPOINT).read_bytes()).hexdigest(),
        "evaluation": {"episodes": episodes,
                       "seeds": f"{EVALUATION_SEED}..{EVALUATION_SEED + episodes - 1}",
                       "deterministic": True, "runtime": runtime,
                       "behind": RUNTIMES[runtime],
                       "summary": summary, "per_episode": rows,
                       "command": f"python -m pls_core.shield.ps2 ship --model <folder> "
                                  f"--episodes {episodes}"},
        "provenance": provenance(),
    })
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return dest


def evaluate(model_dir: Path, episodes: int, seed: int = EVALUATION_SEED,
             runtime: str = "auto") -> list[dict]:
    """Deterministic episodes of a trained phase II policy behind the runtime shield (`PS2Policy`)."""
    with PS2Policy(model_dir, runtime) as policy:
        return policy.evaluate(episodes, seed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pls_core.shield.ps2",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (or resume) a phase II policy")
    t.add_argument("--task", required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--steps", type=int, default=100_000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--horizon", type=int, default=None, help="backup steps (default: the task's shield)")
    t.add_argument("--learning-starts", type=int, default=5000)
    t.add_argument("--checkpoint-every", type=int, default=10_000)
    t.add_argument("--actor-input", choices=ACTOR_INPUTS, default="task",
                   help="what the actor reads: the task observation, or also the layer's parameters")
    e = sub.add_parser("evaluate", help="deterministic episodes of a trained policy behind the shield")
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--runtime", choices=("auto", *RUNTIMES), default="auto",
                   help="layer: as trained; shield: the exact shield in the layer's place (task-input actor)")
    h = sub.add_parser("ship", help="copy a trained policy into pls_core/shields/<task>/ps2/ with its "
                       "manifest and evaluation")
    h.add_argument("--model", type=Path, required=True)
    h.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args(argv)
    if args.command == "train":
        if args.steps < 1 or args.checkpoint_every < 1 or args.learning_starts < 0:
            parser.error("--steps and --checkpoint-every must be >= 1, --learning-starts >= 0")
        train(args.task, args.out, args.steps, args.seed, args.horizon, learning_starts=args.learning_starts,
              checkpoint_every=args.checkpoint_every, actor_input=args.actor_input)
        return 0
    if not (args.model / MANIFEST).is_file():
        parser.error(f"{args.model} holds no {MANIFEST}: train it first "
                     "(python -m pls_core.shield.ps2 train)")
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    if args.command == "ship":
        print(f"shipped: {ship(args.model, args.episodes)}")
        return 0
    try:
        rows = evaluate(args.model, args.episodes, runtime=args.runtime)
    except ShieldError as exc:
        parser.error(str(exc))
    for key, stats in summarise(rows).items():
        print(f"{key:14s} {stats['mean']:10.2f} +- {stats['std']:.2f}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
