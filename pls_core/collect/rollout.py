"""Rollout workers: run perturbed behaviour episodes side by side (Ray tasks, pls_core.parallel).

Each worker steps a chunk of episodes in lockstep so that one batched policy call serves them all (a
single-observation SB3 call costs more than the physics step). What acts is an actor: the per-segment mix
of two fixed-penalty policies, the same pair switched by the budget an episode has left, or one
budget-conditioned policy holding each episode's own budget.
Chunks are fixed by plan order, so results are identical whatever the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pls_core.collect.episodes import SEGMENT_STEPS, EpisodePlan
from pls_core.collect.recipes import DEFAULT_POLICY_PAIR
from pls_core.dataset import DSRL_KEYS
from pls_core.lockstep import run_lockstep
from pls_core.progress import progress_bar

CHUNK_EPISODES = 16
_worker: dict = {}  # this process's envs and actor, built by _worker_for for one rollout's settings


@dataclass(frozen=True)
class ActorSpec:
    """What acts in the rollouts, as a picklable description a worker builds its actor from.

    kind "mix": two saved SAC policies `names` = (quicker, more cautious), switched per segment with the
    plan's `fast_share`; kind "spend": the same pair, the quicker one until the episode has spent the plan's
    `budget`; kind "pace": the same pair blended to spend the plan's `budget` evenly over `episode_len`
    steps; kind "budget": the budget-conditioned policy `names[0]` (pls_core.collect.lagrangian)
    holding each plan's `budget`, whose top budget is `budget_scale`.
    """

    kind: str
    folder: str
    names: tuple[str, ...]
    budget_scale: float = 1.0
    episode_len: int = 1000


class PairActor:
    """Two saved policies, (quicker, more cautious), acting by a per-episode weight of the quicker one.

    A subclass's `fast_weight` gives the weights each step: booleans pick one policy per episode, floats
    in [0, 1] blend the two actions; `start` resets its per-episode state at the first step."""

    def __init__(self, fast, safe):
        self.fast, self.safe = fast, safe

    def start(self, plans) -> None:
        """Called at step 0 of a chunk of episodes, before their first weights."""

    def fast_weight(self, plans, rngs, t) -> np.ndarray:
        raise NotImplementedError

    def act(self, obs, plans, rngs, t):
        if t == 0:
            self.start(plans)
        weight = np.asarray(self.fast_weight(plans, rngs, t))[:, None]
        fast_actions, _ = self.fast.policy.predict(obs, deterministic=True)
        safe_actions, _ = self.safe.policy.predict(obs, deterministic=True)
        if weight.dtype == bool:  # a pick keeps the chosen policy's action bit for bit
            return np.where(weight, fast_actions, safe_actions)
        return weight * fast_actions + (1.0 - weight) * safe_actions


class MixActor(PairActor):
    """The quicker policy with probability fast_share per SEGMENT_STEPS segment, else the cautious one."""

    def __init__(self, fast, safe):
        super().__init__(fast, safe)
        self.segment_fast: dict[int, bool] = {}

    def fast_weight(self, plans, rngs, t):
        if t % SEGMENT_STEPS == 0:
            for plan, rng in zip(plans, rngs, strict=True):
                self.segment_fast[plan.index] = rng.uniform() < plan.fast_share
        return np.array([self.segment_fast[plan.index] for plan in plans], dtype=bool)


class SpendActor(PairActor):
    """The quicker policy while the episode's cost so far is below its plan's budget, then the cautious one.

    Which policy acts then follows from what the data will carry: the quicker one exactly while the cost
    still to come exceeds what the cautious one adds, so a model conditioned on the cost-to-go can learn
    when to go fast. The per-segment random mix gives it no such signal (its episode's cost-to-go says
    little about which policy acts next)."""

    def __init__(self, fast, safe):
        super().__init__(fast, safe)
        self.spent: dict[int, float] = {}

    def start(self, plans):
        self.spent.update({plan.index: 0.0 for plan in plans})

    def fast_weight(self, plans, rngs, t):
        return np.array([self.spent[plan.index] < plan.budget for plan in plans], dtype=bool)

    def record_cost(self, index: int, cost: float) -> None:
        self.spent[index] += float(cost)


class PaceActor(SpendActor):
    """The pair blended, a = w * quicker + (1 - w) * cautious, with w set each step by how far the
    episode's cost so far lags a steady spending of its budget:
    w = clip(GAIN * (budget * (t + LEAD) / T - spent), 0, 1).

    A budget is thus spent at an even rate over the episode rather than in one burst at its start, so every
    step's action varies smoothly with the cost-to-go and the time left, which is what a model conditioned
    on them can imitate; a zero budget is the cautious policy throughout."""

    GAIN = 0.2  # w = 1 once the episode lags its pace by 5 cost units
    LEAD = 25  # steps of spending allowed ahead of the even pace (one mixing segment)

    def __init__(self, fast, safe, episode_len: int):
        super().__init__(fast, safe)
        self.episode_len = episode_len

    def fast_weight(self, plans, rngs, t):
        pace = np.array([plan.budget for plan in plans]) * min(1.0, (t + self.LEAD) / self.episode_len)
        spent = np.array([self.spent[plan.index] for plan in plans])
        return np.clip(self.GAIN * (pace - spent), 0.0, 1.0)


class BudgetActor:
    """One budget-conditioned policy, each episode holding its own plan's budget."""

    def __init__(self, policy):
        self.policy = policy

    def act(self, obs, plans, rngs, t):
        return self.policy.act(obs, np.array([plan.budget for plan in plans]))


def make_actor(spec: ActorSpec):
    if spec.kind in ("mix", "spend", "pace"):
        from pls_core.collect.behaviour import load_policies

        policies = load_policies(Path(spec.folder))
        fast, safe = (policies[name] for name in spec.names)
        if spec.kind == "pace":
            return PaceActor(fast, safe, spec.episode_len)
        return (MixActor if spec.kind == "mix" else SpendActor)(fast, safe)
    if spec.kind == "budget":
        from pls_core.collect.budget_policy import BudgetPolicy

        return BudgetActor(BudgetPolicy.load(Path(spec.folder), spec.names[0], spec.budget_scale))
    raise ValueError(f"unknown actor kind {spec.kind!r}")


def _worker_for(settings: tuple) -> dict:
    """This process's envs and actor for `settings` (task_id, actor spec, seed, episode_len,
    perturb_steps, throttle_steps, label_intended), built on its first chunk and reused for the next ones
    (a Ray worker runs many)."""
    if _worker.get("settings") != settings:
        import torch

        from pls_core.envs import make_env

        torch.set_num_threads(1)
        _release_worker()
        task_id, spec, seed, episode_len, perturb_steps, throttle_steps, label_intended = settings
        _worker.update(settings=settings, envs=[make_env(task_id) for _ in range(CHUNK_EPISODES)],
                       actor=make_actor(spec), seed=seed, episode_len=episode_len,
                       perturb_steps=perturb_steps, throttle_steps=throttle_steps,
                       label_intended=label_intended)
    return _worker


def _release_worker() -> None:
    """Close this process's envs and forget its actor."""
    for env in _worker.pop("envs", []):
        env.close()
    _worker.clear()


def run_episodes(envs: list, actor, plans: list[EpisodePlan], seed: int,
                 episode_len: int | None = None, perturb_steps: int | None = None,
                 label_intended: bool = False, throttle_steps: int | None = None) -> list[dict]:
    """The plans' episodes as DSRL arrays, one env each; an `episode_len` cut marks a timeout.

    Every episode draws from its own plan's stream: the actor's draws first each step, then the action
    noise; the actor's actions are scaled by the plan's throttle, noised and clipped to the action bounds.
    With `perturb_steps`, throttle and noise act only on an episode's first that many steps (no noise is
    drawn after them): varied starts and the recoveries from them, then the actor's own behaviour, so the
    episode's cost still follows what the actor was asked for.
    With `label_intended`, the data record the action the behaviour meant (throttled, clipped) instead
    of the noised one the env executed (DART, Laskey et al. 2017): the noise still spreads the visited
    states, and each of them is labelled with the behaviour's own correction, which a model that imitates
    the data needs to find its way back when it drifts.
    With `throttle_steps`, the throttle acts only on an episode's first that many steps and the noise on
    all of them: a slowed start (a gait the behaviour would not choose) to recover from, under noise
    throughout. The throttle is then a perturbation, not the behaviour's choice, so with `label_intended`
    the labels are the actor's own, unthrottled actions.
    """
    if perturb_steps is not None and throttle_steps is not None:
        raise ValueError("perturb_steps and throttle_steps exclude each other: the first ends the noise "
                         "with the throttle, the second keeps it")
    rngs = [plan.rng(seed) for plan in plans]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    steps = [{key: [] for key in DSRL_KEYS} for _ in plans]
    intended: dict[int, np.ndarray] = {}  # env index -> this step's action before noise

    def act(obs, active, t):
        actions = actor.act(obs[active], [plans[i] for i in active], [rngs[i] for i in active], t)
        if perturb_steps is not None and t >= perturb_steps:
            return list(np.clip(actions, low, high))
        perturbed = []
        throttling = throttle_steps is None or t < throttle_steps
        for row, i in enumerate(active):
            throttled = (plans[i].throttle if throttling else 1.0) * actions[row]
            noise = plans[i].action_noise * rngs[i].standard_normal(actions[row].shape)
            perturbed.append(np.clip(throttled + noise, low, high))
            if label_intended:
                intended[i] = np.clip(actions[row] if throttle_steps is not None else throttled, low, high)
        return perturbed

    record_cost = getattr(actor, "record_cost", None)  # actors that act on the cost spent so far

    def record(i, obs, action, next_obs, reward, cost, terminated, truncated):
        if record_cost is not None:
            record_cost(plans[i].index, cost)
        if label_intended:
            action = intended.pop(i, action)  # unperturbed steps executed what was meant
        values = (obs, next_obs, action, reward, cost, terminated, truncated and not terminated)
        for key, value in zip(DSRL_KEYS, values, strict=True):
            steps[i][key].append(value)

    run_lockstep(envs[:len(plans)], [plan.env_seed for plan in plans], act, max_steps=episode_len,
                 on_step=record)
    return [{key: np.asarray(values, dtype=np.float32) for key, values in record.items()} for record in steps]


def _run_chunk(job: tuple[tuple, list[EpisodePlan]]) -> list[tuple[int, dict]]:
    settings, plans = job
    w = _worker_for(settings)
    episodes = run_episodes(w["envs"], w["actor"], plans, w["seed"], w["episode_len"], w["perturb_steps"],
                            w["label_intended"], w["throttle_steps"])
    return [(plan.index, arrays) for plan, arrays in zip(plans, episodes, strict=True)]


def rollout(
    task_id: str, policy_folder: Path, plans: list[EpisodePlan], seed: int, workers: int = 2,
    episode_len: int | None = None, progress: bool = True,
    policy_names: tuple[str, str] = DEFAULT_POLICY_PAIR, actor: ActorSpec | None = None,
    address: str | None = None, perturb_steps: int | None = None, label_intended: bool = False,
    throttle_steps: int | None = None,
) -> list[dict]:
    """All planned episodes, in plan order: in this process with one worker, else chunks of
    CHUNK_EPISODES as Ray tasks (embedded on `workers` CPUs, or the cluster at `address`). The actor is
    `actor`, or by default the mix of the saved policies `policy_names` (the (fast, safe) roles) in
    `policy_folder`, which a cluster's workers must find at the same path. `perturb_steps`,
    `throttle_steps`, `label_intended`: see run_episodes."""
    from pls_core.parallel import run_unordered

    actor = actor or ActorSpec("mix", str(policy_folder), tuple(policy_names))
    settings = (task_id, actor, seed, episode_len, perturb_steps, throttle_steps, label_intended)
    chunks = [(settings, plans[k:k + CHUNK_EPISODES]) for k in range(0, len(plans), CHUNK_EPISODES)]
    results: dict[int, dict] = {}
    try:
        with progress_bar(f"rollouts {task_id} (episodes)", len(plans), enabled=progress) as bar:
            for _, chunk in run_unordered(_run_chunk, chunks, workers=workers, address=address):
                results.update(chunk)
                bar.advance(len(chunk))
    finally:  # the one-process path built its envs here
        _release_worker()
    return [results[plan.index] for plan in plans]
