"""How well does a policy follow its targets? Actual vs target returns over a grid z = (R, G).

This is the measurement behind the paper's Figure 2 (CDT's actual cost can sit above or far below the
requested G) and the reason PLS tunes z online. Output: a table (terminal and markdown), heatmaps of the
actual reward and cost returns over the grid, and the raw per-episode results as JSON. Normalised reward
is given on two scales (pls_core.normalise): our dataset's range and DSRL's (the paper's), "n/a" where
DSRL has no constants for the task. Per target R, `cost_following` says whether the cost follows G.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pls_core.normalise import dsrl_normalised_reward, fmt_score, normalised_cost, normalised_reward
from pls_core.rollout import EpisodeResult, run_episodes


@dataclass(frozen=True)
class TargetSummary:
    target_reward: float
    target_cost: float
    episodes: int
    reward_mean: float
    reward_std: float
    cost_mean: float
    cost_std: float
    normalised_reward: float  # on our dataset's reward range
    normalised_cost: float
    dsrl_reward: float | None = None  # on DSRL's reward range (the paper's scale); None without constants


def evaluate_grid(
    model_path,
    rewards,
    costs,
    episodes: int,
    threshold: float,
    *,
    reward_range=None,
    seed: int = 0,
    num_envs: int = 32,
    progress: bool = False,
) -> tuple[list[TargetSummary], list[EpisodeResult]]:
    """Roll the policy out at every (R, G) in rewards x costs; normalise with reward_range (min, max).

    reward_range defaults to the dataset statistics stored in the model's contract.
    """
    from pls_core.runtime import PolicyRunner

    targets = [(float(r), float(g)) for r in rewards for g in costs]
    runner = PolicyRunner(model_path, num_envs=max(1, min(num_envs, len(targets) * episodes)))
    if reward_range is None:
        stats = runner.contract.dataset_stats
        reward_range = (stats["reward_return_min"], stats["reward_return_max"])
    from pls_core.progress import progress_bar

    with progress_bar("evaluate (episodes)", len(targets) * episodes, enabled=progress) as bar:
        results = run_episodes(runner, runner.contract.task_id, targets, episodes, seed=seed,
                               on_batch=bar.advance)
    return summarise(results, targets, reward_range, threshold, task=runner.contract.task_id), results


def summarise(results: list[EpisodeResult], targets, reward_range, threshold: float,
              task: str | None = None) -> list[TargetSummary]:
    """Per target: means, stds and normalised scores; the DSRL score only when `task` is given."""
    summaries = []
    for target_reward, target_cost in targets:
        mine = [r for r in results if (r.target_reward, r.target_cost) == (target_reward, target_cost)]
        reward = np.array([r.reward_return for r in mine])
        cost = np.array([r.cost_return for r in mine])
        summaries.append(
            TargetSummary(
                target_reward,
                target_cost,
                len(mine),
                float(reward.mean()),
                float(reward.std()),
                float(cost.mean()),
                float(cost.std()),
                float(normalised_reward(reward.mean(), *reward_range)),
                float(normalised_cost(cost.mean(), threshold)),
                None if task is None else dsrl_normalised_reward(float(reward.mean()), task),
            )
        )
    return summaries


def cost_tolerance(target_cost: float) -> float:
    """How far a mean episode cost may sit from its target G and still count as following it: max(5,
    G / 2) (issue 28's rule: a few cost units at small G, half of G beyond)."""
    return max(5.0, 0.5 * target_cost)


def cost_following(summaries: list[TargetSummary]) -> list[dict]:
    """Per target R (over two or more G): does the mean cost rise with G (strictly, in G's order), and does
    it lie within cost_tolerance(G) of every G > 0? A model that follows G lets PLS trade cost for reward;
    one whose cost ignores G leaves it nothing to tune."""
    verdicts = []
    for reward in sorted({s.target_reward for s in summaries}):
        row = sorted((s for s in summaries if s.target_reward == reward), key=lambda s: s.target_cost)
        if len(row) < 2:
            continue
        costs = [s.cost_mean for s in row]
        rises = all(b > a for a, b in zip(costs, costs[1:], strict=False))
        misses = [s.target_cost for s in row
                  if s.target_cost > 0 and abs(s.cost_mean - s.target_cost) > cost_tolerance(s.target_cost)]
        verdicts.append({"target_reward": reward, "target_costs": [s.target_cost for s in row],
                         "cost_means": costs, "rises": rises, "outside_tolerance_at": misses,
                         "follows": rises and not misses})
    return verdicts


def describe_following(verdict: dict) -> str:
    """One line for the terminal and table.md."""
    costs = " / ".join(f"{c:.1f}" for c in verdict["cost_means"])
    targets = " / ".join(f"{g:g}" for g in verdict["target_costs"])
    why = [] if verdict["rises"] else ["does not rise with G"]
    if verdict["outside_tolerance_at"]:
        misses = ", ".join(f"{g:g}" for g in verdict["outside_tolerance_at"])
        why.append(f"outside max(5, G/2) of G at G = {misses}")
    return (f"R = {verdict['target_reward']:g}: cost {costs} at G = {targets}: "
            + ("follows G" if verdict["follows"] else "does not follow G (" + "; ".join(why) + ")"))


def seed_box_targets(contract, threshold: float) -> list[tuple[float, float]]:
    """The corners (R, G) of the seed box Z0 that the optimiser builds for this model and b (the same
    OptimizerConfig.for_model_stats the nodes use with `config:=""`)."""
    from pls_core.safeopt.config import OptimizerConfig

    config = OptimizerConfig.for_model_stats(contract.task_id, contract.dataset_stats, threshold)
    (r_lo, r_hi), (g_lo, g_hi) = config.seed_reward_range, config.seed_cost_range
    return [(float(r), float(g)) for r in (r_lo, r_hi) for g in (g_lo, g_hi)]


def seed_box_check(results: list[EpisodeResult], corners: list[tuple[float, float]],
                   threshold: float) -> dict:
    """Does the model keep the seed box safe? PLS starts from Z0 without evidence (the paper's Assumption
    7: known safe), so a model whose mean episode cost exceeds b at a corner of the box makes the search
    unsafe from its first episode, and one close to b there leaves it no room to grow its safe set."""
    rows = []
    for reward, cost in corners:
        spent = np.array([r.cost_return for r in results
                          if (r.target_reward, r.target_cost) == (reward, cost)])
        rows.append({"target_reward": reward, "target_cost": cost, "episodes": len(spent),
                     "cost_mean": float(spent.mean()) if len(spent) else float("nan"),
                     "share_above_b": float(np.mean(spent > threshold)) if len(spent) else 1.0})
    return {"threshold": threshold, "corners": rows,
            "holds": all(row["episodes"] and row["cost_mean"] <= threshold for row in rows),
            "max_share_above_b": max(row["share_above_b"] for row in rows)}


def describe_seed_box(check: dict) -> str:
    """One line for the terminal and table.md: the verdict on the mean (the certificate's quantity), and
    how often single episodes cross b there (each one an unsafe episode of the search)."""
    corners = "; ".join(f"({c['target_reward']:.0f}, {c['target_cost']:g}): {c['cost_mean']:.1f}, "
                        f"{100 * c['share_above_b']:.0f} % of episodes above b" for c in check["corners"])
    if not check["holds"]:
        verdict = "NOT safe: PLS would start above b; retrain, or collect more low-cost data"
    elif check["max_share_above_b"] > 0:
        verdict = (f"safe on average, but up to {100 * check['max_share_above_b']:.0f} % of single episodes "
                   "cross b there, each an unsafe episode of the search")
    else:
        verdict = "safe"
    return f"seed box Z0 at b = {check['threshold']:g}, mean cost per corner {corners}: {verdict}"


COLUMNS = (
    "target R",
    "target G",
    "episodes",
    "reward (mean ± sd)",
    "cost (mean ± sd)",
    "norm. reward (ours)",
    "norm. reward (DSRL)",
    "norm. cost",
)


def _rows(summaries: list[TargetSummary]) -> list[tuple[str, ...]]:
    return [
        (
            f"{s.target_reward:.0f}",
            f"{s.target_cost:.0f}",
            str(s.episodes),
            f"{s.reward_mean:.1f} ± {s.reward_std:.1f}",
            f"{s.cost_mean:.1f} ± {s.cost_std:.1f}",
            f"{s.normalised_reward:.3f}",
            fmt_score(s.dsrl_reward, 3),
            f"{s.normalised_cost:.2f}",
        )
        for s in summaries
    ]


SCALES_NOTE = ("norm. reward (ours): (R - R_min) / (R_max - R_min) over our dataset's episode returns; "
               "(DSRL): over DSRL's published range for the task, the scale of the paper's tables (n/a: no "
               "DSRL constants); norm. cost: cost return / b.")


def markdown_table(summaries: list[TargetSummary]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(summaries)]
    return "\n".join(lines) + "\n"


def rich_table(summaries: list[TargetSummary], title: str):
    from rich.table import Table

    table = Table(title=title, caption=SCALES_NOTE)
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for row in _rows(summaries):
        table.add_row(*row)
    return table


def plot_heatmaps(summaries: list[TargetSummary], threshold: float, out_path, title: str = "") -> Path:
    """Actual reward and cost returns over the (G, R) target grid, each cell annotated."""
    from pls_core.figures import pyplot, save_figure

    plt = pyplot()
    rewards = sorted({s.target_reward for s in summaries})
    costs = sorted({s.target_cost for s in summaries})
    cell = {(s.target_reward, s.target_cost): s for s in summaries}
    fig, axes = plt.subplots(1, 2, figsize=(5 + 1.6 * len(costs), 2.2 + 0.6 * len(rewards)), squeeze=False)
    for ax, (name, key, cmap) in zip(
        axes[0],
        (("actual reward return", "reward_mean", "viridis"), ("actual cost return", "cost_mean", "magma")),
        strict=True,
    ):
        grid = np.array([[getattr(cell[(r, g)], key) for g in costs] for r in rewards])
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap)
        for (i, j), value in np.ndenumerate(grid):
            bright = image.norm(value) > 0.6  # dark text on the bright end of both colour maps
            ax.text(
                j,
                i,
                f"{value:.0f}",
                ha="center",
                va="center",
                color="black" if bright else "white",
                fontsize=8,
            )
        ax.set_xticks(range(len(costs)), [f"{g:g}" for g in costs])
        ax.set_yticks(range(len(rewards)), [f"{r:g}" for r in rewards])
        ax.set_xlabel("target cost return G")
        ax.set_ylabel("target reward return R")
        ax.set_title(name if key == "reward_mean" else f"{name} (threshold b = {threshold:g})")
        fig.colorbar(image, ax=ax)
    fig.suptitle(title)
    return save_figure(fig, out_path)


def write_report(
    out_dir,
    summaries: list[TargetSummary],
    results: list[EpisodeResult],
    threshold: float,
    title: str,
    provenance: dict,
    seed_box: dict | None = None,
) -> dict[str, Path]:
    """results.json (everything), table.md and heatmaps.png in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "table.md",
        "heatmaps": out_dir / "heatmaps.png",
    }
    verdicts = cost_following(summaries)
    paths["json"].write_text(
        json.dumps(
            {
                **provenance,
                "threshold": threshold,
                "summaries": [asdict(s) for s in summaries],
                "cost_following": verdicts,
                **({"seed_box": seed_box} if seed_box else {}),
                "episodes": [asdict(r) for r in results],
            },
            indent=2,
        )
    )
    following = "".join(f"- {describe_following(v)}\n" for v in verdicts)
    paths["markdown"].write_text(f"## {title}\n\n" + markdown_table(summaries) + f"\n{SCALES_NOTE}\n"
                                 + (f"\nCost following:\n{following}" if following else "")
                                 + (f"\n- {describe_seed_box(seed_box)}\n" if seed_box else ""))
    plot_heatmaps(summaries, threshold, paths["heatmaps"], title)
    return paths
