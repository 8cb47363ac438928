"""The shipped default policy: present, small, its contract and manifest agree, and it acts in the env."""

from __future__ import annotations

import json

import numpy as np

from pls_core.rollout import run_episodes
from pls_core.runtime import ModelContract, PolicyRunner, shipped_model_path

TASK = "SafetyHalfCheetahVelocity-v1"


def test_shipped_model_contract_matches_its_manifest():
    path = shipped_model_path(TASK)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    contract = ModelContract.from_onnx(path)
    assert path.stat().st_size < 5e6
    assert contract.task_id == TASK and (contract.obs_dim, contract.act_dim) == (17, 6)
    assert contract.dataset_sha256 == manifest["dataset"]["sha256"]
    assert contract.train_config["preset"] == manifest["training"]["preset"] == "cpu"


def test_shipped_model_drives_the_cheetah_forward():
    runner = PolicyRunner(shipped_model_path(TASK), num_envs=2)
    best = runner.contract.dataset_stats["reward_return_max"]
    results = run_episodes(runner, TASK, [(best, 20.0)], episodes_per_target=2, seed=123)
    assert all(r.length == 1000 for r in results)
    assert np.mean([r.reward_return for r in results]) > 0.5 * best
