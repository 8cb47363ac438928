"""Bad launch input is refused before anything runs, by the graph description every launcher uses.

* pls_ros.graph.resolve (called by `pls sim`/`pls robot` and by the launch files' OpaqueFunction before
  any node action exists) checks every value a node would get: argument types, the node parameter table's
  ranges and choices, misspelled parameter names, the parameter files themselves.
* The pip launcher given a bad value exits 2 with the message and starts no process.
* A node started directly (`python -m pls_ros.<node> --ros-args -p ...`, as `ros2 run` does) refuses an
  out-of-range or misspelled parameter with one clear line and exit code 2, never a traceback.
* The robot computer's policy node loads no optimizer: torch and GPyTorch stay out of its process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pls_ros import graph as G
from pls_ros.params import ParameterError

REPO = Path(__file__).resolve().parent.parent

BAD = [
    # (graph, argument values, extra params, words the message must hold)
    ("sim", {"threshold": "-1.0"}, [], ["threshold:='-1.0'", "out of range", "[0, 1e+09]", "Fix"]),
    ("sim", {"episodes_per_evaluation": "abc"}, [], ["episodes_per_evaluation:='abc'", "not an integer"]),
    ("robot", {"threshold": "nan"}, [], ["threshold:='nan'", "finite"]),
    ("sim", {"control_rate_hz": "0"}, [], ["control_rate_hz:='0'", "out of range"]),
    ("sim", {"max_episodes": "-2"}, [], ["max_episodes:='-2'", "out of range"]),
    ("sim", {"mode": "fast"}, [], ["mode:='fast'", "lockstep, realtime"]),
    ("sim", {}, [("pls_sim", "max_episode_step", 3)],
     ["'max_episode_step'", "did you mean 'max_episode_steps'"]),
    ("sim", {}, [("pls_sim", "max_episode_steps", -3)], ["pls_sim.max_episode_steps=-3", "out of range"]),
    ("robot", {}, [("pls_policy", "fallback_action", "zero")], ["fallback_action", "wrong type"]),
    ("sim", {"robots": "0"}, [], ["robots:='0'", "1 to 64", "Fix"]),
    ("sim", {"robots": "two"}, [], ["robots:='two'", "1 to 64"]),
    ("sim", {"robots": "2", "record": "bag"}, [], ["record:='bag' with robots:=2", "Fix"]),
    ("sim", {"robots": "2", "seed": str(2**31 - 1)}, [], ["robot 1's sim seed", "out of range"]),
    ("robot", {"robots": "2"}, [], ["observation_topic:='/robot/pls/observation' with robots:=2",
                                    "observation_topic:=/robot{robot}/pls/observation"]),
    ("robot", {"observation_topic": "/arm{robot}/o"}, [], ["{robot} stands for", "robots:=N"]),
]


@pytest.mark.parametrize(("graph", "values", "extra", "words"), BAD,
                         ids=[f"{g}-{next(iter(v or {e[0][1]: 0}))}" for g, v, e, _ in BAD])
def test_resolve_refuses_every_bad_value_naming_it_and_the_fix(graph, values, extra, words):
    with pytest.raises(G.LaunchError) as info:
        G.resolve(G.get_graph(graph), values, extra_params=extra)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_a_fleet_resolves_to_a_sim_and_a_policy_per_robot_in_its_namespace_and_one_supervisor():
    """robots:=2: robot k's nodes in /robot<k> on /robot<k>/pls/*, with its own episode seeds; the
    supervisor (root namespace, /pls topics) is told the fleet's size."""
    nodes = G.resolve(G.SIM, {"robots": "2", "seed": "7"})
    assert [n.label for n in nodes] == ["robot0/pls_sim", "robot1/pls_sim", "robot0/pls_policy",
                                        "robot1/pls_policy", "pls_supervisor"]
    for node in nodes[:4]:
        robot = int(node.namespace.removeprefix("/robot"))
        assert node.namespace == G.robot_namespace(robot)
        assert set(node.remappings) == {(t, f"/robot{robot}{t}") for t in G.ROBOT_TOPICS}
        assert ["-r", f"__ns:=/robot{robot}"] == node.ros_args()[3:5]
    assert [n.overrides["seed"] for n in nodes[:2]] == [7, 7 + G.FLEET_SEED_STRIDE]
    supervisor = nodes[-1]
    assert supervisor.namespace == "" and supervisor.remappings == [] and supervisor.overrides["robots"] == 2
    # One robot: the graph as before, no namespaces.
    assert all(n.namespace == "" for n in G.resolve(G.SIM, {}))
    assert G.progress_topics(G.SIM, {"robots": "2"})["episode"] == ["/robot0/pls/episode_result",
                                                                   "/robot1/pls/episode_result"]
    # A fleet of real robots: each driver's topics from the {robot} templates; the supervisor hears robot
    # k's results on its driver's topic.
    fleet = G.resolve(G.ROBOT, {"robots": "2", "observation_topic": "/arm{robot}/o",
                                "action_topic": "/arm{robot}/a", "episode_result_topic": "/arm{robot}/r"})
    assert [n.label for n in fleet] == ["robot0/pls_policy", "robot1/pls_policy", "pls_supervisor"]
    assert ("/pls/observation", "/arm1/o") in fleet[1].remappings
    assert ("/pls/target_return", "/robot1/pls/target_return") in fleet[1].remappings
    assert ("/robot1/pls/episode_result", "/arm1/r") in fleet[2].remappings
    assert G.progress_topics(G.ROBOT, {"robots": "2", "observation_topic": "/arm{robot}/o",
                                       "action_topic": "/arm{robot}/a",
                                       "episode_result_topic": "/arm{robot}/r"})["episode"] == ["/arm0/r",
                                                                                                "/arm1/r"]


def test_resolve_checks_the_parameter_files_too(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    path = config / "supervisor.yaml"
    data = yaml.safe_load(path.read_text())
    data["pls_supervisor"]["ros__parameters"]["treshold"] = 5.0
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(G.LaunchError, match=r"supervisor.yaml.*'treshold' \(did you mean 'threshold'\?\)"):
        G.resolve(G.SIM, {}, config)
    # The good values still resolve, typed as the node declares them.
    (sim, policy, supervisor) = G.resolve(G.SIM, {"threshold": "25", "episodes_per_evaluation": "3"})
    assert supervisor.overrides["threshold"] == 25.0 and supervisor.overrides["episodes_per_evaluation"] == 3
    # The sim graph's supervisor counts only the sim's results; the store_path reaches the sim too.
    assert supervisor.overrides["trusted_result_publisher"] == "/pls_sim"
    assert sim.overrides["supervisor_store_path"] == supervisor.overrides["store_path"]
    # The sim and robot graphs keep their stores apart by default, and the store knows whose it is.
    (_, robot_supervisor) = G.resolve(G.ROBOT, {})
    assert supervisor.overrides["store_path"] == "runs/sim/pls_store.sqlite"
    assert robot_supervisor.overrides["store_path"] == "runs/robot/pls_store.sqlite"
    assert supervisor.overrides["store_owner"] == "sim" and "store_owner" not in robot_supervisor.overrides


def test_a_robot_task_description_names_its_task_and_needs_its_model(tmp_path):
    from test_task_specs import ROBOT_YAML

    from pls_core.tasks import TASKS

    spec = tmp_path / "arm.yaml"
    spec.write_text(ROBOT_YAML)
    try:
        with pytest.raises(G.LaunchError, match="pls ships no model for TestArm-v0; give the policy"):
            G.resolve(G.ROBOT, {"task": str(spec)})
        (policy, supervisor) = G.resolve(G.ROBOT, {"task": str(spec), "model": "arm.onnx"})
        assert policy.overrides["expected_task_id"] == supervisor.overrides["task_id"] == "TestArm-v0"
        with pytest.raises(G.LaunchError, match="pls has no simulator for TestArm-v0 .* robot graph"):
            G.resolve(G.SIM, {"task": str(spec), "model": "arm.onnx"})
        with pytest.raises(G.LaunchError, match="task:='nowhere.yaml': task description nowhere.yaml does "
                                                "not exist"):
            G.resolve(G.ROBOT, {"task": "nowhere.yaml", "model": "arm.onnx"})
    finally:
        TASKS.pop("TestArm-v0", None)


def test_launcher_given_a_bad_value_exits_2_and_starts_nothing(tmp_path, capsys):
    out = subprocess.run([sys.executable, "-m", "pls_core.cli", "sim", "episodes_per_evaluation:=abc",
                          "--store-path", str(tmp_path / "s.sqlite")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "episodes_per_evaluation:='abc'" in out.stderr and "Traceback" not in out.stderr + out.stdout
    assert "started pls_" not in out.stdout  # the launcher prints this for every node it starts

    from pls_ros.launcher import launch

    capsys.readouterr()
    assert launch(G.SIM, {"threshold": "-1"}, env={}, progress=False) == G.EXIT_USAGE
    assert capsys.readouterr().out == ""  # nothing was announced, let alone started


@pytest.mark.parametrize(("module", "param", "words"), [
    ("supervisor_node", "threshold:=-1.0", ["'threshold' = -1.0 is out of range", "-p threshold:=<value>"]),
    ("sim_node", "max_episode_step:=3", ["no parameter 'max_episode_step'", "'max_episode_steps'"]),
    ("policy_node", "control_rate_hz:=5000.0", ["'control_rate_hz' = 5000.0 is out of range"]),
])
def test_a_node_refuses_a_bad_parameter_with_exit_2_and_no_traceback(ros_env, module, param, words):
    node = G.get_graph("sim").node({"supervisor_node": "pls_supervisor", "sim_node": "pls_sim",
                                    "policy_node": "pls_policy"}[module])
    out = subprocess.run([sys.executable, "-m", f"pls_ros.{module}", "--ros-args", "--params-file",
                          str(REPO / "config" / node.params_file), "-p", param],
                         capture_output=True, text=True, timeout=120, env=ros_env, cwd=REPO)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "Traceback" not in text and "InvalidParameterValueException" not in text, text
    for word in words:
        assert word in text, text


def test_parameter_checks_of_the_tables_match_what_the_nodes_declare():
    from pls_ros import node_params, policy_node, sim_node, supervisor_node
    from pls_ros.params import check_values

    assert policy_node.PARAMS is node_params.POLICY and sim_node.PARAMS is node_params.SIM
    assert supervisor_node.PARAMS is node_params.SUPERVISOR
    with pytest.raises(ParameterError, match="did you mean 'store_path'"):
        check_values({"store_pth": "x"}, node_params.SUPERVISOR, "pls_supervisor")


LEAN_PROBE = """
import sys
import rclpy
from pls_ros import policy_node
rclpy.init(args=["x", "--ros-args", "-p", "model_path:={model}"])
node = policy_node.PolicyNode()
node.runner.reset((2000.0, 5.0))
node.runner.act(__import__("numpy").zeros(node.contract.obs_dim, "float32"))
node.destroy_node()
rclpy.shutdown()
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("torch", "gpytorch", "botorch", "linear_operator")
               or m.startswith("pls_core.safeopt") or m == "pls_ros.supervisor_messages")
print("HEAVY", heavy)
"""


def test_the_policy_node_loads_neither_torch_nor_the_optimizer(ros_env):
    """The robot computer runs a small ONNX file: its process must not need a deep-learning stack."""
    model = REPO / "pls_core" / "models" / "SafetyHalfCheetahVelocity-v1" / "policy.onnx"
    if not model.is_file():
        pytest.skip("no shipped HalfCheetah model in this checkout")
    out = subprocess.run([sys.executable, "-c", LEAN_PROBE.format(model=model)], capture_output=True,
                         text=True, timeout=120, env=ros_env, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "HEAVY []" in out.stdout, out.stdout
