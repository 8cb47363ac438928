"""PLS (Wachi et al. 2025, Algorithm 1): safe exploration, then Safe-UCB, then operation.

Readings of the paper's open points (pls-method.md §3):

* Safe set: with no Lipschitz constant (the paper's L = 0), Y_N = {z : u_N(z) <= b} on the monotone cost
  intervals, and expanders use SafeOpt's optimistic fake-observation test (safe_set.py); with L > 0 the
  printed Lipschitz rules apply.
* Stage 1 picks the expander with the widest *cost* interval u - l (StageOpt's stage 1; Algorithm 1's
  wildcard width). Only safe points wider than zeta are candidates, so "no candidate is an expander" is
  exactly the stopping rule max_{E_N} (u - l) <= zeta. Stage 1 also ends after
  `max_exploration_iterations` evaluations (the seed evaluation included); it never resumes.
* The fake-observation test is one step deep: a boundary point can fail it now and pass after a few
  more observations nearby, which a literal stopping rule would never collect (at N = 0 it often fails
  for every seed, ending stage 1 before it starts). So when no candidate passes, stage 1 samples the
  widest candidate that borders the unsafe set (`boundary_fallback`, default on; off = literal).
  This stays within Algorithm 1's own expander definition for L = 0 (every safe z with l(z) <= b while
  some point is unsafe), narrowed to the points next to the unsafe set.
* Stage 2 picks argmax of the reward upper bound over the safe set, for `max_maximisation_iterations`.
* A fleet (fleet.py) counts the stage-1 cap in evaluations, the pending members of the round included,
  and the stage-2 cap in rounds; with one robot both are evaluations, as above.
* Operation runs the best verified target: of the evaluated targets inside the safe set whose own
  measured cost clears b by `operation_cost_margin_se` standard errors, the one with the highest
  measured mean reward (base.best_safe_index says why not the GP's bound). Evaluations continue to
  update the GPs, so the choice can still improve, and
  a point whose data contradict its interval can leave the safe set (confidence.py).
* The first decision (no data yet) is labelled SEED; it is a stage-1 pick, i.e. a seed point.
* Halt: as soon as the data refute any seed point (confidence.py: cost lower bound above b there),
  the decision is HALTED (unverified, no proposal) and later episodes are refused. Every certificate
  rests on Z0 being safe (Assumption 7); once one seed is shown unsafe the rest of the box is not to be
  trusted either, and a deployment must stop rather than try the next seed.
Ties are broken at random with the (seed, iteration)-derived generator. Every proposal is checked to lie
in the current safe set (SafetyInvariantError otherwise), including a target kept after a GP failure.
"""

from __future__ import annotations

import numpy as np

from pls_core.safeopt.base import TIE_RELATIVE_TOLERANCE, Choice, TargetOptimizer
from pls_core.safeopt.errors import SafetyInvariantError
from pls_core.safeopt.records import Phase

EXPANDER_CHUNK = 64  # candidates tested per batch, widest first; testing stops once the winner is known


class PLSOptimizer(TargetOptimizer):
    method = "pls"

    def _choose(self) -> Choice:
        if self.model.refuted_seeds.any() or not self.model.safe.any():  # confidence.py: stop, never guess
            refuted = int(self.model.refuted_seeds.sum())
            return Choice(self.current.target, Phase.HALTED, 0,
                          f"the episode costs refute {refuted} seed target(s) (cost lower bound > b = "
                          f"{self.config.threshold:g}): the seed box is not safe for this model, so no "
                          "target is verified safe. Stop, then re-examine the model or the seed box")
        phases = [d.phase for d in self.history]
        explored = sum(p in (Phase.SEED, Phase.SAFE_EXPLORATION) for p in phases)  # evaluations (fleet too)
        maximised = self._round_phases().count(Phase.REWARD_MAXIMISATION)  # rounds (one robot: evaluations)
        in_stage_one = Phase.REWARD_MAXIMISATION not in phases and Phase.OPERATION not in phases
        if in_stage_one and explored < self.config.max_exploration_iterations:
            index, candidates = self._widest_expander()
            if index is not None:
                phase = Phase.SEED if self.model.num_observations == 0 else Phase.SAFE_EXPLORATION
                return Choice(self.grid.target(index), phase, candidates)
        safe = np.flatnonzero(self.model.safe)
        if Phase.OPERATION not in phases and maximised < self.config.max_maximisation_iterations:
            _, upper = self.model.reward_bounds()
            best = self.pick(safe, upper[safe])
            return Choice(self.grid.target(best), Phase.REWARD_MAXIMISATION, len(safe))
        best = self.best_safe_index()
        return Choice(self.grid.target(best), Phase.OPERATION, 1, self.operation_note(best))

    def _widest_expander(self) -> tuple[int | None, int]:
        """(argmax of cost width over expanders wider than zeta, or None; number of such candidates).

        Candidates are tested widest first in batches; once an expander is found only candidates tied
        with its width still matter, so most of the safe set is never tested. With `boundary_fallback`,
        when no candidate passes the one-step test, the widest candidate bordering the unsafe set is
        taken instead (see the module docstring).
        """
        width = self.model.cost_width()
        candidates = np.flatnonzero(self.model.safe & (width > self.config.effective_zeta))
        order = candidates[np.argsort(-width[candidates], kind="stable")]
        winners: list[int] = []
        best_width = None
        for start in range(0, len(order), EXPANDER_CHUNK):
            batch = order[start:start + EXPANDER_CHUNK]
            if best_width is not None:
                batch = batch[self._tied(width[batch], best_width)]
                if len(batch) == 0:
                    break
            hits = batch[self.model.expanders(batch)]
            if len(hits) and best_width is None:
                best_width = width[hits[0]]
                hits = hits[self._tied(width[hits], best_width)]
            winners.extend(int(i) for i in hits)
        if winners:
            return self.pick(np.array(winners), np.zeros(len(winners))), len(candidates)
        if self.config.boundary_fallback:
            boundary = candidates[self.grid.dilate(~self.model.safe)[candidates]]
            if len(boundary):
                return self.pick(boundary, width[boundary]), len(candidates)
        return None, len(candidates)

    @staticmethod
    def _tied(values: np.ndarray, best: float) -> np.ndarray:
        return np.abs(values - best) <= TIE_RELATIVE_TOLERANCE * max(1.0, abs(best))

    def _check_choice(self, choice: Choice) -> None:
        super()._check_choice(choice)
        if choice.phase is Phase.HALTED:
            return  # the one decision that is not a proposal: it says nothing is safe
        index = self.grid.index_of(choice.target)
        if index is None or not self.model.safe[index]:
            raise SafetyInvariantError(f"PLS proposed {choice.target} ({choice.phase.value}), which is not "
                                       f"in the current safe set of {int(self.model.safe.sum())} points")
