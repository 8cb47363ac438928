"""From runs to the paper's table: per (task, b, method) means ± stds over seeds, beside the paper's numbers.

Scores are DSRL's (pls_core.normalise): reward (R - R_min) / (R_max - R_min), cost G / b, safe iff <= 1.
Reward is given on two scales: ours (R_min/R_max of the model's dataset) and DSRL's (its published
per-task range, the scale of the paper's tables; "n/a" for a task without DSRL constants).
Per run: the final target's fresh evaluation, the number of unsafe
episodes (cost return > b) during the search, and the regret: the normalised reward of the sweep's best
safe target minus the final one's (negative when the method beat the sweep's coarse grid, or by noise).
Stds are sample stds (ddof 1) over seeds, 0 for a single seed. "Within noise" against the fixed target
(the issue's reward criterion) is Welch's two-sided t-test on the final normalised rewards at the 5 % level:
a method below the fixed target's mean by less than that test can tell from seed-to-seed spread is level.
Files: results.json (everything, with the command, machine, commit and date that made it), results.csv
(the table), runs.csv, episodes.csv, table.md (rendered from results.json alone), figures/.
A results document (docs/results.md) is rendered from committed results.json files by
write_results_document, so it is regenerated, never hand-edited.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from scipy import stats

from pls_core.experiment.paper import paper_numbers
from pls_core.experiment.provenance import REPO_ROOT, describe, provenance
from pls_core.experiment.sweep import best_safe, sweep_summaries
from pls_core.normalise import (
    dsrl_normalised_reward,
    dsrl_reward_range,
    fmt_score,
    normalised_cost,
    normalised_reward,
)


def run_row(run, reward_range, sweep_best) -> dict:
    """One run's scores; `sweep_best` is the sweep's best safe TargetSummary at the run's threshold."""
    final, b = run.final, run.key.threshold
    halted = bool(final.get("halted"))  # stopped on its safe action: no final policy to score, and safe
    reward = None if halted else float(normalised_reward(final["reward_mean"], *reward_range))
    cost = None if halted else float(normalised_cost(final["cost_mean"], b))
    return {"task": run.key.task, "threshold": b, "method": run.key.method, "seed": run.key.seed,
            "halted": halted,
            "final_target_reward": None if final["target"] is None else final["target"][0],
            "final_target_cost": None if final["target"] is None else final["target"][1],
            "final_reward_return": final["reward_mean"], "final_cost_return": final["cost_mean"],
            "final_reward": reward, "final_cost": cost, "final_safe": halted or cost <= 1.0,
            "final_reward_dsrl": None if halted else dsrl_normalised_reward(final["reward_mean"],
                                                                            run.key.task),
            "search_episodes": len(run.episodes), "unsafe_episodes": run.unsafe_episodes,
            "shield": bool(run.fingerprint.get("shield")),
            "cost_steps": _total(run.episodes, "cost_steps"),
            "interventions_per_episode": _per_episode(run.episodes, "interventions"),
            "regret": None if sweep_best is None or halted else sweep_best.normalised_reward - reward,
            "wall_time_s": run.wall_time_s}


def _total(episodes, name: str) -> int | None:
    """Sum of a per-episode count over the search, None when the run predates the count."""
    values = [e.get(name) for e in episodes]
    return None if not values or None in values else int(sum(values))


def _per_episode(episodes, name: str) -> float | None:
    total = _total(episodes, name)
    return None if total is None else total / len(episodes)


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
        for name in ("final_reward", "final_reward_dsrl", "final_cost", "unsafe_episodes", "regret",
                     "wall_time_s", "cost_steps", "interventions_per_episode"):
            entry[f"{name}_mean"], entry[f"{name}_std"] = _mean_std(r.get(name) for r in group)
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


def _shield_cell(settings: dict, row: dict) -> str:
    """Interventions per search episode with --shield; "off" without it."""
    if not settings.get("shield"):
        return "off"
    return _pm(row.get("interventions_per_episode_mean"), row.get("interventions_per_episode_std"), 1)


def _display_path(path: str) -> str:
    """A path inside this repository relative to its root (so documents do not name one machine's folders)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _sweep_best_line(b: str, best: dict | None) -> str:
    if best is None:
        return f"- best safe sweep target in Z at b={b}: none"
    r, g = best["target"]
    return (f"- best safe sweep target in Z at b={b}: R={r:.0f}, G={g:.1f} -> reward {best['reward']:.2f} "
            f"(DSRL {fmt_score(best.get('reward_dsrl'))}), cost {best['cost']:.2f}")


def markdown(results: dict, level: int = 1) -> str:
    """The report's tables, rendered from a results.json dict alone; headings start at `level`."""
    settings, h = results["settings"], "#" * level
    lines = [
        f"{h} pls experiment: normalised final reward / cost, unsafe search episodes, regret",
        "",
        f"Budget per run: {settings['iterations']} evaluations x {settings['episodes_per_evaluation']} "
        f"episodes; {settings['seeds']} seed(s); final = the method's operation target over "
        f"{settings['episodes_per_evaluation']} fresh episodes. Reward (R - R_min)/(R_max - R_min) on two "
        "scales: ours (R_min/R_max of the model's dataset) and DSRL (DSRL's published per-task range, the "
        "scale of the paper's tables; n/a: no DSRL constants for the task); cost G/b (safe iff <= 1); "
        "mean±std over seeds. Unsafe: search episodes with cost return > b, mean±std per run (of search "
        "episodes per run). Regret (our scale): normalised reward of the sweep's best safe target minus the "
        "final one's. Paper: Tables 1 (b=20) and 7 (b=40), unsafe from Table 8 (b=20); our `fixed` is the "
        "paper's CDT. Halted: PLS runs that stopped because their data refuted the seed box (no verified "
        "safe target left); they have no final reward or cost, count as safe, and their search has fewer "
        "episodes.",
    ]
    if results.get("provenance"):
        lines += ["", "Made by:", *describe(results["provenance"])]
    for task, entry in results["tasks"].items():
        lo, hi = entry["reward_range"]
        dsrl = dsrl_reward_range(task)
        seed_box = entry.get("seed_reward_range")
        sweep = (f"{entry['sweep_targets']} targets x {entry['sweep_episodes_per_target']} episodes"
                 if "sweep_targets" in entry else "size not recorded")
        lines += ["", f"{h}# {task}", "",
                  f"Model `{_display_path(entry['model'])}` (sha256 {entry['model_sha256'][:12]}); "
                  f"reward range [{lo:.1f}, {hi:.1f}] from {entry['statistics_source']}; DSRL's "
                  + (f"[{dsrl[0]:.1f}, {dsrl[1]:.1f}]" if dsrl else "n/a")
                  + f"; sweep per b over its grid Z: {sweep}; seed box R in "
                  + (f"[{seed_box[0]:.0f}, {seed_box[1]:.0f}] from the dataset" if seed_box
                     else "the task's (paper) range") + "."]
        lines += [_sweep_best_line(b, best) for b, best in entry["sweep_best_safe"].items()]
        lines += ["", "| b | method | runs | halted | reward (ours) | reward (DSRL) | cost | final safe | "
                      "unsafe (search) | cost>0 steps (search) | shield interventions/ep | regret | "
                      "paper reward (DSRL) | paper cost | paper unsafe |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in (e for e in results["summary"] if e["task"] == task):
            per_run = round(row["search_episodes"] / row["runs"])
            paper = paper_numbers(row["task"], row["threshold"], row["method"])
            reward_dsrl = _pm(row.get("final_reward_dsrl_mean"), row.get("final_reward_dsrl_std")) if dsrl \
                else "n/a"
            lines.append(
                f"| {row['threshold']:g} | {row['method']} | {row['runs']} | {row['halted_runs']} | "
                f"{_pm(row['final_reward_mean'], row['final_reward_std'])} | "
                f"{reward_dsrl} | "
                f"{_pm(row['final_cost_mean'], row['final_cost_std'])} | "
                f"{row['final_safe_runs']}/{row['runs']} | "
                f"{_pm(row['unsafe_episodes_mean'], row['unsafe_episodes_std'], 1)} (of {per_run}) | "
                f"{_pm(row.get('cost_steps_mean'), row.get('cost_steps_std'), 0)} | "
                f"{_shield_cell(results['settings'], row)} | "
                f"{_pm(row['regret_mean'], row['regret_std'])} | {' | '.join(paper)} |")
        against = [_comparison_line(c) for c in results["against_fixed"] if c["task"] == task]
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


def _task_entry(result, sweep_bests, thresholds) -> dict:
    inputs, best = result.inputs, {}
    for b in thresholds:
        s = sweep_bests[(inputs.task_id, float(b))]
        best[f"{b:g}"] = None if s is None else {
            "target": [s.target_reward, s.target_cost], "reward": s.normalised_reward,
            "cost": s.normalised_cost, "reward_dsrl": dsrl_normalised_reward(s.reward_mean, inputs.task_id)}
    sweep = next(iter(result.sweeps.values()))
    return {"model": str(inputs.model_path), "model_sha256": inputs.model_sha256,
            "reward_range": list(inputs.reward_range), "statistics_source": inputs.statistics_source,
            "dsrl_reward_range": dsrl_reward_range(inputs.task_id),
            "seed_reward_range": None if inputs.seed_reward_range is None else list(inputs.seed_reward_range),
            "sweep_targets": len(sweep["targets"]),
            "sweep_episodes_per_target": sweep["fingerprint"]["episodes_per_target"],
            "sweep_best_safe": best}


def write_report(out_dir: Path, settings, task_results) -> dict[str, Path]:
    """All report files under `out_dir`; returns them by name."""
    from pls_core.experiment.figures import plot_curves, plot_sweep
    from pls_core.experiment.settings import optimizer_config

    out_dir = Path(out_dir)
    sweep_cells, sweep_bests, rows = {}, {}, []  # per (task, b): the sweep's summaries, its best safe one
    for result in task_results:
        for b in settings.thresholds:
            key = (result.inputs.task_id, float(b))
            sweep_cells[key] = sweep_summaries(result.sweeps[float(b)], result.inputs.reward_range, b)
            # Z (the grid's ranges) is the same for every method, so any run's config gives it.
            grid = optimizer_config(result.inputs, float(b), "pls", 0, settings)
            sweep_bests[key] = best_safe(sweep_cells[key], grid.reward_range, grid.cost_range)
        rows += [run_row(run, result.inputs.reward_range, sweep_bests[(run.key.task, run.key.threshold)])
                 for run in result.runs]
    table = aggregate(rows)
    comparisons = compare_to_fixed(rows)
    paths = {name: out_dir / name for name in ("results.json", "results.csv", "runs.csv", "episodes.csv",
                                               "table.md")}
    tasks = {r.inputs.task_id: _task_entry(r, sweep_bests, settings.thresholds) for r in task_results}
    results = {"settings": settings.to_dict(), "provenance": provenance(), "tasks": tasks, "summary": table,
               "against_fixed": comparisons, "runs": rows}
    text = json.dumps(results, indent=1)
    paths["results.json"].write_text(text)
    _write_csv(paths["results.csv"], table)
    _write_csv(paths["runs.csv"], rows)
    _write_csv(paths["episodes.csv"], episode_rows(task_results))
    paths["table.md"].write_text(markdown(json.loads(text)))  # exactly what the file alone renders to
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


LEGACY_FILE = "legacy.md"  # hand-copied results from before results were generated, shown until replaced


def results_document(doc: Path, results_dir: Path | None = None) -> str:
    """The results document rendered from every `<results_dir>/<name>/results.json` (default: the folder
    `results/` beside `doc`; `<results_dir>/results.json` itself comes first), in name order, each with
    the command, machine, commit and date that made it and the figures found beside it; then
    `<results_dir>/legacy.md` verbatim, if present. Depends on those files alone, so rerendering committed
    results gives the committed document byte for byte."""
    doc = Path(doc)
    results_dir = Path(results_dir) if results_dir is not None else doc.parent / "results"
    files = sorted(results_dir.glob("*/results.json"))
    if (results_dir / "results.json").is_file():  # --out of one experiment itself
        files.insert(0, results_dir / "results.json")
    shown = _relative(results_dir, doc.parent)
    lines = ["# Results", "",
             "<!-- Generated by `pls experiment --report`; do not edit: rerun the experiment, commit its "
             "results.json beside this file and regenerate. -->", "",
             f"Generated from the `results.json` files under `{shown}/` by `pls experiment --out "
             f"{_display_path(results_dir)} --report {_display_path(doc)}`. Each experiment below says which "
             "command, machine, commit and date produced it: episodes "
             "differ across processors (e.g. with or without AVX-512), so compare figures across machines "
             "within their spread, not digit for digit."]
    if not files:
        lines += ["", "No generated results are committed yet."]
    for path in files:
        folder = path.parent
        results = json.loads(path.read_text())
        lines += ["", f"## {folder.name}", ""]
        if not results.get("provenance"):  # markdown() prints it when the run recorded it
            lines += ["Made by:", *describe(None), ""]
        lines += markdown(results, level=3).rstrip("\n").split("\n")
        figures = sorted((folder / "figures").glob("*.png"))
        if figures:
            lines += ["", *(f"![{f.stem}]({_relative(f, doc.parent)})" for f in figures)]
    legacy = results_dir / LEGACY_FILE
    if legacy.is_file():
        lines += ["", legacy.read_text().rstrip("\n")]
    return "\n".join(lines) + "\n"


def _relative(path: Path, start: Path) -> str:
    import os

    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def write_results_document(doc: Path, results_dir: Path | None = None) -> Path:
    """Regenerate `doc` (e.g. docs/results.md) from the results under `results_dir`; returns its path."""
    from pls_core.experiment.settings import ExperimentError

    doc = Path(doc)
    folder = Path(results_dir) if results_dir is not None else doc.parent / "results"
    if not folder.is_dir():
        raise ExperimentError(f"no results folder {folder}; point --out at the folder holding "
                              "<name>/results.json (e.g. docs/results)")
    if not doc.parent.is_dir():
        raise ExperimentError(f"no folder {doc.parent} for the document {doc}; create it or pick another")
    doc.write_text(results_document(doc, folder))
    return doc
