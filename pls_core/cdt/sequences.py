"""Training windows for the CDT, drawn the way the policy sees them at deployment.

A window ends at a drawn step of a trajectory and holds the K steps up to it; near the episode start it
is left-padded (padding_mask True, zeros in the slots), exactly like the runtime's context buffer. The end
step is uniform, or drawn partly near the trajectory's cost steps (cost_window_share > 0) and partly in
its first steps (start_window_share > 0).
Trajectories are drawn with a cost-dependent weight and include Pareto-relabelled copies (relabel.py).
"""

from __future__ import annotations

import numpy as np

from pls_core.cdt.relabel import pareto_relabel

COST_WINDOW_RADIUS = 10  # steps either side of a cost step that its weight reaches (OSRL's kernel)


def window_end_cdf(costs: np.ndarray, starts: np.ndarray, lengths: np.ndarray, share: float,
                   start_share: float, start_steps: int) -> np.ndarray:
    """Cumulative window-end probability over all steps, led by a 0 (entry i: the mass before step i),
    each trajectory's summing to 1: a share `share` from its costs smoothed by exp(-d^2 / 10) over
    |d| <= 10 steps (a trajectory without cost spreads it evenly), a share `start_share` spread evenly
    over its first `start_steps` steps, the rest spread evenly over all its steps."""
    offsets = np.arange(-COST_WINDOW_RADIUS, COST_WINDOW_RADIUS + 1)
    kernel = np.exp(-(offsets ** 2) / 10.0)
    weights = np.empty(len(costs), dtype=np.float64)
    for start, length in zip(starts, lengths, strict=True):
        near_cost = np.convolve(costs[start : start + length], kernel, mode="same")
        total = near_cost.sum()
        cost_share, cost_part = (share, share * near_cost / total) if total > 0 else (0.0, 0.0)
        head = min(length, start_steps)
        start_part = np.zeros(length)
        start_part[:head] = start_share / head
        weights[start : start + length] = cost_part + start_part + (1.0 - cost_share - start_share) / length
    return np.concatenate([[0.0], np.cumsum(weights)])


def reverse_cumsum(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Undiscounted return-to-go of every step: sum of the values from that step to its episode's end."""
    togo = np.empty(len(values), dtype=np.float64)
    for start, length in zip(starts, lengths, strict=True):
        togo[start : start + length] = np.cumsum(values[start : start + length][::-1])[::-1]
    return togo


class SequenceSampler:
    def __init__(self, dataset, config, task, rng: np.random.Generator):
        slices = dataset.episode_slices()
        self.context_len = config.context_len
        self.starts = np.array([s.start for s in slices], dtype=np.int64)
        self.lengths = np.array([s.stop - s.start for s in slices], dtype=np.int64)
        self.observations = np.asarray(dataset.observations, dtype=np.float32)
        self.actions = np.asarray(dataset.actions, dtype=np.float32)
        self.costs = np.asarray(dataset.costs, dtype=np.float64)
        self.returns_to_go = reverse_cumsum(
            np.asarray(dataset.rewards, dtype=np.float64), self.starts, self.lengths
        )
        self.costs_to_go = reverse_cumsum(self.costs, self.starts, self.lengths)
        self.reward_returns = self.returns_to_go[self.starts]
        self.cost_returns = self.costs_to_go[self.starts]
        self.terminated = dataset.episode_terminated(slices)

        # Entries = real trajectories followed by relabelled ones (a source episode plus shifted targets).
        # The relabelling ceiling must reach the dataset's best return: deployment asks for exactly that R.
        n_episodes = len(slices)
        self.relabel_max_reward = max(task.relabel_max_reward, float(self.reward_returns.max()))
        relabels = pareto_relabel(
            self.cost_returns,
            self.reward_returns,
            int(round(config.augment_percent * n_episodes)),
            deg=task.relabel_deg,
            max_reward=self.relabel_max_reward,
            max_rew_decrease=task.relabel_max_rew_decrease,
            rng=rng,
        )
        sources = np.array([r.source for r in relabels], dtype=np.int64)
        self.entry_episode = np.concatenate([np.arange(n_episodes), sources])
        self.entry_reward_shift = np.concatenate(
            [np.zeros(n_episodes), [r.reward for r in relabels] - self.reward_returns[sources]]
        )
        self.entry_cost_shift = np.concatenate(
            [np.zeros(n_episodes), [r.cost for r in relabels] - self.cost_returns[sources]]
        )
        self.num_relabelled = len(relabels)

        entry_cost = self.cost_returns[self.entry_episode] + self.entry_cost_shift
        if config.cost_sample:
            weights = np.maximum(config.cost_sample_floor, config.cost_sample_offset - entry_cost)
            if not weights.any():
                raise ValueError(f"every trajectory costs more than cost_sample_offset "
                                 f"({config.cost_sample_offset:g}), so none would be sampled; raise it "
                                 f"(--set cost_sample_offset=...) or set cost_sample=false")
        else:
            weights = np.ones(len(entry_cost))
        self.entry_probability = weights / weights.sum()
        self.window_end_cdf = (
            window_end_cdf(self.costs, self.starts, self.lengths, config.cost_window_share,
                           config.start_window_share, config.start_window_steps)
            if config.cost_window_share > 0 or config.start_window_share > 0 else None)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A batch of left-padded windows: model inputs plus the per-step cost labels (cost > 0)."""
        entries = rng.choice(len(self.entry_episode), size=batch_size, p=self.entry_probability)
        episodes = self.entry_episode[entries]
        starts = self.starts[episodes][:, None]
        last = self._window_ends(episodes, rng.random(batch_size))
        index = last[:, None] + np.arange(1 - self.context_len, 1)
        pad = index < starts
        index = np.where(pad, starts, index)
        real = ~pad

        return {
            "states": self.observations[index] * real[..., None],
            "actions": self.actions[index] * real[..., None],
            "returns_to_go": (
                (self.returns_to_go[index] + self.entry_reward_shift[entries, None]) * real
            ).astype(np.float32),
            "costs_to_go": ((self.costs_to_go[index] + self.entry_cost_shift[entries, None]) * real).astype(
                np.float32
            ),
            "timesteps": (index - starts) * real,
            "padding_mask": pad,
            "cost_labels": ((self.costs[index] > 0) & real).astype(np.int64),
        }

    def _window_ends(self, episodes: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """The dataset index of each window's last step, from one uniform draw per window."""
        starts, lengths = self.starts[episodes], self.lengths[episodes]
        if self.window_end_cdf is None:
            return starts + (uniform * lengths).astype(np.int64)
        cdf = self.window_end_cdf
        below = cdf[starts]
        last = np.searchsorted(cdf, below + uniform * (cdf[starts + lengths] - below), side="right") - 1
        return np.clip(last, starts, starts + lengths - 1)

    def observation_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the observations (std floored so constant features do not blow up)."""
        return self.observations.mean(0), np.maximum(self.observations.std(0), 1e-3)
