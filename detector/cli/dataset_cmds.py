"""`detector build-dataset`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from detector.cli import Task, app
from detector.dataset import CLASS_NAMES, SPLIT_NAMES, BuildOptions, build_dataset, make_sources, parse_split
from synthgen.cli._common import input_errors_exit


class Balance(str, Enum):
    none = "none"
    objects = "objects"


_err = Console(stderr=True)


def _track(items: Sequence, description: str) -> Iterable:
    return track(items, description=description, console=_err, transient=True, disable=not _err.is_terminal)


def _table(table: dict[str, dict]) -> Table:
    out = Table(title="Images and objects per split")
    for col in ("split", "images", "synthetic", "real", *CLASS_NAMES):
        out.add_column(col, justify="left" if col == "split" else "right")
    split_names = [n for n in SPLIT_NAMES if n in table]
    for name in (*split_names, "total"):
        if name in table:
            row = table[name]
            cells = [row["images"], row["synthetic_images"], row["real_images"], *(row[c] for c in CLASS_NAMES)]
            out.add_row(name, *(str(v) for v in cells), end_section=name == split_names[-1])
    return out


@app.command("build-dataset")
def build_dataset_cmd(
    inputs: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help="Input folders, auto-detected: synthetic when the folder holds synthgen's manifest.json, else real.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (must not exist unless --overwrite).")] = ...,
    synthetic: Annotated[
        Optional[list[Path]], typer.Option("--synthetic", help="A synthetic folder (synthgen generate output); repeatable.")
    ] = None,
    real: Annotated[
        Optional[list[Path]],
        typer.Option("--real", help="A real labelled folder (YOLO txt, Pascal VOC xml, COCO json or labelme json); repeatable."),
    ] = None,
    split: Annotated[
        str, typer.Option(help="train,val[,test] proportions, e.g. 0.7,0.15,0.15 or 0.8,0.2 (normalised to sum to 1, so 0.75,0.15,0.15 also works).")
    ] = "0.7,0.15,0.15",
    balance: Annotated[
        Balance, typer.Option(help="none: images as they come (set A); objects: equal object counts per class by sampling images (set B).")
    ] = Balance.none,
    max_objects_per_class: Annotated[
        Optional[int], typer.Option(min=1, help="Sample images so that no class has more objects than this.")
    ] = None,
    remove_info_bar: Annotated[
        bool,
        typer.Option(
            "--remove-info-bar",
            help="Detect the SEM text/scale bar strip at the bottom of real images and crop it; labels in it are dropped.",
        ),
    ] = False,
    task: Annotated[
        Task,
        typer.Option(
            help="detect: box labels (class cx cy w h; also for labelImg). segment: ultralytics outline labels "
            "(class x1 y1 ...) from instance masks (masks/ beside images/), COCO or labelme polygons; a particle "
            "without one gets its box's rectangle (counted in stats.json).",
        ),
    ] = Task.detect,
    seed: Annotated[int, typer.Option(min=0, help="Seed for balancing and splitting (an integer >= 0).")] = 0,
    copy: Annotated[bool, typer.Option("--copy", help="Copy images instead of hard-linking them.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output folder written by build-dataset (never another file or folder).")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Make flaws of the data errors: degenerate (under 1 px) or duplicate boxes, corrupt or truncated images, "
            "label files without an image, images without labels. Without it each is one warning line and is skipped.",
        ),
    ] = False,
) -> None:
    """Merge synthetic and real labelled folders into an ultralytics dataset: OUT/{train,val,test}/{images,labels},
    data.yaml (absolute path) and stats.json with the images and objects per class of each split."""
    with input_errors_exit():
        fractions = parse_split(split)
        sources = make_sources(synthetic or [], real or [], inputs or [])
        options = BuildOptions(
            split=fractions,
            balance=balance.value,
            max_objects_per_class=max_objects_per_class,
            remove_info_bar=remove_info_bar,
            seed=seed,
            copy=copy,
            overwrite=overwrite,
            strict=strict,
            task=task.value,
        )
        result = build_dataset(sources, out, options, track=_track)
    console = Console()
    console.print(_table(result.table))
    info = result.stats["info_bar"]
    dropped = result.stats["dropped_labels"]
    if remove_info_bar:
        console.print(
            f"info bar cut from {len(info['cropped_images'])} image(s); "
            f"{info['clipped_labels']} label(s) clipped, {len(dropped)} dropped (listed in stats.json)"
        )
    elif dropped:
        console.print(f"{len(dropped)} label(s) dropped (listed in stats.json)")
    if result.warnings_summary:
        console.print(f"warnings: {result.warnings_summary} (listed above and in stats.json; --strict makes them errors)", soft_wrap=True)
    outlines = result.stats.get("outlines")
    if outlines and outlines["from_box"]:
        console.print(f"{outlines['from_box']} particle(s) had no outline: written as their box's rectangle")
    console.print(f"wrote {result.data_yaml}")
