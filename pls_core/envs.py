"""Creating Safety-Gymnasium tasks: the one place that knows how to import and configure them."""

from __future__ import annotations

import contextlib
import io
import os

from pls_core.tasks import get_task


def make_env(task_id: str, seed: int | None = None, render_mode: str | None = None,
             max_episode_steps: int | None = None):
    """A Safety-Gymnasium env with the 6-tuple step `(obs, reward, cost, terminated, truncated, info)`.

    The episode limit is `max_episode_steps`, or the task's (pls_core.tasks) when None or 0; `seed` seeds the
    first reset and the action space.
    Rendering uses EGL unless MUJOCO_GL says otherwise (no display on robots' companion computers).
    """
    spec = get_task(task_id)
    if render_mode is not None:
        os.environ.setdefault("MUJOCO_GL", "egl")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        # gymnasium-robotics prints an unrelated AdroitHand notice on import.
        from pls_core.compat.safety_gymnasium import import_safety_gymnasium

        safety_gymnasium = import_safety_gymnasium()
    env = safety_gymnasium.make(task_id, render_mode=render_mode,
                                max_episode_steps=max_episode_steps or spec.episode_len)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env
