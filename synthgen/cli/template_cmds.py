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
    "Each template is RGBA: its alpha is the particle footprint (the instance mask or polygon when there "
    "is one, else an Otsu segmentation inside the box), slightly dilated and feathered. Particles cut by "
    "the image border or under 3 px are skipped and counted.\n\n"
    "Neighbours: with boxes or polygons only, particles within MARGIN pixels of a neighbour are skipped. "
    "With an instance mask (--labels MASK.png, or --masks MASK.png next to a label file) every particle "
    "is cut by its own mask, crowded or not: the alpha never reaches a neighbour's pixels, and the "
    "neighbour pixels in the crop are blanked (alpha 0, grey set to the local background median); "
    "--isolated-only skips them instead.\n\n"
    "Examples: synthgen extract img.png --labels img.txt --out my-pattern/ ; "
    "synthgen extract images/a.png --labels labels/a.txt --masks masks/a.png --out a-pattern/"
)


@app.command("render-templates", help=RENDER_HELP)
def render_templates_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to write p01/ ... p08/ into (other files are kept).")] = Path(
        "patterns"
    ),
    seed: Annotated[int, typer.Option(min=0, help="Seed of the procedural renderer; the bundled set uses 2022.")] = 2022,
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
    masks: Annotated[
        Path | None,
        typer.Option(
            "--masks",
            help="Instance mask of the image for a label file (16-bit PNG/TIFF, value k+1 = the particle on line "
            "k of --labels, 0 = background, as in EMPS masks/): classes from the labels, footprints from the "
            "mask, crowded particles cut with neighbours blanked. Not inferred: pass it explicitly.",
        ),
    ] = None,
    margin: Annotated[
        int,
        typer.Option(
            min=0,
            help="Pixels of background kept around each particle; without a mask, closer neighbours are skipped.",
        ),
    ] = 4,
    isolated_only: Annotated[
        bool,
        typer.Option(
            "--isolated-only",
            help="With a mask too, skip particles within MARGIN pixels of a neighbour instead of blanking it.",
        ),
    ] = False,
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
    from synthgen.errors import InputError
    from synthgen.extract import extract

    # EMPS-style layout (images/, labels/, masks/): name the mask when crowded particles were skipped.
    sibling = labels.parent.parent / "masks" / f"{labels.stem}.png"
    hint = None
    if masks is None and not isolated_only and labels.parent.name == "labels" and sibling.is_file():
        hint = f"--masks {sibling} would cut crowded particles with their neighbours blanked"
    with input_errors_exit():
        try:
            report = extract(
                image, labels, out, margin=margin, class_name=class_name, force=force, mask_path=masks,
                isolated_only=isolated_only,
            )  # fmt: skip
        except InputError as e:
            if hint and "of a neighbour" in e.msg:
                raise InputError(f"{e.msg}; {hint}", e.path, e.line) from None
            raise
    typer.echo(
        f"wrote {report.n_written} templates ({report.n_blanked} with neighbours blanked) and "
        f"{report.pattern_path} ({report.width}x{report.height})"
    )
    for reason, n in report.skipped_counts().items():
        typer.echo(f"skipped {n}: {reason}")
    if hint and any(r.startswith("within ") for r in report.skipped_counts()):
        typer.echo(f"hint: {hint}")
