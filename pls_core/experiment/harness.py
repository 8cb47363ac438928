"""Every unit of an experiment (pls_core.experiment.work), with resume and progress; then the report.

For each task: a grid sweep per threshold (cached), then every threshold x method x seed run, computed by
an engine (pls_core.experiment.engines: this process, or Ray). A run whose file exists with the same
fingerprint is skipped; one with a different fingerprint stops the experiment before anything runs
(mixing settings in one folder would corrupt the table). The
fingerprint holds what the run depends on: the model, the budget and the optimizer config less the fields
its method never reads (so a PLS-only change keeps the baselines' runs); a run stored before an optimizer
field existed counts as run at that field's default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pls_core.experiment.loop import RunKey, RunRecord
from pls_core.experiment.settings import (
    SWEEP_SEED,
    ExperimentError,
    ExperimentSettings,
    TaskInputs,
    optimizer_config,
    ps2_model_dir,
    task_inputs,
)
from pls_core.experiment.sweep import cached_sweep, sweep_path, sweep_targets
from pls_core.experiment.work import PolicyRunUnit, PolicySpec, RolloutSpec, RunUnit, SweepUnit
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


def run_experiment(settings: ExperimentSettings, out_dir: Path, progress: bool = True,
                   engine=None) -> dict[str, Path]:
    """Run (or resume) everything `settings` asks for into `out_dir`; returns the report's files.

    `engine` runs the units not stored yet: pls_core.experiment.engines.SerialEngine (the default, this
    process) or RayEngine. Every stored run is checked against its fingerprint before anything runs."""
    from pls_core.experiment.engines import SerialEngine
    from pls_core.experiment.report import write_report
    from pls_core.progress import progress as progress_bars

    out_dir = Path(out_dir)
    all_inputs = [task_inputs(task, settings) for task in settings.tasks]  # a missing model fails here, early
    planned = [_plan(settings, inputs, out_dir) for inputs in all_inputs]
    pending = [unit for sweeps, runs in planned for unit in (*sweeps, *runs) if not _stored(unit)]
    with progress_bars(progress) as bars:
        total = sum(len(sweeps) + len(runs) for sweeps, runs in planned)
        overall = bars.add_task("runs and sweeps", total=total, completed=total - len(pending))
        if pending:
            (engine or SerialEngine()).run(pending, bars, overall)
    results = [TaskResults(inputs, {unit.threshold: json.loads(unit.path.read_text()) for unit in sweeps},
                           [RunRecord.load(unit.path) for unit in runs])
               for inputs, (sweeps, runs) in zip(all_inputs, planned, strict=True)]
    return write_report(out_dir, settings, results)


def _plan(settings: ExperimentSettings, inputs: TaskInputs, out_dir: Path) -> tuple[list, list]:
    """The task's sweep units (one per b) and run units; a run stored with other settings stops the
    experiment here, before anything runs or is overwritten."""
    spec = RolloutSpec(inputs.model_path, inputs.task_id, settings.episodes_per_evaluation, settings.shield)
    sweeps = [_sweep_unit(settings, inputs, spec, float(b), out_dir) for b in settings.thresholds]
    runs = [_policy_run_unit(settings, inputs, key, out_dir) if key.method == "ps2" else
            _run_unit(settings, inputs, spec, key, out_dir) for key in run_keys(settings, inputs.task_id)]
    return sweeps, runs


def _stored(unit) -> bool:
    """A run's stored file (checked by _run_unit); a sweep's only with this fingerprint (else redone)."""
    if isinstance(unit, SweepUnit):
        return cached_sweep(unit.path, unit.fingerprint) is not None
    return unit.path.is_file()


def _sweep_unit(settings, inputs, spec, threshold, out_dir) -> SweepUnit:
    """The sweep of b's own candidate grid Z, so that b's regret never depends on which other thresholds
    the command asked for (one sweep over the largest b's grid gave b = 20 another reference cell)."""
    config = optimizer_config(inputs, threshold, "pls", 0, settings)
    targets = sweep_targets(config, settings.sweep)
    fingerprint = {"model_sha256": inputs.model_sha256, "reward_range": list(inputs.reward_range),
                   "targets": [list(t) for t in targets], "episodes_per_target": settings.sweep.episodes,
                   "seed": SWEEP_SEED, **_shield_fingerprint(settings, inputs.task_id)}
    return SweepUnit(spec, threshold, tuple(targets), settings.sweep.episodes, fingerprint,
                     sweep_path(out_dir, inputs.task_id, threshold))


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


def _check_stored(path: Path, fingerprint: dict) -> None:
    """A run stored with other settings stops the experiment (mixing them would corrupt the table)."""
    if path.is_file():
        stored = RunRecord.load(path)
        if _with_new_defaults(stored.fingerprint, fingerprint) != fingerprint:
            changed = sorted(k for k in fingerprint if stored.fingerprint.get(k) != fingerprint[k])
            raise ExperimentError(f"{path} was run with other settings ({', '.join(changed)} differ); use a "
                                  "new --out folder, or delete that run to redo it")


def _policy_run_unit(settings, inputs, key: RunKey, out_dir) -> PolicyRunUnit:
    """Method ps2: its trained policy's hash and the episode budget are what the run depends on."""
    import hashlib

    from pls_core.shield.shield import shield_fingerprint

    folder = ps2_model_dir(settings, key.task)
    fingerprint = {"ps2_sha256": hashlib.sha256((folder / "checkpoint.zip").read_bytes()).hexdigest(),
                   "iterations": settings.iterations,
                   "episodes_per_evaluation": settings.episodes_per_evaluation,
                   "reward_range": list(inputs.reward_range), "shield": shield_fingerprint(key.task)}
    path = key.path(out_dir)
    _check_stored(path, fingerprint)
    return PolicyRunUnit(PolicySpec(folder, key.task), key, settings.iterations,
                         settings.episodes_per_evaluation, fingerprint, path)


def _run_unit(settings, inputs, spec, key: RunKey, out_dir) -> RunUnit:
    config = optimizer_config(inputs, key.threshold, key.method, key.seed, settings)
    unused = OPTIMIZERS[key.method].unused_config_fields
    fingerprint = {"optimizer": {k: v for k, v in config.to_dict().items() if k not in unused},
                   "iterations": settings.iterations,
                   "model_sha256": inputs.model_sha256, "reward_range": list(inputs.reward_range),
                   **_shield_fingerprint(settings, key.task)}
    if key.fleet > 1:  # one robot's fingerprint stays as before fleets existed
        fingerprint["fleet"] = key.fleet
    path = key.path(out_dir)
    _check_stored(path, fingerprint)
    return RunUnit(spec, key, config, settings.iterations, fingerprint, path)
