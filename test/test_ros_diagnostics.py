"""/diagnostics from every node, over DDS as rqt_robot_monitor or the diagnostic aggregator reads it.

The whole sim graph runs (short episodes); the test process subscribes to /diagnostics and checks that
each node's DiagnosticStatus arrives with the keys docs/ros.md lists and values that parse.
"""

from __future__ import annotations

import math

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from test_ros_nodes_support import CONFIG, DISCOVERY_TIMEOUT, NodeProcess, Probe, wait_until

from pls_ros import diagnostics

KEYS = {
    "pls_policy: control": {
        "state", "trigger", "control_rate_hz", "ticks", "deadline_misses", "latency_p50_ms", "latency_p99_ms",
        "fallback_actions", "last_fallback_reason", "ignored_observations", "skipped_observations", "shield",
        "shield_interventions",
        "target_reward_return", "target_cost_return", "task_id"},
    "pls_supervisor: safe optimization": {
        "phase", "iteration", "safe_set_size", "grid_size", "target_reward_return", "target_cost_return",
        "threshold", "episodes_at_current_target", "episodes_per_evaluation", "episodes_stored",
        "episodes_rejected", "duplicates_dropped", "gp_failures", "store", "store_ok", "store_bytes",
        "robots", "round"},
    "pls_sim: robot side": {
        "task_id", "mode", "episodes_finished", "episode", "step", "unacknowledged_results",
        "seconds_since_progress", "watchdog"},
}
DOCUMENTED = (CONFIG.parent / "docs" / "ros.md").read_text()


@pytest.mark.timeout(300)
def test_every_node_publishes_its_diagnostics_with_the_documented_keys(ros_env, tmp_path):
    from test_cdt_support import tiny_artifacts

    probe = Probe()
    probe.subscribe("diag", DiagnosticArray, diagnostics.TOPIC, diagnostics.QOS)
    store = tmp_path / "store.sqlite"
    nodes = [
        NodeProcess("sim_node", ros_env, params_file=CONFIG / "sim.yaml",
                    params={"max_episode_steps": 20, "supervisor_store_path": str(store)}),
        NodeProcess("policy_node", ros_env, params_file=CONFIG / "policy.yaml",
                    params={"model_path": str(tiny_artifacts().onnx)}),
        NodeProcess("supervisor_node", ros_env, params_file=CONFIG / "supervisor.yaml",
                    params={"store_path": str(store), "episodes_per_evaluation": 2}),
    ]

    def latest() -> dict[str, DiagnosticStatus]:
        found = {}
        for array in probe.messages("diag"):
            for status in array.status:
                found[status.name] = status
        return found

    try:
        wait_until(lambda: set(KEYS) <= set(latest()) and latest(), DISCOVERY_TIMEOUT * 2,
                   "a DiagnosticStatus from every node")
        # Once episodes run, the policy reports a running control loop with its latency. Each node
        # publishes on its own period, so the sim's report of a finished episode can come before the
        # policy's first report with ticks: wait for both.
        def value(name: str, key: str) -> int:
            return int({kv.key: kv.value for kv in latest()[name].values}.get(key, 0))

        wait_until(lambda: value("pls_sim: robot side", "episodes_finished") >= 1
                   and value("pls_policy: control", "ticks") > 0, 120,
                   "an episode to finish and the policy to report its ticks")
        for name, keys in KEYS.items():
            status = latest()[name]
            values = {kv.key: kv.value for kv in status.values}
            assert set(values) == keys, (name, set(values) ^ keys)
            assert status.hardware_id == "pls" and status.message
            assert status.level in (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR)
            for key in keys:
                assert f"`{key}`" in DOCUMENTED, f"docs/ros.md does not list {name}'s key {key}"
        supervisor = {kv.key: kv.value for kv in latest()["pls_supervisor: safe optimization"].values}
        assert supervisor["store_ok"] == "true" and supervisor["store"] == str(store)
        assert int(supervisor["grid_size"]) >= int(supervisor["safe_set_size"]) > 0
        policy = {kv.key: kv.value for kv in latest()["pls_policy: control"].values}
        assert int(policy["ticks"]) > 0 and int(policy["deadline_misses"]) <= int(policy["ticks"])
        assert math.isfinite(float(policy["target_reward_return"])) or policy["state"] != "running"
        for node in nodes:
            assert node.stop() == 0, node.output()[-3000:]
    finally:
        for node in nodes:
            node.kill()
        probe.close()
