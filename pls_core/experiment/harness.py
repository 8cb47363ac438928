"""Every run of an experiment, in order, with resume and progress; then the report.

For each task: one Rollouts (PolicyRunner + varpi envs), a grid sweep per threshold (cached), then every
threshold x method x seed run. A run whose file exists with the same fingerprint is skipped; one with a
different fingerprint stops the experiment (mixing settings in one folder would corrupt the table). The
fingerprint holds what the run depends on: the model, the budget and the optimizer config less the fields
its method never reads (so a PLS-only change keeps the baselines' runs); a run stored before an optimizer
field existed counts as run at that field's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pls_core.experiment.loop import RunKey, RunRecord, run_optimizer
from pls_core.experiment.rollouts import Rollouts
from pls_core.experiment.settings import (
    SWEEP_SEED,
    ExperimentError,
    ExperimentSettings,
    TaskInputs,
    optimizer_config,
    task_inputs,
)
from pls_core.experiment.sweep import load_or_run_sweep, sweep_path, sweep_targets
from pls_core.safeopt.factory import OPTIMIZERS


@dataclass
class TaskResults:
    """What the report needs of one task: its inputs, its grid sweep per threshold b and its runs."""

    inputs: TaskInputs
    sweeps: dict[float, dict]
    runs: list[RunRecord]


def run_keys(settings: ExperimentSettings, task: str) -> list[RunKey]:
    return [RunKey(task, float(b), method, seed, settings.fleet) for b in settings.thresholds
            for method in settings.methods
            for seed in range(settings.seeds)]


def run_experiment(settings: ExperimentSettings, out_dir: Path, progress: bool = True) -> dict[str, Path]:
    """Run (or resume) everything `settings` asks for into `out_dir`; returns the report's files."""
    from pls_core.experiment.report import write_report
    from pls_core.progress import progress as progress_bars

    out_dir = Path(out_dir)
    all_inputs = [task_inputs(task, settings) for task in settings.tasks]  # a missing model fails here, early
    results = []
    with progress_bars(progress) as bars:
        runs_per_task = len(run_keys(settings, settings.tasks[0]))
        all_runs = bars.add_task("runs", total=len(settings.tasks) * runs_per_task)
        for inputs in all_inputs:
            task = inputs.task_id
            rollouts = Rollouts(inputs.model_path, task, settings.episodes_per_evaluation, settings.shield)
            try:
                sweeps = {float(b): _sweep(settings, inputs, rollouts, b, out_dir, bars)
                          for b in settings.thresholds}
                runs = []
                for key in run_keys(settings, task):
                    runs.append(_run(settings, inputs, rollouts, key, out_dir, bars))
                    bars.advance(all_runs)
            finally:
                rollouts.close()
            results.append(TaskResults(inputs, sweeps, runs))
    return write_report(out_dir, settings, results)


def _sweep(settings, inputs, rollouts, threshold, out_dir, bars) -> dict:
    """The sweep of b's own candidate grid Z, so that b's regret never depends on which other thresholds
    the command asked for (one sweep over the largest b's grid gave b = 20 another reference cell)."""
    config = optimizer_config(inputs, threshold, "pls", 0, settings)
    targets = sweep_targets(config, settings.sweep)
    fingerprint = {"model_sha256": inputs.model_sha256, "reward_range": list(inputs.reward_range),
                   "targets": [list(t) for t in targets], "episodes_per_target": settings.sweep.episodes,
                   "seed": SWEEP_SEED, **_shield_fingerprint(settings, inputs.task_id)}
    bar = bars.add_task(f"{inputs.task_id} sweep b={threshold:g}",
                        total=len(targets) * settings.sweep.episodes)
    sweep = load_or_run_sweep(sweep_path(out_dir, inputs.task_id, threshold), rollouts, targets,
                              settings.sweep.episodes, fingerprint, on_batch=lambda n: bars.advance(bar, n))
    bars.update(bar, visible=False)
    return sweep


def _shield_fingerprint(settings, task: str) -> dict:
    """Nothing without the shield (so runs stored before it existed still match), else its backup."""
    if not settings.shield:
        return {}
    from pls_core.shield.shield import shield_fingerprint

    return {"shield": shield_fingerprint(task)}


def _with_new_defaults(stored: dict, current: dict) -> dict:
    """`stored` with every optimizer field it predates set to that field's default: a field is only ever
    added with a default that keeps the old behaviour, so a run made before it ran as the default."""
    import dataclasses

    from pls_core.safeopt import OptimizerConfig

    old = stored.get("optimizer")
    if not isinstance(old, dict) or not isinstance(current.get("optimizer"), dict):
        return stored
    defaults = {f.name: f.default for f in dataclasses.fields(OptimizerConfig)
                if f.default is not dataclasses.MISSING}
    added = {k: defaults[k] for k in current["optimizer"] if k not in old and k in defaults}
    return {**stored, "optimizer": {**old, **added}}


def _run(settings, inputs, rollouts, key: RunKey, out_dir, bars) -> RunRecord:
    config = optimizer_config(inputs, key.threshold, key.method, key.seed, settings)
    unused = OPTIMIZERS[key.method].unused_config_fields
    fingerprint = {"optimizer": {k: v for k, v in config.to_dict().items() if k not in unused},
                   "iterations": settings.iterations,
                   "model_sha256": inputs.model_sha256, "reward_range": list(inputs.reward_range),
                   **_shield_fingerprint(settings, key.task)}
    if key.fleet > 1:  # one robot's fingerprint stays as before fleets existed
        fingerprint["fleet"] = key.fleet
    path = key.path(out_dir)
    if path.is_file():
        stored = RunRecord.load(path)
        if _with_new_defaults(stored.fingerprint, fingerprint) == fingerprint:
            return stored
        changed = sorted(k for k in fingerprint if stored.fingerprint.get(k) != fingerprint[k])
        raise ExperimentError(f"{path} was run with other settings ({', '.join(changed)} differ); use a new "
                              "--out folder, or delete that run to redo it")
    bar = bars.add_task(key.label(), total=settings.iterations)
    record = run_optimizer(rollouts, config, key, settings.iterations, fingerprint,
                           on_iteration=lambda row: bars.advance(bar))
    record.save(path)
    bars.update(bar, visible=False)
    final = record.final
    outcome = (f"halted after {final['halted_after']} evaluations ({final['note']})" if final.get("halted")
               else f"final R={final['target'][0]:.0f} G={final['target'][1]:.1f} -> reward "
                    f"{final['reward_mean']:.1f}, cost {final['cost_mean']:.1f}")
    bars.console.log(f"{key.label()}: {outcome}; unsafe search episodes {record.unsafe_episodes}/"
                f"{len(record.episodes)}; {record.wall_time_s:.0f} s")
    return record
