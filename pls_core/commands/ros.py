"""`pls sim`, `pls robot`, `pls echo`: the ROS 2 node graph without `ros2 launch` / `ros2 topic echo`.

`pls sim` and `pls robot` start the graphs described in pls_ros.graph (the ones launch/sim.launch.py and
launch/robot.launch.py start on a ROS 2 install) as separate processes, with the same parameter files and
the same argument -> parameter overrides. Every launch argument is an option (`--episodes-per-evaluation 2`)
and may also be given launch-style (`episodes_per_evaluation:=2`); any other node parameter can be set with
`--param pls_sim.seed=3`.

DDS stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) unless PLS_ALLOW_NETWORK_DDS=1; the domain
is $ROS_DOMAIN_ID (default 0) or --domain-id, the same rule for every pls command, so `pls echo` in another
terminal joins the graph that `pls sim` started.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
import yaml

# Options shared by both graphs; each maps to the launch argument of the same name (dashes -> underscores).
_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
_ParamOpt = Annotated[list[str] | None, typer.Option("--param", "-p",
                                                     help="extra node parameter: <node>.<name>=<value>")]
_ModelOpt = Annotated[str | None,
                      typer.Option(help="exported ONNX policy (default: the model shipped for --task)")]
_ThresholdOpt = Annotated[float | None, typer.Option(help="safety threshold b on the episode cost return")]
_ConfigOpt = Annotated[str | None, typer.Option(help="optimizer config YAML for the supervisor")]
_VarpiOpt = Annotated[int | None, typer.Option(help="episodes per target evaluation (varpi)")]
_ShieldOpt = Annotated[bool | None, typer.Option(help="per-step shield after the policy (pls_core.shield)")]
_StoreOpt = Annotated[str | None, typer.Option(help="supervisor's observation store (resume after restart)")]
_DomainOpt = Annotated[int | None, typer.Option(help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 0)")]
_ProgressOpt = Annotated[bool, typer.Option(help="show iteration, phase, target, returns, safe-set size (one "
                                                 "live screen on a terminal, else a line per event)")]
_VerboseOpt = Annotated[bool,
                        typer.Option(help="also show every node's output inline (always in its log file)")]
_DryRunOpt = Annotated[bool, typer.Option(help="print the node command lines and exit")]
# The robot driver's topics (robot and record graphs).
_ObservationTopicOpt = Annotated[str | None,
                                 typer.Option(help="driver topic publishing pls_interfaces/Observation")]
_ActionTopicOpt = Annotated[str | None,
                            typer.Option(help="topic of the pls_interfaces/Action driving the robot")]
_ResultTopicOpt = Annotated[str | None,
                            typer.Option(help="driver topic publishing pls_interfaces/EpisodeResult")]
_RecordOpt = Annotated[str | None, typer.Option(help="record Observation, Action and EpisodeResult to this "
                                                     "new bag folder (rosbag2 MCAP; `pls dataset from-bag` "
                                                     "reads it)")]


def _domain(domain_id: int | None) -> int:
    if domain_id is not None:
        return domain_id
    return int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)


def _dds_env(domain_id: int | None) -> dict[str, str]:
    from pls_ros.dds import local_dds_environment

    env = local_dds_environment(domain_id=_domain(domain_id))
    os.environ.update(env)  # this process (progress monitor, echo) joins the same domain
    return env


def _parse_launch_style(extra: list[str]) -> dict[str, str]:
    values = {}
    for item in extra:
        if ":=" not in item:
            raise typer.BadParameter(f"unexpected argument {item!r}; launch arguments look like name:=value")
        name, value = item.split(":=", 1)
        values[name.strip()] = value
    return values


def _parse_params(items: list[str] | None) -> list[tuple[str, str, object]]:
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not sep or not dot or not node or not name:
            raise typer.BadParameter(f"--param {item!r}: expected <node>.<parameter>=<value>, "
                                     "e.g. pls_sim.seed=3")
        out.append((node, name, yaml.safe_load(value) if value != "" else ""))
    return out


def _run_graph(name: str, ctx: typer.Context, options: dict[str, object], params: list[str] | None,
               domain_id: int | None, progress: bool, verbose: bool, dry_run: bool) -> None:
    from pls_ros import graph as G
    from pls_ros.launcher import launch

    graph = G.get_graph(name)
    values = {k: ("true" if v is True else "false" if v is False else str(v))
              for k, v in options.items() if v is not None}
    values.update(_parse_launch_style(list(ctx.args)))
    try:
        extra = _parse_params(params)
        G.resolve(graph, values, extra_params=extra)  # validate before touching DDS
    except (KeyError, ValueError) as exc:
        typer.echo(f"pls {name}: {exc.args[0] if exc.args else exc}", err=True)
        raise typer.Exit(2) from None
    env = None if dry_run else _dds_env(domain_id)
    code = launch(graph, values, extra_params=extra, env=env, progress=progress, verbose=verbose,
                  dry_run=dry_run)
    raise typer.Exit(code)


def sim(
    ctx: typer.Context,
    task: str = typer.Option(None, help="Safety-Gymnasium task id (default: sim.yaml's task_id)"),
    model: _ModelOpt = None,
    threshold: _ThresholdOpt = None,
    config: _ConfigOpt = None,
    mode: str = typer.Option(None, help="lockstep | realtime"),
    trigger: str = typer.Option(None, help="policy trigger: observation (default here) | timer"),
    max_episodes: int = typer.Option(None, help="stop after this many episodes (0: never)"),
    episodes_per_evaluation: _VarpiOpt = None,
    shield: _ShieldOpt = None,
    control_rate_hz: float = typer.Option(None, help="control rate of the sim and the policy"),
    seed: int = typer.Option(None, help="sim seed (robot k of a fleet: seed + 100000 k)"),
    robots: int = typer.Option(None, help="simulated robots tuned together by one supervisor, each with "
                               "its own sim and policy on /robot<k>/pls/* (default 1: the /pls topics)"),
    store_path: _StoreOpt = None,
    record: _RecordOpt = None,
    param: _ParamOpt = None,
    domain_id: _DomainOpt = None,
    progress: _ProgressOpt = True,
    verbose: _VerboseOpt = False,
    dry_run: _DryRunOpt = False,
) -> None:
    """Run PLS in simulation: sim + policy + supervisor nodes (same graph as launch/sim.launch.py).

    Launch-style arguments work too: `pls sim task:=SafetyHopperVelocity-v1 threshold:=25`.
    """
    options = dict(task=task, model=model, threshold=threshold, config=config, mode=mode, trigger=trigger,
                   max_episodes=max_episodes, episodes_per_evaluation=episodes_per_evaluation,
                   control_rate_hz=control_rate_hz, seed=seed, robots=robots, store_path=store_path,
                   shield=shield, record=record)
    _run_graph("sim", ctx, options, param, domain_id, progress, verbose, dry_run)


def robot(
    ctx: typer.Context,
    task: str = typer.Option(None, help="task id the model was trained for, or your robot's task "
                             "description YAML"),
    model: _ModelOpt = None,
    threshold: _ThresholdOpt = None,
    config: _ConfigOpt = None,
    episodes_per_evaluation: _VarpiOpt = None,
    shield: _ShieldOpt = None,
    control_rate_hz: float = typer.Option(None, help="policy control rate"),
    trigger: str = typer.Option(None, help="observation | timer"),
    store_path: _StoreOpt = None,
    observation_topic: _ObservationTopicOpt = None,
    action_topic: _ActionTopicOpt = None,
    episode_result_topic: _ResultTopicOpt = None,
    robots: int = typer.Option(None, help="robots tuned together by one supervisor, a policy each in "
                               "/robot<k>; with N > 1 name each driver topic with {robot}, e.g. "
                               "--observation-topic '/arm{robot}/observation'"),
    record: _RecordOpt = None,
    param: _ParamOpt = None,
    domain_id: _DomainOpt = None,
    progress: _ProgressOpt = True,
    verbose: _VerboseOpt = False,
    dry_run: _DryRunOpt = False,
) -> None:
    """Run PLS on a real robot: policy + supervisor, remapped to the robot driver's topics
    (same graph as launch/robot.launch.py). The driver must already be running; see docs/ros.md."""
    options = dict(task=task, model=model, threshold=threshold, config=config,
                   episodes_per_evaluation=episodes_per_evaluation, control_rate_hz=control_rate_hz,
                   trigger=trigger, store_path=store_path, observation_topic=observation_topic,
                   action_topic=action_topic, episode_result_topic=episode_result_topic, shield=shield,
                   record=record, robots=robots)
    _run_graph("robot", ctx, options, param, domain_id, progress, verbose, dry_run)


def record(
    ctx: typer.Context,
    out: str = typer.Option(..., "--out", "--record",
                            help="new bag folder (rosbag2 MCAP; `pls dataset from-bag` reads it)"),
    episodes: int = typer.Option(None, "--episodes", "--max-episodes",
                                 help="stop after this many recorded episode results (0: on Ctrl-C)"),
    observation_topic: _ObservationTopicOpt = None,
    action_topic: _ActionTopicOpt = None,
    episode_result_topic: _ResultTopicOpt = None,
    param: _ParamOpt = None,
    domain_id: _DomainOpt = None,
    progress: _ProgressOpt = True,
    verbose: _VerboseOpt = False,
    dry_run: _DryRunOpt = False,
) -> None:
    """Record a robot's driver topics while something else drives it (teleoperation, a scripted controller):
    behaviour data for `pls dataset from-bag`, with no policy or supervisor running."""
    options = dict(record=out, max_episodes=episodes, observation_topic=observation_topic,
                   action_topic=action_topic, episode_result_topic=episode_result_topic)
    _run_graph("record", ctx, options, param, domain_id, progress, verbose, dry_run)


def echo(
    topic: str = typer.Argument(..., help="topic name, e.g. /pls/target_return"),
    msg_type: str = typer.Option(None, "--type", "-t",
                                 help="message type, e.g. pls_interfaces/msg/TargetReturn "
                                      "(default: known for /pls/* topics, else discovered)"),
    count: int = typer.Option(0, "--count", "-n", help="exit after this many messages (0: run until Ctrl-C)"),
    once: bool = typer.Option(False, "--once", help="same as --count 1"),
    timeout: float = typer.Option(None, help="give up after this many seconds (exit status 2 if short)"),
    qos_durability: str = typer.Option(None, help="transient_local | volatile (default: the publisher's)"),
    qos_reliability: str = typer.Option(None, help="reliable | best_effort (default: the publisher's)"),
    qos_depth: int = typer.Option(None, help="history depth (default: max(publisher, 100))"),
    truncate_length: int = typer.Option(128, help="longest array printed in full (-1: no limit)"),
    domain_id: int = typer.Option(None, help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 0)"),
) -> None:
    """Print the messages on TOPIC as `ros2 topic echo` does (YAML, `---` between messages)."""
    from pls_ros.echo import echo as run_echo

    for value, allowed, opt in ((qos_durability, ("transient_local", "volatile"), "--qos-durability"),
                                (qos_reliability, ("reliable", "best_effort"), "--qos-reliability")):
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{opt} must be one of {', '.join(allowed)}")
    _dds_env(domain_id)
    code = run_echo(topic, msg_type=msg_type, count=1 if once else count, timeout_s=timeout,
                    reliability=qos_reliability, durability=qos_durability, depth=qos_depth,
                    truncate=None if truncate_length < 0 else truncate_length, out=sys.stdout)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("sim", context_settings=_EXTRA)(sim)
    app.command("robot", context_settings=_EXTRA)(robot)
    app.command("record", context_settings=_EXTRA)(record)
    app.command("echo")(echo)



