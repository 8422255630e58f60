"""`synthgen render-templates` and `synthgen extract`: where pattern templates come from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from synthgen.cli import app
from synthgen.cli._common import input_errors_exit


RENDER_HELP = (
    "Render the eight bundled patterns of procedural SEM templates (Ag nanocubes, quasi-spheres).\n\n"
    "Shaped like Table 1 of López Gutiérrez et al. 2022: 2, 4, 6, 10, 31, 17, 29 and 57 templates; "
    "cubes only in p01-p03 and p08, cubes and quasi-spheres in p04-p07. The same seed gives "
    "byte-identical files. Example: synthgen render-templates --out patterns/ --seed 2022"
)
EXTRACT_HELP = (
    "Cut templates from a labelled real micrograph and write a pattern file (the paper's manual step).\n\n"
    "Particles cut by the image border or within MARGIN pixels of a neighbour are skipped and counted. "
    "Each template is RGBA: its alpha is the particle footprint (the polygon or mask when the labels "
    "have one, else an Otsu segmentation inside the box). "
    "Example: synthgen extract img.png --labels img.txt --out my-pattern/"
)


@app.command("render-templates", help=RENDER_HELP)
def render_templates_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to write p01/ ... p08/ into (other files are kept).")] = Path(
        "patterns"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the procedural renderer; the bundled set uses 2022.")] = 2022,
) -> None:
    """Write patterns/p01..p08 with procedural templates (help text: RENDER_HELP)."""
    from synthgen.procedural import PATTERN_SPECS, render_pattern_set

    with input_errors_exit(), Progress(transient=True) as bar:
        task = bar.add_task("rendering patterns", total=len(PATTERN_SPECS))
        paths = render_pattern_set(out, seed=seed, specs=PATTERN_SPECS, progress=lambda spec: bar.advance(task))
    total = sum(s.n_templates for s in PATTERN_SPECS)
    typer.echo(f"wrote {len(paths)} patterns ({total} templates) under {out} with seed {seed}")


@app.command("extract", help=EXTRACT_HELP)
def extract_cmd(
    image: Annotated[Path, typer.Argument(help="The real micrograph (PNG, JPEG, BMP or TIFF).")],
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            help="Its labels: YOLO .txt, COCO .json, labelme .json, Pascal VOC .xml, or an instance-mask "
            "image (0 = background, each particle a distinct integer).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="New (or empty) folder for pattern.txt and templates/.")],
    margin: Annotated[
        int, typer.Option(min=0, help="Pixels of background kept around each particle; closer neighbours are skipped.")
    ] = 4,
    class_name: Annotated[
        str | None,
        typer.Option(
            "--class-name",
            help="Class of every template (cube or sphere). Default: the label's class, or cube for a mask image.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing pattern folder.")] = False,
) -> None:
    """Cut a labelled micrograph into a pattern (help text: EXTRACT_HELP)."""
    from synthgen.extract import extract

    with input_errors_exit():
        report = extract(image, labels, out, margin=margin, class_name=class_name, force=force)
    typer.echo(f"wrote {report.n_written} templates and {report.pattern_path} ({report.width}x{report.height})")
    for reason, n in report.skipped_counts().items():
        typer.echo(f"skipped {n}: {reason}")
