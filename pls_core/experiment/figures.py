"""Figures of an experiment (matplotlib, Agg): learning curves per threshold and the grid-sweep heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pls_core.figures import pyplot, save_figure
from pls_core.normalise import dsrl_reward_range, normalised_cost, normalised_reward


def _padded(rows: list[list[float]]) -> np.ndarray:
    """Runs of unequal length (a halted PLS run stops early) as one array, NaN after each run's end."""
    width = max((len(r) for r in rows), default=0)
    padded = [list(r) + [np.nan] * (width - len(r)) for r in rows]
    return np.array(padded, dtype=float).reshape(len(rows), width)


def plot_curves(runs, reward_range, threshold: float, path: Path) -> Path:
    """Per iteration, each method's evaluated normalised reward and cost (mean over seeds, ±1 sd band)."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig, (ax_reward, ax_cost) = plt.subplots(1, 2, figsize=(11, 4))
    methods = list(dict.fromkeys(run.key.method for run in runs))
    for method in methods:
        mine = [run for run in runs if run.key.method == method]
        rewards = _padded([[normalised_reward(it["reward_mean"], *reward_range) for it in run.iterations]
                           for run in mine])
        costs = _padded([[normalised_cost(it["cost_mean"], threshold) for it in run.iterations]
                         for run in mine])
        x = np.arange(1, rewards.shape[1] + 1)
        for ax, values in ((ax_reward, rewards), (ax_cost, costs)):
            counts = np.isfinite(values).sum(axis=0)
            mean = np.nanmean(values, axis=0)
            std = np.nanstd(values, axis=0, ddof=1) if counts.min() > 1 else np.zeros_like(mean)
            (line,) = ax.plot(x, mean, marker="o", markersize=3, label=f"{method} ({len(mine)} seeds)")
            low = np.maximum(mean - std, 0.0) if ax is ax_cost else mean - std  # a cost is never < 0
            ax.fill_between(x, low, mean + std, color=line.get_color(), alpha=0.15)
    ax_cost.axhline(1.0, color="red", linestyle="--", linewidth=1, label=f"threshold b = {threshold:g}")
    ax_reward.set_ylabel("normalised reward, our dataset's range")
    dsrl = dsrl_reward_range(runs[0].key.task) if runs else None
    if dsrl is not None:  # the same reward on DSRL's range (the paper's scale): an affine map of ours
        lo, hi = reward_range
        scale, shift = (hi - lo) / (dsrl[1] - dsrl[0]), (lo - dsrl[0]) / (dsrl[1] - dsrl[0])
        dsrl_axis = ax_reward.secondary_yaxis("right", functions=(lambda x: x * scale + shift,
                                                                   lambda y: (y - shift) / scale))
        dsrl_axis.set_ylabel("on DSRL's range (the paper's scale)")
    ax_cost.set_ylabel("normalised cost (cost return / b)")
    for ax in (ax_reward, ax_cost):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("iteration (evaluation of one target)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{runs[0].key.task if runs else ''}: online search at b = {threshold:g}")
    return save_figure(fig, path)


def plot_sweep(summaries, best_per_threshold: dict, path: Path, title: str = "") -> Path:
    """Mean reward and cost over the sweep grid, the cost = b contours and the best safe target per b."""
    plt = pyplot()
    rewards = sorted({s.target_reward for s in summaries})
    costs = sorted({s.target_cost for s in summaries})
    cell = {(s.target_reward, s.target_cost): s for s in summaries}
    reward_grid = np.array([[cell[(r, g)].normalised_reward for g in costs] for r in rewards])
    cost_grid = np.array([[cell[(r, g)].cost_mean for g in costs] for r in rewards])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    panels = ((axes[0], reward_grid, "viridis", "normalised reward"),
              (axes[1], cost_grid, "magma", "cost return"))
    for ax, grid, cmap, name in panels:
        image = ax.pcolormesh(costs, rewards, grid, cmap=cmap, shading="nearest")
        fig.colorbar(image, ax=ax, label=name)
        ax.set_xlabel("target cost return G")
        ax.set_ylabel("target reward return R")
        ax.set_title(f"sweep: actual {name}")
    colors = ("cyan", "lime", "white", "orange")
    for k, ((b, best), color) in enumerate(zip(best_per_threshold.items(), colors, strict=False)):
        if cost_grid.min() < b < cost_grid.max():
            axes[1].contour(costs, rewards, cost_grid, levels=[b], colors=color, linewidths=1.2)
        if best is not None:  # later thresholds drawn smaller, so coinciding stars stay visible
            for ax in axes:
                ax.plot(best.target_cost, best.target_reward, marker="*", markersize=18 - 5 * k, color=color,
                        markeredgecolor="black", label=f"best safe in Z, b = {b:g}")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.14),
                       ncol=len(best_per_threshold))
    fig.suptitle(f"{title}: cost = b contours and best safe targets")
    return save_figure(fig, path)
