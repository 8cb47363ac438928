"""Safeguard maps: numerically checked gradients of the torch layers, and runtime (numpy) versions that
give the same actions on the real check."""

import numpy as np
import pytest
import torch

from pls_core.envs import make_env
from pls_core.shield.backup import BrakeBackup
from pls_core.shield.check import AdmissibilityCheck
from pls_core.shield.safe_set import SafeSet
from pls_core.shield.safeguards import (
    box_scale,
    box_scale_torch,
    project,
    project_torch,
    ray_mask,
    ray_mask_torch,
)
from pls_core.shield.sim import ShieldSim, SimState

CHEETAH = "SafetyHalfCheetahVelocity-v1"


def _inputs(seed, batch=3, dim=6):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(batch, dim, generator=g, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    a_b = (torch.rand(batch, dim, generator=g, dtype=torch.float64) * 0.6 - 0.3).requires_grad_()
    return a, a_b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_layer_gradient_is_numerically_right(seed):
    a, a_b = _inputs(seed)
    t = torch.tensor([0.2, 0.55, 0.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(project_torch, (a, a_b, t), eps=1e-6, atol=1e-7)
    # The Jacobian the layer defines: t I with respect to the proposed action.
    jac = torch.autograd.functional.jacobian(lambda x: project_torch(x, a_b, t), a)
    assert torch.allclose(jac[1, :, 1, :], 0.55 * torch.eye(6, dtype=torch.float64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ray_mask_layer_gradient_is_numerically_right(seed):
    a, a_b = _inputs(seed)
    low, high = -torch.ones(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    s_a = box_scale_torch(a, a_b, low, high).detach()
    t_s = (s_a * torch.tensor([0.3, 0.6, 0.8], dtype=torch.float64)).requires_grad_()

    def layer(x, xb, ts):
        return ray_mask_torch(x, xb, ts, low, high)

    assert torch.autograd.gradcheck(layer, (a, a_b, t_s), eps=1e-6, atol=1e-7)
    # Unlike the projection, the ray mask's Jacobian is not a multiple of I: s_A depends on the direction.
    jac = torch.autograd.functional.jacobian(lambda x: layer(x, a_b, t_s), a)[0, :, 0, :]
    assert not torch.allclose(jac, jac[0, 0] * torch.eye(6, dtype=torch.float64), atol=1e-6)


def test_passthrough_gradient_is_the_identity():
    a, a_b = _inputs(3)
    t = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64)
    out = project_torch(a, a_b, t, passthrough=True)
    assert torch.allclose(out, project_torch(a, a_b, t))
    out.sum().backward()
    assert torch.allclose(a.grad, torch.ones_like(a))


def test_box_scale_numpy_and_torch_agree_and_land_on_the_box():
    a, a_b = _inputs(4, batch=1)
    low, high = -np.ones(6), np.ones(6)
    s_np = box_scale(a.detach().numpy()[0], a_b.detach().numpy()[0], low, high)
    s_t = box_scale_torch(a, a_b, torch.from_numpy(low), torch.from_numpy(high))
    assert s_np == pytest.approx(float(s_t[0].detach()))
    edge = a_b.detach().numpy()[0] + s_np * (a - a_b).detach().numpy()[0]
    assert np.abs(edge).max() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def fast_cheetah():
    env = make_env(CHEETAH, seed=0)
    env.unwrapped.data.qvel[0] = 0.8 * env.unwrapped._velocity_threshold
    sim = ShieldSim.from_env(env, copy_model=True)
    check = AdmissibilityCheck(sim, SafeSet.for_env(env), BrakeBackup(sim.model), horizon=20)
    state = SimState.from_env(env)
    yield env, check, state
    env.close()


def test_runtime_projection_equals_the_torch_layer_and_is_admissible(fast_cheetah):
    env, check, state = fast_cheetah
    proposed, backup = np.ones(6), check.backup_action(state)
    result = project(check, state, proposed, backup, iterations=6)
    assert result.intervened and result.checks == 7
    layer = project_torch(torch.from_numpy(proposed), torch.from_numpy(backup),
                          torch.tensor(result.fraction, dtype=torch.float64))
    assert np.allclose(layer.numpy(), result.action)
    assert check(state, result.action).admissible


def test_runtime_ray_mask_equals_the_torch_layer_and_is_admissible(fast_cheetah):
    env, check, state = fast_cheetah
    low, high = check.sim.ctrl_low, check.sim.ctrl_high
    proposed, backup = np.full(6, 0.9), check.backup_action(state)
    result = ray_mask(check, state, proposed, backup, low, high, iterations=6)
    assert result.intervened and 0 <= result.fraction < 1
    s_a = box_scale(proposed, backup, low, high)
    layer = ray_mask_torch(torch.from_numpy(proposed), torch.from_numpy(backup),
                           torch.tensor(result.fraction * s_a, dtype=torch.float64),
                           torch.from_numpy(low), torch.from_numpy(high))
    assert np.allclose(layer.numpy(), result.action)
    assert check(state, result.action).admissible
    assert np.all(result.action >= low) and np.all(result.action <= high)


def test_admissible_candidate_passes_both_maps_unchanged(fast_cheetah):
    env, check, state = fast_cheetah
    backup = check.backup_action(state)
    gentle = backup + 0.05
    assert check(state, gentle).admissible
    assert not project(check, state, gentle, backup).intervened
    assert np.array_equal(project(check, state, gentle, backup).action, gentle)
