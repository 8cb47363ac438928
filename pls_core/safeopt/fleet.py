"""A fleet of N identical robots tuned by one optimizer: each round, a batch of N targets, one per robot.

Round r: robot k runs target `batch[k]` for `episodes_per_evaluation` episodes; once every robot's
evaluation is in, the N observations update the GPs (in robot order, so the state does not depend on the
order the episodes arrived in) and the next batch is chosen, one member after another:

* member 0 is exactly the single-robot decision (the method's `_choose` on the real posterior);
* member k > 0 is the method's same rule on the model conditioned on members 0..k-1 as pending
  observations at their posterior means (kriging believer, `ConfidenceModel.fantasised`): the means do
  not move, the widths shrink around the pending targets, so the widest-expander rule (stage 1) and the
  reward upper bound (stage 2) look elsewhere and the batch spreads out;
* every member is then checked and reported on the real model (base._decide): PLS refuses any member
  outside the real safe set (SafetyInvariantError), and `verified_safe` is the real verdict. A fantasy
  never certifies anything: the fantasised model keeps the real safe set, and its intervals only narrow.

Stage caps: stage 1's (`max_exploration_iterations`) counts evaluations, pending members included, so a
fleet ends safe expansion once it has as much stage-1 data as one robot would (its ζ rule and cap are
about data); stage 2's (`max_maximisation_iterations`) counts rounds (a round's phase is its member 0's,
base._round_phases), because climbing toward the reward extends the certificate one step beyond the
data per round, whatever N. The baselines' budget counts rounds. With N = 1 a round is one decision and
nothing differs from the single-robot optimizer (tests check decision by decision). docs/method.md, "A
fleet of robots", gives the measurements behind this split.

Store: the members of a round are consecutive decisions (iteration = round x N + k), each episode is
stored under its robot's decision, and the fleet size is recorded; resuming replays the episodes through
a fresh fleet and checks every stored decision (`build_fleet`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pls_core.safeopt.base import TargetOptimizer
from pls_core.safeopt.config import OptimizerConfig
from pls_core.safeopt.errors import InvalidEpisodeError, StaleEpisodeError, StoreMismatchError
from pls_core.safeopt.records import Decision, EpisodeRecord, Phase
from pls_core.safeopt.store import OptimizerStore


class FleetOptimizer:
    """One optimizer, N robots. `batch[k]` is robot k's Decision; `report_episode(k, rec)` returns the
    next batch once every robot has reported its evaluation's episodes, else None. Thread-safe."""

    def __init__(self, optimizer: TargetOptimizer, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"a fleet has at least one robot, got size {size!r}")
        if len(optimizer.history) != 1 or optimizer.evaluations:
            raise ValueError("a fleet starts from a fresh optimizer (one decision, no evaluations)")
        self.optimizer, self.size = optimizer, size
        optimizer.fleet_size = size
        self._episodes: list[list[EpisodeRecord]] = [[] for _ in range(size)]
        self._store: OptimizerStore | None = None
        self._lock = threading.RLock()
        self._extend_batch(note="", members=range(1, size))  # member 0 is the optimizer's first decision

    # --- the public interface -------------------------------------------------------------------------

    @property
    def config(self) -> OptimizerConfig:
        return self.optimizer.config

    @property
    def history(self) -> list[Decision]:
        """Every member of every round, in order: history[r * size + k] is robot k's target in round r."""
        return self.optimizer.history

    @property
    def batch(self) -> list[Decision]:
        """This round's targets, one per robot."""
        return self.optimizer.history[-self.size:]

    @property
    def round(self) -> int:
        return len(self.optimizer.history) // self.size - 1

    @property
    def halted(self) -> bool:
        return self.batch[0].phase is Phase.HALTED

    @property
    def episodes_total(self) -> int:
        return self.optimizer._episodes_total

    def episodes_needed(self, member: int) -> int:
        """Episodes robot `member` still owes this round's evaluation (0: it waits for the others)."""
        return self.config.episodes_per_evaluation - len(self._episodes[member])

    def report_episode(self, member: int, rec: EpisodeRecord) -> list[Decision] | None:
        """Validate and record one episode of robot `member` (run at `batch[member].target`); after the
        round's last evaluation is complete, update the GPs and return the next batch, else None.
        Raises InvalidEpisodeError (StaleEpisodeError for another target, or for a robot whose evaluation
        this round is already complete) and records nothing but the rejection."""
        with self._lock:
            return self._report(member, rec)

    def status(self) -> dict[str, Any]:
        with self._lock:
            status = self.optimizer.status()
            status.update(fleet_size=self.size, round=self.round,
                          batch=[list(d.target) for d in self.batch],
                          batch_verified_safe=[d.verified_safe for d in self.batch],
                          episodes_at_targets=[len(e) for e in self._episodes],
                          episodes_at_target=sum(len(e) for e in self._episodes))
            return status

    def stored_episode_ids(self) -> list[set[int]]:
        """Robot by robot, the ids of its results in the attached store, accepted or rejected."""
        with self._lock:
            if self._store is None:
                return [set() for _ in range(self.size)]
            return self._store.episode_ids_by_robot(self.size)

    def attach_store(self, store: OptimizerStore) -> None:
        with self._lock:
            self._store = store
            self.optimizer.attach_store(store)

    # --- internals ------------------------------------------------------------------------------------

    def _report(self, member: int, rec: EpisodeRecord) -> list[Decision] | None:
        if isinstance(member, bool) or not isinstance(member, int | np.integer) \
                or not 0 <= member < self.size:
            raise InvalidEpisodeError(f"robot {member!r} is not in this fleet of {self.size} "
                                      f"(0..{self.size - 1})")
        decision = self.batch[member]
        optimizer = self.optimizer
        try:
            if self.episodes_needed(member) == 0 and decision.phase is not Phase.HALTED:
                raise StaleEpisodeError(f"robot {member}'s evaluation of round {self.round} is complete; it "
                                        "waits for the other robots, and its next target comes with the "
                                        "next round")
            rec = optimizer._validated(rec, decision)
        except InvalidEpisodeError as exc:
            optimizer._rejected += 1
            optimizer._last_rejection = str(exc)
            if self._store is not None:
                body = rec.to_dict() if isinstance(rec, EpisodeRecord) else {"value": repr(rec)}
                self._store.add_rejection(decision.iteration, body, str(exc))
            raise
        if self._store is not None:
            self._store.add_episode(decision.iteration, rec)
        self._episodes[member].append(rec)
        optimizer._episodes_total += 1
        if rec.episode is not None:
            optimizer._episode_ids.add(rec.episode)
        if any(self.episodes_needed(k) for k in range(self.size)):
            return None
        batch, episodes = self.batch, self._episodes
        self._episodes = [[] for _ in range(self.size)]
        notes = [optimizer._evaluate(d.target, e) for d, e in zip(batch, episodes, strict=True)]
        self._extend_batch(next((n for n in notes if n), ""), range(self.size))
        return self.batch

    def _extend_batch(self, note: str, members: range) -> None:
        """Decide `members` of the round one after another, each conditioned on those decided before it."""
        optimizer = self.optimizer
        first = len(optimizer.history) - len(optimizer.history) % self.size
        for _ in members:
            pending = tuple(d.target for d in optimizer.history[first:] if d.phase is not Phase.HALTED)
            decision = optimizer._decide(note, pending)
            optimizer.history.append(decision)
            if self._store is not None:
                self._store.add_decision(decision)


def build_fleet(config: OptimizerConfig, size: int, store_path: str | Path | None = None,
                identity: dict | None = None) -> FleetOptimizer:
    """A fleet of `size` robots on `config`'s method, or the one recorded in `store_path` brought back to
    where it stopped: the stored episodes are replayed (each to the robot whose decision it was stored
    under) and every replayed decision must repeat the stored one (factory.check_replayed)."""
    from pls_core.safeopt.factory import OPTIMIZERS, check_replayed, open_store

    fleet = FleetOptimizer(OPTIMIZERS[config.method](config), size)
    if store_path is None:
        return fleet
    store = open_store(config, store_path, identity, fleet_size=size)
    stored = store.decisions()
    for iteration, rec in store.episodes():
        member = iteration - fleet.round * size
        if not 0 <= member < size:
            store.close()
            raise StoreMismatchError(f"{store.path}: an episode of iteration {iteration} arrived while the "
                                     f"replay is at round {fleet.round} (iterations {fleet.round * size}.."
                                     f"{fleet.round * size + size - 1}); the store is not from this config")
        fleet.report_episode(member, rec)  # no store attached yet: validates and counts, writes nothing
    check_replayed(store, stored, fleet.history)
    fleet.attach_store(store)
    return fleet


def run_fleet(fleet: FleetOptimizer, problem, rounds: int,
              on_episode: Callable[[FleetOptimizer], None] | None = None,
              on_round: Callable[[FleetOptimizer], None] | None = None) -> list[Decision]:
    """Run a synthetic or stress-like `problem` (anything with `episode(target, rng, number)`) until
    `rounds` rounds are evaluated or the fleet halts; returns every decision made. `on_round(fleet)` is
    called when a round's batch is proposed (before its first episode), `on_episode(fleet)` after each.

    Robots report in turn, one episode each (the robot owing the most goes next), so a run resumed
    from its store continues with the episodes an uninterrupted one would have seen; episode noise is a
    function of (seed, episode number) only, as in synthetic.run, so N = 1 repeats synthetic.run exactly.
    """
    proposed = -1
    while fleet.round < rounds and not fleet.halted:
        if on_round is not None and fleet.round != proposed:
            proposed = fleet.round
            on_round(fleet)
        member = max(range(fleet.size), key=fleet.episodes_needed)
        number = fleet.episodes_total
        rng = np.random.default_rng([fleet.config.seed, 104729, number])
        fleet.report_episode(member, problem.episode(fleet.batch[member].target, rng, number))
        if on_episode is not None:
            on_episode(fleet)
    return list(fleet.history)
