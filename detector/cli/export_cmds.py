"""`detector export`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from detector.cli import app
from synthgen.cli._common import input_errors_exit


class ExportFormat(str, Enum):
    onnx = "onnx"
    openvino = "openvino"


@app.command("export")
def export_cmd(
    weights: Annotated[Path, typer.Argument(help="Trained weights (.pt), e.g. RUN_DIR/weights/best.pt.", show_default=False)],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="onnx (ONNX Runtime) or openvino (OpenVINO IR folder).")] = ExportFormat.onnx,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="The exported model: FILE.onnx, or a folder NAME_openvino_model (default: beside the weights).", show_default=False),
    ] = None,
    imgsz: Annotated[Optional[int], typer.Option(min=32, help="Default input size stored in the model (default: the size it was trained at); any size runs.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
) -> None:
    """Export a model for CPU runtimes; `detector predict` and `evaluate` take the result in place of the .pt."""
    from detector.export import export

    with input_errors_exit():
        path = export(weights, format.value, out, imgsz=imgsz, overwrite=overwrite)
    typer.echo(f"exported {weights} -> {path}")
