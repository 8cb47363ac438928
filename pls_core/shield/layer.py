"""PS2 phase II's control-invariant layer: its parameters at a state, and the map in numpy and torch.

The layer (pls_core.shield.ps2 says why): the runtime projection toward the backup action a_b along the
segment, with its fraction t from the admissibility margin linearised at a_b,

    t(a) = 1 if m_b + g . (a - a_b) >= 0, else m_b / (-g . (a - a_b)) (0 if m_b <= 0)
    a_s = a_b + t(a) (a - a_b)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pls_core.shield.shield import Shield
from pls_core.shield.sim import SimState

FD_STEP = 0.05  # finite-difference step of g, in action units (the velocity tasks' actions span [-1, 1])


@dataclass(frozen=True)
class LayerParams:
    backup: np.ndarray  # a_b, the backup policy's action
    margin: float  # m_b = m(a_b)
    gradient: np.ndarray  # g = d m / d a at a_b

    def flat(self) -> np.ndarray:
        return np.concatenate([self.backup, [self.margin], self.gradient]).astype(np.float32)


def layer_params(shield: Shield, state: SimState, step: float = FD_STEP) -> LayerParams:
    """a_b, m(a_b) and the forward-difference gradient of m at a_b (backward at the box's upper edge)."""
    check = shield.check
    a_b = np.clip(check.backup_action(state), shield.low, shield.high)
    m_b = check.margin(state, a_b)
    g = np.empty_like(a_b)
    for i in range(a_b.size):
        h = step if a_b[i] + step <= shield.high[i] else -step
        a = a_b.copy()
        a[i] += h
        g[i] = (check.margin(state, a) - m_b) / h
    return LayerParams(a_b, float(m_b), g)


def layer_fraction(direction: np.ndarray, margin, gradient: np.ndarray) -> np.ndarray:
    """t of the linearised layer for a (batch of) direction(s) a - a_b (numpy; the torch layer's twin)."""
    s = np.sum(direction * gradient, axis=-1)
    margin = np.asarray(margin, np.float64)
    linear = margin / np.maximum(-s, 1e-9)
    return np.where(margin + s >= 0, 1.0, np.where(margin > 0, np.clip(linear, 0.0, 1.0), 0.0))


def layer_torch(action, backup, margin, gradient):
    """a_s = a_b + t(a) (a - a_b) with t(a) from the linearised margin: differentiable in a (and in a_b, m_b,
    g); the Jacobian in a is t I + (a - a_b) dt/da, with dt/da = m_b g / (g . (a - a_b))^2 where the layer
    acts."""
    import torch

    from pls_core.shield.safeguards import project_torch

    d = action - backup
    s = (d * gradient).sum(-1)
    linear = margin / (-s).clamp_min(1e-9)
    t = torch.where(margin + s >= 0, torch.ones_like(s),
                    torch.where(margin > 0, linear.clamp(0.0, 1.0), torch.zeros_like(s)))
    return project_torch(action, backup, t)


def split_observation(obs, obs_dim: int, nu: int):
    """(task observation, a_b, m_b, g) of an observation of the layered env (numpy or torch, batched)."""
    return (obs[..., :obs_dim], obs[..., obs_dim:obs_dim + nu], obs[..., obs_dim + nu],
            obs[..., obs_dim + nu + 1:obs_dim + 2 * nu + 1])
