"""`detector evaluate, predict, baseline`."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from detector.cli import app
from detector.tiling import parse_tile
from detector.weights import shipped_weights
from synthgen.errors import InputError
from synthgen.cli._common import input_errors_exit

_out = Console(width=None if sys.stdout.isatty() else 120)  # pipes and CI logs: no 80-column wrapping
_err = Console(stderr=True)


def _warn(e: InputError) -> None:
    """One warning line for a skipped image, through the project's warning log (FILE:LINE form as errors)."""
    from synthgen.warnings_log import IMAGE_SKIPPED, warn

    warn(e.msg, e.path, e.line, IMAGE_SKIPPED)


class Match(str, Enum):
    iou = "iou"
    center = "center"


class SaveFormat(str, Enum):
    coco = "coco"
    labelme = "labelme"


class MaskSource(str, Enum):
    auto = "auto"
    model = "model"
    threshold = "threshold"
    none = "none"


class Refine(str, Enum):
    none = "none"
    gaussian = "gaussian"


RefineOpt = Annotated[
    Refine,
    typer.Option(help="gaussian: refine each measured particle's outline to the half-height ellipse of a 2D Gaussian fitted "
                 "to its intensity (Okunev 2020, Eq. 2-5); a failed fit keeps its mask; refined/failed are counted."),
]


class Polarity(str, Enum):
    auto = "auto"
    bright = "bright"
    dark = "dark"


class ClassRule(str, Enum):
    shape = "shape"
    cube = "cube"
    sphere = "sphere"


SetOpt = Annotated[
    list[str],
    typer.Option(
        "--set",
        help="A labelled validation set as NAME=DIR (YOLO, Pascal VOC, COCO or labelme labels); repeatable: --set I=val-I --set II=val-II.",
        show_default=False,
    ),
]
ConfOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Confidence threshold for counts, IoU, precision and recall (mAPs use every detection).")]
ImgszOpt = Annotated[
    Optional[int], typer.Option(min=32, help="Inference size in pixels (default: the size the model was trained at; paper: 416).", show_default=False)
]
TileOpt = Annotated[
    str,
    typer.Option(
        help="auto: the model sees the whole image; only particles measuring 14-80 px at the input of the scale "
        "that saw them count. Unless it finds at least 8 such with confidence >= 0.5, or 4-7 whose median is 34-68 px "
        "(then it is the answer), the image is also seen at scales 1.41x apart (down to 1/4, up to 2x the original pixels; large frames through a sample "
        "of 6 tiles per scale) and the scale with the most summed confidence of such particles per area wins; the "
        "image is resized so its median particle measures ~48 px and, when larger than the model input, cut into "
        "overlapping model-size tiles, merged so a particle on a tile edge counts once and whole. "
        "off: whole image only. PIXELS: tiles of that many image pixels, no size estimate.",
    ),
]
IouOpt = Annotated[float, typer.Option(min=0.01, max=1.0, help="IoU a detection needs with a labelled particle to count (paper: 0.5).")]
MatchOpt = Annotated[
    Match, typer.Option(help="iou: IoU >= --iou (Cartucho/mAP, the 2022 paper); center: the detection's centre lies inside the labelled box (Okunev 2020).")
]
OverlaysOpt = Annotated[
    bool, typer.Option("--overlays", help="Also draw every image (for each model's final checkpoint) into overlays/SET/MODEL/: TP green, FP red, wrong class yellow, missed (FN) blue.")
]


StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Make flaws of the sets errors: degenerate (under 1 px) or duplicate boxes, corrupt or truncated images, "
        "label files without an image, images without labels. Without it each is one warning line, skipped, and counted per set.",
    ),
]


def _warning_lines(report) -> list[str]:
    """One line per set that gave warnings: what was skipped (also in report.md)."""
    from detector.report import warnings_text

    return [f"set {name}: {text} (see the warnings above; --strict makes them errors)" for name, text in warnings_text(report).items()]


def _summary_table(report) -> Table:
    from detector.report import _final_results, _num, _pct

    t = Table(title=f"Final checkpoints (counts at conf >= {report.conf:g}; AP50 = mAP@0.5 VOC, AP50-95 = COCO)")
    for col in ("set", "model", "class", "labelled", "TP", "FP", "FN", "det %", "IoU", "AP50", "AP50-95"):
        t.add_column(col, justify="left" if col in ("set", "model", "class") else "right", no_wrap=True)
    for r in _final_results(report):
        for m in (*r.metrics.per_class.values(), r.metrics.overall):
            if m.labelled == 0 and m.tp + m.fp == 0:
                continue
            t.add_row(
                r.set_name, r.spec.model, m.name, str(m.labelled), str(m.tp), str(m.fp), str(m.fn),
                _pct(m.recall), _num(m.iou), _num(m.ap50), _num(r.map50_95.get(m.name, float("nan"))),
            )  # fmt: skip
    return t


def _mask_table(report) -> Table:
    from detector.mask_report import mask_metric_rows
    from detector.report import _final_results, _num

    rows = mask_metric_rows(_final_results(report))
    border = "kept" if any(r.masks and r.masks.include_border for r in report.results) else "left out"
    sources = ", ".join(dict.fromkeys(r[4] for r in rows))
    t = Table(title=f"Masks ({sources}) and sizes: size acc = mean ECD predicted / labelled, border particles {border}")
    for col in ("set", "model", "class", "mask AP50", "mask AP", "box AP50", "n GT", "n pred", "size acc", "matched", "KS"):
        t.add_column(col, justify="left" if col in ("set", "model", "class") else "right", no_wrap=True)

    def f(v):
        return "–" if v is None else _num(float(v))

    for r in rows:
        t.add_row(r[0], r[1], r[3], f(r[5]), f(r[6]), f(r[7]), "–" if r[8] is None else str(r[8]), "–" if r[9] is None else str(r[9]),
                  f(r[12]), f(r[13]), f(r[15]))  # fmt: skip
    return t


def _prediction_specs(items: list[str]):
    from detector.evaluate import ModelSpec

    specs = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or Path(item).exists():
            path = item
            p = Path(item)
            name = p.parent.name if p.name in ("predictions", "labels") else p.stem
        specs.append(ModelSpec(name, "-", predictions=Path(path)))
    return specs


def _run_evaluation(specs, sets, conf, iou, match, imgsz, device, tile="auto", masks="auto", include_border=False, refine="none"):
    from detector.evaluate import evaluate

    with Progress(console=_err, transient=True) as progress:
        task = progress.add_task("evaluating", total=len(specs))

        def step(desc: str) -> None:
            progress.update(task, description=f"evaluating {desc}")
            progress.advance(task)

        return evaluate(specs, sets, conf=conf, iou=iou, rule=match.value, imgsz=imgsz, device=device, on_step=step, tile=tile,
                        masks=masks, include_border=include_border, refine=refine)  # fmt: skip


@app.command("evaluate")
def evaluate_cmd(
    models: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Run folders of `detector train` (every checkpoint, best and last), .pt weights files or exports (.onnx, *_openvino_model); none: the shipped default model.", show_default=False),
    ] = None,
    sets: SetOpt = ...,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder: metrics.csv, report.md, curves_<set>.png, overlays/.")] = ...,
    predictions: Annotated[
        Optional[list[str]],
        typer.Option(
            "--predictions",
            help="Score detections made elsewhere: [NAME=]DIR of YOLO txt 'class cx cy w h conf' per image (or DIR/<set>/), or a COCO results .json; repeatable.",
            show_default=False,
        ),
    ] = None,
    conf: ConfOpt = 0.25,
    iou: IouOpt = 0.5,
    match: MatchOpt = Match.iou,
    imgsz: ImgszOpt = None,
    tile: TileOpt = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, or a CUDA index such as 0.")] = "auto",
    overlays: OverlaysOpt = False,
    strict: StrictOpt = False,
    masks: Annotated[
        MaskSource,
        typer.Option(help="For sets with ground-truth masks (masks/ beside images/, or polygons): where predicted masks come from "
                     "(as predict --masks); none: boxes only. Adds mask mAP, size accuracy and KS per class (masks.csv)."),
    ] = MaskSource.auto,
    include_border: Annotated[
        bool, typer.Option("--include-border", help="Keep particles touching the image border in the size comparison.")
    ] = False,
    refine: RefineOpt = Refine.none,
) -> None:
    """Score detectors on labelled sets: IoU, mAP@0.5 (VOC, as the paper), COCO mAP@[.5:.95], TP/FP/FN, detected %;
    with ground-truth masks also mask mAP, size accuracy (mean ECD predicted / labelled) and KS distance."""
    import dataclasses

    from detector.evaluate import load_sets_counted, model_specs, parse_set_args
    from detector.report import write_evaluation

    with input_errors_exit():
        if not models and not predictions:
            models = [shipped_weights()]
        specs = model_specs(models or []) + _prediction_specs(predictions or [])
        tile = parse_tile(tile)
        loaded, warnings = load_sets_counted(parse_set_args(sets), strict=strict)
        report = _run_evaluation(specs, loaded, conf, iou, match, imgsz, device, tile, masks.value, include_border, refine.value)
        report = dataclasses.replace(report, warnings=warnings)
        write_evaluation(report, out, overlays=overlays)
    _out.print(_summary_table(report))
    if any(r.masks is not None for r in report.results):
        _out.print(_mask_table(report))
        for r in report.results:
            if r.masks is not None and r.masks.refine:
                c = r.masks.refine
                _out.print(f"set {r.set_name} {r.spec.model} {r.spec.checkpoint}: gaussian refinement {c['refined']} refined, {c['failed']} failed (kept their mask)")
    for line in _warning_lines(report):
        _out.print(line, soft_wrap=True)
    _out.print(f"report: {out / 'report.md'}  metrics: {out / 'metrics.csv'}")


@app.command("predict")
def predict_cmd(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="[WEIGHTS] IMAGE_OR_DIR...",
            help="Trained weights (.pt, e.g. RUN_DIR/weights/best.pt, or an export: .onnx, *_openvino_model; omitted: the shipped default model), then images and/or folders of images.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = ...,
    conf: Annotated[float, typer.Option(min=0.0, max=1.0, help="Keep detections at least this confident (0-1).")] = 0.25,
    imgsz: ImgszOpt = None,
    tile: TileOpt = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, or a CUDA index such as 0.")] = "auto",
    runtime: Annotated[
        str,
        typer.Option(help="auto, torch, onnx or openvino. onnx/openvino export a .pt once into the cache (~/.cache/nanosynth/exports); "
                     "auto: OpenVINO on a CPU with bf16 units (about 2x PyTorch's speed, boxes within 1 px: bench/infer_speed.py), "
                     "else PyTorch, or the runtime of an exported model."),
    ] = "auto",
    nm_per_px: Annotated[
        Optional[float],
        typer.Option("--nm-per-px", min=0.0, help="Pixel size for the images whose file metadata and scale bar give none "
                     "(each image's scale: metadata, else scale bar, else this; detections.csv and summary.json say which)."),
    ] = None,
    scale_bar: Annotated[
        bool, typer.Option("--scale-bar/--no-scale-bar", help="Read the scale bar (Tesseract OCR) for images without a pixel size in their metadata, and cross-check it against the metadata (over 5 % apart: a warning, the metadata wins).")
    ] = True,
    keep_info_bar: Annotated[
        bool, typer.Option("--keep-info-bar", help="Also detect in the vendor information bar under the image (by default it is found and left out, as build-dataset --remove-info-bar does).")
    ] = False,
    save: Annotated[
        Optional[SaveFormat],
        typer.Option(help="Also write the boxes with a copy of the images for correction in an annotation tool (coco: one annotations.json; labelme: one json per image).")
    ] = None,
    masks: Annotated[
        MaskSource,
        typer.Option(help="Where particle masks (area, ECD, Feret, circularity) come from: model (a segmentation model's outlines), "
                     "threshold (Otsu inside each detected box, polarity from the box border vs centre), auto (model's when it "
                     "segments, else threshold), none (box-based sizes only)."),
    ] = MaskSource.auto,
    include_border: Annotated[
        bool, typer.Option("--include-border", help="Keep particles touching the image border in the mask-based size statistics (counted either way).")
    ] = False,
    refine: RefineOpt = Refine.none,
) -> None:
    """Detect and measure particles: annotated images, detections.csv, counts.csv, size histograms, summary.json.

    Size = equivalent diameter sqrt(w*h) of each box (the circle with the area of the inscribed ellipse).
    """
    from detector.export import load_for_runtime
    from detector.predict import check_out_outside_inputs, checked_size, collect_images, predict_images
    from detector.report import write_predictions
    from detector.yolo_env import is_model_path, load_model, select_device

    with input_errors_exit():
        if refine == Refine.gaussian and masks == MaskSource.none:
            raise InputError("--refine gaussian refines masks: leave out --masks none")
        tile = parse_tile(tile)
        weights, inputs = (paths[0], paths[1:]) if is_model_path(paths[0]) else (shipped_weights(), paths)
        if not inputs:
            raise InputError("no images given: detector predict [WEIGHTS] IMAGE_OR_DIR... --out DIR")
        check_out_outside_inputs(out, inputs)
        images, sizes, skipped = [], [], 0
        for p in collect_images(inputs):
            try:
                sizes.append(checked_size(p))
                images.append(p)
            except InputError as e:
                _warn(e)
                skipped += 1
        dev = select_device(device)
        model = load_model(weights) if masks == MaskSource.model else load_for_runtime(weights, runtime, dev)
        if masks == MaskSource.model and model.task != "segment":  # before predicting: fail fast
            raise InputError("--masks model needs a segmentation model (detector train --task segment); this one only detects boxes", weights)
        dets, scales = [], _ScaleCollector(nm_per_px, scale_bar)
        with Progress(console=_err, transient=True) as progress:
            task = progress.add_task("predicting", total=len(images))
            found = predict_images(model, images, conf=conf, imgsz=imgsz, device=dev, tile=tile, skip_unreadable=True,
                                   remove_info_bar=not keep_info_bar, on_image=scales)  # fmt: skip
            for p, d in zip(list(images), found):
                if d is None:
                    _warn(InputError("cannot read image (corrupt, truncated or not an image)", p))
                    skipped += 1
                    i = images.index(p)
                    del images[i], sizes[i]
                else:
                    dets.append(d)
                progress.advance(task)
        if not images:
            raise InputError(f"none of the {skipped} image(s) could be read")
        measurements, source, refined = None, None, None
        if masks != MaskSource.none:
            from detector.measure import measure_detections, with_threshold_outlines
            from detector.predict import read_image

            source = masks.value if masks != MaskSource.auto else ("model" if model.task == "segment" else "threshold")
            if source == "threshold":
                dets = [with_threshold_outlines(read_image(p), d)[0] for p, d in zip(images, dets)]
            if refine == Refine.gaussian:
                from detector.refine import RefineCounts, refine_gaussian

                counts = RefineCounts()
                for i, p in enumerate(images):
                    dets[i], c = refine_gaussian(read_image(p), dets[i])
                    counts = counts + c
                refined = counts.as_dict()
                source += "+gaussian"
            measurements = [measure_detections(d, w, h) for d, (w, h) in zip(dets, sizes)]
        per_image = [scales.found[p] for p in images]
        heights = _height_columns(images, dets, scales.heights)
        stats = write_predictions(images, sizes, dets, out, nm_per_px=[s for s, _ in per_image], save=save.value if save else None,
                                  measurements=measurements, mask_source=source, include_border=include_border,
                                  scale_sources=[src for _, src in per_image], extra_columns=heights, refine=refined)  # fmt: skip
    if skipped:
        _err.print(f"skipped {skipped} unreadable image(s); predicted {len(images)}", highlight=False)
    _out.print(_size_table(images, dets, stats, source))
    _out.print(_scale_line(per_image), highlight=False)
    if refined is not None:
        _out.print(f"gaussian refinement: {refined['refined']} refined, {refined['failed']} failed (kept their {source.split('+')[0]} mask)")
    _out.print(f"written to {out}")


class _ScaleCollector:
    """predict_images' on_image: each image's scale (detector.scale_bar.resolve_scale), warnings as they
    come, and the height maps (for each particle's height)."""

    def __init__(self, option: float | None, read_bar: bool):
        from detector.scale_bar import ocr_available

        self.option, self.found, self.heights = option, {}, {}
        self.read_bar = read_bar and ocr_available()
        if read_bar and not self.read_bar:
            from synthgen.warnings_log import warn

            warn("no OCR engine (pip install pytesseract; apt install tesseract-ocr): scale bars are not read")

    def __call__(self, path: Path, m, rows: int) -> None:
        from detector.scale_bar import choose_reading, resolve_scale, scale_bar_readings
        from synthgen.readers import as_gray
        from synthgen.warnings_log import warn

        reading, ambiguous = None, None
        if self.read_bar and m.heights_nm is None:
            reading, ambiguous = choose_reading(scale_bar_readings(as_gray(m.image)))
        nm, source, warning = resolve_scale(m, self.option, reading)
        for text in (ambiguous, warning):
            if text:
                warn(text, path)
        self.found[path] = (nm, source)
        if m.heights_nm is not None:
            self.heights[path] = m.heights_nm


def _height_columns(images, dets, heights: dict) -> tuple[list[str], list[list]] | None:
    """height_nm per detection (above its local background) when any image is a height map."""
    if not heights:
        return None
    from detector.measure import particle_heights

    rows = []
    for p, d in zip(images, dets):
        values = particle_heights(heights[p], d) if p in heights else [None] * len(d)
        rows.extend([v] for v in values)
    return ["height_nm"], rows


def _scale_line(per_image) -> str:
    """How many images had which scale source (the table's nm statistics pool only scaled images)."""
    from collections import Counter

    counts = Counter(src for _, src in per_image)
    parts = ", ".join(f"{counts[s]} {s}" for s in ("metadata", "scale-bar", "option", "none") if counts[s])
    return f"pixel size per image: {parts}" + (f" ({counts['none']} without a scale: sizes in nm pool the others)" if counts["none"] and len(counts) > 1 else "")


def _size_table(images, dets, stats, source: str | None) -> Table:
    """The statistics summary.json leads with: mask-based sizes when masks were measured, else box sizes."""
    n = f"{len(images)} images, {sum(len(d) for d in dets)} particles"
    if stats.masks is None:
        t = Table(title=f"{n} (box equivalent diameter)")
        for col in ("class", "count", "mean", "std", "SEM", "unit"):
            t.add_column(col, justify="left" if col in ("class", "unit") else "right")
        for s in stats.boxes:
            t.add_row(s.name, str(s.count), f"{s.mean:.2f}", f"{s.std:.2f}", f"{s.sem:.3f}", s.unit)
        return t
    t = Table(title=f"{n}; size from {source} masks (cube: edge length, sphere: ECD)")
    for col in ("class", "measured", "at border, left out", "mean", "std", "median", "95 % CI of mean", "unit"):
        t.add_column(col, justify="left" if col in ("class", "unit") else "right")
    for s in stats.masks:
        t.add_row(s.name, str(s.count), str(s.border_excluded), f"{s.mean:.2f}", f"{s.std:.2f}", f"{s.median:.2f}",
                  f"{s.ci95_low:.2f}-{s.ci95_high:.2f}", s.unit)  # fmt: skip
    return t


@app.command("baseline")
def baseline_cmd(
    sets: SetOpt = ...,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder: predictions/<set>/*.txt (YOLO with conf) and the same report as `evaluate`.")] = ...,
    level: Annotated[
        Optional[float], typer.Option(help="Flooding level as a fraction (0-1) of the intensity range; default: Otsu's threshold.")
    ] = None,
    polarity: Annotated[
        Polarity, typer.Option(help="bright particles on dark (SEM), dark on light (bright-field TEM), or auto (from the image border).")
    ] = Polarity.auto,
    invert: Annotated[bool, typer.Option("--invert", help="Same as --polarity dark.")] = False,
    flatten: Annotated[
        float, typer.Option(min=0.0, help="Background flattening: subtract a Gaussian blur of this sigma in px (0 = off; try 3-4x the particle size).")
    ] = 0.0,
    min_area: Annotated[int, typer.Option(min=0, help="Drop connected parts smaller than this many pixels.")] = 20,
    class_rule: Annotated[
        ClassRule,
        typer.Option("--class", help="shape: cube when the part fills >= --cube-fill of its minimum rotated rectangle, else sphere; or one class for all."),
    ] = ClassRule.shape,
    cube_fill: Annotated[float, typer.Option(help="Rectangularity threshold of the shape rule (disc 0.785, square 1; default 0.893, their midpoint).")] = 0.893,
    conf: ConfOpt = 0.25,
    iou: IouOpt = 0.5,
    match: MatchOpt = Match.iou,
    overlays: OverlaysOpt = False,
) -> None:
    """The classical WSxM "flooding" method: threshold + connected components -> boxes, scored like `evaluate`.

    Compare with a detector: `detector evaluate RUN_DIR --predictions baseline=OUT/predictions --set ...`.
    """
    from detector.baseline import BaselineParams, detect_file
    from detector.evaluate import EvalReport, ModelSpec, load_sets, parse_set_args, score
    from detector.report import write_evaluation, write_yolo_predictions

    with input_errors_exit():
        params = BaselineParams(
            level=level, polarity="dark" if invert else polarity.value, flatten=flatten, min_area=min_area,
            class_rule=class_rule.value, cube_fill=cube_fill,
        )  # fmt: skip
        params.check()
        loaded = load_sets(parse_set_args(sets))
        spec = ModelSpec("baseline", "-", predictions=out / "predictions")
        results, dets = [], {}
        with Progress(console=_err, transient=True) as progress:
            task = progress.add_task("flooding", total=sum(len(s) for s in loaded.values()))
            for name, samples in loaded.items():
                dets[name] = []
                for s in samples:
                    dets[name].append(detect_file(s.image_path, params))
                    progress.advance(task)
                results.append(score(name, spec, samples, dets[name], conf, iou, match.value))
        report = EvalReport(results, loaded, conf, iou, match.value)

        def write_preds(tmp: Path) -> None:
            for name, samples in loaded.items():
                write_yolo_predictions(samples, dets[name], tmp / "predictions" / name)

        write_evaluation(report, out, overlays=overlays, extra=write_preds)
    _out.print(_summary_table(report))
    _out.print(f"report: {out / 'report.md'}  predictions: {out / 'predictions'}")
