"""Figures of a run, rebuilt from its SQLite store by replaying the episodes (matplotlib, Agg backend).

* `iteration_NNN.png`: per decision, over the grid Z: cost mean with the safe set and the contour
  J_g = b, cost interval width u - l, reward mean, reward interval width; past targets, the chosen one,
  the seed box.
* `progress.png`: observed mean reward and cost per evaluation against b, phase by colour, safe-set size.
* `targets.png`: every chosen target over the final safe set, coloured by iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pls_core.figures import pyplot, save_figure
from pls_core.safeopt.base import TargetOptimizer
from pls_core.safeopt.config import OptimizerConfig
from pls_core.safeopt.factory import build_optimizer
from pls_core.safeopt.records import Decision, Phase
from pls_core.safeopt.store import OptimizerStore

PHASE_COLOURS = {Phase.SEED: "tab:purple", Phase.SAFE_EXPLORATION: "tab:orange",
                 Phase.REWARD_MAXIMISATION: "tab:blue", Phase.OPERATION: "tab:green"}


@dataclass(frozen=True)
class GridSnapshot:
    """What the optimizer believed over Z when it made `decision` (arrays shaped (n_R, n_G))."""

    decision: Decision
    cost_mean: np.ndarray
    cost_width: np.ndarray
    reward_mean: np.ndarray
    reward_width: np.ndarray
    safe: np.ndarray

    @classmethod
    def of(cls, optimizer: TargetOptimizer) -> GridSnapshot:
        model, image = optimizer.model, optimizer.grid.as_image
        r_lo, r_hi = model.reward_bounds()
        return cls(optimizer.current, image(model.cost_mean()), image(model.cost_width()),
                   image(model.reward_mean()), image(r_hi - r_lo), image(model.safe))


def replay_store(store_path: str | Path) -> tuple[TargetOptimizer, list[GridSnapshot]]:
    """The run recorded in `store_path`, replayed without writing, with a snapshot per decision."""
    store = OptimizerStore(store_path)
    try:
        stored_config = store.config()
        if stored_config is None:
            raise FileNotFoundError(f"{store_path} holds no optimizer run (no config recorded)")
        optimizer = build_optimizer(OptimizerConfig.from_dict(stored_config))
        snapshots = [GridSnapshot.of(optimizer)]
        for _, rec in store.episodes():
            if optimizer.report_episode(rec) is not None:
                snapshots.append(GridSnapshot.of(optimizer))
    finally:
        store.close()
    return optimizer, snapshots


def plot_store(store_path: str | Path, out_dir: str | Path, every: int = 1) -> list[Path]:
    """Write all figures for the run in `store_path` into `out_dir`; returns the files written."""
    optimizer, snapshots = replay_store(store_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k in range(len(snapshots)):
        if k % every == 0 or k == len(snapshots) - 1:
            written.append(_plot_iteration(optimizer, snapshots[:k + 1], out))
    written.append(_plot_progress(optimizer, snapshots, out))
    written.append(_plot_targets(optimizer, snapshots, out))
    return written


def _plot_iteration(optimizer: TargetOptimizer, snapshots: list[GridSnapshot], out: Path) -> Path:
    plt = pyplot()

    snap, grid, config = snapshots[-1], optimizer.grid, optimizer.config
    extent = (grid.reward_values[0], grid.reward_values[-1], grid.cost_values[0], grid.cost_values[-1])
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True, sharey=True)
    panels = [(snap.cost_mean, "cost mean (raw)"), (snap.cost_width, "cost interval width u - l"),
              (snap.reward_mean, "reward mean (raw)"), (snap.reward_width, "reward interval width")]
    past = np.array([s.decision.target for s in snapshots[:-1]]).reshape(-1, 2)
    for ax, (values, title) in zip(axes.ravel(), panels, strict=True):
        finite = np.where(np.isfinite(values), values, np.nan)
        image = ax.imshow(finite.T, origin="lower", extent=extent, aspect="auto", cmap="viridis")
        fig.colorbar(image, ax=ax)
        ax.contour(grid.reward_values, grid.cost_values, snap.safe.T.astype(float), levels=[0.5],
                   colors="white")
        if values is snap.cost_mean:
            ax.contour(grid.reward_values, grid.cost_values, snap.cost_mean.T, levels=[config.threshold],
                       colors="red", linestyles="--")
        (r_lo, r_hi), (g_lo, g_hi) = config.seed_reward_range, config.seed_cost_range
        ax.add_patch(plt.Rectangle((r_lo, g_lo), r_hi - r_lo, g_hi - g_lo, fill=False, ec="magenta", lw=1.5))
        if len(past):
            ax.scatter(past[:, 0], past[:, 1], s=14, c="black", marker="o")
        ax.scatter(*snap.decision.target, s=160, c="red", marker="*", edgecolors="white")
        ax.set_title(title)
    for ax in axes[1]:
        ax.set_xlabel("target reward R")
    for ax in axes[:, 0]:
        ax.set_ylabel("target cost G")
    d = snap.decision
    fig.suptitle(f"{optimizer.method} iteration {d.iteration}: {d.phase.value}, target {d.target}, "
                 f"safe set {d.safe_set_size}/{grid.size} (white), J_g = b contour of the mean (red dashed)")
    path = out / f"iteration_{d.iteration:03d}.png"
    return save_figure(fig, path, dpi=80)


def _plot_progress(optimizer: TargetOptimizer, snapshots: list[GridSnapshot], out: Path) -> Path:
    plt = pyplot()

    evaluations, b = optimizer.evaluations, optimizer.config.threshold
    iterations = np.arange(len(evaluations))
    colours = [PHASE_COLOURS[s.decision.phase] for s in snapshots[:len(evaluations)]]
    fig, (ax_r, ax_c, ax_s) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    if evaluations:
        ax_r.plot(iterations, [e[1] for e in evaluations], color="grey", lw=0.8)
        ax_r.scatter(iterations, [e[1] for e in evaluations], c=colours, zorder=3)
        ax_c.plot(iterations, [e[2] for e in evaluations], color="grey", lw=0.8)
        ax_c.scatter(iterations, [e[2] for e in evaluations], c=colours, zorder=3)
    ax_c.axhline(b, color="red", ls="--", label=f"threshold b = {b:g}")
    ax_c.legend(loc="upper left")
    ax_s.step(np.arange(len(snapshots)), [s.decision.safe_set_size for s in snapshots], where="post")
    ax_r.set_ylabel("mean reward return")
    k = optimizer.config.episode_cost_margin_sd
    ax_c.set_ylabel("mean cost return" if k == 0 else f"mean + {k:g} sd of cost return")
    ax_s.set_ylabel("safe set size")
    ax_s.set_xlabel("iteration (evaluation)")
    handles = [plt.Line2D([], [], marker="o", ls="", color=colour, label=phase.value)
               for phase, colour in PHASE_COLOURS.items()]
    ax_r.legend(handles=handles, loc="lower right", fontsize=8)
    fig.suptitle(f"{optimizer.method}: observed returns per evaluation")
    path = out / "progress.png"
    return save_figure(fig, path, dpi=80)


def _plot_targets(optimizer: TargetOptimizer, snapshots: list[GridSnapshot], out: Path) -> Path:
    plt = pyplot()

    grid = optimizer.grid
    extent = (grid.reward_values[0], grid.reward_values[-1], grid.cost_values[0], grid.cost_values[-1])
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.imshow(snapshots[-1].safe.T, origin="lower", extent=extent, aspect="auto", cmap="Greens", alpha=0.5)
    targets = np.array([s.decision.target for s in snapshots])
    points = ax.scatter(targets[:, 0], targets[:, 1], c=np.arange(len(targets)), cmap="plasma", zorder=3)
    fig.colorbar(points, ax=ax, label="iteration")
    ax.set_xlabel("target reward R")
    ax.set_ylabel("target cost G")
    ax.set_title(f"{optimizer.method}: chosen targets over the final safe set (green)")
    path = out / "targets.png"
    return save_figure(fig, path, dpi=80)
