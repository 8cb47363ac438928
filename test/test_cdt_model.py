"""The CDT network: causality, padding, timestep clamping, action bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pls_core.cdt.model import build_model, gaussian_log_prob_and_entropy
from pls_core.cdt.presets import preset

OBS, ACT, K = 5, 2, 4


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = preset("tiny")
    net = build_model(config, OBS, ACT, 50, np.zeros(OBS), np.ones(OBS), -np.ones(ACT), np.ones(ACT))
    return net.eval()


def window(batch=2, seed=0, valid=K):
    g = torch.Generator().manual_seed(seed)
    pad = torch.arange(K).expand(batch, K) < K - valid
    return {
        "states": torch.randn(batch, K, OBS, generator=g),
        "actions": torch.rand(batch, K, ACT, generator=g) * 2 - 1,
        "returns_to_go": torch.rand(batch, K, generator=g) * 100,
        "costs_to_go": torch.rand(batch, K, generator=g) * 30,
        "timesteps": torch.arange(K).expand(batch, K).clone(),
        "padding_mask": pad,
    }


def test_prediction_at_a_step_ignores_the_future_and_its_own_action(model):
    x = window()
    mean, _, _ = model(**x)
    changed = {k: v.clone() for k, v in x.items()}
    changed["states"][:, 2:] += 5.0
    changed["actions"][:, 1:] = -changed["actions"][:, 1:]  # includes the action of step 1 itself
    mean_changed, _, _ = model(**changed)
    torch.testing.assert_close(mean_changed[:, :2], mean[:, :2])
    assert not torch.allclose(mean_changed[:, 2:], mean[:, 2:])


def test_padding_slots_do_not_leak_into_real_steps(model):
    x = window(valid=2)
    garbage = {k: v.clone() for k, v in x.items()}
    garbage["states"][:, :2] = 1e3
    garbage["returns_to_go"][:, :2] = -1e4
    garbage["timesteps"][:, :2] = 40
    torch.testing.assert_close(model.act(**garbage), model.act(**x))


def test_timesteps_past_the_table_are_clamped(model):
    x = window()
    x["timesteps"] = torch.full((2, K), model.max_timestep)
    beyond = dict(x, timesteps=torch.full((2, K), model.max_timestep + 10_000))
    torch.testing.assert_close(model.act(**beyond), model.act(**x))


def test_deployed_action_stays_within_bounds(model):
    x = window()
    x["states"] = x["states"] * 1e4
    action = model.act(**x)
    assert action.shape == (2, ACT)
    assert torch.all(action <= 1.0) and torch.all(action >= -1.0)


def test_gaussian_log_prob_matches_torch_distributions():
    mean, log_std, actions = torch.randn(3, 4, ACT), torch.randn(3, 4, ACT) * 0.5, torch.randn(3, 4, ACT)
    log_prob, entropy = gaussian_log_prob_and_entropy(mean, log_std, actions)
    reference = torch.distributions.Normal(mean, log_std.exp())
    # averaged over action dimensions, as OSRL's CDT loss
    torch.testing.assert_close(log_prob, reference.log_prob(actions).mean(-1))
    torch.testing.assert_close(entropy, reference.entropy().mean(-1))
