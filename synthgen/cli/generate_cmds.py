"""`synthgen check`, `generate`, `preview` (owned by the synthgen-core work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from synthgen.classes import CLASS_NAMES
from synthgen.cli import app
from synthgen.cli._common import input_errors_exit
from synthgen.generate import MAX_COUNT, GenerateResult, generate
from synthgen.pattern import load_patterns
from synthgen.placement import DEFAULT_MAX_FAILURES
from synthgen.preview import write_preview

PatternArgs = Annotated[
    list[Path],
    typer.Argument(help="Pattern file(s): 'WIDTH HEIGHT' then one 'PATH [CLASS]' template per line (or a folder with pattern.txt)."),
]


@app.command("check")
def check_cmd(patterns: PatternArgs) -> None:
    """Validate pattern files and their templates; report every defect of every file at once.

    Exit code 2 with one 'error: FILE:LINE: ...' line per defect when anything is wrong, else a one-line summary per pattern (templates per class, where the footprints come from)."""
    with input_errors_exit():
        for p in load_patterns(patterns):  # raises InputErrors with every defect of every file
            per_class = ", ".join(f"{n} {c}" for c, n in p.counts_per_class().items() if n)
            sources = sorted({t.footprint_source for t in p.templates})
            typer.echo(f"ok {p.source}: {p.width}x{p.height}, {len(p.templates)} templates ({per_class}); footprints from {'/'.join(sources)}")


@app.command("generate")
def generate_cmd(
    patterns: PatternArgs,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="New (or empty) output folder; a previous run's output is replaced only with --overwrite. "
            "One run at a time per folder (a second one fails at once).",
            file_okay=False,
        ),
    ],
    count: Annotated[
        int,
        typer.Option(
            "--count",
            "-n",
            min=1,
            max=MAX_COUNT,
            help="Number of images (shared round-robin by the patterns, unless --per-pattern). Written as they "
            "come: memory does not grow with the count.",
        ),
    ] = 10,
    max_particles: Annotated[int, typer.Option(help="Stop filling a canvas after this many particles.")] = 1000,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Run seed (default: from the clock). Recorded in manifest.json; the same seed gives byte-identical output.",
        ),
    ] = None,
    min_gap: Annotated[float, typer.Option(help="Minimum distance in pixels between particle footprints.")] = 0.0,
    scale_jitter: Annotated[float, typer.Option(help="Scale each particle by a factor drawn from [1-J, 1+J].")] = 0.0,
    background: Annotated[int, typer.Option(help="Grey level 0..255 of the empty (dark) canvas.")] = 20,
    image_format: Annotated[str, typer.Option("--format", help="Image format: png (lossless) or jpg.")] = "png",
    workers: Annotated[int, typer.Option(help="Parallel processes; the output is identical for any number.")] = 1,
    per_pattern: Annotated[bool, typer.Option("--per-pattern", help="Generate --count images for each pattern file.")] = False,
    max_failures: Annotated[
        int,
        typer.Option(
            help="'No room left': a canvas is full after this many consecutive failed attempts "
            "(an attempt fails when the randomly rotated template does not fit or touches a placed particle)."
        ),
    ] = DEFAULT_MAX_FAILURES,
    realism: Annotated[
        str,
        typer.Option(
            help="Photometric realism: none (flat dark canvas, the paper's look), sem (substrate texture, "
            "noise, blur, charging, scan lines, JPEG; distractors), strong (wider ranges), wide (light substrates, rims, "
            "halos, text negatives), stem (HAADF-STEM: particles on a cloudy support of many scales), or a YAML file "
            "(see synthgen/realism_presets/sem.yaml)."
        ),
    ] = "none",
    distractors: Annotated[
        bool | None,
        typer.Option(
            "--distractors/--no-distractors",
            help="Draw unlabelled info bars, scale bars, letters and debris (default: as the --realism preset says; "
            "--distractors with --realism none uses the sem preset's).",
            show_default=False,
        ),
    ] = None,
    cluster_prob: Annotated[
        float,
        typer.Option(help="Agglomerates: chance that a particle is slid against an already placed one (random direction) instead of placed uniformly; 0..1."),
    ] = 0.0,
    touching: Annotated[
        bool, typer.Option("--touching", help="Particles may touch (gap 0) but never overlap; overrides --min-gap.")
    ] = False,
    occlusion: Annotated[
        float,
        typer.Option(
            help="Let a particle lie partly on top of earlier ones, covering at most this fraction (0..1) of each; "
            "the lower particle is labelled by its visible part."
        ),
    ] = 0.0,
    drop_occluded: Annotated[
        float, typer.Option(help="With --occlusion: particles hidden by more than this fraction of their area get no label.")
    ] = 0.6,
    scale_range: Annotated[
        str,
        typer.Option(
            help="Per-image template scale factor drawn from LO,HI (e.g. 0.5,2), on top of --scale-jitter: "
            "particle sizes vary from image to image."
        ),
    ] = "1,1",
    size_dist: Annotated[
        Optional[str],
        typer.Option(
            help="Draw every particle's size from lognormal:MEAN,SPREAD (px; SPREAD = standard deviation), e.g. "
            "lognormal:30,5: a cube's edge or a sphere's ECD of the labelled outline, set as a scale on its template "
            "(cut at 3 sigma; replaces --scale-jitter). A known-truth size distribution (bench/sizes.py).",
            show_default=False,
        ),
    ] = None,
    density_range: Annotated[
        str,
        typer.Option(
            help="Per-image particle cap drawn from LO,HI as a fraction of --max-particles (e.g. 0.05,1 with "
            "--max-particles 300: 15 to 300 particles); a canvas still stops when it is full."
        ),
    ] = "1,1",
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the output of a previous synthgen generate run in --out (only such a folder, with its "
            "manifest.json; the old output stays until the new one is complete).",
        ),
    ] = False,
) -> None:
    """Compose labelled synthetic SEM micrographs from pattern files.

    Each canvas gets randomly chosen templates at random angles and positions, each accepted only if its footprint does not overlap the particles already placed, until --max-particles or until --max-failures attempts in a row fail (the canvas is full).

    Realism (--realism, --distractors), agglomerates (--cluster-prob, --touching, --occlusion) and size/density variety (--scale-range, --density-range) are off by default; labels stay exact under all of them (boxes are the tight boxes of what is visible).

    Writes OUT/images, OUT/labels (YOLO), OUT/annotations.json (COCO), OUT/data.yaml (ultralytics) and OUT/manifest.json (seed, options, per-image seed and counts). Nothing is written when an input is bad, and an interrupted run leaves no partial output (the hidden staging folder of a run killed with -9 is removed by the next run into the same --out)."""
    bar = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
    task = None

    def progress(done: int, total: int) -> None:
        nonlocal task
        if task is None:  # started on the first image, so input errors print without a bar
            bar.start()
            task = bar.add_task("generate", total=total)
        bar.update(task, completed=done)

    with input_errors_exit():
        try:
            result = generate(
                patterns,
                out,
                count=count,
                per_pattern=per_pattern,
                max_particles=max_particles,
                seed=seed,
                min_gap=min_gap,
                scale_jitter=scale_jitter,
                background=background,
                image_format=image_format,
                max_failures=max_failures,
                workers=workers,
                progress=progress,
                realism=realism,
                distractors=distractors,
                cluster_prob=cluster_prob,
                touching=touching,
                occlusion=occlusion,
                drop_occluded=drop_occluded,
                scale_range=scale_range,
                density_range=density_range,
                size_dist=size_dist,
                overwrite=overwrite,
                keep_images=False,
            )
        finally:
            if task is not None:
                bar.stop()
    _summary(result)


def _summary(result: GenerateResult) -> None:
    counts = result.counts
    n = result.count
    if result.removed_stale:
        typer.echo(f"removed {len(result.removed_stale)} staging folder(s) left by killed runs: {', '.join(p.name for p in result.removed_stale)}")
    per_image = sum(counts.values()) / max(n, 1)
    per_class = ", ".join(f"{counts[c]} {c}" for c in CLASS_NAMES)
    typer.echo(f"seed {result.seed}")
    typer.echo(f"wrote {n} images to {result.out_dir}: {sum(counts.values())} particles ({per_class}), {per_image:.1f} per image")


@app.command("preview")
def preview_cmd(
    folder: Annotated[Path, typer.Argument(help="Dataset folder with images/ and labels/ (e.g. the --out of generate).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Contact sheet to write (.png or .jpg).", dir_okay=False)],
    n: Annotated[int, typer.Option("--n", help="Number of images on the sheet.")] = 12,
    cols: Annotated[int, typer.Option("--cols", help="Images per row.")] = 4,
) -> None:
    """Contact sheet of a labelled folder: images with their boxes drawn in class colours, and a legend."""
    with input_errors_exit():
        path = write_preview(folder, out, n=n, cols=cols)
    typer.echo(f"wrote {path}")
