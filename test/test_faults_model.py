"""Fault injection, models: damaged weights, a model of another task's sizes, absurd observations and bad
checkpoints are refused where they are read, with the file and the fix named, never acted on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_cdt_support import tiny_artifacts
from test_faults_support import assert_refused, nan_weights_onnx, overwrite, pls, retargeted_onnx

from pls_core.export import ExportInputError, export_checkpoint
from pls_core.runtime import MAX_OBSERVATION_MAGNITUDE, ContractError, ModelContract, PolicyRunner

HOPPER = "SafetyHopperVelocity-v1"  # 11 observations, 3 actions; the tiny model is HalfCheetah's 17 and 6


def test_a_model_with_damaged_weights_is_refused_at_load(tmp_path):
    damaged = nan_weights_onnx(tiny_artifacts().onnx, tmp_path / "damaged.onnx")
    ModelContract.from_onnx(damaged)  # the file still loads and its contract reads: only the weights broke
    with pytest.raises(ContractError, match="NaN/inf actions") as refusal:
        PolicyRunner(damaged)
    assert str(damaged) in str(refusal.value) and "re-export" in str(refusal.value)

    result = pls("evaluate", "--model", str(damaged), "--rewards", "100", "--costs", "10", "--episodes", "1",
                 "--out", str(tmp_path / "eval"))
    assert_refused(result, str(damaged), "NaN/inf actions", "re-export")
    assert not (tmp_path / "eval").exists()


def test_a_model_of_another_tasks_sizes_is_refused_at_load(tmp_path):
    foreign = retargeted_onnx(tiny_artifacts().onnx, tmp_path / "hopper.onnx", HOPPER)
    with pytest.raises(ContractError, match="11 and 3"):
        PolicyRunner(foreign)
    # pls evaluate died with a numpy broadcast error on the first step
    result = pls("evaluate", "--model", str(foreign), "--rewards", "100", "--costs", "10", "--episodes", "1",
                 "--out", str(tmp_path / "eval"))
    assert_refused(result, "17", "11 and 3", f"--task {HOPPER}")


@pytest.mark.parametrize("value", [1e30, -2e6, MAX_OBSERVATION_MAGNITUDE * 1.5])
def test_absurd_observations_are_refused_and_leave_the_runner_usable(value):
    runner = PolicyRunner(tiny_artifacts().onnx)
    runner.reset((100.0, 10.0))
    obs = np.zeros(17)
    obs[5] = value
    with pytest.raises(ContractError, match=r"beyond \+-1e\+06 at \[\[5\]\]"):
        runner.act(obs)
    with pytest.raises(ContractError, match="beyond"):
        runner.contract.check_observation(obs)  # the check the ROS policy node calls
    obs[5] = MAX_OBSERVATION_MAGNITUDE  # the bound itself is still a valid observation
    assert np.all(np.isfinite(runner.act(obs)))


def test_export_refuses_a_checkpoint_whose_model_answers_nan(tmp_path):
    saved = torch.load(tiny_artifacts().checkpoint, map_location="cpu", weights_only=False)
    name = next(k for k, v in saved["model"].items() if v.is_floating_point() and v.numel() > 8)
    saved["model"][name].view(-1)[:4] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(saved, bad)
    out = tmp_path / "policy.onnx"
    result = pls("export", "--checkpoint", str(bad), "--out", str(out))
    assert_refused(result, str(bad), "4 NaN/inf weights", "retrain")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.pt"]


def test_export_refuses_a_model_of_another_tasks_sizes(tmp_path):
    saved = torch.load(tiny_artifacts().checkpoint, map_location="cpu", weights_only=False)
    saved["facts"]["task_id"] = HOPPER
    foreign = tmp_path / "hopper.pt"
    torch.save(saved, foreign)
    result = pls("export", "--checkpoint", str(foreign), "--out", str(tmp_path / "policy.onnx"))
    assert_refused(result, "observations of 17", "11 and 3", "retrain")
    assert not (tmp_path / "policy.onnx").exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "overwritten"])
def test_export_refuses_a_damaged_checkpoint(tmp_path, damage):
    checkpoint = tmp_path / "checkpoint.pt"
    data = tiny_artifacts().checkpoint.read_bytes()
    checkpoint.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "overwritten": data}[damage])
    if damage == "overwritten":
        overwrite(checkpoint, 0, b"\x00" * 512)  # the zip header and the first member's name
    result = pls("export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "policy.onnx"))
    assert_refused(result, str(checkpoint), "pls train")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_export_refuses_a_folder_or_an_unwritable_out_and_leaves_no_tmp(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    result = pls("export", "--checkpoint", str(tiny_artifacts().checkpoint), "--out", str(folder))
    assert_refused(result, f"--out {folder} is a folder", "give the file to write")
    assert list(folder.iterdir()) == []

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = pls("export", "--checkpoint", str(tiny_artifacts().checkpoint), "--out",
                 str(blocker / "policy.onnx"))
    assert_refused(result, str(blocker), "is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "models"]
    # the library refuses it too (for callers other than the CLI), with no stray .tmp
    with pytest.raises(ExportInputError, match="writable"):
        export_checkpoint(tiny_artifacts().checkpoint, blocker / "policy.onnx")
    with pytest.raises(ExportInputError, match="is a folder"):
        export_checkpoint(tiny_artifacts().checkpoint, folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "models"] and list(folder.iterdir()) == []


def test_the_task_size_table_matches_the_environments():
    from pls_core.envs import make_env
    from pls_core.tasks import TASKS

    for task_id, spec in TASKS.items():
        env = make_env(task_id)
        sizes = (env.observation_space.shape, env.action_space.shape)
        assert sizes == ((spec.sizes[0],), (spec.sizes[1],)), task_id
        env.close()
