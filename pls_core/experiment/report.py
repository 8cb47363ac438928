"""From runs to the paper's table: per (task, b, method) means ± stds over seeds, beside the paper's numbers.

Scores are DSRL's (pls_core.normalise): reward (R - R_min) / (R_max - R_min) over the dataset's episode
returns, cost G / b, safe iff <= 1. Per run: the final target's fresh evaluation, the number of unsafe
episodes (cost return > b) during the search, and the regret: the normalised reward of the sweep's best
safe target minus the final one's (negative when the method beat the sweep's coarse grid, or by noise).
Stds are sample stds (ddof 1) over seeds, 0 for a single seed. "Within noise" against the fixed target
(the issue's reward criterion) is Welch's two-sided t-test on the final normalised rewards at the 5 % level:
a method below the fixed target's mean by less than that test can tell from seed-to-seed spread is level.
Files: results.json (everything), results.csv (the table), runs.csv, episodes.csv, table.md, figures/.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from scipy import stats

from pls_core.experiment.paper import paper_numbers
from pls_core.experiment.sweep import best_safe, sweep_summaries
from pls_core.normalise import normalised_cost, normalised_reward


def run_row(run, reward_range, sweep_best) -> dict:
    """One run's scores; `sweep_best` is the sweep's best safe TargetSummary at the run's threshold."""
    final, b = run.final, run.key.threshold
    halted = bool(final.get("halted"))  # stopped on its safe action: no final policy to score, and safe
    reward = None if halted else float(normalised_reward(final["reward_mean"], *reward_range))
    cost = None if halted else float(normalised_cost(final["cost_mean"], b))
    return {"task": run.key.task, "threshold": b, "method": run.key.method, "seed": run.key.seed,
            "halted": halted,
            "final_target_reward": final["target"][0], "final_target_cost": final["target"][1],
            "final_reward_return": final["reward_mean"], "final_cost_return": final["cost_mean"],
            "final_reward": reward, "final_cost": cost, "final_safe": halted or cost <= 1.0,
            "search_episodes": len(run.episodes), "unsafe_episodes": run.unsafe_episodes,
            "regret": None if sweep_best is None or halted else sweep_best.normalised_reward - reward,
            "wall_time_s": run.wall_time_s}


def _mean_std(values) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per (task, threshold, method), in the order the rows came."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["threshold"], row["method"]), []).append(row)
    table = []
    for (task, b, method), group in groups.items():
        entry = {"task": task, "threshold": b, "method": method, "runs": len(group),
                 "final_safe_runs": sum(r["final_safe"] for r in group),
                 "halted_runs": sum(r.get("halted", False) for r in group),
                 "search_episodes": sum(r["search_episodes"] for r in group),
                 "unsafe_episodes_total": sum(r["unsafe_episodes"] for r in group)}
        for name in ("final_reward", "final_cost", "unsafe_episodes", "regret", "wall_time_s"):
            entry[f"{name}_mean"], entry[f"{name}_std"] = _mean_std(r[name] for r in group)
        table.append(entry)
    return table


WITHIN_NOISE_P = 0.05  # two-sided Welch test level for "at least the fixed target's reward, within noise"


def compare_to_fixed(rows: list[dict]) -> list[dict]:
    """Per (task, b) and method other than `fixed`: its mean final normalised reward minus fixed's, Welch's
    t and two-sided p over seeds (halted runs have no reward and are left out), and the verdict: "above"
    or "level" (below by less than noise) or "below" (p < WITHIN_NOISE_P); None without two runs each."""
    finals: dict[tuple, list[float]] = {}
    for row in rows:
        if row["final_reward"] is not None:
            finals.setdefault((row["task"], row["threshold"], row["method"]), []).append(row["final_reward"])
    out = []
    for (task, b, method), values in finals.items():
        fixed = finals.get((task, b, "fixed"))
        if method == "fixed" or fixed is None:
            continue
        diff = float(np.mean(values) - np.mean(fixed))
        t = p = verdict = None
        if len(values) >= 2 and len(fixed) >= 2 and (np.std(values) > 0 or np.std(fixed) > 0):
            result = stats.ttest_ind(values, fixed, equal_var=False)
            t, p = float(result.statistic), float(result.pvalue)
            verdict = "above" if diff >= 0 else "level" if p >= WITHIN_NOISE_P else "below"
        out.append({"task": task, "threshold": b, "method": method, "runs": len(values),
                    "fixed_runs": len(fixed), "reward_minus_fixed": diff, "welch_t": t, "p": p,
                    "verdict": verdict})
    return out


def _comparison_line(c: dict) -> str:
    head = (f"- {c['method']} − fixed, final reward at b={c['threshold']:g}: {c['reward_minus_fixed']:+.3f} "
            f"({c['runs']} vs {c['fixed_runs']} runs")
    if c["verdict"] is None:
        return head + "; too few runs for a test)"
    words = {"above": "at or above the fixed target",
             "level": f"below, within noise (p >= {WITHIN_NOISE_P:g})",
             "below": f"below the fixed target beyond noise (p < {WITHIN_NOISE_P:g})"}
    return head + f", Welch t {c['welch_t']:+.2f}, p {c['p']:.3f}): {words[c['verdict']]}"


def _pm(mean, std, digits: int = 2) -> str:
    return "—" if mean is None else f"{mean:.{digits}f}±{std:.{digits}f}"


def markdown(settings, task_results, table: list[dict], sweep_bests: dict, comparisons: list[dict]) -> str:
    lines = [
        "# pls experiment: normalised final reward / cost, unsafe search episodes, regret",
        "",
        f"Budget per run: {settings.iterations} evaluations x {settings.episodes_per_evaluation} episodes; "
        f"{settings.seeds} seed(s); final = the method's operation target over "
        f"{settings.episodes_per_evaluation} fresh episodes. Reward (R - R_min)/(R_max - R_min) over the "
        "dataset's episode returns, cost G/b (safe iff <= 1); mean±std over seeds. Unsafe: search episodes "
        "with cost return > b, mean±std per run (of search episodes per run). Regret: normalised reward of "
        "the sweep's best safe target minus the final one's. Paper: Tables 1 (b=20) and 7 (b=40), unsafe "
        "from Table 8 (b=20); our `fixed` is the paper's CDT. Halted: PLS runs that stopped because their "
        "data refuted the seed box (no verified safe target left); they have no final reward or cost, count "
        "as safe, and their search has fewer episodes.",
    ]
    for result in task_results:
        inputs, sweep = result.inputs, next(iter(result.sweeps.values()))
        lo, hi = inputs.reward_range
        lines += ["", f"## {inputs.task_id}", "",
                  f"Model `{inputs.model_path}` (sha256 {inputs.model_sha256[:12]}); reward range [{lo:.1f}, "
                  f"{hi:.1f}] from {inputs.statistics_source}; sweep per b over its grid Z: "
                  f"{len(sweep['targets'])} targets x {sweep['fingerprint']['episodes_per_target']} "
                  "episodes; seed box R in "
                  + (f"[{inputs.seed_reward_range[0]:.0f}, {inputs.seed_reward_range[1]:.0f}] from the "
                     "dataset" if inputs.seed_reward_range else "the task's (paper) range") + "."]
        for b in settings.thresholds:
            best = sweep_bests[(inputs.task_id, float(b))]
            lines.append(f"- best safe sweep target in Z at b={b:g}: " + (
                "none" if best is None else
                f"R={best.target_reward:.0f}, G={best.target_cost:.1f} -> reward "
                f"{best.normalised_reward:.2f}, cost {best.normalised_cost:.2f}"))
        lines += ["", "| b | method | runs | halted | reward | cost | final safe | unsafe (search) | "
                      "regret | paper reward | paper cost | paper unsafe |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for entry in (e for e in table if e["task"] == inputs.task_id):
            per_run = round(entry["search_episodes"] / entry["runs"])
            paper = paper_numbers(entry["task"], entry["threshold"], entry["method"])
            lines.append(
                f"| {entry['threshold']:g} | {entry['method']} | {entry['runs']} | {entry['halted_runs']} | "
                f"{_pm(entry['final_reward_mean'], entry['final_reward_std'])} | "
                f"{_pm(entry['final_cost_mean'], entry['final_cost_std'])} | "
                f"{entry['final_safe_runs']}/{entry['runs']} | "
                f"{_pm(entry['unsafe_episodes_mean'], entry['unsafe_episodes_std'], 1)} (of {per_run}) | "
                f"{_pm(entry['regret_mean'], entry['regret_std'])} | {' | '.join(paper)} |")
        against = [_comparison_line(c) for c in comparisons if c["task"] == inputs.task_id]
        if against:
            lines += ["", *against]
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def episode_rows(task_results) -> list[dict]:
    rows = []
    for result in task_results:
        for run in result.runs:
            key = {"task": run.key.task, "threshold": run.key.threshold, "method": run.key.method,
                   "run_seed": run.key.seed}
            rows += [{**key, "stage": "search", **e} for e in run.episodes]
            rows += [{**key, "stage": "final", "iteration": len(run.iterations), **e,
                      "unsafe": e["cost_return"] > run.key.threshold} for e in run.final["episodes"]]
    return rows


def _task_entry(inputs, sweep_bests, thresholds) -> dict:
    best = {}
    for b in thresholds:
        s = sweep_bests[(inputs.task_id, float(b))]
        best[f"{b:g}"] = None if s is None else {"target": [s.target_reward, s.target_cost],
                                                 "reward": s.normalised_reward, "cost": s.normalised_cost}
    return {"model": str(inputs.model_path), "model_sha256": inputs.model_sha256,
            "reward_range": list(inputs.reward_range), "statistics_source": inputs.statistics_source,
            "sweep_best_safe": best}


def write_report(out_dir: Path, settings, task_results) -> dict[str, Path]:
    """All report files under `out_dir`; returns them by name."""
    from pls_core.experiment.figures import plot_curves, plot_sweep

    out_dir = Path(out_dir)
    sweep_cells, sweep_bests, rows = {}, {}, []  # per (task, b): the sweep's summaries, its best safe one
    for result in task_results:
        for b in settings.thresholds:
            key = (result.inputs.task_id, float(b))
            sweep_cells[key] = sweep_summaries(result.sweeps[float(b)], result.inputs.reward_range, b)
            grid = next(run.fingerprint["optimizer"] for run in result.runs if run.key.threshold == float(b))
            sweep_bests[key] = best_safe(sweep_cells[key], grid["reward_range"], grid["cost_range"])
        rows += [run_row(run, result.inputs.reward_range, sweep_bests[(run.key.task, run.key.threshold)])
                 for run in result.runs]
    table = aggregate(rows)
    comparisons = compare_to_fixed(rows)
    paths = {name: out_dir / name for name in ("results.json", "results.csv", "runs.csv", "episodes.csv",
                                               "table.md")}
    tasks = {r.inputs.task_id: _task_entry(r.inputs, sweep_bests, settings.thresholds) for r in task_results}
    paths["results.json"].write_text(json.dumps(
        {"settings": settings.to_dict(), "tasks": tasks, "summary": table, "against_fixed": comparisons,
         "runs": rows}, indent=1))
    _write_csv(paths["results.csv"], table)
    _write_csv(paths["runs.csv"], rows)
    _write_csv(paths["episodes.csv"], episode_rows(task_results))
    paths["table.md"].write_text(markdown(settings, task_results, table, sweep_bests, comparisons))
    figures = out_dir / "figures"
    for result in task_results:
        task = result.inputs.task_id
        for b in settings.thresholds:
            runs = [run for run in result.runs if run.key.threshold == float(b)]
            paths[f"curves {task} b={b:g}"] = plot_curves(
                runs, result.inputs.reward_range, b, figures / f"curves_{task}_b{b:g}.png")
            paths[f"sweep {task} b={b:g}"] = plot_sweep(
                sweep_cells[(task, float(b))], {b: sweep_bests[(task, float(b))]},
                figures / f"sweep_{task}_b{b:g}.png", title=task)
    return paths
