"""`pls demo`: the main job — PLS on the shipped model, in MuJoCo, through the ROS 2 node graph."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import typer

from pls_core.commands.common import check_writable_folder, require

DEFAULT_OUT = Path("out/demo")


def demo(
    out: Path = typer.Option(DEFAULT_OUT, help="folder for the store, figures and report.md"),
    max_episodes: int = typer.Option(36, help="episodes to run (the sim stops after them)"),
    threshold: float = typer.Option(20.0, help="safety threshold b on the episode cost return"),
    config: str = typer.Option("config/optimizer_demo.yaml", help="optimizer config for the supervisor"),
    fresh: bool = typer.Option(True, help="start from an empty store (False: resume the last demo)"),
    model: str = typer.Option("", help="ONNX policy; empty: the model shipped for the task"),
    episode_steps: int = typer.Option(0, help="episode length; 0: the task's (1000 for HalfCheetah)"),
    verbose: bool = typer.Option(False, help="also show every node's output inline (always in its log file)"),
) -> None:
    """Run sim + policy + supervisor (lockstep) for a short budget, then write plots and a report."""
    require(max_episodes >= 1, f"--max-episodes {max_episodes}: run at least 1 episode")
    require(0 < threshold < float("inf"), f"--threshold {threshold:g}: must be a positive number")
    require(episode_steps >= 0, f"--episode-steps {episode_steps}: must be >= 0 (0: the task's length)")
    check_writable_folder(out, "--out")
    from pls_core.report import write_run_report
    from pls_ros import graph as G
    from pls_ros.dds import local_dds_environment
    from pls_ros.launcher import launch

    out.mkdir(parents=True, exist_ok=True)
    store = out / "store.sqlite"
    if fresh:
        for path in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
            path.unlink(missing_ok=True)
        shutil.rmtree(out / "figures", ignore_errors=True)
    values = {"mode": "lockstep", "max_episodes": str(max_episodes), "threshold": str(threshold),
              "config": config, "store_path": str(store.resolve())}
    if model:
        values["model"] = model
    extra = [("pls_sim", "max_episode_steps", episode_steps)] if episode_steps else []
    started = time.monotonic()
    code = launch(G.get_graph("sim"), values, extra_params=extra, verbose=verbose,
                  env=local_dds_environment(log_dir=out / "ros_log"),
                  title=f"pls demo: PLS at b = {threshold:g} on SafetyHalfCheetahVelocity-v1")
    elapsed = time.monotonic() - started
    if not store.exists():
        typer.echo(f"pls demo: the supervisor wrote no store (graph exit status {code})", err=True)
        raise typer.Exit(code or 1)
    title = "pls demo: PLS on SafetyHalfCheetahVelocity-v1 (shipped model)"
    report = write_run_report(store, out, title=title)
    typer.echo(f"pls demo: {elapsed:.0f} s through the node graph; report: {report}")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
