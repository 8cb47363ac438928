"""Dataset files: our writer, DSRL's layout, and the validation that refuses broken files."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from pls_core.cli import app
from pls_core.dataset import (
    DSRL_KEYS,
    DatasetError,
    OfflineDataset,
    dataset_summary,
    load_dataset,
    save_dataset,
)

OBS_DIM, ACT_DIM = 5, 2


def make_dataset(lengths=(4, 3, 5), seed=0) -> OfflineDataset:
    """Episodes of the given lengths; the second ends by termination, the others by timeout."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    ends = np.cumsum(lengths) - 1
    terminals = np.zeros(n, dtype=bool)
    timeouts = np.zeros(n, dtype=bool)
    terminals[ends[1]] = True
    timeouts[np.delete(ends, 1)] = True
    return OfflineDataset(
        observations=rng.normal(size=(n, OBS_DIM)),
        next_observations=rng.normal(size=(n, OBS_DIM)),
        actions=rng.uniform(-1, 1, size=(n, ACT_DIM)),
        rewards=np.arange(n, dtype=np.float64),
        costs=(np.arange(n) % 2).astype(np.float64),
        terminals=terminals,
        timeouts=timeouts,
        attrs={"task_id": "Test-v0", "seed": 3},
    )


def test_round_trip_keeps_arrays_attrs_and_hash(tmp_path):
    ds = make_dataset()
    save_dataset(tmp_path / "a.hdf5", ds)
    loaded = load_dataset(tmp_path / "a.hdf5")
    for key in DSRL_KEYS:
        np.testing.assert_array_equal(getattr(loaded, key), getattr(ds, key))
    assert loaded.observations.dtype == np.float32 and loaded.terminals.dtype == bool
    assert loaded.attrs["task_id"] == "Test-v0" and loaded.attrs["seed"] == 3
    assert "pls_version" in loaded.attrs
    save_dataset(tmp_path / "b.hdf5", loaded)
    assert load_dataset(tmp_path / "b.hdf5").sha256 == ds.sha256
    with h5py.File(tmp_path / "a.hdf5") as f:
        assert f["observations"].compression == "gzip" and f["terminals"].dtype == np.float32


def test_hash_changes_with_content():
    ds, other = make_dataset(), make_dataset()
    other.rewards[0] += 1.0
    assert ds.sha256 != other.sha256


def test_episode_returns_split_on_terminals_and_timeouts():
    rewards, costs, lengths = make_dataset().episode_returns()
    np.testing.assert_array_equal(lengths, [4, 3, 5])
    np.testing.assert_allclose(rewards, [0 + 1 + 2 + 3, 4 + 5 + 6, 7 + 8 + 9 + 10 + 11])
    np.testing.assert_allclose(costs, [2, 1, 3])


def test_trailing_unfinished_episode_is_dropped_with_warning():
    ds = make_dataset()
    ds.timeouts[-1] = False
    with pytest.warns(UserWarning, match="unfinished episode"):
        slices = ds.episode_slices()
    assert [s.stop - s.start for s in slices] == [4, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the slices in hand are reused: no second split, no second warning
        assert ds.episode_terminated(slices).tolist() == [False, True]
        assert ds.episode_returns(slices)[2].tolist() == [4, 3]


@pytest.mark.parametrize("flag_dtype", [np.float32, bool])
def test_real_dsrl_layout_loads(tmp_path, flag_dtype):
    """DSRL files: flags as float32 or bool, extra keys we do not use, no attrs of ours."""
    ds = make_dataset()
    path = tmp_path / "SafetyHalfCheetahVelocityGymnasium-v1-250-3.hdf5"
    with h5py.File(path, "w") as f:
        for key in DSRL_KEYS:
            dtype = flag_dtype if key in ("terminals", "timeouts") else np.float32
            f.create_dataset(key, data=getattr(ds, key).astype(dtype), compression="gzip")
        f.create_dataset("infos/x_velocity", data=np.zeros(ds.num_transitions))
    loaded = load_dataset(path, obs_dim=OBS_DIM, act_dim=ACT_DIM)
    assert loaded.sha256 == ds.sha256
    assert (loaded.obs_dim, loaded.act_dim, len(loaded.episode_slices())) == (OBS_DIM, ACT_DIM, 3)


def _write_raw(path, arrays):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


def _arrays(ds):
    return {key: getattr(ds, key).astype(np.float32) for key in DSRL_KEYS}


def _missing_key(a):
    del a["costs"]


def _mismatched(a):
    a["actions"] = a["actions"][:-1]


def _nan(a):
    a["rewards"][2] = np.nan


def _no_ends(a):
    a["terminals"][:] = 0
    a["timeouts"][:] = 0


def _flat_obs(a):
    a["observations"] = a["observations"][:, 0]


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (_missing_key, r"lacks the DSRL keys \['costs'\]"),
        (_mismatched, "mismatched lengths.*actions=11"),
        (_nan, "`rewards` holds 1 NaN/inf"),
        (_no_ends, "no episode ends"),
        (_flat_obs, r"`observations` has shape \(12,\)"),
    ],
)
def test_broken_file_is_refused_with_problem_and_fix(tmp_path, breakage, problem):
    arrays = _arrays(make_dataset())
    breakage(arrays)
    _write_raw(tmp_path / "bad.hdf5", arrays)
    with pytest.raises(DatasetError, match=problem) as info:
        load_dataset(tmp_path / "bad.hdf5")
    assert "pls collect" in str(info.value)  # the fix


def test_wrong_task_dims_are_refused(tmp_path):
    save_dataset(tmp_path / "a.hdf5", make_dataset())
    with pytest.raises(DatasetError, match="observation dim is 5 but the environment expects 17"):
        load_dataset(tmp_path / "a.hdf5", obs_dim=17)


def test_not_hdf5_is_refused(tmp_path):
    (tmp_path / "x.hdf5").write_text("not a dataset")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        load_dataset(tmp_path / "x.hdf5")


def test_saving_a_broken_dataset_is_refused(tmp_path):
    ds = make_dataset()
    ds.costs[0] = np.inf
    with pytest.raises(DatasetError, match="`costs` holds 1 NaN/inf"):
        save_dataset(tmp_path / "a.hdf5", ds)
    assert not (tmp_path / "a.hdf5").exists()


def test_summary_numbers():
    summary = dataset_summary(make_dataset())
    assert summary["episodes"] == 3 and summary["transitions"] == 12
    assert summary["reward_return"] == {"min": 6.0, "max": 45.0, "mean": 22.0}
    assert summary["cost_return"]["max"] == 3.0
    assert (summary["obs_dim"], summary["act_dim"], summary["task_id"]) == (OBS_DIM, ACT_DIM, "Test-v0")


def test_cli_info_prints_summary_and_plots(tmp_path):
    save_dataset(tmp_path / "a.hdf5", make_dataset())
    result = CliRunner().invoke(app, ["dataset", "info", str(tmp_path / "a.hdf5"), "--plot",
                                      str(tmp_path / "scatter.png")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[: result.output.rindex("}") + 1])
    assert summary["episodes"] == 3
    assert (tmp_path / "scatter.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_info_reports_broken_file(tmp_path):
    _write_raw(tmp_path / "bad.hdf5", {"observations": np.zeros((3, 2))})
    result = CliRunner().invoke(app, ["dataset", "info", str(tmp_path / "bad.hdf5")])
    assert result.exit_code == 2
    assert "lacks the DSRL keys" in result.output


def test_cli_filter_thins_whole_episodes_and_records_how(tmp_path):
    ds = make_dataset(lengths=(4, 3, 5, 2, 6, 3))
    save_dataset(tmp_path / "a.hdf5", ds)
    rewards, costs, _ = ds.episode_returns()
    args = ["dataset", "filter", str(tmp_path / "a.hdf5"), "--out", str(tmp_path / "b.hdf5"),
            "--per-cell", "1", "--cost-bins", "2", "--reward-bins", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "give --max-cost" in result.output  # Test-v0 has no task maximum

    result = CliRunner().invoke(app, [*args, "--max-cost", str(costs.max())])
    assert result.exit_code == 0, result.output
    thinned = load_dataset(tmp_path / "b.hdf5")
    kept_rewards, kept_costs, kept_lengths = thinned.episode_returns()
    assert len(kept_rewards) == 2  # one per cost cell
    # Every kept episode is one of the originals, whole.
    originals = {(r, c, n) for r, c, n in zip(*ds.episode_returns(), strict=True)}
    assert {(r, c, n) for r, c, n in zip(kept_rewards, kept_costs, kept_lengths, strict=True)} <= originals
    assert thinned.attrs["grid"] == "cost_bins=2 reward_bins=1 per_cell=1"
    assert thinned.attrs["raw_episodes"] == 6


def test_cli_filter_min_reward_drops_the_episodes_earning_less(tmp_path):
    """--min-reward: no kept episode earns less, every one that earns at least it and has a cell to
    itself is kept, and the file says so; a bound above every episode is refused with the fix."""
    ds = make_dataset(lengths=(4, 3, 5, 2, 6, 3))
    save_dataset(tmp_path / "a.hdf5", ds)
    rewards, costs, _ = ds.episode_returns()
    bound = float(np.median(rewards))
    args = ["dataset", "filter", str(tmp_path / "a.hdf5"), "--per-cell", "100",
            "--max-cost", str(costs.max())]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b.hdf5"), "--min-reward", str(bound)])
    assert result.exit_code == 0, result.output
    thinned = load_dataset(tmp_path / "b.hdf5")
    assert sorted(thinned.episode_returns()[0]) == sorted(rewards[rewards >= bound])
    assert thinned.attrs["grid"].endswith(f"min_reward={bound:g}")

    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "c.hdf5"),
                                      "--min-reward", str(rewards.max() + 1)])
    assert result.exit_code == 2 and "lower --min-reward" in result.output
    assert not (tmp_path / "c.hdf5").exists()
