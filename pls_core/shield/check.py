"""The admissibility check (PS2-RL's implicit control-invariant set, by forward integration).

A candidate action u at state x is admissible iff, on a scratch copy of the state, the control step under
u and then `horizon` control steps under the backup policy all stay in the safe set (cost 0 each step).
The rollout stops at the first unsafe step (refused). With `target_exit`, it also stops, accepted, when
the backup has reached its target set: sound only as far as the target set is invariant under the backup,
which is why it is off unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pls_core.shield.safe_set import SafeSet
from pls_core.shield.sim import ShieldSim, SimState


@dataclass(frozen=True)
class CheckResult:
    admissible: bool
    steps: int  # control steps simulated (1 + backup steps)
    first_unsafe: int | None  # index of the first unsafe control step (0: the candidate's own), else None
    max_speed: float  # largest step speed seen


class AdmissibilityCheck:
    def __init__(self, sim: ShieldSim, safe_set: SafeSet, backup, horizon: int, target_exit: bool = False):
        if horizon < 0:
            raise ValueError(f"horizon must be >= 0 control steps, got {horizon}")
        self.sim, self.safe_set, self.backup = sim, safe_set, backup
        self.horizon, self.target_exit = int(horizon), target_exit

    def _speeds(self, state: SimState, action: np.ndarray, target_exit: bool):
        """The rollout from `state`: the candidate's control step, then the backup's, yielding each step's
        speed (the caller stops it); with target_exit it ends, yielding None, once the backup has reached
        its target set."""
        sim, safe = self.sim, self.safe_set
        sim.load(state)
        data = sim.data
        before = safe.position(data)
        u = np.clip(action, sim.ctrl_low, sim.ctrl_high)
        for k in range(self.horizon + 1):
            if k > 0:
                if target_exit and safe.in_target(data):
                    yield None
                    return
                u = self.backup(data)
            sim.step(u)
            after = safe.position(data)
            yield safe.step_speed(before, after)
            before = after

    def __call__(self, state: SimState, action: np.ndarray) -> CheckResult:
        top = -np.inf
        for k, speed in enumerate(self._speeds(state, action, self.target_exit)):
            if speed is None:  # the backup reached its target set
                return CheckResult(True, k, None, top)
            top = max(top, speed)
            if not self.safe_set.safe(speed):
                return CheckResult(False, k + 1, k, top)
        return CheckResult(True, self.horizon + 1, None, top)

    def margin(self, state: SimState, action: np.ndarray) -> float:
        """Threshold minus the largest step speed of the same rollout run to its end (no early stop, no
        target exit): a continuous admissibility margin, >= 0 exactly when the action is admissible
        (without target_exit). What PS2's linearised control-invariant layer differentiates
        (pls_core.shield.ps2)."""
        return self.safe_set.threshold - max(self._speeds(state, action, target_exit=False))

    def backup_action(self, state: SimState) -> np.ndarray:
        """The backup policy's action at `state` (what the safeguards move toward)."""
        self.sim.load(state)
        return np.asarray(self.backup(self.sim.data), dtype=np.float64)
