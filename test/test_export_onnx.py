"""ONNX export: the contract in the metadata, parity with torch, fixed context with dynamic batch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import torch
from test_cdt_support import tiny_artifacts

from pls_core.dataset import load_dataset
from pls_core.export import (
    INPUT_NAMES,
    PARITY_TOLERANCE,
    export_checkpoint,
    load_checkpoint_model,
    random_windows,
)
from pls_core.runtime import ModelContract
from pls_core.safeopt.config import seed_reward_range_from_returns


def test_metadata_holds_the_full_contract():
    artifacts = tiny_artifacts()
    metadata = {p.key: json.loads(p.value) for p in onnx.load(str(artifacts.onnx)).metadata_props}
    dataset = load_dataset(artifacts.dataset)
    assert metadata["task_id"] == "SafetyHalfCheetahVelocity-v1"
    assert (metadata["obs_dim"], metadata["act_dim"], metadata["context_len"]) == (17, 6, 4)
    assert metadata["act_low"] == [-1.0] * 6 and metadata["act_high"] == [1.0] * 6
    assert metadata["episode_len"] == 1000 and metadata["reward_scale"] == 0.1
    assert metadata["cost_transform"] == "50 - G"
    assert metadata["dataset_sha256"] == dataset.sha256
    np.testing.assert_allclose(metadata["obs_mean"], dataset.observations.mean(0), rtol=1e-4, atol=1e-5)
    assert metadata["train_config"]["embed_dim"] == 16 and metadata["train_config"]["preset"] == "tiny"
    rewards, costs, _ = dataset.episode_returns()
    assert np.isclose(metadata["dataset_stats"]["reward_return_max"], rewards.max())
    # The seed box its data show safe travels with the model (the ROS supervisor reads it).
    seed_box = seed_reward_range_from_returns(rewards, costs, seed_cost_max=5.0)
    np.testing.assert_allclose(metadata["dataset_stats"]["seed_reward_range"], seed_box)
    contract = ModelContract.from_onnx(artifacts.onnx)
    assert contract.format_version == 1 and contract.max_timestep == 1000 + 4 - 1


def test_onnx_matches_torch_on_random_and_padded_windows_of_any_batch():
    artifacts = tiny_artifacts()
    model, config, saved = load_checkpoint_model(artifacts.checkpoint)
    session = ort.InferenceSession(str(artifacts.onnx), providers=["CPUExecutionProvider"])
    for batch in (1, 3, 64):
        inputs = random_windows(
            saved["facts"], config.context_len, batch, model.max_timestep, np.random.default_rng(100 + batch)
        )
        with torch.no_grad():
            expected = model.act(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES)).numpy()
        got = session.run(["action"], inputs)[0]
        assert got.shape == (batch, 6)
        assert np.max(np.abs(got - expected)) <= PARITY_TOLERANCE


def test_export_reports_its_parity_gap_and_reexport_is_loadable(tmp_path):
    worst = export_checkpoint(tiny_artifacts().checkpoint, tmp_path / "again.onnx")
    assert 0.0 <= worst <= PARITY_TOLERANCE
    assert (
        ModelContract.from_onnx(tmp_path / "again.onnx").dataset_sha256
        == load_dataset(tiny_artifacts().dataset).sha256
    )
