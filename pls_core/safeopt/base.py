"""The optimizer interface and the episode bookkeeping every method shares.

A method only chooses targets (`_choose`); this class validates and persists episodes, averages each
target's `episodes_per_evaluation` episodes into one observation, updates the confidence model, keeps the
last target on a GP numerical failure, and builds the `Decision` record. Randomness is drawn from
`rng(stream)`, seeded by (seed, iteration, stream), so a run replayed from its episodes repeats itself.
"""

from __future__ import annotations

import math
import statistics
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from pls_core.safeopt.confidence import ConfidenceModel
from pls_core.safeopt.config import OptimizerConfig
from pls_core.safeopt.errors import (
    GPNumericalError,
    InvalidEpisodeError,
    SafetyInvariantError,
    StaleEpisodeError,
)
from pls_core.safeopt.grid import MATCH_FRACTION_OF_STEP, TargetGrid
from pls_core.safeopt.records import Decision, EpisodeRecord, Phase
from pls_core.safeopt.store import OptimizerStore

TIE_RELATIVE_TOLERANCE = 1e-9  # values this close (relative to the best) count as ties
STREAM_PROPOSAL, STREAM_BEST, STREAM_RANDOM_SEARCH = 0, 1, 2


def quantile_variance(values: list[float], q: float) -> float:
    """Distribution-free variance of the empirical q-quantile of `values`: the number of values below the
    true quantile is Binomial(n, q), so the order statistics one binomial sd either side of rank n q
    bracket the quantile by about +-1 sd; half their distance, squared. No normal assumption: a heavy
    tail widens it exactly where the tail reaches the quantile."""
    ordered = sorted(values)
    n = len(ordered)
    spread = math.sqrt(n * q * (1 - q))
    lo = min(n - 1, max(0, math.floor(n * q - spread) - 1))
    hi = min(n - 1, max(0, math.ceil(n * q + spread) - 1))
    return ((ordered[hi] - ordered[lo]) / 2) ** 2


@dataclass(frozen=True)
class Choice:
    """A method's pick: the target, the phase it came from and the size of the set it was chosen from."""

    target: tuple[float, float]
    phase: Phase
    candidate_set_size: int
    note: str = ""


class TargetOptimizer(ABC):
    """Chooses target returns z = (R, G) between episodes. Use `build_optimizer` to make one.

    `report_episode` and `status` may be called from different threads (e.g. a ROS executor's callback
    and a timer); they are serialised by a lock.
    """

    method: ClassVar[str]
    # OptimizerConfig fields this method's choices never read: a change to one of them cannot change its
    # runs, so `pls experiment` keeps them (its per-run fingerprint leaves these fields out).
    unused_config_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: OptimizerConfig) -> None:
        self.config = config
        self.grid = TargetGrid.from_config(config)
        self.model = ConfidenceModel(config, self.grid)
        self.history: list[Decision] = []  # every decision, in order; history[-1] is current
        # (target, mean R, cost observation: mean G, + k sd with episode_cost_margin_sd = k)
        self.evaluations: list[tuple[tuple[float, float], float, float]] = []
        self._cost_variances: list[float] = []  # variance of each evaluation's cost observation (its noise)
        self._store: OptimizerStore | None = None
        self._episodes_here: list[EpisodeRecord] = []
        self._episode_ids: set[int] = set()
        self._episodes_total = 0
        self._rejected = 0
        self._last_rejection = ""
        self._gp_failures = 0
        self._last_gp_error = ""
        self._lock = threading.RLock()
        # robots tuned together (fleet.py): history holds rounds of this many decisions, one per robot
        self.fleet_size = 1
        self.history.append(self._decide(""))

    # --- the public interface -------------------------------------------------------------------------

    @property
    def current(self) -> Decision:
        """The target to run now."""
        return self.history[-1]

    @property
    def iteration(self) -> int:
        return self.current.iteration

    def report_episode(self, rec: EpisodeRecord) -> Decision | None:
        """Validate and record one episode; after `episodes_per_evaluation` episodes at the current target,
        update the GPs and return the new decision, else None.

        Raises InvalidEpisodeError (StaleEpisodeError for a target other than `current.target`) and
        records nothing but the rejection. The recorded target is `current.target` exactly (a target that
        went through float32 and back still matches).
        """
        with self._lock:
            return self._report(rec)

    def _report(self, rec: EpisodeRecord) -> Decision | None:
        try:
            rec = self._validated(rec)
        except InvalidEpisodeError as exc:
            self._rejected += 1
            self._last_rejection = str(exc)
            if self._store is not None:
                body = rec.to_dict() if isinstance(rec, EpisodeRecord) else {"value": repr(rec)}
                self._store.add_rejection(self.iteration, body, str(exc))
            raise
        if self._store is not None:
            self._store.add_episode(self.iteration, rec)
        decision = self._accept(rec)
        if decision is not None and self._store is not None:
            self._store.add_decision(decision)
        return decision

    def attach_store(self, store: OptimizerStore) -> None:
        """Record from now on into `store`, whose episodes this optimizer has replayed (safeopt.factory):
        its rejections count as this optimizer's."""
        with self._lock:
            self._store = store
            self._rejected = store.rejection_count()

    @property
    def episodes_at_target(self) -> int:
        """Episodes taken so far for the current evaluation (status()'s, without the rest of it)."""
        with self._lock:
            return len(self._episodes_here)

    def stored_episode_ids(self) -> set[int]:
        """Ids of the results in the attached store, accepted or rejected (empty without a store)."""
        with self._lock:
            return self._store.episode_ids() if self._store is not None else set()

    def status(self) -> dict[str, Any]:
        """A flat summary for logs and the SupervisorStatus message."""
        with self._lock:
            return self._status()

    def _status(self) -> dict[str, Any]:
        d = self.current
        status = {
            "method": self.method, "phase": d.phase.value, "phase_code": d.phase.code,
            "iteration": d.iteration,
            "target": list(d.target), "verified_safe": d.verified_safe, "threshold": d.threshold,
            "episodes_at_target": self.episodes_at_target,
            "episodes_per_evaluation": self.config.episodes_per_evaluation,
            "episodes_total": self._episodes_total, "episodes_rejected": self._rejected,
            "last_rejection": self._last_rejection, "num_observations": d.num_observations,
            "safe_set_size": d.safe_set_size, "candidate_set_size": d.candidate_set_size,
            "grid_size": self.grid.size, "best_target": list(d.best_target),
            "best_predicted_reward": d.best_predicted_reward, "best_cost_upper": d.best_cost_upper,
            "best_reward_lower": float(self.model.reward_bounds()[0][self.grid.index_of(d.best_target)]),
            "reward_bounds": list(d.reward_bounds), "cost_bounds": list(d.cost_bounds),
            "gp_failures": self._gp_failures, "last_gp_error": self._last_gp_error,
            "confidence_conflicts": self.model.conflicts, "reward_prior": self.model.reward_prior,
            "note": d.note,
            "store": str(self._store.path) if self._store is not None else None,
        }
        r_min, r_max = self.config.dataset_reward_min, self.config.dataset_reward_max
        if r_min is not None and r_max is not None and r_max > r_min:
            status["best_predicted_reward_normalised"] = (d.best_predicted_reward - r_min) / (r_max - r_min)
        return status

    # --- for subclasses -------------------------------------------------------------------------------

    @abstractmethod
    def _choose(self) -> Choice:
        """The next target, given `self.model`, `self.history` and `self.evaluations`."""

    def _check_choice(self, choice: Choice) -> None:
        """Invariants every proposal meets; methods add their own (PLS: inside the safe set)."""
        if len(choice.target) != 2 or not all(math.isfinite(v) for v in choice.target):
            raise SafetyInvariantError(f"{self.method} proposed a non-finite target {choice.target}")

    def _round_phases(self) -> list[Phase]:
        """The phases of the rounds decided before the one being decided now, oldest first. A round is
        `fleet_size` consecutive decisions (one per robot) and its phase is its first member's; caps that
        count time count these (PLS's stage 2, the baselines' budget). With one robot a round is one
        decision and this is every decision's phase."""
        n = self.fleet_size
        done = len(self.history) - len(self.history) % n
        return [d.phase for d in self.history[:done:n]]

    def rng(self, stream: int) -> np.random.Generator:
        """Randomness for the decision being made now: a function of (seed, iteration, stream) only."""
        return np.random.default_rng([self.config.seed, len(self.history), stream])

    def pick(self, indices: np.ndarray, scores: np.ndarray, stream: int = STREAM_PROPOSAL) -> int:
        """The index with the highest score; ties (within TIE_RELATIVE_TOLERANCE) broken at random."""
        best = scores.max()
        tied = np.sort(indices[np.abs(scores - best) <= TIE_RELATIVE_TOLERANCE * max(1.0, abs(best))])
        return int(tied[0]) if len(tied) == 1 else int(self.rng(stream).choice(tied))

    def best_safe_index(self) -> int:
        """Operation choice: the evaluated safe target with the highest observed mean reward, among those
        whose measured cost clears b by `operation_cost_margin_se` standard errors (all of them if none
        does).

        Only targets that were actually run count (Theorem 3 promises a near-optimal *sample*), and they
        are ranked by what was measured there (the mean over all their evaluations), not by the reward
        GP: its prior mean J = z and fixed kernel can be far off for a model whose return ignores R, and
        then rank an unmeasured or poorly measured target above a better measured one.
        Safety comes from the GP (only safe-set members qualify) and, for the target held from then on,
        from its own episodes too: a seed target is safe by assumption whatever it measured
        (OptimizerConfig's "Operation" note). Before any evaluation, the whole safe set (the seed box)
        is the candidate, ranked by the reward lower bound.
        """
        safe = self.model.safe
        observed = {index: numbers for index, numbers in self._evaluations_by_index().items() if safe[index]}
        if observed:
            candidates = np.array(sorted(observed), dtype=np.int64)
            if self.config.operation_cost_margin_se is not None:
                clear = np.array([self._measured_cost_clears_threshold(observed[i]) for i in candidates])
                if clear.any():
                    candidates = candidates[clear]
            means = np.array([math.fsum(self.evaluations[n][1] for n in observed[i]) / len(observed[i])
                              for i in candidates])
            return self.pick(candidates, means, STREAM_BEST)
        candidates = np.flatnonzero(safe)
        if candidates.size == 0:  # nothing is safe (refuted seed box): report the last target, unverified
            return self.grid.index_of(self.current.target) or 0
        lower, _ = self.model.reward_bounds()
        return self.pick(candidates, lower[candidates], STREAM_BEST)

    def operation_note(self, index: int) -> str:
        """Why a held target is short of the operation rule, or "" (best_safe_index falls back to the best
        safe-set member when no evaluated one clears the measured-cost margin)."""
        margin = self.config.operation_cost_margin_se
        numbers = self._evaluations_by_index().get(index, [])
        if margin is None or not numbers or self._measured_cost_clears_threshold(numbers):
            return ""
        return (f"no evaluated safe target's measured cost clears b = {self.config.threshold:g} by "
                f"{margin:g} standard errors; holding the best safe-set member")

    # --- internals ------------------------------------------------------------------------------------

    def _evaluations_by_index(self) -> dict[int, list[int]]:
        """Grid index -> the numbers (positions in `self.evaluations`) of the evaluations run there."""
        by_index: dict[int, list[int]] = {}
        for number, (target, _, _) in enumerate(self.evaluations):
            index = self.grid.index_of(target)
            if index is not None:
                by_index.setdefault(index, []).append(number)
        return by_index

    def _measured_cost_clears_threshold(self, numbers: list[int]) -> bool:
        """Whether the mean of these evaluations' costs plus `operation_cost_margin_se` standard errors
        (each evaluation's noise, combined for their mean) is <= b."""
        m = len(numbers)
        mean = math.fsum(self.evaluations[n][2] for n in numbers) / m
        standard_error = math.sqrt(math.fsum(self._cost_variances[n] for n in numbers)) / m
        return mean + self.config.operation_cost_margin_se * standard_error <= self.config.threshold

    def _accept(self, rec: EpisodeRecord) -> Decision | None:
        """Count a validated episode; on the last one of an evaluation, update and decide."""
        self._episodes_here.append(rec)
        self._episodes_total += 1
        if rec.episode is not None:
            self._episode_ids.add(rec.episode)
        if len(self._episodes_here) < self.config.episodes_per_evaluation:
            return None
        episodes, self._episodes_here = self._episodes_here, []
        note = self._evaluate(self.current.target, episodes)
        self.history.append(self._decide(note))
        return self.current

    def _evaluate(self, target: tuple[float, float], episodes: list[EpisodeRecord]) -> str:
        """Average one evaluation's episodes into an observation at `target` and update the model; a note
        on a GP numerical failure (the model then keeps its state), else ""."""
        reward = math.fsum(e.reward_return for e in episodes) / len(episodes)
        cost = self._cost_observation(episodes)
        reward_noise, cost_noise = self._measured_noise(episodes)
        self.evaluations.append((target, reward, cost))
        self._cost_variances.append(self.config.cost_noise_variance if cost_noise is None else cost_noise)
        note = ""
        try:
            self.model.observe(target, reward, cost, reward_noise, cost_noise)
        except GPNumericalError as exc:
            self._gp_failures += 1
            self._last_gp_error = str(exc)
            note = f"GP numerical failure ({exc}); kept the last verified safe target"
        return note

    def _cost_observation(self, episodes: list[EpisodeRecord]) -> float:
        """What the cost GP observes for one evaluation: the episodes' mean cost (the paper), plus
        `episode_cost_margin_sd` of their standard deviations (OptimizerConfig's "Per-episode cost").
        A single episode has no measurable spread; it takes the configured one."""
        costs = [e.cost_return for e in episodes]
        if self.config.episode_cost_quantile is not None:
            return float(np.quantile(costs, self.config.episode_cost_quantile))
        mean = math.fsum(costs) / len(costs)
        k = self.config.episode_cost_margin_sd
        if k == 0:
            return mean
        if len(costs) >= 2:
            sd = statistics.stdev(costs)
        else:
            sd = math.sqrt(self.config.cost_noise_variance * self.config.episodes_per_evaluation)
        return mean + k * sd

    def _measured_noise(self, episodes: list[EpisodeRecord]) -> tuple[float | None, float | None]:
        """Noise variances of this evaluation's observations: the episodes' own spread (sample variance
        / count; for the cost, the variance of mean + k sd when `episode_cost_margin_sd` = k > 0),
        floored at the configured values; None (configured values) when switched off or for a single
        episode, whose spread cannot be measured."""
        if not self.config.noise_from_episodes or len(episodes) < 2:
            return None, None
        n = len(episodes)
        k = self.config.episode_cost_margin_sd
        reward_var = statistics.variance([e.reward_return for e in episodes]) / n
        costs = [e.cost_return for e in episodes]
        if self.config.episode_cost_quantile is not None:
            cost_var = quantile_variance(costs, self.config.episode_cost_quantile)
        else:
            cost_var = statistics.variance(costs) * (1 / n + k * k / (2 * (n - 1)))
        return (max(self.config.reward_noise_variance, reward_var),
                max(self.config.cost_noise_variance, cost_var))

    def _decide(self, note: str, pending: tuple[tuple[float, float], ...] = ()) -> Decision:
        """The next decision. `pending`: targets already proposed in this round and not yet evaluated
        (fleet.py): the method chooses on the model conditioned on them (`ConfidenceModel.fantasised`), but
        the choice is checked, and its bounds and verdict computed, on the real model."""
        if note:  # GP failure: the model did not change, so the last target is as safe as it was
            last = self.history[-self.fleet_size]  # this robot's last decision (one robot: current)
            choice = Choice(last.target, last.phase, last.candidate_set_size)
        elif pending:
            real = self.model
            self.model = real.fantasised(pending)
            try:
                choice = self._choose()
            finally:
                self.model = real
        else:
            choice = self._choose()
        self._check_choice(choice)
        note = note or choice.note
        model = self.model
        reward_bounds, cost_bounds = model.bounds_at(choice.target)
        best = self.best_safe_index()
        index = self.grid.index_of(choice.target)
        verified = bool(model.safe[index]) if index is not None else cost_bounds[1] <= self.config.threshold
        return Decision(
            iteration=len(self.history), phase=choice.phase, target=choice.target,
            reward_bounds=reward_bounds, cost_bounds=cost_bounds,
            safe_set_size=0 if choice.phase is Phase.HALTED else int(model.safe.sum()),  # nothing is trusted
            candidate_set_size=choice.candidate_set_size, num_observations=model.num_observations,
            best_target=self.grid.target(best), best_predicted_reward=float(model.reward_mean()[best]),
            best_cost_upper=float(model.cost_upper[best]), threshold=self.config.threshold,
            verified_safe=bool(verified), note=note)

    def _validated(self, rec: EpisodeRecord, decision: Decision | None = None) -> EpisodeRecord:
        """`rec` checked against `decision` (default: `current`), the decision it must have run."""
        decision = self.current if decision is None else decision
        if not isinstance(rec, EpisodeRecord):
            raise InvalidEpisodeError(f"expected an EpisodeRecord, got {type(rec).__name__}; build one with "
                                      "EpisodeRecord(target, reward_return, cost_return, length, ...)")
        try:
            target = (float(rec.target[0]), float(rec.target[1]))
            if len(rec.target) != 2:
                raise ValueError
        except (TypeError, ValueError, IndexError):
            raise InvalidEpisodeError(f"target must be a pair (R, G) of numbers, got {rec.target!r}") \
                from None
        if decision.phase is Phase.HALTED:
            raise StaleEpisodeError(f"the optimizer is halted ({decision.note}); episodes run after the "
                                    "halt are not used")
        current = decision.target
        steps = self.grid.steps
        if any(not math.isfinite(t) or abs(t - c) > MATCH_FRACTION_OF_STEP * s
               for t, c, s in zip(target, current, steps, strict=True)):
            raise StaleEpisodeError(
                f"episode ran with target {target} but the current target is {current} (iteration "
                f"{decision.iteration}); it was discarded. Start every episode with optimizer.current.target "
                "and report it before starting the next one")
        values = {}
        for name in ("reward_return", "cost_return"):
            value = getattr(rec, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
                raise InvalidEpisodeError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidEpisodeError(f"{name} is {value}: the episode's return is not finite; it was "
                                          "discarded. Check the environment and policy output for NaN/inf")
            values[name] = float(value)
        length = rec.length
        if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
            raise InvalidEpisodeError(f"length must be an integer >= 1, got {length!r}")
        h = self.config.max_episode_length
        if h is not None and length > h:
            raise InvalidEpisodeError(f"length {length} exceeds max_episode_length {h}; report one episode "
                                      "per record, or raise max_episode_length in the optimizer config")
        c_lo, c_hi = self.config.cost_return_limits[0], self.config.cost_return_ceiling
        if not c_lo <= values["cost_return"] <= c_hi:
            raise InvalidEpisodeError(f"cost_return {values['cost_return']} is outside [{c_lo}, {c_hi}] "
                                      "(cost_return_limits / episode length); report the raw, undiscounted "
                                      "episode cost, or fix cost_return_limits")
        r_lo, r_hi = self.config.reward_return_limits
        if (r_lo is not None and values["reward_return"] < r_lo) or \
                (r_hi is not None and values["reward_return"] > r_hi):
            raise InvalidEpisodeError(f"reward_return {values['reward_return']} is outside "
                                      f"reward_return_limits [{r_lo}, {r_hi}]; report the raw, undiscounted "
                                      "return, or widen the limits")
        if rec.episode is not None:
            if isinstance(rec.episode, bool) or not isinstance(rec.episode, int | np.integer):
                raise InvalidEpisodeError(f"episode must be an integer or None, got {rec.episode!r}")
            if int(rec.episode) in self._episode_ids:
                raise InvalidEpisodeError(f"episode {rec.episode} was already recorded; each episode is "
                                          "reported once (after a restart, continue from "
                                          "status()['episodes_total'])")
        return EpisodeRecord(current, values["reward_return"], values["cost_return"], int(length),
                             bool(rec.terminated), bool(rec.truncated),
                             None if rec.episode is None else int(rec.episode), str(rec.reason))
