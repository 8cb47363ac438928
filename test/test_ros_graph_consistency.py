"""pls_ros.graph is the one description of the node graphs; everything that starts nodes must follow it.

`ros2 launch` is not installable here (no launch/launch_ros on PyPI), so the launch files are checked
structurally: they parse, take their graph from pls_ros.graph, declare every argument and create every
node only from that data, and name no node, executable, parameter, topic or argument themselves.
The rest is checked for real: the graph against the node modules' parameter tables, the parameter files,
setup.py's executables and pls_ros.qos; the pip-only CLI against the graph (`pls sim --dry-run`).
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pls_ros import graph as G

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILES = {"sim": REPO / "launch" / "sim.launch.py", "robot": REPO / "launch" / "robot.launch.py"}
KINDS = {str: "str", float: "float", int: "int", bool: "bool"}


def graph_names(graph: G.Graph) -> set[str]:
    """Every name the launch file must take from the graph instead of spelling it out."""
    names = {graph.name}
    for spec in graph.nodes:
        names |= {spec.name, spec.executable, spec.module, spec.params_file}
    for arg in graph.arguments:
        names.add(arg.name)
        names |= {p.name for p in arg.targets}
        if arg.default:
            names.add(arg.default)
    names |= {r.topic for r in graph.remappings} | set(G.TOPICS)
    return names


def enclosing_loops(tree: ast.AST) -> dict[ast.AST, list[ast.For]]:
    """For every node, the `for` statements around it (innermost last)."""
    parents: dict[ast.AST, list[ast.For]] = {}

    def visit(node, loops):
        parents[node] = loops
        for child in ast.iter_child_nodes(node):
            visit(child, loops + [node] if isinstance(node, ast.For) else loops)

    visit(tree, [])
    return parents


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            and n.func.id == name]


def kw(call: ast.Call, name: str) -> str:
    for k in call.keywords:
        if k.arg == name:
            return ast.unparse(k.value)
    raise AssertionError(f"{ast.unparse(call.func)}(...) has no {name}=")


def literal_strings(tree: ast.Module) -> set[str]:
    """Every string constant in a module, its docstring aside."""
    return {n.value for n in ast.walk(ast.Module(body=tree.body[1:], type_ignores=[]))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@pytest.mark.parametrize("name", sorted(LAUNCH_FILES))
def test_launch_file_returns_the_shared_description_of_its_graph(name):
    path = LAUNCH_FILES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert imports == {("pls_ros", "graph"), ("pls_ros.launch_description", "generate")}
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert function.name == "generate_launch_description"
    assert ast.unparse(function.body) == f"return generate(graph.{name.upper()})"
    assert not literal_strings(tree)


def test_the_launch_description_is_built_only_from_the_graph():
    path = REPO / "pls_ros" / "launch_description.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    loops = enclosing_loops(tree)

    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("pls_ros", "graph") in imports
    # Real launch API (not runnable here, but these are the names a ROS 2 install provides).
    assert {("launch", "LaunchDescription"), ("launch.actions", "DeclareLaunchArgument"),
            ("launch.actions", "OpaqueFunction"), ("launch.actions", "Shutdown"),
            ("launch_ros.actions", "Node"),
            ("launch_ros.parameter_descriptions", "ParameterValue")} <= imports
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"generate", "start_nodes", "on_exit"} <= set(functions)
    assert [a.arg for a in functions["generate"].args.args] == ["pls_graph"]

    # Every argument is declared from the graph's arguments, with its default, description and choices.
    (declare,) = calls(tree, "DeclareLaunchArgument")
    (loop,) = loops[declare]
    assert ast.unparse(loop.iter) == "pls_graph.arguments"
    var = ast.unparse(loop.target)
    assert ast.unparse(declare.args[0]) == f"{var}.name"
    assert kw(declare, "default_value") == f"defaults[{var}.name]"
    assert kw(declare, "description") == f"{var}.description"
    assert "graph.argument_defaults(pls_graph, config)" in ast.unparse(tree)
    # The nodes are made by an OpaqueFunction, at launch time, from the values of all arguments.
    (opaque,) = calls(tree, "OpaqueFunction")
    assert kw(opaque, "function") == "start_nodes" and kw(opaque, "args") == "[pls_graph, config]"

    # start_nodes: every argument value through graph.resolve first; a bad one exits 2 before any Node
    # action exists, so `ros2 launch` never starts part of the graph.
    body = [stmt for stmt in functions["start_nodes"].body if not isinstance(stmt, ast.Expr)]
    assert [type(stmt) for stmt in body] == [ast.Assign, ast.Try, ast.Return]
    values, guarded, returned = body
    assert "for arg in pls_graph.arguments" in ast.unparse(values)
    assert "context.launch_configurations[arg.name]" in ast.unparse(values)
    assert ast.unparse(guarded.body) == "resolved = graph.resolve(pls_graph, values, config)"
    (handler,) = guarded.handlers
    assert "SystemExit(graph.EXIT_USAGE)" in ast.unparse(handler)
    assert "launch_error_text" in ast.unparse(handler)
    assert not calls(guarded, "Node")
    (node_call,) = calls(tree, "Node")
    assert node_call in list(ast.walk(returned))
    assert "for node in resolved" in ast.unparse(returned)
    assert kw(node_call, "package") == "graph.PACKAGE"
    assert kw(node_call, "executable") == "node.spec.executable"
    assert kw(node_call, "name") == "node.spec.name"
    assert kw(node_call, "namespace") == "node.namespace or None"  # a fleet's robots: /robot<k>
    assert kw(node_call, "parameters") == (
        "[str(node.params_file), {name: ParameterValue(value, value_type=type(value)) "
        "for name, value in node.overrides.items()}]")
    assert kw(node_call, "remappings") == "node.remappings"
    assert kw(node_call, "on_exit") == "on_exit(node.spec)"

    # on_exit: required nodes only; a failure outside a requested shutdown raises (ros2 launch exits
    # non-zero), a clean exit shuts the launch down with the graph's message as the reason.
    exit_source = ast.unparse(functions["on_exit"])
    assert "if not spec.required" in exit_source
    assert "graph.exit_is_failure(event.returncode) and (not context.is_shutdown)" in exit_source
    assert "raise RuntimeError(message)" in exit_source and "Shutdown(reason=message)" in exit_source
    assert "graph.exit_message(spec, event.returncode)" in exit_source

    # ...and no name of any graph is spelled out in the module (docstring aside).
    names = set().union(*(graph_names(g) for g in G.GRAPHS.values()))
    assert not literal_strings(tree) & names, literal_strings(tree) & names


def node_module(spec: G.NodeSpec):
    import importlib

    return importlib.import_module(spec.module)


def param_table(spec: G.NodeSpec) -> dict:
    return {p.name: p for p in node_module(spec).PARAMS}


@pytest.mark.parametrize("spec", [G.SIM_NODE, G.POLICY_NODE, G.SUPERVISOR_NODE, G.RECORDER_NODE],
                         ids=lambda s: s.name)
def test_node_specs_match_modules_packaging_and_parameter_files(spec):
    module = node_module(spec)
    assert spec.name == module.NODE_NAME
    assert callable(module.main)
    setup = (REPO / "setup.py").read_text()
    assert f'"{spec.executable} = {spec.module}:main"' in setup
    # colcon installs console scripts where launch_ros looks for them: lib/<package>/.
    assert f"install_scripts=$base/lib/{G.PACKAGE}" in (REPO / "setup.cfg").read_text()
    data = yaml.safe_load((REPO / "config" / spec.params_file).read_text())
    assert list(data) == [spec.name]
    assert set(data[spec.name][G.PARAMS_KEY]) == set(param_table(spec))
    assert G.config_dir() == REPO / "config"


@pytest.mark.parametrize("graph", list(G.GRAPHS.values()), ids=lambda g: g.name)
def test_every_argument_lands_on_a_declared_parameter_of_the_right_kind(graph):
    defaults = G.argument_defaults(graph)
    for arg in graph.arguments:
        assert arg.targets or any(r.argument == arg.name for r in graph.remappings), arg.name
        for target in arg.targets:
            assert target.node in {s.name for s in graph.nodes}
            table = param_table(graph.node(target.node))
            assert target.name in table, f"{arg.name} -> {target.node}.{target.name} is not a parameter"
            spec = table[target.name]
            assert spec.kind == KINDS[target.type], (arg.name, target, spec.kind)
            if arg.choices:
                assert set(arg.choices) <= set(spec.choices or ()), (arg.name, arg.choices, spec.choices)
            # The default, passed on as a string and typed back (as ParameterValue does), is accepted.
            spec.coerce(G.coerce(defaults[arg.name], target.type))
        if arg.default is None:
            first = arg.targets[0]
            in_file = G.read_params(REPO / "config" / graph.node(first.node).params_file, first.node)
            assert defaults[arg.name] == G.format_value(in_file[first.name])


def test_topics_and_qos_names_match_the_nodes():
    from pls_ros import qos
    from pls_ros.echo import load_message_type

    by_name = {v: k for k, v in vars(qos).items() if k.endswith("_TOPIC")}
    for topic in G.TOPICS.values():
        assert topic.name in by_name, topic.name
        assert isinstance(getattr(qos, topic.qos), qos.QoSProfile)
        assert load_message_type(topic.type).__name__ == topic.type.rsplit("/", 1)[1]
    assert G.TOPICS[G.TARGET_RETURN].qos == "TARGET_RETURN_QOS"
    assert {r.topic for r in G.ROBOT.remappings} == {G.OBSERVATION, G.ACTION, G.EPISODE_RESULT}
    assert not G.SIM.remappings


def cli_command(name: str):
    import typer

    from pls_core.cli import app

    return typer.main.get_command(app).commands[name]


@pytest.mark.parametrize("graph", list(G.GRAPHS.values()), ids=lambda g: g.name)
def test_cli_has_an_option_for_every_launch_argument(graph):
    options = {opt for p in cli_command(graph.name).params for opt in p.opts}
    for arg in graph.arguments:
        assert "--" + arg.name.replace("_", "-") in options, arg.name


def dry_run(*args: str) -> list[list[str]]:
    out = subprocess.run([sys.executable, "-m", "pls_core.cli", *args, "--dry-run"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    return [shlex.split(line.removeprefix("[pls] ")) for line in out.stdout.splitlines() if " -m " in line]


def parse_ros_args(cmd: list[str]) -> dict:
    i = cmd.index("--ros-args")
    found = {"module": cmd[cmd.index("-m") + 1], "params": {}, "remaps": {}, "files": []}
    rest = cmd[i + 1:]
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        if flag == "--params-file":
            found["files"].append(value)
        else:
            key, val = value.split(":=", 1)
            (found["params"] if flag == "-p" else found["remaps"])[key] = val
    return found


def test_pls_sim_dry_run_starts_the_graph_with_every_override():
    cmds = [parse_ros_args(c) for c in dry_run("sim", "--threshold", "33", "--mode", "realtime",
                                               "episodes_per_evaluation:=3", "-p", "pls_sim.seed=5")]
    started = [s for s in G.SIM.nodes if not s.enabled_by]  # the recorder only with `record`
    assert [c["module"] for c in cmds] == [s.module for s in started]
    defaults = G.argument_defaults(G.SIM)
    for spec, cmd in zip(started, cmds, strict=True):
        assert cmd["remaps"].pop("__node") == spec.name
        assert cmd["files"] == [str(REPO / "config" / spec.params_file)]
        expected = {p.name for p, _ in G.node_parameter_arguments(G.SIM, spec.name)}
        expected |= {name for node, name, _ in G.SIM.fixed if node == spec.name}
        if spec.name == "pls_sim":
            expected.add("seed")
        assert set(cmd["params"]) == expected
        assert not cmd["remaps"]
    sim, policy, supervisor = (c["params"] for c in cmds)
    assert supervisor["threshold"] == "33.0" and supervisor["episodes_per_evaluation"] == "3"
    assert sim["mode"] == '"realtime"' and sim["seed"] == "5"
    assert policy["trigger"] == '"observation"'
    assert sim["task_id"] == policy["expected_task_id"] == f'"{defaults["task"]}"'


def test_pls_robot_dry_run_remaps_every_node_to_the_driver():
    cmds = [parse_ros_args(c) for c in dry_run("robot", "--observation-topic", "/go2/pls_obs",
                                               "action_topic:=/go2/pls_cmd")]
    assert [c["module"] for c in cmds] == [s.module for s in G.ROBOT.nodes if not s.enabled_by]
    for cmd in cmds:
        cmd["remaps"].pop("__node")
        assert cmd["remaps"] == {G.OBSERVATION: "/go2/pls_obs", G.ACTION: "/go2/pls_cmd",
                                 G.EPISODE_RESULT: G.ROBOT.argument("episode_result_topic").default}


def test_cli_rejects_unknown_arguments_and_bad_choices():
    for args, message in ((["sim", "nonsense:=1"], "no argument 'nonsense'"),
                          (["sim", "--mode", "fast"], "choose one of lockstep, realtime"),
                          (["robot", "-p", "pls_sim.seed=1"], "no node(s) pls_sim")):
        out = subprocess.run([sys.executable, "-m", "pls_core.cli", *args, "--dry-run"], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 2 and re.search(re.escape(message), out.stderr), (args, out.stderr)


def test_parameter_values_round_trip_through_ros_args():
    # What `-p name:=<yaml>` hands to rcl must come back as the same type (a string "1.0" stays a string).
    for value in ("", "1.0", "/a b/c.onnx", "true", 2.0, 3, 1e-5, 2.5e20, -7.0, float("inf"), True):
        assert yaml.safe_load(G.yaml_scalar(value)) == value
        assert type(yaml.safe_load(G.yaml_scalar(value))) is type(value)


def test_policy_status_msg_lists_every_state_the_policy_node_publishes():
    from pls_ros.policy_node import State

    comment = (REPO / "msg" / "PolicyStatus.msg").read_text()
    missing = [s.value for s in State if f'"{s.value}"' not in comment]
    assert not missing, f"PolicyStatus.msg's state comment lacks {missing}"
