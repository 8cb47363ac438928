"""The per-step shield's safe set and admissibility check on the real MuJoCo tasks."""

import numpy as np
import pytest

from pls_core.envs import make_env
from pls_core.shield.backup import BrakeBackup
from pls_core.shield.check import AdmissibilityCheck
from pls_core.shield.safe_set import SafeSet, ShieldError
from pls_core.shield.shield import Shield, ShieldConfig, ShieldedEnv
from pls_core.shield.sim import ShieldSim, SimState

CHEETAH = "SafetyHalfCheetahVelocity-v1"
HOPPER = "SafetyHopperVelocity-v1"


def _brake_check(env, horizon=20):
    safe_set = SafeSet.for_env(env)
    sim = ShieldSim.from_env(env, copy_model=True)
    return AdmissibilityCheck(sim, safe_set, BrakeBackup(sim.model), horizon)


def _moving(env, factor):
    """The env's current state with forward speed set to `factor` x the task's threshold."""
    env.unwrapped.data.qvel[0] = factor * env.unwrapped._velocity_threshold
    return SimState.from_env(env)


@pytest.mark.parametrize("task", [CHEETAH, HOPPER, "SafetyAntVelocity-v1"])
def test_safe_set_step_speed_is_the_envs_cost(task):
    env = make_env(task, seed=0)
    safe_set = SafeSet.for_env(env)
    assert safe_set.threshold == env.unwrapped._velocity_threshold
    sim = ShieldSim.from_env(env, copy_model=True)
    for _ in range(15):
        action = env.action_space.sample()
        sim.load(SimState.from_env(env))
        before = safe_set.position(sim.data)
        sim.step(action)
        speed = safe_set.step_speed(before, safe_set.position(sim.data))
        _, _, cost, terminated, _, info = env.step(action)
        vx = info["x_velocity"]
        env_speed = np.hypot(vx, info["y_velocity"]) if safe_set.planar else vx
        assert speed == pytest.approx(env_speed, abs=1e-9)
        assert (cost > 0) == (not safe_set.safe(speed))
        if terminated:
            env.reset()
    env.close()


@pytest.mark.parametrize("task", [CHEETAH, HOPPER])
def test_unrecoverable_state_is_refused_for_every_action(task):
    env = make_env(task, seed=0)
    check = _brake_check(env)
    state = _moving(env, 2.0)
    rng = np.random.default_rng(0)
    candidates = [check.backup_action(state), np.zeros(env.action_space.shape)]
    candidates += [rng.uniform(-1, 1, env.action_space.shape) for _ in range(5)]
    for action in candidates:
        result = check(state, action)
        assert not result.admissible
        assert result.first_unsafe == 0 and result.max_speed > check.safe_set.threshold
    env.close()


def test_admissible_action_is_recertified_by_a_fresh_rollout_and_by_the_env():
    env = make_env(CHEETAH, seed=0)
    check = _brake_check(env, horizon=15)
    state = _moving(env, 0.8)
    action = np.full(env.action_space.shape, 0.3)
    result = check(state, action)
    assert result.admissible and result.steps == 16
    fresh = _brake_check(env, horizon=15)  # a new MjData: nothing cached from the first rollout
    assert fresh(state, action) == result
    # The env itself, driven by the candidate and then the backup, charges no cost on any of those steps.
    costs = [env.step(action)[2]]
    for _ in range(15):
        costs.append(env.step(check.backup(env.unwrapped.data).astype(np.float32))[2])
    assert sum(costs) == 0
    env.close()


def test_check_stops_at_the_first_unsafe_step():
    env = make_env(CHEETAH, seed=0)
    check = _brake_check(env, horizon=50)
    result = check(_moving(env, 0.8), np.ones(env.action_space.shape))
    assert not result.admissible
    assert result.steps == result.first_unsafe + 1 < 51
    env.close()


def test_projected_action_is_recertified_and_moves_toward_the_backup():
    env = make_env(CHEETAH, seed=0)
    shield = Shield.from_env(env, ShieldConfig(backup="brake", horizon=20, iterations=5))
    state = _moving(env, 0.8)
    proposed = np.ones(env.action_space.shape)
    assert not shield.check(state, proposed).admissible
    action, info = shield.filter(state, proposed)
    assert info["intervened"] and 0.0 <= info["fraction"] < 1.0
    backup = shield.check.backup_action(state)
    assert np.allclose(action, backup + info["fraction"] * (proposed - backup))
    assert _brake_check(env)(state, action).admissible  # fresh sim, fresh rollout
    env.close()


def test_shielded_env_counts_costly_steps_and_interventions():
    env = ShieldedEnv(make_env(CHEETAH, seed=0), None)
    env.reset(seed=0)
    env.unwrapped.data.qvel[0] = 3 * env.unwrapped._velocity_threshold
    env.step(np.zeros(env.action_space.shape, np.float32))
    assert env.cost_steps == 1 and env.interventions == 0
    env.reset(seed=0)
    assert env.cost_steps == 0
    env.close()


def test_bad_shield_settings_and_tasks_are_refused_with_the_fix():
    with pytest.raises(ShieldError, match="safeguard"):
        ShieldConfig(safeguard="clip")
    with pytest.raises(ShieldError, match="horizon"):
        ShieldConfig(horizon=-1)
    with pytest.raises(ShieldError, match="margin"):
        ShieldConfig(margin=1.5)
    env = make_env("SafetyPointGoal1-v0", seed=0)
    with pytest.raises(ShieldError, match="velocity tasks"):
        SafeSet.for_env(env)
    env.close()


def test_state_rebuilt_from_an_observation_on_the_robots_mjcf_is_checked():
    """On a robot the shield has the MJCF file and the Observation, not the simulator's MjData."""
    env = make_env(CHEETAH, seed=0)
    base = env.unwrapped
    sim = ShieldSim.from_xml(base.fullpath, base.frame_skip)
    check = AdmissibilityCheck(sim, SafeSet.for_env(env), BrakeBackup(sim.model), horizon=20)
    obs = env.reset(seed=0)[0].astype(np.float64)  # HalfCheetah: qpos[1:] then qvel
    skip = sim.observation_layout(obs.size)
    assert skip == 1  # x is unobserved; the cost only sees its change

    def rebuilt(speed_factor):
        moving = obs.copy()
        moving[sim.model.nq - skip] = speed_factor * check.safe_set.threshold  # qvel[0], the forward speed
        return sim.state_from_observation(moving, skip)

    slow = rebuilt(0.3)
    assert check(slow, check.backup_action(slow)).admissible
    fast = rebuilt(2.0)
    assert not check(fast, check.backup_action(fast)).admissible
    env.close()


def test_margin_certifies_against_a_lower_limit():
    env = make_env(CHEETAH, seed=0)
    shield = Shield.from_env(env, ShieldConfig(backup="brake", margin=0.1))
    assert shield.check.safe_set.threshold == pytest.approx(0.9 * env.unwrapped._velocity_threshold)
    state = _moving(env, 0.95)  # under the task's limit, over the shield's
    assert not shield.check(state, shield.check.backup_action(state)).admissible
    env.close()


@pytest.mark.parametrize("task", [CHEETAH, HOPPER])
def test_a_state_rebuilt_from_the_observation_gets_the_simulators_verdicts(task):
    """What the policy node checks (the Observation on the task's model) decides as the env's own state.
    (Ant's cost reads the torso's position one substep late, which the observation does not carry: in
    rollouts the speeds then differ by ~1e-4, but not after this test's jumps in speed.)"""
    env = make_env(task)
    shield = Shield.for_task(task, ShieldConfig(backup="brake", horizon=10))
    sim = shield.check.sim
    skip = sim.observation_layout(env.observation_space.shape[0])
    rng = np.random.default_rng(0)
    env.reset(seed=1)
    verdicts = set()
    for t in range(40):
        base = env.unwrapped
        base.data.qvel[0] = (0.2 + 0.03 * t) * base._velocity_threshold  # slow to well above the limit
        obs = base._get_obs()  # what the robot side would publish in this state
        action = np.clip(rng.uniform(-1, 1, env.action_space.shape) + 0.6, -1, 1)
        expected = shield.check(SimState.from_env(env), action)
        got = shield.check(sim.state_from_observation(obs, skip), action)
        assert got.admissible == expected.admissible
        assert got.max_speed == pytest.approx(expected.max_speed, abs=1e-6)
        verdicts.add(got.admissible)
        env.step(action.astype(np.float32))
    env.close()
    assert verdicts == {True, False}, "the rollout should meet both verdicts for this test to mean anything"


def test_an_observation_of_another_robot_is_refused():
    env = make_env(CHEETAH)
    sim = ShieldSim.from_env(env)
    with pytest.raises(ValueError, match="needs the robot's own MJCF model"):
        sim.observation_layout(env.observation_space.shape[0] + 5)
    env.close()


@pytest.mark.parametrize("task", [CHEETAH, HOPPER])
def test_default_substeps_reproduce_the_exact_models_verdicts(task):
    """`ShieldConfig.substeps` left at None (or set to frame_skip) is today's check: the env's own model
    and integration, the same CheckResult to the bit; fewer substeps keep the control period."""
    from pls_core.shield.backup import load_backup

    env = make_env(task, seed=0)
    frame_skip = env.unwrapped.frame_skip
    sim = ShieldSim.from_env(env, copy_model=True)
    safe_set = SafeSet.for_env(env)
    exact = AdmissibilityCheck(sim, safe_set, load_backup(task, sim.model), 10)
    default = Shield.from_env(env, ShieldConfig(horizon=10)).check
    explicit = Shield.from_env(env, ShieldConfig(horizon=10, substeps=frame_skip)).check
    coarse = Shield.from_env(env, ShieldConfig(horizon=10, substeps=1)).check
    assert coarse.sim.frame_skip * coarse.sim.model.opt.timestep == pytest.approx(safe_set.dt)
    assert env.unwrapped.model.opt.timestep * frame_skip == pytest.approx(safe_set.dt)  # env's untouched
    rng = np.random.default_rng(0)
    verdicts = set()
    for factor in np.linspace(0.3, 1.6, 14):
        state = _moving(env, factor)
        for action in (rng.uniform(-1, 1, env.action_space.shape), exact.backup_action(state)):
            want = exact(state, action)
            assert default(state, action) == want and explicit(state, action) == want
            verdicts.add(want.admissible)
    assert verdicts == {True, False}
    env.close()


def test_bad_substeps_are_refused_with_the_fix():
    for bad in (0, -2, 2.5, True, "4"):
        with pytest.raises(ShieldError, match="substeps must be a whole number >= 1"):
            ShieldConfig(substeps=bad)
    env = make_env(HOPPER, seed=0)
    with pytest.raises(ShieldError, match="use 1..4 or None"):
        Shield.from_env(env, ShieldConfig(substeps=8))
    env.close()
