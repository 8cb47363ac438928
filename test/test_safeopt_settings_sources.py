"""One source of truth for the optimizer's settings: `pls sim --threshold 40`, `ros2 launch pls_ros
sim.launch.py threshold:=40.0` (the launch file binds its arguments through pls_ros.graph, as here) and
`pls experiment --thresholds 40` build the same OptimizerConfig for the shipped HalfCheetah model.

The supervisor is the real node (in process, over rclpy), fed the parameters each interface gives it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pls_ros import graph

REPO = Path(__file__).resolve().parent.parent
TASK = "SafetyHalfCheetahVelocity-v1"


def supervisor_parameters(params_file: Path, overrides: dict) -> dict:
    """The parameters the supervisor starts with: its parameter file, then the command line's overrides."""
    params = yaml.safe_load(Path(params_file).read_text())[graph.SUPERVISOR_NODE.name][graph.PARAMS_KEY]
    return {**params, **overrides}


def from_pls_sim(*args: str) -> dict:
    """`pls sim ARGS --dry-run`: the supervisor's parameters from the command line it would run."""
    result = subprocess.run([sys.executable, "-m", "pls_core.cli", "sim", *args, "--dry-run"], cwd=REPO,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "pls_ros.supervisor_node" in x)
    words = shlex.split(line)
    params_file = words[words.index("--params-file") + 1]
    overrides = {}
    for i, word in enumerate(words):
        if word == "-p":
            name, value = words[i + 1].split(":=", 1)
            overrides[name] = yaml.safe_load(value)
    return supervisor_parameters(params_file, overrides)


def from_launch(values: dict[str, str]) -> dict:
    """sim.launch.py's binding of launch arguments (graph.resolve) for the supervisor node."""
    node = next(n for n in graph.resolve(graph.SIM, values, REPO / graph.CONFIG_FOLDER)
                if n.spec.name == graph.SUPERVISOR_NODE.name)
    return supervisor_parameters(node.params_file, node.overrides)


def supervisor_config(ros_env, params: dict, store: Path):
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from pls_ros.supervisor_node import SupervisorNode

    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]),
               signal_handler_options=SignalHandlerOptions.NO)
    params = {**params, "store_path": str(store)}
    try:
        node = SupervisorNode(context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in params.items()])
        if node.optimizer is None:  # a managed node started without autostart: configure builds it
            node.trigger_configure()
        config = node.optimizer.config
        node.destroy_node()
        return config
    finally:
        rclpy.shutdown(context=context)


def from_experiment(threshold: float):
    """What `pls experiment --thresholds <b>` configures for run seed 0 of PLS (its default options)."""
    from pls_core.experiment.settings import ExperimentSettings, optimizer_config, task_inputs

    settings = ExperimentSettings(thresholds=(threshold,))
    return optimizer_config(task_inputs(TASK, settings), threshold, "pls", 0, settings)


@pytest.mark.parametrize("b", [40.0, 20.0])
def test_pls_sim_launch_and_experiment_build_the_same_optimizer(ros_env, tmp_path, b):
    sim_params = from_pls_sim("--threshold", str(b))
    launch_params = from_launch({"threshold": str(b)})
    assert sim_params == launch_params
    assert sim_params["optimizer_config"]  # the shipped YAML of overrides is read, not skipped
    sim = supervisor_config(ros_env, sim_params, tmp_path / "sim.sqlite")
    experiment = from_experiment(b)
    assert sim.threshold == b
    assert sim.to_dict() == experiment.to_dict()
    # b-relative settings follow b through every interface
    assert sim.cost_lengthscale[1] == b / 2 and sim.effective_cost_output_scale == b / 2
