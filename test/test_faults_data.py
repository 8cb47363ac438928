"""Fault injection, datasets: arrays of another task's sizes and negative costs are refused by every command
that reads a dataset (info, train, evaluate), with the count and the fix, before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
from test_cdt_support import tiny_artifacts
from test_faults_support import assert_refused, pls, write_raw_dataset

from pls_core.dataset import DatasetError, load_dataset

HOPPER = "SafetyHopperVelocity-v1"  # observations of 11 values, actions of 3


@pytest.fixture(scope="module")
def short_observations(tmp_path_factory):
    """Hopper's attrs, but observations of 5 values: a file cut or assembled for another robot."""
    return write_raw_dataset(tmp_path_factory.mktemp("data") / "hopper5.hdf5", HOPPER, obs_dim=5, act_dim=3)


def test_a_dataset_of_another_tasks_sizes_is_refused_on_load(short_observations):
    with pytest.raises(DatasetError, match="all 40 transitions have observations of 5 values, but "
                                           f"{HOPPER} has 11") as refusal:
        load_dataset(short_observations)
    assert f"pls collect --task {HOPPER}" in str(refusal.value)


def test_dataset_info_and_train_refuse_it(short_observations, tmp_path):
    assert_refused(pls("dataset", "info", str(short_observations)), "5 values", "has 11", "pls collect")
    run = tmp_path / "run"
    result = pls("train", "--dataset", str(short_observations), "--out", str(run), "--preset", "tiny",
                 "--no-progress")
    assert_refused(result, "5 values", "has 11", "pls collect")
    assert not (run / "checkpoint.pt").exists()


def test_actions_of_another_size_are_refused(tmp_path):
    path = write_raw_dataset(tmp_path / "hopper_act.hdf5", HOPPER, obs_dim=11, act_dim=6)
    with pytest.raises(DatasetError, match="actions of 6 values, but .* has 3"):
        load_dataset(path)


def test_negative_costs_are_refused_with_their_count(tmp_path):
    costs = np.zeros(40)
    costs[[3, 17, 29]] = -1.0
    path = write_raw_dataset(tmp_path / "negative.hdf5", HOPPER, obs_dim=11, act_dim=3, costs=costs)
    with pytest.raises(DatasetError, match="3 negative values"):
        load_dataset(path)
    assert_refused(pls("dataset", "info", str(path)), "3 negative values", "pls collect")


def test_evaluate_refuses_a_dataset_that_does_not_fit_the_model(short_observations, tmp_path):
    result = pls("evaluate", "--model", str(tiny_artifacts().onnx), "--dataset", str(short_observations),
                 "--rewards", "100", "--costs", "10", "--episodes", "1", "--out", str(tmp_path / "eval"))
    assert_refused(result, "observation dim is 5", "expects 17", "another task")
    assert not (tmp_path / "eval").exists()
