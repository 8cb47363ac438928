"""Safeguard maps a_s = g(a, s) from a candidate action to an admissible one, toward the backup action.

Runtime versions (numpy; what a control loop calls) search the admissible set along a line with the
admissibility check, by bisection; they assume that set is an interval around the backup action along
that line (the backup action's own admissibility is what the previous step certified):

- `project`: projection toward the backup action along the segment [a_b, a]: a_s = a_b + t (a - a_b) with
  t the largest admissible fraction in [0, 1] (1: the candidate passes unchanged).
- `ray_mask`: the ray mask of the safeguards paper with the backup action as centre: the ray from a_b
  through a meets the action box at scale s_A and the admissible set's boundary at t_S <= s_A; the map
  a_s = a_b + (a - a_b) t_S / s_A keeps a's relative position along its ray (the linear ray mask), so it is
  continuous over the whole box and never leaves the admissible set.

Torch versions (`project_torch`, `ray_mask_torch`) are the same maps as differentiable functions of
(a, a_b, t): the admissible fraction t comes from the runtime search (it needs the simulator) and enters
as an input, so gradients flow to the action and the backup action through the map, and to t. A model
that is itself differentiable could back-propagate t's dependence on a; a MuJoCo C rollout cannot, and
these layers do not pretend to. `passthrough=True` is the paper's option that skips the map's Jacobian
(straight-through: the gradient reaches a unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SafeguardResult:
    action: np.ndarray
    fraction: float  # t (projection) or t_S / s_A (ray mask): 1.0 means the candidate passed unchanged
    intervened: bool
    checks: int  # admissibility checks spent


def _bisect(admissible, lo: float, hi: float, iterations: int) -> tuple[float, int]:
    """Largest admissible scale in [lo, hi] to within (hi - lo) / 2**iterations; lo assumed admissible."""
    checks = 0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        checks += 1
        if admissible(mid):
            lo = mid
        else:
            hi = mid
    return lo, checks


def project(check, state, action, backup_action, iterations: int = 4,
            known_inadmissible: bool = False) -> SafeguardResult:
    """Projection toward the backup action along the segment; one check when the candidate passes
    (none when the caller has already checked it and it failed)."""
    a, a_b = np.asarray(action, np.float64), np.asarray(backup_action, np.float64)
    if not known_inadmissible and check(state, a).admissible:
        return SafeguardResult(a, 1.0, False, 1)
    t, n = _bisect(lambda s: check(state, a_b + s * (a - a_b)).admissible, 0.0, 1.0, iterations)
    return SafeguardResult(a_b + t * (a - a_b), t, True, n + 1)


def box_scale(action, backup_action, low, high) -> float:
    """s_A: the scale at which the ray a_b + s (a - a_b) leaves the box [low, high] (inf if a == a_b)."""
    d = np.asarray(action, np.float64) - backup_action
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(d > 0, (high - backup_action) / d, np.where(d < 0, (low - backup_action) / d, np.inf))
    return float(np.min(s))


def ray_mask(check, state, action, backup_action, low, high, iterations: int = 4) -> SafeguardResult:
    """Linear ray mask centred on the backup action; unchanged when the whole ray inside the box is
    admissible (one check, at the box boundary)."""
    a, a_b = np.asarray(action, np.float64), np.asarray(backup_action, np.float64)
    s_a = box_scale(a, a_b, low, high)
    if not np.isfinite(s_a) or s_a <= 0:
        return SafeguardResult(a, 1.0, False, 0)
    d = a - a_b
    if check(state, a_b + s_a * d).admissible:
        return SafeguardResult(a, 1.0, False, 1)
    t_s, n = _bisect(lambda s: check(state, a_b + s * d).admissible, 0.0, s_a, iterations)
    frac = t_s / s_a
    return SafeguardResult(a_b + frac * d, frac, True, n + 1)


def project_torch(action, backup_action, fraction, passthrough: bool = False):
    """a_s = a_b + t (a - a_b); d a_s / d a = t I, d a_s / d a_b = (1 - t) I, d a_s / d t = a - a_b."""
    out = backup_action + fraction.unsqueeze(-1) * (action - backup_action)
    return action + (out - action).detach() if passthrough else out


def box_scale_torch(action, backup_action, low, high):
    """s_A as a differentiable function of (a, a_b): the smallest per-dimension exit scale."""
    import torch

    d = action - backup_action
    up = (high - backup_action) / d
    down = (low - backup_action) / d
    s = torch.where(d > 0, up, torch.where(d < 0, down, torch.full_like(d, float("inf"))))
    return s.min(dim=-1).values


def ray_mask_torch(action, backup_action, boundary_scale, low, high, passthrough: bool = False):
    """a_s = a_b + (a - a_b) t_S / s_A(a, a_b): the linear ray mask with t_S (admissible boundary along
    the ray, from the runtime search) as an input; s_A is differentiated through the box geometry."""
    import torch

    s_a = box_scale_torch(action, backup_action, low, high)
    frac = torch.clamp(boundary_scale / s_a, max=1.0)
    out = backup_action + frac.unsqueeze(-1) * (action - backup_action)
    return action + (out - action).detach() if passthrough else out
