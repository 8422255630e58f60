"""`detector serve`: the local web page (detector.serve) from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from detector.cli import app
from synthgen.cli._common import input_errors_exit


@app.command("serve")
def serve_cmd(
    weights: Annotated[
        Optional[Path], typer.Option(help="Trained weights (.pt, or an export: .onnx, *_openvino_model); default: the shipped model.", show_default=False)
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    host: Annotated[
        str, typer.Option(help="Address to bind. 127.0.0.1: this machine only; 0.0.0.0: anyone on the network.")
    ] = "127.0.0.1",
    keep: Annotated[
        Optional[Path],
        typer.Option(help="Keep every upload and its result here (one folder per request); default: nothing is kept.", show_default=False),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, or a CUDA index such as 0.")] = "auto",
    tile: Annotated[str, typer.Option(help="Tiled inference as in `detector predict --tile`: auto, off or PIXELS.")] = "auto",
    runtime: Annotated[str, typer.Option(help="As `detector predict --runtime`: auto, torch, onnx or openvino.")] = "auto",
    max_file_mb: Annotated[float, typer.Option(min=0.001, help="Largest upload accepted, per file (MB).")] = 200.0,
    max_files: Annotated[int, typer.Option(min=1, help="Most files in one request.")] = 100,
    max_megapixels: Annotated[float, typer.Option(min=0.001, help="Largest image accepted (width x height, megapixels).")] = 100.0,
) -> None:
    """A local web page: drop micrographs, see detections, counts, size histograms and a particle table;
    download CSV, COCO, labelme and annotated PNGs as one zip. Also a JSON API (POST /api/predict)."""
    from detector.serve import Limits, Predictor, check_port, create_app, is_loopback, run
    from detector.tiling import parse_tile
    from detector.weights import shipped_weights

    with input_errors_exit():
        tile_mode = parse_tile(tile)
        check_port(host, port)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        predictor = Predictor(weights or shipped_weights(), device=device, tile=tile_mode, runtime=runtime)
        limits = Limits(max_file_mb=max_file_mb, max_files=max_files, max_megapixels=max_megapixels)
        web = create_app(predictor, limits, keep)
    if not is_loopback(host):
        typer.echo(f"warning: --host {host}: anyone who can reach this machine on the network can use this page "
                   "and upload to it", err=True)  # fmt: skip
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"detector serve: model {predictor.weights.name} on {predictor.device}; open http://{shown}:{port}/ "
               f"(Ctrl-C stops){'; keeping uploads in ' + str(keep) if keep else ''}", err=True)  # fmt: skip
    run(web, host=host, port=port)
