"""Per-task collection recipes: which behaviour policies to train and how to perturb their rollouts.

DSRL covered the (cost, reward) plane with a long TRPO-Lagrangian cost-limit curriculum (~30 M steps per
task). We get the same coverage far cheaper: two SAC policies trained with fixed cost penalties
r - lambda*c, an unconstrained "fast" one and a cautious "safe" one (trained from scratch, or fine-tuned
from "fast" where balance is hard to learn twice), then per-episode mixing and perturbations of their
actions (pls_core.collect.episodes).
"""

from __future__ import annotations

from dataclasses import dataclass

from pls_core.collect.episodes import DEFAULT_MAX_ACTION_NOISE, DEFAULT_MIN_THROTTLE
from pls_core.tasks import get_task

DEFAULT_POLICY_PAIR = ("fast", "safe")  # (quicker, more cautious) policy names a rollout mixes


@dataclass(frozen=True)
class BehaviourRecipe:
    """One stable-baselines3 SAC policy trained on r - cost_penalty * c."""

    name: str
    cost_penalty: float
    timesteps: int
    net_arch: tuple[int, ...] = (128, 128)
    learning_starts: int = 5_000
    # Name of a policy of the same task to fine-tune from (a one-step cost-limit curriculum, as DSRL's).
    start_from: str | None = None
    # Velocity tasks: penalise speed above this share of the limit (CostPenaltyEnv), leaving room below it.
    speed_margin: float = 1.0


@dataclass(frozen=True)
class CollectionRecipe:
    task_id: str
    fast: BehaviourRecipe
    safe: BehaviourRecipe
    # Raw episodes rolled out before the grid filter keeps an even spread of them.
    episodes: int
    # Largest per-segment probability of acting with the fast policy; sets how far the cost range reaches.
    max_fast_share: float
    # Largest action noise std; lower where noise makes a walker fall.
    max_action_noise: float = DEFAULT_MAX_ACTION_NOISE
    # Weakest throttle (action scale); a walker collapses well above the default's 40 %.
    min_throttle: float = DEFAULT_MIN_THROTTLE
    # Further policies, each fine-tuned from an earlier one (a longer cost-limit curriculum).
    extra: tuple[BehaviourRecipe, ...] = ()
    # The two policies the rollouts mix, (quicker, more cautious): by default the two above.
    rollout_policies: tuple[str, str] = DEFAULT_POLICY_PAIR

    @property
    def policies(self) -> tuple[BehaviourRecipe, ...]:
        """Every policy to train, in curriculum order."""
        return (self.fast, self.safe, *self.extra)


_VELOCITY_SAFE_PENALTY = 5.0  # above (top speed - threshold): crossing the limit never pays off
_SMALL_NET = (64, 64)  # half the training compute of (128, 128); enough for these bodies

RECIPES: dict[str, CollectionRecipe] = {
    r.task_id: r
    for r in (
        CollectionRecipe(
            "SafetyHalfCheetahVelocity-v1",
            fast=BehaviourRecipe("fast", 0.0, 100_000),
            safe=BehaviourRecipe("safe", _VELOCITY_SAFE_PENALTY, 120_000),
            episodes=1500,
            max_fast_share=0.5,
        ),
        CollectionRecipe(
            "SafetyHopperVelocity-v1",
            # Hopping without falling is the hard part: learn it once, then learn to slow down. At 100k
            # steps "fast" fell after ~140 steps and "safe" stood still; at 300k/100k both still fall
            # after ~530 steps (the data's best return is 1060): more steps or a wider net is next.
            fast=BehaviourRecipe("fast", 0.0, 300_000, net_arch=_SMALL_NET),
            safe=BehaviourRecipe("safe", _VELOCITY_SAFE_PENALTY, 100_000, _SMALL_NET, start_from="fast"),
            episodes=1500,
            max_fast_share=0.6,
            max_action_noise=0.3,
        ),
        CollectionRecipe(
            "SafetyWalker2dVelocity-v1",
            # Walker2d's 2.34 m/s limit is only crossed by a well-trained walker.
            # At 150k steps most episodes still ended in a fall (594 of 639 kept ones).
            fast=BehaviourRecipe("fast", 0.0, 300_000, net_arch=_SMALL_NET),
            safe=BehaviourRecipe("safe", _VELOCITY_SAFE_PENALTY, 100_000, _SMALL_NET, start_from="fast"),
            episodes=1500,
            max_fast_share=0.6,
            max_action_noise=0.3,
            min_throttle=0.8,
            # Both still fall (fast after ~117 steps; safe in 20-60 % of episodes under action noise), and
            # so did every CDT trained on their data. 200k more steps at the same penalty gave "steady":
            # no fall in 50 episodes (action noise up to 0.3, or throttle 0.8), cost 0-11. "quick" then
            # drops the penalty to reach the costly region from a walker that stays up (cost ~500, 3 falls
            # in 50). Rollouts mix these two; more per cell are kept (--per-cell 8) as the walking,
            # low-cost episodes crowd few cells.
            extra=(BehaviourRecipe("steady", _VELOCITY_SAFE_PENALTY, 200_000, _SMALL_NET, start_from="safe"),
                   BehaviourRecipe("quick", 0.0, 100_000, _SMALL_NET, start_from="steady")),
            rollout_policies=("quick", "steady"),
        ),
        CollectionRecipe(
            "SafetyAntVelocity-v1",
            # Four legs rarely fall, but learning to run is slow: at 200k steps of a (256, 256) SAC,
            # 3 of 5 episodes still ended early (torso outside its healthy height); at 375k, 6 of 6
            # deterministic episodes ran 1000 steps at reward ~4300, cost ~930. ~1.5 h on two cores, so
            # training saves checkpoints and resumes across sessions.
            fast=BehaviourRecipe("fast", 0.0, 400_000, net_arch=(256, 256), learning_starts=10_000),
            safe=BehaviourRecipe("safe", _VELOCITY_SAFE_PENALTY, 100_000, (256, 256), start_from="fast"),
            episodes=1500,
            max_fast_share=0.5,
        ),
        CollectionRecipe(
            "SafetyCarCircle1-v0",
            # Per-step reward is ~0.05, so a penalty of 1 makes leaving the boundary never pay.
            fast=BehaviourRecipe("fast", 0.0, 60_000, net_arch=_SMALL_NET),
            safe=BehaviourRecipe("safe", 1.0, 40_000, _SMALL_NET, start_from="fast"),
            episodes=600,
            max_fast_share=1.0,
        ),
    )
}


def get_recipe(task_id: str) -> CollectionRecipe:
    get_task(task_id)  # unknown ids fail with the list of known tasks
    try:
        return RECIPES[task_id]
    except KeyError:
        known = ", ".join(sorted(RECIPES))
        raise KeyError(f"no collection recipe for {task_id!r}; tasks with one: {known}") from None
