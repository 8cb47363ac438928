"""A short markdown report of one supervised run, rebuilt from the supervisor's SQLite store.

The store is the source of truth (every episode and decision), so the report can be made after the fact,
from a crashed run, or from a robot's log copied off the machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pls_core.normalise import dsrl_normalised_reward, fmt_score, normalised_reward
from pls_core.safeopt.plots import plot_store
from pls_core.safeopt.store import OptimizerStore


def _on_both_scales(reward: float, config: dict) -> str:
    """' (normalised: ours x, DSRL y)' where the run knows its dataset's reward range; '' otherwise."""
    lo, hi = config.get("dataset_reward_min"), config.get("dataset_reward_max")
    if lo is None or hi is None or not hi > lo:
        return ""
    ours = float(normalised_reward(reward, lo, hi))
    dsrl = dsrl_normalised_reward(reward, config.get("task", ""))
    return f" (normalised: ours {ours:.2f}, DSRL {fmt_score(dsrl)})"


def write_run_report(store_path: str | Path, out_dir: str | Path, title: str = "PLS run") -> Path:
    """Figures plus `report.md` in `out_dir`: per-evaluation table, unsafe episodes, final target."""
    out = Path(out_dir)
    figures = plot_store(store_path, out / "figures", every=1)
    store = OptimizerStore(store_path)
    try:
        config = store.config() or {}
        episodes = store.episodes()
        decisions = store.decisions()
        rejected = store.rejection_count()
    finally:
        store.close()
    threshold = float(config.get("threshold", float("nan")))
    by_iteration: dict[int, list] = {}
    for iteration, rec in episodes:
        by_iteration.setdefault(iteration, []).append(rec)

    lines = [f"# {title}", "",
             f"Task `{config.get('task', '?')}`, method `{config.get('method', '?')}`, "
             f"threshold b = {threshold:g}, "
             f"{config.get('episodes_per_evaluation', '?')} episodes per evaluation.", ""]
    unsafe = sum(rec.cost_return > threshold for _, rec in episodes)
    lines += [f"- episodes: {len(episodes)} ({unsafe} with cost return above b; {rejected} results rejected)",
              f"- evaluations: {len(by_iteration)}; decisions: {len(decisions)}"]
    if decisions:
        last = decisions[-1]
        # The operation choice ranks evaluated targets by what was measured there (base.best_safe_index).
        at_best = [rec.reward_return for _, rec in episodes if tuple(rec.target) == tuple(last.best_target)]
        mean = float(np.mean(at_best)) if at_best else None
        measured = (f"measured mean reward {mean:.1f} over {len(at_best)} episodes"
                    f"{_on_both_scales(mean, config)}, ") if at_best else "not evaluated yet, "
        lines.append(f"- final phase `{last.phase.value}`; best verified safe target "
                     f"R = {last.best_target[0]:.1f}, G = {last.best_target[1]:.1f} "
                     f"({measured}reward GP mean {last.best_predicted_reward:.1f}, "
                     f"cost upper bound {last.best_cost_upper:.2f})")
    lines += ["", "| iteration | phase | target R | target G | safe set | episodes | mean reward "
              "| mean cost | cost upper bound |", "|---|---|---|---|---|---|---|---|---|"]
    for decision in decisions:
        recs = by_iteration.get(decision.iteration, [])
        reward = f"{np.mean([r.reward_return for r in recs]):.1f}" if recs else "-"
        cost = f"{np.mean([r.cost_return for r in recs]):.2f}" if recs else "-"
        lines.append(f"| {decision.iteration} | {decision.phase.value} | {decision.target[0]:.1f} | "
                     f"{decision.target[1]:.1f} | {decision.safe_set_size} | {len(recs)} | {reward} | "
                     f"{cost} | {decision.cost_bounds[1]:.2f} |")
    lines += ["", "## Figures", ""]
    lines += [f"![{path.stem}](figures/{path.name})" for path in figures
              if path.stem in ("progress", "targets") or path == figures[-3]]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
