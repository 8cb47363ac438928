"""Fault injection, command line: every bad option is refused before work starts, in one line that names
the problem and the fix, with exit status 2 and no traceback; a real bug keeps its traceback and asks to
be reported. The `--set` parser is one function for every command."""

from __future__ import annotations

import pytest
import torch
import typer
from test_cdt_support import tiny_artifacts
from test_faults_support import assert_refused, pls
from typer.testing import CliRunner

from pls_core.commands import common, experiment, train
from pls_core.commands.common import REPORT_LINE, UserError, check_override_types, parse_overrides


@pytest.fixture(scope="module")
def blocker(tmp_path_factory):
    """A regular file: any output folder below it cannot be created (permission bits do not stop root)."""
    path = tmp_path_factory.mktemp("cli") / "a_file"
    path.write_text("not a folder")
    return path


def test_one_override_parser_reads_numbers_as_numbers():
    assert train.parse_overrides is experiment.parse_overrides is common.parse_overrides
    parsed = parse_overrides(["reward_noise_variance=1e3", "lr=3e-4", "flag=true", "grid=[20, 40]",
                              "name=abc", "x = 2"])
    assert parsed == {"reward_noise_variance": 1000.0, "lr": 3e-4, "flag": True, "grid": [20, 40],
                      "name": "abc", "x": 2}
    assert isinstance(parsed["reward_noise_variance"], float)
    assert parse_overrides(["v=nan"])["v"] == "nan"  # left as a word: the config refuses it by name
    for bad in ("novalue", "=3", "k=[1, 2"):
        with pytest.raises(UserError, match="key=value|cannot read"):
            parse_overrides([bad])
    defaults = {"learning_rate": 1e-4, "steps": 100, "betas": (0.9, 0.99), "cuda_fast_math": True}
    assert check_override_types({"steps": 1e3, "learning_rate": 1}, defaults, "CDT config") == \
        {"steps": 1000, "learning_rate": 1.0}
    for bad in ({"learning_rate": "abc"}, {"steps": 2.5}, {"cuda_fast_math": 1}, {"betas": 0.9}, {"nope": 1}):
        with pytest.raises(UserError):
            check_override_types(bad, defaults, "CDT config")


EXPERIMENT = ("experiment", "--tasks", "SafetyHopperVelocity-v1", "--methods", "pls", "--seeds", "1",
              "--iterations", "1", "--no-progress")


@pytest.mark.parametrize(("args", "phrases"), [
    (("--thresholds", "abc"), ("'abc' is not a positive number", "--thresholds 20,40")),
    (("--thresholds", "20,-5"), ("'-5' is not a positive number",)),
    (("--set", "threshold=-1"), ("--set threshold", "use that option instead", "--thresholds")),
    (("--iterations", "0"), ("--iterations 0", "at least 1")),
])
def test_experiment_refuses_bad_options(tmp_path, args, phrases):
    out = tmp_path / "exp"
    assert_refused(pls(*EXPERIMENT, "--out", str(out), *args), *phrases)
    assert not out.exists()


def test_experiment_refuses_an_unwritable_out(blocker):
    assert_refused(pls(*EXPERIMENT, "--out", str(blocker / "exp")), str(blocker), "is a file")


@pytest.mark.parametrize(("args", "phrases"), [
    (("--costs", ""), ("--costs is empty", "e.g. --costs")),
    (("--rewards", "nan"), ("--rewards 'nan'", "finite")),
    (("--rewards", "1,x"), ("--rewards '1,x'", "numbers separated by commas")),
    (("--episodes", "0"), ("--episodes 0", "at least 1")),
    (("--num-envs", "0"), ("--num-envs 0",)),
])
def test_evaluate_refuses_bad_options_instead_of_a_nan_report(tmp_path, args, phrases):
    options = {"--rewards": "100", "--costs": "10", "--episodes": "1"}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    out = tmp_path / "eval"
    flat = [word for item in options.items() for word in item]
    assert_refused(pls("evaluate", "--model", str(tiny_artifacts().onnx), "--out", str(out), *flat), *phrases)
    assert not out.exists()


@pytest.mark.parametrize(("args", "phrases"), [
    (("--steps", "0"), ("--steps 0", "at least 1 gradient step")),
    (("--set", "learning_rate=abc"), ("learning_rate='abc'", "a finite number")),
    (("--set", "no_such_key=1"), ("unknown CDT config key(s) ['no_such_key']",)),
    (("--preset", "huge"), ("--preset 'huge'", "tiny")),
    (("--device", "tpu"), ("--device",)),
])
def test_train_refuses_bad_options_without_a_fake_checkpoint(tmp_path, args, phrases):
    run = tmp_path / "run"
    result = pls("train", "--dataset", str(tiny_artifacts().dataset), "--out", str(run), "--preset", "tiny",
                 "--no-progress", *args)
    assert_refused(result, *phrases)
    assert "checkpoint" not in result.stdout and not run.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_train_refuses_cuda_without_a_gpu(tmp_path):
    result = pls("train", "--dataset", str(tiny_artifacts().dataset), "--out", str(tmp_path / "run"),
                 "--device", "cuda")
    assert_refused(result, "no CUDA GPU", "--device cpu")


def test_train_refuses_an_unwritable_out(blocker):
    result = pls("train", "--dataset", str(tiny_artifacts().dataset), "--out", str(blocker / "run"))
    assert_refused(result, str(blocker), "is a file")


@pytest.mark.parametrize(("args", "phrases"), [
    (("--episodes", "0"), ("--episodes 0", "leave --episodes out")),
    (("--task", "NoSuch-v0"), ("unknown task 'NoSuch-v0'", "SafetyHopperVelocity-v1",
                               "task description YAML")),
    (("--workers", "-1"), ("--workers -1",)),
    (("--behaviour", "ppo"), ("--behaviour ppo", "budget, sac")),
    (("--task", "SafetyCarCircle1-v0", "--behaviour", "budget"), ("no budget-conditioned", "(sac)")),
    (("--min-throttle", "0"), ("--min-throttle 0.0", "(0, 1]")),
    (("--max-action-noise", "1.5"), ("--max-action-noise 1.5", "[0, 1]")),
    (("--perturb-steps", "0"), ("--perturb-steps 0", "at least 1")),
])
def test_collect_refuses_bad_options_before_training_anything(tmp_path, args, phrases):
    out = tmp_path / "data" / "x.hdf5"
    assert_refused(pls("collect", "--out", str(out), "--behaviour-dir", str(tmp_path / "b"), *args), *phrases)
    assert not (tmp_path / "data").exists() and not (tmp_path / "b").exists()


def test_collect_refuses_an_unwritable_out(blocker, tmp_path):
    result = pls("collect", "--out", str(blocker / "x.hdf5"), "--behaviour-dir", str(tmp_path / "b"))
    assert_refused(result, str(blocker), "is a file")


def test_dataset_info_refuses_an_unwritable_plot(blocker):
    assert_refused(pls("dataset", "info", str(tiny_artifacts().dataset), "--plot", str(blocker / "p.png")),
                   str(blocker), "is a file")


@pytest.mark.parametrize(("args", "phrases"), [
    (("--control-rate-hz", "-5"), ("control_rate_hz", "out of range")),
    (("--param", "pls_sim.max_episode_step=5"), ("max_episode_step", "max_episode_steps")),
])
def test_sim_refuses_out_of_range_options_before_any_node_starts(args, phrases):
    assert_refused(pls("sim", "--dry-run", *args), *phrases)


def test_a_bug_keeps_its_traceback_and_asks_to_be_reported():
    app = typer.Typer()

    def broken() -> None:
        raise ZeroDivisionError("a bug")

    def refusing() -> None:
        raise UserError("--x 0: must be at least 1")

    app.command("broken")(common.handle_errors("broken", broken))
    app.command("refusing")(common.handle_errors("refusing", refusing))
    bug = CliRunner().invoke(app, ["broken"])
    assert bug.exit_code == common.BUG_EXIT
    assert "Traceback" in bug.output and "ZeroDivisionError: a bug" in bug.output
    assert REPORT_LINE in bug.output
    refused = CliRunner().invoke(app, ["refusing"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "pls refusing: error: --x 0: must be at least 1" in refused.output
