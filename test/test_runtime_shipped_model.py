"""The shipped default policy: present, small, its contract and manifest agree, and it acts in the env."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from pls_core.cdt.presets import PRESETS
from pls_core.rollout import run_episodes
from pls_core.runtime import ModelContract, PolicyRunner, shipped_model_path

TASK = "SafetyHalfCheetahVelocity-v1"
SHIPPED = sorted(p.parent.name for p in shipped_model_path(TASK).parent.parent.glob("*/policy.onnx"))
DIMS = {"SafetyHalfCheetahVelocity-v1": (17, 6), "SafetyHopperVelocity-v1": (11, 3),
        "SafetyWalker2dVelocity-v1": (17, 6), "SafetyAntVelocity-v1": (27, 8)}


@pytest.mark.parametrize("task", SHIPPED)
def test_shipped_model_contract_matches_its_manifest(task):
    path = shipped_model_path(task)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    contract = ModelContract.from_onnx(path)
    assert path.stat().st_size < 5e6
    assert contract.task_id == task == manifest["task_id"]
    assert (contract.obs_dim, contract.act_dim) == DIMS[task]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["onnx_sha256"]
    assert contract.dataset_sha256 == manifest["dataset"]["sha256"]
    # Any real preset (models get retrained with longer ones), the same in the contract and the manifest.
    assert contract.train_config["preset"] == manifest["training"]["preset"] in set(PRESETS) - {"tiny"}
    # The supervisor and `pls experiment` plan on the seed box the contract records (`pls train` writes it).
    stats = contract.dataset_stats
    lo, hi = stats["seed_reward_range"]
    assert stats["reward_return_min"] <= lo < hi <= stats["reward_return_max"]


def _parse_pls_command(words: list[str]) -> None:
    """Parse `pls ...` words with today's CLI, as the shell would hand them over, without running anything:
    the parser raises on an unknown option, a missing value or an unknown subcommand. (Typer carries its
    own copy of click, so the click types are reached through the command objects.)"""
    import typer

    from pls_core.cli import app

    command = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="pls")
    while hasattr(command, "list_commands"):  # a group: the next word names a subcommand
        name = words.pop(0)
        command = command.get_command(ctx, name)
        assert command is not None, f"no subcommand {name!r}"
        ctx = command.context_class(command, parent=ctx, info_name=name)
    _, extra, _ = command.make_parser(ctx).parse_args(words)
    positional = [p for p in command.params if p.param_type_name == "argument"]
    assert len(extra) <= len(positional), f"unexpected arguments {extra}"


@pytest.mark.parametrize("task", SHIPPED)
def test_shipped_manifest_commands_run_with_todays_cli(task):
    """A manifest's commands are how a model is reproduced: each `pls` one must still parse (entries in
    prose, such as which checkpoint was kept, are skipped)."""
    import re
    import shlex

    manifest = json.loads((shipped_model_path(task).parent / "manifest.json").read_text())
    commands = manifest["commands"] + [manifest["seed_box"]["command"]]
    words = [shlex.split(c) for c in commands if re.match(r"(\w+=\S+ )*pls ", c)]
    pls_words = [w[w.index("pls") + 1:] for w in words]
    assert pls_words and pls_words[0][0] == "collect"
    for args in pls_words:
        _parse_pls_command(list(args))


@pytest.mark.parametrize("task", SHIPPED)
def test_shipped_manifest_keeps_its_seed_box_safe(task):
    """Every shipped model carries its `pls evaluate --seed-box` check, run on the box the optimiser
    builds from this file's contract at b = 20, and the box is safe on average there: PLS starts from it
    without evidence."""
    from pls_core.evaluate import seed_box_targets

    path = shipped_model_path(task)
    check = json.loads((path.parent / "manifest.json").read_text())["seed_box"]
    assert check["threshold"] == 20.0 and check["holds"]
    corners = [(c["target_reward"], c["target_cost"]) for c in check["corners"]]
    np.testing.assert_allclose(corners, seed_box_targets(ModelContract.from_onnx(path), 20.0))
    assert all(c["cost_mean"] <= 20.0 and c["episodes"] >= 20 for c in check["corners"])
    assert check["max_share_above_b"] == max(c["share_above_b"] for c in check["corners"])


def test_shipped_model_drives_the_cheetah_forward():
    """Half the dataset's best return: a wide margin, not an episode value."""
    runner = PolicyRunner(shipped_model_path(TASK), num_envs=2)
    best = runner.contract.dataset_stats["reward_return_max"]
    results = run_episodes(runner, TASK, [(best, 20.0)], episodes_per_target=2, seed=123)
    assert all(r.length == 1000 for r in results)
    assert np.mean([r.reward_return for r in results]) > 0.5 * best
