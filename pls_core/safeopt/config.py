"""Optimizer settings: one flat, validated dataclass, loadable from a dict or YAML, derivable from a task.

Every key is documented on `OptimizerConfig`. The defaults come from one place: `for_task` (task, threshold
b) and `for_model_stats` (plus the model contract's dataset statistics); a YAML file holds only overrides
on top of them (`from_yaml`). Units: R, G, returns, threshold, zeta, noise are raw (unnormalised) returns.
The evidence behind each choice is in docs/method.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pls_core.safeopt.errors import OptimizerConfigError

METHODS = ("pls", "fixed", "gp_ucb", "random")
PRIOR_MEANS = ("target", "zero")
REWARD_PRIOR_MEANS = (*PRIOR_MEANS, "evidence")  # evidence: whichever of the two explains the data better
COST_R_LENGTHSCALE_FACTOR = 5.0  # cost lengthscale along R, in reward lengthscales (see for_task)
COST_G_LENGTHSCALE_FRACTION = 0.5  # cost lengthscale along G, as a fraction of the threshold b (see for_task)
REWARD_G_LENGTHSCALE_FRACTION = 0.5  # reward lengthscale along G, as a fraction of b (see for_task)
# for_task's certificate: safe under all these cost kernels (cost_lengthscale x each factor, per axis [R, G]
# for pairs): a quarter of the lengthscale along one axis at a time, half along both (docs/method.md)
ROBUST_COST_LENGTHSCALE_FACTORS = (1.0, (0.25, 1.0), (1.0, 0.25), 0.5)
COST_OUTPUT_SCALE_FRACTION = 0.5  # default cost output scale (cost GP prior sd), as a fraction of b
EVALUATIONS = 20  # search evaluations before operation: the paper's ~20 (pls experiment's default too)
EXPLORATION_FRACTION = 0.4  # of them spent in stage 1 (docs/method.md, "Stage split")
STAGE_ONE_EVALUATIONS = math.ceil(EXPLORATION_FRACTION * EVALUATIONS)
SEED_RETURN_QUANTILES = (0.5, 0.75)  # seed box along R from the dataset (seed_reward_range_from_returns)


def seed_reward_range_from_returns(reward_returns, cost_returns, seed_cost_max: float,
                                   quantiles: tuple[float, float] = SEED_RETURN_QUANTILES,
                                   terminated=None) -> tuple[float, float]:
    """The seed box along R that the dataset demonstrates as safe: the median to upper-quartile reward
    return of the episodes whose cost return is <= `seed_cost_max` (the seed box's top G) and that did
    not end by termination (`terminated`, one flag per episode; None counts every episode).

    Why: Z0 must be known safe (Assumption 7), and a CDT asked for (R, G) that its data show at cost <= G
    behaves like those episodes; the paper's boxes fit DSRL's datasets, not necessarily ours. A fall is
    cheap in cost only because it ends the episode, so only episodes that run to their time limit
    demonstrate a safe target (docs/method.md, "Seed box Z0 from our data").
    """
    import numpy as np

    rewards, costs = np.asarray(reward_returns, float), np.asarray(cost_returns, float)
    keep = np.isfinite(rewards) & (costs <= seed_cost_max)
    if terminated is not None:
        keep &= ~np.asarray(terminated, bool)
    safe = rewards[keep]
    if len(safe) < 5:
        ended = "" if terminated is None else " that ran to their time limit"
        raise OptimizerConfigError(f"the dataset has {len(safe)} episodes{ended} with cost return <= "
                                   f"{seed_cost_max:g}; a data-derived seed box needs at least 5. Use the "
                                   "task's seed box instead, or collect more low-cost episodes")
    lo, hi = (float(np.quantile(safe, q)) for q in quantiles)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


@dataclass
class OptimizerConfig:
    """Settings of the online target-return optimizer.

    Choices where the paper is silent (pls-method.md §3), each overridable; why each default is what it
    is, with its measurements: docs/method.md ("Optimizer" and "The safety certificate").

    * Safety certificate. A target is certified safe only if the upper confidence bound of its cost is
      <= b under every cost kernel in `cost_lengthscale_factors` (the configured `cost_lengthscale`
      times each factor), so a response steeper than the configured kernel assumes is not extrapolated
      into. [1.0] (the dataclass default) is the paper's single kernel; `for_task` (every deployment
      and experiment) uses ROBUST_COST_LENGTHSCALE_FACTORS. With `cost_kernel_evidence` = k a kernel
      whose log marginal likelihood falls more than k below the best one's stops counting (null: all
      always count: a stationary kernel fitted to flat data before a knee rejects the short lengthscales
      that would have been right after it).
    * Output scaling. The cost GP models cost / `cost_output_scale` (default: b / 2), so the paper's
      cost variance 1 is a prior sd of b / 2: with alpha_1 >= 4 an untested target's prior upper bound is
      above b and only Z0 is safe before data, while certification does not need data closer than that
      guarantee requires. The reward GP models reward / `reward_output_scale` (default 1, raw returns:
      the paper's reward variance 100 and lengthscale 100 are sized for raw velocity-task returns).
    * Prior mean. "target" (the cost GP's default) centres a GP on the commanded return (R or G), the
      leading term of the paper's Theorem 1 (J(pi_z) = z + GP term + small bias). "zero" is SafeOpt's
      zero-mean GP. "evidence" (the reward GP's default; reward only) keeps the reward GP under both and
      uses the one with the higher log marginal likelihood so far (confidence.py), for models whose
      reward does not follow the commanded R. `reward_trend_slope_sd` > 0 adds a linear trend in R to the
      reward GP, marginalised exactly (trend.py); 0 (default): the paper's prior.
    * Noise. `*_noise_variance` is the variance, in raw units squared, of one evaluation (the mean of
      `episodes_per_evaluation` episodes). With `noise_from_episodes` (default) each evaluation's noise
      is measured instead, never below the configured value: a model whose episodes spread more earns
      wider bounds, not false confidence.
    * Kernels. A lengthscale is one number (isotropic) or [l_R, l_G]. Hyperparameters are fixed unless
      `fit_hyperparameters` is true (marginal likelihood maximised after every evaluation; the safety
      guarantee assumes fixed kernels, so off by default).
    * Operation. The operation target is the evaluated safe-set member with the best measured reward
      whose measured cost plus `operation_cost_margin_se` standard errors is <= b (null: any evaluated
      member, the paper's rule); if none passes, the best member. A seed target stays in the safe set
      whatever its episodes show (it is safe by assumption), so its own measurements must clear b too.
    * Per-episode cost. The paper observes each evaluation's mean cost, so b bounds a target's *expected*
      cost. `episode_cost_quantile` = q makes the cost GP observe the q-quantile of the evaluation's
      episodes (noise from the order statistics that bracket it), so a certified target has at most a
      1 - q share of episodes above b; `episode_cost_margin_sd` = k observes mean + k x sd instead (about
      the 1 - Phi(-k) quantile if costs were normal; noise: the sample variance x (1 / n + k^2 / (2 (n -
      1)))). Both null / 0 (default): the paper's mean. The operation margin and random search's
      feasibility read the same statistic.
    * Budget. Stage 1 ends after `max_exploration_iterations` evaluations, stage 2 after
      `max_maximisation_iterations`; the defaults are `pls experiment`'s split of 20 evaluations.
    * Delta (failure probability) 0.05; zeta (stage-1 tolerance on the cost width u - l, raw cost units)
      defaults to 0.5 * threshold when unset: the paper states neither.
    """


    threshold: float  # b: largest acceptable expected cost return
    reward_range: tuple[float, float]  # grid bounds on target reward R
    cost_range: tuple[float, float]  # grid bounds on target cost G
    seed_reward_range: tuple[float, float]  # Z0: every grid point inside this box is a known-safe seed
    seed_cost_range: tuple[float, float]
    method: str = "pls"  # pls | fixed | gp_ucb | random
    grid_resolution: tuple[int, int] = (41, 41)  # number of grid points along R and along G
    delta: float = 0.05  # failure probability in alpha_N = sqrt(2 log(|Z| N^2 pi^2 / (6 delta)))
    zeta: float | None = None  # stage 1 ends when every expander's cost width is <= zeta; None: 0.5 * b
    lipschitz: float | None = None  # L (raw cost per raw target unit); None or 0: GP-based expanders
    boundary_fallback: bool = True  # stage 1 samples the unsafe set's border when no expander passes
    episodes_per_evaluation: int = 20  # varpi: episodes averaged into one GP observation
    max_exploration_iterations: int = STAGE_ONE_EVALUATIONS  # stage-1 cap (seed evaluation included)
    max_maximisation_iterations: int = EVALUATIONS - STAGE_ONE_EVALUATIONS  # stage-2 cap
    seed: int = 0  # tie-breaking and random-search RNG: derived from (seed, iteration)
    operation_cost_margin_se: float | None = 2.0  # operate where measured mean cost + k SE <= b; None: off
    episode_cost_margin_sd: float = 0.0  # cost observed: episodes' mean + k x their sd; 0: paper's mean
    episode_cost_quantile: float | None = None  # cost observed: the episodes' q-quantile; None: their mean
    reward_lengthscale: float | tuple[float, float] = 100.0
    reward_kernel_variance: float = 100.0  # the reward kernel's prior variance (GPyTorch's outputscale)
    cost_lengthscale: float | tuple[float, float] = 5.0
    cost_lengthscale_factors: tuple[float, ...] = (1.0,)  # cost kernels: cost_lengthscale x each (for_task:
    #                                                       ROBUST_COST_LENGTHSCALE_FACTORS; (1,): the paper)
    cost_kernel_evidence: float | None = None  # drop a kernel whose log evidence is this far below the best
    cost_kernel_variance: float = 1.0  # the cost kernel's prior variance, in units of cost_output_scale^2
    reward_noise_variance: float = 25.0
    cost_noise_variance: float = 1.0
    noise_from_episodes: bool = True  # per-evaluation noise = max(configured, sample variance / episodes)
    reward_output_scale: float = 1.0
    cost_output_scale: float | None = None  # None: COST_OUTPUT_SCALE_FRACTION x the threshold b
    reward_prior_mean: str = "evidence"  # evidence (the better-fitting of target and zero) | target | zero
    cost_prior_mean: str = "target"
    reward_trend_slope_sd: float = 0.0  # > 0: learn J ~ prior + a + s R (prior sd of s); 0: the paper's prior
    fit_hyperparameters: bool = False
    fit_iterations: int = 50  # Adam steps per fit when fit_hyperparameters is true
    max_episode_length: int | None = None  # H: episodes longer than this are rejected
    cost_return_limits: tuple[float, float | None] = (0.0, None)  # valid costs; None: H (cost <= 1 per step)
    reward_return_limits: tuple[float | None, float | None] = (None, None)  # valid reward returns
    dataset_reward_min: float | None = None  # for normalised reporting (paper metric)
    dataset_reward_max: float | None = None  # fixed baseline's R (OSRL's CDT evaluation); also reporting
    task: str | None = None  # informational
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes, stored, never interpreted

    def __post_init__(self) -> None:
        self._coerce()
        self._validate()

    # --- derived values -------------------------------------------------------------------------------

    @property
    def effective_zeta(self) -> float:
        return 0.5 * self.threshold if self.zeta is None else self.zeta

    @property
    def effective_cost_output_scale(self) -> float:
        if self.cost_output_scale is None:
            return COST_OUTPUT_SCALE_FRACTION * self.threshold
        return self.cost_output_scale

    @property
    def cost_return_ceiling(self) -> float:
        """Largest possible cost return: the configured limit, else H (per-step cost <= 1), else inf."""
        if self.cost_return_limits[1] is not None:
            return float(self.cost_return_limits[1])
        return float(self.max_episode_length) if self.max_episode_length is not None else math.inf

    # --- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OptimizerConfig:
        if not isinstance(d, dict):
            raise OptimizerConfigError(f"optimizer config must be a mapping, got {type(d).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in d if k not in known]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise OptimizerConfigError(f"unknown optimizer config key(s): {', '.join(hints)}; valid keys: "
                                       f"{', '.join(known)}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise OptimizerConfigError(f"optimizer config is missing required key(s): {', '.join(missing)}; "
                                       "set them, or build the config with OptimizerConfig.for_task(...)")
        try:
            return cls(**d)
        except TypeError as exc:
            raise OptimizerConfigError(f"invalid optimizer config: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path, *, dataset_stats: dict | None = None,
                  **overrides: Any) -> OptimizerConfig:
        """The settings a YAML file of overrides describes: the task's derived defaults (`for_task` on the
        threshold b, or `for_model_stats` when the model's `dataset_stats` are given), then the file's keys,
        then `overrides` (e.g. threshold=40.0, task=...). So every b-relative default follows b unless the
        file sets that key itself. A file naming no known task must give every required key.
        """
        import yaml

        text = Path(path).read_text()
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise OptimizerConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise OptimizerConfigError(f"{path}: expected a mapping of optimizer keys at the top level")
        try:
            return cls._from_overrides(data, overrides, dataset_stats)
        except OptimizerConfigError as exc:
            raise OptimizerConfigError(f"{path}: {exc}") from None

    @classmethod
    def _from_overrides(cls, data: dict[str, Any], overrides: dict[str, Any],
                        dataset_stats: dict | None) -> OptimizerConfig:
        from pls_core.tasks import TASKS

        task = overrides.get("task", data.get("task"))
        if data.get("task") is not None and task != data["task"]:
            raise OptimizerConfigError(f"the file is for task {data['task']!r} but task {task!r} was asked "
                                       "for; remove its task key (defaults then follow the task), or use the "
                                       "file written for that task")
        explicit = {**data, **overrides}
        if task is None and "reward_range" not in explicit:
            raise OptimizerConfigError("no task named: a file of overrides needs the task its defaults come "
                                       "from (task=... when loading, or a task key; known: "
                                       f"{', '.join(TASKS)})")
        if task not in TASKS:
            if dataset_stats is not None:
                raise OptimizerConfigError(f"dataset statistics were given but task {task!r} is not a known "
                                           f"task ({', '.join(TASKS)}); name the task in the file")
            return cls.from_dict(explicit)
        threshold = explicit.pop("threshold", None)
        base = cls.for_task(task, threshold) if dataset_stats is None else \
            cls.for_model_stats(task, dataset_stats, threshold)
        return cls.from_dict({**base.to_dict(), **explicit})

    @classmethod
    def for_task(cls, task_id: str, threshold: float | None = None, *,
                 dataset_reward_min: float | None = None, dataset_reward_max: float | None = None,
                 dataset_cost_max: float | None = None, seed_reward_range: tuple[float, float] | None = None,
                 **overrides: Any) -> OptimizerConfig:
        """The defaults: grid, seed box, kernels and limits from pls_core.tasks, the threshold b and
        optional dataset statistics; `overrides` replace any key. Every b-relative setting scales with b.

        Grid: R from the low end of the seed range up to the highest return the model was trained to reach
        (max of the task's relabelling ceiling and the dataset's max return); G from 0 to min(2b, dataset
        max cost). Steps: a quarter of the reward lengthscale along R (a point is certified only within a
        fraction of a lengthscale of data, so a coarser step stalls the safe set), 1 cost unit along G.
        Cost kernel: COST_R_LENGTHSCALE_FACTOR x the reward lengthscale along R, COST_G_LENGTHSCALE_FRACTION
        x b along G (the prior's typical slope along G, sd / l_G, is then the same at every b), prior sd
        COST_OUTPUT_SCALE_FRACTION x b; the certificate also holds the shorter kernels of
        ROBUST_COST_LENGTHSCALE_FACTORS (the dataclass default, one kernel, is the paper's). Reward kernel:
        the paper's lengthscale along R, REWARD_G_LENGTHSCALE_FRACTION x b along G (isotropic raw units
        made it flat over G, so stage 2 could not see that reward rises with the cost budget); it only
        steers choices, never safety.
        `seed_reward_range` replaces the task's (paper) seed box along R, e.g. one derived from the
        dataset with `seed_reward_range_from_returns`; the grid then starts at its low end.
        """

        from pls_core.tasks import get_task

        spec = get_task(task_id)
        b = float(threshold if threshold is not None else spec.thresholds[0])
        reward_ls, reward_var = spec.reward_kernel
        seed_r = tuple(float(v) for v in (seed_reward_range or spec.seed_reward_range))
        r_lo = seed_r[0]
        r_hi = max(seed_r[1], float(spec.relabel_max_reward),
                   float(dataset_reward_max) if dataset_reward_max is not None else -math.inf)
        cost_cap = float(dataset_cost_max) if dataset_cost_max is not None else float(spec.max_cost)
        g_hi = max(min(2.0 * b, cost_cap), float(spec.seed_cost_range[1]))
        resolution = (int(round((r_hi - r_lo) / (0.25 * reward_ls))) + 1, int(round(g_hi)) + 1)
        base: dict[str, Any] = dict(
            task=task_id, threshold=b, reward_range=(r_lo, r_hi), cost_range=(0.0, g_hi),
            seed_reward_range=seed_r, seed_cost_range=tuple(spec.seed_cost_range),
            grid_resolution=(max(resolution[0], 2), max(resolution[1], 2)),
            reward_lengthscale=(reward_ls, REWARD_G_LENGTHSCALE_FRACTION * b),
            reward_kernel_variance=reward_var,
            cost_lengthscale=(COST_R_LENGTHSCALE_FACTOR * reward_ls, COST_G_LENGTHSCALE_FRACTION * b),
            cost_output_scale=COST_OUTPUT_SCALE_FRACTION * b,  # explicit, so stored configs record it
            cost_lengthscale_factors=ROBUST_COST_LENGTHSCALE_FACTORS,
            max_episode_length=spec.episode_len, cost_return_limits=(0.0, float(spec.episode_len)),
            dataset_reward_min=dataset_reward_min, dataset_reward_max=dataset_reward_max)
        return cls.from_dict({**base, **overrides})

    @classmethod
    def for_model_stats(cls, task_id: str, dataset_stats: dict, threshold: float | None = None,
                        **overrides: Any) -> OptimizerConfig:
        """`for_task` filled from a model contract's `dataset_stats` (what `pls train` recorded of its
        data): the grid reaches the data's returns and the seed box along R is the one its data show
        safe, when the contract carries one (models exported before it did keep the task's box)."""
        seed_range = dataset_stats.get("seed_reward_range")
        return cls.for_task(
            task_id, threshold, dataset_reward_min=float(dataset_stats["reward_return_min"]),
            dataset_reward_max=float(dataset_stats["reward_return_max"]),
            dataset_cost_max=float(dataset_stats["cost_return_max"]),
            seed_reward_range=tuple(seed_range) if seed_range else None, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists); `from_dict(to_dict())` round-trips."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> OptimizerConfig:
        return OptimizerConfig.from_dict({**self.to_dict(), **changes})

    # --- validation -----------------------------------------------------------------------------------

    def _coerce(self) -> None:
        for name in ("reward_range", "cost_range", "seed_reward_range", "seed_cost_range",
                     "cost_return_limits", "reward_return_limits", "grid_resolution"):
            value = getattr(self, name)
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise OptimizerConfigError(f"{name} must be a pair [low, high], got {value!r}")
            setattr(self, name, tuple(value))
        factors = self.cost_lengthscale_factors
        if isinstance(factors, int | float) and not isinstance(factors, bool):
            factors = (factors,)
        if not isinstance(factors, list | tuple) or not factors or \
                any(isinstance(f, list | tuple) and len(f) != 2 for f in factors):
            raise OptimizerConfigError(f"cost_lengthscale_factors must be a list of factors > 0, each one "
                                       f"number or a pair [f_R, f_G], e.g. [1.0, [0.25, 1.0], 0.5], got "
                                       f"{factors!r}")
        self.cost_lengthscale_factors = tuple(tuple(f) if isinstance(f, list | tuple) else f for f in factors)
        for name in ("reward_lengthscale", "cost_lengthscale"):
            value = getattr(self, name)
            if isinstance(value, list | tuple):
                if len(value) != 2:
                    raise OptimizerConfigError(f"{name} must be one number or [l_R, l_G], got {value!r}")
                setattr(self, name, (float(value[0]), float(value[1])))
        if isinstance(self.grid_resolution[0], float) or isinstance(self.grid_resolution[1], float):
            if not all(float(v).is_integer() for v in self.grid_resolution):
                raise OptimizerConfigError(f"grid_resolution must be two integers, got "
                                           f"{self.grid_resolution!r}")
            self.grid_resolution = (int(self.grid_resolution[0]), int(self.grid_resolution[1]))

    def _validate(self) -> None:
        def positive(name: str, value: Any) -> None:
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) \
                    or value <= 0:
                raise OptimizerConfigError(f"{name} must be a finite number > 0, got {value!r}")

        def non_negative(name: str, value: Any, meaning: str) -> None:
            """`meaning` follows ">= 0" in the message: the unit, what 0 (or null) means."""
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) \
                    or value < 0:
                raise OptimizerConfigError(f"{name} must be a number >= 0 {meaning}, got {value!r}")

        def integer(name: str, value: Any, low: int, meaning: str = "") -> None:
            """`meaning` follows ">= low" in the message (e.g. " or null")."""
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise OptimizerConfigError(f"{name} must be an integer >= {low}{meaning}, got {value!r}")

        def interval(name: str, pair: tuple, allow_none: bool = False, allow_point: bool = False) -> None:
            for v in pair:
                if v is None and allow_none:
                    continue
                if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                    raise OptimizerConfigError(f"{name} must hold finite numbers, got {pair!r}")
            if None not in pair and (pair[0] > pair[1] or (pair[0] == pair[1] and not allow_point)):
                raise OptimizerConfigError(f"{name} must be [low, high] with low < high, got {pair!r}")

        if self.method not in METHODS:
            raise OptimizerConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        positive("threshold", self.threshold)
        for name in ("reward_range", "cost_range"):
            interval(name, getattr(self, name))
        for name in ("seed_reward_range", "seed_cost_range"):
            interval(name, getattr(self, name), allow_point=True)
        interval("cost_return_limits", self.cost_return_limits, allow_none=True)
        interval("reward_return_limits", self.reward_return_limits, allow_none=True)
        if self.cost_return_limits[0] is None:
            raise OptimizerConfigError("cost_return_limits[0] must be a number (0 for Safety-Gymnasium)")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 2 for n in self.grid_resolution):
            raise OptimizerConfigError(f"grid_resolution must be two integers >= 2, got "
                                       f"{self.grid_resolution!r}")
        if not (isinstance(self.delta, int | float) and 0.0 < self.delta < 1.0):
            raise OptimizerConfigError(f"delta must be in (0, 1), got {self.delta!r}")
        if self.zeta is not None:
            positive("zeta", self.zeta)
        if self.lipschitz is not None:
            non_negative("lipschitz", self.lipschitz,
                         "(cost per target unit) or null (0 or null: GP-based expanders)")
        for name in ("episodes_per_evaluation", "fit_iterations"):
            integer(name, getattr(self, name), 1)
        for name in ("max_exploration_iterations", "max_maximisation_iterations", "seed"):
            integer(name, getattr(self, name), 0)
        for name in ("reward_lengthscale", "cost_lengthscale"):
            value = getattr(self, name)
            for v in value if isinstance(value, tuple) else (value,):
                positive(name, v)
        for factor in self.cost_lengthscale_factors:
            for f in factor if isinstance(factor, tuple) else (factor,):
                positive("cost_lengthscale_factors (each)", f)
        if self.cost_kernel_evidence is not None:
            non_negative("cost_kernel_evidence", self.cost_kernel_evidence,
                         "(nats of log marginal likelihood) or null (every kernel always counts)")
        for name in ("reward_kernel_variance", "cost_kernel_variance", "reward_output_scale"):
            positive(name, getattr(self, name))
        if self.cost_output_scale is not None:
            positive("cost_output_scale", self.cost_output_scale)
        for name in ("reward_noise_variance", "cost_noise_variance"):
            non_negative(name, getattr(self, name), "(0: noiseless)")
        non_negative("episode_cost_margin_sd", self.episode_cost_margin_sd,
                     "(episode standard deviations; 0: the paper's mean cost)")
        if self.episode_cost_quantile is not None:
            q = self.episode_cost_quantile
            if isinstance(q, bool) or not isinstance(q, int | float) or not 0.5 <= q < 1.0:
                raise OptimizerConfigError(f"episode_cost_quantile must be in [0.5, 1) (the share of one "
                                           f"target's episodes whose cost must stay <= b) or null, got {q!r}")
            if self.episode_cost_margin_sd > 0:
                raise OptimizerConfigError("episode_cost_quantile and episode_cost_margin_sd > 0 are two "
                                           "per-episode certificates and do not combine; set one of them")
        non_negative("reward_trend_slope_sd", self.reward_trend_slope_sd,
                     "(prior sd of the learned slope of J over R; 0: off, the paper's prior)")
        if self.operation_cost_margin_se is not None:
            non_negative("operation_cost_margin_se", self.operation_cost_margin_se,
                         "(standard errors) or null (the paper's rule: measured cost unchecked)")
        for name, allowed in (("reward_prior_mean", REWARD_PRIOR_MEANS), ("cost_prior_mean", PRIOR_MEANS)):
            if getattr(self, name) not in allowed:
                raise OptimizerConfigError(f"{name} must be one of {', '.join(allowed)}, "
                                           f"got {getattr(self, name)!r}")
        if self.reward_prior_mean == "evidence" and self.reward_trend_slope_sd > 0:
            raise OptimizerConfigError("reward_prior_mean 'evidence' and reward_trend_slope_sd > 0 are two "
                                       "answers to the same misfit and do not combine; set "
                                       "reward_trend_slope_sd to 0 or reward_prior_mean to target")
        if self.max_episode_length is not None:
            integer("max_episode_length", self.max_episode_length, 1, " or null")
        for name in ("fit_hyperparameters", "boundary_fallback", "noise_from_episodes"):
            if not isinstance(getattr(self, name), bool):
                raise OptimizerConfigError(f"{name} must be true or false")
        s_lo, s_hi = self.seed_reward_range
        g_lo, g_hi = self.seed_cost_range
        if g_hi > self.threshold:
            raise OptimizerConfigError(
                f"seed_cost_range {list(self.seed_cost_range)} reaches above the threshold b = "
                f"{self.threshold:g}: a seed target that commands more cost than b is not known to be safe "
                "(Assumption 7), and every certificate rests on the seeds. Lower seed_cost_range to at most "
                "b (the paper uses [0, 5]) or raise the threshold")
        if s_lo < self.reward_range[0] or s_hi > self.reward_range[1] or g_lo < self.cost_range[0] \
                or g_hi > self.cost_range[1]:
            raise OptimizerConfigError("the seed box (seed_reward_range x seed_cost_range) must lie inside "
                                       "the grid (reward_range x cost_range); widen the grid or shrink it")
