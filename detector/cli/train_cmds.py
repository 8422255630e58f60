"""`detector train, experiment`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
import math
from typing import Annotated, Optional

import typer

from detector.cli import Task, app
from synthgen.cli._common import input_errors_exit


class Arch(str, Enum):
    yolov3_tiny = "yolov3-tiny"
    yolov4_tiny = "yolov4-tiny"
    yolov3_tiny_seg = "yolov3-tiny-seg"
    yolov4_tiny_seg = "yolov4-tiny-seg"


# option -> (lowest, highest, lowest is allowed); the same ranges as the --help texts and detector.train.
_RANGES = {
    "imgsz": (32, 8192, True),
    "epochs": (1, None, True),
    "batch": (1, None, True),
    "lr": (0.0, 1.0, False),
    "checkpoint_every": (1, None, True),
    "workers": (0, None, True),
}


def _out_of_range(**values) -> str:
    """The first option outside its range, as one message ("" when all are fine)."""
    for name, value in values.items():
        if value is None:
            continue
        lo, hi, lo_ok = _RANGES[name]
        ok = not (isinstance(value, float) and math.isnan(value))
        ok = ok and (value >= lo if lo_ok else value > lo) and (hi is None or value <= hi)
        if not ok:
            span = f"{'>=' if lo_ok else '>'} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
            return f"--{name.replace('_', '-')} must be {span}, got {value:g}"
    return ""


@app.command("train")
def train_cmd(
    out: Annotated[Path, typer.Option(help="Run folder: weights/, checkpoints/, checkpoints.json, results.csv, plots.")],
    arch: Annotated[
        Optional[Arch], typer.Option(help="yolov3-tiny (ultralytics' own YAML) or yolov4-tiny (ours). Required unless --resume or --weights.")
    ] = None,
    data: Annotated[
        Optional[Path], typer.Option(help="data.yaml from `detector build-dataset` (any ultralytics detection YAML). Required unless --resume.")
    ] = None,
    weights: Annotated[
        Optional[str],
        typer.Option(help="Fine-tune: start from these weights (.pt, or 'shipped' for the default model) instead of training "
                     "--arch from scratch; classes are matched by name, the cumulative training is kept in checkpoints.json."),
    ] = None,
    imgsz: Annotated[
        Optional[int], typer.Option(help="Square training input size in pixels, 32..8192 [default: 416 (paper), or the --weights model's size].")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs, >= 1.")] = 100,
    batch: Annotated[int, typer.Option(help="Images per batch, >= 1.")] = 16,
    lr: Annotated[float, typer.Option(help="Initial learning rate of SGD, > 0 and <= 1 (paper: 0.001).")] = 0.001,
    checkpoint_every: Annotated[
        Optional[int], typer.Option(help="Keep a checkpoint every K epochs (and the last one), >= 1 [default: 10; "
                                    "--resume keeps the run's own].")
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (CUDA if present, else CPU), cpu, a GPU index (0), or 0,1 for multi-GPU DDP.")
    ] = "auto",
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the interrupted run in --out from weights/last.pt, with its own settings "
                     "(only --device, --workers, --cache, --plots may change). A damaged last.pt falls back to the newest "
                     "loadable checkpoints/epochNNNN.pt (optimizer state restarts); a run killed in its final "
                     "validation is marked finished."),
    ] = False,
    workers: Annotated[
        Optional[int], typer.Option(help="Dataloader worker processes, >= 0 [default: 0 on a CPU with <= 4 cores].")
    ] = None,
    cache: Annotated[bool, typer.Option(help="Decode every image once and keep it in RAM.")] = True,
    plots: Annotated[bool, typer.Option(help="Write ultralytics' plots (labels, batches, curves).")] = True,
    task: Annotated[
        Task,
        typer.Option(help="detect: boxes. segment: the -seg model of --arch (ultralytics' Segment head, same backbone) on "
                     "outline labels (build-dataset --task segment); with --weights from a detector, every matching layer is kept."),
    ] = Task.detect,
) -> None:
    """Train a YOLO-tiny cube/sphere detector, offline, on CUDA or all CPU cores."""
    bad = _out_of_range(imgsz=imgsz, epochs=epochs, batch=batch, lr=lr, checkpoint_every=checkpoint_every, workers=workers)
    if bad:
        typer.echo(f"error: {bad}", err=True)
        raise typer.Exit(code=2)
    from detector.train import train

    if not resume and (data is None or (arch is None and weights is None)):
        typer.echo("error: --data and --arch (or --weights) are required (unless --resume continues a run)", err=True)
        raise typer.Exit(code=2)
    if resume and weights is not None:
        typer.echo("error: --resume continues a run from its own weights; --weights starts a new one", err=True)
        raise typer.Exit(code=2)
    with input_errors_exit():
        result = train(
            arch.value if arch else "", data, out, imgsz=imgsz, epochs=epochs, batch=batch, lr=lr,
            checkpoint_every=checkpoint_every, device=device, resume=resume, weights=weights, workers=workers,
            cache="ram" if cache else False, plots=plots,
            task="segment" if task == Task.segment or (arch and arch.value.endswith("-seg")) else "detect",
        )
    if result.note:
        typer.echo(f"{result.run_dir}: {result.note}", err=True)
    elif result.resumed_finished:
        typer.echo(f"{result.run_dir}: run already finished, nothing to resume", err=True)
    typer.echo(f"best weights: {result.best}")
    typer.echo(f"checkpoints: {len(result.checkpoints)} in {result.run_dir / 'checkpoints.json'}")


@app.command("experiment")
def experiment_cmd(
    config: Annotated[Path, typer.Argument(help="Experiment YAML: runs, archs, datasets {A: data.yaml, ...}, train options.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs and their state; train nothing.")] = False,
    device: Annotated[Optional[str], typer.Option(help="Override the config's device (auto, cpu, 0, 0,1).")] = None,
) -> None:
    """Train the M1-M4 grid (architectures x training sets), one run folder each; finished runs are skipped."""
    from detector.experiment import load_experiment, run_experiment

    with input_errors_exit():
        plan = load_experiment(config)
        for run in plan:
            typer.echo(f"{run.name}: {run.status()}  {run.run_dir}")
        if dry_run:
            return
        extra = {"device": device} if device else {}
        for i, (run, status) in enumerate(run_experiment(plan, **extra), 1):
            typer.echo(f"[{i}/{len(plan)}] {run.name}: {status}")
