"""`pls collect`'s trainings and rollouts as Ray tasks (an embedded Ray here) give what one process gives.

* Behaviour trainings: HalfCheetah's SAC recipe has two independent chains (fast, safe); trained as two
  Ray tasks they end with the same weights and manifest as trained one after the other in this process,
  and the saved files land in the caller's folder (a task ships them back).
* Rollouts: chunks of episodes as Ray tasks give the same arrays, in plan order, as one process.
* A caller that stops reading results early (Ctrl-C, SIGTERM as SystemExit) ends the Ray session: no
  worker keeps running.
Compared on this machine in one session, never against stored values.
"""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest

pytest.importorskip("ray")

from pls_core.collect.behaviour import ensure_policies, read_manifest  # noqa: E402
from pls_core.collect.episodes import plan_episodes  # noqa: E402
from pls_core.collect.recipes import get_recipe  # noqa: E402
from pls_core.collect.rollout import rollout  # noqa: E402
from pls_core.parallel import run_unordered  # noqa: E402

TASK = "SafetyHalfCheetahVelocity-v1"


@pytest.fixture(autouse=True)
def quiet_ray(monkeypatch):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")


def weights(folder, name):
    from stable_baselines3 import SAC

    return SAC.load(folder / f"{name}.zip", device="cpu").policy.state_dict()


def test_trainings_as_ray_tasks_match_one_process(tmp_path):
    recipe = get_recipe(TASK)
    assert len({r.start_from for r in recipe.policies} - {None}) == 0  # two independent chains
    serial = ensure_policies(recipe, tmp_path / "serial", seed=3, workers=1, progress=False,
                             timestep_scale=0.001)
    ray_folder = ensure_policies(recipe, tmp_path / "ray", seed=3, workers=2, progress=False,
                                 timestep_scale=0.001)
    ones, others = read_manifest(serial)["policies"], read_manifest(ray_folder)["policies"]
    assert set(ones) == set(others) == {r.name for r in recipe.policies}
    for name in ones:
        for key in ("seed", "timesteps", "evaluation", "file"):
            assert ones[name][key] == others[name][key], (name, key)
        a, b = weights(serial, name), weights(ray_folder, name)
        assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a), name


def test_rollouts_as_ray_tasks_match_one_process(tmp_path):
    recipe = get_recipe(TASK)
    folder = ensure_policies(recipe, tmp_path, seed=0, workers=1, progress=False, timestep_scale=0.001)
    plans = plan_episodes(20, 5, recipe.max_fast_share, recipe.max_action_noise)  # 2 chunks of <= 16
    one = rollout(TASK, folder, plans, 5, workers=1, episode_len=15, progress=False)
    many = rollout(TASK, folder, plans, 5, workers=2, episode_len=15, progress=False)
    assert len(one) == len(many) == 20
    for a, b in zip(one, many, strict=True):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(one[0]["actions"], one[1]["actions"])  # each episode its own plan


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def ray_workers() -> list[str]:
    found = subprocess.run(["pgrep", "-f", "ray::_sleep"], capture_output=True, text=True)
    return found.stdout.split()


def test_leaving_early_ends_the_ray_session_and_its_workers(monkeypatch):
    import os

    import ray

    here = os.path.dirname(__file__)  # the workers import _sleep from this file
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))

    results = run_unordered(_sleep, [0.1, 60.0], workers=2)
    assert next(results)[1] == 0.1
    deadline = time.monotonic() + 30
    while not ray_workers() and time.monotonic() < deadline:  # the 60 s task is running
        time.sleep(0.2)
    assert ray_workers(), "the long task never started"
    results.close()  # what an exception (SystemExit from SIGTERM, Ctrl-C) does to the caller's loop
    assert not ray.is_initialized()
    deadline = time.monotonic() + 30
    while ray_workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ray_workers(), "a Ray worker outlived the session"
