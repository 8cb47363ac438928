"""`pls optimize`: look at and try out the online target-return optimizer (pls_core.safeopt).

`demo` runs a method on a synthetic problem with a known answer, `plot` draws a recorded run from its
SQLite store, `status` prints where a recorded run stands. numpy/torch/matplotlib load only when a
command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pls_core.commands.common import check_writable_folder, require

optimize_app = typer.Typer(no_args_is_help=True, help="GP safe optimization of the target returns (PLS).")
Opt = typer.Option


@optimize_app.command()
def demo(
    method: Annotated[str, Opt(help="pls | fixed | gp_ucb | random")] = "pls",
    seed: Annotated[int, Opt(help="Problem draw, episode noise and tie-breaking.")] = 0,
    evaluations: Annotated[int | None, Opt(help="Evaluations to run; default: both stage caps.")] = None,
    store: Annotated[Path | None, Opt(help="SQLite store: record the run (resumes if it exists).")] = None,
    out: Annotated[Path | None, Opt(help="Write the run's figures here (needs --store).")] = None,
    every: Annotated[int, Opt(help="Plot every n-th iteration.")] = 5,
) -> None:
    """Run on a synthetic problem drawn from the GP prior, with known safe region and optimum."""
    from pls_core.safeopt import build_optimizer
    from pls_core.safeopt.synthetic import SyntheticProblem, run, synthetic_config

    if out is not None and store is None:
        raise typer.BadParameter("--out needs --store (figures are drawn from the recorded run)")
    require(evaluations is None or evaluations >= 1, f"--evaluations {evaluations}: must be at least 1")
    require(every >= 1, f"--every {every}: must be at least 1")
    if out is not None:
        check_writable_folder(out, "--out")
    config = synthetic_config(method=method, seed=seed)
    problem = SyntheticProblem.sample(config, seed)
    optimizer = build_optimizer(config, store)
    budget = evaluations if evaluations is not None else \
        config.max_exploration_iterations + config.max_maximisation_iterations
    history = run(optimizer, problem, budget)
    for d in history:
        index = problem.index(d.target)
        true_reward, true_cost = problem.reward[index], problem.cost[index]
        typer.echo(f"{d.iteration:3d} {d.phase.value:20s} target=({d.target[0]:6.1f}, {d.target[1]:5.1f}) "
                   f"true J_r={true_reward:7.2f} J_g={true_cost:6.2f} u_g={d.cost_bounds[1]:7.2f} "
                   f"safe set={d.safe_set_size}{'  UNSAFE' if true_cost > config.threshold else ''}")
    final = history[-1]
    summary = {
        "method": method, "seed": seed, "evaluations": len(history) - 1, "threshold": config.threshold,
        "unsafe_proposals": sum(not problem.is_safe(d.target) for d in history),
        "final_target": list(final.target),
        "final_true_reward": float(problem.reward[problem.index(final.target)]),
        "best_safe_true_reward": problem.best_safe_reward,
    }
    typer.echo(json.dumps(summary, indent=2))
    if out is not None:
        from pls_core.safeopt.plots import plot_store

        files = plot_store(store, out, every=every)
        typer.echo(f"wrote {len(files)} figures to {out}")


@optimize_app.command()
def plot(
    store: Annotated[Path, Opt(help="SQLite store of a run.", exists=True, dir_okay=False)],
    out: Annotated[Path, Opt(help="Directory for the PNG files.")],
    every: Annotated[int, Opt(help="Plot every n-th iteration (the last one always).")] = 1,
) -> None:
    """Safe set, GP means and widths per iteration, chosen targets, and returns against b."""
    from pls_core.safeopt.plots import plot_store

    require(every >= 1, f"--every {every}: must be at least 1")
    check_writable_folder(out, "--out")
    files = plot_store(store, out, every=every)
    typer.echo("\n".join(str(f) for f in files))


@optimize_app.command()
def status(store: Annotated[Path, Opt(help="SQLite store of a run.", exists=True, dir_okay=False)]) -> None:
    """Replay a recorded run (read-only) and print its status as JSON."""
    from pls_core.safeopt.plots import replay_store

    optimizer, _ = replay_store(store)
    typer.echo(json.dumps({**optimizer.status(), "store": str(store)}, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(optimize_app, name="optimize")
