"""`pls export`: a training checkpoint -> ONNX policy with its contract in the metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pls_core.commands.common import check_writable_file


def export(
    checkpoint: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="checkpoint.pt of `pls train`.")
    ],
    out: Annotated[Path, typer.Option(help="Where to write the .onnx file.")],
) -> None:
    """Export a CDT checkpoint to ONNX (fixed context, padding mask) and check parity with torch.

    A damaged, empty or foreign checkpoint, one with NaN weights or of another task's sizes, and an --out
    that is a folder or cannot be written are refused (exit 2; export.ExportInputError) with nothing written.
    """
    from pls_core.export import PARITY_TOLERANCE, ExportError, export_checkpoint
    from pls_core.runtime import ModelContract

    check_writable_file(out, "--out")
    try:
        worst = export_checkpoint(checkpoint, out)
    except ExportError as exc:
        typer.echo(f"export failed: {exc}", err=True)
        raise typer.Exit(code=1) from None
    contract = ModelContract.from_onnx(out)
    typer.echo(
        f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {contract.task_id}, "
        f"obs {contract.obs_dim}, act {contract.act_dim}, context {contract.context_len}; "
        f"max |onnxruntime - torch| = {worst:.1e} (limit {PARITY_TOLERANCE:g})"
    )


def register(app: typer.Typer) -> None:
    app.command()(export)
