"""The nodes' parameter tables, their YAML files, QoS choices and message conversions (no processes)."""

from __future__ import annotations

import math

import pytest
import yaml
from test_ros_nodes_support import CONFIG

from pls_ros import policy_node, qos, recorder_node, sim_node, supervisor_node
from pls_ros.params import ParameterError, ParamSpec

NODES = [(sim_node, "sim.yaml"), (policy_node, "policy.yaml"), (supervisor_node, "supervisor.yaml"),
         (recorder_node, "recorder.yaml")]


@pytest.mark.parametrize(("module", "file"), NODES, ids=[f for _, f in NODES])
def test_yaml_holds_every_declared_parameter_with_its_default(module, file):
    data = yaml.safe_load((CONFIG / file).read_text())
    assert list(data) == [module.NODE_NAME]
    values = data[module.NODE_NAME]["ros__parameters"]
    declared = {spec.name: spec for spec in module.PARAMS}
    assert set(values) == set(declared), "config file and node code declare different parameters"
    for name, value in values.items():
        spec = declared[name]
        assert spec.description, f"{name} has no description"
        assert spec.coerce(value) == spec.coerce(spec.default), f"{file}: {name} differs from the code"


def test_parameter_checks_name_the_problem():
    rate = ParamSpec("control_rate_hz", "float", 20.0, "rate", 1.0, 1000.0)
    assert rate.coerce(100) == 100.0 and isinstance(rate.coerce(100), float)  # YAML int for a double
    with pytest.raises(ParameterError, match=r"control_rate_hz.*out of range.*\[1, 1000\]"):
        rate.coerce(5000.0)
    with pytest.raises(ParameterError, match="wrong type"):
        rate.coerce("fast")
    mode = ParamSpec("mode", "str", "lockstep", "mode", choices=("lockstep", "realtime"))
    with pytest.raises(ParameterError, match="not one of lockstep, realtime"):
        mode.coerce("fast")
    action = ParamSpec("fallback_action", "float_list", [], "fallback")
    assert action.coerce(None) == [] and action.coerce([0, 1]) == [0.0, 1.0]
    with pytest.raises(ParameterError):
        action.coerce([math.nan])
    with pytest.raises(ValueError):  # a bad default in a node table fails at import
        ParamSpec("x", "int", 5, "x", 0, 1)


def test_qos_choices():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    assert qos.TARGET_RETURN_QOS.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert qos.TARGET_RETURN_QOS.depth == 1
    assert qos.EPISODE_RESULT_QOS.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert qos.EPISODE_RESULT_QOS.depth >= 400  # a whole PLS run (~400 episodes) is kept for a restart
    assert qos.CONTROL_QOS.durability == DurabilityPolicy.VOLATILE and qos.CONTROL_QOS.depth == 1
    # Control writers keep a history for slow readers; the readers that act keep only the newest.
    assert qos.CONTROL_PUBLISHER_QOS.durability == DurabilityPolicy.VOLATILE
    assert qos.CONTROL_PUBLISHER_QOS.depth == qos.CONTROL_PUBLISHER_HISTORY > 1
    for profile in (qos.CONTROL_QOS, qos.CONTROL_PUBLISHER_QOS, qos.TARGET_RETURN_QOS, qos.EPISODE_RESULT_QOS,
                    qos.SUPERVISOR_STATUS_QOS, qos.POLICY_STATUS_QOS, qos.ACTION_SUBSCRIPTION_QOS,
                    qos.RECORD_CONTROL_QOS):
        assert profile.reliability == ReliabilityPolicy.RELIABLE


def test_conversions_round_trip():
    from pls_interfaces.msg import EpisodeResult, SupervisorStatus, TargetReturn

    from pls_core.safeopt.records import Decision, Phase
    from pls_ros import conversions as cv
    from pls_ros import supervisor_messages as sm

    values = [0.5, -1.25, 3.0]
    assert cv.from_float32_field(cv.float32_array(values)).tolist() == values
    assert cv.stamp_ns(cv.time_msg(1_234_567_890_123)) == 1_234_567_890_123
    assert [p.code for p in Phase] == [TargetReturn.PHASE_SEED, TargetReturn.PHASE_SAFE_EXPLORATION,
                                       TargetReturn.PHASE_REWARD_MAXIMISATION, TargetReturn.PHASE_OPERATION,
                                       TargetReturn.PHASE_HALTED]

    msg = EpisodeResult(episode=7, target_reward_return=2100.0, target_cost_return=5.0, reward_return=2050.5,
                        cost_return=3.0, length=1000, truncated=True, reason="time_limit")
    msg.header.stamp = cv.time_msg(42_000_000_001)
    rec = sm.episode_record(msg)
    assert rec.target == (2100.0, 5.0) and rec.reward_return == 2050.5 and rec.length == 1000
    assert rec.episode == 42_000_000_001 == cv.episode_id(msg)
    assert "robot episode 7" in rec.reason

    decision = Decision(iteration=3, phase=Phase.REWARD_MAXIMISATION, target=(2200.0, 10.0),
                        reward_bounds=(2100.0, 2300.0), cost_bounds=(2.0, 15.0), safe_set_size=40,
                        candidate_set_size=12, num_observations=3, best_target=(2250.0, 5.0),
                        best_predicted_reward=2240.0, best_cost_upper=12.0, threshold=20.0,
                        verified_safe=True)
    target = sm.target_return_msg(decision, cv.time_msg(1))
    assert (target.reward_return, target.cost_return, target.iteration, target.phase) == (2200.0, 10.0, 3, 2)
    assert (target.cost_lower, target.cost_upper) == (2.0, 15.0)
    taken_ns = 1_700_000_000_123_456_789
    status = sm.supervisor_status_msg(decision, cv.time_msg(1), grid_size=1681, best_reward_lower=2190.0,
                                      episodes_at_current_target=4, episodes_per_evaluation=20, message="hi",
                                      published_target=(1800.0, 4.0), last_result_ns=taken_ns)
    assert status.phase == SupervisorStatus.PHASE_REWARD_MAXIMISATION and status.safe_set_size == 40
    assert (status.best_reward_return, status.best_cost_return, status.threshold) == (2250.0, 5.0, 20.0)
    # The documented meanings: the size of the grid Z (not the phase's 12 candidates) and the reward lower
    # confidence bound at the best target (not the posterior mean 2240).
    assert (status.candidate_set_size, status.best_predicted_reward) == (1681, 2190.0)
    assert status.episodes_at_current_target == 4 and status.episodes_per_evaluation == 20
    assert status.message == "hi"
    # The target results are counted for: the published one (here a held one, not the decision's).
    assert (status.target_reward_return, status.target_cost_return) == (1800.0, 4.0)
    # The result the supervisor took last, by its stamp: the robot side's acknowledgement.
    assert cv.stamp_ns(status.last_result_stamp) == taken_ns
    none = sm.supervisor_status_msg(decision, cv.time_msg(1), grid_size=1681, best_reward_lower=2190.0,
                                    episodes_at_current_target=0, episodes_per_evaluation=20, message="",
                                    published_target=None, last_result_ns=0)
    assert math.isnan(none.target_reward_return) and math.isnan(none.target_cost_return)
    assert cv.stamp_ns(none.last_result_stamp) == 0


def test_relative_paths_resolve_without_an_ament_index(monkeypatch, tmp_path):
    """A pip-only user has no AMENT_PREFIX_PATH; the repository/package roots must still be searched."""
    from pls_ros.paths import resolve_existing

    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_existing("config/optimizer.yaml", "optimizer config").name == "optimizer.yaml"
