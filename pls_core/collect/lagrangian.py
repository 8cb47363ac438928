"""Budget-conditioned PPO-Lagrangian: one behaviour policy per task that keeps to the episode cost budget d
it is given as an input.

Why: the CDT learns "act like the episodes whose cost-to-go was G". That only works when an episode's cost
says how its behaviour policy acted throughout, i.e. when each episode comes from a policy holding its own
budget (DSRL trained many constrained policies at a ladder of cost limits for this). One policy conditioned
on d, trained over budgets drawn per episode, gives that ladder in one training.

Training (stable-baselines3 PPO over vectorised envs, cheap per step on two cores): every episode draws
its budget d from `LagrangianRecipe.budgets`; the policy sees (observation, d / top budget); its reward is
(r - λ c) / (1 + λ), the division keeping the reward scale PPO sees bounded as λ grows. Two multipliers:

- "scalar": one λ per budget rung, dual ascent on the rung's cost against its budget (the cost rate of
  the rung's steps times the episode length, so every step counts, not only finished episodes);
- "statewise": a network λ(s, d) >= 0 (Feasible Actor-Critic, Ma et al. 2021), dual ascent on a
  per-state constraint V_c(s, d) <= d / H / (1 - γ_c), with V_c a cost critic regressed on the
  discounted cost-to-go of each rollout. The per-state form penalises only where the budget is at risk.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pls_core.collect.budget_policy import BudgetPolicy, augment, policy_files

log = logging.getLogger(__name__)

MULTIPLIERS = ("scalar", "statewise")
FALL_CHARGES = ("remaining", "discounted")
PPO_GAMMA = 0.99  # stable-baselines3's PPO default, which the recipes keep
CHECKPOINT_EVERY = 250_000  # env steps between saved checkpoints (model, normaliser, multiplier)


@dataclass(frozen=True)
class LagrangianRecipe:
    """A budget-conditioned PPO-Lagrangian training: budgets are raw episode costs."""

    budgets: tuple[float, ...]
    timesteps: int
    multiplier: str = "scalar"
    n_envs: int = 8
    n_steps: int = 256
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 3e-4
    net_arch: tuple[int, ...] = (64, 64)
    log_std_init: float = -0.5
    # Largest dual ascent step per rollout (scalar; taken at a relative violation (cost - d) / (d + 10) of
    # 1 or more): slow against the policy, or λ outruns it and a walker learns that falling ends the cost.
    # The statewise network's Adam step is 1e-3 times multiplier_lr / 0.02.
    multiplier_lr: float = 0.02
    multiplier_max: float = 20.0
    # Share of the training with λ held at 0. Off by default: the velocity tasks' cost is 0/1 per step, so
    # a gait learnt fast, far above the limit, gets no gradient from λ (slowing down a little costs the
    # same); learning under λ from the start keeps the policy near its limit.
    multiplier_warmup: float = 0.0
    cost_gamma: float = 0.99
    # What a fall (termination before the time limit) costs in the shaped reward: "remaining" charges cost 1
    # for every remaining step at once; "discounted" charges their discounted sum under PPO's gamma 0.99 (at
    # most 100), the value a full-rate violation to the time limit would have had. The one-step lump of up
    # to ~1000 dominates the normalised returns of a walker that falls early (docs/method.md).
    fall_charge: str = "discounted"
    # Weight of the newest finished episode in each rung's running episode-cost estimate.
    episode_cost_ema: float = 0.1

    def __post_init__(self):
        if self.fall_charge not in FALL_CHARGES:
            raise ValueError(f"fall_charge must be one of {FALL_CHARGES}, got {self.fall_charge!r}")
        if self.multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {MULTIPLIERS}, got {self.multiplier!r}")
        if not self.budgets or min(self.budgets) < 0:
            raise ValueError(f"budgets must be a non-empty ladder of costs >= 0, got {self.budgets}")

    @property
    def budget_scale(self) -> float:
        return max(max(self.budgets), 1.0)


# ----------------------------------------------------------------------------------------------- multipliers


class ScalarMultipliers:
    """One λ per budget rung, raised while the rung's episodes cost more than its budget, lowered while
    they cost less; each rung's episode cost is a running mean over its finished episodes."""

    def __init__(self, recipe: LagrangianRecipe, horizon: int):
        self.recipe, self.horizon = recipe, horizon
        self.budgets = np.asarray(recipe.budgets, dtype=np.float64)
        self.lam = np.zeros(len(self.budgets))
        self.episode_cost = np.full(len(self.budgets), np.nan)

    def penalty(self, obs_aug: np.ndarray, rungs: np.ndarray) -> np.ndarray:
        return self.lam[rungs]

    def update(self, batch: dict, frozen: bool = False) -> dict:
        weight = self.recipe.episode_cost_ema
        for rung, _, cost, _ in batch["finished"]:
            old = self.episode_cost[rung]
            self.episode_cost[rung] = cost if np.isnan(old) else (1 - weight) * old + weight * cost
        if not frozen:
            seen = ~np.isnan(self.episode_cost)
            violation = np.clip((self.episode_cost - self.budgets) / (self.budgets + 10.0), -1.0, 1.0)
            step = self.recipe.multiplier_lr * violation
            self.lam[seen] = np.clip(self.lam[seen] + step[seen], 0.0, self.recipe.multiplier_max)
        return {"lambda": {f"{b:g}": round(float(v), 3) for b, v in zip(self.budgets, self.lam, strict=True)},
                "episode_cost": {f"{b:g}": round(float(c), 1)
                                 for b, c in zip(self.budgets, self.episode_cost, strict=True) if c == c}}

    def state(self) -> dict:
        return {"lam": self.lam.tolist(), "episode_cost": self.episode_cost.tolist()}

    def load(self, state: dict) -> None:
        self.lam = np.asarray(state["lam"], dtype=np.float64)
        self.episode_cost = np.asarray(state["episode_cost"], dtype=np.float64)


class StatewiseMultiplier:
    """λ(s, d) >= 0 and a cost critic V_c(s, d), both small MLPs on normalised (observation, budget)."""

    def __init__(self, recipe: LagrangianRecipe, horizon: int, obs_dim: int, seed: int):
        import torch
        from stable_baselines3.common.running_mean_std import RunningMeanStd

        torch.manual_seed(seed)
        self.recipe, self.horizon, self.torch = recipe, horizon, torch
        self.budgets = np.asarray(recipe.budgets, dtype=np.float64)
        self.rms = RunningMeanStd(shape=(obs_dim,))

        def mlp():
            return torch.nn.Sequential(torch.nn.Linear(obs_dim, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                                       torch.nn.Tanh(), torch.nn.Linear(64, 1))

        self.lam_net, self.critic = mlp(), mlp()
        self.active = False  # λ counts only after the warm-up
        with torch.no_grad():  # start at λ = softplus(-3) ≈ 0.05: no penalty until the data ask for it
            self.lam_net[-1].bias.fill_(-3.0)
        self.lam_opt = torch.optim.Adam(self.lam_net.parameters(), lr=1e-3 * recipe.multiplier_lr / 0.02)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=1e-3)

    def _inputs(self, obs_aug: np.ndarray):
        x = (obs_aug - self.rms.mean) / np.sqrt(self.rms.var + 1e-8)
        return self.torch.as_tensor(np.clip(x, -10, 10), dtype=self.torch.float32)

    def _lam(self, x):
        return self.torch.nn.functional.softplus(self.lam_net(x)).clamp(max=self.recipe.multiplier_max)

    def penalty(self, obs_aug: np.ndarray, rungs: np.ndarray) -> np.ndarray:
        if not self.active:
            return np.zeros(len(obs_aug))
        with self.torch.no_grad():
            return self._lam(self._inputs(obs_aug)).squeeze(-1).numpy().astype(np.float64)

    def limit(self, rungs: np.ndarray) -> np.ndarray:
        """Per-state bound on the discounted cost-to-go: the budget's cost rate, discounted."""
        return self.budgets[rungs] / self.horizon / (1.0 - self.recipe.cost_gamma)

    def update(self, batch: dict, frozen: bool = False) -> dict:
        torch = self.torch
        obs, costs, dones = batch["obs"], batch["costs"], batch["dones"]  # [T, n, D], [T, n], [T, n]
        self.rms.update(obs.reshape(-1, obs.shape[-1]))
        with torch.no_grad():
            bootstrap = self.critic(self._inputs(batch["last_obs"])).squeeze(-1).numpy()
        targets = np.zeros_like(costs, dtype=np.float64)
        running = bootstrap.astype(np.float64)
        for t in reversed(range(costs.shape[0])):
            running = costs[t] + self.recipe.cost_gamma * (1.0 - dones[t]) * running
            targets[t] = running
        x = self._inputs(obs.reshape(-1, obs.shape[-1]))
        y = torch.as_tensor(targets.reshape(-1), dtype=torch.float32)
        for _ in range(5):
            loss = torch.mean((self.critic(x).squeeze(-1) - y) ** 2)
            self.critic_opt.zero_grad()
            loss.backward()
            self.critic_opt.step()
        with torch.no_grad():
            violation = self.critic(x).squeeze(-1) - torch.as_tensor(
                self.limit(batch["rungs"].reshape(-1)), dtype=torch.float32)
        scale = 1.0 / (1.0 - self.recipe.cost_gamma)  # violations in units of a full-rate cost-to-go
        self.active = not frozen
        if not frozen:
            lam_loss = -torch.mean(self._lam(x).squeeze(-1) * violation / scale)
            self.lam_opt.zero_grad()
            lam_loss.backward()
            self.lam_opt.step()
        with torch.no_grad():
            lam = self._lam(x).squeeze(-1).numpy()
        rungs = batch["rungs"].reshape(-1)
        per_rung = {f"{b:g}": round(float(lam[rungs == k].mean()), 3)
                    for k, b in enumerate(self.budgets) if (rungs == k).any()}
        return {"lambda_mean": per_rung, "critic_loss": round(loss.item(), 3)}

    def state(self) -> dict:
        return {"active": self.active, "lam_net": self.lam_net.state_dict(),
                "critic": self.critic.state_dict(),
                "lam_opt": self.lam_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "rms": (self.rms.mean, self.rms.var, self.rms.count)}

    def load(self, state: dict) -> None:
        for name in ("lam_net", "critic", "lam_opt", "critic_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.rms.mean, self.rms.var, self.rms.count = state["rms"]
        self.active = state["active"]


def make_multiplier(recipe: LagrangianRecipe, horizon: int, obs_dim: int, seed: int):
    if recipe.multiplier == "scalar":
        return ScalarMultipliers(recipe, horizon)
    return StatewiseMultiplier(recipe, horizon, obs_dim, seed)


# ------------------------------------------------------------------------------------------------- the env


def _budget_vec_env_class():
    import gymnasium
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class BudgetVecEnv(VecEnvWrapper):
        """Draws each episode's budget rung, shows it to the policy and shapes the reward with λ.

        The inner envs return the raw reward and cost in `info` (CostPenaltyEnv with penalty 0). The
        multiplier is evaluated on the state the action was taken in; every step is kept for its update.
        A fall (termination before the time limit) is charged as cost 1 for each remaining step in the
        shaped reward only; the multipliers see the real costs.
        """

        def __init__(self, venv, recipe: LagrangianRecipe, seed: int, horizon: int):
            low = np.append(venv.observation_space.low, 0.0).astype(np.float32)
            high = np.append(venv.observation_space.high, np.inf).astype(np.float32)
            super().__init__(venv, observation_space=gymnasium.spaces.Box(low, high, dtype=np.float32))
            self.recipe, self.horizon = recipe, horizon
            self.budgets = np.asarray(recipe.budgets, dtype=np.float64)
            self.rng = np.random.default_rng([seed, 7])
            self.rungs = self.rng.integers(0, len(self.budgets), size=self.num_envs)
            self.multiplier = None
            self.obs = None
            self.trace: dict[str, list] = {"obs": [], "rungs": [], "costs": [], "dones": []}
            self.finished: list[tuple[int, float, float, int]] = []  # rung, reward, cost, length
            self.running = np.zeros((self.num_envs, 3))

        def _aug(self, obs, rungs):
            return augment(obs, self.budgets[rungs], self.recipe.budget_scale)

        def reset(self):
            self.obs = self._aug(self.venv.reset(), self.rungs)
            return self.obs

        def step_wait(self):
            obs, _, dones, infos = self.venv.step_wait()
            rewards = np.array([info["reward"] for info in infos])
            costs = np.array([info["cost"] for info in infos])
            lam = self.multiplier.penalty(self.obs, self.rungs)
            costs_seen = costs.copy()
            for i in np.flatnonzero(dones):
                if not infos[i].get("TimeLimit.truncated", False):
                    # A fall counts as exceeding the limit for the rest of the episode: otherwise, once λ
                    # is large, ending the episode early is the cheapest way to stop paying for cost.
                    costs_seen[i] += self._fall_charge(max(0.0, self.horizon - self.running[i][2] - 1.0))
            shaped = ((rewards - lam * costs_seen) / (1.0 + lam)).astype(np.float32)
            for key, value in (("obs", self.obs), ("rungs", self.rungs.copy()), ("costs", costs),
                               ("dones", dones.astype(np.float64))):
                self.trace[key].append(value)
            self.running += np.stack([rewards, costs, np.ones_like(costs)], axis=1)
            for i in np.flatnonzero(dones):
                if "terminal_observation" in infos[i]:
                    infos[i]["terminal_observation"] = self._aug(infos[i]["terminal_observation"],
                                                                 self.rungs[i])
                self.finished.append((int(self.rungs[i]), *self.running[i]))
                self.running[i] = 0.0
                self.rungs[i] = self.rng.integers(0, len(self.budgets))
            self.obs = self._aug(obs, self.rungs)
            return self.obs, shaped, dones, infos

        def _fall_charge(self, remaining: float) -> float:
            if self.recipe.fall_charge == "discounted":
                return (1.0 - PPO_GAMMA ** remaining) / (1.0 - PPO_GAMMA)
            return remaining

        def take_batch(self) -> dict:
            """The rollout's steps and the episodes that finished in it, then forgets both."""
            batch = {key: np.asarray(values) for key, values in self.trace.items()}
            batch["last_obs"] = self.obs
            batch["finished"] = self.finished
            self.trace = {key: [] for key in self.trace}
            self.finished = []
            return batch

    return BudgetVecEnv


def _callback_class():
    from stable_baselines3.common.callbacks import BaseCallback

    class MultiplierUpdate(BaseCallback):
        """After each rollout: one multiplier update; every `log_every` steps a line per budget rung."""

        def __init__(self, budget_env, label: str, warmup_steps: int, log_every: int = 50_000):
            super().__init__()
            self.budget_env, self.label, self.log_every = budget_env, label, log_every
            self.warmup_steps = warmup_steps
            self.next_log = log_every
            self.recent: list[tuple[int, float, float, int]] = []
            self.last_update: dict = {}

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            batch = self.budget_env.take_batch()
            frozen = self.num_timesteps < self.warmup_steps
            self.last_update = self.budget_env.multiplier.update(batch, frozen=frozen)
            self.recent = [*self.recent, *batch["finished"]][-200:]
            if self.num_timesteps >= self.next_log:
                self.next_log = self.num_timesteps + self.log_every  # also right after a resume
                log.info("%s %d steps: %s; episodes %s", self.label, self.num_timesteps,
                         json.dumps(self.last_update), summarise_episodes(self.recent,
                                                                          self.budget_env.budgets))

    return MultiplierUpdate


def summarise_episodes(episodes, budgets) -> str:
    parts = []
    for k, budget in enumerate(budgets):
        mine = np.array([e[1:] for e in episodes if e[0] == k])
        if len(mine):
            parts.append(f"d={budget:g}: R {mine[:, 0].mean():.0f} C {mine[:, 1].mean():.0f} "
                         f"len {mine[:, 2].mean():.0f} (n={len(mine)})")
    return "; ".join(parts)


# -------------------------------------------------------------------------------------------- the training


def _build_env(task_id: str, recipe: LagrangianRecipe, seed: int):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from pls_core.collect.wrappers import CostPenaltyEnv
    from pls_core.envs import make_env
    from pls_core.tasks import get_task

    def factory(k):
        return lambda: CostPenaltyEnv(make_env(task_id, seed=seed * 1000 + k), 0.0)

    venv = DummyVecEnv([factory(k) for k in range(recipe.n_envs)])
    venv.seed(seed)
    return _budget_vec_env_class()(venv, recipe, seed, get_task(task_id).episode_len)


def _resume_key(task_id: str, recipe: LagrangianRecipe, seed: int) -> dict:
    return json.loads(json.dumps({**asdict(recipe), "timesteps": None, "seed": seed, "task": task_id}))


def train_budget_policy(task_id: str, recipe: LagrangianRecipe, seed: int, out_dir: Path, name: str,
                        checkpoint_every: int = CHECKPOINT_EVERY) -> dict:
    """Train (or resume) one budget-conditioned policy; save <name>.zip + normaliser + multiplier in
    out_dir and return its manifest entry (with a per-budget deterministic evaluation)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from pls_core.collect.training_log import without_log_files
    from pls_core.tasks import get_task

    torch.set_num_threads(1)
    horizon = get_task(task_id).episode_len
    out_dir = Path(out_dir)
    partial = out_dir / ".partial" / name
    budget_env = _build_env(task_id, recipe, seed)
    multiplier = make_multiplier(recipe, horizon, budget_env.observation_space.shape[0], seed)
    budget_env.multiplier = multiplier
    files = policy_files(partial, "checkpoint")
    steps, seconds = 0, 0.0
    if files["model"].exists():
        progress = json.loads((partial / "progress.json").read_text())
        if progress["recipe"] != _resume_key(task_id, recipe, seed):
            raise ValueError(f"{partial} holds an unfinished training of another recipe or seed; delete "
                             f"that folder, or pass --retrain")
        env = VecNormalize.load(str(files["normaliser"]), budget_env)
        model = PPO.load(files["model"], env=env, device="cpu")
        multiplier.load(torch.load(files["multiplier"], weights_only=False))
        steps, seconds = progress["steps"], progress["seconds"]
        log.info("%s %s: resuming at %d of %d steps", task_id, name, steps, recipe.timesteps)
    else:
        env = VecNormalize(budget_env, norm_obs=True, norm_reward=True, gamma=PPO_GAMMA)
        model = PPO("MlpPolicy", env, n_steps=recipe.n_steps, batch_size=recipe.batch_size,
                    n_epochs=recipe.n_epochs, learning_rate=recipe.learning_rate, gamma=PPO_GAMMA, seed=seed,
                    device="cpu",
                    policy_kwargs={"net_arch": list(recipe.net_arch), "log_std_init": recipe.log_std_init},
                    verbose=0)
    without_log_files(model)
    callback = _callback_class()(budget_env, f"{task_id} {name}",
                                 warmup_steps=int(recipe.multiplier_warmup * recipe.timesteps))
    while steps < recipe.timesteps:
        chunk = min(checkpoint_every, recipe.timesteps - steps)
        start = time.perf_counter()
        model.learn(total_timesteps=chunk, callback=callback, reset_num_timesteps=steps == 0)
        steps, seconds = steps + chunk, seconds + time.perf_counter() - start
        partial.mkdir(parents=True, exist_ok=True)
        model.save(files["model"])
        env.save(str(files["normaliser"]))
        torch.save(multiplier.state(), files["multiplier"])
        (partial / "progress.json").write_text(json.dumps(
            {"steps": steps, "seconds": seconds, "recipe": _resume_key(task_id, recipe, seed),
             "multiplier": callback.last_update}))
    final = policy_files(out_dir, name)
    for key in final:
        shutil.copyfile(files[key], final[key])
    shutil.rmtree(partial, ignore_errors=True)
    policy = BudgetPolicy.load(out_dir, name, recipe.budget_scale)
    return {**asdict(recipe), "file": final["model"].name, "algo": "PPO-Lagrangian", "seed": seed,
            "train_seconds": round(seconds, 1), "final_multiplier": callback.last_update,
            "evaluation": evaluate_budget_policy(policy, task_id, episodes=2, seed=10_000 + seed,
                                                 budgets=recipe.budgets)}


def evaluate_budget_policy(policy: BudgetPolicy, task_id: str, episodes: int, seed: int,
                           budgets=None) -> list[dict]:
    """Deterministic episodes at each budget: mean raw reward, cost and length (the manifest's record),
    through the rollouts' own episode loop (no throttle, no noise)."""
    from pls_core.collect.episodes import EpisodePlan
    from pls_core.collect.rollout import BudgetActor, run_episodes
    from pls_core.envs import make_env

    budgets = list(budgets if budgets is not None else
                   (0.0, 0.25 * policy.budget_scale, 0.5 * policy.budget_scale, policy.budget_scale))
    plans = [EpisodePlan(len(budgets) * k + j, seed + k, 0.0, 1.0, 0.0, float(b))
             for j, b in enumerate(budgets) for k in range(episodes)]
    envs = [make_env(task_id) for _ in plans]
    results = run_episodes(envs, BudgetActor(policy), plans, seed)
    for env in envs:
        env.close()
    rows = []
    for b in budgets:
        mine = [r for plan, r in zip(plans, results, strict=True) if plan.budget == b]
        rows.append({"budget": b, "reward": round(float(np.mean([r["rewards"].sum() for r in mine])), 1),
                     "cost": round(float(np.mean([r["costs"].sum() for r in mine])), 1),
                     "length": round(float(np.mean([len(r["rewards"]) for r in mine])), 1)})
    return rows


def ensure_budget_policy(task_id: str, recipe: LagrangianRecipe, name: str, root: Path, seed: int,
                         retrain: bool = False, timestep_scale: float = 1.0, command: str = "") -> Path:
    """Train the task's budget-conditioned policy unless a saved one exists (`retrain` forces it), record
    it in the folder's manifest.json, and return the folder. An interrupted training resumes."""
    from dataclasses import replace

    from pls_core.collect.behaviour import behaviour_dir, read_manifest, write_manifest

    folder = behaviour_dir(root, task_id)
    manifest = read_manifest(folder)
    entries = manifest.get("policies", {})
    if not retrain and name in entries and (folder / entries[name]["file"]).exists():
        return folder
    if retrain:
        shutil.rmtree(folder / ".partial" / name, ignore_errors=True)
    steps = max(recipe.n_envs * recipe.n_steps, int(recipe.timesteps * timestep_scale))
    scaled = replace(recipe, timesteps=steps)
    entries[name] = {**train_budget_policy(task_id, scaled, seed, folder, name), "command": command}
    from pls_core import __version__

    write_manifest(folder, {"task_id": task_id, "pls_version": __version__, "policies": entries})
    return folder
