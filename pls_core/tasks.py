"""Per-task facts shared by every stage (collection, CDT, safe optimization, evaluation).

Numbers come from the PLS paper (Tables 4-6, App. K) and OSRL/DSRL defaults; where the paper is silent
the choice is ours and says so. Everything else in pls_core looks tasks up here instead of hard-coding.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    episode_len: int
    # Velocity tasks can end early (unhealthy); navigation tasks only time out.
    can_terminate: bool
    # DSRL datasets cover episode cost 0..max_cost; our collection aims at the same range.
    max_cost: float
    # CDT Pareto-frontier relabelling (OSRL cdt_configs): polynomial degree, reward ceiling, allowed drop.
    relabel_deg: int
    relabel_max_reward: float
    relabel_max_rew_decrease: float
    # Safe seed box Z0 for PLS, (R_low, R_high) x (G_low, G_high), raw returns (paper Tables 5-6).
    seed_reward_range: tuple[float, float]
    seed_cost_range: tuple[float, float] = (0.0, 5.0)
    # Reward GP kernel (lengthscale, variance): paper App. K; cost GP is (5.0, 1.0) for every task.
    reward_kernel: tuple[float, float] = (100.0, 100.0)
    thresholds: tuple[float, ...] = (20.0, 40.0)
    # (observation size, action size) of the environment, so that processes that never simulate (the
    # robot's policy node) can check a model without importing MuJoCo; a test checks them against the envs.
    sizes: tuple[int, int] = (0, 0)
    # DSRL's published (min, max) episode reward return (pls-method.md, "DSRL's per-task normalisation
    # constants"; the velocity tasks' v1 datasets): the scale of the paper's tables; None where DSRL has none.
    dsrl_reward_range: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)


_VELOCITY = dict(episode_len=1000, can_terminate=True, max_cost=250.0, relabel_deg=1)

TASKS: dict[str, TaskSpec] = {
    spec.task_id: spec
    for spec in (
        # Paper prints the HalfCheetah seed range as [200, 2300]; we read it as the typo it most likely is.
        # These are the paper's boxes: a model whose contract records its data's box (`pls train`,
        # safeopt.config.seed_reward_range_from_returns) is planned on that one instead.
        TaskSpec("SafetyHalfCheetahVelocity-v1", **{**_VELOCITY, "can_terminate": False},
                 relabel_max_reward=3000.0, relabel_max_rew_decrease=500.0,
                 seed_reward_range=(2000.0, 2300.0),
                 sizes=(17, 6), dsrl_reward_range=(5.7510, 2806.9331)),
        TaskSpec("SafetyHopperVelocity-v1", **_VELOCITY, relabel_max_reward=2000.0,
                 relabel_max_rew_decrease=300.0, seed_reward_range=(1200.0, 1500.0),
                 sizes=(11, 3), dsrl_reward_range=(37.0515, 1911.3967)),
        TaskSpec("SafetyWalker2dVelocity-v1", **{**_VELOCITY, "max_cost": 300.0},
                 relabel_max_reward=3600.0, relabel_max_rew_decrease=800.0,
                 seed_reward_range=(2000.0, 2400.0),
                 sizes=(17, 6), dsrl_reward_range=(18.6685, 3418.2239)),
        TaskSpec("SafetyAntVelocity-v1", **_VELOCITY, relabel_max_reward=3000.0,
                 relabel_max_rew_decrease=500.0, seed_reward_range=(2000.0, 2300.0),
                 sizes=(27, 8), dsrl_reward_range=(6.1519, 2976.2766)),
        TaskSpec("SafetySwimmerVelocity-v1", **{**_VELOCITY, "can_terminate": False, "max_cost": 200.0},
                 relabel_max_reward=250.0, relabel_max_rew_decrease=50.0,
                 seed_reward_range=(100.0, 120.0),
                 sizes=(8, 2), dsrl_reward_range=(0.0711, 238.9583)),
        # Safety-Gymnasium's CarCircle1 (not Bullet's CarCircle): 500 steps, DSRL max cost 250.
        TaskSpec("SafetyCarCircle1-v0", episode_len=500, can_terminate=False, max_cost=250.0,
                 relabel_deg=4, relabel_max_reward=30.0, relabel_max_rew_decrease=5.0,
                 seed_reward_range=(10.0, 12.0), reward_kernel=(5.0, 1.0),
                 sizes=(40, 2)),
        TaskSpec("SafetyPointGoal1-v0", episode_len=1000, can_terminate=False, max_cost=100.0,
                 relabel_deg=1, relabel_max_reward=35.0, relabel_max_rew_decrease=5.0,
                 seed_reward_range=(10.0, 12.0), reward_kernel=(5.0, 1.0),
                 sizes=(60, 2)),
    )
}

DEFAULT_TASK = "SafetyHalfCheetahVelocity-v1"


def get_task(task_id: str) -> TaskSpec:
    """Look a task up, with an error that lists what is known."""
    try:
        return TASKS[task_id]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise KeyError(f"unknown task {task_id!r}; known tasks: {known}") from None
