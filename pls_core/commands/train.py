"""`pls train`: offline CDT training on a dataset file (pls_core.cdt.trainer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pls_core.commands.common import (
    UserError,
    check_override_types,
    check_writable_folder,
    parse_overrides,
    require,
)


def check_device(name: str) -> str:
    """The --device value, refused (UserError) when torch cannot use it on this machine."""
    if name in ("auto", "cpu"):
        return name
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"--device {name}: this machine has no CUDA GPU torch can use; use --device cpu "
                            "(or auto)")
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: this machine has {count} CUDA device(s), "
                            f"cuda:0..cuda:{count - 1}")
    elif device.type != "cpu":
        raise UserError(f"--device {name}: only cpu and cuda devices are supported; use auto, cpu or cuda")
    return name


def train(
    dataset: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="HDF5 dataset (DSRL layout).")],
    out: Annotated[Path, typer.Option(help="Run directory: checkpoint.pt, CSV logs, TensorBoard.")],
    preset: Annotated[
        str, typer.Option(help="paper (GPU), cpu (<45 min on one core), cpu-long (8x cpu's steps, hours; "
                               "resumable) or tiny (tests).")
    ] = "cpu",
    seed: Annotated[int, typer.Option()] = 0,
    steps: Annotated[int | None, typer.Option(help="Override the preset's number of gradient steps.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt when it exists.")] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:1, ...")] = "auto",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Config override key=value, repeatable.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a Constrained Decision Transformer on an offline dataset."""
    from pls_core.cdt.presets import PRESETS
    from pls_core.cdt.presets import preset as get_preset

    require(preset in PRESETS, f"--preset {preset!r} is not a preset; choose one of {', '.join(PRESETS)}")
    require(steps is None or steps >= 1, f"--steps {steps}: training needs at least 1 gradient step")
    check_device(device)
    parsed = parse_overrides(overrides)
    parsed = check_override_types(parsed, get_preset(preset).to_dict(), "CDT config")
    require("steps" not in parsed or (isinstance(parsed["steps"], int) and parsed["steps"] >= 1),
            f"--set steps={parsed.get('steps')!r}: training needs at least 1 gradient step")
    check_writable_folder(out, "--out")
    from pls_core.cdt.trainer import TrainingDiverged  # torch loads only after the checks above
    from pls_core.cdt.trainer import train as run_training

    try:
        result = run_training(
            dataset,
            out,
            preset_name=preset,
            seed=seed,
            steps=steps,
            resume=resume,
            device=device,
            overrides=parsed,
            progress=progress,
        )
    except TrainingDiverged as exc:
        typer.echo(f"pls train: error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except ValueError as exc:  # the trainer's refusals: a bad dataset (DatasetError), resume mismatches
        raise UserError(str(exc)) from None
    if not Path(result.checkpoint).is_file():
        raise RuntimeError(f"training finished at step {result.step} but wrote no {result.checkpoint}")
    typer.echo(
        f"trained to step {result.step} in {result.wall_time_s / 60:.1f} min of training time; "
        f"checkpoint: {result.checkpoint}"
    )
    typer.echo(f"next: pls export --checkpoint {result.checkpoint} --out {Path(out) / 'policy.onnx'}")


def register(app: typer.Typer) -> None:
    app.command()(train)
