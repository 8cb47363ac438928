"""`pls collect` end to end: behaviour policies -> perturbed rollouts -> grid filter -> DSRL HDF5 file.

Tasks in pls_core.collect.budget_recipes use one budget-conditioned PPO-Lagrangian policy whose episodes
each hold their own cost budget; the others the per-segment mix of two fixed-penalty SAC policies. The
velocity tasks keep their SAC recipe too (`behaviour="sac"`): the datasets of models shipped before the
budget recipes came from it. `behaviour="sac-budget"` drives the same SAC pair by a budget per episode
instead: the quicker policy until the episode has spent it, then the cautious one; `behaviour="sac-pace"`
blends the pair so that each episode spends its budget at an even rate."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pls_core.collect.behaviour import ensure_policies, policies_sha256
from pls_core.collect.budget_recipes import BUDGET_RECIPES, POLICY_NAME
from pls_core.collect.episodes import plan_budget_episodes, plan_episodes
from pls_core.collect.grid_filter import GridSpec, grid_filter
from pls_core.collect.lagrangian import ensure_budget_policy
from pls_core.collect.recipes import get_recipe
from pls_core.collect.rollout import ActorSpec, rollout
from pls_core.dataset import DSRL_KEYS, OfflineDataset, save_dataset
from pls_core.tasks import get_task

log = logging.getLogger(__name__)

# In a source checkout (where behaviour policies are committed) this is <repo>/behaviour.
DEFAULT_BEHAVIOUR_ROOT = Path(__file__).resolve().parents[2] / "behaviour"


BEHAVIOURS = ("auto", "budget", "sac", "sac-budget", "sac-pace")


def resolve_behaviour(task_id: str, behaviour: str = "auto") -> str:
    """Which behaviour recipe collects `task_id`: "budget" (one budget-conditioned PPO-Lagrangian policy),
    "sac" (two fixed-penalty SAC policies mixed per segment), "sac-budget" (the SAC pair switched once an
    episode's budget is spent) or "sac-pace" (the SAC pair blended to spend it evenly); "auto" is the
    budget recipe where the task has one. ValueError names the choices when the task has no such recipe."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}; choose one of {', '.join(BEHAVIOURS)}")
    if behaviour == "auto":
        return "budget" if task_id in BUDGET_RECIPES else "sac"
    if behaviour == "budget" and task_id not in BUDGET_RECIPES:
        raise ValueError(f"{task_id} has no budget-conditioned behaviour recipe (those that do: "
                         f"{', '.join(sorted(BUDGET_RECIPES))}); use the SAC recipe (sac)")
    return behaviour


def default_grid(task_id: str, behaviour: str = "auto") -> GridSpec:
    """The grid filter of the task's recipe."""
    return BUDGET_RECIPES[task_id].grid if resolve_behaviour(task_id, behaviour) == "budget" else GridSpec()


def episode_table_path(out: Path) -> Path:
    """Where collect_dataset writes its raw episodes' table: beside the dataset, `<name>.episodes.csv`."""
    return out.with_name(out.stem + ".episodes.csv")


def write_episode_table(path: Path, plans, raw: list[dict], costs: np.ndarray, rewards: np.ndarray,
                        fell: np.ndarray, kept: np.ndarray) -> None:
    """One row per raw episode (its plan, returns, length, whether the grid filter kept it), so the
    data's coverage of the (cost, reward) plane, before and after filtering, reads without a new rollout."""
    kept_mask = np.zeros(len(raw), dtype=bool)
    kept_mask[kept] = True
    lines = ["index,budget,fast_share,throttle,action_noise,length,fell,reward,cost,kept"]
    for i, (plan, ep) in enumerate(zip(plans, raw, strict=True)):
        lines.append(f"{plan.index},{plan.budget:.3f},{plan.fast_share:.3f},{plan.throttle:.3f},"
                     f"{plan.action_noise:.3f},{len(ep['rewards'])},{int(fell[i])},"
                     f"{rewards[i]:.2f},{costs[i]:.1f},{int(kept_mask[i])}")
    path.write_text("\n".join(lines) + "\n")


def _perturbations(recipe, min_throttle: float | None, max_action_noise: float | None) -> tuple[float, float]:
    """The episodes' (max_action_noise, min_throttle): the recipe's unless overridden."""
    return (recipe.max_action_noise if max_action_noise is None else max_action_noise,
            recipe.min_throttle if min_throttle is None else min_throttle)


def collect_dataset(
    task_id: str,
    out: Path,
    seed: int = 0,
    episodes: int | None = None,
    workers: int = 2,
    retrain: bool = False,
    behaviour_root: Path = DEFAULT_BEHAVIOUR_ROOT,
    grid: GridSpec | None = None,
    episode_len: int | None = None,
    timestep_scale: float = 1.0,
    command: str = "",
    progress: bool = True,
    address: str | None = None,
    behaviour: str = "auto",
    min_throttle: float | None = None,
    max_action_noise: float | None = None,
    perturb_steps: int | None = None,
    label_intended: bool = False,
    throttle_steps: int | None = None,
) -> OfflineDataset:
    """Generate, filter and save a dataset; the same seed and saved policies give the same sha256.

    `grid` defaults to the task's recipe's (budget recipes keep more per cell and only finished episodes).
    Trainings and rollouts run in this process with one worker, else as Ray tasks (pls_core.parallel):
    on an embedded Ray with `workers` CPUs, or on the cluster at `address`. `behaviour` picks the
    recipe (resolve_behaviour); `min_throttle` and `max_action_noise` override its episodes' perturbations,
    `perturb_steps` limits them to each episode's first steps (`throttle_steps` the throttle alone), and
    `label_intended` records the actions the behaviour meant rather than the noised ones executed
    (rollout.run_episodes)."""
    spec = get_task(task_id)
    timings = {}

    start = time.perf_counter()
    behaviour = resolve_behaviour(task_id, behaviour)
    if behaviour == "budget":  # one budget-conditioned PPO-Lagrangian policy
        budget = BUDGET_RECIPES[task_id]
        folder = ensure_budget_policy(task_id, budget.policy, POLICY_NAME, behaviour_root, seed,
                                      retrain=retrain, timestep_scale=timestep_scale, command=command)
        plans = plan_budget_episodes(episodes or budget.episodes, seed, budget.max_budget,
                                     *_perturbations(budget, min_throttle, max_action_noise))
        actor = ActorSpec("budget", str(folder), (POLICY_NAME,), budget.policy.budget_scale)
    else:  # two fixed-penalty SAC policies, mixed per segment or switched by the budget left
        recipe = get_recipe(task_id)
        folder = ensure_policies(recipe, behaviour_root, seed, retrain=retrain, workers=workers,
                                 progress=progress, timestep_scale=timestep_scale, command=command,
                                 address=address)
        if behaviour == "sac":
            plans = plan_episodes(episodes or recipe.episodes, seed, recipe.max_fast_share,
                                  *_perturbations(recipe, min_throttle, max_action_noise))
            kind = "mix"
        else:  # budgets over the task's whole cost range, throttle and noise as the SAC recipe's
            plans = plan_budget_episodes(episodes or recipe.episodes, seed, spec.max_cost,
                                         *_perturbations(recipe, min_throttle, max_action_noise))
            kind = "spend" if behaviour == "sac-budget" else "pace"
        actor = ActorSpec(kind, str(folder), tuple(recipe.rollout_policies),
                          episode_len=episode_len or spec.episode_len)
    timings["behaviour_s"] = time.perf_counter() - start

    grid = grid or default_grid(task_id, behaviour)
    start = time.perf_counter()
    raw = rollout(task_id, folder, plans, seed, workers=workers, episode_len=episode_len, progress=progress,
                  actor=actor, address=address, perturb_steps=perturb_steps, label_intended=label_intended,
                  throttle_steps=throttle_steps)
    timings["rollout_s"] = time.perf_counter() - start

    start = time.perf_counter()
    costs = np.array([ep["costs"].sum(dtype=np.float64) for ep in raw])
    rewards = np.array([ep["rewards"].sum(dtype=np.float64) for ep in raw])
    fell = np.array([bool(ep["terminals"][-1]) for ep in raw])  # ended by termination, not a time limit
    kept = grid_filter(costs, rewards, spec.max_cost, grid.cost_bins, grid.reward_bins, grid.per_cell,
                       np.random.default_rng([seed, 1]), grid.eligible(rewards, fell))
    arrays = {key: np.concatenate([raw[i][key] for i in kept]) for key in DSRL_KEYS}
    action_labels = "executed"
    if label_intended:
        action_labels = ("intended (before noise)" if throttle_steps is None
                         else "intended (before throttle and noise)")
    ds = OfflineDataset(
        **arrays,
        attrs={
            "task_id": task_id,
            "seed": seed,
            "generator_command": command,
            "raw_episodes": len(raw),
            "grid": grid.describe(),
            "behaviour": behaviour,
            "behaviour_policies": str(folder),
            "behaviour_sha256": policies_sha256(folder),
            "action_labels": action_labels,
        },
    )
    save_dataset(out, ds)
    write_episode_table(episode_table_path(out), plans, raw, costs, rewards, fell, kept)
    timings["filter_save_s"] = time.perf_counter() - start
    log.info("collected %s: %d of %d episodes kept; %s", task_id, len(kept), len(raw),
             ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))
    ds.attrs["timings"] = timings
    return ds
