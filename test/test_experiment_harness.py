"""`pls experiment` end to end on a tiny Swimmer model: counts, unsafe episodes, resume, report, seeds."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
from test_experiment_support import TASK, models_dir

from pls_core.experiment.harness import run_experiment
from pls_core.experiment.loop import RunKey, RunRecord
from pls_core.experiment.rollouts import Rollouts
from pls_core.experiment.settings import ExperimentError, ExperimentSettings, SweepSettings
from pls_core.experiment.sweep import sweep_path
from pls_core.rollout import run_episodes
from pls_core.runtime import PolicyRunner
from pls_core.tasks import get_task

B = 20.0  # near the tiny Swimmer's episode costs, so both outcomes are likely; no test relies on either


def tiny_settings(**changes) -> ExperimentSettings:
    # The tiny Swimmer's episode costs spread by ~20: say so (noise variance of a 2-episode mean), or
    # PLS rightly reads a high seed evaluation as a refuted seed box and halts.
    settings = ExperimentSettings(tasks=(TASK,), thresholds=(B,), methods=("pls", "random"), seeds=1,
                                  episodes_per_evaluation=2, iterations=2, sweep=SweepSettings(2, 2, 1),
                                  models_dir=models_dir(), optimizer_overrides={"cost_noise_variance": 400.0})
    return replace(settings, **changes)


def load_runs(out_dir, settings) -> dict[str, RunRecord]:
    return {m: RunRecord.load(RunKey(TASK, B, m, 0).path(out_dir)) for m in settings.methods}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """One experiment shared by the tests that only read it (tests that write use `experiment_copy`)."""
    out_dir = tmp_path_factory.mktemp("experiment")
    settings = tiny_settings()
    return out_dir, settings, run_experiment(settings, out_dir, progress=False)


@pytest.fixture
def experiment_copy(experiment, tmp_path):
    """A private copy of the shared experiment's folder, for tests that rerun into it or edit its runs:
    rerunning rewrites the report files, which the read-only tests must find as the fixture made them."""
    out_dir, settings, _ = experiment
    shutil.copytree(out_dir, tmp_path / "experiment")
    return tmp_path / "experiment", settings


def test_every_run_records_iterations_times_varpi_episodes_at_the_decided_targets(experiment):
    """Relationships only: whether PLS halts at b = 20 depends on this processor's episodes (a PLS run
    that halts has recorded every evaluation up to the halt, and no final evaluation)."""
    out_dir, settings, _ = experiment
    for method, run in load_runs(out_dir, settings).items():
        halted = bool(run.final.get("halted"))
        assert method == "pls" or not halted  # only PLS can halt
        evaluations = run.final["halted_after"] if halted else settings.iterations
        assert len(run.iterations) == evaluations
        assert len(run.episodes) == evaluations * settings.episodes_per_evaluation
        for row in run.iterations:
            mine = [e for e in run.episodes if e["iteration"] == row["iteration"]]
            assert len(mine) == settings.episodes_per_evaluation
            assert {(e["target_reward"], e["target_cost"]) for e in mine} == {tuple(row["target"])}
        assert len({e["seed"] for e in run.episodes}) == len(run.episodes)  # every episode its own seed
        assert len(run.final["episodes"]) == (0 if halted else settings.episodes_per_evaluation)
        assert run.final["phase"] == ("halted" if halted else "operation"), method  # caps fill the budget
        if method == "pls":
            assert all(row["verified_safe"] for row in run.iterations)


def test_unsafe_count_is_the_number_of_search_episodes_with_cost_above_b(experiment):
    out_dir, settings, paths = experiment
    runs = load_runs(out_dir, settings)
    # Every episode's flag is its cost against b, and four counts agree. (Whether both kinds occur depends
    # on this processor's episodes, so it is not asserted.)
    for run in runs.values():
        assert all(e["unsafe"] == (e["cost_return"] > B) for e in run.episodes)
    with paths["runs.csv"].open() as f:
        table = {row["method"]: row for row in csv.DictReader(f)}
    for method, run in runs.items():
        expected = sum(e["cost_return"] > B for e in run.episodes)
        assert run.unsafe_episodes == expected
        assert int(table[method]["unsafe_episodes"]) == expected
        assert sum(row["unsafe"] for row in run.iterations) == expected


def test_report_has_the_table_the_csv_and_the_figures(experiment):
    out_dir, settings, paths = experiment
    table = paths["table.md"].read_text()
    for method in settings.methods:
        assert f"| {B:g} | {method} | 1 |" in table
    results = json.loads(paths["results.json"].read_text())
    runs = load_runs(out_dir, settings)
    assert [row["method"] for row in results["summary"]] == list(settings.methods)
    assert [row["search_episodes"] for row in results["summary"]] == [len(runs[m].episodes)
                                                                      for m in settings.methods]
    with paths["episodes.csv"].open() as f:
        stages = [row["stage"] for row in csv.DictReader(f)]
    assert stages.count("search") == sum(len(run.episodes) for run in runs.values())
    assert stages.count("final") == sum(len(run.final["episodes"]) for run in runs.values())
    for name, path in paths.items():
        if name.startswith(("curves", "sweep")):
            assert path.stat().st_size > 10_000, name


def test_results_json_records_where_it_came_from_and_renders_the_table_alone(experiment, tmp_path):
    from pls_core.experiment.provenance import machine
    from pls_core.experiment.report import markdown, results_document, write_results_document

    out_dir, settings, paths = experiment
    results = json.loads(paths["results.json"].read_text())
    made = results["provenance"]
    assert made["machine"] == machine() and made["date"] and made["command"]
    assert paths["table.md"].read_text() == markdown(results)  # the file alone gives the table
    assert "| reward (ours) | reward (DSRL) |" in paths["table.md"].read_text()
    random_row = next(r for r in results["runs"] if r["method"] == "random")
    assert random_row["final_reward_dsrl"] == pytest.approx(  # the Swimmer has DSRL constants
        (random_row["final_reward_return"] - 0.0711) / (238.9583 - 0.0711))
    committed = tmp_path / "results" / "swimmer"
    (committed / "figures").mkdir(parents=True)
    (committed / "results.json").write_bytes(paths["results.json"].read_bytes())
    for figure in (out_dir / "figures").glob("*.png"):
        (committed / "figures" / figure.name).write_bytes(figure.read_bytes())
    doc = write_results_document(tmp_path / "results.md")
    assert doc.read_text() == results_document(doc)  # byte-identical on regeneration
    assert "## swimmer" in doc.read_text() and "![curves_" in doc.read_text()


def test_resume_skips_finished_runs_and_refuses_other_settings(experiment_copy):
    out_dir, settings = experiment_copy
    files = sorted((out_dir / "runs").rglob("*.json")) + [sweep_path(out_dir, TASK, B)]
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in files}
    run_experiment(settings, out_dir, progress=False)
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in files} == before
    with pytest.raises(ExperimentError, match="other settings"):
        run_experiment(replace(settings, iterations=3), out_dir, progress=False)
    # Refused before anything ran: no run or sweep was touched, not even a sweep the new settings redo.
    with pytest.raises(ExperimentError, match="other settings"):
        run_experiment(replace(settings, iterations=3, sweep=SweepSettings(3, 2, 1)), out_dir, progress=False)
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in files} == before


def test_a_thresholds_sweep_and_regret_do_not_depend_on_the_other_thresholds_asked(tmp_path):
    """Each b has its own sweep over its own grid Z (G up to 2b): adding b = 40 to the command in the same
    folder leaves the first b's sweep file and regret as they were, and b = 40's sweep reaches G = 80 (2b).

    The first b is the episode length: no episode can cost more, so every sweep cell is safe and the regret
    exists whatever the physics does on this processor (episodes differ across CPUs)."""
    always_safe = float(get_task(TASK).episode_len)  # per-step cost is 0 or 1
    settings = tiny_settings(methods=("random",), thresholds=(always_safe,))
    alone_report = run_experiment(settings, tmp_path, progress=False)
    alone = sweep_path(tmp_path, TASK, always_safe)
    before = (alone.stat().st_mtime_ns, alone.read_bytes())
    both = run_experiment(replace(settings, thresholds=(always_safe, 40.0)), tmp_path, progress=False)
    assert (alone.stat().st_mtime_ns, alone.read_bytes()) == before
    wide = json.loads(sweep_path(tmp_path, TASK, 40.0).read_text())
    assert max(g for _, g in wide["targets"]) == 80.0
    assert json.loads(before[1])["targets"] != wide["targets"]  # each b sweeps its own grid

    def regret(report):
        rows = json.loads(report["results.json"].read_text())["runs"]
        return [r["regret"] for r in rows if r["threshold"] == always_safe and r["method"] == "random"]

    assert regret(both) == regret(alone_report) and regret(both)[0] is not None
    assert f"sweep {TASK} b=40" in both and both[f"sweep {TASK} b=40"].is_file()


def test_runs_are_reproducible_by_seed(experiment, tmp_path):
    out_dir, settings, _ = experiment
    run_experiment(replace(settings, methods=("pls",)), tmp_path, progress=False)
    again = RunRecord.load(RunKey(TASK, B, "pls", 0).path(tmp_path))
    first = load_runs(out_dir, settings)["pls"]
    assert again.episodes == first.episodes and again.iterations == first.iterations
    assert again.final == first.final


def test_a_pls_run_whose_seed_box_is_refuted_halts_and_is_reported(tmp_path):
    """b = 1 with the tiny Swimmer (episode costs in the tens, 10x and more above b on any processor): the
    seed box is refuted within a few evaluations (how many depends on the episodes, so it is not asserted),
    the run stops there and is reported as halted."""
    settings = tiny_settings(thresholds=(1.0,), methods=("pls",), iterations=8,
                             optimizer_overrides={"seed_cost_range": [0.0, 1.0]})  # seeds command <= b
    paths = run_experiment(settings, tmp_path, progress=False)
    run = RunRecord.load(RunKey(TASK, 1.0, "pls", 0).path(tmp_path))
    halted_after = run.final["halted_after"]
    assert run.final["halted"] and halted_after < settings.iterations and run.final["episodes"] == []
    assert len(run.iterations) == halted_after
    assert len(run.episodes) == halted_after * settings.episodes_per_evaluation
    assert "| 1 | pls | 1 | 1 |" in paths["table.md"].read_text()


def test_shared_envs_give_the_episodes_of_run_episodes():
    path = models_dir() / TASK / "policy.onnx"
    targets = [(100.0, 5.0), (150.0, 30.0)]
    expected = run_episodes(PolicyRunner(path, num_envs=2), TASK, targets, 2, seed=7)
    rollouts = Rollouts(path, TASK, num_envs=2)
    try:
        rollouts.run_jobs([(0.0, 0.0)], seed=3)  # envs that already ran an episode must not matter
        assert rollouts.run_jobs([t for t in targets for _ in range(2)], seed=7) == expected
    finally:
        rollouts.close()


def test_cli_runs_one_method_and_rejects_unknown_ones(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = [sys.executable, "-m", "pls_core.cli", "experiment", "--out", str(tmp_path), "--tasks", TASK,
              "--thresholds", "20", "--seeds", "1", "--episodes-per-evaluation", "1", "--iterations", "1",
              "--models-dir", str(models_dir()), "--sweep-rewards", "2", "--sweep-costs", "2",
              "--sweep-episodes", "1", "--no-progress", "--workers", "1"]
    done = subprocess.run([*common, "--methods", "fixed"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| 20 | fixed | 1 |" in done.stdout
    assert (tmp_path / "runs" / TASK / "b20" / "fixed" / "seed0.json").is_file()
    done = subprocess.run([*common, "--methods", "pls,sarsa"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 2 and "unknown method(s) ['sarsa']" in done.stderr
    report = [sys.executable, "-m", "pls_core.cli", "experiment", "--report", str(tmp_path / "results.md")]
    done = subprocess.run([*report, "--out", str(tmp_path / "missing")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2 and "no results folder" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([*report, "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "results.md").read_text().startswith("# Results")


def test_a_pls_only_setting_keeps_the_baselines_runs(experiment_copy):
    """operation_cost_margin_se is read by PLS alone: changing it reuses the random-search run as it is
    and refuses the stored PLS run (its fingerprint differs)."""
    out_dir, settings = experiment_copy
    changed = replace(settings, optimizer_overrides={**settings.optimizer_overrides,
                                                     "operation_cost_margin_se": 1.0})
    random_run = RunKey(TASK, B, "random", 0).path(out_dir)
    before = (random_run.stat().st_mtime_ns, random_run.read_bytes())
    run_experiment(replace(changed, methods=("random",)), out_dir, progress=False)
    assert (random_run.stat().st_mtime_ns, random_run.read_bytes()) == before
    with pytest.raises(ExperimentError, match="optimizer differ"):
        run_experiment(replace(changed, methods=("pls",)), out_dir, progress=False)


def test_a_run_made_before_an_optimizer_field_existed_is_reused_at_its_default(experiment_copy):
    """Runs stored before `episode_cost_margin_sd` existed lack it in their fingerprint; they ran as its
    default (0, the paper's mean) and are reused, but not for a run that asks for another value."""
    out_dir, settings = experiment_copy
    pls_run = RunKey(TASK, B, "pls", 0).path(out_dir)
    stored = json.loads(pls_run.read_text())
    assert stored["fingerprint"]["optimizer"].pop("episode_cost_margin_sd") == 0.0
    pls_run.write_text(json.dumps(stored))
    before = pls_run.read_bytes()
    run_experiment(replace(settings, methods=("pls",)), out_dir, progress=False)
    assert pls_run.read_bytes() == before
    asks_more = replace(settings, methods=("pls",), optimizer_overrides={
        **settings.optimizer_overrides, "episode_cost_margin_sd": 2.0})
    with pytest.raises(ExperimentError, match="optimizer differ"):
        run_experiment(asks_more, out_dir, progress=False)
