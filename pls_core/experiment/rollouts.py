"""Batched episodes for the harness: one PolicyRunner and `num_envs` envs, made once per task, reused.

`run_jobs` gives exactly the episodes `pls_core.rollout.run_episodes` gives for the same jobs and seed
(episode i of the list is reset with seed + i, `num_envs` at a time); it only keeps the envs alive
between calls, because making 20 Safety-Gymnasium envs costs ~2 s, about a tenth of one evaluation.
It steps them with rollout's own batch function (pls_core.lockstep underneath). Each env is wrapped
in pls_core.shield's ShieldedEnv, which counts steps with cost > 0 and, with `shield`, filters every action.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pls_core.rollout import EpisodeResult, run_batch


class Rollouts:
    """The runtime of one task, created on first use (a fully resumed task never loads the model)."""

    def __init__(self, model_path: Path, task_id: str, num_envs: int, shield: bool = False):
        self.model_path, self.task_id, self.num_envs = model_path, task_id, num_envs
        self.shield = shield
        self.last_counts: list[dict] = []  # per episode of the last run_jobs: cost_steps, interventions
        self._runner = None
        self._envs: list = []

    def run_jobs(self, jobs: Sequence[tuple[float, float]], seed: int,
                 on_batch: Callable[[int], None] | None = None) -> list[EpisodeResult]:
        """One episode per (R, G) job, `num_envs` at a time; `on_batch(episodes)` after each batch."""
        runner, envs = self._runtime()
        results: list[EpisodeResult] = []
        self.last_counts = []
        for first in range(0, len(jobs), self.num_envs):
            batch = [(float(r), float(g)) for r, g in jobs[first:first + self.num_envs]]
            results.extend(run_batch(runner, envs, batch, seed + first))
            self.last_counts += [{"cost_steps": env.cost_steps, "interventions": env.interventions}
                                 for env in envs[:len(batch)]]  # episode i of the batch ran on envs[i]
            if on_batch is not None:
                on_batch(len(batch))
        return results

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs, self._runner = [], None

    def _runtime(self):
        if self._runner is None:
            from pls_core.envs import make_env
            from pls_core.runtime import PolicyRunner

            self._runner = PolicyRunner(self.model_path, num_envs=self.num_envs, intra_op_threads=1)
            from pls_core.shield.shield import Shield, ShieldedEnv

            envs = [make_env(self.task_id) for _ in range(self.num_envs)]
            self._envs = [ShieldedEnv(env, Shield.from_env(env) if self.shield else None) for env in envs]
        return self._runner, self._envs


class PolicyRollouts:
    """Episodes of a fixed shielded policy (PS2 phase II, pls_core.shield.ps2) on one env, in sequence: it
    has no target to tune, so every episode is the same policy; created on first use like `Rollouts`."""

    def __init__(self, model_dir: Path, task_id: str):
        self.model_dir, self.task_id = Path(model_dir), task_id
        self.last_counts: list[dict] = []
        self._policy = None

    def run_episodes(self, count: int, seed: int) -> list[EpisodeResult]:
        """`count` episodes, episode i reset with seed + i (the seeds `Rollouts.run_jobs` gives job i)."""
        if self._policy is None:
            from pls_core.shield.ps2 import PS2Policy

            self._policy = PS2Policy(self.model_dir)
        rows = [self._policy.episode(seed + i) for i in range(count)]
        self.last_counts = [{"cost_steps": r["cost_steps"], "interventions": r["interventions"]}
                            for r in rows]
        return [EpisodeResult(None, None, r["reward"], r["cost"], r["length"], seed + i)
                for i, r in enumerate(rows)]

    def close(self) -> None:
        if self._policy is not None:
            self._policy.close()
        self._policy = None
